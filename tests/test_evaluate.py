"""The evaluation job: examples, resume, storage, the JSON and HTML reports, `ccr eval`."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from phase3_fakes import FakeGenerator

from engine.evaluation import evaluate

from engine.core import store

from engine.data import tasks
from engine.chains.chain import render_chain
from engine.core.config import EvalConfig
from engine.core.jobs import JobStopped


def _chain_answer(messages) -> str:
    """A well-structured chain ending with the right-looking answer line for the prompt's task."""
    user = messages[-1]["content"]
    task = next(t for t in tasks.TASKS if tasks.INSTRUCTIONS[t] in user)
    line = tasks.answer_line(task, {"csat": 4, "quality": 80, "churn": "low", "sentiment": "positive",
                                    "sentiment_trajectory": "stable", "root_cause": "billing_dispute",
                                    "coaching": ["empathy"]})
    return render_chain({n: "The customer waited because the agent put them on hold twice." for n in range(1, 6)},
                        {"Quality Metrics": "Hold time was long."}, {"Immediate Coaching": "Coach hold etiquette."},
                        line)


class StopAfter:
    """A JobContext stand-in that asks the job to stop after ``n`` checks."""

    def __init__(self, home, n: int):
        self.home, self.n, self.job_id, self.lines = home, n, None, []

    def check(self):
        self.n -= 1
        if self.n < 0:
            raise JobStopped("pause")

    def log(self, msg):
        self.lines.append(msg)

    def progress(self, *a, **k):
        pass


def test_examples_interleave_tasks_and_keep_prompts_without_the_answer(demo_home):
    examples, source, problems = evaluate.load_examples(demo_home, limit=6)
    assert source == "dataset:demo-seed0/test" and not problems
    assert sorted(e["task"] for e in examples) == sorted(tasks.TASKS)
    for e in examples:
        assert e["messages"][-1]["role"] == "user"
        assert all(m["role"] != "assistant" for m in e["messages"])
        assert e["reference"] and e["labels"]


def test_file_with_bad_lines_is_used_and_the_bad_lines_reported(tmp_path, home):
    good = {"messages": [{"role": "user", "content": "Customer: my bill is wrong"},
                         {"role": "assistant", "content": "CSAT: 2/5"}], "meta": {"id": "a", "task": "csat"}}
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(good) + "\n{not json\n" + json.dumps({**good, "meta": {"id": "b", "task": "csat"}}) + "\n")
    examples, _, problems = evaluate.load_examples(home, str(path))
    assert [e["key"] for e in examples] == ["a", "b"]
    assert examples[0]["labels"] == {"csat": 2}  # labels parsed from the reference answer
    assert len(problems) == 1 and problems[0].startswith(f"{path}:2: invalid JSON")
    with pytest.raises(evaluate.EvalDataError, match="no such file"):
        evaluate.load_examples(home, str(tmp_path / "missing.jsonl"))


def test_resumed_evaluation_neither_repeats_nor_loses_predictions(demo_home):
    cfg = EvalConfig(model="fake-model", limit=10, batch_size=3, max_new_tokens=400)
    examples, source, _ = evaluate.load_examples(demo_home, limit=10)
    gen = FakeGenerator(_chain_answer)
    with pytest.raises(JobStopped):
        evaluate.evaluate_model(demo_home, "fake-model", examples, source, cfg, ctx=StopAfter(demo_home, 2),
                                generator=gen)
    # The stop is checked before each batch and between decode steps inside it (the fake decodes
    # one answer a step): the 1st batch started, its 1st answer was stored, the stop landed.
    assert len(gen.prompts) == 3
    db = store.connect(demo_home)
    assert db.execute("SELECT COUNT(*), status FROM evaluations").fetchone() == (1, "stopped")
    assert db.execute("SELECT COUNT(*) FROM eval_predictions").fetchone()[0] == 2  # stored as each was finished
    gen2 = FakeGenerator(_chain_answer)
    eval_id = evaluate.evaluate_model(demo_home, "fake-model", examples, source, cfg, generator=gen2)
    assert len(gen2.prompts) == 8  # only the rest
    keys = [r[0] for r in db.execute("SELECT example_key FROM eval_predictions WHERE evaluation_id = ?", [eval_id])]
    assert sorted(keys) == sorted(e["key"] for e in examples)
    row = evaluate.evaluation_row(db, eval_id)
    assert row["status"] == "succeeded" and row["metrics"]["overall"]["n"] == 10
    assert row["metrics"]["structure"]["compliance_rate"] == 1.0
    # The key makes a duplicate impossible even for a buggy caller.
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO eval_predictions (evaluation_id, example_key, output, created_at) VALUES (?, ?, 'x', 0)",
                   [eval_id, keys[0]])


