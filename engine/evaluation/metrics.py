"""Evaluation metrics: pure functions over (reference labels, parsed prediction) pairs.

Conventions, in one place:

- A prediction that cannot be parsed is ``None``. It is never dropped: it counts as wrong in
  every accuracy, as a miss (false negative) for its reference class, and it appears in the
  confusion matrices as the column ``"unparsed"``. Every task reports its ``parse_rate``.
- Mean absolute errors (CSAT, QA score) can only be taken over parsed answers; they are
  reported with ``mae_n`` (how many answers they cover) beside the parse rate, so a model that
  answers rarely but well cannot hide behind a small MAE.
- Precision, recall and F1 divide by zero as 0.0 (scikit-learn's ``zero_division=0``). Macro-F1
  averages over the classes that occur in the references or the predictions, so a class that
  neither side uses does not drag it down.
- Coaching is a set task: precision/recall/F1 are micro-averaged over behaviours (true
  positives are behaviours in both sets), and ``exact_set_accuracy`` asks for the whole set.
- Structure compliance reads the text with ``engine.chains.chain.parse_chain``: all three sections
  present and closed, all five steps with their titles, sections in order.

``parse_prediction`` is ``engine.data.tasks.parse_answer`` (the one parser, shared with the quality
scorer), which copes with the messy answers small models write.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterable, Sequence

from engine.data import tasks

UNPARSED = "unparsed"


# ---------------------------------------------------------------------------------------------
# Parsing model answers
# ---------------------------------------------------------------------------------------------

def parse_prediction(task: str, text: str | None) -> dict | None:
    """The task's labels parsed from a model's answer, or ``None`` when there is no answer.

    >>> parse_prediction("churn", "**Churn risk**: high")
    {'churn': 'high'}
    >>> parse_prediction("coaching", "Coaching focus:\\n- empathy\\n- ownership")
    {'coaching': ['empathy', 'ownership']}
    >>> parse_prediction("csat", "The customer seemed fine.") is None
    True
    >>> parse_prediction("csat", "CSAT: 1-5\\nCustomer satisfaction: 5") is None  # the scale echoed back
    True
    """
    if not isinstance(text, str):
        return None
    return tasks.parse_answer(task, text)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def accuracy(golds: Sequence, preds: Sequence) -> float:
    """Share of predictions equal to the reference; ``None`` predictions are wrong.

    >>> accuracy(["low", "high", "low"], ["low", None, "high"])
    0.3333
    >>> accuracy([], [])
    0.0
    """
    return _r(_div(sum(1 for g, p in zip(golds, preds) if p is not None and g == p), len(golds)))


def _prf(tp: int, fp: int, fn: int) -> dict:
    """Precision, recall, F1 and support of one class, with Wilson intervals on precision and recall
    (each is a share of examples: of those predicted as the class, of those that are the class)."""
    precision, recall = _div(tp, tp + fp), _div(tp, tp + fn)
    return {"precision": _r(precision), "recall": _r(recall), "f1": _r(_div(2 * precision * recall, precision + recall)),
            "support": tp + fn, "precision_ci": list(wilson(tp, tp + fp)), "recall_ci": list(wilson(tp, tp + fn))}


def macro_f1(pairs: Sequence[tuple]) -> float:
    """Mean F1 over the classes that occur in the references or the (parsed) predictions.

    ``pairs`` are (reference, prediction or None). One pass over the pairs: this is also the
    statistic the bootstrap recomputes 2,000 times.

    >>> macro_f1([("low", "low"), ("low", "high"), ("high", "high"), ("medium", None)])
    0.4444444444444444
    >>> macro_f1([])
    0.0
    """
    tp: dict = {}
    fp: dict = {}
    fn: dict = {}
    for g, p in pairs:
        if p == g:
            tp[g] = tp.get(g, 0) + 1
            continue
        fn[g] = fn.get(g, 0) + 1
        if p is not None:
            fp[p] = fp.get(p, 0) + 1
    f1s = []
    for c in {**tp, **fp, **fn}:
        t = tp.get(c, 0)
        f1s.append(_div(2 * t, 2 * t + fp.get(c, 0) + fn.get(c, 0)))
    return _div(sum(f1s), len(f1s))


def confusion(golds: Sequence, preds: Sequence, classes: Sequence[str]) -> dict:
    """Confusion matrix: rows are reference classes, columns the predicted classes plus ``unparsed``.

    A reference or prediction outside ``classes`` gets its own row or column (after the known
    ones), so nothing is lost.

    >>> confusion(["low", "high"], ["low", None], ["low", "high"])
    {'rows': ['low', 'high'], 'columns': ['low', 'high', 'unparsed'], 'matrix': [[1, 0, 0], [0, 0, 1]]}
    """
    rows = list(classes) + sorted({str(g) for g in golds} - set(classes))
    cols = list(classes) + sorted({str(p) for p in preds if p is not None} - set(classes)) + [UNPARSED]
    matrix = [[0] * len(cols) for _ in rows]
    for g, p in zip(golds, preds):
        matrix[rows.index(str(g))][cols.index(UNPARSED if p is None else str(p))] += 1
    return {"rows": rows, "columns": cols, "matrix": matrix}


# The label space of every task with a confusion matrix: (key, title, where its metrics are, classes).
CONFUSION_TASKS = (
    ("csat", "CSAT", ("csat",), ("1", "2", "3", "4", "5")),
    ("churn", "Churn risk", ("churn",), tasks.CHURN_LEVELS),
    ("sentiment", "Sentiment", ("sentiment",), tasks.SENTIMENTS),
    ("trajectory", "Sentiment trajectory", ("sentiment", "trajectory"), tasks.TRAJECTORIES),
    ("root_cause", "Root cause", ("root_cause",), tasks.ROOT_CAUSES),
)


def confusion_views(metrics: dict | None) -> list[dict]:
    """Every confusion matrix of one model's metrics over the task's whole label space.

    Rows are every reference class, columns every predicted class then ``unparsed``, whatever
    the examples happened to contain (so two evaluations line up cell for cell and a class that
    was never predicted still shows as an empty column); a label outside the space keeps its own
    row or column. ``n`` and ``parsed`` are the task's sample size and parsed answers.

    >>> v = confusion_views({"tasks": {"churn": {"n": 2, "parsed": 1, "confusion": {
    ...     "rows": ["high"], "columns": ["high", "unparsed"], "matrix": [[1, 1]]}}}})
    >>> v[0]["title"], v[0]["rows"], v[0]["columns"], v[0]["matrix"], v[0]["n"], v[0]["parsed"]
    ('Churn risk', ['low', 'medium', 'high'], ['low', 'medium', 'high', 'unparsed'], [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]], 2, 1)
    """
    out = []
    for key, title, path, classes in CONFUSION_TASKS:
        m = (metrics or {}).get("tasks") or {}
        for part in path:
            m = (m or {}).get(part)
        conf = (m or {}).get("confusion")
        if not conf:
            continue
        classes = [str(c) for c in classes]
        rows = classes + [r for r in conf["rows"] if r not in classes]
        cols = classes + [c for c in conf["columns"] if c not in classes and c != UNPARSED] + [UNPARSED]
        matrix = [[0] * len(cols) for _ in rows]
        for r, line in zip(conf["rows"], conf["matrix"]):
            for c, count in zip(conf["columns"], line):
                matrix[rows.index(r)][cols.index(c)] += int(count)
        n = m.get("n", sum(map(sum, matrix)))
        parsed = m.get("parsed", n - sum(line[-1] for line in matrix))
        out.append({"key": key, "title": title, "rows": rows, "columns": cols, "matrix": matrix, "n": n,
                    "parsed": parsed})
    return out


def classification(golds: Sequence, preds: Sequence, classes: Sequence[str]) -> dict:
    """Accuracy, per-class precision/recall/F1, macro-F1 and the confusion matrix.

    >>> m = classification(["low", "low", "high", "medium"], ["low", "high", "high", None],
    ...                    ["low", "medium", "high"])
    >>> m["accuracy"], m["parse_rate"], m["macro_f1"]
    (0.5, 0.75, 0.4444)
    >>> m["per_class"]["high"]
    {'precision': 0.5, 'recall': 1.0, 'f1': 0.6667, 'support': 1, 'precision_ci': [0.0945, 0.9055], 'recall_ci': [0.2065, 1.0]}
    """
    n = len(golds)
    golds = [str(g) for g in golds]
    preds = [None if p is None else str(p) for p in preds]
    per_class = {}
    used = [c for c in dict.fromkeys(list(classes) + golds + [p for p in preds if p is not None])]
    for c in used:
        tp = sum(1 for g, p in zip(golds, preds) if g == c and p == c)
        fp = sum(1 for g, p in zip(golds, preds) if g != c and p == c)
        fn = sum(1 for g, p in zip(golds, preds) if g == c and p != c)
        if c in classes or tp + fn or tp + fp:
            per_class[c] = _prf(tp, fp, fn)
    parsed = sum(1 for p in preds if p is not None)
    return {
        "n": n,
        "parsed": parsed,
        "parse_rate": _r(_div(parsed, n)),
        "accuracy": accuracy(golds, preds),
        "macro_f1": _r(macro_f1(list(zip(golds, preds)))),
        "per_class": per_class,
        "confusion": confusion(golds, preds, classes),
    }


# ---------------------------------------------------------------------------------------------
# Per-task metrics. Each takes a list of (reference labels, parsed prediction or None).
# ---------------------------------------------------------------------------------------------

Pairs = Sequence[tuple[dict, dict | None]]


def _value(pred: dict | None, key: str):
    return None if not pred or key not in pred else pred[key]


def csat_metrics(pairs: Pairs) -> dict:
    """CSAT (1-5): exact and within-one accuracy (unparsed = wrong), MAE over parsed answers.

    >>> m = csat_metrics([({"csat": 4}, {"csat": 4}), ({"csat": 2}, {"csat": 3}),
    ...                   ({"csat": 5}, {"csat": 1}), ({"csat": 1}, None)])
    >>> m["exact_accuracy"], m["within_one_accuracy"], m["mae"], m["mae_n"], m["parse_rate"]
    (0.25, 0.5, 1.6667, 3, 0.75)
    """
    golds = [int(g["csat"]) for g, _ in pairs]
    preds = [_value(p, "csat") for _, p in pairs]
    preds = [None if v is None else int(v) for v in preds]
    n = len(golds)
    errors = [abs(g - p) for g, p in zip(golds, preds) if p is not None]
    cls = classification([str(g) for g in golds], [None if p is None else str(p) for p in preds],
                         ["1", "2", "3", "4", "5"])
    return {
        "n": n,
        "parsed": len(errors),
        "parse_rate": _r(_div(len(errors), n)),
        "exact_accuracy": _r(_div(sum(1 for e in errors if e == 0), n)),
        "within_one_accuracy": _r(_div(sum(1 for e in errors if e <= 1), n)),
        "mae": _r(statistics.fmean(errors)) if errors else None,
        "mae_n": len(errors),
        "macro_f1": cls["macro_f1"],
        "confusion": cls["confusion"],
    }


def quality_metrics(pairs: Pairs) -> dict:
    """QA score (0-100): MAE over parsed answers, share within 10 points (unparsed = wrong).

    >>> m = quality_metrics([({"quality": 80}, {"quality": 75}), ({"quality": 60}, {"quality": 90}),
    ...                      ({"quality": 70}, None)])
    >>> m["mae"], m["within_10_accuracy"], m["parse_rate"]
    (17.5, 0.3333, 0.6667)
    """
    golds = [float(g["quality"]) for g, _ in pairs]
    preds = [_value(p, "quality") for _, p in pairs]
    n = len(golds)
    errors = [abs(g - float(p)) for g, p in zip(golds, preds) if p is not None]
    return {
        "n": n,
        "parsed": len(errors),
        "parse_rate": _r(_div(len(errors), n)),
        "mae": _r(statistics.fmean(errors)) if errors else None,
        "mae_n": len(errors),
        "within_10_accuracy": _r(_div(sum(1 for e in errors if e <= 10), n)),
    }


def churn_metrics(pairs: Pairs) -> dict:
    """Churn risk (low/medium/high): accuracy, per-class precision/recall/F1, macro-F1, confusion.

    >>> m = churn_metrics([({"churn": "low"}, {"churn": "low"}), ({"churn": "high"}, {"churn": "medium"}),
    ...                    ({"churn": "high"}, None)])
    >>> m["accuracy"], m["per_class"]["high"]["recall"], m["parse_rate"]
    (0.3333, 0.0, 0.6667)
    """
    return classification([g["churn"] for g, _ in pairs], [_value(p, "churn") for _, p in pairs],
                          list(tasks.CHURN_LEVELS))


def sentiment_metrics(pairs: Pairs) -> dict:
    """Sentiment and its trajectory: accuracy and macro-F1 of each, and both right together.

    A prediction without a trajectory counts as an unparsed trajectory.

    >>> m = sentiment_metrics([
    ...     ({"sentiment": "negative", "sentiment_trajectory": "improving"},
    ...      {"sentiment": "negative", "sentiment_trajectory": "improving"}),
    ...     ({"sentiment": "positive", "sentiment_trajectory": "stable"}, {"sentiment": "positive"}),
    ...     ({"sentiment": "neutral", "sentiment_trajectory": "worsening"}, None)])
    >>> m["accuracy"], m["trajectory"]["accuracy"], m["both_accuracy"], m["parse_rate"]
    (0.6667, 0.3333, 0.3333, 0.6667)
    """
    sentiment = classification([g["sentiment"] for g, _ in pairs], [_value(p, "sentiment") for _, p in pairs],
                               list(tasks.SENTIMENTS))
    with_traj = [(g, p) for g, p in pairs if "sentiment_trajectory" in g]
    trajectory = classification([g["sentiment_trajectory"] for g, _ in with_traj],
                                [_value(p, "sentiment_trajectory") for _, p in with_traj], list(tasks.TRAJECTORIES))
    both = sum(1 for g, p in with_traj if p and p.get("sentiment") == g["sentiment"]
               and p.get("sentiment_trajectory") == g["sentiment_trajectory"])
    return {**sentiment, "trajectory": trajectory, "both_accuracy": _r(_div(both, len(with_traj)))}


def root_cause_metrics(pairs: Pairs) -> dict:
    """Root cause (ten reasons): accuracy, macro-F1, per-class figures, confusion.

    >>> m = root_cause_metrics([({"root_cause": "billing_dispute"}, {"root_cause": "billing_dispute"}),
    ...                         ({"root_cause": "plan_change"}, {"root_cause": "billing_dispute"})])
    >>> m["accuracy"], m["macro_f1"]
    (0.5, 0.3333)
    """
    return classification([g["root_cause"] for g, _ in pairs], [_value(p, "root_cause") for _, p in pairs],
                          list(tasks.ROOT_CAUSES))


def coaching_metrics(pairs: Pairs) -> dict:
    """Coaching behaviours as sets: micro precision/recall/F1 and exact-set accuracy.

    An unparsed answer is an empty prediction for precision/recall and wrong for exact-set.

    >>> m = coaching_metrics([({"coaching": ["empathy", "ownership"]}, {"coaching": ["empathy"]}),
    ...                       ({"coaching": []}, {"coaching": []}),
    ...                       ({"coaching": ["call_closing"]}, None)])
    >>> m["precision"], m["recall"], m["f1"], m["exact_set_accuracy"], m["parse_rate"]
    (1.0, 0.3333, 0.5, 0.3333, 0.6667)
    """
    tp = fp = fn = exact = parsed = 0
    per: dict[str, list[int]] = {}
    for g, p in pairs:
        gold = set(g["coaching"])
        pred = set(_value(p, "coaching") or [])
        if p is not None and "coaching" in p:
            parsed += 1
            exact += gold == pred
        tp += len(gold & pred)
        fp += len(pred - gold)
        fn += len(gold - pred)
        for b in gold | pred:
            counts = per.setdefault(b, [0, 0, 0])
            counts[0] += b in gold and b in pred
            counts[1] += b in pred and b not in gold
            counts[2] += b in gold and b not in pred
    precision, recall = _div(tp, tp + fp), _div(tp, tp + fn)
    n = len(pairs)
    per_behaviour = {}
    for b in sorted(per):
        per_behaviour[b] = _prf(*per[b])
    return {
        "n": n,
        "parsed": parsed,
        "parse_rate": _r(_div(parsed, n)),
        "precision": _r(precision),
        "recall": _r(recall),
        "f1": _r(_div(2 * precision * recall, precision + recall)),
        "exact_set_accuracy": _r(_div(exact, n)),
        "per_behaviour": per_behaviour,
    }


TASK_METRICS = {
    "csat": csat_metrics,
    "quality": quality_metrics,
    "churn": churn_metrics,
    "sentiment": sentiment_metrics,
    "root_cause": root_cause_metrics,
    "coaching": coaching_metrics,
}


# ---------------------------------------------------------------------------------------------
# Structure and quality score
# ---------------------------------------------------------------------------------------------


def structure_of(text: str) -> dict:
    """Which parts of the reasoning structure a text has.

    >>> from engine.chains.chain import render_chain
    >>> full = render_chain({n: "x" for n in range(1, 6)}, {}, {}, "CSAT: 4/5")
    >>> structure_of(full)
    {'all_sections': True, 'all_steps': True, 'in_order': True, 'compliant': True}
    >>> structure_of("CSAT: 4/5")["compliant"]
    False
    """
    from engine.chains.chain import SECTIONS, STEPS, parse_chain

    p = parse_chain(text or "")
    sections = all(p["present"][s] and p["closed"][s] for s in SECTIONS)
    found = {s["n"] for s in p["steps"] if s["title_ok"]}
    steps = all(n in found for n in range(1, len(STEPS) + 1))
    return {"all_sections": sections, "all_steps": steps, "in_order": bool(p["in_order"]),
            "compliant": sections and steps and bool(p["in_order"])}


def structure_metrics(structures: Sequence[dict]) -> dict:
    """Rates of all sections, all five steps, and full compliance over ``structure_of`` results.

    >>> structure_metrics([{"all_sections": True, "all_steps": False, "in_order": True, "compliant": False},
    ...                    {"all_sections": True, "all_steps": True, "in_order": True, "compliant": True}])
    {'n': 2, 'all_sections_rate': 1.0, 'all_steps_rate': 0.5, 'compliance_rate': 0.5}
    """
    n = len(structures)
    return {
        "n": n,
        "all_sections_rate": _r(_div(sum(1 for s in structures if s["all_sections"]), n)),
        "all_steps_rate": _r(_div(sum(1 for s in structures if s["all_steps"]), n)),
        "compliance_rate": _r(_div(sum(1 for s in structures if s["compliant"]), n)),
    }


HISTOGRAM_EDGES = tuple(range(0, 101, 10))


def score_distribution(scores: Iterable[float], threshold: float = 70.0) -> dict:
    """Mean, median, quartiles, share at or above ``threshold`` and a 10-point histogram.

    >>> d = score_distribution([20, 75, 80, 95])
    >>> d["mean"], d["median"], d["share_ge_70"], d["histogram"]["counts"]
    (67.5, 77.5, 0.75, [0, 0, 1, 0, 0, 0, 0, 1, 1, 1])
    """
    scores = sorted(float(s) for s in scores)
    counts = [0] * (len(HISTOGRAM_EDGES) - 1)
    for s in scores:
        counts[min(len(counts) - 1, max(0, int(s // 10)))] += 1
    quart = statistics.quantiles(scores, n=4, method="inclusive") if len(scores) >= 2 else (scores * 3 or [None] * 3)
    return {
        "n": len(scores),
        "mean": _r(statistics.fmean(scores), 2) if scores else None,
        "median": _r(statistics.median(scores), 2) if scores else None,
        "p25": _r(quart[0], 2) if scores else None,
        "p75": _r(quart[2], 2) if scores else None,
        "min": scores[0] if scores else None,
        "max": scores[-1] if scores else None,
        "share_ge_70": _r(_div(sum(1 for s in scores if s >= threshold), len(scores))),
        "histogram": {"edges": list(HISTOGRAM_EDGES), "counts": counts},
    }


# ---------------------------------------------------------------------------------------------
# Faithfulness of the answers
# ---------------------------------------------------------------------------------------------


def _faith_checked(r: dict) -> bool:
    """The answer's faithfulness was checked: the example has labels or a transcript."""
    f = r.get("faithfulness")
    return isinstance(f, dict) and bool(f.get("checked"))


