"""The training dry run: will this config fit, and how long is an epoch? (``ccr train --dry-run``)

The model is built from its architecture config on PyTorch's meta device (no weights are read or
allocated, so a 7B model "builds" in a second on any laptop, offline: the named models'
configs ship in ``configs/arch``), the LoRA adapters are applied exactly as training applies
them, and the parameters are counted. Memory and disk are estimated from those counts:

- weights: every base parameter at the weights' precision;
- LoRA: trainable parameters in fp32 x 4 (weights, gradients, Adam's two moments);
- activations, per token and layer, of what a Llama/Mistral/Qwen block keeps for the backward
  pass: 8h + 2*kv + 4*i values (norm inputs/outputs, q/k/v, attention output, residuals, the
  SwiGLU's gate/up/act/product), plus the fp32 copy of its input each LoRA module keeps; on CPU the
  attention score matrix (heads x length^2) too, since the fused kernels that avoid it are
  CUDA/MPS ones. With gradient checkpointing only each layer's input is kept (plus one layer
  recomputed at a time);
- logits and loss: batch x length x vocabulary, in the weights' precision, its fp32 upcast and
  the log-softmax the loss keeps, and the gradient (only at the answer tokens with
  ``loss_logits_only``, the default).

These are estimates of the dominant terms (allocator overhead, CUDA context and framework
buffers come on top); docs/training.md compares them with measurements.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from engine.core.config import TrainConfig, load_config
from engine.core.paths import Home, resolve_home

GIB = 2**30
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
TOKENIZER_BYTES = 8 * 2**20  # tokenizer files saved with each checkpoint (a few MB)


def arch_config(cfg: TrainConfig, home: Home | None = None) -> tuple[dict, str]:
    """The base model's architecture config (a dict) and where it came from, without weights or network."""
    from engine.core.model_catalog import resolve_model

    spec = resolve_model(cfg.base_model, home)
    path = spec.arch_config
    if path and Path(path).exists():
        return json.loads(Path(path).read_text()), str(path)
    if spec.kind == "hub":  # an HF id outside the registry: its config.json from the HF cache
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(spec.source, "config.json")
        if isinstance(found, str):
            return json.loads(Path(found).read_text()), found
    raise FileNotFoundError(
        f"no architecture config for {cfg.base_model!r}: use a registry name (ccr models list), a local model "
        f"folder with config.json, or an HF id whose config.json is in the HF cache")


def resolve_precision(cfg: TrainConfig) -> tuple[str, str, str]:
    """(device, precision, reason) as training would pick them on this machine."""
    from engine.core.model_catalog import pick_device, precision_choice

    device = cfg.device
    if device == "auto":
        device = pick_device(None)
    precision, reason = precision_choice(device, cfg.precision)
    return device, precision, reason


def count_parameters(arch: dict, cfg: TrainConfig) -> dict:
    """Build the model on the meta device, apply the run's LoRA config, count parameters."""
    import warnings

    import torch
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecation notices from inside peft

    fields = dict(arch)
    model_type = fields.pop("model_type")
    for key in ("architectures", "transformers_version", "_model_name_or_path", "torch_dtype", "dtype"):
        fields.pop(key, None)
    config = AutoConfig.for_model(model_type, **fields)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    base_total = sum(p.numel() for p in model.parameters())
    model = get_peft_model(model, cfg.lora.to_peft())
    trainable, total = model.get_nb_trainable_parameters()
    wrapped = sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if hasattr(mod, "lora_A")})
    return {"architecture": type(model.base_model.model).__name__, "base_params": base_total, "total": total,
            "trainable": trainable, "percent": 100.0 * trainable / total, "lora_modules": wrapped,
            "layers": config.num_hidden_layers}


def activation_bytes(arch: dict, cfg: TrainConfig, tokens_per_seq: int, device: str, precision: str,
                     checkpointing: bool, label_share: float = 1.0) -> dict:
    """Activation and logits memory of one micro-batch (batch_size x tokens_per_seq)."""
    h = arch["hidden_size"]
    i = arch.get("intermediate_size") or 4 * h
    layers = arch["num_hidden_layers"]
    heads = arch["num_attention_heads"]
    kv = arch.get("num_key_value_heads") or heads
    head_dim = arch.get("head_dim") or h // heads
    kv_dim = kv * head_dim
    vocab = arch["vocab_size"]
    b = DTYPE_BYTES[precision]
    tokens = cfg.batch_size * tokens_per_seq
    per_token_layer = (8 * h + 2 * kv_dim + 4 * i) * b
    if cfg.lora.dropout > 0 or b != 4:
        # Each LoRA module keeps its own fp32 copy of its input (peft casts the input to the adapter's
        # fp32 and applies that module's dropout), even where modules share the input (q, k, v).
        copies = {"q_proj": h, "k_proj": h, "v_proj": h, "o_proj": heads * head_dim, "gate_proj": h,
                  "up_proj": h, "down_proj": i}
        targets = copies if cfg.lora.target_modules == ["all-linear"] else cfg.lora.target_modules
        per_token_layer += sum(copies.get(t, 0) for t in targets) * 4
    attention = 0
    if not device.startswith(("cuda", "mps")):  # the score matrix is materialised on CPU
        attention = cfg.batch_size * heads * tokens_per_seq ** 2 * b * 2
    full_layer = tokens * per_token_layer + attention
    logits = int(tokens * (label_share if cfg.loss_logits_only else 1.0)) * vocab * (2 * b + 8)
    if checkpointing:
        acts = layers * tokens * h * b + full_layer
    else:
        acts = layers * full_layer
    return {"activations": acts, "logits": logits, "tokens": tokens}


