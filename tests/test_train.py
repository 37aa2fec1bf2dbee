"""Phase 2 training on a tiny Llama built from a config (hidden 32, 2 layers) with the embedded
model's tokenizer: labels, LoRA updates, checkpoints, kill -9 and resume, stop, metrics, run
folder, export, presets and the dry run."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core import store
from engine.core.config import TrainConfig, load_config
from engine.core.paths import CONFIGS

sys.path.insert(0, str(Path(__file__).parent))
from helpers import wait_for  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY_OVERRIDES = ["device=cpu", "precision=fp32", "batch_size=2", "gradient_accumulation_steps=1",
                  "learning_rate=5e-3", "warmup_ratio=0", "logging_steps=1", "eval_steps=4", "save_steps=2",
                  "save_total_limit=2", "max_length=256", "num_threads=1", "lora.r=4", "lora.alpha=8"]


def _example(rng: random.Random, i: int) -> dict:
    lines = ["Agent: Thanks for calling, how can I help?", "Customer: My bill is wrong again.",
             "Agent: Let me check that for you.", "Customer: Thank you.", "Agent: I removed the charge.",
             "Customer: Great, thanks."]
    transcript = "\n".join(rng.sample(lines, rng.randint(2, len(lines))))
    score = rng.randint(1, 5)
    return {"messages": [
        {"role": "system", "content": "You are a contact-center quality analyst."},
        {"role": "user", "content": f"Call transcript:\n\n{transcript}\n\nTask: Predict CSAT. End with `CSAT: <1-5>/5`."},
        {"role": "assistant", "content": f"The customer {'was pleased' if score > 3 else 'was upset'}.\nCSAT: {score}/5"},
    ], "meta": {"id": f"t{i}", "task": "csat"}}


def write_chatml(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(json.dumps(_example(rng, i)) + "\n" for i in range(n)))
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer Llama (hidden 32) with SmolLM2's tokenizer and chat template, saved as a model folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from engine.core.model_catalog import embedded_folder

    folder = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    tokenizer = AutoTokenizer.from_pretrained(embedded_folder())
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_home(home, tiny_model, monkeypatch):
    monkeypatch.setenv("CCR_ALLOWED_PATHS", str(tiny_model.parent))
    write_chatml(home.data / "train_chat.jsonl", 9, seed=1)
    write_chatml(home.data / "validation_chat.jsonl", 4, seed=2)
    return home


def tiny_config(home, tiny_model, *extra) -> TrainConfig:
    from engine.training import runs

    cfg = load_config(TrainConfig, None, [f"base_model={tiny_model}", f"data={home.data / 'train_chat.jsonl'}",
                                          *TINY_OVERRIDES, *extra])
    return runs.resolve_data(cfg, home)


# ---------------------------------------------------------------------------------------------
# Data: labels only on the assistant turns
# ---------------------------------------------------------------------------------------------


def test_labels_mask_everything_but_the_assistant_turns(tiny_model):
    from transformers import AutoTokenizer

    from engine.training.encoding import encode_example

    tok = AutoTokenizer.from_pretrained(tiny_model)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Rate the call."},
                {"role": "assistant", "content": "Fine call.\nCSAT: 4/5"},
                {"role": "user", "content": "And churn?"}, {"role": "assistant", "content": "Churn risk: low"}]
    ex = encode_example(tok, messages, 512)
    ids, labels = ex["input_ids"], ex["labels"]
    assert len(ids) == len(labels)
    learned = [t for t, lab in zip(ids, labels) if lab != -100]
    assert all(lab in (-100, t) for t, lab in zip(ids, labels))
    # exactly the two answers, each with its end token (which is also the pad token), nothing else
    assert tok.decode(learned) == "Fine call.\nCSAT: 4/5<|im_end|>Churn risk: low<|im_end|>"
    assert tok.pad_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    text = tok.decode([t for t, lab in zip(ids, labels) if lab == -100])
    assert "Rate the call." in text and "Be brief." in text and "Fine call" not in text
    # an answer cut off entirely by max_length leaves nothing to learn: the example is dropped
    assert encode_example(tok, messages[:3], 10) is None
    # an over-long prompt is cut in its middle, so the whole answer (and its label) survives
    long = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Call transcript:\n" + "Customer: my bill is wrong. " * 60 + "\nTask: rate it."},
            {"role": "assistant", "content": "Because the bill was wrong the customer was upset.\nCSAT: 2/5"}]
    full = encode_example(tok, long, 4096)
    cut = encode_example(tok, long, 120)
    assert len(full["input_ids"]) > 120 and len(cut["input_ids"]) == 120
    assert tok.decode([t for t, lab in zip(cut["input_ids"], cut["labels"]) if lab != -100]).endswith(
        "CSAT: 2/5<|im_end|>")
    kept = tok.decode(cut["input_ids"])
    assert "Be brief." in kept and "Task: rate it." in kept


def test_collate_pads_to_the_batch_and_keeps_logits_only_at_labels():
    from engine.training.encoding import collate

    feats = [{"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]}, {"input_ids": [5, 6], "labels": [-100, 6]}]
    batch = collate(feats, pad_id=2, logits_only=True)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [5, 6, 2, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 7, 8], [-100, 6, -100, -100]]
    # position t is kept when token t+1 is a label
    assert batch["logits_to_keep"].tolist() == [[False, True, True, False], [True, False, False, False]]
    assert collate(feats, pad_id=2, pad_to=8)["input_ids"].shape == (2, 8)


def test_epoch_sampler_is_a_function_of_seed_and_epoch_and_groups_lengths():
    from engine.training.encoding import EpochSampler

    rng = random.Random(1)
    lengths = [rng.randint(10, 500) for _ in range(200)]
    a, b = EpochSampler(lengths, seed=3, group_size=16), EpochSampler(lengths, seed=3, group_size=16)
    assert a.order(0) == b.order(0) and a.order(1) != a.order(0)
    assert sorted(a.order(1)) == list(range(200))
    b.set_epoch(1)
    assert list(iter(b)) == a.order(1)
    # within a mega-batch of 16 the lengths are sorted, so batches of 2 pad little
    order = a.order(0)
    pad = sum(abs(lengths[order[i]] - lengths[order[i + 1]]) for i in range(0, 200, 2))
    shuffled = list(range(200))
    random.Random(0).shuffle(shuffled)
    pad_random = sum(abs(lengths[shuffled[i]] - lengths[shuffled[i + 1]]) for i in range(0, 200, 2))
    assert pad < pad_random / 3


def test_bad_training_data_names_file_and_line(tmp_path):
    from engine.training.runs import DataError
    from engine.training.train import read_chatml

    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(_example(random.Random(0), 0)) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: invalid JSON"):
        read_chatml(path)
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: no assistant turn"):
        read_chatml(path)


# ---------------------------------------------------------------------------------------------
# A run through the CLI: adapter, manifest, config, metrics, LoRA-only updates, load as run:<name>
# ---------------------------------------------------------------------------------------------


def test_cli_run_writes_adapter_manifest_metrics_and_changes_only_lora(tiny_home, tiny_model, capsys):
    import torch
    from safetensors.torch import load_file

    from engine import cli

    from engine.training import train
    from engine.core.model_catalog import load_model

    rc = cli.main(["train", "--home", str(tiny_home.data), "--config", str(CONFIGS / "train" / "smollm2_cpu.yaml"),
                   "--data", str(tiny_home.data / "train_chat.jsonl"), "--run", "cli-run",
                   f"base_model={tiny_model}", *TINY_OVERRIDES, "max_steps=4"])
    out = capsys.readouterr().out
    assert rc == 0, out
    folder = tiny_home.models / "cli-run"
    for name in ("adapter_model.safetensors", "adapter_config.json", "config.yaml", "manifest.json"):
        assert (folder / name).is_file(), name
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["base_model"] == str(tiny_model) and manifest["status"] == "succeeded"
    train_info = manifest["data"]["train"]
    assert train_info["examples"] == 9 and len(train_info["sha256"]) == 64
    assert train_info["path"].endswith("train_chat.jsonl")
    assert manifest["data"]["eval"]["examples"] == 4  # validation_chat.jsonl found beside train_chat.jsonl
    assert manifest["started_at"] <= manifest["finished_at"]
    assert manifest["final_metrics"]["step"] == 4 and manifest["final_metrics"]["eval_loss"] > 0
    assert "code_version" in manifest
    resolved = load_config(TrainConfig, folder / "config.yaml")
    assert resolved.max_steps == 4 and resolved.eval_data.endswith("validation_chat.jsonl")

    db = store.connect(tiny_home)
    rows = db.execute("SELECT step, kind, loss, learning_rate, grad_norm, tokens_per_s, memory_mb, epoch "
                      "FROM train_metrics WHERE run_name = 'cli-run' ORDER BY step, kind").fetchall()
    train_rows = [r for r in rows if r[1] == "train"]
    assert [r[0] for r in train_rows] == [1, 2, 3, 4]
    assert all(r[2] > 0 and r[3] is not None and r[4] is not None and r[6] > 0 and r[7] > 0 for r in train_rows)
    assert any(r[5] for r in train_rows)  # tokens/s once a step has been timed
    assert [r[0] for r in rows if r[1] == "eval"] == [4]
    run_row = db.execute("SELECT status, job_id FROM train_runs WHERE name = 'cli-run'").fetchone()
    assert run_row[0] == "succeeded"
    assert store.get_job(db, run_row[1])["status"] == "succeeded"

    # only LoRA weights moved: the adapter's B matrices (zero at init) are not zero, the base is untouched
    adapter = load_file(folder / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)
    base = load_file(tiny_model / "model.safetensors")
    model, _, info = load_model("run:cli-run", home=tiny_home, device="cpu")
    assert info["base"] == str(tiny_model)
    state = model.get_base_model().state_dict()
    for key, value in base.items():
        tuned = state.get(key) if key in state else state[key.replace(".weight", ".base_layer.weight")]
        assert torch.equal(tuned, value), key
    # the first checkpoint's adapter differs from the final one: training moved the LoRA weights
    first = load_file(folder / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors")
    assert any(not torch.equal(first[k], adapter[k]) for k in adapter)


# ---------------------------------------------------------------------------------------------
# Checkpoints: kill -9 mid-run, a truncated newest checkpoint, stop saves first
# ---------------------------------------------------------------------------------------------

KILLER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from transformers import TrainerCallback
from engine.training import train
from engine.core.config import TrainConfig, load_config

class DieAt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)

cfg = load_config(TrainConfig, None, {overrides!r})
train.train({home!r}, {run!r}, cfg, callbacks=(DieAt(),))
"""