def _faith_judged(r: dict) -> bool:
    """Checked, and the answer has reasoning sentences to judge (an answer without the reasoning
    sections, such as a base model's bare "CSAT: 4/5", asserts nothing the checks can read)."""
    return _faith_checked(r) and bool(r["faithfulness"].get("judged"))


def faithfulness_metrics(rows: Sequence[dict]) -> dict:
    """Faithfulness of a model's answers: the scorer's consistency and grounding checks over each
    answer's reasoning (``row["faithfulness"]``: contradictions, invented, faithful, judged, checked).

    ``faithful_rate`` is over the ``judged`` answers (those with reasoning sentences) only: an
    answer that claims nothing is not counted as faithful. ``contradiction_rate`` (answers with
    at least one contradiction) and ``invented_per_answer`` (unsupported specifics per answer)
    are over every ``checked`` answer: an answer with nothing to read contributes none of either.
    Rows without ``faithfulness`` (or with nothing to check against) are left out (``n``).

    >>> rows = [{"faithfulness": {"checked": True, "judged": True, "faithful": False, "contradictions": 1,
    ...                           "invented": 2}},
    ...         {"faithfulness": {"checked": True, "judged": True, "faithful": True, "contradictions": 0,
    ...                           "invented": 0}},
    ...         {"faithfulness": {"checked": True, "judged": False, "faithful": None, "contradictions": 0,
    ...                           "invented": 0}}]
    >>> m = faithfulness_metrics(rows)
    >>> m["judged"], m["faithful_rate"], m["contradiction_rate"], m["invented_per_answer"]
    (2, 0.5, 0.3333, 0.6667)
    >>> faithfulness_metrics([])["faithful_rate"] is None
    True
    """
    checked = [r["faithfulness"] for r in rows if _faith_checked(r)]
    judged = [f for f in checked if f.get("judged")]
    contradicting = sum(1 for f in checked if f["contradictions"] > 0)
    invented = sum(int(f["invented"]) for f in checked)
    return {
        "n": len(checked),
        "judged": len(judged),
        "not_judged": len(checked) - len(judged),
        "faithful": sum(1 for f in judged if f["faithful"]),
        "faithful_rate": _r(_div(sum(1 for f in judged if f["faithful"]), len(judged))) if judged else None,
        "with_contradiction": contradicting,
        "contradiction_rate": _r(_div(contradicting, len(checked))) if checked else None,
        "invented": invented,
        "with_invented": sum(1 for f in checked if f["invented"] > 0),
        "invented_per_answer": _r(_div(invented, len(checked))) if checked else None,
    }


