"""AppTest of the Evaluate, Compare and Deploy pages (engine off: jobs are queued, not run)."""

from __future__ import annotations

import json
import re

import pytest
from phase3_fakes import FakeGenerator
from streamlit.testing.v1 import AppTest

from engine import api

from engine.evaluation import evaluate

from engine.serving import serve

from engine.core import store
from engine.chains.chain import render_chain
from engine.core.config import EvalConfig, ServeConfig
from engine.core.paths import REPO

APP = str(REPO / "app.py")
HOSTILE = "<script>alert('x')</script> **bold** CSAT: 1/5"


def _good(messages) -> str:
    return render_chain({n: "The customer waited because of two holds." for n in range(1, 6)}, {}, {}, "CSAT: 4/5")


def _texts(at) -> list[str]:
    return [t.value for t in at.text]


def test_evaluate_page_compares_base_and_tuned(app_env, open_page):
    gens = {"base-m": FakeGenerator(lambda m: HOSTILE), "tuned-m": FakeGenerator(_good)}
    evaluate.run_evaluation(app_env, EvalConfig(model="tuned-m", base="base-m", limit=6), generators=gens)
    at = open_page("pages/evaluate.py")
    frames = [df.value for df in at.dataframe]
    table = next(f for f in frames if "metric" in f.columns)
    assert "delta (tuned - base)" in table.columns
    row = table[table["metric"] == "structure.compliance_rate"].iloc[0]
    assert row["delta (tuned - base)"] == 1.0 and row["better"] == "yes"
    # Each figure with its interval and n; the 0/6 -> 6/6 jump passes the exact McNemar test (p = 2/64).
    tuned_col = next(c for c in table.columns if "tuned-m" in c)
    base_col = next(c for c in table.columns if "base-m" in c)
    assert row[tuned_col] == "1.00 [0.61, 1.00], n=6" and row[base_col] == "0.00 [0.00, 0.39], n=6"
    assert row["p-value"] == "0.0312" and row["significant (95%)"] == "yes"
    assert row["paired test"] == "significant at 95% (p=0.0312, n=6)"
    # One example per task: no per-task difference may look like a result.
    per_task = table[table["metric"].str.startswith(("csat.", "churn.", "quality.", "sentiment.", "root_cause.",
                                                     "coaching.")) & table["delta (tuned - base)"].notna()]
    assert len(per_task) and (per_task["significant (95%)"] == "NOT significant").all()
    assert all("n=1 per task" in v or "not tested" in v or "small sample" in v for v in per_task["paired test"])
    moved = per_task[per_task["delta (tuned - base)"].fillna(0) != 0]
    assert len(moved) and all(b.startswith("unclear") for b in moved["better"])
    assert any("Small sample: 1 example for" in w.value and "smoke test" in w.value for w in at.warning)
    listing = next(f for f in frames if "compliance" in f.columns)
    assert set(listing["compliance"]) == {"1.00 [0.61, 1.00], n=6", "0.00 [0.00, 0.39], n=6"}
    tasks_table = next(f for f in frames if "task" in f.columns and "parse_rate" in f.columns)
    assert tasks_table["parse_rate"].str.contains(r"\[.*\], n=1$").all()
    assert len(at.get("plotly_chart")) >= 3  # histogram + two confusion heatmaps
    # Disagreements: the hostile answer is plain text, never markdown.
    assert any(HOSTILE in t for t in _texts(at))
    assert all("<script>" not in m.value for m in at.markdown)
    assert at.selectbox(key="res-base").value is not None
    # Every accuracy beside the best constant answer per task, with the paired test against it.
    bar = next(t for t in _texts(at) if t.startswith("Best constant answer per task"))
    assert "n=6" in bar and "tuned-m: overall accuracy" in bar and "base-m: overall accuracy" in bar


