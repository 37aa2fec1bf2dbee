"""Phase 3 metrics on hand-made predictions: every figure checked against a count done by hand."""

from __future__ import annotations

import pytest

from engine import metrics as M
from engine.chain import render_chain


def test_csat_exact_within_one_mae_and_unparsed_counted():
    pairs = [({"csat": 5}, {"csat": 5}),   # exact
             ({"csat": 4}, {"csat": 5}),   # within one
             ({"csat": 1}, {"csat": 4}),   # off by 3
             ({"csat": 2}, None),          # unparseable: wrong, not dropped
             ({"csat": 3}, {"csat": 2})]   # within one
    m = M.csat_metrics(pairs)
    assert m["n"] == 5 and m["parsed"] == 4 and m["parse_rate"] == 0.8
    assert m["exact_accuracy"] == pytest.approx(1 / 5, abs=1e-4)
    assert m["within_one_accuracy"] == pytest.approx(3 / 5, abs=1e-4)
    assert m["mae"] == pytest.approx((0 + 1 + 3 + 1) / 4, abs=1e-4) and m["mae_n"] == 4
    conf = m["confusion"]
    assert conf["columns"][-1] == "unparsed"
    assert conf["matrix"][conf["rows"].index("2")][-1] == 1  # the unparsed answer sits in reference row 2
    assert sum(map(sum, conf["matrix"])) == 5


def test_csat_nothing_parsed_has_no_mae_but_zero_accuracy():
    m = M.csat_metrics([({"csat": 3}, None), ({"csat": 4}, None)])
    assert m["mae"] is None and m["mae_n"] == 0 and m["exact_accuracy"] == 0.0 and m["parse_rate"] == 0.0


def test_quality_mae_and_within_ten():
    m = M.quality_metrics([({"quality": 90}, {"quality": 80}), ({"quality": 50}, {"quality": 75}),
                           ({"quality": 70}, {"quality": 71}), ({"quality": 60}, None)])
    assert m["mae"] == pytest.approx((10 + 25 + 1) / 3, abs=1e-4)
    assert m["within_10_accuracy"] == 0.5  # 10 and 1 are within ten; the unparsed one is wrong
    assert m["parse_rate"] == 0.75


