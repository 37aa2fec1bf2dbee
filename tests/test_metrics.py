"""Phase 3 metrics on hand-made predictions: every figure checked against a count done by hand."""

from __future__ import annotations

import math
import random

import pytest

from engine.evaluation import figures, formatting, metrics as M, scoring, stats
from engine.chains.chain import render_chain


def test_csat_exact_within_one_mae_and_unparsed_counted():
    pairs = [({"csat": 5}, {"csat": 5}),   # exact
             ({"csat": 4}, {"csat": 5}),   # within one
             ({"csat": 1}, {"csat": 4}),   # off by 3
             ({"csat": 2}, None),          # unparseable: wrong, not dropped
             ({"csat": 3}, {"csat": 2})]   # within one
    m = scoring.csat_metrics(pairs)
    assert m["n"] == 5 and m["parsed"] == 4 and m["parse_rate"] == 0.8
    assert m["exact_accuracy"] == pytest.approx(1 / 5, abs=1e-4)
    assert m["within_one_accuracy"] == pytest.approx(3 / 5, abs=1e-4)
    assert m["mae"] == pytest.approx((0 + 1 + 3 + 1) / 4, abs=1e-4) and m["mae_n"] == 4
    conf = m["confusion"]
    assert conf["columns"][-1] == "unparsed"
    assert conf["matrix"][conf["rows"].index("2")][-1] == 1  # the unparsed answer sits in reference row 2
    assert sum(map(sum, conf["matrix"])) == 5


def test_csat_nothing_parsed_has_no_mae_but_zero_accuracy():
    m = scoring.csat_metrics([({"csat": 3}, None), ({"csat": 4}, None)])
    assert m["mae"] is None and m["mae_n"] == 0 and m["exact_accuracy"] == 0.0 and m["parse_rate"] == 0.0


def test_quality_mae_and_within_ten():
    m = scoring.quality_metrics([({"quality": 90}, {"quality": 80}), ({"quality": 50}, {"quality": 75}),
                           ({"quality": 70}, {"quality": 71}), ({"quality": 60}, None)])
    assert m["mae"] == pytest.approx((10 + 25 + 1) / 3, abs=1e-4)
    assert m["within_10_accuracy"] == 0.5  # 10 and 1 are within ten; the unparsed one is wrong
    assert m["parse_rate"] == 0.75


