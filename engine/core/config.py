"""Configuration: one dataclass per phase, loaded from a YAML preset plus dotted overrides.

A preset in ``configs/train/`` or ``configs/generate/`` is a flat YAML mapping of one phase's
fields (nested dataclasses as nested mappings). ``load_config(TrainConfig, "configs/train/x.yaml", ["max_steps=3", "lora.r=8"])``
reads it with ``yaml.safe_load`` (never ``yaml.load``: a config file must not run code), rejects
unknown keys with the file and key named, applies overrides (values parsed as YAML scalars:
``3`` is an int, ``true`` a bool, ``[q_proj,v_proj]`` a list) and checks every value's type.

Every field carries ``metadata["help"]``; ``describe()`` lists them for ``--help`` output and
``field_specs()`` with each field's type and choices for the pages; a test checks that no field
lacks help.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from engine.core.paths import moved_preset
from engine.core.safe_yaml import MAX_CONFIG_BYTES, ConfigError, load_yaml, quote, read_config_text, shorten


def opt(default, help: str, **kwargs):
    """A dataclass field with help text (lists/dicts get a factory so instances don't share them)."""
    if isinstance(default, (list, dict)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


# The weights' precision, one vocabulary for every phase. Older configs and stored job rows say
# None (the old "best for the device") or torch's names (float32...): they still load, as auto
# or the short name.
Precision = typing.Literal["auto", "fp32", "bf16", "fp16"]
PRECISION_ALIASES = {None: "auto", "": "auto", "float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
# The device, the same way: "auto" is the one spelling of "choose for me" (cuda, then mps, then
# cpu); older configs and job rows say None (null), which loads as auto. Training and generation
# take one of DEVICE's names; evaluation, inference and serving also take cuda:N (AnyDevice).
Device = typing.Literal["auto", "cpu", "cuda", "mps"]
AnyDevice = typing.NewType("AnyDevice", str)
DEVICE_ALIASES = {None: "auto", "": "auto"}
ANY_DEVICE_HELP = "auto (default: cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."
PRECISION_HELP = ("auto (default): bf16 on CUDA GPUs that support it (else fp16), fp16 on Apple MPS, and on a CPU "
                  "bf16 when it has native bf16 matmuls (AMX-BF16 or AVX512-BF16), else fp32 (without them bf16 "
                  "is ~35x slower); fp32, bf16 or fp16 force one. The job log and the dry run say what was "
                  "picked and why.")


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _coerce(value, hint, where: str):
    """Check ``value`` against a type hint, converting the harmless cases (int -> float)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is typing.Any:
        return value
    if hint == Precision:
        value = PRECISION_ALIASES.get(value, value) if value is None or isinstance(value, str) else value
    if hint == Device or hint is AnyDevice:
        value = DEVICE_ALIASES.get(value, value) if value is None or isinstance(value, str) else value
        hint = str if hint is AnyDevice else hint
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {quote(value)}")
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {quote(value)}")
        return _build(hint, value, where)
    if origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            inner = args[0] if args else typing.Any
            return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        raise ConfigError(f"{where}: expected a list, got {quote(value)}")
    if origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"{where}: expected a mapping, got {quote(value)}")
    if origin is typing.Literal:
        if value in args:
            return value
        if isinstance(value, int) and not isinstance(value, bool) and str(value) in args:
            return str(value)   # prompt_version=5 (YAML reads a number) names the choice "5"
        raise ConfigError(f"{where}: must be one of {', '.join(map(str, args))}, got {quote(value)}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {quote(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {quote(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 2e-5 as a string (YAML 1.1 wants 2.0e-5)
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {quote(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected text, got {quote(value)}")
    return value


def _build(cls, data: dict, where: str):
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field {quote(unknown[0])} (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], object]:
    """``"lora.r=8"`` -> (["lora", "r"], 8).

    >>> parse_override("lora.target_modules=[q_proj, v_proj]")
    (['lora', 'target_modules'], ['q_proj', 'v_proj'])
    >>> parse_override("learning_rate=2e-5")
    (['learning_rate'], '2e-5')
    """
    if "=" not in text:
        raise ConfigError(f"override {quote(text)}: expected key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or len(key) > 200 or any(not part.isidentifier() for part in key.split(".")):
        raise ConfigError(f"override {quote(text)}: bad key {quote(key)}")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        raise ConfigError(f"override {quote(key)}: value over {MAX_CONFIG_BYTES:,} bytes")
    try:  # nesting too deep or aliases expanding too far raise ConfigError
        value = load_yaml(raw, f"override {key}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML: the text itself (a string field takes it, others refuse it by name)
    return key.split("."), value


def load_config(cls, path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), data: dict | None = None):
    """Build ``cls`` from a YAML file (or ``data``), then apply ``key=value`` overrides."""
    merged: dict = {}
    where = ""
    if path is not None:
        path = moved_preset(path)
        where = str(path)
        text = read_config_text(path)
        try:
            loaded = load_yaml(text, where)
        except yaml.YAMLError as exc:  # one line: PyYAML's own message spans several, with a snippet
            mark = getattr(exc, "problem_mark", None)
            problem = f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}" if mark and getattr(
                exc, "problem", None) else " ".join(str(exc).split())
            raise ConfigError(f"{path}: invalid YAML ({shorten(problem, 300)})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of fields at the top level")
        merged = loaded
    if data:
        merged = _deep_merge(merged, data)
    for text in overrides:
        keys, value = parse_override(text)
        target = merged
        for k in keys[:-1]:
            target = target.setdefault(k, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {quote(text)}: {k} is not a section")
        target[keys[-1]] = value
    _check_nested_keys(cls, merged, where or cls.__name__)
    return _build(cls, merged, where)


def _check_nested_keys(cls, data: dict, where: str) -> None:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown field {quote(key)} (known: {', '.join(sorted(names))})")
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            _check_nested_keys(hints[key], value, f"{where}: {key}")


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def describe(cls, prefix: str = "") -> list[tuple[str, str, object]]:
    """(dotted name, help, default) for every field, nested ones included."""
    return [(f["name"], f["help"], f["default"]) for f in field_specs(cls, prefix)]


def field_specs(cls, prefix: str = "") -> list[dict]:
    """Every field, nested ones included, as ``{name, help, default, type, choices}``: ``type`` is
    the value's type in words (``int``, ``float``, ``bool``, ``str``, ``list[float]``, ``str |
    None``), ``choices`` the allowed values of a Literal field (else None). The pages build their
    widgets from these, so a field's vocabulary is declared once, here.

    >>> [f for f in field_specs(GenerateConfig) if f["name"] == "split"][0]["choices"]
    ['train', 'validation', 'test']
    """
    rows = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        name, hint = prefix + f.name, hints[f.name]
        if dataclasses.is_dataclass(hint):
            rows.extend(field_specs(hint, name + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        literal = typing.get_origin(hint) is typing.Literal
        rows.append({"name": name, "help": f.metadata.get("help", ""), "default": default,
                     "type": _type_name(hint), "choices": list(typing.get_args(hint)) if literal else None})
    return rows


def _type_name(hint) -> str:
    """A type hint in words: ``int``, ``list[float]``, ``str | None``; a Literal is ``str`` (its
    values are the choices), a NewType its base type.

    >>> _type_name(list[float]), _type_name(str | None), _type_name(Precision), _type_name(AnyDevice)
    ('list[float]', 'str | None', 'str', 'str')
    """
    if typing.get_origin(hint) is typing.Literal:
        return " | ".join(sorted({type(v).__name__ for v in typing.get_args(hint)}))
    if hasattr(hint, "__supertype__"):
        return _type_name(hint.__supertype__)
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("NoneType", "None")


# ---------------------------------------------------------------------------------------------
# Phase configs. Each phase owns one dataclass here, so pages can show and edit them without
# importing the heavy phase modules.
# ---------------------------------------------------------------------------------------------


@dataclass
class SynthConfig:
    preset: str = opt("demo", "Size preset: demo (a few hundred examples) or plan (25,790 / 3,223 / 3,225).")
    seed: int = opt(0, "Random seed; the same seed writes byte-identical files.")
    out: str | None = opt(None, "Folder for the three JSONL files; default <home>/synth-<preset>-<seed>.")
    dataset: str | None = opt(None, "Dataset name to register them under; default <preset>-seed<seed>.")


@dataclass
class ImportConfig:
    path: str = opt("", "ChatML JSONL (.jsonl) or CSV (.csv) file to import.")
    dataset: str | None = opt(None, "Dataset to add the examples to; default derived from the file name.")
    split: str | None = opt(None, "Split for every line (train/validation/test); default from meta or the file name.")


# ---------------------------------------------------------------------------------------------
# Phase 2: LoRA fine-tuning (engine/training/train.py, engine/training/dryrun.py, configs/train/*.yaml)
# ---------------------------------------------------------------------------------------------

LORA_ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraSettings:
    r: int = opt(16, "LoRA rank (the plan: 16).")
    alpha: int = opt(32, "LoRA alpha; the update is scaled by alpha / r.")
    dropout: float = opt(0.05, "Dropout on the LoRA input during training (0 disables it).")
    target_modules: list[str] = opt(LORA_ALL_LINEAR, "Linear layers that get adapters; the default is every "
                                    "projection of a Llama/Mistral/Qwen block (the plan's 0.58% on Mistral-7B); "
                                    "[all-linear] lets peft pick every linear layer but the output head.")

    def to_peft(self):
        """These settings as peft's ``LoraConfig`` for a causal LM (peft is imported here, not with this module)."""
        from peft import LoraConfig

        targets = self.target_modules
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, bias="none",
                          task_type="CAUSAL_LM",
                          target_modules="all-linear" if targets == ["all-linear"] else list(targets))


@dataclass
class TrainConfig:
    base_model: str = opt("smollm2-135m-instruct", "Model to adapt: a registry name (ccr models list), an HF id "
                          "or a local folder.")
    data: str | None = opt(None, "Training ChatML JSONL; default <home>/train_reasoning.jsonl (Phase 1's export).")
    eval_data: str | None = opt(None, "Validation ChatML JSONL; default the training file's validation_* "
                                "sibling (e.g. validation_reasoning.jsonl) when it exists, else no evaluation.")
    device: Device = opt("auto", "auto (cuda, then mps, then cpu), cpu, cuda or mps.")
    precision: Precision = opt("auto", "Weights' precision: " + PRECISION_HELP + " LoRA weights and optimizer "
                               "states stay in fp32.")
    batch_size: int = opt(2, "Examples per device per forward pass.")
    gradient_accumulation_steps: int = opt(8, "Forward passes per optimizer step (effective batch = "
                                           "batch_size x this x GPUs).")
    learning_rate: float = opt(2e-5, "Peak learning rate.")
    epochs: float = opt(3.0, "Passes over the training data (ignored when max_steps > 0).")
    max_steps: int = opt(-1, "Stop after this many optimizer steps (-1: run the epochs).")
    max_length: int = opt(2048, "Longest example in tokens; a longer one loses the middle of its prompt (the "
                          "transcript) so that its answer stays; only an answer longer than this loses its end "
                          "(and an example left with no answer token is dropped).")
    lr_scheduler: str = opt("cosine", "Learning-rate schedule (HF names: cosine, linear, constant_with_warmup...).")
    warmup_ratio: float = opt(0.03, "Share of the steps spent warming the learning rate up (a value >= 1 is a "
                               "number of steps).")
    weight_decay: float = opt(0.0, "AdamW weight decay.")
    max_grad_norm: float = opt(1.0, "Gradient clipping norm.")
    gradient_checkpointing: bool = opt(False, "Recompute activations in the backward pass: much less memory "
                                       "for long sequences, about 30% slower.")
    padding: typing.Literal["dynamic", "max_length"] = opt("dynamic", "dynamic: pad each batch to its longest example; max_length: pad every row "
                       "to max_length (only for comparisons, see bench/training.py).")
    group_by_length: bool = opt(True, "Batch examples of similar length together (less padding).")
    loss_logits_only: bool = opt(True, "Compute the output layer (vocabulary logits) only where the loss needs "
                                 "it, at the assistant tokens: the same loss with less compute and memory.")
    logging_steps: int = opt(10, "Write train loss, learning rate, throughput and memory every N steps.")
    eval_steps: int = opt(100, "Evaluate on the validation data every N steps (0: only at the end).")
    eval_max_examples: int = opt(0, "Evaluate on at most this many validation examples (0: all).")
    save_steps: int = opt(200, "Write a checkpoint every N steps (a stop always writes one).")
    save_total_limit: int = opt(3, "Complete checkpoints to keep (older ones are deleted; at least 1).")
    seed: int = opt(42, "Seed for LoRA initialisation, data order and dropout.")
    num_threads: int = opt(0, "CPU threads for torch (0: torch's default).")
    multi_gpu: typing.Literal["auto", "off"] = opt("auto", "auto: with more than one CUDA GPU, run under `accelerate launch` (DDP) on all "
                         "of them; off: use one device.")
    accelerate_config: str | None = opt(None, "accelerate config file for multi-GPU runs (e.g. FSDP); default "
                                        "plain DDP on every visible GPU.")
    report_to: list[str] | str = opt([], "Also send the training metrics to these trackers through the HF "
                                     "Trainer's own integrations: tensorboard (written to <run>/tensorboard, or "
                                     "$TENSORBOARD_LOGGING_DIR), mlflow, trackio, wandb... Each needs its package "
                                     "installed. Empty: only the app's database (the Train page's charts).")
    lora: LoraSettings = field(default_factory=LoraSettings, metadata={"help": "LoRA adapter settings."})

    def training_arguments(self, output_dir: str, *, evaluate: bool, device: str, weights_dtype: str,
                           world_size: int, report_to: list[str]):
        """This config as transformers' ``TrainingArguments`` (transformers is imported here, not with this module).

        ``evaluate``: there is validation data; ``weights_dtype``: the loaded weights' dtype
        ("bfloat16", "float16", "float32"); ``report_to``: the Trainer's integrations (none if empty).
        """
        import transformers

        on_cuda = device.startswith("cuda")
        return transformers.TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=self.batch_size,
            per_device_eval_batch_size=self.batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            learning_rate=self.learning_rate,
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            lr_scheduler_type=self.lr_scheduler,
            warmup_steps=self.warmup_ratio,  # a float below 1 is a share of the steps
            weight_decay=self.weight_decay,
            max_grad_norm=self.max_grad_norm,
            logging_steps=self.logging_steps,
            logging_first_step=True,
            eval_strategy="steps" if evaluate and self.eval_steps > 0 else "no",
            eval_steps=self.eval_steps if self.eval_steps > 0 else None,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=None,  # the Checkpoints callback rotates, counting only complete checkpoints
            seed=self.seed,
            # Autocast only on CUDA; elsewhere the weights are simply loaded in the chosen precision and
            # the LoRA weights stay fp32 (peft keeps adapters in fp32).
            bf16=on_cuda and weights_dtype == "bfloat16",
            fp16=on_cuda and weights_dtype == "float16",
            use_cpu=device == "cpu",
            # (renamed activation_checkpointing in transformers 5.2x; the old name works in every 5.x)
            gradient_checkpointing=self.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if self.gradient_checkpointing else None,
            report_to=report_to or "none",  # the Trainer's own integrations (TensorBoard, MLflow...)
            remove_unused_columns=False,
            prediction_loss_only=True,
            include_num_input_tokens_seen="non_padding",
            dataloader_num_workers=0,
            dataloader_pin_memory=on_cuda,
            disable_tqdm=True,
            label_names=["labels"],
            ddp_find_unused_parameters=False if world_size > 1 else None,
        )


