"""The control panel tells the truth (issue 14), in AppTest: guarded launches (an invalid field
disables the action and says why, numbers have bounds, a long job asks for a confirmation that
names its estimate), estimates with and without measured history, panels scoped to the working
dataset, the Train page following the run it launched, dataset names and rename/delete, the API
key kept out of the page text, a port in use refused, words for people."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine import api, cli, estimate

from engine.chains import gate, selection

from engine.core import store
from engine.core.config import to_dict

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def page(app_env, open_page):
    """``page(path)``: the conftest opener, with the demo dataset in the home."""
    return open_page


def texts(at: AppTest) -> str:
    """The page's text as a person reads it (markdown escapes, which keep names literal, removed)."""
    parts = [x.value for x in [*at.text, *at.code]]
    parts += [re.sub(r"\\(.)", r"\1", str(x.value)) for x in
              [*at.markdown, *at.caption, *at.success, *at.info, *at.warning, *at.error]]
    return "\n".join(parts)


def field(at: AppTest, kind: str, label: str):
    found = [w for w in getattr(at, kind) if w.label == label]
    assert len(found) == 1, [w.label for w in getattr(at, kind)]
    return found[0]


def finished_job(home, kind: str, config: dict, result: dict, seconds: float = 100.0) -> int:
    """A succeeded job as the engine leaves it (config, result, start and end times)."""
    db = store.connect(home)
    job_id = store.enqueue_job(db, kind, config)
    store.claim_job(db, "test", job_id=job_id)
    db.execute("UPDATE jobs SET started_at = ? WHERE id = ?", [time.time() - seconds, job_id])
    store.finish_job(db, job_id, "succeeded", result=result)
    return job_id


def gen_config(home, **extra) -> dict:
    return to_dict(selection.config_from({**extra}, path=REPO / "configs" / "generate" / "generate_smollm2_cpu.yaml"))


# ---------------------------------------------------------------------------------------------
# Guarded launches on Generate
# ---------------------------------------------------------------------------------------------


def test_an_invalid_limit_disables_test_and_launch_and_says_why(page, demo_home):
    gate.record_override(demo_home, selection.config_from(None, path=REPO / "configs" / "generate" / "generate_smollm2_cpu.yaml"),
                             "test")  # the gate is open: only the field keeps the launch closed
    at = page("pages/generate.py")
    limit = field(at, "text_input", "Examples to generate (empty: all)")
    assert "config key `limit`" in limit.help and "batch_size" in field(at, "number_input", "Examples per batch").help
    for bad in ("abc", "0", "-3", "2.5"):
        field(at, "text_input", "Examples to generate (empty: all)").input(bad).run()
        assert at.button(key="gen-launch").disabled and at.button(key="gen-test").disabled, bad
        assert any("a whole number from 1 up" in e.value for e in at.error), bad
        assert "Launch is disabled: the settings above have errors" in texts(at)
    field(at, "text_input", "Examples to generate (empty: all)").input("2").run()
    assert not at.button(key="gen-launch").disabled and not at.error
    field(at, "text_input", "Examples to generate (empty: all)").input("").run()  # empty: the whole split, hours here: confirm first
    assert at.button(key="gen-launch").disabled and "confirm the estimated duration" in texts(at)
    assert store.connect(demo_home).execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0


def test_every_number_on_generate_has_bounds(page):
    at = page("pages/generate.py")
    bounds = {w.label: (w.min, w.max) for w in at.number_input}
    assert bounds["Test must score at least"] == (0.0, 100.0)
    assert bounds["Retry chains scoring below"] == (0.0, 100.0)
    assert bounds["Examples per batch"] == (1, 256) and bounds["Attempts per example"] == (1, 10)
    assert all(lo is not None and hi is not None for lo, hi in bounds.values()), bounds


