"""The synthetic transcript generator: determinism, sizes, balance, valid labels, parseable answers,
the label rules on hand-built calls, transcript shape and atomic writes."""

from __future__ import annotations

import collections
import hashlib
import json
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data import synth  # noqa: E402
from engine.data.labels import (  # noqa: E402
    QA_RUBRIC,
    customer_end_mood,
    label_churn,
    label_coaching,
    label_csat,
    label_quality,
    label_root_cause,
    label_sentiment,
    labels_for,
)
from engine.data.render import fmt_money, minutes_text  # noqa: E402
from engine.data.vocabulary import INDUSTRIES  # noqa: E402
from engine.data.tasks import (  # noqa: E402
    COACHING_BEHAVIOURS,
    ROOT_CAUSES,
    SYSTEM_PROMPT,
    TASK_KEYS,
    TASKS,
    parse_answer,
    split_user_content,
    validate_labels,
)

LABEL_KEYS = {"csat", "quality", "churn", "sentiment", "sentiment_trajectory", "root_cause", "coaching"}


@pytest.fixture(scope="module")
def demo():
    """All demo examples (420), generated once for the module."""
    return [ex for _, ex in synth.iter_preset("demo", 0)]


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_same_bytes(tmp_path):
    a = synth.write_synth(tmp_path / "a", "demo", seed=3)
    b = synth.write_synth(tmp_path / "b", "demo", seed=3)
    for split in synth.SPLITS:
        assert _digest(a["files"][split]) == _digest(b["files"][split])


def test_different_seed_differs(tmp_path):
    a = synth.write_synth(tmp_path / "a", "demo", seed=0)
    b = synth.write_synth(tmp_path / "b", "demo", seed=1)
    for split in synth.SPLITS:
        assert _digest(a["files"][split]) != _digest(b["files"][split])
    one = synth.make_example("demo", "train", 5, seed=0)["messages"][1]["content"]
    other = synth.make_example("demo", "train", 5, seed=1)["messages"][1]["content"]
    assert one != other


def test_order_independent():
    # Example i does not depend on having generated examples 0..i-1 first.
    listed = list(synth.iter_examples("demo", "validation", 0))
    assert synth.make_example("demo", "validation", 42, 0) == listed[42]


def test_no_global_random_state_used():
    random.seed(123)
    a = synth.make_example("demo", "test", 9, 0)
    random.seed(999)
    b = synth.make_example("demo", "test", 9, 0)
    assert a == b


# --- sizes, ids, balance -----------------------------------------------------------------------


def test_presets():
    assert synth.PRESETS["demo"] == {"train": 300, "validation": 60, "test": 60}
    assert synth.PRESETS["plan"] == {"train": 25790, "validation": 3223, "test": 3225}
    assert sum(synth.PRESETS["plan"].values()) == 32238
    with pytest.raises(ValueError):
        synth.split_sizes("nope")
    with pytest.raises(ValueError):
        next(synth.iter_examples("demo", "dev"))


def test_plan_counts_and_task_balance():
    # The validation and test splits are generated in full; train is counted through the size table
    # and spot-checked at its last index (generating all 25,790 is the benchmark's job).
    for split in ("validation", "test"):
        tasks = collections.Counter(ex["meta"]["task"] for ex in synth.iter_examples("plan", split, 0))
        n = synth.PRESETS["plan"][split]
        assert sum(tasks.values()) == n
        assert max(tasks.values()) - min(tasks.values()) <= 1
        assert set(tasks) == set(TASKS)
    last = synth.make_example("plan", "train", 25789, 0)
    assert last["meta"]["id"] == "plan-0-train-025789"