def test_changed_settings_make_a_new_evaluation(demo_home):
    examples, source, _ = evaluate.load_examples(demo_home, limit=2)
    a = evaluate.evaluate_model(demo_home, "fake-model", examples, source, EvalConfig(max_new_tokens=50),
                                generator=FakeGenerator())
    b = evaluate.evaluate_model(demo_home, "fake-model", examples, source, EvalConfig(max_new_tokens=60),
                                generator=FakeGenerator())
    again = evaluate.evaluate_model(demo_home, "fake-model", examples, source, EvalConfig(max_new_tokens=50),
                                    generator=FakeGenerator())
    assert a != b and again == a


def test_base_vs_tuned_report_json_and_escaped_html(demo_home, tmp_path):
    hostile = "<script>alert('x')</script> CSAT: 1/5 <img src=x onerror=alert(1)>"
    gens = {"base-m": FakeGenerator(lambda m: hostile), "tuned-m": FakeGenerator(_chain_answer)}
    report_path = tmp_path / "out" / "R.json"
    cfg = EvalConfig(model="tuned-m", base="base-m", limit=6, report=str(report_path))
    result = evaluate.run_evaluation(demo_home, cfg, generators=gens)
    report = json.loads(report_path.read_text())
    assert [m["role"] for m in report["models"]] == ["base", "tuned"]
    tuned = report["models"][1]["metrics"]
    for key in ("structure", "quality_score", "tasks", "overall"):
        assert key in tuned
    assert set(tuned["tasks"]) == set(tasks.TASKS)
    assert {"exact_accuracy", "within_one_accuracy", "mae", "parse_rate"} <= set(tuned["tasks"]["csat"])
    assert {"accuracy", "per_class", "macro_f1", "confusion"} <= set(tuned["tasks"]["churn"])
    deltas = report["comparison"]["deltas"]
    compliance = deltas["structure.compliance_rate"]
    assert {k: compliance[k] for k in ("base", "tuned", "delta", "better")} == {
        "base": 0.0, "tuned": 1.0, "delta": 1.0, "better": True}
    assert report["examples"], "the answers differ, so there are disagreements to show"
    html = (tmp_path / "out" / "R.html").read_text()
    assert result["html"] == str(tmp_path / "out" / "R.html")
    # Self-contained and inert: no script, image, frame or stylesheet tags; the model text is escaped.
    assert not re.search(r"<\s*(script|img|iframe|link|object)\b", html, re.I)
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    db = store.connect(demo_home)
    rows = db.execute("SELECT id, model, compare_to, report_path FROM evaluations ORDER BY id").fetchall()
    assert [(r[1], r[2]) for r in rows] == [("base-m", None), ("tuned-m", rows[0][0])]
    assert all(r[3] == str(report_path) for r in rows)


def test_unparseable_answers_are_counted_not_dropped(demo_home):
    cfg = EvalConfig(model="mute", limit=6)
    result = evaluate.run_evaluation(demo_home, cfg, generators={"mute": FakeGenerator(lambda m: "I am not sure.")})
    m = json.loads(open(result["report"]).read())["models"][0]["metrics"]
    assert m["overall"]["scored"] == 6 and m["overall"]["parse_rate"] == 0.0 and m["overall"]["accuracy"] == 0.0
    assert m["tasks"]["csat"]["n"] == 1 and m["tasks"]["csat"]["exact_accuracy"] == 0.0
    assert m["tasks"]["churn"]["confusion"]["matrix"][0][-1] + sum(r[-1] for r in m["tasks"]["churn"]["confusion"]
                                                                   ["matrix"][1:]) == 1


