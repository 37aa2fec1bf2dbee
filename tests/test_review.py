"""Phase 1 review, export, `ccr score` and the Generate / Quality / Review pages (with chains present)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from engine import api, cli

from engine.chains import acceptance, export, prompt, quality, review, selection

from engine.core import store

sys.path.insert(0, str(Path(__file__).parent))
from fake_teacher_server import BAD_CHAIN, good_chain  # noqa: E402

TID, PK = "smollm2-135m-instruct", "2-guided"


def make_chains(home, n_train: int = 4, n_val: int = 2) -> dict[str, list[int]]:
    """Chains for the first train and validation examples: even ones good (passed), odd ones bad
    (flagged). Returns chain ids by status."""
    db = store.connect(home)
    ds_id, _ = selection.resolve_dataset(db, None)
    exs = (selection.load_examples(db, selection.selection_ids(db, ds_id, "train", n_train))
           + selection.load_examples(db, selection.selection_ids(db, ds_id, "validation", n_val)))
    chains = []
    for i, ex in enumerate(exs):
        raw = good_chain(prompt.free_messages(ex)[-1]["content"]) if i % 2 == 0 else BAD_CHAIN
        text = prompt.finish_free(ex, raw)
        r = acceptance.score_for(ex, text)
        status = "passed" if quality.passes(r) else "flagged"
        chains.append({"example_id": ex["id"], "prompt_version": PK, "teacher": TID, "text": text, "score": r["score"],
                       "criteria": r["criteria"], "status": status, "attempts": 1 if i % 2 == 0 else 3,
                       "reasons": acceptance.stored_reasons(r["criteria"], status)})
    assert store.save_generation_step(db, [], chains) == len(chains)
    out: dict[str, list[int]] = {}
    for cid, status in db.execute("SELECT id, status FROM chains ORDER BY id"):
        out.setdefault(status, []).append(cid)
    return out


def test_review_decisions_are_stored_and_edit_rescores(demo_home):
    ids = make_chains(demo_home)
    assert len(ids["passed"]) == 3 and len(ids["flagged"]) == 3
    f1, f2, f3 = ids["flagged"]
    assert review.review(demo_home, [f1], "approve", "ana") == 1
    assert review.review(demo_home, [f2], "reject", "ben") == 1
    # edit: the bad chain replaced by a good one is re-scored and approved
    c = review.chain_detail(demo_home, f3)
    better = prompt.finish_free(c["example"], good_chain(prompt.free_messages(c["example"])[-1]["content"]))
    r = review.edit_chain(demo_home, f3, better, "cy")
    assert r["status"] == "approved" and r["score"] > r["score_before"] and r["score"] >= 70
    # an edit that is still bad stays flagged with its new score
    r2 = review.edit_chain(demo_home, f3, "<thinking>too short</thinking>", "cy")
    assert r2["status"] == "flagged" and r2["score"] < 40
    with pytest.raises(ValueError):
        review.edit_chain(demo_home, f3, "   ")
    db = store.connect(demo_home)
    reviews = db.execute("SELECT chain_id, decision, reviewer, score_before, score_after, created_at, edited_text "
                         "FROM reviews ORDER BY id").fetchall()
    assert [(r[0], r[1], r[2]) for r in reviews] == [(f1, "approve", "ana"), (f2, "reject", "ben"),
                                                     (f3, "edit", "cy"), (f3, "edit", "cy")]
    assert all(r[5] > 0 for r in reviews) and reviews[2][6] == better and reviews[3][3] == reviews[2][4]
    detail = review.chain_detail(demo_home, f3)
    assert detail["text"].startswith("<thinking>too short") and len(detail["reviews"]) == 2
    # bulk over a filter: reject everything still flagged
    assert review.bulk_review(demo_home, "reject", status="flagged") == 1
    assert review.list_chains(demo_home, status="flagged")[1] == 0
    assert review.list_chains(demo_home, status="rejected")[1] == 2


def test_export_follows_status_and_keeps_meta(demo_home):
    ids = make_chains(demo_home)
    review.review(demo_home, [ids["flagged"][0]], "approve")
    review.review(demo_home, [ids["passed"][0]], "reject")
    r = export.export_reasoning(demo_home)
    train = demo_home.data / "train_reasoning.jsonl"
    val = demo_home.data / "validation_reasoning.jsonl"
    assert r["train"]["path"] == str(train) and r["validation"]["path"] == str(val)
    db = store.connect(demo_home)
    expected = {row[0]: row for row in db.execute(
        "SELECT e.ex_id, c.text, c.score, c.status, e.split FROM chains c JOIN examples e ON e.id = c.example_id "
        "WHERE c.status IN ('passed', 'approved')")}
    lines = [json.loads(x) for p in (train, val) for x in p.read_text().splitlines()]
    assert len(lines) == len(expected) == r["train"]["lines"] + r["validation"]["lines"]
    for obj in lines:
        meta = obj["meta"]
        ex_id, text, score, status, split = expected[meta["id"]]
        assert obj["messages"][-1] == {"role": "assistant", "content": text}
        assert obj["messages"][0]["role"] == "system" and obj["messages"][1]["role"] == "user"
        assert meta["chain_score"] == score and meta["chain_status"] == status and meta["labels"] and meta["task"]
    # --include-flagged adds the flagged ones; rejected never appear
    r2 = export.export_reasoning(demo_home, demo_home.data / "x" / "train_all.jsonl", include_flagged=True)
    n_flagged = db.execute("SELECT COUNT(*) FROM chains WHERE status = 'flagged'").fetchone()[0]
    assert r2["train"]["lines"] + r2["validation"]["lines"] == len(expected) + n_flagged
    assert Path(r2["validation"]["path"]).name == "validation_all.jsonl"
    assert not [p for p in (demo_home.data / "x").iterdir() if p.name.endswith(".tmp")]


def test_cli_review_export_and_score(demo_home, capsys, tmp_path):
    ids = make_chains(demo_home)
    home = ["--home", str(demo_home.data)]
    assert cli.main(["review", "list", *home]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 chains" in out and "flagged" in out
    assert cli.main(["review", "approve", str(ids["flagged"][0]), *home, "--reviewer", "ann"]) == 0
    assert "approved 1 chain" in capsys.readouterr().out
    assert cli.main(["review", "reject", *home]) == 2  # neither ids nor --all: refused
    capsys.readouterr()
    assert cli.main(["review", "reject", "--all", "--max-score", "60", *home]) == 0
    assert "rejected 2 chain" in capsys.readouterr().out
    assert cli.main(["review", "show", str(ids["passed"][0]), *home]) == 0
    assert "--- transcript ---" in capsys.readouterr().out
    edit = tmp_path / "edit.txt"
    edit.write_text("<thinking>\nStep 1 - Customer Sentiment Analysis\nfine\n</thinking>")
    assert cli.main(["review", "edit", str(ids["passed"][1]), "--file", str(edit), *home]) == 0
    assert "now flagged" in capsys.readouterr().out
    out_file = tmp_path / "train_reasoning.jsonl"
    assert cli.main(["export", "reasoning", "--out", str(out_file), *home]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 train lines" in out and "validation" in out
    # ccr score over the export: --json has line, score, criteria; the summary has the three shares
    assert cli.main(["score", str(out_file), "--json"]) == 0
    objs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["line"] for o in objs] == [1, 2] and all(set(o) == {"line", "score", "criteria"} for o in objs)
    # the file's chains score as they did in the database (one passed, one approved by a person)
    stored = sorted(r[0] for r in store.connect(demo_home).execute(
        "SELECT c.score FROM chains c JOIN examples e ON e.id = c.example_id WHERE e.split = 'train' "
        "AND c.status IN ('passed', 'approved')"))
    assert sorted(o["score"] for o in objs) == pytest.approx(stored)
    assert cli.main(["score", str(out_file)]) == 0
    summary = capsys.readouterr().out.splitlines()[0]
    assert summary.startswith("scored 2 chains (0 unreadable lines): average ")
    assert "50.0% >= 70, 100.0% with all sections" in summary
    assert cli.main(["score", str(tmp_path / "missing.jsonl")]) == 2


def test_quality_report_targets(demo_home):
    make_chains(demo_home)
    r = review.quality_report(demo_home)
    assert r["count"] == 6 and len(r["scores"]) == 6
    avg = sum(r["scores"]) / 6
    assert r["average"] == round(avg, 2)
    assert r["share_all_sections"] == 1.0  # the bad chains have every header, just no content
    assert r["share_ge_threshold"] == 0.5
    assert [t["met"] for t in r["targets"]] == [avg >= 75, False, True, True]
    # the good chains are faithful; the bad ones are empty, not unfaithful
    assert r["targets"][3]["value"] == "100.0%" and "faithful" in r["targets"][3]["target"]
    assert r["share_contradiction"] == r["share_invented"] == 0.0 and r["unchecked"] == 0
    assert set(r["criteria_pass"]) == set(quality.CRITERIA) and r["per_task"]


# ---------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def app(demo_home, open_page):
    make_chains(demo_home)
    return open_page(None, check=False)


def _texts(at) -> str:
    return "\n".join([t.value for t in at.text] + [m.value for m in at.markdown] + [c.value for c in at.caption]
                     + [str(x.value) for x in at.success] + [str(x.value) for x in at.info])


def test_generate_page(app, demo_home):
    at = app
    at.switch_page("pages/generate.py").run()
    assert not at.exception
    assert at.button(key="gen-launch").disabled  # no test yet, no override
    assert len(at.dataframe) >= 1  # latest chains
    text = _texts(at)
    assert "Thinking" in text and "Step 1 - Customer Sentiment Analysis" in text and "Final answer" in text
    # an override opens the launch button, and is recorded
    at.text_input[-1].input("demo")
    at.button[[b.label for b in at.button].index("Record override")].click().run()
    # the whole split is hours on this CPU: the launch waits for a confirmation naming the estimate
    assert not at.exception and at.button(key="gen-launch").disabled
    next(c for c in at.checkbox if c.label.startswith("I know this run takes about")).check().run()
    assert not at.button(key="gen-launch").disabled
    gate = store.connect(demo_home).execute("SELECT override, reason FROM gate_tests").fetchall()
    assert gate == [(1, "demo")]
    at.button(key="gen-launch").click().run()
    assert not at.exception
    job = store.connect(demo_home).execute("SELECT kind, status, config FROM jobs").fetchone()
    assert job[0] == "generate" and job[1] == "queued" and json.loads(job[2])["teacher"] == TID


def test_quality_page(app):
    at = app
    at.switch_page("pages/quality.py").run()
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert "average score >= 75" in labels and "all sections present" in labels
    assert any(m.delta in ("met", "not met") for m in at.metric)
    assert len(at.get("plotly_chart")) >= 2
    assert "chains scored 0-70" in _texts(at)
    # The histogram: the ten fixed 10-point bins whatever the scores, n in the title, a small-sample warning.
    hist = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert hist["data"][0]["x"] == [f"{b}-{b + 9}" for b in range(0, 90, 10)] + ["90-100"]
    assert sum(hist["data"][0]["y"]) == 6 and hist["layout"]["title"]["text"] == "Score distribution (6 chains)"
    assert "Small sample: 6 chains" in _texts(at)
    assert any("Small sample: fewer than 10 chains for" in w.value for w in at.warning)


def test_review_page(app, demo_home):
    at = app
    at.switch_page("pages/review.py").run()
    assert not at.exception
    text = _texts(at)
    assert "Transcript" in text and "Why it scored this way" in text
    at.text_input(key="rv-reviewer").input("Ann Example")
    at.button(key="rv-name-save").click().run()
    first = store.connect(demo_home).execute(
        "SELECT id FROM chains WHERE status = 'flagged' ORDER BY score, id LIMIT 1").fetchone()[0]
    at.button(key="rv-approve").click().run()
    assert not at.exception
    db = store.connect(demo_home)
    assert db.execute("SELECT status FROM chains WHERE id = ?", [first]).fetchone()[0] == "approved"
    assert db.execute("SELECT decision, reviewer FROM reviews WHERE chain_id = ?", [first]).fetchone() == \
        ("approve", "Ann Example")
    assert "approved chain" in _texts(at)
    # edit and re-score through the form: the button says that saving approves
    at.text_area[0].input("<thinking>\nStep 1 - Customer Sentiment Analysis\nshort\n</thinking>")
    at.button[[b.label for b in at.button].index("Save edit and approve")].click().run()
    assert not at.exception
    assert db.execute("SELECT COUNT(*) FROM reviews WHERE decision = 'edit'").fetchone()[0] == 1
    assert "still flagged: the edit does not pass" in "\n".join(str(x.value) for x in at.success)


def test_review_page_asks_a_reviewer_name_once_and_refuses_decisions_without(app, demo_home):
    at = app
    at.switch_page("pages/review.py").run()
    db = store.connect(demo_home)
    # No name yet: every decision is off, and the page says why.
    assert any("off until you give your name" in w.value for w in at.warning)
    save = next(b for b in at.button if b.label.startswith("Save edit"))
    assert save.label == "Save edit and approve"
    assert at.button(key="rv-approve").disabled and at.button(key="rv-reject").disabled and save.disabled
    assert next(b for b in at.button if b.label == "Apply to all matching").disabled
    # A blank name is refused with the reason; nothing is recorded.
    at.text_input(key="rv-reviewer").input("   ")
    at.button(key="rv-name-save").click().run()
    assert any("a reviewer name is required" in e.value for e in at.error)
    assert at.button(key="rv-approve").disabled
    assert db.execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == 0
    # The engine refuses too (a decision that slips past the page).
    with pytest.raises(ValueError, match="reviewer name is required"):
        api.review_chains([1], "approve", None)
    with pytest.raises(ValueError, match="reviewer name is required"):
        api.edit_chain(1, "x", "  ")
    with pytest.raises(ValueError, match="reviewer name is required"):
        api.bulk_review("reject", "", status="flagged")
    assert db.execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == 0
    # Given once, the name stays for the session: on another page and back, no second question.
    at.text_input(key="rv-reviewer").input("  Bo  ")
    at.button(key="rv-name-save").click().run()
    assert "Reviewing as Bo" in _texts(at).replace("**", "")
    at.switch_page("pages/quality.py").run()
    at.switch_page("pages/review.py").run()
    assert not at.exception and not [w for w in at.text_input if w.key == "rv-reviewer"]
    at.button(key="rv-reject").click().run()
    assert db.execute("SELECT decision, reviewer FROM reviews").fetchall() == [("reject", "Bo")]
    # Changing it asks again.
    at.button(key="rv-change-name").click().run()
    assert at.button(key="rv-approve").disabled


def test_cli_review_needs_a_reviewer(demo_home, capsys, monkeypatch):
    from engine import cli as cli_module

    ids = make_chains(demo_home)
    home = ["--home", str(demo_home.data)]
    assert cli.main(["review", "approve", str(ids["flagged"][0]), "--reviewer", "  ", *home]) == 2
    assert "a reviewer name is required" in capsys.readouterr().err
    assert cli.main(["review", "approve", str(ids["flagged"][0]), "--reviewer", "a\nb", *home]) == 2
    capsys.readouterr()
    # The default is the OS user name; where there is none, the command says to give --reviewer.
    monkeypatch.setattr(cli_module, "os_user", lambda: None)
    edit = demo_home.data / "edit.txt"
    edit.write_text("<thinking>x</thinking>")
    assert cli.main(["review", "edit", str(ids["flagged"][1]), "--file", str(edit), *home]) == 2
    assert "give --reviewer NAME" in capsys.readouterr().err
    assert cli.main(["review", "reject", "--all", *home]) == 2
    db = store.connect(demo_home)
    assert db.execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == 0
    monkeypatch.setattr(cli_module, "os_user", lambda: "osuser")
    assert cli.main(["review", "reject", str(ids["flagged"][2]), *home]) == 0
    assert cli.main(["review", "approve", str(ids["flagged"][0]), "--reviewer", "Ann", *home]) == 0
    assert db.execute("SELECT reviewer FROM reviews ORDER BY id").fetchall() == [("osuser",), ("Ann",)]
    capsys.readouterr()
    assert cli.main(["review", "show", str(ids["flagged"][0]), *home]) == 0
    assert "review: approve by Ann" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["review", "approve", "--help"])
    assert "--reviewer NAME" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Faithfulness in review: reasons stored per chain, the filter, the highlighted sentences
# ---------------------------------------------------------------------------------------------

INJECTED = "<b onmouseover=alert(1)>Sarah</b>"


def make_unfaithful_chains(home) -> dict[str, int]:
    """Three flagged chains for the first train examples: one contradicting its churn label, one
    inventing specifics (one of them inside markup, as a hostile teacher would write it), one
    empty (form). Returns chain ids by what is wrong."""
    db = store.connect(home)
    ds_id, _ = selection.resolve_dataset(db, None)
    exs = selection.load_examples(db, selection.selection_ids(db, ds_id, "train", 3))
    out, chains = {}, []
    for kind, ex in zip(("contradiction", "invented", "form"), exs):
        text = prompt.finish_free(ex, good_chain(prompt.free_messages(ex)[-1]["content"]))
        churn = ex["labels"]["churn"]
        if kind == "contradiction":
            opposite = "high" if churn == "low" else "low"
            text = text.replace(f"churn risk is {churn} because", f"churn risk is {opposite} because")
        elif kind == "invented":
            text = text.replace("Interaction quality was", f"After {INJECTED} took over on Monday at 9:45, "
                                "interaction quality was", 1)
        else:
            text = prompt.finish_free(ex, BAD_CHAIN)
        r = acceptance.score_for(ex, text)
        assert not quality.passes(r)
        chains.append({"example_id": ex["id"], "prompt_version": PK, "teacher": TID, "text": text, "score": r["score"],
                       "criteria": r["criteria"], "status": "flagged", "attempts": 3,
                       "reasons": acceptance.chain_reasons({**r, "faults": acceptance.structure_faults(text)})})
    assert store.save_generation_step(db, [], chains) == 3
    for kind, (cid,) in zip(("contradiction", "invented", "form"), db.execute("SELECT id FROM chains ORDER BY id")):
        out[kind] = cid
    return out


def test_review_list_filters_by_reason(demo_home, capsys):
    ids = make_unfaithful_chains(demo_home)
    for reason, cid in ids.items():
        rows, total = review.list_chains(demo_home, status="flagged", reason=reason)
        assert [r["id"] for r in rows] == [cid] and total == 1 and rows[0]["reasons"] == [reason]
    with pytest.raises(ValueError, match="reason must be one of"):
        review.list_chains(demo_home, reason="typo")
    detail = review.chain_detail(demo_home, ids["contradiction"])
    assert detail["reasons"] == ["contradiction"]
    assert [f["kind"] for f in detail["at_fault"]] == ["contradiction"]
    assert detail["at_fault"][0]["sentence"] in detail["text"] and "churn risk is" in detail["at_fault"][0]["reason"]
    # the CLI: the same filter, the reasons column, and `show` names the sentences at fault
    home = ["--home", str(demo_home.data)]
    assert cli.main(["review", "list", "--reason", "invented", *home]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 chains" in out and "invented" in out
    assert cli.main(["review", "list", "--reason", "contradiction", "--status", "flagged", *home]) == 0
    assert "1 of 1 chains" in capsys.readouterr().out
    assert cli.main(["review", "show", str(ids["invented"]), *home]) == 0
    out = capsys.readouterr().out
    assert "sentences at fault:" in out and "[invented]" in out and "'Monday' is not in the transcript" in out
    # bulk decisions take the filter too
    assert cli.main(["review", "reject", "--all", "--reason", "contradiction", *home]) == 0
    assert "rejected 1 chain" in capsys.readouterr().out
    assert review.list_chains(demo_home, status="rejected")[0][0]["id"] == ids["contradiction"]
    # an edit re-derives the reasons
    ex = detail["example"]
    fixed = prompt.finish_free(ex, good_chain(prompt.free_messages(ex)[-1]["content"]))
    assert review.edit_chain(demo_home, ids["contradiction"], fixed)["status"] == "approved"
    assert review.chain_detail(demo_home, ids["contradiction"])["reasons"] == []


def test_reasons_migration_backfills_existing_chains(demo_home):
    """A database from before the reasons column: the migration derives them from the stored
    breakdowns (a flagged chain without a faithfulness fault counts as form)."""
    ids = make_unfaithful_chains(demo_home)
    db = store.connect(demo_home)
    # back to the old schema: no column, the migration not applied
    db.execute("DROP INDEX chains_missing_reasons")
    db.execute("ALTER TABLE chains DROP COLUMN reasons")
    db.execute("DELETE FROM _sqlite_migrations WHERE name LIKE 'm_faith_%'")
    store.migrate(db, demo_home.db)
    # the lookup of chains without reasons reads the partial index, not the whole table
    plan = " ".join(r[-1] for r in db.execute("EXPLAIN QUERY PLAN SELECT id FROM chains WHERE reasons IS NULL"))
    assert "USING INDEX chains_missing_reasons" in plan
    acceptance.fill_missing_reasons(db)   # the chains side derives them (core does not import quality)
    got = dict(db.execute("SELECT id, reasons FROM chains").fetchall())
    assert got == {ids["contradiction"]: ",contradiction,", ids["invented"]: ",invented,", ids["form"]: ",form,"}
    store.migrate(db, demo_home.db)   # applied once only
    assert dict(db.execute("SELECT id, reasons FROM chains").fetchall()) == got


def test_review_page_filters_by_reason_and_marks_sentences(demo_home, open_page):
    ids = make_unfaithful_chains(demo_home)
    at = open_page("pages/review.py", check=False)
    assert not at.exception
    at.selectbox(key="rv-reason").select("invented specifics").run()
    assert not at.exception
    text = _texts(at)
    assert "1 chains match" in text and "Falls short for: invented" in text
    marked = [h.value for h in at.get("html")]
    assert marked and all("<mark" in h for h in marked)
    body = "\n".join(marked)
    # the chain's own markup arrives escaped inside our <mark>, never as a tag
    assert "&lt;b onmouseover=alert(1)&gt;Sarah&lt;/b&gt;" in body and "<b " not in body
    assert review.chain_detail(demo_home, ids["invented"])["at_fault"]
    at.selectbox(key="rv-reason").select("contradicts the labels").run()
    assert not at.exception and "Falls short for: contradiction" in _texts(at)
    assert any("<mark" in h.value for h in at.get("html"))
    at.selectbox(key="rv-reason").select("form (structure, content)").run()
    assert not at.exception and "Falls short for: form" in _texts(at) and not at.get("html")


def _passed_chains(home, ids: list[int]) -> None:
    db = store.connect(home)
    chains = []
    for ex in selection.load_examples(db, ids):
        text = prompt.finish_free(ex, good_chain(prompt.free_messages(ex)[-1]["content"]))
        r = acceptance.score_for(ex, text)
        assert quality.passes(r)
        chains.append({"example_id": ex["id"], "prompt_version": PK, "teacher": TID, "text": text, "score": r["score"],
                       "criteria": r["criteria"], "status": "passed", "attempts": 1,
                       "reasons": acceptance.stored_reasons(r["criteria"], "passed")})
    assert store.save_generation_step(db, [], chains) == len(chains)


def _assert_round_robin(kept: dict[str, int], available: dict[str, int]) -> None:
    """What a round-robin over label values leaves: values not used up differ by at most one, and
    a used-up value never has more than they do."""
    open_ = [kept.get(v, 0) for v in available if kept.get(v, 0) < available[v]]
    if open_:
        assert max(open_) - min(open_) <= 1, (kept, available)
        assert all(kept.get(v, 0) <= max(open_) for v in available), (kept, available)


def test_balanced_export_evens_tasks_and_label_values(demo_home, capsys):
    db = store.connect(demo_home)
    ds_id, _ = selection.resolve_dataset(db, None)
    train = selection.selection_ids(db, ds_id, "train", None)
    csat_extra = [e["id"] for e in selection.load_examples(db, train[90:]) if e["task"] == "csat"][:10]
    _passed_chains(demo_home, train[:90] + csat_extra + selection.selection_ids(db, ds_id, "validation", 12))
    plain = export.export_reasoning(demo_home)
    chained = plain["train"]["by_label"]
    assert sum(chained["csat"].values()) == 25 and {sum(v.values()) for t, v in chained.items() if t != "csat"} == {15}
    assert plain["train"]["left_out"] == 0 and plain["balanced"] is False

    r = export.export_reasoning(demo_home, balanced=True)
    kept = r["train"]["by_label"]
    # every task keeps the smallest task's count (15); CSAT's 10 extra chains are left out, and counted
    assert {t: sum(v.values()) for t, v in kept.items()} == {t: 15 for t in chained}
    assert r["train"]["lines"] == 90 and r["train"]["left_out"] == 10
    _assert_round_robin(kept["csat"], chained["csat"])
    assert kept["csat"].get("5", 0) < chained["csat"].get("5", 0)  # the majority score gave way
    lines = [json.loads(x) for x in Path(r["train"]["path"]).read_text().splitlines()]
    assert len(lines) == 90 and len({x["meta"]["id"] for x in lines}) == 90
    assert sum(x["meta"]["task"] == "csat" for x in lines) == 15

    r = export.export_reasoning(demo_home, balanced=True, limit=12)
    assert {t: sum(v.values()) for t, v in r["train"]["by_label"].items()} == {t: 2 for t in chained}
    assert r["train"]["left_out"] == 100 - 12 and r["validation"]["lines"] == 12  # 12 validation chains in all
    for task, counts in r["train"]["by_label"].items():
        _assert_round_robin(counts, chained[task])
    # deterministic: the same call writes the same file
    first = Path(r["train"]["path"]).read_bytes()
    assert export.export_reasoning(demo_home, balanced=True, limit=12)["train"]["lines"] == 12
    assert Path(r["train"]["path"]).read_bytes() == first
    with pytest.raises(ValueError, match="limit must be 0 or more"):
        export.export_reasoning(demo_home, limit=-1)

    assert cli.main(["export", "reasoning", "--home", str(demo_home.data), "--balanced", "--limit", "30"]) == 0
    out = capsys.readouterr().out
    assert "wrote 30 train lines" in out and "70 usable chains left out to balance or limit" in out
    assert "by task and label value: csat " in out and "coaching " in out