def test_a_long_run_asks_for_a_confirmation_that_names_the_estimate(page, demo_home):
    gate.record_override(demo_home, selection.config_from(None, path=REPO / "configs" / "generate" / "generate_smollm2_cpu.yaml"),
                             "test")
    at = page("pages/generate.py")
    assert "Estimate: about 50 min: 300 examples at 0.1 ex/s (no measurement yet: rough default" in texts(at)
    confirm = [c for c in at.checkbox if c.label.startswith("I know this run takes about 50 min")]
    assert confirm and at.button(key="gen-launch").disabled
    confirm[0].check().run()
    assert not at.button(key="gen-launch").disabled
    at.button(key="gen-launch").click().run()
    job = store.connect(demo_home).execute("SELECT kind, config FROM jobs").fetchone()
    assert job[0] == "generate" and json.loads(job[1])["limit"] is None
    # a short run needs no confirmation
    field(at, "text_input", "Examples to generate (empty: all)").input("2").run()
    assert not [c for c in at.checkbox if c.label.startswith("I know this run takes")]


def test_the_estimate_uses_the_speed_measured_on_this_machine(page, demo_home):
    cfg = gen_config(demo_home)
    job = finished_job(demo_home, "generate", cfg, {"new_chains": 4, "examples_per_s": 0.026, "generated": 4})
    gate.record_override(demo_home, selection.config_from(cfg), "test")
    at = page("pages/generate.py")
    assert f"about 3 h 12 min: 300 examples at 0.026 ex/s measured on job #{job}" in texts(at)


# ---------------------------------------------------------------------------------------------
# Estimates (engine/estimate.py): with and without history, every kind
# ---------------------------------------------------------------------------------------------


def test_estimates_without_history_are_labelled_defaults_or_unknown(demo_home):
    db = store.connect(demo_home)
    cfg = gen_config(demo_home, limit=10)
    e = estimate.generate(db, cfg, estimate.generate_pending(db, cfg))
    assert e["units"] == 10 and not e["measured"] and "no measurement yet: rough default" in e["text"]
    assert e["seconds"] == pytest.approx(10 / estimate.DEFAULTS["generate"]["guided"], rel=0.01)
    other = estimate.generate(db, {**cfg, "teacher": "qwen2.5-7b-instruct"}, 10)
    assert other["seconds"] is None and other["long"] and other["text"].startswith("duration unknown")
    t = estimate.train(db, {"base_model": "smollm2-135m-instruct", "device": "cpu", "precision": "fp32",
                            "batch_size": 2, "gradient_accumulation_steps": 2}, 10, 500.0)
    assert t["units"] == 10 * 4 * 500 and t["seconds"] == pytest.approx(20000 / 115.0, abs=0.1)
    slower = estimate.train(db, {"base_model": "smollm2-135m-instruct", "device": "cpu", "precision": "fp32",
                                 "batch_size": 2, "gradient_accumulation_steps": 2, "gradient_checkpointing": True},
                            10, 500.0)
    assert slower["seconds"] == pytest.approx(20000 / 80.0, abs=0.1)  # checkpointing is slower
    ev = estimate.evaluate(db, ["run:missing", "smollm2-135m-instruct"], 6, 100, 8)
    assert ev["seconds"] is None and "no measurement yet for run:missing" in ev["text"]
    assert estimate.infer(db, "smollm2-135m-instruct", 4, 100, 8)["seconds"] == pytest.approx(4 * 0.02 * 100)
    # a bigger batch costs less per example: the demo's one batch of 60
    assert estimate.evaluate(db, ["smollm2-135m-instruct"], 60, 768, 60)["seconds"] == pytest.approx(60 * 0.0075 * 768)


def test_pending_chains_are_counted_on_the_jobs_own_selection(demo_home):
    """A balanced run selects other examples than the first N: its estimate counts what that run
    would still generate, not what the first N lack."""
    db = store.connect(demo_home)
    cfg = gen_config(demo_home, limit=6, select="balanced")
    ds_id, _ = selection.resolve_dataset(db, cfg["dataset"])
    balanced = selection.selection_ids(db, ds_id, "train", 6, balanced=True, seed=cfg["seed"])
    first = selection.selection_ids(db, ds_id, "train", 6)
    assert set(balanced) != set(first)
    tid, pk = selection.chain_keys(selection.config_from(cfg))
    store.save_generation_step(db, [], [{"example_id": i, "prompt_version": pk, "teacher": tid, "text": "x",
                                         "score": 80.0, "criteria": {}, "status": "passed", "attempts": 1,
                                         "reasons": []} for i in balanced])
    assert estimate.generate_pending(db, cfg) == 0
    assert estimate.generate_pending(db, {**cfg, "select": "first"}) == len(set(first) - set(balanced))