# ---------------------------------------------------------------------------------------------
# Phase 3: evaluation, batch inference, the API server
# ---------------------------------------------------------------------------------------------


@dataclass
class EvalConfig:
    model: str = opt("smollm2-135m-instruct", "Model to evaluate: registry name, HF id, local folder or run:<name>.")
    base: str | None = opt(None, "A second model (usually the tuned model's base) evaluated on the same examples "
                           "and compared against `model`.")
    data: str | None = opt(None, "ChatML JSONL or CSV file to evaluate on; default the working dataset's split.")
    dataset: str | None = opt(None, "Dataset to take the split from when no file is given; default the working one.")
    split: str = opt("test", "Split of the dataset to evaluate on.")
    limit: int = opt(0, "Evaluate on at most this many examples (0: all), interleaving tasks so a small limit "
                     "still covers each task.")
    max_new_tokens: int = opt(512, "Longest answer generated per example, in tokens.")
    batch_size: int = opt(8, "Examples generated together in one batch.")
    max_prompt_tokens: int = opt(0, "Cut prompts longer than this from the start (0: no limit).")
    device: AnyDevice = opt("auto", ANY_DEVICE_HELP)
    dtype: Precision = opt("auto", "Weights' precision: " + PRECISION_HELP)
    report: str | None = opt(None, "Write the report as JSON to this file and as HTML beside it (same name, .html); "
                             "default <home>/reports/eval-<job>.json.")
    examples_in_report: int = opt(20, "How many examples where the models disagree the HTML report shows.")