FAITHFULNESS_KEYS = ("faithful_rate", "contradiction_rate", "invented_per_answer")


# ---------------------------------------------------------------------------------------------
# Everything at once
# ---------------------------------------------------------------------------------------------


def evaluate_predictions(rows: Sequence[dict]) -> dict:
    """All metrics for one model's predictions.

    Each row: ``task``, ``labels`` (reference), ``parsed`` (or None), ``score`` (quality score),
    ``structure`` (``structure_of``); optionally ``key`` (the example id, which pairs two models'
    rows in ``paired_tests``), ``finish_reason`` and ``faithfulness`` (``faithfulness_metrics``). Rows of unknown tasks or without reference
    labels count in structure and quality but not in task accuracy. ``intervals`` holds every
    figure's 95% interval and n (``intervals``).

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


# ---------------------------------------------------------------------------------------------
# Uncertainty: a 95% interval for every figure, a paired test for every base-vs-tuned delta
# ---------------------------------------------------------------------------------------------
#
# Why this is here: with 5 examples per task a rate moves in steps of 0.2, so "0.2 -> 0.4" can be
# one lucky answer. Every figure therefore carries its interval and its n, and every delta its
# p-value, and the tables say "not significant" where it is not. docs/evaluation.md has the
# formulas. Nothing here needs numpy or scipy: Wilson is a closed form, the exact McNemar test is
# a binomial sum over integers, and the bootstrap uses ``random.Random`` with a fixed seed, so the
# same predictions always give the same intervals (on any machine, in any order of figures).

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
ALPHA = 0.05  # "significant" means p < ALPHA (two-sided), i.e. at the 95% level
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
SMALL_SAMPLE = 10  # fewer examples than this per task: the page and the report warn


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (95% by default), rounded to 4.

    It stays inside [0, 1] and is not empty at 0/n or n/n, where the textbook p ± z·se
    interval collapses to a point. With no trials there is no information: [0, 1].

    >>> wilson(0, 5), wilson(5, 5), wilson(3, 10), wilson(4, 10)
    ((0.0, 0.4345), (0.5655, 1.0), (0.1078, 0.6032), (0.1682, 0.6873))
    >>> wilson(0, 0)
    (0.0, 1.0)
    """
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return (max(0.0, round(centre - half, 4)), min(1.0, round(centre + half, 4)))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for paired right/wrong answers.

    ``b``: pairs the base got right and the tuned model wrong; ``c``: the other way round. Under
    "no difference" each of the ``b + c`` discordant pairs is a fair coin, so
    p = min(1, 2 · P(Binomial(b + c, 1/2) <= min(b, c))). Computed with integers: exact.

    >>> mcnemar_exact(0, 6), mcnemar_exact(0, 5), mcnemar_exact(2, 8), mcnemar_exact(0, 0)
    (0.03125, 0.0625, 0.109375, 1.0)
    """
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2 ** n)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default "linear" method)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap_ci(observations: Sequence, statistic, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``statistic(observations)``; ``None`` below two observations.

    Each call draws from its own ``random.Random(seed)``: the same data always gives the same
    interval, whatever else was computed before.

    >>> bootstrap_ci([1.0, 2.0, 3.0, 4.0, 10.0], _mean) == bootstrap_ci([1.0, 2.0, 3.0, 4.0, 10.0], _mean)
    True
    >>> bootstrap_ci([2.0, 2.0, 2.0], _mean), bootstrap_ci([5.0], _mean)
    ((2.0, 2.0), None)
    """
    obs = list(observations)
    n = len(obs)
    if n < 2:
        return None
    rng = random.Random(seed)
    stats = []
    for _ in range(resamples):
        v = statistic(rng.choices(obs, k=n))
        if v is not None:
            stats.append(v)
    if not stats:
        return None
    stats.sort()
    tail = (1 - level) / 2
    return (round(_quantile(stats, tail), 4), round(_quantile(stats, 1 - tail), 4))


