"""The pages' equivalents of `ccr export reasoning`, `ccr data export`, `ccr export model`,
`ccr score` and `ccr models list` (AppTest; no model is loaded)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine import api

from engine.core import jobs, store

from engine.chains import quality

sys.path.insert(0, str(Path(__file__).parent))
from test_review import make_chains  # noqa: E402
from test_train_page import _fake_run  # noqa: E402


def _button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert len(matches) == 1, [b.label for b in at.button]
    return matches[0]


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_review_page_exports_chains_for_training(demo_home, open_page):
    make_chains(demo_home)  # 4 train + 2 validation chains: 3 passed, 3 flagged
    db = store.connect(demo_home)
    passed = {ex_id: (split, text) for ex_id, split, text in db.execute(
        "SELECT e.ex_id, e.split, c.text FROM chains c JOIN examples e ON e.id = c.example_id "
        "WHERE c.status = 'passed'")}
    assert sorted(s for s, _ in passed.values()) == ["train", "train", "validation"]
    at = open_page("pages/review.py")
    # the button is above the filters: there even when no chain matches them
    at.selectbox(key="rv-status").select("rejected").run()
    assert any("No chains match" in i.value for i in at.info)
    _button(at, "Export chains for training").click().run()
    assert not at.exception and not at.error
    train, val = demo_home.data / "train_reasoning.jsonl", demo_home.data / "validation_reasoning.jsonl"
    message = at.success[0].value
    assert "Exported 2 train and 1 validation chains" in message and str(train) in message and str(val) in message
    lines = _lines(train) + _lines(val)
    assert {obj["meta"]["id"]: obj["messages"][-1]["content"] for obj in lines} == {
        ex_id: text for ex_id, (_, text) in passed.items()}
    assert {obj["meta"]["chain_status"] for obj in lines} == {"passed"}
    # the Train page's "Training data" select lists the export first
    assert api.train_data_files()[0]["path"] == str(train)

    at.checkbox(key="rv-export-flagged").check().run()
    _button(at, "Export chains for training").click().run()
    assert "Exported 4 train and 2 validation chains" in at.success[0].value
    assert len(_lines(train)) == 4 and len(_lines(val)) == 2


def test_data_page_exports_a_split_and_offers_it(demo_home, open_page):
    at = open_page("pages/data.py")
    at.selectbox(key="data-export-split").select("validation").run()
    _button(at, "Export as ChatML JSONL").click().run()
    assert not at.exception and not at.error
    out = demo_home.data / "exports" / "demo-seed0-validation.jsonl"
    expected = [(json.loads(m), json.loads(meta)) for m, meta in store.connect(demo_home).execute(
        "SELECT e.messages, e.meta FROM examples e JOIN datasets d ON d.id = e.dataset_id "
        "WHERE d.name = 'demo-seed0' AND e.split = 'validation' ORDER BY e.id")]
    assert len(expected) == 60
    assert [(obj["messages"], obj["meta"]) for obj in _lines(out)] == expected
    assert "Wrote 60 lines" in at.success[0].value and str(out) in [c.value for c in at.code]
    assert at.get("download_button")[0].label == "Download the JSONL"
    # one task of one split, as `ccr data export --split test --task churn`
    at.selectbox(key="data-export-split").select("test").run()
    at.selectbox(key="data-export-task").select("churn").run()
    _button(at, "Export as ChatML JSONL").click().run()
    rows = _lines(demo_home.data / "exports" / "demo-seed0-test-churn.jsonl")
    assert rows and f"Wrote {len(rows)} lines" in at.success[0].value
    assert all("churn" in obj["messages"][-2]["content"].lower() for obj in rows)


def _finished_run(home, name: str) -> Path:
    _fake_run(home, name, "succeeded", 4, "succeeded")
    folder = home.models / name
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 128)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    return folder


def test_train_page_queues_one_export_job_and_the_job_exports(home, open_page):
    folder = _finished_run(home, "done-run")
    at = open_page("pages/train.py")
    _button(at, "Export model").click().run()
    _button(at, "Export model").click().run()  # a second press while it is queued: the same job
    assert not at.exception
    db = store.connect(home)
    queued = db.execute("SELECT kind, status, config FROM jobs WHERE kind = 'export_model'").fetchall()
    assert [(k, s, json.loads(c)) for k, s, c in queued] == [("export_model", "queued",
                                                               {"run": "done-run", "merge": False})]
    assert any("export_model" in m.value and "queued" in m.value for m in at.markdown)  # the job panel
    at.checkbox(key="train-export-merge").check().run()
    _button(at, "Export model").click().run()
    assert [json.loads(c)["merge"] for (c,) in db.execute(
        "SELECT config FROM jobs WHERE kind = 'export_model' ORDER BY id")] == [False, True]

    # the job function (what the engine runs for that job) writes the export; no model is loaded
    job = jobs.run_inline(home, "export_model", {"run": "done-run", "merge": False}, echo=False)
    assert job["status"] == "succeeded", job.get("error")
    out = Path(job["result"]["out"])
    assert out == home.models / "exports" / "done-run-adapter"
    assert (out / "adapter_model.safetensors").read_bytes() == (folder / "adapter_model.safetensors").read_bytes()
    assert json.loads((out / "ccr_export.json").read_text())["run"] == "done-run"

    _fake_run(home, "paused-run", "paused", 2, "paused")  # no adapter yet
    with pytest.raises(ValueError, match="no adapter_model.safetensors"):
        api.start_export_model("paused-run")
    with pytest.raises(ValueError, match="run name"):
        api.start_export_model("../etc")


def test_quality_page_scores_an_uploaded_file(demo_home, open_page, tmp_path):
    make_chains(demo_home)
    export = api.export_reasoning(True)
    lines = Path(export["train"]["path"]).read_text().splitlines()
    hostile = json.loads(lines[0])
    hostile["meta"]["id"] = "**bold** <script>alert(1)</script>"
    content = "\n".join(lines + [json.dumps(hostile), "{not json"]) + "\n"
    path = tmp_path / "upload.jsonl"
    path.write_text(content)
    expected = list(quality.score_file(path))  # what `ccr score` computes

    at = open_page("pages/quality.py")
    at.file_uploader(key="q-score-file").upload("upload.jsonl", content.encode(), "application/jsonl").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Chains scored"] == "5" and metrics["Unreadable lines"] == "1"
    summary = quality.summarize(expected)
    assert metrics["Average score"] == f"{summary['average']:.1f}"
    table = next(df.value for df in at.dataframe if "error" in df.value.columns)
    assert table["line"].tolist() == [r["line"] for r in expected] == [1, 2, 3, 4, 5, 6]
    assert table["score"].tolist()[:5] == pytest.approx([r["score"] for r in expected[:5]])
    assert "invalid JSON" in table["error"].tolist()[5]
    assert table["id"].tolist()[4] == hostile["meta"]["id"]
    assert all("<script>" not in m.value for m in [*at.markdown, *at.caption])


def test_deploy_page_lists_the_models(home, open_page):
    _finished_run(home, "done-run")
    at = open_page("pages/deploy.py")
    table = next(df.value for df in at.dataframe if "available here" in df.value.columns)
    assert table["name"].tolist() == [m["name"] for m in api.models()]
    assert "smollm2-135m-instruct" in table["name"].tolist() and "run:done-run" in table["name"].tolist()