def test_churn_per_class_precision_recall_f1():
    golds = ["low", "low", "low", "medium", "high", "high"]
    preds = ["low", "medium", None, "medium", "high", "low"]
    m = scoring.churn_metrics([({"churn": g}, None if p is None else {"churn": p}) for g, p in zip(golds, preds)])
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
    m = scoring.root_cause_metrics([({"root_cause": "billing_dispute"}, {"root_cause": "billing_dispute"}),
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
    m = scoring.sentiment_metrics(pairs)
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
    m = scoring.coaching_metrics(pairs)
    # tp = empathy + hold_etiquette = 2; fp = call_closing = 1; fn = ownership + compliance = 2
    assert m["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["recall"] == pytest.approx(2 / 4, abs=1e-4)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5), abs=1e-4)
    assert m["exact_set_accuracy"] == 0.5
    assert m["parse_rate"] == 0.75
    # 1 of 1 right: Wilson [n / (n + z^2), 1] = [1 / 4.8415, 1]
    assert m["per_behaviour"]["empathy"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1,
                                             "precision_ci": [0.2065, 1.0], "recall_ci": [0.2065, 1.0]}


def test_structure_compliance():
    full = render_chain({n: "The customer waited because the line was busy." for n in range(1, 6)},
                        {"Quality Metrics": "ok"}, {"Immediate Coaching": "ok"}, "CSAT: 4/5")
    assert scoring.structure_of(full) == {"all_sections": True, "all_steps": True, "in_order": True, "compliant": True}
    no_step4 = full.replace("Step 4 - Root Cause Analysis", "Root causes")
    s = scoring.structure_of(no_step4)
    assert s["all_sections"] and not s["all_steps"] and not s["compliant"]
    unclosed = full.replace("</insights>", "")
    assert not scoring.structure_of(unclosed)["all_sections"]
    assert scoring.structure_of("CSAT: 4/5") == {"all_sections": False, "all_steps": False, "in_order": True,
                                           "compliant": False}
    rates = scoring.structure_metrics([scoring.structure_of(t) for t in (full, no_step4, unclosed, "CSAT: 4/5")])
    assert rates == {"n": 4, "all_sections_rate": 0.5, "all_steps_rate": 0.5, "compliance_rate": 0.25}


def test_score_distribution():
    d = scoring.score_distribution([0, 9.9, 10, 69.9, 70, 100])
    assert d["histogram"]["counts"] == [2, 1, 0, 0, 0, 0, 1, 1, 0, 1]
    assert d["share_ge_70"] == 0.3333 and d["min"] == 0.0 and d["max"] == 100.0
    assert scoring.score_distribution([])["mean"] is None


def test_evaluate_predictions_overall_and_unlabelled_rows():
    rows = [
        {"task": "csat", "labels": {"csat": 4}, "parsed": {"csat": 5}, "score": 80, "structure": scoring.structure_of("")},
        {"task": "quality", "labels": {"quality": 70}, "parsed": {"quality": 75}, "score": 60,
         "structure": scoring.structure_of("")},
        {"task": "coaching", "labels": {"coaching": ["empathy"]}, "parsed": None, "score": 20,
         "structure": scoring.structure_of("")},
        {"task": None, "labels": {}, "parsed": None, "score": 50, "structure": scoring.structure_of("")},  # no reference
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


# ---------------------------------------------------------------------------------------------
# Intervals and paired tests
# ---------------------------------------------------------------------------------------------

Z = 1.959963984540054


def test_wilson_against_hand_computed_values():
    # 0/5: lower bound 0, upper z^2 / (n + z^2) = 3.8415 / 8.8415 = 0.43448
    assert stats.wilson(0, 5) == (0.0, 0.4345)
    # 5/5: lower n / (n + z^2) = 5 / 8.8415 = 0.56552, upper 1
    assert stats.wilson(5, 5) == (0.5655, 1.0)
    # 3/10: centre (0.3 + 0.19207) / 1.38415 = 0.35551; half-width 1.96 * sqrt(0.021 + 0.0096037) / 1.38415 = 0.24772
    assert stats.wilson(3, 10) == (0.1078, 0.6032)
    lo, hi = stats.wilson(3, 10)
    assert lo == pytest.approx(0.35551 - 0.24772, abs=1e-4) and hi == pytest.approx(0.35551 + 0.24772, abs=1e-4)
    assert stats.wilson(0, 0) == (0.0, 1.0)  # nothing measured: no information


def test_wilson_narrows_with_n_and_always_holds_the_rate():
    for n in (1, 5, 10, 50, 400):
        for k in range(0, n + 1, max(1, n // 7)):
            lo, hi = stats.wilson(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
    widths = [stats.wilson(n // 2, n)[1] - stats.wilson(n // 2, n)[0] for n in (10, 40, 160, 640)]
    assert widths == sorted(widths, reverse=True)
    assert widths[-1] < 0.08 < 0.5 < widths[0] + 0.5


def test_exact_mcnemar_against_the_binomial():
    assert stats.mcnemar_exact(0, 6) == 0.03125  # 2 * (1/2)^6
    assert stats.mcnemar_exact(6, 0) == 0.03125  # two-sided: symmetric
    assert stats.mcnemar_exact(0, 5) == 0.0625  # 5 discordant pairs can never reach p < 0.05
    assert stats.mcnemar_exact(1, 5) == pytest.approx(2 * (1 + 6) / 64)  # 2 * P(X <= 1), X ~ Bin(6, 1/2)
    assert stats.mcnemar_exact(3, 3) == 1.0 and stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(10, 30) == pytest.approx(
        min(1.0, 2 * sum(math.comb(40, i) for i in range(11)) / 2 ** 40))
    assert stats.mcnemar_exact(10, 30) < 0.05 < stats.mcnemar_exact(15, 25)


def test_bootstrap_is_deterministic_with_its_seed_and_covers_the_mean():
    rng = random.Random(7)
    values = [rng.uniform(0, 4) for _ in range(40)]
    a = stats.bootstrap_ci(values, stats._mean)
    assert a == stats.bootstrap_ci(values, stats._mean) == stats.bootstrap_ci(list(values), stats._mean, seed=stats.BOOTSTRAP_SEED)
    assert a != stats.bootstrap_ci(values, stats._mean, seed=1)  # the seed is what fixes it
    mean = sum(values) / len(values)
    assert a[0] < mean < a[1]
    # The percentile interval of a mean is close to mean +- 1.96 * sd / sqrt(n).
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    assert (a[1] - a[0]) == pytest.approx(2 * Z * sd / len(values) ** 0.5, rel=0.2)
    # Other figures computed first do not move it: each call has its own generator.
    figures.intervals([{"task": "csat", "labels": {"csat": 3}, "parsed": {"csat": 1}, "score": 50.0}] * 5)
    assert stats.bootstrap_ci(values, stats._mean) == a


def test_paired_bootstrap_finds_a_consistent_shift_and_not_noise():
    rng = random.Random(3)
    base = [rng.uniform(0, 3) for _ in range(60)]
    shifted = [b - 1.0 + rng.uniform(-0.2, 0.2) for b in base]  # every error 1 lower
    r = stats.paired_bootstrap(base, shifted, stats._mean)
    assert r["p_value"] < 0.01 and r["delta_ci"][1] < 0 and r["resamples"] == stats.BOOTSTRAP_RESAMPLES
    assert r == stats.paired_bootstrap(base, shifted, stats._mean)
    noise = [b + rng.uniform(-1, 1) for b in base]
    assert stats.paired_bootstrap(base, noise, stats._mean)["p_value"] > 0.05
    same = stats.paired_bootstrap(base, list(base), stats._mean)
    assert same["delta"] == 0 and same["p_value"] == 1.0 and same["delta_ci"] == [0.0, 0.0]


def _rows(seed: int, n_per_task: int = 20) -> list[dict]:
    """Prediction rows over all six tasks with some unparsed answers and some wrong ones."""
    from engine.data import tasks

    rng = random.Random(seed)
    rows = []
    for i in range(n_per_task):
        labels = {"csat": rng.randint(1, 5), "quality": rng.randint(20, 100), "churn": rng.choice(tasks.CHURN_LEVELS),
                  "sentiment": rng.choice(tasks.SENTIMENTS), "sentiment_trajectory": rng.choice(tasks.TRAJECTORIES),
                  "root_cause": rng.choice(tasks.ROOT_CAUSES),
                  "coaching": rng.sample(["empathy", "ownership", "call_closing"], rng.randint(0, 2))}
        guess = {"csat": rng.randint(1, 5), "quality": rng.randint(0, 100), "churn": rng.choice(tasks.CHURN_LEVELS),
                 "sentiment": rng.choice(tasks.SENTIMENTS), "sentiment_trajectory": rng.choice(tasks.TRAJECTORIES),
                 "root_cause": rng.choice(tasks.ROOT_CAUSES), "coaching": rng.sample(["empathy", "ownership"], 1)}
        for task in tasks.TASKS:
            keys = tasks.TASK_KEYS[task]
            lab = {k: labels[k] for k in keys}
            roll = rng.random()
            parsed = None if roll < 0.15 else dict(lab) if roll < 0.5 else {k: guess[k] for k in keys}
            text = "" if roll < 0.3 else render_chain({n: "x" for n in range(1, 6)}, {}, {}, "CSAT: 4/5")
            rows.append({"key": f"{task}-{i}", "task": task, "labels": lab, "parsed": parsed,
                         "score": round(rng.uniform(0, 100), 1), "structure": scoring.structure_of(text),
                         "finish_reason": "length" if roll > 0.9 else "stop"})
    return rows


def test_every_headline_figure_has_an_interval_that_agrees_with_it():
    rows = _rows(1)
    m = M.evaluate_predictions(rows)
    h = M.headline(m)
    iv = m["intervals"]
    assert set(h) <= set(iv), set(h) - set(iv)
    for key, value in h.items():
        e = iv[key]
        assert e["value"] == pytest.approx(value, abs=0.006), key  # quality_score.mean is rounded to 2 places
        assert e["ci"][0] <= e["value"] <= e["ci"][1], key
        assert e["method"] == ("bootstrap" if key.endswith(("mae", "mean", "f1", "precision", "recall"))
                               else "wilson"), key
    assert iv["csat.exact_accuracy"]["n"] == 20 and iv["overall.accuracy"]["n"] == 120
    assert iv["csat.mae"]["n"] == m["tasks"]["csat"]["mae_n"]  # MAE is over the parsed answers
    assert iv["sentiment.trajectory.accuracy"]["value"] == m["tasks"]["sentiment"]["trajectory"]["accuracy"]
    assert iv["generation.truncated_rate"]["n"] == 120
    assert iv["csat.macro_f1"]["value"] == m["tasks"]["csat"]["macro_f1"]
    assert figures.intervals(rows) == iv  # deterministic


def test_paired_tests_pair_by_example_id_and_count_discordant_pairs():
    base = [{"key": f"k{i}", "task": "churn", "labels": {"churn": "low"},
             "parsed": {"churn": "low" if i < 3 else "high"}} for i in range(10)]
    # tuned: right on k3..k9 (7 newly right), wrong on k0 (1 newly wrong); shuffled, plus one unpaired row
    tuned = [{**r, "parsed": {"churn": "high" if r["key"] == "k0" else "low"}} for r in base]
    random.Random(0).shuffle(tuned)
    tuned.append({"key": "only-tuned", "task": "churn", "labels": {"churn": "low"}, "parsed": {"churn": "low"}})
    t = figures.paired_tests(base, tuned)["churn.accuracy"]
    assert t["n"] == 10 and t["discordant"] == {"base_only": 1, "tuned_only": 7}
    assert t["p_value"] == pytest.approx(2 * (1 + 8) / 256) and t["significant"] is False  # 0.0703
    assert t["verdict"].startswith("not significant (p=0.0703): n=10 per task; a rate moves in steps of 0.1")
    f1 = figures.paired_tests(base, tuned)["churn.macro_f1"]
    assert f1["test"] == "paired_bootstrap" and f1["n"] == 10 and f1["delta_ci"][0] <= f1["delta_ci"][1]


def test_five_examples_per_task_are_never_called_significant():
    base = [{"key": str(i), "task": "csat", "labels": {"csat": 4}, "parsed": {"csat": 1}} for i in range(5)]
    tuned = [{**r, "parsed": {"csat": 4}} for r in base]  # 0/5 -> 5/5, the best a model can do
    t = M.compare(base, tuned, {"csat.exact_accuracy": 0.0}, {"csat.exact_accuracy": 1.0})["csat.exact_accuracy"]
    assert t["delta"] == 1.0 and t["better"] is True
    assert t["p_value"] == 0.0625 and t["significant"] is False
    assert t["verdict"] == ("not significant (p=0.0625): n=5 per task; a rate moves in steps of 0.2 "
                            "and no difference can be significant at this n")
    warning = formatting.small_sample_warning(M.evaluate_predictions(tuned))
    assert "5 examples for csat" in warning and "steps of 0.2" in warning and "cannot be significant" in warning
    six = [{**r, "key": f"{r['key']}b"} for r in base[:1]]
    t6 = figures.paired_tests(base + six, [{**r, "parsed": {"csat": 4}} for r in base + six])["csat.exact_accuracy"]
    assert t6["p_value"] == 0.03125 and t6["significant"] is True
    assert t6["verdict"] == "significant at 95% (p=0.0312, n=6)"


def test_a_delta_without_shared_examples_says_it_was_not_tested():
    base = [{"key": "a", "task": "csat", "labels": {"csat": 4}, "parsed": {"csat": 4}}]
    tuned = [{"key": "b", "task": "csat", "labels": {"csat": 4}, "parsed": {"csat": 4}}]
    d = M.compare(base, tuned, {"csat.exact_accuracy": 1.0}, {"csat.exact_accuracy": 1.0})["csat.exact_accuracy"]
    assert d["significant"] is False and d["p_value"] is None and d["verdict"].startswith("not tested")


def test_format_figure_shows_the_interval_and_n():
    assert formatting.format_figure(figures.interval(figures.FIGURES["overall.accuracy"], [True] * 4 + [False] * 6)) == \
        "0.40 [0.17, 0.69], n=10"
    assert formatting.format_figure(None, None) == "n/a"


def _faith(judged: bool, contradictions: int = 0, invented: int = 0) -> dict:
    return {"checked": True, "judged": judged, "contradictions": contradictions, "invented": invented,
            "faithful": (not contradictions and not invented) if judged else None}


def test_faithfulness_figures_get_intervals_n_and_paired_tests():
    # Base: 10 answers; 2 unjudged (a bare label line), 4 contradicting, 2 inventing (3 and 1), 2 faithful.
    base_f = [_faith(False), _faith(False), *[_faith(True, contradictions=1)] * 4, _faith(True, invented=3),
              _faith(True, invented=1), _faith(True), _faith(True)]
    tuned_f = [_faith(True)] * 9 + [_faith(True, invented=2)]
    base = [{"key": f"k{i}", "task": None, "faithfulness": f} for i, f in enumerate(base_f)]
    tuned = [{"key": f"k{i}", "task": None, "faithfulness": f} for i, f in enumerate(tuned_f)]
    mb, mt = M.evaluate_predictions(base), M.evaluate_predictions(tuned)
    assert mb["faithfulness"]["judged"] == 8 and mb["faithfulness"]["faithful_rate"] == 0.25
    hb = M.headline(mb)
    assert (hb["faithfulness.faithful_rate"], hb["faithfulness.contradiction_rate"],
            hb["faithfulness.invented_per_answer"]) == (0.25, 0.4, 0.4)
    iv = mb["intervals"]
    assert iv["faithfulness.faithful_rate"] == {"value": 0.25, "ci": list(stats.wilson(2, 8)), "n": 8, "method": "wilson"}
    assert iv["faithfulness.contradiction_rate"]["ci"] == list(stats.wilson(4, 10))
    assert iv["faithfulness.invented_per_answer"]["method"] == "bootstrap"
    assert iv["faithfulness.invented_per_answer"]["ci"] == list(stats.bootstrap_ci([0, 0, 0, 0, 0, 0, 3, 1, 0, 0], stats._mean))
    d = M.compare(base, tuned, hb, M.headline(mt))
    # faithful_rate is paired over the 8 examples both answers could be judged on: 6 turned faithful, 1 the other way.
    fr = d["faithfulness.faithful_rate"]
    assert fr["n"] == 8 and fr["discordant"] == {"base_only": 1, "tuned_only": 6}
    assert fr["p_value"] == 0.125 and not fr["significant"] and fr["verdict"].startswith("not significant (p=0.125)")
    cr = d["faithfulness.contradiction_rate"]
    assert cr["delta"] == -0.4 and cr["better"] and cr["discordant"] == {"base_only": 4, "tuned_only": 0}
    ip = d["faithfulness.invented_per_answer"]
    assert ip["test"] == "paired_bootstrap" and ip["delta"] == -0.2 and ip["better"]
    # No faithfulness in the rows (an evaluation stored before it): no figures, no empty ones.
    old = M.evaluate_predictions([{"key": "a", "task": None}])
    assert not any(k.startswith("faithfulness.") for k in M.headline(old)) and old["faithfulness"]["n"] == 0
