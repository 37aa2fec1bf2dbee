"""The model registry and loader: names, availability, offline errors, path rules, the GGUF path."""

import os

import pytest

from engine import models
from engine.models import ModelNotAvailable, PathNotAllowed


def test_registry_names_resolve(home):
    spec = models.resolve_model("smollm2-135m-instruct", home)
    assert spec.kind == "embedded" and spec.source.endswith(".gguf")
    assert models.resolve_model("Qwen2.5-7B-Instruct", home).source == "Qwen/Qwen2.5-7B-Instruct"
    assert models.resolve_model("mistral-7b-v0.1", home).arch_config.endswith("mistral-7b-v0.1.json")
    assert models.resolve_model("someorg/some-model", home).kind == "hub"


def test_list_models_reports_availability(home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(home.data / "empty-hf-cache"))
    rows = {r["name"]: r for r in models.list_models(home)}
    assert rows["smollm2-135m-instruct"]["available"] is True
    assert rows["qwen2.5-7b-instruct"]["available"] is False
    assert "not in the HF cache" in rows["qwen2.5-7b-instruct"]["detail"]


def test_missing_model_offline_gives_one_clear_error(home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(home.data / "empty-hf-cache"))
    with pytest.raises(ModelNotAvailable) as err:
        models.load_model("qwen2.5-7b-instruct", home=home)
    message = str(err.value)
    assert "Qwen/Qwen2.5-7B-Instruct" in message and "huggingface-cli download" in message


def test_unknown_run_is_a_clear_error(home):
    with pytest.raises(ModelNotAvailable, match="trained run 'nope' not found"):
        models.resolve_model("run:nope", home)


def test_paths_outside_allowed_folders_are_refused(home, tmp_path, monkeypatch):
    monkeypatch.delenv("CCR_ALLOWED_PATHS", raising=False)
    with pytest.raises(PathNotAllowed, match="outside the allowed folders"):
        models.resolve_model("/etc", home)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(PathNotAllowed):
        models.check_path_allowed(outside, home)
    # A symlink inside the home that points outside is refused too (the target counts).
    link = home.models / "sneaky"
    link.symlink_to(outside)
    with pytest.raises(PathNotAllowed):
        models.check_path_allowed(link, home)
    inside = home.models / "my-model"
    inside.mkdir()
    assert models.check_path_allowed(inside, home) == inside.resolve()
    monkeypatch.setenv("CCR_ALLOWED_PATHS", str(outside))
    assert models.check_path_allowed(outside, home) == outside.resolve()


def test_device_and_dtype_rules():
    import torch

    assert models.pick_dtype("cpu") == torch.float32
    assert models.pick_dtype("mps") == torch.float16
    assert models.pick_dtype("cpu", "bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be one of"):
        models.pick_dtype("cpu", "int3")
    if not torch.cuda.is_available():
        assert models.pick_device() in ("cpu", "mps")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            models.pick_device("cuda")


@pytest.mark.slow
def test_embedded_gguf_converts_once_and_generates(tmp_path, monkeypatch):
    """The real GGUF path: a fresh cache converts the embedded file, later loads reuse it."""
    monkeypatch.setenv("CCR_CACHE", str(tmp_path / "cache"))
    folder = models.embedded_folder()
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    assert not [p for p in folder.parent.iterdir() if ".tmp" in p.name]
    assert models.embedded_folder() == folder
    model, tokenizer, info = models.load_model("smollm2-135m-instruct")
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    from engine.generation import LocalGenerator

    gen = LocalGenerator(loaded=(model, tokenizer, info))
    out = gen.generate([[{"role": "user", "content": "What is 2+2?"}]], max_new_tokens=12)[0]
    assert out.completion_tokens > 0 and out.text.strip()