def test_ccr_eval_refuses_unusable_data_before_creating_a_job(home, tmp_path, capsys):
    from engine import cli

    assert cli.main(["eval", "--data", "/nonexistent/test.jsonl"]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": 1}\n')
    assert cli.main(["eval", "--data", str(bad)]) == 2
    assert f"{bad}: no usable examples ({bad}:1: messages is missing" in capsys.readouterr().err
    assert cli.main(["eval"]) == 2  # no dataset in this home
    assert "no dataset yet" in capsys.readouterr().err
    assert store.connect(home).execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0


@pytest.mark.slow
def test_ccr_eval_with_the_embedded_model(demo_home, tmp_path, embedded_generator, monkeypatch, capsys):
    """The done-when command on the real model: structure, CSAT, churn and quality metrics in R.json."""
    from engine import cli
    from engine.data import datasets
    from engine.core import generation

    monkeypatch.setattr(generation, "LocalGenerator", lambda *a, **k: embedded_generator)  # loaded once per session
    test_file = tmp_path / "test.jsonl"
    datasets.export_dataset(demo_home, "demo-seed0", test_file, split="test")
    report = tmp_path / "R.json"
    rc = cli.main(["eval", "--data", str(test_file), "--limit", "3", "--max-new-tokens", "12", "--batch-size", "3",
                   "--report", str(report)])
    assert rc == 0, capsys.readouterr()
    r = json.loads(report.read_text())
    m = r["models"][0]["metrics"]
    assert r["n_examples"] == 3 and m["overall"]["n"] == 3
    assert set(m["tasks"]) == {"csat", "quality", "churn"}
    assert 0.0 <= m["tasks"]["csat"]["within_one_accuracy"] <= 1.0
    assert "compliance_rate" in m["structure"] and m["quality_score"]["n"] == 3
    db = store.connect(demo_home)
    outputs = [r[0] for r in db.execute("SELECT output FROM eval_predictions")]
    assert len(outputs) == 3 and all(isinstance(o, str) for o in outputs)
    job = db.execute("SELECT kind, status FROM jobs").fetchall()
    assert job == [("eval", "succeeded")]
    assert (tmp_path / "R.html").exists()


def test_base_vs_tuned_table_carries_intervals_n_and_the_paired_verdict(demo_home, tmp_path, capsys):
    """Six examples, one per task: the structure jump (0/6 -> 6/6) is significant by McNemar, a
    per-task figure over one example never is, and every table says so."""
    from engine.cli.output import print_eval_table
    from engine.evaluation import formatting

    gens = {"base-m": FakeGenerator(lambda m: "CSAT: 1/5"), "tuned-m": FakeGenerator(_chain_answer)}
    report_path = tmp_path / "R.json"
    result = evaluate.run_evaluation(demo_home, EvalConfig(model="tuned-m", base="base-m", limit=6,
                                                           report=str(report_path)), generators=gens)
    report = json.loads(report_path.read_text())
    for m in report["models"]:
        iv = m["metrics"]["intervals"]
        # Every headline figure has its interval (an MAE over no parsed answer has neither).
        assert {k for k, v in m["headline"].items() if v is not None} <= set(iv)
        assert iv["structure.compliance_rate"]["n"] == 6 and iv["csat.within_one_accuracy"]["n"] == 1
    tuned_iv = report["intervals"]["tuned-m"]
    assert tuned_iv["structure.compliance_rate"] == {"value": 1.0, "ci": [0.6097, 1.0], "n": 6, "method": "wilson"}
    deltas = report["comparison"]["deltas"]
    compliance = deltas["structure.compliance_rate"]
    assert compliance["test"] == "mcnemar_exact" and compliance["discordant"] == {"base_only": 0, "tuned_only": 6}
    assert compliance["p_value"] == 0.03125 and compliance["significant"] is True
    assert compliance["verdict"] == "significant at 95% (p=0.0312, n=6)"
    # Paired by example id: the pairs are the 6 examples both models answered.
    stored = evaluate.predictions(store.connect(demo_home), report["models"][1]["evaluation_id"])
    assert compliance["n"] == len({r["example_key"] for r in stored}) == 6
    churn = deltas["churn.accuracy"]
    assert churn["n"] == 1 and churn["significant"] is False
    assert churn["verdict"].startswith("not significant") and "n=1 per task" in churn["verdict"]
    mean = deltas["quality_score.mean"]
    assert mean["test"] == "paired_bootstrap" and mean["n"] == 6 and mean["delta_ci"][0] <= mean["delta"]
    assert report["sample_sizes"] == {t: 1 for t in tasks.TASKS}
    warning = report["small_sample_warning"]
    assert "Small sample: 1 example for" in warning and "cannot be significant" in warning
    assert report["statistics"]["significant"] == "p < 0.05"
    # The same comparison recomputed from the stored predictions (what the page shows) is identical.
    assert evaluate.comparison(store.connect(demo_home), *result["evaluations"]) == deltas

    html = (tmp_path / "R.html").read_text()
    assert "[0.61, 1] n=6" in html  # the tuned compliance interval under its figure
    assert "significant at 95% (p=0.0312, n=6)" in html and "not significant" in html
    assert "class=warn" in html and "smoke test, not a result" in html
    assert "<th class=l>paired test at 95%</th>" in html

    # The constant-answer bar: one example per task, so the best constant answer is each reference
    # itself (6/6); each model's accuracy against it is its own overall accuracy, tested paired.
    const = report["constant_answer"]
    assert (const["correct"], const["n"], const["accuracy"]) == (6, 6, 1.0)
    for m, side in zip(const["models"], report["models"]):
        assert m["model"] == side["model"] and m["accuracy"] == side["headline"]["overall.accuracy"]
        assert m["constant"] == 1.0 and m["n"] == 6 and m["discordant"]["model_only"] == 0
        assert m["summary"] in html
    assert const["description"] in html and "Against answering one thing per task" in html

    print_eval_table(result)  # what `ccr eval --base` prints after the job
    out = capsys.readouterr().out
    assert const["description"] in out and "tuned-m: overall accuracy" in out
    from engine.demo import format_summary   # what `ccr demo` prints at its end
    demo_lines = format_summary({"comparison": result["comparison"], "constant_answer": result["constant_answer"],
                                 "stages": {"total_s": 60.0}, "report": "R.json", "html": "R.html"})
    assert const["description"] in demo_lines and const["models"][1]["summary"] in demo_lines
    line = next(x for x in out.splitlines() if x.startswith("structure.compliance_rate"))
    assert "0.00 [0.00, 0.39], n=6" in line and "1.00 [0.61, 1.00], n=6" in line
    assert "+1" in line and "0.0312" in line and "significant at 95%" in line
    assert "not significant" in next(x for x in out.splitlines() if x.startswith("churn.accuracy"))
    assert "warning: Small sample" in out
    assert formatting.format_figure(tuned_iv["structure.compliance_rate"]) in out


def test_intervals_of_an_evaluation_stored_without_them_are_computed_from_its_predictions(demo_home):
    examples, source, _ = evaluate.load_examples(demo_home, limit=6)
    eid = evaluate.evaluate_model(demo_home, "fake-model", examples, source, EvalConfig(),
                                  generator=FakeGenerator(_chain_answer))
    db = store.connect(demo_home)
    stored = evaluate.evaluation_row(db, eid)["metrics"]
    legacy = {k: v for k, v in stored.items() if k != "intervals"}
    store.finish_evaluation(db, eid, "succeeded", legacy)
    assert "intervals" not in evaluate.evaluation_row(db, eid)["metrics"]
    assert evaluate.intervals_of(db, eid) == stored["intervals"]


# ---------------------------------------------------------------------------------------------
# Faithfulness of the answers
# ---------------------------------------------------------------------------------------------

NEUTRAL = "The call covered the account question and the next steps."
INVENTED = "The agent, Zebulon, refunded $4,321 on Tuesday <img src=x onerror=alert('x')>."


def _faith_chain(first: str) -> str:
    return render_chain({1: first, 2: NEUTRAL, 3: NEUTRAL, 4: NEUTRAL, 5: NEUTRAL}, {}, {}, "CSAT: 3/5")


def _faith_models(examples: list[dict]) -> tuple[dict, dict]:
    """A base model whose answers have known faults, and a tuned one whose answers are faithful.

    Base, by example: a negative-sentiment call gets "the customer was delighted" (one
    contradiction); the first two other calls get three invented specifics (a name, an amount, a
    weekday); the rest get a bare label line, which has no reasoning to judge.
    """
    plan, others = {}, 0
    for e in examples:
        if e["labels"]["sentiment"] == "negative":
            plan[e["prompt"]] = _faith_chain("The customer was delighted with the outcome.")
        else:
            plan[e["prompt"]] = _faith_chain(INVENTED) if others < 2 else "CSAT: 3/5"
            others += 1
    base = FakeGenerator(lambda m: plan[m[-1]["content"]])
    tuned = FakeGenerator(lambda m: _faith_chain(NEUTRAL))
    return {"base-m": base, "tuned-m": tuned}, plan


def test_faithfulness_figures_intervals_and_paired_tests(demo_home, tmp_path, capsys):
    from engine.cli.output import print_eval_table
    from engine.evaluation import stats

    examples, _, _ = evaluate.load_examples(demo_home, limit=12)
    negative = sum(e["labels"]["sentiment"] == "negative" for e in examples)
    assert negative == 7 and len(examples) == 12  # the demo test split's first 12 calls
    gens, _ = _faith_models(examples)
    report_path = tmp_path / "R.json"
    result = evaluate.run_evaluation(demo_home, EvalConfig(model="tuned-m", base="base-m", limit=12,
                                                           report=str(report_path)), generators=gens)
    report = json.loads(report_path.read_text())
    base, tuned = (m["metrics"]["faithfulness"] for m in report["models"])
    assert base == {"n": 12, "judged": 9, "not_judged": 3, "faithful": 0, "faithful_rate": 0.0,
                    "with_contradiction": 7, "contradiction_rate": 0.5833, "invented": 6, "with_invented": 2,
                    "invented_per_answer": 0.5}
    assert (tuned["judged"], tuned["faithful_rate"], tuned["contradiction_rate"], tuned["invented_per_answer"]) == (
        12, 1.0, 0.0, 0.0)
    # Intervals: Wilson for the rates (faithful_rate over the 9 judged answers only), bootstrap for the mean.
    iv = report["intervals"]["base-m"]
    assert iv["faithfulness.faithful_rate"] == {"value": 0.0, "ci": list(stats.wilson(0, 9)), "n": 9,
                                                "method": "wilson"}
    assert iv["faithfulness.contradiction_rate"] == {"value": 0.5833, "ci": list(stats.wilson(7, 12)), "n": 12,
                                                     "method": "wilson"}
    inv = iv["faithfulness.invented_per_answer"]
    assert inv["method"] == "bootstrap" and inv["n"] == 12 and inv["ci"][0] <= 0.5 <= inv["ci"][1]
    # Paired tests: McNemar over the 9 examples both models' answers could be judged on, and over all 12.
    d = report["comparison"]["deltas"]
    fr = d["faithfulness.faithful_rate"]
    assert fr["test"] == "mcnemar_exact" and fr["n"] == 9 and fr["discordant"] == {"base_only": 0, "tuned_only": 9}
    assert fr["p_value"] == 2 / 2 ** 9 and fr["significant"] and fr["better"] and fr["delta"] == 1.0
    cr = d["faithfulness.contradiction_rate"]
    # "base_only" counts the examples where only the base has a contradiction: fewer is better.
    assert cr["n"] == 12 and cr["discordant"] == {"base_only": 7, "tuned_only": 0} and cr["p_value"] == 2 / 2 ** 7
    assert cr["delta"] == -0.5833 and cr["better"] is True and cr["significant"]
    ip = d["faithfulness.invented_per_answer"]
    assert ip["test"] == "paired_bootstrap" and ip["n"] == 12 and ip["delta"] == -0.5 and ip["better"] is True
    assert not ip["significant"] and ip["verdict"].startswith("not significant")  # two answers carry it all
    # The answers: per-prediction faithfulness and the sentences at fault, stored and in the report's examples.
    rows = evaluate.predictions(store.connect(demo_home), report["models"][0]["evaluation_id"])
    stored = store.connect(demo_home).execute(
        "SELECT COUNT(*) FROM eval_predictions WHERE faithfulness IS NOT NULL").fetchone()[0]
    assert stored == 24 and not any(r["faithfulness"].get("on_read") for r in rows)
    inventing = [r for r in rows if r["faithfulness"]["invented"]]
    assert len(inventing) == 2 and all(r["faithfulness"]["faithful"] is False for r in inventing)
    assert {f["sentence"] for r in inventing for f in r["at_fault"]} == {INVENTED}
    bare = [r for r in rows if not r["faithfulness"]["judged"]]
    assert len(bare) == 3 and all(r["faithfulness"]["faithful"] is None and r["at_fault"] == [] for r in bare)
    ex = next(it for it in report["examples"] if it["base"]["faithfulness"]["invented"])
    assert ex["base"]["at_fault"][0]["kind"] == "invented" and ex["tuned"]["faithfulness"]["faithful"] is True
    assert report["faithfulness"]["base-m"] == base and "faithful_rate over the judged" in report["statistics"][
        "faithfulness"]

    html = report_path.with_suffix(".html").read_text()
    assert "<h2>Faithfulness of the answers</h2>" in html and "faithfulness.not_judged" in html
    assert f"[0, {stats.wilson(0, 9)[1]:.3g}] n=9" in html  # the base's faithful rate over its 9 judged answers
    assert "unfaithful: 3 unsupported specifics" in html and "unfaithful: 1 contradiction<" in html
    assert "Sentences at fault:" in html and "&lt;img src=x onerror=alert(&#x27;x&#x27;)&gt;" in html
    assert not re.search(r"<\s*img\b", html, re.I)

    print_eval_table(result)
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("faithfulness.faithful_rate"))
    assert "0.00 [0.00, 0.30], n=9" in line and "1.00 [0.76, 1.00], n=12" in line and "significant at 95%" in line
    assert "faithfulness of base-m: 9 of 12 answers judged" in out