@dataclass
class InferConfig:
    model: str = opt("smollm2-135m-instruct", "Model to run: registry name, HF id, local folder or run:<name>.")
    input: str = opt("", "JSONL input: a ChatML line ({\"messages\": [...]}), {\"prompt\": text} or "
                     "{\"transcript\": text, \"task\": csat|quality|...} per line.")
    output: str = opt("", "JSONL output, one line per input line (resumed: lines already there are skipped).")
    batch_size: int = opt(8, "Lines generated together in one batch.")
    max_new_tokens: int = opt(512, "Longest answer per line, in tokens.")
    temperature: float = opt(0.0, "Sampling temperature (0: greedy, reproducible).")
    top_p: float = opt(1.0, "Nucleus sampling mass (with temperature > 0).")
    seed: int = opt(0, "Sampling seed (with temperature > 0).")
    device: AnyDevice = opt("auto", ANY_DEVICE_HELP)
    dtype: Precision = opt("auto", "Weights' precision: " + PRECISION_HELP)
    progress_bar: bool = opt(False, "Draw a progress bar on stderr (the command line turns it on).")


@dataclass
class ServeConfig:
    model: str = opt("smollm2-135m-instruct", "Model to serve: registry name, HF id, local folder or run:<name>.")
    host: str = opt("127.0.0.1", "Address to bind; anything but loopback needs an API key.")
    port: int = opt(8000, "Port to bind (0: pick a free one; the job's stats show the URL).")
    api_key: str | None = opt(None, "Require `Authorization: Bearer <key>` on every route but /health.")
    max_queue: int = opt(64, "Requests waiting for generation at most; more are answered 429 at once.")
    max_batch: int = opt(8, "Compatible queued requests generated together in one batch.")
    batch_wait_ms: int = opt(10, "How long the batcher waits for more requests to join a batch.")
    max_body_bytes: int = opt(1 << 20, "Largest request body; larger ones get 413.")
    max_tokens_limit: int = opt(4096, "Largest max_tokens a request may ask for; more gets 400.")
    default_max_tokens: int = opt(512, "max_tokens when a request gives none.")
    allowed_hosts: list[str] = opt([], "Host header values accepted besides the bound address and localhost "
                                   "(DNS-rebinding guard); ['*'] accepts any.")
    idle_shutdown_s: float = opt(0.0, "Stop after this many seconds without a request (0: never); the Compare "
                                 "page's servers use it so they do not outlive the demo.")
    device: AnyDevice = opt("auto", ANY_DEVICE_HELP)
    dtype: Precision = opt("auto", "Weights' precision: " + PRECISION_HELP)