def test_write_synth_demo(tmp_path):
    result = synth.write_synth(tmp_path, "demo", seed=0)
    assert result["counts"] == synth.PRESETS["demo"]
    assert result["seconds"] >= 0
    for split, path in result["files"].items():
        assert path.endswith(f"{split}_chatml.jsonl")
        lines = open(path, encoding="utf-8").read().splitlines()
        assert len(lines) == synth.PRESETS["demo"][split]
        for line in lines:
            obj = json.loads(line)
            assert [m["role"] for m in obj["messages"]] == ["system", "user", "assistant"]
    # Atomic write: only the three files remain, no temp files.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "test_chatml.jsonl", "train_chatml.jsonl", "validation_chatml.jsonl"]


def test_write_synth_replaces_existing(tmp_path):
    (tmp_path / "train_chatml.jsonl").write_text("old\n")
    synth.write_synth(tmp_path, "demo", seed=0)
    assert (tmp_path / "train_chatml.jsonl").read_text().count("\n") == 300
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_ids_unique_and_tasks_balanced(demo):
    ids = [ex["meta"]["id"] for ex in demo]
    assert len(ids) == len(set(ids)) == 420
    assert ids[0] == "demo-0-train-000000"
    by_split = collections.defaultdict(collections.Counter)
    for ex in demo:
        by_split[ex["meta"]["id"].split("-")[2]][ex["meta"]["task"]] += 1
    assert by_split["train"] == {t: 50 for t in TASKS}
    assert by_split["validation"] == {t: 10 for t in TASKS}
    assert by_split["test"] == {t: 10 for t in TASKS}


# --- labels and answers ------------------------------------------------------------------------


def test_every_label_valid(demo):
    for ex in demo:
        labels = ex["meta"]["labels"]
        assert set(labels) == LABEL_KEYS
        assert validate_labels(labels) == [], (ex["meta"]["id"], labels)
        assert isinstance(labels["quality"], int)


def test_labels_valid_over_many_seeds():
    for i in range(1500):
        labels = synth.make_example("plan", "train", i, seed=7)["meta"]["labels"]
        assert validate_labels(labels) == []


def test_reference_answer_parses_back(demo):
    for ex in demo:
        task, labels = ex["meta"]["task"], ex["meta"]["labels"]
        answer = ex["messages"][2]["content"]
        want = {k: labels[k] for k in TASK_KEYS[task]}
        assert parse_answer(task, answer) == want, (ex["meta"]["id"], answer)
        # Rationale first, then the answer line.
        rationale, last = answer.rsplit("\n", 1)
        assert rationale.strip() and parse_answer(task, last) == want


def test_messages_shape(demo):
    for ex in demo[:60]:
        system, user, assistant = ex["messages"]
        assert system == {"role": "system", "content": SYSTEM_PROMPT}
        transcript, instruction = split_user_content(user["content"])
        assert transcript and instruction


def test_label_spread(demo):
    counts = {k: collections.Counter(ex["meta"]["labels"][k] for ex in demo)
              for k in ("csat", "churn", "sentiment", "sentiment_trajectory", "root_cause")}
    n = len(demo)
    for key in ("csat", "churn", "sentiment"):
        assert len(counts[key]) == {"csat": 5, "churn": 3, "sentiment": 3}[key]
        assert min(counts[key].values()) >= 0.08 * n, (key, counts[key])
    assert len(counts["sentiment_trajectory"]) == 3
    assert set(counts["root_cause"]) == set(ROOT_CAUSES)
    empty = sum(1 for ex in demo if not ex["meta"]["labels"]["coaching"])
    assert 0.1 * n < empty < 0.6 * n
    coached = {b for ex in demo for b in ex["meta"]["labels"]["coaching"]}
    assert coached == set(COACHING_BEHAVIOURS)
    industries = collections.Counter(ex["meta"]["industry"] for ex in demo)
    assert set(industries) == set(INDUSTRIES)


def test_labels_match_rules_on_stored_events(demo):
    # An evaluator can re-derive every noise-free label from meta.events.
    for ex in demo:
        events, labels = ex["meta"]["events"], ex["meta"]["labels"]
        assert label_root_cause(events) == labels["root_cause"]
        assert label_coaching(events) == labels["coaching"]
        assert label_sentiment(events) == (labels["sentiment"], labels["sentiment_trajectory"])
        assert abs(label_quality(events) - labels["quality"]) <= 3
        assert abs(label_csat(events) - labels["csat"]) <= 1


