"""The model registry and loader: names, availability, offline errors, path rules, the GGUF path."""

import os

import pytest

from engine.core import model_catalog
from engine.core.model_catalog import ModelNotAvailable, PathNotAllowed


def test_registry_names_resolve(home):
    spec = model_catalog.resolve_model("smollm2-135m-instruct", home)
    assert spec.kind == "embedded" and spec.source.endswith(".gguf")
    assert model_catalog.resolve_model("Qwen2.5-7B-Instruct", home).source == "Qwen/Qwen2.5-7B-Instruct"
    assert model_catalog.resolve_model("mistral-7b-v0.1", home).arch_config.endswith("mistral-7b-v0.1.json")
    assert model_catalog.resolve_model("someorg/some-model", home).kind == "hub"


def test_list_models_reports_availability(home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(home.data / "empty-hf-cache"))
    rows = {r["name"]: r for r in model_catalog.list_models(home)}
    assert rows["smollm2-135m-instruct"]["available"] is True
    assert rows["qwen2.5-7b-instruct"]["available"] is False
    assert "not in the HF cache" in rows["qwen2.5-7b-instruct"]["detail"]


def test_missing_model_offline_gives_one_clear_error(home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(home.data / "empty-hf-cache"))
    with pytest.raises(ModelNotAvailable) as err:
        model_catalog.load_model("qwen2.5-7b-instruct", home=home)
    message = str(err.value)
    assert "Qwen/Qwen2.5-7B-Instruct" in message and "huggingface-cli download" in message


def test_unknown_run_is_a_clear_error(home):
    with pytest.raises(ModelNotAvailable, match="trained run 'nope' not found"):
        model_catalog.resolve_model("run:nope", home)


def test_paths_outside_allowed_folders_are_refused(home, tmp_path, monkeypatch):
    monkeypatch.delenv("CCR_ALLOWED_PATHS", raising=False)
    with pytest.raises(PathNotAllowed, match="outside the allowed folders"):
        model_catalog.resolve_model("/etc", home)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(PathNotAllowed):
        model_catalog.check_path_allowed(outside, home)
    # A symlink inside the home that points outside is refused too (the target counts).
    link = home.models / "sneaky"
    link.symlink_to(outside)
    with pytest.raises(PathNotAllowed):
        model_catalog.check_path_allowed(link, home)
    inside = home.models / "my-model"
    inside.mkdir()
    assert model_catalog.check_path_allowed(inside, home) == inside.resolve()
    monkeypatch.setenv("CCR_ALLOWED_PATHS", str(outside))
    assert model_catalog.check_path_allowed(outside, home) == outside.resolve()


def test_device_and_dtype_rules():
    import torch

    assert model_catalog.pick_dtype("cpu") == torch.float32
    assert model_catalog.pick_dtype("mps") == torch.float16
    assert model_catalog.pick_dtype("cpu", "bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be one of"):
        model_catalog.pick_dtype("cpu", "int3")
    if not torch.cuda.is_available():
        assert model_catalog.pick_device() in ("cpu", "mps")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            model_catalog.pick_device("cuda")


@pytest.mark.slow
def test_embedded_gguf_converts_once_and_generates(tmp_path, monkeypatch):
    """The real GGUF path: a fresh cache converts the embedded file, later loads reuse it."""
    monkeypatch.setenv("CCR_CACHE", str(tmp_path / "cache"))
    folder = model_catalog.embedded_folder()
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    assert not [p for p in folder.parent.iterdir() if ".tmp" in p.name]
    assert model_catalog.embedded_folder() == folder
    model, tokenizer, info = model_catalog.load_model("smollm2-135m-instruct")
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    from engine.core.generation import LocalGenerator

    gen = LocalGenerator(loaded=(model, tokenizer, info))
    out = gen.generate([[{"role": "user", "content": "What is 2+2?"}]], max_new_tokens=12)[0]
    assert out.completion_tokens > 0 and out.text.strip()


# ---------------------------------------------------------------------------------------------
# Precision chosen by the hardware (issue 13): the probe is faked by monkeypatching one function
# ---------------------------------------------------------------------------------------------

AVX2_ONLY = {"cpu_name": "AMD EPYC", "avx2": True, "avx512_bf16": False, "amx_bf16": False, "source": "fake"}
AMX = {"cpu_name": "Intel Xeon Sapphire Rapids", "avx2": True, "avx512_bf16": True, "amx_bf16": True, "source": "fake"}
AVX512_BF16 = {"cpu_name": "AMD EPYC 9004", "avx2": True, "avx512_bf16": True, "amx_bf16": False, "source": "fake"}


def fake_cpu(monkeypatch, caps: dict) -> None:
    monkeypatch.setattr(model_catalog, "cpu_capabilities", lambda: dict(caps))