def _losses(db, run: str) -> dict:
    return {(step, kind): loss for step, kind, loss in db.execute(
        "SELECT step, kind, loss FROM train_metrics WHERE run_name = ?", [run])}


def test_killed_run_resumes_from_last_complete_checkpoint_with_the_same_losses(tiny_home, tiny_model):
    from engine.training import runs, train

    overrides = [f"base_model={tiny_model}", *TINY_OVERRIDES, "max_steps=8",
                 f"data={tiny_home.data / 'train_chat.jsonl'}", f"eval_data={tiny_home.data / 'validation_chat.jsonl'}"]
    cfg = load_config(TrainConfig, None, overrides)
    # 9 examples, batch 2: 5 steps an epoch, so checkpoint-6 lies inside the second epoch
    reference = train.train(tiny_home, "straight", cfg, log=lambda m: None)
    assert reference["step"] == 8

    script = KILLER.format(repo=str(REPO), kill_at=7, overrides=overrides, home=str(tiny_home.data), run="killed")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, CCR_HOME=str(tiny_home.data)))
    assert proc.returncode == -9, proc.stderr[-2000:]
    folder = tiny_home.models / "killed"
    assert [c["step"] for c in runs.list_checkpoints(folder) if c["complete"]] == [4, 6]
    # a checkpoint cut short by the kill: files but no completion marker
    torn = folder / "checkpoints" / "checkpoint-8"
    torn.mkdir()
    (torn / "adapter_model.safetensors").write_bytes(b"\0" * 100)
    assert runs.last_complete_checkpoint(folder)["step"] == 6

    logs: list[str] = []
    resumed = train.train(tiny_home, "killed", cfg, resume=True, log=logs.append)
    assert any("skipping incomplete checkpoint checkpoint-8" in m for m in logs)
    assert any("resuming from checkpoint-6" in m for m in logs)
    assert resumed["step"] == reference["step"] == 8
    db = store.connect(tiny_home)
    want, got = _losses(db, "straight"), _losses(db, "killed")
    assert set(want) == set(got) and len(want) >= 10
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-4), key
    manifest = runs.read_manifest(folder)
    assert manifest["status"] == "succeeded" and manifest["resumes"][0]["from"] == "checkpoint-6"