def paired_bootstrap(base: Sequence, tuned: Sequence, statistic, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED, level: float = 0.95) -> dict:
    """Paired bootstrap of ``statistic(tuned) - statistic(base)`` over the same examples.

    ``base[i]`` and ``tuned[i]`` are the two models' observations of example ``i``; a resample
    draws example indices, so both models are always measured on the same examples. The
    two-sided p-value is ``2 · min(share of resampled deltas <= 0, share >= 0)`` (capped at 1):
    the delta is significant at 95% when fewer than 2.5% of the resampled deltas fall on the
    other side of zero, which is when the 95% interval of the delta excludes zero.

    >>> r = paired_bootstrap([3.0, 2.0, 4.0, 3.0, 5.0, 4.0], [1.0, 1.0, 2.0, 1.0, 2.0, 2.0], _mean)
    >>> r["delta"], r["p_value"], r["delta_ci"][1] < 0
    (-2.0, 0.0, True)
    >>> paired_bootstrap([1.0, 2.0], [1.0, 2.0], _mean)["p_value"]
    1.0
    """
    n = len(base)
    sb, st = statistic(list(base)), statistic(list(tuned))
    delta = None if sb is None or st is None else _r(st - sb)
    out = {"delta": delta, "delta_ci": None, "p_value": None, "resamples": 0}
    if n < 2 or delta is None:
        return out
    rng = random.Random(seed)
    index = range(n)
    ds = []
    for _ in range(resamples):
        idx = rng.choices(index, k=n)
        a, b = statistic([base[i] for i in idx]), statistic([tuned[i] for i in idx])
        if a is not None and b is not None:
            ds.append(b - a)
    if not ds:
        return out
    ds.sort()
    tail = (1 - level) / 2
    # Rounding first: two models with the same figure on a resample give a difference of a few ulps.
    le = sum(1 for d in ds if round(d, 12) <= 0)
    ge = sum(1 for d in ds if round(d, 12) >= 0)
    return {"delta": delta, "delta_ci": [round(_quantile(ds, tail), 4), round(_quantile(ds, 1 - tail), 4)],
            "p_value": min(1.0, 2 * min(le, ge) / len(ds)), "resamples": len(ds)}