def test_estimates_with_history_name_the_job_they_were_measured_on(demo_home):
    db = store.connect(demo_home)
    cfg = gen_config(demo_home)
    finished_job(demo_home, "generate", {**cfg, "batch_size": 4}, {"new_chains": 2, "examples_per_s": 0.5})
    same = finished_job(demo_home, "generate", cfg, {"new_chains": 2, "examples_per_s": 0.1})
    finished_job(demo_home, "generate", {**cfg, "test": True}, {"examples_per_s": 9.0})  # a gate test: not a speed
    e = estimate.generate(db, cfg, 30)
    assert e["measured"] and e["job_id"] == same and e["seconds"] == 300.0 and not e["long"]
    assert e["text"] == f"about 5 min: 30 examples at 0.1 ex/s measured on job #{same}"
    train_cfg = {"base_model": "m", "device": "cpu", "precision": "fp32", "batch_size": 2,
                 "gradient_accumulation_steps": 1, "max_length": 512, "gradient_checkpointing": False}
    tj = finished_job(demo_home, "train", {"run": "r", "config": train_cfg},
                      {"status": "succeeded", "tokens_seen": 5000, "seconds": 100.0})
    t = estimate.train(db, train_cfg, 4, 250.0)
    assert t["job_id"] == tj and t["seconds"] == pytest.approx(4 * 2 * 250 / 50.0)
    assert "4 steps of 2 examples" in t["text"] and f"measured on job #{tj}" in t["text"]
    ij = finished_job(demo_home, "infer", {"model": "m", "max_new_tokens": 64, "batch_size": 8},
                      {"generated": 10, "seconds": 20.0})
    i = estimate.infer(db, "m", 100, 64, 8)
    assert i["job_id"] == ij and i["seconds"] == 200.0 and "lines" in i["text"]
    # evaluation: the stored predictions' own generation times
    eval_id, _ = store.start_evaluation(db, "k", job_id=None, model="m", data_path="x", n=2,
                                        config={"max_new_tokens": 64, "batch_size": 8})
    store.write_eval_predictions(db, eval_id, [{"key": f"e{i}", "output": "x", "seconds": 3.0} for i in range(2)])
    ev = estimate.evaluate(db, ["m"], 10, 64, 8)
    assert ev["seconds"] == 30.0 and f"measured on evaluation #{eval_id}" in ev["text"]
    scaled = estimate.evaluate(db, ["m"], 10, 128, 8)
    assert scaled["seconds"] == 60.0 and "scaled from its 64-token budget" in scaled["text"]


def test_api_estimate_covers_every_kind(demo_home):
    assert api.estimate("generate", values={"dataset": "demo-seed0", "limit": 3})["units"] == 3
    ev = api.estimate("eval", model="smollm2-135m-instruct", base="smollm2-135m-instruct", limit=6,
                      max_new_tokens=32, batch_size=2)
    assert [p["units"] for p in ev["parts"]] == [6, 6]
    assert api.estimate("infer", model="smollm2-135m-instruct", lines=5)["units"] == 5
    demo = api.estimate("demo", train_limit=8, eval_limit=6)
    assert [p["kind"] for p in demo["parts"]] == ["generate", "train", "eval"] and demo["seconds"] > 0
    assert "assuming every chain passes" in demo["text"]
    assert "error" in api.estimate("eval", model="m", dataset="no-such-dataset")


def test_the_demo_plan_has_the_default_sizes_and_every_stage(demo_home):
    from engine import demo as D

    plan = estimate.demo_plan(store.connect(demo_home), home=demo_home)
    gen, train, ev = plan["parts"]
    # chains for the default train and validation examples, training on the train chains for the
    # demo's epochs (batch 2 x 2), all 60 test examples answered by the base and the tuned model
    assert gen["units"] == D.TRAIN_CHAINS + D.VALIDATION_CHAINS
    assert f"{-(-D.TRAIN_CHAINS // 4) * 3} steps of 4 examples" in train["text"]
    assert ev["units"] == 120
    assert estimate.demo_plan(store.connect(demo_home), train_limit=0, home=demo_home)["parts"][0]["units"] == \
        300 + D.VALIDATION_CHAINS  # 0: all 300
    # the page starts from the same defaults
    assert api.demo_defaults()["train_chains"] == D.TRAIN_CHAINS