def test_checkpoint_helpers_skip_and_rotate(tmp_path):
    from engine.training import runs

    folder = tmp_path / "run"
    for step in (2, 4, 6, 8):
        ck = folder / "checkpoints" / f"checkpoint-{step}"
        ck.mkdir(parents=True)
        (ck / "adapter_model.safetensors").write_bytes(b"x" * step)
        if step != 8:
            runs.mark_complete(ck, {"step": step})
    assert [c["complete"] for c in runs.list_checkpoints(folder)] == [True, True, True, False]
    assert runs.last_complete_checkpoint(folder)["step"] == 6
    runs.rotate_checkpoints(folder, keep=2)
    assert [c["step"] for c in runs.list_checkpoints(folder)] == [4, 6, 8]
    runs.remove_incomplete_checkpoints(folder)
    assert [c["step"] for c in runs.list_checkpoints(folder)] == [4, 6]


@pytest.mark.parametrize("how,status", [("pause", "paused"), ("local", "interrupted")])
def test_stop_saves_a_checkpoint_and_resume_finishes(tiny_home, tiny_model, how, status):
    """A pause from the page, or a signal to the job's process ("local"), saves a checkpoint and
    leaves the run paused or interrupted (never "succeeded" without an adapter); resume finishes it."""
    from engine.training import runs, train

    cfg = tiny_config(tiny_home, tiny_model, "max_steps=6", "save_steps=100")
    calls = {"n": 0}

    def stop_after_three():  # asked once before training starts, then at the end of every step
        calls["n"] += 1
        return how if calls["n"] >= 4 else None

    result = train.train(tiny_home, "stopped", cfg, should_stop=stop_after_three, log=lambda m: None)
    assert result["stopped"] == how and result["step"] == 3 and result["status"] == status
    folder = tiny_home.models / "stopped"
    assert runs.last_complete_checkpoint(folder)["step"] == 3  # saved although save_steps is 100
    assert not (folder / "adapter_model.safetensors").exists()
    assert runs.read_manifest(folder)["status"] == status
    assert store.connect(tiny_home).execute("SELECT status FROM train_runs WHERE name = 'stopped'").fetchone()[0] == status
    result = train.train(tiny_home, "stopped", cfg, resume=True, log=lambda m: None)
    assert result["status"] == "succeeded" and result["step"] == 6
    assert (folder / "adapter_model.safetensors").exists()