def test_auto_precision_follows_the_cpu(monkeypatch):
    import torch

    fake_cpu(monkeypatch, AVX2_ONLY)
    precision, reason = model_catalog.precision_choice("cpu")
    assert precision == "fp32"
    assert reason == ("fp32: CPU AMD EPYC has AVX2 but no AVX512-BF16/AMX-BF16: bf16 matmuls would be ~35x slower")
    assert model_catalog.pick_dtype("cpu") == model_catalog.pick_dtype("cpu", "auto") == torch.float32

    fake_cpu(monkeypatch, AMX)
    precision, reason = model_catalog.precision_choice("cpu", "auto")
    assert precision == "bf16" and "AMX-BF16" in reason and "Sapphire Rapids" in reason
    assert model_catalog.pick_dtype("cpu") == torch.bfloat16

    fake_cpu(monkeypatch, AVX512_BF16)
    precision, reason = model_catalog.precision_choice("cpu", None)
    assert precision == "bf16" and "AVX512-BF16" in reason and "AMX" not in reason

    fake_cpu(monkeypatch, {"cpu_name": "?", "avx2": False, "avx512_bf16": False, "amx_bf16": False,
                           "source": "unknown (no torch probe, no /proc/cpuinfo)"})
    assert model_catalog.precision_choice("cpu") == ("fp32", "fp32: the CPU's bf16 support is unknown (unknown (no torch "
                                                       "probe, no /proc/cpuinfo))")


def test_a_configured_precision_wins_over_the_probe(monkeypatch):
    import torch

    fake_cpu(monkeypatch, AMX)
    assert model_catalog.precision_choice("cpu", "fp32") == ("fp32", "fp32 as configured")
    assert model_catalog.pick_dtype("cpu", "float32") == torch.float32  # torch's names still work
    fake_cpu(monkeypatch, AVX2_ONLY)
    assert model_catalog.precision_choice("cpu", "bf16") == ("bf16", "bf16 as configured")
    with pytest.raises(ValueError, match="dtype must be one of auto, fp32, bf16, fp16"):
        model_catalog.precision_choice("cpu", "int8")


def test_gpu_precision_is_unchanged_by_the_cpu_probe(monkeypatch):
    import torch

    fake_cpu(monkeypatch, AVX2_ONLY)
    assert model_catalog.precision_choice("mps") == ("fp16", "fp16 on Apple MPS")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake H100")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert model_catalog.precision_choice("cuda") == ("bf16", "bf16 on CUDA (Fake H100 supports it)")
    assert model_catalog.precision_choice("cuda:1")[0] == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert model_catalog.precision_choice("cuda") == ("fp16", "fp16 on CUDA (Fake H100 has no bf16)")
    assert model_catalog.precision_choice("cuda", "fp32") == ("fp32", "fp32 as configured")


def test_the_real_probe_is_cached_and_matches_proc_cpuinfo(monkeypatch):
    import torch

    monkeypatch.setattr(model_catalog, "_CPU_CAPS", None)
    caps = model_catalog.cpu_capabilities()
    assert set(caps) == {"cpu_name", "avx2", "avx512_bf16", "amx_bf16", "source"}
    assert caps["source"] == "torch.cpu.get_capabilities()"
    real_probe, calls = model_catalog._probe_cpu, []
    monkeypatch.setattr(model_catalog, "_probe_cpu", lambda: calls.append(1) or {})
    assert model_catalog.cpu_capabilities() == caps and calls == []  # cached: probed once per process
    if os.path.exists("/proc/cpuinfo"):
        # the fallback (a torch without get_capabilities) reads the same flags from /proc/cpuinfo
        monkeypatch.delattr(torch.cpu, "get_capabilities")
        fallback = real_probe()
        assert fallback["source"] == "/proc/cpuinfo"
        flags = ("avx2", "avx512_bf16", "amx_bf16")
        assert {k: fallback[k] for k in flags} == {k: caps[k] for k in flags}


def test_the_dry_run_and_the_api_show_the_choice_and_its_reason(home, capsys, monkeypatch):
    from engine import api, cli
    from engine.training import probes

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_cpu(monkeypatch, AMX)
    args = ["train", "--home", str(home.data), "--dry-run", "device=cpu"]  # the CPU preset: precision auto
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "weights bf16" in out and "precision    bf16: CPU Intel Xeon Sapphire Rapids has AMX-BF16" in out
    assert cli.main(args + ["precision=fp32"]) == 0  # the command-line override wins
    out = capsys.readouterr().out
    assert "weights fp32" in out and "precision    fp32 as configured" in out
    fake_cpu(monkeypatch, AVX2_ONLY)
    assert cli.main(args) == 0
    assert "precision    fp32: CPU AMD EPYC has AVX2 but no AVX512-BF16/AMX-BF16" in capsys.readouterr().out
    # the pages' function: torch is loaded in this process, so it answers directly (the UI process
    # runs the same function in a subprocess)
    monkeypatch.setattr(probes, "_PRECISIONS", {})
    choice = api.precision_choice("cpu", "auto")
    assert choice["precision"] == "fp32" and choice["text"].startswith("Weights' precision on cpu (configured): fp32")
    assert api.precision_choice("cpu", "bfloat16")["precision"] == "bf16"
    assert "error" in api.precision_choice("cpu", "int3")


def test_the_api_probe_runs_in_a_subprocess_without_torch():
    """What the Train and Generate pages call, in a process that has not imported torch."""
    import subprocess
    import sys

    code = ("import json, sys; from engine import api; r = api.precision_choice('cpu', 'auto'); "
            "print(json.dumps([r, 'torch' in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=str(model_catalog.REPO))
    import json

    choice, torch_loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert torch_loaded is False
    assert choice["device"] == "cpu" and choice["precision"] in ("fp32", "bf16")
    assert choice["precision"] == ("bf16" if choice["cpu"]["amx_bf16"] or choice["cpu"]["avx512_bf16"] else "fp32")
    assert choice["reason"] in choice["text"]