def test_demo_settings_are_checked_before_anything_runs(demo_home, capsys):
    """A bad teacher or training setting of `ccr demo` is named before the first stage, by the CLI,
    by the engine and by api.start_demo (which queues nothing); a good one reaches the plan."""
    from engine import cli, demo as D

    home = ["--home", str(demo_home.data)]
    assert cli.main(["demo", "--dry-run", "--generate-override", "prompt_versoin=4", *home]) == 2
    assert "unknown field 'prompt_versoin'" in capsys.readouterr().err
    assert cli.main(["demo", "--dry-run", "--train-override", "epochs=zero", *home]) == 2
    assert "epochs: expected a number, got 'zero'" in capsys.readouterr().err
    assert cli.main(["demo", "--dry-run", "--generate-override", "batch_size=4", *home]) == 0
    assert capsys.readouterr().out.startswith("estimate: ")
    jobs_before = store.connect(demo_home).execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    with pytest.raises(D.DemoError, match="teacher setting: .*unknown field 'prompt_versoin'"):
        D.run_demo(demo_home, generate_overrides=["prompt_versoin=4"], echo=False, log=lambda m: None)
    with pytest.raises(D.DemoError, match="training setting: .*lora.r"):
        api.start_demo(train_overrides=["lora.r=many"])
    assert store.connect(demo_home).execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == jobs_before
    assert D.demo_generate_config(["prompt_version=4"]).prompt_version == "4"
    assert D.demo_train_config(["epochs=2"]).epochs == 2   # after the demo's own epochs=3


def test_the_demo_trains_without_checkpointing_when_memory_allows():
    from engine import demo as D

    gib = 2 ** 30
    assert D.checkpointing(9 * gib, 20 * gib)[0] is False
    assert D.checkpointing(9 * gib, 12 * gib)[0] is True
    assert "unknown" in D.checkpointing(9 * gib, None)[1]
    assert D.available_memory() is None or D.available_memory() > 0
    assert not any(o.startswith("gradient_checkpointing") for o in D.TRAIN_OVERRIDES)


def test_dry_runs_print_the_estimate_and_create_no_job(demo_home, capsys):
    h = ["--home", str(demo_home.data)]
    assert cli.main(["generate", *h, "--limit", "5", "--dry-run"]) == 0
    assert "estimate: about 50 s: 5 examples at 0.1 ex/s (no measurement yet" in capsys.readouterr().out
    assert cli.main(["eval", *h, "--limit", "6", "--dry-run"]) == 0
    assert "estimate: about " in capsys.readouterr().out
    src = demo_home.data / "in.jsonl"
    src.write_text('{"prompt": "a"}\n\n{"prompt": "b"}\n')
    assert cli.main(["infer", *h, "--input", str(src), "--output", str(demo_home.data / "o.jsonl"), "--dry-run"]) == 0
    assert "estimate: about" in capsys.readouterr().out  # stdout, as every command (stderr: errors)
    assert cli.main(["demo", *h, "--train-limit", "8", "--eval-limit", "6", "--dry-run"]) == 0
    assert "estimate: " in capsys.readouterr().out
    assert store.connect(demo_home).execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    assert not (demo_home.data / "o.jsonl").exists()


# ---------------------------------------------------------------------------------------------
# Panels scoped to the working dataset
# ---------------------------------------------------------------------------------------------


def test_switching_dataset_clears_the_previous_datasets_run_and_gate(page, demo_home):
    from engine.data import datasets

    cfg = gen_config(demo_home)
    ds_id, _ = selection.resolve_dataset(store.connect(demo_home), "demo-seed0")
    ex = selection.selection_ids(store.connect(demo_home), ds_id, "train", 1)[0]
    tid, pk = selection.chain_keys(selection.config_from(cfg))
    store.add_gate_test(store.connect(demo_home), ex, tid, pk, cfg, "text", 90.0, {})
    finished_job(demo_home, "generate", {**cfg, "dataset": "demo-seed0"}, {"summary": "generated 2, passed 2"})
    at = page("pages/generate.py")
    assert "Gate passed" in texts(at) and "generated 2, passed 2" in texts(at)

    datasets.synthesize(demo_home, "demo", 1)
    api.set_current_dataset("demo-seed1")
    at.run()
    assert not at.exception
    shown = texts(at)
    assert "Working dataset: demo-seed1" in shown
    assert "Gate passed" not in shown and "generated 2, passed 2" not in shown
    assert "No run on demo-seed1 yet." in shown and "No chains on demo-seed1 yet." in shown
    assert at.button(key="gen-launch").disabled


