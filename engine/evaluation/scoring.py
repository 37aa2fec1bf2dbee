"""Scoring one model's answers: the answer parser, per-task metrics over (reference labels, parsed
prediction) pairs, structure compliance, the quality-score distribution and faithfulness.

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
scorer), which copes with the messy answers small models write. Macro-F1 and the Wilson intervals
are in ``engine.evaluation.stats``; ``engine.evaluation.metrics`` puts everything together.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

from engine.data import tasks
from engine.evaluation.stats import _div, _r, macro_f1, wilson

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
