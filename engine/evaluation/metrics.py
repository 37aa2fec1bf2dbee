"""One model's metrics, their headline figures, and the base-vs-tuned comparison.

``evaluate_predictions`` puts together the per-task scoring (``engine.evaluation.scoring``, where
the conventions are: unparsed answers count as wrong, MAE beside its n, ...), the structure and
quality-score figures, faithfulness, and every figure's 95% interval (``engine.evaluation.figures``).
``headline`` flattens them for a models-by-metrics table; ``deltas`` and ``compare`` read two
models' headlines against each other, each delta with its paired test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from engine.data import tasks
from engine.evaluation.figures import intervals, paired_tests
from engine.evaluation.scoring import (FAITHFULNESS_KEYS, TASK_METRICS, faithfulness_metrics, score_distribution,
                                       structure_metrics)
from engine.evaluation.stats import _div, _r


def evaluate_predictions(rows: Sequence[dict]) -> dict:
    """All metrics for one model's predictions.

    Each row: ``task``, ``labels`` (reference), ``parsed`` (or None), ``score`` (quality score),
    ``structure`` (``structure_of``); optionally ``key`` (the example id, which pairs two models'
    rows in ``paired_tests``), ``finish_reason`` and ``faithfulness`` (``faithfulness_metrics``). Rows of unknown tasks or without reference
    labels count in structure and quality but not in task accuracy. ``intervals`` holds every
    figure's 95% interval and n (``intervals``).

    >>> from engine.evaluation.scoring import structure_of
    >>> rows = [{"task": "csat", "labels": {"csat": 4}, "parsed": {"csat": 4}, "score": 80,
    ...          "structure": structure_of("CSAT: 4/5")},
    ...         {"task": "churn", "labels": {"churn": "low"}, "parsed": None, "score": 10,
    ...          "structure": structure_of("no idea")}]
    >>> m = evaluate_predictions(rows)
    >>> m["overall"], sorted(m["tasks"]), m["tasks"]["csat"]["exact_accuracy"]
    ({'n': 2, 'scored': 2, 'parsed': 1, 'parse_rate': 0.5, 'accuracy': 0.5}, ['churn', 'csat'], 1.0)
    """
    by_task: dict[str, list[tuple[dict, dict | None]]] = {}
    agree = scored = parsed = 0
    for r in rows:
        task, labels = r.get("task"), r.get("labels") or {}
        keys = tasks.TASK_KEYS.get(task)
        if not keys or any(k not in labels for k in keys):
            continue
        by_task.setdefault(task, []).append((labels, r.get("parsed")))
        scored += 1
        parsed += r.get("parsed") is not None
        agree += bool(tasks.agrees(task, r.get("parsed"), labels))
    return {
        "n": len(rows),
        "overall": {"n": len(rows), "scored": scored, "parsed": parsed, "parse_rate": _r(_div(parsed, scored)),
                    "accuracy": _r(_div(agree, scored))},
        "structure": structure_metrics([r["structure"] for r in rows if r.get("structure")]),
        "quality_score": score_distribution([r["score"] for r in rows if r.get("score") is not None]),
        "tasks": {t: TASK_METRICS[t](pairs) for t, pairs in sorted(by_task.items())},
        "faithfulness": faithfulness_metrics(rows),
        "intervals": intervals(rows),
    }


def headline(metrics: dict) -> dict:
    """The flat figures a models-by-metrics table shows: ``{"structure.compliance_rate": 0.9, ...}``.

    >>> headline({"overall": {"accuracy": 0.5, "parse_rate": 1.0}, "structure": {"compliance_rate": 0.2,
    ...           "all_sections_rate": 0.3, "all_steps_rate": 0.2}, "quality_score": {"mean": 50.0,
    ...           "share_ge_70": 0.1}, "tasks": {"csat": {"exact_accuracy": 0.5, "within_one_accuracy": 1.0,
    ...           "mae": 0.5, "parse_rate": 1.0}}})["csat.within_one_accuracy"]
    1.0
    """
    out = {
        "overall.accuracy": metrics["overall"]["accuracy"],
        "overall.parse_rate": metrics["overall"]["parse_rate"],
        "structure.compliance_rate": metrics["structure"]["compliance_rate"],
        "structure.all_sections_rate": metrics["structure"]["all_sections_rate"],
        "structure.all_steps_rate": metrics["structure"]["all_steps_rate"],
        "quality_score.mean": metrics["quality_score"]["mean"],
        "quality_score.share_ge_70": metrics["quality_score"]["share_ge_70"],
    }
    wanted = {
        "csat": ("exact_accuracy", "within_one_accuracy", "mae", "parse_rate"),
        "quality": ("mae", "within_10_accuracy", "parse_rate"),
        "churn": ("accuracy", "macro_f1", "parse_rate"),
        "sentiment": ("accuracy", "macro_f1", "both_accuracy", "parse_rate"),
        "root_cause": ("accuracy", "macro_f1", "parse_rate"),
        "coaching": ("precision", "recall", "f1", "exact_set_accuracy", "parse_rate"),
    }
    for task, keys in wanted.items():
        m = metrics.get("tasks", {}).get(task)
        if m:
            for k in keys:
                if k in m:
                    out[f"{task}.{k}"] = m[k]
    faith = metrics.get("faithfulness")
    # Absent from an evaluation stored before faithfulness was measured (evaluate.py computes it
    # on read); n = 0 when no answer could be checked (no labels, no transcript).
    if faith and faith.get("n"):
        for k in FAITHFULNESS_KEYS:
            out[f"faithfulness.{k}"] = faith.get(k)
    return out


# Metrics where lower is better (deltas are read the other way round).
LOWER_IS_BETTER = {"csat.mae", "quality.mae", "faithfulness.contradiction_rate", "faithfulness.invented_per_answer"}


def deltas(base: dict, tuned: dict) -> dict:
    """``tuned - base`` for every headline figure both have, with whether it is an improvement.

    >>> deltas({"csat.mae": 1.0, "overall.accuracy": 0.2}, {"csat.mae": 0.5, "overall.accuracy": 0.5})
    {'csat.mae': {'base': 1.0, 'tuned': 0.5, 'delta': -0.5, 'better': True}, 'overall.accuracy': {'base': 0.2, 'tuned': 0.5, 'delta': 0.3, 'better': True}}
    """
    out = {}
    for key in base:
        if key in tuned and base[key] is not None and tuned[key] is not None:
            d = round(float(tuned[key]) - float(base[key]), 4)
            better = d < 0 if key in LOWER_IS_BETTER else d > 0
            out[key] = {"base": base[key], "tuned": tuned[key], "delta": d, "better": better}
    return out


def compare(base_rows: Sequence[dict], tuned_rows: Sequence[dict], base_headline: dict, tuned_headline: dict,
            keys: Iterable[str] | None = None) -> dict:
    """``deltas`` of the headline figures (or only ``keys``), each with its paired test (``paired_tests``).

    A delta no test covers (no example in both evaluations) says so in its verdict.
    """
    keys = None if keys is None else set(keys)
    tests = paired_tests(base_rows, tuned_rows, keys)
    out = {k: d for k, d in deltas(base_headline, tuned_headline).items() if keys is None or k in keys}
    for key, d in out.items():
        d.update(tests.get(key) or {"test": None, "n": 0, "p_value": None, "significant": False,
                                   "verdict": "not tested: no example in both evaluations"})
    return out