# ---------------------------------------------------------------------------------------------
# Train follows the run it launched
# ---------------------------------------------------------------------------------------------


def test_train_shows_the_launched_run_at_once(page, demo_home, monkeypatch):
    sys_path = str(Path(__file__).parent)
    import sys

    sys.path.insert(0, sys_path)
    from test_train_page import _fake_run, write_chatml

    monkeypatch.setattr(api, "train_estimate", lambda *a, **k: {"error": "(dry run skipped in this test)"})
    write_chatml(demo_home.data / "train_reasoning.jsonl", 8)
    _fake_run(demo_home, "older", "succeeded", 3, "succeeded")
    at = page("pages/train.py")
    assert at.selectbox(key="train-pick").value == "older"
    at.text_input(key="train-run-name").input("launched").run()
    launch = [c.value for c in at.code if "train --config" in c.value]
    assert launch and f"--data {demo_home.data / 'train_reasoning.jsonl'}" in launch[0]
    assert f"--home {demo_home.data}" in launch[0] and "--run launched" in launch[0]
    assert "data/synth-demo-seed0" not in texts(at)  # the preset's own Launch comment is not shown
    at.button(key="train-launch").click().run()
    assert not at.exception
    assert at.selectbox(key="train-pick").value == "launched"
    assert "Waiting for the engine to start this run" in texts(at)
    assert "launched (queued)" in at.selectbox(key="train-pick").format_func("launched")


def test_the_train_chart_smooths_switches_axis_and_log_scale(page, demo_home):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_train_page import _fake_run

    _fake_run(demo_home, "r1", "succeeded", 8, "succeeded")
    at = page("pages/train.py")
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in fig["data"]] == ["r1 train", "r1 eval"]
    at.slider(key="train-smooth").set_value(0.5).run()
    at.radio(key="train-x").set_value("epoch").run()
    at.checkbox(key="train-log").check().run()
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    raw, smoothed = fig["data"][0], fig["data"][1]
    assert raw["name"] == "r1 train (raw)" and smoothed["name"] == "r1 train"
    assert smoothed["y"][0] == raw["y"][0] and smoothed["y"][-1] > raw["y"][-1]  # a falling curve lags when smoothed
    assert fig["data"][0]["x"][-1] == pytest.approx(0.8) and fig["layout"]["yaxis"]["type"] == "log"
    assert fig["layout"]["xaxis"]["title"]["text"] == "epoch"


# ---------------------------------------------------------------------------------------------
# Data hygiene
# ---------------------------------------------------------------------------------------------


def test_a_dataset_name_of_spaces_is_refused(page, demo_home):
    at = page("pages/data.py")
    at.text_input(key="upload-dataset").input("    ").run()
    assert any("cannot be empty or only spaces" in e.value for e in at.error)
    assert at.button(key="upload-start").disabled
    with pytest.raises(ValueError, match="empty or only spaces"):
        api.start_import(b'{"messages": []}\n', "x.jsonl", "   ")
    with pytest.raises(ValueError, match="line breaks"):
        store.create_dataset(store.connect(demo_home), "a\nb", "import")
    assert store.create_dataset(store.connect(demo_home), "  padded  ", "import") == \
        store.create_dataset(store.connect(demo_home), "padded", "import")
    assert cli.main(["data", "import", str(REPO / "README.md"), "--dataset", "  ", "--home", str(demo_home.data)]) == 2