# ---------------------------------------------------------------------------------------------
# Phase 1: reasoning-chain generation
# ---------------------------------------------------------------------------------------------


@dataclass
class JudgeSettings:
    """An optional second model that rates each generated chain's faithfulness (engine/chains/judge.py)."""

    enabled: bool = opt(False, "Ask a judge model (any OpenAI-compatible server) to rate each chain's faithfulness "
                        "to its transcript and labels; its rating and reason join the score breakdown and the "
                        "review reasons. Off by default.")
    base_url: str = opt("http://127.0.0.1:8001/v1", "The judge server's base URL (usually ending in /v1), e.g. vLLM "
                        "serving Qwen2.5-7B-Instruct.")
    model: str = opt("Qwen/Qwen2.5-7B-Instruct", "The model name the judge server knows.")
    api_key_env: str = opt("JUDGE_API_KEY", "Name of the environment variable holding the judge server's API key "
                           "(the key itself is never stored in the job's config); empty or unset: no key sent.")
    timeout_s: float = opt(60.0, "Seconds to wait for one rating.")
    max_tokens: int = opt(200, "Longest rating answer, in tokens (a verdict is a short JSON object).")
    threshold: int = opt(3, "Ratings run from 1 (contradicts or invents) to 5 (fully faithful); a chain rated "
                         "below this is unfaithful: it cannot pass and goes to review with the judge's reason.")
    concurrency: int = opt(8, "Ratings requested at once.")
    http_retries: int = opt(2, "Retries (exponential backoff) per rating on 429, 5xx and connection errors; then "
                            "the chain is kept with 'judge unavailable' recorded.")

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= 5:
            raise ConfigError(f"judge.threshold: must be from 1 to 5, got {quote(self.threshold)}")
        for name, low in (("max_tokens", 16), ("concurrency", 1), ("http_retries", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"judge.{name}: must be at least {low}, got {quote(getattr(self, name))}")
        if not self.timeout_s > 0:
            raise ConfigError(f"judge.timeout_s: must be above 0, got {quote(self.timeout_s)}")
        if self.enabled and not (self.base_url.strip() and self.model.strip()):
            raise ConfigError("judge: enabled needs judge.base_url and judge.model")


@dataclass
class GenerateConfig:
    dataset: str | None = opt(None, "Dataset to generate chains for; default the working dataset.")
    split: typing.Literal["train", "validation", "test"] = opt("train", "Split to generate for (train, validation or test).")
    limit: int | None = opt(None, "How many examples of the split to generate for (which ones: see select); "
                            "default all.")
    select: typing.Literal["first", "balanced"] = opt("first", "Which examples a limit takes: first (in id order) "
                                                      "or balanced (round-robin over the six tasks and, within a "
                                                      "task, over label values: CSAT 1-5, QA score bands, churn "
                                                      "level, sentiment, root cause, coaching none/one/several; "
                                                      "seeded by seed; a value with too few examples is used up "
                                                      "and the others fill its share).")
    teacher: str = opt("smollm2-135m-instruct", "Teacher model: a registry name, HF id or local folder for the "
                       "local backend; the model name the server knows for the openai backend.")
    backend: typing.Literal["local", "openai"] = opt("local", "local (transformers in the job's process) or openai (an OpenAI-compatible "
                       "HTTP endpoint: vLLM, SGLang, TGI, Ollama, llama.cpp).")
    prompt_version: typing.Literal["4", "5"] = opt("5", "The teacher's prompt (engine/chains/prompt.py): 5 (the "
                                                   "default) states only the example's own task label in a chain and "
                                                   "asks for evidence from the call elsewhere (a student sees only the "
                                                   "transcript, so other tasks' values are guesses: docs/benchmarks.md, "
                                                   "run 3, faithful answers 0.00 -> 0.50); 4 starts every part with a "
                                                   "lead-in stating all six tasks' label values. Chains are keyed by "
                                                   "version: a run with 5 does not reuse chains made with 4.")
    guided: bool = opt(True, "Structure-guided mode: we write the tags and headers, the model fills each of the "
                       "13 parts (best for small teachers). false: the model writes the whole chain.")
    device: Device = opt("auto", "Local backend: cuda, mps, cpu or auto (the best one present).")
    dtype: Precision = opt("auto", "Local backend: the weights' precision: " + PRECISION_HELP)
    batch_size: int = opt(8, "Examples generated together (guided mode decodes batch_size x 13 parts at once; "
                          "the openai backend sends this many examples' requests per round).")
    max_new_tokens: int = opt(900, "Free mode: token budget of a whole chain.")
    part_tokens: int = opt(48, "Guided mode: token budget of one part (a part ends at its first line break).")
    temperatures: list[float] = opt([0.0, 0.7, 0.9], "Sampling temperature of attempt 1, 2, 3...; 0 is greedy. "
                                    "A retry also changes the seed.")
    top_p: float = opt(0.95, "Nucleus sampling for attempts with temperature > 0.")
    repetition_penalty: float = opt(1.15, "Guided local decoding: penalty on tokens a part already used "
                                    "(1.0: none); small teachers loop without it.")
    seed: int = opt(0, "Base seed; attempt k uses seed + 1000 * k.")
    threshold: float = opt(70.0, "A chain scoring below this (or missing a section) is retried, then flagged.")
    attempts: int = opt(3, "Attempts per example before a chain is flagged for review (best attempt kept).")
    gate_threshold: float = opt(75.0, "The test on one example must score at least this before a full run "
                                "(or the run is launched with a recorded override).")
    base_url: str = opt("http://127.0.0.1:8000/v1", "openai backend: the server's base URL (usually ending in /v1).")
    api_key_env: str = opt("OPENAI_API_KEY", "openai backend: name of the environment variable holding the API key "
                           "(the key itself is never stored in the job's config).")
    concurrency: int = opt(8, "openai backend: requests in flight at once.")
    timeout_s: float = opt(120.0, "openai backend: seconds to wait for one response.")
    http_retries: int = opt(5, "openai backend: retries (exponential backoff) on 429, 5xx and connection errors.")
    test: bool = opt(False, "Generate for one example only and record the result as the gate test.")
    test_example: int | None = opt(None, "Gate test: the example's row id; default the first of the split.")
    judge: JudgeSettings = field(default_factory=JudgeSettings, metadata={
        "help": "Optional judge model rating each chain's faithfulness (judge.enabled=true to use it)."})