def test_churn_per_class_precision_recall_f1():
    golds = ["low", "low", "low", "medium", "high", "high"]
    preds = ["low", "medium", None, "medium", "high", "low"]
    m = M.churn_metrics([({"churn": g}, None if p is None else {"churn": p}) for g, p in zip(golds, preds)])
    assert m["accuracy"] == pytest.approx(3 / 6, abs=1e-4)
    low = m["per_class"]["low"]  # tp 1, fp 1 (high->low), fn 2 (->medium, ->unparsed)
    assert low["precision"] == 0.5 and low["recall"] == pytest.approx(1 / 3, abs=1e-4) and low["support"] == 3
    assert low["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3), abs=1e-4)
    med = m["per_class"]["medium"]  # tp 1, fp 1
    assert med["precision"] == 0.5 and med["recall"] == 1.0
    high = m["per_class"]["high"]  # tp 1, fn 1
    assert high["precision"] == 1.0 and high["recall"] == 0.5
    expected_macro = (low["f1"] + med["f1"] + high["f1"]) / 3
    assert m["macro_f1"] == pytest.approx(expected_macro, abs=1e-3)
    assert m["parse_rate"] == pytest.approx(5 / 6, abs=1e-4)


def test_macro_f1_ignores_classes_nobody_uses_but_counts_wrong_predictions():
    m = M.root_cause_metrics([({"root_cause": "billing_dispute"}, {"root_cause": "billing_dispute"}),
                              ({"root_cause": "billing_dispute"}, {"root_cause": "fraud_concern"})])
    # billing: p 1, r 0.5, f1 0.667; fraud_concern: predicted once, never right: f1 0. Eight unused classes ignored.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0) / 2, abs=1e-3)
    assert m["accuracy"] == 0.5


def test_sentiment_and_trajectory():
    pairs = [({"sentiment": "negative", "sentiment_trajectory": "improving"},
              {"sentiment": "negative", "sentiment_trajectory": "improving"}),
             ({"sentiment": "negative", "sentiment_trajectory": "worsening"},
              {"sentiment": "negative", "sentiment_trajectory": "stable"}),
             ({"sentiment": "positive", "sentiment_trajectory": "stable"}, {"sentiment": "neutral"}),
             ({"sentiment": "neutral", "sentiment_trajectory": "stable"}, None)]
    m = M.sentiment_metrics(pairs)
    assert m["accuracy"] == 0.5
    assert m["trajectory"]["accuracy"] == 0.25  # only the first; a missing trajectory is unparsed
    assert m["trajectory"]["parse_rate"] == 0.5
    assert m["both_accuracy"] == 0.25
    assert m["parse_rate"] == 0.75


def test_coaching_micro_precision_recall_set_based():
    pairs = [({"coaching": ["empathy", "ownership"]}, {"coaching": ["empathy", "call_closing"]}),
             ({"coaching": []}, {"coaching": []}),
             ({"coaching": ["hold_etiquette"]}, {"coaching": ["hold_etiquette"]}),
             ({"coaching": ["compliance"]}, None)]
    m = M.coaching_metrics(pairs)
    # tp = empathy + hold_etiquette = 2; fp = call_closing = 1; fn = ownership + compliance = 2
    assert m["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["recall"] == pytest.approx(2 / 4, abs=1e-4)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5), abs=1e-4)
    assert m["exact_set_accuracy"] == 0.5
    assert m["parse_rate"] == 0.75
    assert m["per_behaviour"]["empathy"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}


def test_structure_compliance():
    full = render_chain({n: "The customer waited because the line was busy." for n in range(1, 6)},
                        {"Quality Metrics": "ok"}, {"Immediate Coaching": "ok"}, "CSAT: 4/5")
    assert M.structure_of(full) == {"all_sections": True, "all_steps": True, "in_order": True, "compliant": True}
    no_step4 = full.replace("Step 4 - Root Cause Analysis", "Root causes")
    s = M.structure_of(no_step4)
    assert s["all_sections"] and not s["all_steps"] and not s["compliant"]
    unclosed = full.replace("</insights>", "")
    assert not M.structure_of(unclosed)["all_sections"]
    assert M.structure_of("CSAT: 4/5") == {"all_sections": False, "all_steps": False, "in_order": True,
                                           "compliant": False}
    rates = M.structure_metrics([M.structure_of(t) for t in (full, no_step4, unclosed, "CSAT: 4/5")])
    assert rates == {"n": 4, "all_sections_rate": 0.5, "all_steps_rate": 0.5, "compliance_rate": 0.25}


def test_score_distribution():
    d = M.score_distribution([0, 9.9, 10, 69.9, 70, 100])
    assert d["histogram"]["counts"] == [2, 1, 0, 0, 0, 0, 1, 1, 0, 1]
    assert d["share_ge_70"] == 0.3333 and d["min"] == 0.0 and d["max"] == 100.0
    assert M.score_distribution([])["mean"] is None


def test_evaluate_predictions_overall_and_unlabelled_rows():
    rows = [
        {"task": "csat", "labels": {"csat": 4}, "parsed": {"csat": 5}, "score": 80, "structure": M.structure_of("")},
        {"task": "quality", "labels": {"quality": 70}, "parsed": {"quality": 75}, "score": 60,
         "structure": M.structure_of("")},
        {"task": "coaching", "labels": {"coaching": ["empathy"]}, "parsed": None, "score": 20,
         "structure": M.structure_of("")},
        {"task": None, "labels": {}, "parsed": None, "score": 50, "structure": M.structure_of("")},  # no reference
    ]
    m = M.evaluate_predictions(rows)
    assert m["overall"] == {"n": 4, "scored": 3, "parsed": 2, "parse_rate": 0.6667, "accuracy": 0.3333}
    assert m["quality_score"]["n"] == 4 and m["structure"]["n"] == 4
    assert set(m["tasks"]) == {"csat", "quality", "coaching"}
    h = M.headline(m)
    assert h["csat.within_one_accuracy"] == 1.0 and h["csat.exact_accuracy"] == 0.0
    assert h["quality.mae"] == 5.0 and h["coaching.parse_rate"] == 0.0


def test_deltas_know_lower_is_better_for_errors():
    d = M.deltas({"csat.mae": 1.2, "csat.exact_accuracy": 0.4, "churn.accuracy": 0.5},
                 {"csat.mae": 0.8, "csat.exact_accuracy": 0.3, "churn.accuracy": 0.5})
    assert d["csat.mae"]["better"] is True and d["csat.mae"]["delta"] == -0.4
    assert d["csat.exact_accuracy"]["better"] is False
    assert d["churn.accuracy"]["delta"] == 0.0 and d["churn.accuracy"]["better"] is False