def test_rename_and_delete_a_dataset_from_the_data_page(page, demo_home):
    from test_review import make_chains

    make_chains(demo_home)
    at = page("pages/data.py")
    at.text_input(key="data-rename-demo-seed0").input("  calls 2024 ").run()
    at.button(key="data-rename").click().run()
    assert not at.exception and "Renamed demo-seed0 to calls 2024." in texts(at)
    assert api.current_dataset() == "calls 2024" and [d["name"] for d in api.datasets()] == ["calls 2024"]
    assert at.selectbox(key="data-dataset").value == "calls 2024"
    db = store.connect(demo_home)
    n_chains = db.execute("SELECT COUNT(*) FROM chains").fetchone()[0]
    assert n_chains == 6
    at.button(key="data-delete").click().run()
    assert "with its 420 examples and 6 chains? This cannot be undone." in texts(at)
    assert db.execute("SELECT COUNT(*) FROM datasets").fetchone()[0] == 1  # asking deletes nothing
    at.button(key="data-delete-confirm").click().run()
    assert not at.exception and "Deleted calls 2024: 420 examples, 6 chains." in texts(at)
    for table in ("datasets", "examples", "chains", "chain_attempts", "reviews"):
        assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table


def test_ccr_data_rename_and_delete(demo_home, capsys):
    h = ["--home", str(demo_home.data)]
    assert cli.main(["data", "rename", "demo-seed0", "   ", *h]) == 2
    assert "cannot be empty" in capsys.readouterr().err
    assert cli.main(["data", "rename", "demo-seed0", "calls", *h]) == 0
    assert cli.main(["data", "delete", "calls", *h]) == 2  # no --yes: says what it would delete
    assert "would delete dataset 'calls': 420 examples" in capsys.readouterr().err
    db = store.connect(demo_home)
    assert db.execute("SELECT COUNT(*) FROM examples").fetchone()[0] == 420
    job = store.enqueue_job(db, "generate", {"dataset": "calls"})  # a job working on it: refused
    assert cli.main(["data", "delete", "calls", "--yes", *h]) == 2
    assert f"job #{job} (generate) is working on dataset 'calls'" in capsys.readouterr().err
    store.request_cancel(db, job)
    # a job without a dataset works on the working one: with no choice recorded, the newest
    db.execute("DELETE FROM settings WHERE key = 'current_dataset'")
    job = store.enqueue_job(db, "generate", {})
    assert cli.main(["data", "delete", "calls", "--yes", *h]) == 2
    assert f"job #{job} (generate) is working on dataset 'calls'" in capsys.readouterr().err
    store.request_cancel(db, job)
    assert cli.main(["data", "delete", "calls", "--yes", *h]) == 0
    assert db.execute("SELECT COUNT(*) FROM examples").fetchone()[0] == 0


def test_synth_result_is_written_in_words(page, demo_home):
    from engine.core import jobs

    job = jobs.run_inline(demo_home, "synth", {"preset": "demo", "seed": 3}, echo=False)
    at = page("pages/data.py", check=False)
    at.session_state["data-job"] = job["id"]
    at.run()
    shown = texts(at)
    assert "Dataset demo-seed3: 300 train / 60 validation / 60 test examples" in shown
    assert "{'train'" not in shown


# ---------------------------------------------------------------------------------------------
# Servers, words, the sidebar
# ---------------------------------------------------------------------------------------------


def test_the_key_is_in_no_page_text_until_revealed(page, demo_home):
    job_id = api.start_server("smollm2-135m-instruct", "127.0.0.1", 0, "ccr-very-secret-key")
    db = store.connect(demo_home)
    store.claim_job(db, "test", job_id=job_id)
    db.execute("UPDATE jobs SET config = json_set(config, '$.port', 8124) WHERE id = ?", [job_id])
    store.update_job_progress(db, job_id, None, {"state": "ready", "url": "http://127.0.0.1:8124"})
    at = page("pages/deploy.py")
    assert "ccr-very-secret-key" not in texts(at)
    assert any("Bearer $CCR_API_KEY" in c.value for c in at.code)
    assert any('api_key=os.environ["CCR_API_KEY"]' in c.value for c in at.code)
    at.toggle(key=f"show-key-{job_id}").set_value(True).run()
    assert any("Bearer ccr-very-secret-key" in c.value for c in at.code)