# -- statistics the bootstrap recomputes (each copes with None: "no value for this example") ----


def _mean(values: Sequence) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None  # not fmean: this runs 2,000 times per figure


def _micro(counts: Sequence[tuple[int, int, int]]) -> tuple[float, float, float]:
    tp = sum(c[0] for c in counts)
    fp = sum(c[1] for c in counts)
    fn = sum(c[2] for c in counts)
    p, r = _div(tp, tp + fp), _div(tp, tp + fn)
    return p, r, _div(2 * p * r, p + r)


def _micro_precision(counts): return _micro(counts)[0]  # noqa: E704
def _micro_recall(counts): return _micro(counts)[1]  # noqa: E704
def _micro_f1(counts): return _micro(counts)[2]  # noqa: E704


# -- what each figure observes per example ----------------------------------------------------


def _labelled_task(row: dict) -> str | None:
    """The row's task when it has all the task's reference labels (the rows that count in task metrics)."""
    task, labels = row.get("task"), row.get("labels") or {}
    keys = tasks.TASK_KEYS.get(task)
    return task if keys and all(k in labels for k in keys) else None


def _of_task(task: str):
    return lambda r: _labelled_task(r) == task


def _pred(row: dict, key: str):
    return _value(row.get("parsed"), key)


def _csat_error(r: dict) -> int | None:
    p = _pred(r, "csat")
    return None if p is None else abs(int(r["labels"]["csat"]) - int(p))


