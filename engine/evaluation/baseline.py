"""The constant-answer baseline: what answering one fixed thing per task scores on the same examples.

Why: an accuracy means little without it. On the demo's test split (60 calls drawn like real
traffic: mostly satisfied customers, low churn risk) answering "CSAT 5/5", "churn low",
"positive, improving", ... to every call scores 0.45 overall, above the issue's 0.40 target, while
a tuned model that did learn something can sit below it. So the report, the Evaluate page and
``ccr eval`` put every model's overall accuracy beside this bar, with a paired test against it.

The constant is chosen on the evaluated examples themselves (per task, the reference answer that
agrees with the most references under ``tasks.agrees``), so it is the best any
answer-one-thing-per-task model could score here: an upper bound for such a model, not a model
anyone trained. Beating it significantly is evidence the model reads the calls.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from engine.data import tasks
from engine.evaluation.formatting import verdict
from engine.evaluation.stats import ALPHA, _r, mcnemar_exact, wilson


def _answer(task: str, labels: dict) -> dict:
    return {k: labels[k] for k in tasks.TASK_KEYS[task]}


def best_constant(rows: Sequence[dict]) -> dict:
    """Per task, the one answer that agrees with the most reference labels among ``rows`` (each with
    ``task`` and ``labels``), and how often it does; rows of unknown tasks or without the task's
    labels are left out. Ties go to the answer seen first.

    >>> rows = [{"task": "csat", "labels": {"csat": c}} for c in (5, 5, 4, 1)]
    >>> rows += [{"task": "quality", "labels": {"quality": q}} for q in (60, 85, 92, 97)]
    >>> best = best_constant(rows)
    >>> best["answers"], best["per_task"]
    ({'csat': {'csat': 5}, 'quality': {'quality': 92}}, {'csat': [2, 4], 'quality': [3, 4]})
    >>> best["correct"], best["n"], best["accuracy"], best["ci"]
    (5, 8, 0.625, [0.3057, 0.8632])
    """
    by_task: dict[str, list[dict]] = {}
    for r in rows:
        t, labels = r.get("task"), r.get("labels") or {}
        if t in tasks.TASK_KEYS and all(k in labels for k in tasks.TASK_KEYS[t]):
            by_task.setdefault(t, []).append(labels)
    answers, per_task = {}, {}
    for t in sorted(by_task):
        refs = by_task[t]
        candidates = list({json.dumps(_answer(t, labels), sort_keys=True): _answer(t, labels) for labels in refs}.values())
        hits = [sum(bool(tasks.agrees(t, c, labels)) for labels in refs) for c in candidates]
        best = max(range(len(candidates)), key=lambda i: (hits[i], -i))
        answers[t], per_task[t] = candidates[best], [hits[best], len(refs)]
    k = sum(h for h, _ in per_task.values())
    n = sum(m for _, m in per_task.values())
    return {"answers": answers, "per_task": per_task, "correct": k, "n": n,
            "accuracy": _r(k / n) if n else None, "ci": list(wilson(k, n)) if n else None}


def versus_constant(rows: Sequence[dict], best: dict) -> dict:
    """A model's answers (rows with ``task``, ``labels`` and ``correct``) against ``best`` on the
    same examples: both accuracies, the difference and its exact McNemar test (pairs where one is
    right and the other wrong).

    >>> rows = [{"task": "csat", "labels": {"csat": c}, "correct": ok} for c, ok in ((5, False), (5, False), (4, True), (1, True))]
    >>> v = versus_constant(rows, best_constant(rows))
    >>> v["accuracy"], v["constant"], v["delta"], v["discordant"], v["p_value"], v["significant"]
    (0.5, 0.5, 0.0, {'constant_only': 2, 'model_only': 2}, 1.0, False)
    """
    answers = best["answers"]
    model_only = constant_only = right = n = 0
    for r in rows:
        t, labels = r.get("task"), r.get("labels") or {}
        if t not in answers or not all(k in labels for k in tasks.TASK_KEYS[t]):
            continue
        ok, const_ok = bool(r.get("correct")), bool(tasks.agrees(t, answers[t], labels))
        n += 1
        right += ok
        model_only += ok and not const_ok
        constant_only += const_ok and not ok
    p = mcnemar_exact(constant_only, model_only)
    min_p = mcnemar_exact(0, n)
    test = {"test": "mcnemar_exact", "n": n, "p_value": p, "min_p": min_p, "significant": bool(n) and p < ALPHA}
    accuracy = _r(right / n) if n else None
    constant = _r((right - model_only + constant_only) / n) if n else None
    return {"accuracy": accuracy, "constant": constant,
            "delta": _r(accuracy - constant) if n else None,
            "discordant": {"constant_only": constant_only, "model_only": model_only},
            **test, "verdict": verdict(test)}


def summary(best: dict, model: str, versus: dict) -> str:
    """One line for the page, the report and the CLI.

    >>> rows = [{"task": "csat", "labels": {"csat": c}, "correct": ok} for c, ok in ((5, False), (5, False), (4, True), (1, True))]
    >>> best = best_constant(rows)
    >>> print(summary(best, "run:demo", versus_constant(rows, best)))
    run:demo: overall accuracy 0.50 against 0.50 for the best constant answer per task (same as it; not significant (p=1): n=4; a rate moves in steps of 0.25 and no difference can be significant at this n)
    """
    if not versus.get("n"):
        return f"{model}: no answer to compare with the constant-answer baseline"
    d = versus["delta"]
    way = "above" if d > 0 else "below" if d < 0 else "same as"
    return (f"{model}: overall accuracy {versus['accuracy']:.2f} against {versus['constant']:.2f} for the best "
            f"constant answer per task ({way} it; {versus['verdict']})")


def describe(best: dict) -> str:
    """The baseline itself in words: its answers, its accuracy with interval, and n.

    >>> print(describe(best_constant([{"task": "churn", "labels": {"churn": "low"}}] * 3)))
    Best constant answer per task (chosen on these examples, so an upper bound for a model that answers one thing per task): overall accuracy 1.00 [0.44, 1.00], n=3; churn: low (3/3)
    """
    if not best["n"]:
        return "Best constant answer per task: no example with reference labels"
    parts = []
    for t, answer in best["answers"].items():
        value = "; ".join(", ".join(v) if isinstance(v, list) else str(v) for v in answer.values()) or "none"
        hit, n = best["per_task"][t]
        parts.append(f"{t}: {value} ({hit}/{n})")
    lo, hi = best["ci"]
    return (f"Best constant answer per task (chosen on these examples, so an upper bound for a model that answers "
            f"one thing per task): overall accuracy {best['accuracy']:.2f} [{lo:.2f}, {hi:.2f}], n={best['n']}; "
            + "; ".join(parts))