def test_job_pause_and_resume_through_the_job_engine(tiny_home, tiny_model, monkeypatch, tmp_path):
    """A pause asked for on the job row (the page's Stop) stops the run after writing a checkpoint;
    requeueing the same job (the Jobs page's Resume) continues the run from it. The pause is asked
    while the run is held at the end of step 3 (the ``train.step`` failpoint), so it lands there
    on a machine of any speed."""
    import threading

    from engine.core import jobs

    from engine.training import runs

    launch = runs.prepare_launch(tiny_home, config_path=str(CONFIGS / "train" / "smollm2_cpu.yaml"),
                                 overrides=[f"base_model={tiny_model}", *TINY_OVERRIDES, "max_steps=40",
                                            "save_steps=1000", "eval_steps=0"],
                                 data=str(tiny_home.data / "train_chat.jsonl"), run="jobrun")
    db = store.connect(tiny_home)
    job_id = store.enqueue_job(db, "train", launch, title="train jobrun")
    job = store.claim_job(db, "test", job_id=job_id)
    monkeypatch.setenv("CCR_FAILPOINTS", "train.step=3")
    monkeypatch.setenv("CCR_FAILPOINT_DIR", str(tmp_path))
    held = tmp_path / "train.step-3.held"

    def pause_at_step_three() -> None:
        conn = store.connect(tiny_home)
        wait_for(held.exists, timeout=300, interval=0.01, what="the run to reach step 3")
        store.request_pause(conn, job_id)
        held.unlink()

    pauser = threading.Thread(target=pause_at_step_three)
    pauser.start()
    assert jobs.execute(tiny_home, job) == "paused"
    pauser.join()
    monkeypatch.delenv("CCR_FAILPOINTS")
    saved = runs.last_complete_checkpoint(tiny_home.models / "jobrun")
    assert saved is not None and saved["step"] == 3  # the stop wrote a checkpoint (save_steps is 1000)
    assert store.get_job(db, job_id)["status"] == "paused"
    assert store.requeue_job(db, job_id)
    job = store.claim_job(db, "test", job_id=job_id)
    assert jobs.execute(tiny_home, job) == "succeeded"
    result = store.get_job(db, job_id)["result"]
    assert result["step"] == 40 and result["status"] == "succeeded"
    steps = [r[0] for r in db.execute("SELECT step FROM train_metrics WHERE run_name = 'jobrun' AND kind = 'train' "
                                      "ORDER BY step")]
    assert steps == list(range(1, 41))  # each step once: the resume rewrote nothing twice and skipped nothing
    with pytest.raises(runs.RunError, match="already exists"):
        runs.prepare_launch(tiny_home, data=str(tiny_home.data / "train_chat.jsonl"), run="jobrun")


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