def _quality_error(r: dict) -> float | None:
    p = _pred(r, "quality")
    return None if p is None else abs(float(r["labels"]["quality"]) - float(p))


def _within(error, limit: float):
    """Right when the error is at most ``limit``; an unparsed answer (no error) is wrong."""
    def observe(r: dict) -> bool:
        e = error(r)
        return e is not None and e <= limit
    return observe


def _label_pair(key: str):
    def observe(r: dict) -> tuple:
        p = _pred(r, key)
        return (str(r["labels"][key]), None if p is None else str(p))
    return observe


def _coaching_counts(r: dict) -> tuple[int, int, int]:
    gold, pred = set(r["labels"]["coaching"]), set(_pred(r, "coaching") or [])
    return (len(gold & pred), len(pred - gold), len(gold - pred))


def _class_figures(task: str, key: str, prefix: str | None = None, where=None) -> dict:
    where = where or _of_task(task)
    pair = _label_pair(key)
    prefix = prefix or task
    return {
        f"{prefix}.accuracy": {"where": where, "observe": lambda r: pair(r)[1] == pair(r)[0]},
        f"{prefix}.macro_f1": {"where": where, "observe": pair, "statistic": macro_f1},
        f"{prefix}.parse_rate": {"where": where, "observe": lambda r: _pred(r, key) is not None},
    }


def _has_trajectory(r: dict) -> bool:
    return _labelled_task(r) == "sentiment" and "sentiment_trajectory" in r["labels"]


def _both_right(r: dict) -> bool:
    p = r.get("parsed") or {}
    return (p.get("sentiment") == r["labels"]["sentiment"]
            and p.get("sentiment_trajectory") == r["labels"]["sentiment_trajectory"])


def _score(r: dict) -> bool:
    return r.get("score") is not None