def test_root_cause_fits_industry(demo):
    for ex in demo:
        reason = ex["meta"]["labels"]["root_cause"]
        assert reason in INDUSTRIES[ex["meta"]["industry"]]["reasons"]


# --- label rules on hand-built calls -----------------------------------------------------------

GREET = {"type": "greeting", "proper": True, "disclosure": True}
VERIFIED = {"type": "verification", "done": True}


def _call(reason="billing_dispute", mood=-1, *middle, resolved=True, close=True, end=None):
    events = [GREET, {"type": "problem", "reason": reason, "mood": mood, "product": "x"}, VERIFIED, *middle,
              {"type": "resolution", "resolved": resolved}]
    closing = {"type": "closing", "proper": close}
    closing["mood"] = customer_end_mood(events + [closing]) if end is None else end
    return events + [closing]


def test_csat_good_call_high():
    events = _call("technical_issue", -1, {"type": "empathy"}, {"type": "apology"})
    assert label_csat(events) == 5
    for s in range(50):  # noise moves it at most one step
        assert label_csat(events, random.Random(s)) >= 4


def test_csat_bad_call_low():
    events = _call("service_outage", -2, {"type": "repeat_contact", "count": 3},
                   {"type": "hold", "minutes": 14, "asked": False, "thanked": False},
                   {"type": "transfer", "warm": False, "to": "network team"}, {"type": "rude"}, resolved=False)
    assert label_csat(events) == 1


def test_csat_middle():
    # Resolved on a second call after a short hold: 3 + 1 - 1 (repeat) - 0.5 (hold 6 min) = 2.5 -> 3.
    events = _call("billing_dispute", -1, {"type": "repeat_contact", "count": 2},
                   {"type": "hold", "minutes": 6, "asked": True, "thanked": True})
    assert label_csat(events) == 3


def test_churn_rules():
    high = _call("billing_dispute", -2, {"type": "repeat_contact", "count": 3}, {"type": "cancellation_threat"},
                 resolved=False)
    assert label_churn(high) == "high"
    low = _call("product_inquiry", 0, {"type": "tenure", "years": 8})
    assert label_churn(low) == "low"
    # Unresolved on a first call: 2 (unresolved) + 1 (ends negative) = 3 -> medium.
    medium = _call("technical_issue", -1, resolved=False)
    assert label_churn(medium) == "medium"
    # A processed cancellation is high whatever else happened.
    cancelled = [GREET, {"type": "problem", "reason": "cancellation_request", "mood": 0},
                 {"type": "resolution", "resolved": True, "retained": False},
                 {"type": "closing", "proper": True, "mood": 1}]
    assert label_churn(cancelled) == "high"
    retained = cancelled[:2] + [{"type": "resolution", "resolved": True, "retained": True},
                                {"type": "tenure", "years": 10}, {"type": "closing", "proper": True, "mood": 1}]
    assert label_churn(retained) == "low"  # 2 (cancel call) - 1 (tenure) - 1 (ends pleased)


def test_quality_rubric():
    perfect = _call("plan_change", 0)
    assert label_quality(perfect) == 100
    assert sum(QA_RUBRIC.values()) == 100
    sloppy = [{"type": "greeting", "proper": False, "disclosure": False},
              {"type": "problem", "reason": "billing_dispute", "mood": -1},
              {"type": "verification", "done": False},
              {"type": "hold", "minutes": 8, "asked": False, "thanked": False},
              {"type": "transfer", "warm": False, "to": "billing team"},
              {"type": "interruption"}, {"type": "rude"},
              {"type": "resolution", "resolved": False},
              {"type": "closing", "proper": False, "mood": -2}]
    assert label_quality(sloppy) == 0  # every item missed, deductions clamp at 0
    # Unresolved but with a callback: resolution 10 of 20, ownership kept -> 90.
    callback = _call("technical_issue", 0, resolved=False)
    callback.insert(-1, {"type": "callback", "when": "tomorrow"})
    assert label_quality(callback) == 90
    for s in range(30):
        assert abs(label_quality(perfect, random.Random(s)) - 100) <= 3