def data_summary(path: str | None, cfg: TrainConfig, home: Home | None) -> dict | None:
    """Examples, tokens (by the base model's tokenizer when it is on this machine) and steps per epoch."""
    if not path or not Path(path).exists():
        return None
    from engine.training.encoding import ensure_chat_template
    from engine.training.train import read_chatml

    records = read_chatml(path)
    lengths, how = None, "estimated at 4 characters per token (tokenizer not on this machine)"
    try:
        tokenizer = _tokenizer(cfg.base_model, home)
        ensure_chat_template(tokenizer)
        texts = [tokenizer.apply_chat_template(m, tokenize=False) for m in records]
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        lengths, how = [len(x) for x in ids], "counted with the model's tokenizer"
    except Exception:
        lengths = [max(1, sum(len(m["content"]) + 16 for m in r) // 4) for r in records]
    clipped = [min(n, cfg.max_length) for n in lengths]
    chars = sum(len(m["content"]) for r in records for m in r)
    answer_chars = sum(len(m["content"]) for r in records for m in r if m["role"] == "assistant")
    world = 1
    per_step = cfg.batch_size * cfg.gradient_accumulation_steps * world
    steps_per_epoch = math.ceil(len(records) / per_step)
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    ordered = sorted(clipped)
    return {"path": str(path), "examples": len(records), "tokens": sum(clipped), "how": how,
            "mean_length": round(sum(clipped) / len(clipped), 1), "max_length": max(lengths),
            "p90_length": ordered[int(0.9 * (len(ordered) - 1))],
            "over_max_length": sum(1 for n in lengths if n > cfg.max_length),
            "assistant_share": round(answer_chars / max(1, chars), 4),
            "examples_per_step": per_step, "steps_per_epoch": steps_per_epoch, "total_steps": total_steps}


def _tokenizer(name: str, home: Home | None):
    from transformers import AutoTokenizer

    from engine.core.model_catalog import embedded_folder, resolve_model

    spec = resolve_model(name, home)
    if spec.kind == "run":
        spec = resolve_model(spec.base, home)
    if spec.kind == "embedded":
        return AutoTokenizer.from_pretrained(embedded_folder(spec.name))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a dry run never downloads
    return AutoTokenizer.from_pretrained(spec.source)


def estimate(cfg: TrainConfig, home: Home | str | None = None, data: str | None = None) -> dict:
    """Everything the dry run prints, as a dict (the Training page shows the same)."""
    home = resolve_home(home)
    arch, arch_source = arch_config(cfg, home)
    device, precision, precision_reason = resolve_precision(cfg)
    params = count_parameters(arch, cfg)
    w = DTYPE_BYTES[precision]
    summary = data_summary(data if data is not None else cfg.data, cfg, home)
    seq = cfg.max_length
    # With loss_logits_only the vocabulary projection covers the answer tokens only: their share of
    # the text when the data is known, else a quarter (reasoning answers are long).
    share = summary["assistant_share"] if summary else 0.25
    worst = {gc: activation_bytes(arch, cfg, seq, device, precision, gc, share) for gc in (False, True)}
    typical = None
    if summary and cfg.padding == "dynamic":
        typical = {gc: activation_bytes(arch, cfg, summary["p90_length"], device, precision, gc, share)
                   for gc in (False, True)}
    weights = params["base_params"] * w
    lora_states = params["trainable"] * 16  # fp32 weights, gradients, Adam m and v

    def total(acts: dict) -> int:
        return weights + lora_states + acts["activations"] + acts["logits"]

    memory = {
        "batch": cfg.batch_size, "length": seq, "weights": weights, "lora_states": lora_states,
        "activations": worst[False]["activations"], "activations_checkpointed": worst[True]["activations"],
        "logits": worst[False]["logits"],
        "total": total(worst[False]), "total_checkpointed": total(worst[True]),
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "peak": total(worst[cfg.gradient_checkpointing]),
    }
    if typical:
        memory["typical_length"] = summary["p90_length"]
        memory["typical_total"] = total(typical[cfg.gradient_checkpointing])
    adapter = params["trainable"] * 4
    checkpoint = adapter * 3 + TOKENIZER_BYTES  # adapter + Adam's two moments, all fp32
    export_bytes = params["base_params"] * 2  # the merged model in bf16/fp16
    disk = {"base_model": params["base_params"] * 2, "adapter": adapter, "checkpoint": checkpoint,
            "checkpoints_kept": max(1, cfg.save_total_limit), "checkpoints": checkpoint * (max(1, cfg.save_total_limit) + 1),
            "merged_export": export_bytes}
    disk["total"] = disk["base_model"] + disk["adapter"] + disk["checkpoints"] + disk["merged_export"]
    return {"base_model": cfg.base_model, "arch_source": arch_source, "device": device, "precision": precision,
            "precision_reason": precision_reason,
            "params": params, "lora": {"r": cfg.lora.r, "alpha": cfg.lora.alpha, "dropout": cfg.lora.dropout,
                                       "target_modules": list(cfg.lora.target_modules)},
            "memory": memory, "disk": disk, "data": summary}


def _size(n: float) -> str:
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    return f"{n / 2**20:.0f} MiB"


def format_estimate(e: dict, title: str | None = None) -> str:
    p, m, d = e["params"], e["memory"], e["disk"]
    lines = []
    if title:
        lines.append(f"Dry run: {title}")
    lines += [
        f"model        {e['base_model']} ({p['architecture']}, {p['layers']} layers) from {e['arch_source']}, "
        f"built on the meta device (no weights)",
        f"device       {e['device']}, weights {e['precision']}",
        f"precision    {e.get('precision_reason', e['precision'])}",
        f"parameters   {p['total']:,} total, {p['trainable']:,} trainable ({p['percent']:.2f}%)",
        f"LoRA         r={e['lora']['r']} alpha={e['lora']['alpha']} dropout={e['lora']['dropout']} on "
        f"{', '.join(p['lora_modules'])}",
        f"memory       estimate for batch {m['batch']} x {m['length']} tokens"
        + (" (gradient checkpointing on)" if m["gradient_checkpointing"] else ""),
        f"  weights ({e['precision']})            {_size(m['weights'])}",
        f"  LoRA + grads + Adam (fp32)  {_size(m['lora_states'])}",
        f"  activations                 {_size(m['activations'])} "
        f"(with gradient checkpointing: {_size(m['activations_checkpointed'])})",
        f"  logits and loss             {_size(m['logits'])}",
        f"  peak                        {_size(m['peak'])} "
        f"(without checkpointing {_size(m['total'])}, with {_size(m['total_checkpointed'])})",
    ]
    if m.get("typical_total"):
        lines.append(f"  typical batch               {_size(m['typical_total'])} at the data's 90th-percentile "
                     f"length ({m['typical_length']} tokens; dynamic padding)")
    lines += [
        "disk",
        f"  base model (16-bit)         {_size(d['base_model'])}",
        f"  adapter                     {_size(d['adapter'])}",
        f"  checkpoints                 {_size(d['checkpoints'])} ({_size(d['checkpoint'])} each, "
        f"{d['checkpoints_kept']} kept + 1 being written)",
        f"  merged export (16-bit)      {_size(d['merged_export'])}",
        f"  total                       {_size(d['total'])}",
    ]
    s = e.get("data")
    if s:
        lines += [
            f"data         {s['path']}",
            f"  {s['examples']:,} examples, {s['tokens']:,} tokens per epoch ({s['how']}); length mean "
            f"{s['mean_length']:.0f}, 90th percentile {s['p90_length']}, max {s['max_length']}"
            + (f"; {s['over_max_length']} over max_length" if s["over_max_length"] else ""),
            f"  {s['steps_per_epoch']:,} steps per epoch ({s['examples_per_step']} examples a step), "
            f"{s['total_steps']:,} steps in all",
        ]
    else:
        lines.append("data         (no data file found: tokens and steps per epoch need --data FILE)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.training.dryrun --config FILE [--data FILE] [--json] [key=value ...]`` (the page runs this
    in a subprocess so the UI process never imports torch)."""
    parser = argparse.ArgumentParser(prog="python -m engine.training.dryrun")
    parser.add_argument("--config")
    parser.add_argument("--data")
    parser.add_argument("--home")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        cfg = load_config(TrainConfig, args.config, args.overrides)
        result = estimate(cfg, args.home, args.data)
    except Exception as exc:  # the caller shows the message
        if args.json:
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
            return 2
        raise
    print(json.dumps(result) if args.json else format_estimate(result, args.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