# THE one place where a figure gets its interval and its paired test. Each figure is a plain dict:
#   where(row) -> bool       which prediction rows the figure is measured on (its n);
#   observe(row) -> value    what one example contributes: a bool for a proportion; a number,
#                            a (reference, prediction) pair or (tp, fp, fn) counts otherwise;
#                            None = this example has no value (an unparsed answer has no error);
#   statistic(values)        how the figure is computed from the values; absent for a proportion.
# A proportion gets a Wilson interval and, between two models, the exact McNemar test; anything
# with a statistic gets a percentile bootstrap and, between two models, the paired bootstrap.
# The keys are the headline keys (``headline``); a new metric (faithfulness, say) adds its rows'
# field, an entry here and its key in ``headline``, and gets its interval, its n and its paired
# test in every table.
FIGURES: dict[str, dict] = {
    "overall.accuracy": {"where": lambda r: _labelled_task(r) is not None,
                         "observe": lambda r: bool(tasks.agrees(r["task"], r.get("parsed"), r["labels"]))},
    "overall.parse_rate": {"where": lambda r: _labelled_task(r) is not None,
                           "observe": lambda r: r.get("parsed") is not None},
    "structure.compliance_rate": {"where": lambda r: bool(r.get("structure")),
                                  "observe": lambda r: bool(r["structure"]["compliant"])},
    "structure.all_sections_rate": {"where": lambda r: bool(r.get("structure")),
                                    "observe": lambda r: bool(r["structure"]["all_sections"])},
    "structure.all_steps_rate": {"where": lambda r: bool(r.get("structure")),
                                 "observe": lambda r: bool(r["structure"]["all_steps"])},
    "quality_score.mean": {"where": _score, "observe": lambda r: float(r["score"]), "statistic": _mean},
    "quality_score.share_ge_70": {"where": _score, "observe": lambda r: float(r["score"]) >= 70.0},
    "csat.exact_accuracy": {"where": _of_task("csat"), "observe": lambda r: _csat_error(r) == 0},
    "csat.within_one_accuracy": {"where": _of_task("csat"), "observe": _within(_csat_error, 1)},
    "csat.mae": {"where": _of_task("csat"), "observe": _csat_error, "statistic": _mean},
    "csat.parse_rate": {"where": _of_task("csat"), "observe": lambda r: _pred(r, "csat") is not None},
    "csat.macro_f1": {"where": _of_task("csat"), "observe": _label_pair("csat"), "statistic": macro_f1},
    "quality.mae": {"where": _of_task("quality"), "observe": _quality_error, "statistic": _mean},
    "quality.within_10_accuracy": {"where": _of_task("quality"), "observe": _within(_quality_error, 10)},
    "quality.parse_rate": {"where": _of_task("quality"), "observe": lambda r: _pred(r, "quality") is not None},
    **_class_figures("churn", "churn"),
    **_class_figures("sentiment", "sentiment"),
    "sentiment.both_accuracy": {"where": _has_trajectory, "observe": _both_right},
    **_class_figures("sentiment", "sentiment_trajectory", "sentiment.trajectory", _has_trajectory),
    **_class_figures("root_cause", "root_cause"),
    "coaching.precision": {"where": _of_task("coaching"), "observe": _coaching_counts, "statistic": _micro_precision},
    "coaching.recall": {"where": _of_task("coaching"), "observe": _coaching_counts, "statistic": _micro_recall},
    "coaching.f1": {"where": _of_task("coaching"), "observe": _coaching_counts, "statistic": _micro_f1},
    "coaching.exact_set_accuracy": {"where": _of_task("coaching"), "observe": lambda r: (
        isinstance(r.get("parsed"), dict) and "coaching" in r["parsed"]
        and set(r["parsed"]["coaching"] or []) == set(r["labels"]["coaching"]))},
    "coaching.parse_rate": {"where": _of_task("coaching"), "observe": lambda r: (
        isinstance(r.get("parsed"), dict) and "coaching" in r["parsed"])},
    "generation.truncated_rate": {"where": lambda r: "finish_reason" in r,
                                  "observe": lambda r: r["finish_reason"] == "length"},
    # Faithfulness (``faithfulness_metrics``): the faithful share over the answers with reasoning
    # to judge; contradictions and invented specifics over every checked answer.
    "faithfulness.faithful_rate": {"where": _faith_judged, "observe": lambda r: bool(r["faithfulness"]["faithful"])},
    "faithfulness.contradiction_rate": {"where": _faith_checked,
                                        "observe": lambda r: r["faithfulness"]["contradictions"] > 0},
    "faithfulness.invented_per_answer": {"where": _faith_checked,
                                         "observe": lambda r: float(r["faithfulness"]["invented"]), "statistic": _mean},
}


def _observations(figure: dict, rows: Sequence[dict]) -> list:
    return [figure["observe"](r) for r in rows if figure["where"](r)]


def interval(figure: dict, observations: Sequence) -> dict | None:
    """``{"value", "ci": [lo, hi], "n", "method"}`` for one figure's observations (None values dropped).

    >>> interval(FIGURES["csat.exact_accuracy"], [True, False, False, True, False, False, True, False, False, True])
    {'value': 0.4, 'ci': [0.1682, 0.6873], 'n': 10, 'method': 'wilson'}
    >>> interval(FIGURES["csat.mae"], [None, None]) is None
    True
    """
    obs = [o for o in observations if o is not None]
    if not obs:
        return None
    stat = figure.get("statistic")
    if stat is None:
        k = sum(1 for o in obs if o)
        return {"value": _r(k / len(obs)), "ci": list(wilson(k, len(obs))), "n": len(obs), "method": "wilson"}
    ci = bootstrap_ci(obs, stat)
    return {"value": _r(stat(obs)), "ci": list(ci) if ci else None, "n": len(obs), "method": "bootstrap"}


def intervals(rows: Sequence[dict], keys: Iterable[str] | None = None) -> dict:
    """Every figure of ``FIGURES`` (or only ``keys``) that the rows measure, with its 95% interval and n.

    The rows are ``evaluate_predictions``' rows. A figure no row measures is left out.

    >>> rows = [{"task": "csat", "labels": {"csat": 4}, "parsed": {"csat": c}} for c in (4, 4, 5, 1, 4)]
    >>> iv = intervals(rows)
    >>> iv["csat.exact_accuracy"], iv["csat.mae"]["n"], "churn.accuracy" in iv
    ({'value': 0.6, 'ci': [0.2307, 0.8824], 'n': 5, 'method': 'wilson'}, 5, False)
    """
    out = {}
    for key, figure in FIGURES.items():
        if keys is not None and key not in keys:
            continue
        entry = interval(figure, _observations(figure, rows))
        if entry:
            out[key] = entry
    return out


def _step(n: int) -> str:
    return f"{1 / n:.2g}"


def format_p(test: dict) -> str:
    """``=0.0312``, or ``<0.0005`` where no bootstrap resample crossed zero (a bootstrap p-value of
    0 only says "below one in the number of resamples"); ``n/a`` without a test.

    >>> format_p({"p_value": 0.03125}), format_p({"p_value": 0.0, "resamples": 2000}), format_p({})
    ('=0.0312', '<0.0005', 'n/a')
    """
    p = test.get("p_value")
    if p is None:
        return "n/a"
    if p == 0:
        return f"<{1 / max(test.get('resamples') or BOOTSTRAP_RESAMPLES, 1):.1g}"
    return f"={p:.3g}"


def verdict(test: dict) -> str:
    """The plain-words reading of a paired test (``paired_tests`` entries).

    >>> print(verdict({"test": "mcnemar_exact", "n": 5, "p_value": 0.0625, "significant": False, "min_p": 0.0625,
    ...                "per_task": True}))
    not significant (p=0.0625): n=5 per task; a rate moves in steps of 0.2 and no difference can be
    significant at this n
    >>> verdict({"test": "mcnemar_exact", "n": 6, "p_value": 0.03125, "significant": True, "min_p": 0.03125})
    'significant at 95% (p=0.0312, n=6)'
    """
    n, p = test["n"], test["p_value"]
    if p is None:
        return f"not tested: n={n}"
    p_txt = "p" + format_p(test)
    if test["significant"]:
        return f"significant at 95% ({p_txt}, n={n})"
    if test["test"] == "mcnemar_exact":
        text = f"not significant ({p_txt}): n={n}{' per task' if test.get('per_task') else ''}; " \
               f"a rate moves in steps of {_step(n)}"
        if test.get("min_p", 0) >= ALPHA:
            text += " and no difference can be significant at this n"
        return text
    return f"not significant ({p_txt}, n={n})" + ("; small sample" if n < SMALL_SAMPLE else "")