def test_sentiment_rules():
    assert label_sentiment(_call("billing_dispute", -2, end=2)) == ("positive", "improving")
    assert label_sentiment(_call("billing_dispute", -2, end=1)) == ("neutral", "improving")
    assert label_sentiment(_call("billing_dispute", 0, end=-2)) == ("negative", "worsening")
    assert label_sentiment(_call("product_inquiry", 0, end=0)) == ("neutral", "stable")
    assert label_sentiment(_call("billing_dispute", -1, end=-1)) == ("negative", "stable")


def test_end_mood_rule():
    assert customer_end_mood(_call("billing_dispute", -1, {"type": "empathy"})[:-1]) == 2
    rude = _call("service_outage", -1, {"type": "rude"}, resolved=False)[:-1]
    assert customer_end_mood(rude) == -2


def test_root_cause_rule():
    events = _call("fraud_concern", -2, {"type": "cancellation_threat"})
    assert label_root_cause(events) == "fraud_concern"


def test_coaching_rules():
    assert label_coaching(_call("billing_dispute", -1, {"type": "empathy"})) == []
    events = [{"type": "greeting", "proper": True, "disclosure": False},
              {"type": "problem", "reason": "billing_dispute", "mood": -2},
              {"type": "verification", "done": False},
              {"type": "interruption"},
              {"type": "knowledge_gap"},
              {"type": "hold", "minutes": 3, "asked": True, "thanked": False},
              {"type": "transfer", "warm": False, "to": "billing team"},
              {"type": "resolution", "resolved": False},
              {"type": "closing", "proper": False, "mood": -2}]
    assert label_coaching(events) == list(COACHING_BEHAVIOURS)
    # A warm transfer and a thanked, permitted hold are fine; no empathy needed for a calm customer.
    fine = _call("plan_change", 0, {"type": "hold", "minutes": 3, "asked": True, "thanked": True},
                 {"type": "transfer", "warm": True, "to": "billing team"})
    assert label_coaching(fine) == []


def test_labels_for_all_keys():
    labels = labels_for(_call("delivery_problem", -1, {"type": "empathy"}))
    assert set(labels) == LABEL_KEYS and validate_labels(labels) == []


# --- transcripts -------------------------------------------------------------------------------


def test_transcripts_alternate_and_vary(demo):
    firsts, words, turns = set(), [], []
    for ex in demo[:200]:
        transcript, _ = split_user_content(ex["messages"][1]["content"])
        lines = transcript.split("\n")
        speakers = [line.split(":", 1)[0] for line in lines]
        assert set(speakers) <= {"Agent", "Customer"}
        assert speakers[0] == "Agent"
        assert all(a != b for a, b in zip(speakers, speakers[1:])), transcript
        firsts.add(lines[0])
        words.append(len(transcript.split()))
        turns.append(len(lines))
    assert len(firsts) >= 60
    words.sort()
    turns.sort()
    assert 120 <= words[len(words) // 2] <= 400
    assert 8 <= turns[len(turns) // 2] <= 30


def test_transcript_reflects_events(demo):
    for ex in demo[:200]:
        transcript = ex["messages"][1]["content"]
        for e in ex["meta"]["events"]:
            if e["type"] == "hold" and e["thanked"]:
                assert minutes_text(e["minutes"]) in transcript
            if e["type"] == "competitor_mention":
                assert e["name"] in transcript
            if e["type"] == "refund":
                assert fmt_money(e["amount"]) in transcript


def test_doctests():
    import doctest

    result = doctest.testmod(synth, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