def test_evaluate_page_queues_an_evaluation_once(app_env, open_page):
    at = open_page("pages/evaluate.py")
    at.number_input(key="eval-limit").set_value(6)
    at.button(key="eval-start").click().run()
    at.button(key="eval-start").click().run()
    assert not at.exception
    jobs = store.connect(app_env).execute("SELECT kind, config FROM jobs").fetchall()
    assert len(jobs) == 1 and jobs[0][0] == "eval"
    assert '"limit": 6' in jobs[0][1] and '"dataset": "demo-seed0"' in jobs[0][1]


def test_deploy_page_starts_a_server_job_and_refuses_exposed_without_key(app_env, open_page):
    at = open_page("pages/deploy.py")
    at.text_input(key="serve-host").set_value("0.0.0.0")
    at.checkbox(key="serve-use-key").uncheck()
    at.button[0].click().run()  # the form's submit button
    assert any("without an API key" in e.value for e in at.error)
    assert store.connect(app_env).execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    at.text_input(key="serve-host").set_value("127.0.0.1")
    at.checkbox(key="serve-use-key").check()
    at.button[0].click().run()
    job = store.connect(app_env).execute("SELECT kind, config FROM jobs").fetchall()
    assert len(job) == 1 and job[0][0] == "serve" and '"api_key": "ccr-' in job[0][1]


def test_deploy_page_shows_a_running_server_with_snippets(app_env, open_page):
    job_id = api.start_server("smollm2-135m-instruct", "127.0.0.1", 8123, "ccr-secret-key")
    db = store.connect(app_env)
    store.claim_job(db, "test", job_id=job_id)
    store.update_job_progress(db, job_id, None, {"state": "ready", "url": "http://127.0.0.1:8123", "served": 3})
    at = open_page("pages/deploy.py")
    codes = [c.value for c in at.code]
    assert "http://127.0.0.1:8123/v1" in codes
    assert any("curl http://127.0.0.1:8123/v1/chat/completions" in c for c in codes)
    assert any("OpenAI(base_url=\"http://127.0.0.1:8123/v1\"" in c for c in codes)
    assert "ccr-secret-key" not in " ".join(codes[:2])  # the key is masked until asked for
    at.toggle(key=f"show-key-{job_id}").set_value(True).run()
    assert "ccr-secret-key" in [c.value for c in at.code]
    at.button(key=f"stop-serve-{job_id}").click().run()
    assert store.get_job(db, job_id)["cancel_requested"] == 1


def test_deploy_page_queues_batch_inference_from_a_path(app_env, open_page):
    src = app_env.data / "calls.jsonl"
    src.write_text('{"prompt": "hello"}\n')
    at = open_page("pages/deploy.py")
    at.radio(key="infer-source").set_value("A file on the server").run()
    at.text_input(key="infer-path").set_value(str(src)).run()
    at.button(key="infer-start").click().run()
    assert not at.exception
    row = store.connect(app_env).execute("SELECT kind, config FROM jobs").fetchone()
    assert row[0] == "infer" and str(src) in row[1]
    at.text_input(key="infer-path").set_value("/etc/passwd").run()
    at.button(key="infer-start").click().run()
    assert any("outside the allowed folders" in e.value for e in at.error)


@pytest.fixture
def answer_server():
    server = serve.Server(ServeConfig(model="smollm2-135m-instruct", port=0),
                          generator=FakeGenerator(lambda m: HOSTILE, name="smollm2-135m-instruct")).start()
    yield server
    server.stop()