def test_faithfulness_of_an_evaluation_stored_before_it_is_computed_on_read(demo_home):
    examples, source, _ = evaluate.load_examples(demo_home, limit=12)
    gens, _ = _faith_models(examples)
    base = evaluate.evaluate_model(demo_home, "base-m", examples, source, EvalConfig(), generator=gens["base-m"])
    tuned = evaluate.evaluate_model(demo_home, "tuned-m", examples, source, EvalConfig(), generator=gens["tuned-m"])
    db = store.connect(demo_home)
    now = {eid: evaluate.evaluation_row(db, eid)["metrics"] for eid in (base, tuned)}
    deltas = evaluate.comparison(db, base, tuned)
    # Make them look like evaluations from before: no faithfulness per answer, none in the metrics.
    for eid in (base, tuned):
        legacy = {k: v for k, v in now[eid].items() if k != "faithfulness"}
        legacy["intervals"] = {k: v for k, v in legacy["intervals"].items() if not k.startswith("faithfulness.")}
        store.finish_evaluation(db, eid, "succeeded", legacy)
    db.execute("UPDATE eval_predictions SET faithfulness = NULL")
    rows = evaluate.predictions(db, base)
    assert all(r["faithfulness"]["on_read"] for r in rows)
    assert sum(len(r["at_fault"]) for r in rows) == 7 + 2 * 3
    again = evaluate.evaluation_row(db, base)["metrics"]
    assert again["faithfulness"] == now[base]["faithfulness"]
    assert {k: v for k, v in again["intervals"].items() if k.startswith("faithfulness.")} == {
        k: v for k, v in now[base]["intervals"].items() if k.startswith("faithfulness.")}
    redone = evaluate.comparison(db, base, tuned)
    assert {k: redone[k] for k in redone if k.startswith("faithfulness.")} == {
        k: deltas[k] for k in deltas if k.startswith("faithfulness.")}
    # Nothing was written back: the stored rows still read as before.
    assert db.execute("SELECT COUNT(*) FROM eval_predictions WHERE faithfulness IS NOT NULL").fetchone()[0] == 0