def test_a_port_in_use_is_refused_with_a_message(page, demo_home):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        at = page("pages/deploy.py")
        at.number_input(key="serve-port").set_value(port)
        at.button[0].click().run()  # the form's submit button
        assert any(f"port {port} on 127.0.0.1 is in use by another program" in e.value for e in at.error)
    assert store.connect(demo_home).execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    first = api.start_server("smollm2-135m-instruct", "127.0.0.1", port, "k")
    assert api.start_server("smollm2-135m-instruct", "127.0.0.1", port, "k") == first  # a double press
    with pytest.raises(ValueError, match=f"port {port} is taken by server job #{first}"):
        api.start_server("smollm2-135m-instruct", "127.0.0.1", port, "another-key")  # the page's next Start


def test_a_failed_server_job_shows_its_error(page, demo_home):
    job_id = api.start_server("smollm2-135m-instruct", "127.0.0.1", 0, "k")
    db = store.connect(demo_home)
    store.claim_job(db, "test", job_id=job_id)
    store.finish_job(db, job_id, "failed", error="OSError: [Errno 98] address already in use")
    at = page("pages/deploy.py", check=False)
    at.session_state["serve-job"] = job_id
    at.run()
    assert any(f"Server job #{job_id} failed" in e.value for e in at.error)
    assert "address already in use" in texts(at)


def test_pipeline_words_and_numbers(page, demo_home):
    db = store.connect(demo_home)
    ds = store.create_dataset(db, "big", "import")
    store.insert_examples(db, ds, [{"split": "train", "ex_id": f"b{i}", "task": "csat", "messages": [],
                                    "meta": {}, "labels": {}, "transcript": "x"} for i in range(1234)])
    api.set_current_dataset("big")
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_train_page import _fake_run

    _fake_run(demo_home, "done-run", "succeeded", 2, "succeeded")
    at = page("pages/pipeline.py")
    shown = texts(at)
    assert "1,234 examples (1,234 train) in big" in shown
    assert "Needs reasoning chains" not in shown  # the train card is done: its next step says so
    assert "1 run(s) trained. Next: evaluate base vs tuned" in shown


def test_the_sidebar_says_what_the_engine_is_doing(demo_home):
    import ui

    store.enqueue_job(store.connect(demo_home), "synth", {"preset": "demo", "seed": 9})
    status = api.engine_status(None)
    line = ui.engine_line(status, None)
    assert line == "Engine: off in this process (CCR_ENGINE=0; `ccr worker` runs the jobs) — 0 running, 1 queued"
    alive = ui.engine_line({**status, "alive": True, "name": f"{socket.gethostname()}:8171"}, object())
    assert alive == "Engine: running — 0 running, 1 queued" and "8171" not in alive
    assert ui.progress_line(status["active"][0]) == "queued: waiting for the engine"


def test_generate_page_exposes_the_optional_judge(page, demo_home):
    at = page("pages/generate.py")
    enabled = field(at, "checkbox", "Rate each chain with a judge model")
    assert enabled.value is False and "config key `judge.enabled`" in enabled.help  # off by default
    assert field(at, "number_input", "Unfaithful below rating (1-5)").min == 1
    assert field(at, "number_input", "Unfaithful below rating (1-5)").max == 5
    enabled.check().run()
    field(at, "text_input", "Judge model").input("").run()  # enabled without a model: refused, by name
    assert at.button(key="gen-test").disabled and "enabled needs judge.base_url and judge.model" in texts(at)
    field(at, "text_input", "Judge model").input("Qwen/Qwen2.5-7B-Instruct").run()
    field(at, "text_input", "Judge server base URL").input("http://10.0.0.7:8000/v1").run()
    field(at, "number_input", "Unfaithful below rating (1-5)").set_value(4).run()
    assert not at.button(key="gen-test").disabled
    at.button(key="gen-test").click().run()
    assert not at.exception
    config = json.loads(store.connect(demo_home).execute("SELECT config FROM jobs").fetchone()[0])
    assert config["test"] is True and config["judge"] == {
        "enabled": True, "base_url": "http://10.0.0.7:8000/v1", "model": "Qwen/Qwen2.5-7B-Instruct",
        "api_key_env": "JUDGE_API_KEY", "timeout_s": 60.0, "max_tokens": 200, "threshold": 4, "concurrency": 8,
        "http_retries": 2}