def test_compare_page_streams_both_answers_with_scores(app_env, open_page, answer_server):
    at = open_page("pages/compare.py")
    at.button(key="cmp-start").click().run()
    db = store.connect(app_env)
    jobs = db.execute("SELECT id, config FROM jobs WHERE kind = 'serve'").fetchall()
    assert len(jobs) == 1 and '"port": 0' in jobs[0][1]  # one server for the one model in both slots
    # Stand in for the engine: mark the queued server job running at our test server's address.
    store.claim_job(db, "test", job_id=jobs[0][0])
    store.update_job_progress(db, jobs[0][0], None, {"state": "ready", "url": answer_server.url})
    at.run()
    assert not at.button(key="cmp-run").disabled
    at.button(key="cmp-run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [t for t in _texts(at) if HOSTILE.strip() in t]
    assert len(shown) == 2  # both sides, as plain text
    assert all("<script>" not in m.value for m in at.markdown)
    assert [m.label for m in at.metric][:3] == ["Quality score", "Structure", "Answer"]
    # Presentation view: the settings go away, the answers stay.
    at.toggle(key="cmp-present").set_value(True).run()
    assert not at.exception
    assert all(s.key != "cmp-a" for s in at.selectbox)
    assert len([t for t in _texts(at) if HOSTILE.strip() in t]) == 2


def test_evaluate_page_queues_the_whole_loop_as_one_demo_job(app_env, open_page):
    at = open_page("pages/evaluate.py")
    at.number_input(key="demo-eval").set_value(12).run()
    # The whole loop is hours here: its estimate is shown and must be confirmed before the launch.
    confirm = at.checkbox(key="demo-confirm")
    assert confirm.label.startswith("I know this whole loop takes about ") and at.button(key="demo-start").disabled
    assert any(w.value.startswith("Estimate: about ") and "assuming every chain passes" in w.value for w in at.warning)
    assert store.connect(app_env).execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    confirm.check().run()
    at.button(key="demo-start").click().run()
    assert not at.exception
    row = store.connect(app_env).execute("SELECT kind, config FROM jobs").fetchone()
    assert row[0] == "demo" and '"eval_limit": 12' in row[1]
    assert "generate_overrides" not in json.loads(row[1])   # none given: the presets as they are


def test_evaluate_page_demo_takes_teacher_and_training_settings_and_names_a_bad_one(app_env, open_page):
    at = open_page("pages/evaluate.py")
    at.text_area(key="demo-gen-overrides").input("prompt_versoin=4").run()
    assert any("unknown field 'prompt\\_versoin'" in e.value for e in at.error)   # markdown-escaped
    assert at.button(key="demo-start").disabled
    at.text_area(key="demo-gen-overrides").input("prompt_version=4\n# a comment\nbatch_size=4").run()
    at.text_area(key="demo-train-overrides").input("epochs=2").run()
    assert not any("unknown field" in e.value for e in at.error)
    at.checkbox(key="demo-confirm").check().run()
    at.button(key="demo-start").click().run()
    assert not at.exception
    config = json.loads(store.connect(app_env).execute("SELECT config FROM jobs WHERE kind = 'demo'").fetchone()[0])
    assert config["generate_overrides"] == ["prompt_version=4", "batch_size=4"]
    assert config["train_overrides"] == ["epochs=2"]


def test_compare_page_puts_one_call_next_to_the_evaluation_evidence(app_env, open_page):
    at = open_page("pages/compare.py")
    assert any("No base-vs-tuned evaluation of these two models" in c.value for c in at.caption)
    # Two evaluations of the page's model (different settings, different answers), the second compared to the first.
    examples, source, _ = evaluate.load_examples(app_env, limit=6)
    name = at.selectbox(key="cmp-a").value
    base = evaluate.evaluate_model(app_env, name, examples, source, EvalConfig(max_new_tokens=500),
                                   generator=FakeGenerator(lambda m: HOSTILE))
    tuned = evaluate.evaluate_model(app_env, name, examples, source, EvalConfig(max_new_tokens=501),
                                    generator=FakeGenerator(_good))
    store.finish_evaluation(store.connect(app_env), tuned, "succeeded", compare_to=base)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(f"Evaluation #{tuned}" in c.value and "not which one is better" in c.value for c in at.caption)
    table = next(df.value for df in at.dataframe if "paired test" in df.value.columns)
    row = table[table["metric"] == "structure.compliance_rate"].iloc[0]
    assert row["significant (95%)"] == "yes" and row["paired test"] == "significant at 95% (p=0.0312, n=6)"
    assert row[f"tuned: {name}"] == "1.00 [0.61, 1.00], n=6"
    assert any("Small sample" in w.value for w in at.warning)


# -- faithfulness on the Evaluate and Compare pages ----------------------------------------------

NEUTRAL = "The call covered the account question and the next steps."
FAULTY = "The agent, Zebulon, refunded $4,321 on Tuesday <b>for real</b>."


def _faulty(messages) -> str:
    return render_chain({1: FAULTY, 2: NEUTRAL, 3: NEUTRAL, 4: NEUTRAL, 5: NEUTRAL}, {}, {}, "CSAT: 3/5")


def _faithful(messages) -> str:
    return render_chain({n: NEUTRAL for n in range(1, 6)}, {}, {}, "CSAT: 3/5")


def test_evaluate_page_shows_faithfulness_also_for_an_evaluation_stored_before_it(app_env, open_page):
    gens = {"base-m": FakeGenerator(_faulty), "tuned-m": FakeGenerator(_faithful)}
    evaluate.run_evaluation(app_env, EvalConfig(model="tuned-m", base="base-m", limit=6), generators=gens)
    db = store.connect(app_env)
    # Both evaluations as if stored before faithfulness was measured: nothing per answer, nothing in the metrics.
    for eid, metrics in db.execute("SELECT id, metrics FROM evaluations").fetchall():
        m = json.loads(metrics)
        m.pop("faithfulness")
        m["intervals"] = {k: v for k, v in m["intervals"].items() if not k.startswith("faithfulness.")}
        store.finish_evaluation(db, eid, "succeeded", m)
    db.execute("UPDATE eval_predictions SET faithfulness = NULL")
    at = open_page("pages/evaluate.py")
    frames = [df.value for df in at.dataframe]
    faith = next(f for f in frames if "not judged" in f.columns)
    base_row = faith[faith["evaluation"].str.contains("base-m")].iloc[0]
    tuned_row = faith[faith["evaluation"].str.contains("tuned-m")].iloc[0]
    assert base_row["judged"] == 6 and base_row["faithful rate"] == "0.00 [0.00, 0.39], n=6"
    assert base_row["invented per answer"].startswith("3.00 [") and base_row["with an invented specific"] == 6
    assert tuned_row["faithful rate"] == "1.00 [0.61, 1.00], n=6" and tuned_row["contradiction rate"].startswith("0.00")
    table = next(f for f in frames if "metric" in f.columns and "paired test" in f.columns)
    row = table[table["metric"] == "faithfulness.faithful_rate"].iloc[0]
    assert row["significant (95%)"] == "yes" and row["paired test"] == "significant at 95% (p=0.0312, n=6)"
    inv = table[table["metric"] == "faithfulness.invented_per_answer"].iloc[0]
    assert inv["delta (tuned - base)"] == -3.0 and inv["better"] == "yes"
    # The disagreements name each side's faithfulness and list the sentences at fault (in a table, never markup).
    assert any("unfaithful: 3 unsupported specifics" in c.value for c in at.caption)
    faults = next(f for f in frames if "sentence" in f.columns)
    assert set(faults["sentence"]) == {FAULTY}
    assert all("<b>" not in m.value for m in at.markdown)


@pytest.fixture
def faulty_server():
    server = serve.Server(ServeConfig(model="smollm2-135m-instruct", port=0),
                          generator=FakeGenerator(_faulty, name="smollm2-135m-instruct")).start()
    yield server
    server.stop()


def test_compare_page_marks_the_sentences_at_fault_as_escaped_text(app_env, open_page, faulty_server):
    at = open_page("pages/compare.py")
    at.button(key="cmp-start").click().run()
    db = store.connect(app_env)
    job_id = db.execute("SELECT id FROM jobs WHERE kind = 'serve'").fetchone()[0]
    store.claim_job(db, "test", job_id=job_id)
    store.update_job_progress(db, job_id, None, {"state": "ready", "url": faulty_server.url})
    at.run()
    at.button(key="cmp-run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    marked = [h.value for h in at.get("html")]
    assert len(marked) == 2  # both answers (the same model in both slots)
    for h in marked:
        # the faulty sentence inside our <mark>, its own markup escaped; the rest of the answer escaped too
        assert h.count("<mark") == 1 and "&lt;b&gt;for real&lt;/b&gt;" in h and "<b>" not in h
        assert "unsupported specific: &#x27;$4,321&#x27; is not in the transcript" in h
        assert "&lt;thinking&gt;" in h and NEUTRAL in h
    assert [c.value for c in at.caption].count("Faithfulness: unfaithful: 3 unsupported specifics") == 2
    faults = [df.value for df in at.dataframe if "sentence" in df.value.columns]
    assert len(faults) == 2 and all(set(f["sentence"]) == {FAULTY} and len(f) == 3 for f in faults)
    assert all("<b>" not in m.value for m in at.markdown)


def _ready(db, job_id: int, url: str) -> None:
    """Stand in for the engine: the queued server job runs and is ready at ``url``."""
    store.claim_job(db, "test", job_id=job_id)
    store.update_job_progress(db, job_id, None, {"state": "ready", "url": url})


def test_compare_reuses_a_running_server_of_the_same_model(app_env, open_page, answer_server):
    db = store.connect(app_env)
    # The model already served from Deploy (its own port and key): Compare starts no second process.
    deployed = api.start_server("smollm2-135m-instruct", "127.0.0.1", 0, "ccr-deploy-key")
    _ready(db, deployed, answer_server.url)
    assert api.compare_servers(["smollm2-135m-instruct", "smollm2-135m-instruct"]) == \
        {"smollm2-135m-instruct": deployed}
    # Another model gets one short-lived server; asking again (a second press, another visit) reuses it.
    first = api.compare_servers(["smollm2-135m-instruct", "other-model"])
    again = api.compare_servers(["other-model", "smollm2-135m-instruct"])
    assert first == again and first["smollm2-135m-instruct"] == deployed and first["other-model"] != deployed
    serve_jobs = db.execute("SELECT id, dedupe_key FROM jobs WHERE kind = 'serve'").fetchall()
    assert len(serve_jobs) == 2 and dict(serve_jobs)[first["other-model"]] == "compare-serve:other-model"

    at = open_page("pages/compare.py")
    pair = [at.selectbox(key="cmp-a").value, at.selectbox(key="cmp-b").value]
    assert set(pair) == {"smollm2-135m-instruct"}  # the only model of this home, in both slots
    assert at.button(key="cmp-start").disabled  # nothing to start: the running server is used
    assert any(f"ready (server job #{deployed}, an existing server, reused)" in c.value for c in at.caption)
    at.button(key="cmp-run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len([t for t in _texts(at) if HOSTILE.strip() in t]) == 2
    assert db.execute("SELECT COUNT(*) FROM jobs WHERE kind = 'serve'").fetchone()[0] == 2  # no new one
    # Compare stops only the servers it started: the Deploy one is not its to stop.
    assert at.button(key="cmp-stop").disabled
    assert store.get_job(db, deployed)["cancel_requested"] == 0


def test_compare_shows_the_reference_labels_latency_and_tokens(app_env, open_page, answer_server):
    at = open_page("pages/compare.py")
    at.button(key="cmp-start").click().run()
    db = store.connect(app_env)
    (job_id,) = db.execute("SELECT id FROM jobs WHERE kind = 'serve'").fetchone()
    _ready(db, job_id, answer_server.url)
    at.run()
    example = api.example(at.selectbox(key="cmp-example").value)
    reference = example["messages"][-1]["content"]
    assert example["messages"][-1]["role"] == "assistant" and reference.strip()
    # Before any run, beside the two (empty) outputs: the reference answer and the example's labels.
    assert reference in _texts(at)
    assert any(c.value == json.dumps(example["labels"], ensure_ascii=False, indent=1) for c in at.code)
    at.button(key="cmp-run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: [] for m in at.metric}
    for m in at.metric:
        metrics[m.label].append(m.value)
    assert len(metrics["Latency"]) == 2 and all(re.fullmatch(r"\d+\.\d s", v) for v in metrics["Latency"])
    # The server's own token count: the fake model answers HOSTILE, one token a word.
    assert metrics["Tokens"] == [str(len(HOSTILE.split(" ")))] * 2
    assert sum("tokens generated" in c.value and "first token after" in c.value for c in at.caption) == 2
    assert reference in _texts(at)  # still there beside the answers


# ---------------------------------------------------------------------------------------------
# Evaluate: guarded launch, estimates, confusion matrices people can read (issue 14)
# ---------------------------------------------------------------------------------------------


def _caption_text(at) -> str:
    return "\n".join(re.sub(r"\\(.)", r"\1", c.value) for c in at.caption)


def test_evaluate_launch_is_guarded_bounded_and_estimated(app_env, open_page):
    db = store.connect(app_env)
    at = open_page("pages/evaluate.py")
    limit = at.number_input(key="eval-limit")
    assert (limit.min, limit.max) == (0, 100_000)  # 99,999,999,999,999 cannot be typed any more
    assert (at.number_input(key="eval-max-new").min, at.number_input(key="eval-max-new").max) == (8, 4096)
    assert (at.number_input(key="eval-batch").min, at.number_input(key="eval-batch").max) == (1, 64)
    # The estimate is on the page before the launch (12 examples of the embedded model: minutes).
    assert any(i.value.startswith("Estimate: about ") and "12 examples" in i.value for i in at.info)
    assert not at.button(key="eval-start").disabled
    # A file source without a path, or outside the allowed folders: disabled, and why.
    at.radio(key="eval-source").set_value("A ChatML/CSV file").run()
    assert at.button(key="eval-start").disabled
    assert "Start evaluation is disabled: give the path of a ChatML JSONL or CSV file" in _caption_text(at)
    at.text_input(key="eval-path").input("/etc/passwd").run()
    assert at.button(key="eval-start").disabled
    assert any("outside the allowed folders" in e.value for e in at.error)
    assert "the data above cannot be read" in _caption_text(at)
    at.radio(key="eval-source").set_value("Working dataset").run()
    # Comparing a model with itself is refused.
    at.checkbox(key="eval-compare").check().run()
    at.selectbox(key="eval-base").set_value(at.selectbox(key="eval-model").value).run()
    assert at.button(key="eval-start").disabled and "the base model is the model itself" in _caption_text(at)
    at.checkbox(key="eval-compare").uncheck().run()
    # The whole split with long answers is hours here: the confirmation names the estimate.
    at.number_input(key="eval-limit").set_value(0).run()
    at.number_input(key="eval-max-new").set_value(4096).run()
    assert at.button(key="eval-start").disabled and "confirm the estimated duration above" in _caption_text(at)
    confirm = at.checkbox(key="eval-confirm")
    assert re.match(r"I know this evaluation takes about \d+ h", confirm.label), confirm.label
    assert any(w.value.startswith("Estimate: about ") and "60 examples" in w.value for w in at.warning)
    assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    confirm.check().run()
    at.button(key="eval-start").click().run()
    job = db.execute("SELECT kind, config FROM jobs").fetchall()
    assert len(job) == 1 and job[0][0] == "eval" and json.loads(job[0][1])["max_new_tokens"] == 4096
    # Changed settings must be confirmed again.
    at.number_input(key="eval-max-new").set_value(4000).run()
    assert at.button(key="eval-start").disabled and not at.checkbox(key="eval-confirm").value


def _figure(chart) -> dict:
    return json.loads(chart.proto.spec)


def test_evaluate_confusion_matrix_has_every_class_and_readable_counts(app_env, open_page):
    # Every answer unparseable (CSAT accuracy and parse rate 0), as in the screenshot.
    gens = {"tuned-m": FakeGenerator(lambda m: "I cannot tell.")}
    evaluate.run_evaluation(app_env, EvalConfig(model="tuned-m", limit=30), generators=gens)
    at = open_page("pages/evaluate.py")
    task = at.selectbox(key="conf-task")
    assert task.options == ["CSAT", "Churn risk", "Sentiment", "Sentiment trajectory", "Root cause"]
    charts = {c.proto.id: _figure(c) for c in at.get("plotly_chart")}
    conf = next(f for f in charts.values() if f["data"][0]["type"] == "heatmap")
    heat = conf["data"][0]
    assert heat["x"] == ["1", "2", "3", "4", "5", "unparsed"] and heat["y"] == ["1", "2", "3", "4", "5"]
    assert conf["layout"]["xaxis"]["type"] == "category" and conf["layout"]["yaxis"]["type"] == "category"
    n = sum(map(sum, heat["z"]))
    assert conf["layout"]["title"]["text"].startswith(f"CSAT: {n} examples, 0 parsed") and n == 5
    assert all(row[:5] == [0] * 5 for row in heat["z"])  # nothing parsed: no cell of the diagonal is filled
    assert heat["zmin"] == 0 and heat["zmax"] >= max(max(r) for r in heat["z"])  # colour follows the count
    # A count on every cell, at its cell, in a colour that contrasts with it.
    notes = conf["layout"]["annotations"]
    assert len(notes) == 5 * 6
    peak = max(max(r) for r in heat["z"])
    for a in notes:
        value = heat["z"][a["y"]][a["x"]]
        assert a["text"] == str(value)
        dark_cell = value / peak > 0.5
        assert a["font"]["color"] == ("#ffffff" if dark_cell else ("#1f1f1f" if value else "#6b6b6b"))
    assert any("Small sample: 5 CSAT examples" in w.value for w in at.warning)
    # Root cause: all ten causes on both axes.
    at.selectbox(key="conf-task").set_value("root_cause").run()
    conf = next(_figure(c) for c in at.get("plotly_chart") if _figure(c)["data"][0]["type"] == "heatmap")
    from engine.data import tasks

    assert conf["data"][0]["y"] == list(tasks.ROOT_CAUSES)
    assert conf["data"][0]["x"] == list(tasks.ROOT_CAUSES) + ["unparsed"]
    assert len(conf["layout"]["annotations"]) == 10 * 11
    # The score histogram: the ten fixed bins, with n in the title.
    hist = next(f for f in charts.values() if f["data"][0]["type"] == "bar")
    assert hist["data"][0]["x"] == ["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89",
                                    "90-100"]
    assert "n=30" in hist["layout"]["title"]["text"]


def test_pipeline_links_to_the_last_demos_comparison(app_env, open_page):
    """After a demo (its base and tuned evaluations), the Pipeline page names its figures and links to
    the Evaluate page with that comparison selected, even when a newer evaluation exists."""
    gens = {"base-m": FakeGenerator(lambda m: HOSTILE), "run:demo-seed0": FakeGenerator(_good)}
    res = evaluate.run_evaluation(app_env, EvalConfig(model="run:demo-seed0", base="base-m", limit=6), generators=gens)
    db = store.connect(app_env)
    store.set_setting(db, "last_demo", {"run": "demo-seed0", "dataset": "demo-seed0", "evaluations": res["evaluations"],
                                        "stages": {"total_s": 3000.0}, "n_test_examples": 6,
                                        "chains": {"train": 36, "validation": 6}, "report": res["report"]})
    newer = {"other-m": FakeGenerator(_good), "base-m": FakeGenerator(lambda m: HOSTILE)}
    evaluate.run_evaluation(app_env, EvalConfig(model="other-m", base="base-m", limit=6), generators=newer)
    at = open_page("pages/pipeline.py")
    assert any("run demo-seed0 on demo-seed0: 36 train chains, 6 test examples, 50 min end to end" in t
               for t in _texts(at))
    assert any("structure.compliance_rate: 0.00 -> 1.00" in t for t in _texts(at))
    link = at.get("page_link")[-1]
    assert link.proto.page == "evaluate" and "base-vs-tuned comparison" in link.proto.label
    tuned_id = res["evaluations"][1]
    assert f"eval={tuned_id}" in link.proto.query_string
    # Following it: the Evaluate page shows that comparison (not the newest one) with its base.
    ev = AppTest.from_file(APP, default_timeout=120)
    ev.query_params["eval"] = str(tuned_id)
    ev.run()
    ev.switch_page("pages/evaluate.py")
    ev.run()
    assert not ev.exception, [e.value for e in ev.exception]
    assert ev.selectbox(key="res-tuned").value == tuned_id
    assert ev.selectbox(key="res-base").value == res["evaluations"][0]