class Recorder(StopAfter):
    """A JobContext stand-in that records every progress write."""

    def __init__(self, home):
        super().__init__(home, 10 ** 6)
        self.writes = []

    def progress(self, done, total=None, **stats):
        self.writes.append({"done": done, "total": total, **stats})


def test_evaluation_progress_moves_inside_a_batch(demo_home):
    import ui

    ctx = Recorder(demo_home)
    cfg = EvalConfig(model="tuned-m", base="base-m", limit=6, batch_size=6, max_new_tokens=400)
    evaluate.run_evaluation(demo_home, cfg, ctx=ctx, generators={"tuned-m": FakeGenerator(_chain_answer),
                                                                 "base-m": FakeGenerator(_chain_answer)})
    inside = [w for w in ctx.writes if w.get("batch")]
    # the fake decodes one answer per step: each step is a write, with the batch's state in words
    assert len(inside) == 12 and all(w["total"] == 12 for w in inside)
    fractions = [w["fraction"] for w in inside]
    assert fractions == sorted(fractions) and fractions[0] > 0 and fractions[-1] == 1.0
    assert [w["done"] for w in inside[:6]] == [1, 2, 3, 4, 5, 6]  # each answer stored before its step ends
    line = ui.progress_line({"status": "running", "stats": {**inside[1], "at": 0}, "started_at": 0}, now=1)
    assert "batch of 6: 2/6 answers done" in line and "step 2 of at most 400" in line and "evaluating base-m" in line