def test_export_adapter_and_merged_model(tiny_home, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM

    from engine import cli

    from engine.training import train
    from engine.core.model_catalog import load_model

    train.train(tiny_home, "exp", tiny_config(tiny_home, tiny_model, "max_steps=2", "eval_steps=0"), log=lambda m: None)
    assert cli.main(["export", "model", "--home", str(tiny_home.data), "--run", "exp"]) == 0
    adapter_dir = tiny_home.models / "exports" / "exp-adapter"
    assert {"adapter_model.safetensors", "adapter_config.json", "manifest.json", "ccr_export.json"} <= {
        p.name for p in adapter_dir.iterdir()}
    out = tiny_home.data / "merged"
    assert cli.main(["export", "model", "--home", str(tiny_home.data), "--run", "exp", "--merge", "--out", str(out)]) == 0
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".merged")]  # no temp folder left
    merged = AutoModelForCausalLM.from_pretrained(out)
    peft_model, tokenizer, _ = load_model("run:exp", home=tiny_home, device="cpu")
    ids = tokenizer("Agent: hello there", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, peft_model(input_ids=ids).logits, atol=1e-4)
    assert cli.main(["export", "model", "--home", str(tiny_home.data), "--run", "nope"]) == 2


# ---------------------------------------------------------------------------------------------
# Presets and the dry run
# ---------------------------------------------------------------------------------------------


def train_presets() -> list[Path]:
    import yaml

    return [p for p in sorted(CONFIGS.glob("*/*.yaml")) if "lora" in (yaml.safe_load(p.read_text()) or {})]


def test_every_training_preset_loads_with_its_launch_command():
    names = {p.name for p in train_presets()}
    assert {"mistral_7b_mac.yaml", "qwen2.5_7b.yaml", "smollm2_cpu.yaml"} <= names
    assert names & {"mistral_7b_cuda.yaml", "qwen2.5_7b_cuda.yaml"}
    for path in train_presets():
        cfg = load_config(TrainConfig, path)
        assert path.read_text().startswith("# Launch: ccr train --config configs/train/" + path.name), path.name
        assert cfg.lora.r == 16
    plan = load_config(TrainConfig, CONFIGS / "train" / "mistral_7b_mac.yaml")
    assert (plan.base_model, plan.device, plan.precision, plan.batch_size, plan.gradient_accumulation_steps,
            plan.learning_rate, plan.epochs, plan.max_length) == ("mistral-7b-v0.1", "mps", "fp16", 2, 8, 2e-5, 3, 2048)
    assert plan.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    cuda = load_config(TrainConfig, CONFIGS / "train" / "mistral_7b_cuda.yaml")
    assert cuda.device == "cuda" and cuda.precision == "bf16"


def test_dry_run_of_the_mistral_preset_prints_the_plans_share(home, capsys, monkeypatch):
    from engine import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = write_chatml(home.data / "train_reasoning.jsonl", 40)
    assert cli.main(["train", "--home", str(home.data), "--config", str(CONFIGS / "train" / "mistral_7b_mac.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "(0.58%)" in out
    assert "41,943,040 trainable" in out and "meta device" in out
    assert "gradient checkpointing" in out and "disk" in out and "checkpoints" in out
    assert f"{data}" in out and "40 examples" in out and "steps per epoch" in out
    # gradient checkpointing must shrink the activation estimate
    from engine.training import dryrun

    e = dryrun.estimate(load_config(TrainConfig, CONFIGS / "train" / "mistral_7b_mac.yaml"), home, str(data))
    assert e["memory"]["activations_checkpointed"] < e["memory"]["activations"] / 5
    assert e["data"]["steps_per_epoch"] == 3  # 40 examples / (2 x 8)


def test_an_empty_validation_export_beside_the_training_file_is_skipped(tmp_path):
    """Phase 1's export writes validation_reasoning.jsonl even with no validation chains; the
    automatic pick must then train without evaluation instead of failing on an empty file."""
    from engine.training.runs import sibling_validation

    train_file = tmp_path / "train_reasoning.jsonl"
    train_file.write_text('{"messages": []}\n')
    assert sibling_validation(train_file) is None  # no file
    (tmp_path / "validation_reasoning.jsonl").write_text("\n  \n")
    assert sibling_validation(train_file) is None  # only blank lines
    (tmp_path / "validation_reasoning.jsonl").write_text('{"messages": []}\n')
    assert sibling_validation(train_file) == tmp_path / "validation_reasoning.jsonl"
    assert sibling_validation(tmp_path / "calls.jsonl") is None  # no "train" in the name
