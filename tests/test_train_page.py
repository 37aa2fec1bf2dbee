"""The Training page (AppTest): the dry-run estimate before launch, a run's live metrics and
loss curve, its checkpoints, the resume button, launching a run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.core import store


def _fake_run(home, name: str, status: str, steps: int, job_status: str) -> None:
    """A run as training leaves it: folder, manifest, checkpoints with markers, metrics rows, job row."""
    from engine.training import runs

    folder = home.models / name
    (folder / "checkpoints").mkdir(parents=True)
    for step in (2, 4):
        ck = folder / "checkpoints" / f"checkpoint-{step}"
        ck.mkdir()
        (ck / "adapter_model.safetensors").write_bytes(b"\0" * 64)
        runs.mark_complete(ck, {"step": step, "loss": 2.0})
    (folder / "checkpoints" / "checkpoint-6").mkdir()  # cut short: no marker
    (folder / "manifest.json").write_text(json.dumps({"run": name, "base_model": "smollm2-135m-instruct",
                                                      "status": status}))
    db = store.connect(home)
    job_id = store.enqueue_job(db, "train", {"run": name, "config": {}}, title=f"train {name}")
    store.finish_job(db, job_id, job_status)
    store.upsert_train_run(db, name, job_id=job_id, config={}, base_model="smollm2-135m-instruct",
                           data_path=None, data_hash=None, status=status, dir=str(folder))
    rows = [{"step": s, "kind": "train", "epoch": s / 10, "loss": 3.0 - 0.1 * s, "learning_rate": 2e-4,
             "grad_norm": 1.5, "tokens_per_s": 250.0, "memory_mb": 900.0, "extra": {}} for s in range(1, steps + 1)]
    rows.append({"step": 4, "kind": "eval", "epoch": 0.4, "loss": 2.75, "extra": {}})
    store.write_train_metrics(db, name, rows)


def write_chatml(path: Path, n: int) -> None:
    path.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Call transcript:\n\nAgent: Hello.\nCustomer: My bill {i} is wrong.\n\nTask: CSAT?"},
        {"role": "assistant", "content": f"CSAT: {1 + i % 5}/5"}]}) + "\n" for i in range(n)))


def test_training_page_shows_estimate_curves_checkpoints_and_resume(home, open_page):
    write_chatml(home.data / "train_reasoning.jsonl", 20)
    _fake_run(home, "older", "succeeded", 6, "succeeded")
    time.sleep(0.01)
    _fake_run(home, "demo-run", "paused", 5, "paused")
    at = open_page("pages/train.py", timeout=300)

    # the dry-run estimate of the default preset on the Phase 1 export, before launch
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trainable (LoRA)"].endswith(" M") and "GiB" in metrics["Peak memory (est.)"]
    assert any("steps per epoch" in c.value for c in at.caption)
    assert any(b.label == "Launch training" for b in at.button)

    # the newest run is shown: its last metrics, loss curve (train + eval), checkpoints
    assert metrics["Train loss"] == "2.5000" and metrics["Eval loss"] == "2.7500"
    assert metrics["Tokens/s"] == "250"
    charts = at.get("plotly_chart")
    assert charts, "no plotly chart"
    figure = json.loads(charts[0].proto.spec)
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["demo-run train", "demo-run eval"]
    assert figure["data"][0]["y"][-1] == 2.5
    checkpoint_tables = [df.value for df in at.dataframe if "complete" in df.value.columns]
    assert checkpoint_tables and checkpoint_tables[0]["complete"].tolist() == [True, True, False]

    # overlaying a past run adds its curve
    at.multiselect(key="train-overlay").select("older").run()
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "older train" in [trace["name"] for trace in figure["data"]]

    # a paused run offers to resume from its last complete checkpoint; pressing it queues the job again
    resume = [b for b in at.button if b.label.startswith("Resume from checkpoint-4")]
    assert resume, [b.label for b in at.button]
    resume[0].click().run()
    job_id = store.connect(home).execute("SELECT job_id FROM train_runs WHERE name = 'demo-run'").fetchone()[0]
    assert store.get_job(store.connect(home), job_id)["status"] == "queued"


def test_launch_from_the_page_queues_a_train_job(home, open_page):
    at = open_page("pages/train.py", timeout=300)
    assert any("No ChatML JSONL file" in i.value for i in at.info)
    # the data appears (Phase 1 exports it); one dry run, then the launch with overrides
    write_chatml(home.data / "train_reasoning.jsonl", 20)
    at.text_area(key="train-overrides").input("max_steps=3")
    at.text_input(key="train-run-name").input("from-page")
    at.run()
    at.button(key="train-launch").click().run()
    assert not at.exception, at.exception
    job = store.connect(home).execute("SELECT kind, status, config FROM jobs WHERE kind = 'train'").fetchone()
    assert job[0] == "train" and job[1] == "queued"
    config = json.loads(job[2])
    assert config["run"] == "from-page" and config["config"]["max_steps"] == 3
    assert config["config"]["data"] == str(home.data / "train_reasoning.jsonl")