def paired_tests(base_rows: Sequence[dict], tuned_rows: Sequence[dict], keys: Iterable[str] | None = None) -> dict:
    """For every figure both models measure, a paired test of tuned against base.

    Rows are paired by their ``key`` (the example id); an example only one model answered is
    left out of the test. Proportions: exact McNemar on the discordant pairs; everything else:
    paired bootstrap. Each entry has ``test``, ``n`` (pairs), ``p_value``, ``significant``
    (p < 0.05) and ``verdict``, plus ``discordant`` (McNemar) or ``delta_ci`` (bootstrap).
    ``keys``: only these figures (all of ``FIGURES`` by default).

    >>> base = [{"key": str(i), "task": "churn", "labels": {"churn": "low"}, "parsed": {"churn": "high"}}
    ...         for i in range(6)]
    >>> tuned = [{**r, "parsed": {"churn": "low"}} for r in base]
    >>> t = paired_tests(base, tuned)["churn.accuracy"]
    >>> t["discordant"], t["p_value"], t["significant"]
    ({'base_only': 0, 'tuned_only': 6}, 0.03125, True)
    """
    by_key = {r.get("key"): r for r in base_rows}
    out = {}
    for key, figure in FIGURES.items():
        if keys is not None and key not in keys:
            continue
        pairs = [(by_key[r.get("key")], r) for r in tuned_rows
                 if r.get("key") in by_key and figure["where"](r) and figure["where"](by_key[r.get("key")])]
        if not pairs:
            continue
        ob = [figure["observe"](a) for a, _ in pairs]
        ot = [figure["observe"](b) for _, b in pairs]
        n = len(pairs)
        stat = figure.get("statistic")
        if stat is None:
            b = sum(1 for x, y in zip(ob, ot) if x and not y)
            c = sum(1 for x, y in zip(ob, ot) if y and not x)
            entry = {"test": "mcnemar_exact", "n": n, "discordant": {"base_only": b, "tuned_only": c},
                     "p_value": mcnemar_exact(b, c), "min_p": mcnemar_exact(0, n)}
        else:
            res = paired_bootstrap(ob, ot, stat)
            entry = {"test": "paired_bootstrap", "n": n, "delta_ci": res["delta_ci"], "p_value": res["p_value"],
                     "resamples": res["resamples"]}
        entry["per_task"] = key.split(".")[0] in tasks.TASKS
        entry["significant"] = entry["p_value"] is not None and entry["p_value"] < ALPHA
        entry["verdict"] = verdict(entry)
        out[key] = entry
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


def sample_sizes(metrics: dict) -> dict:
    """Examples per task in one model's metrics: ``{"csat": 5, ...}``."""
    return {t: m.get("n", 0) for t, m in (metrics.get("tasks") or {}).items()}


def small_sample_warning(metrics: dict | None) -> str | None:
    """A warning when some task has fewer than ``SMALL_SAMPLE`` examples, else ``None``.

    >>> print(small_sample_warning({"tasks": {"csat": {"n": 5}, "churn": {"n": 12}}}))
    Small sample: 5 examples for csat (fewer than 10 for 1 of 2 tasks). A rate over 5 examples moves
    in steps of 0.2 and its 95% interval is wide; a base-vs-tuned difference on one task cannot be
    significant with 5 or fewer examples (smallest possible exact McNemar p = 0.0625). Read these
    figures as a smoke test, not a result.
    >>> small_sample_warning({"tasks": {"csat": {"n": 30}}}) is None
    True
    """
    sizes = sample_sizes(metrics or {})
    small = {t: n for t, n in sizes.items() if n < SMALL_SAMPLE}
    if not small:
        return None
    task, n = min(small.items(), key=lambda kv: kv[1])
    if n == 0:
        return f"No examples for {task}: its figures are empty."
    examples = f"{n} example{'' if n == 1 else 's'}"
    text = (f"Small sample: {examples} for {task} (fewer than {SMALL_SAMPLE} for {len(small)} of {len(sizes)} "
            f"tasks). A rate over {examples} moves in steps of {_step(n)} and its 95% interval is wide; ")
    if mcnemar_exact(0, n) >= ALPHA:
        text += (f"a base-vs-tuned difference on one task cannot be significant with {n} or fewer examples "
                 f"(smallest possible exact McNemar p = {mcnemar_exact(0, n):.3g}). ")
    else:
        text += ("a base-vs-tuned difference on one task is significant only if nearly every changed answer "
                 "moved one way. ")
    return text + "Read these figures as a smoke test, not a result."


def format_figure(entry: dict | None, value=None, digits: int = 2) -> str:
    """``0.40 [0.17, 0.69], n=10``: a figure with its interval and n (``interval`` entries).

    >>> format_figure({"value": 0.4, "ci": [0.1682, 0.6873], "n": 10, "method": "wilson"})
    '0.40 [0.17, 0.69], n=10'
    >>> format_figure(None, 1.25), format_figure({"value": 3.0, "ci": None, "n": 1, "method": "bootstrap"})
    ('1.25', '3.00 [n/a], n=1')
    """
    if not entry:
        return "n/a" if value is None else (f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value))
    v = entry["value"]
    ci = entry.get("ci")
    ci_txt = f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "[n/a]"
    return f"{v:.{digits}f} {ci_txt}, n={entry['n']}"
