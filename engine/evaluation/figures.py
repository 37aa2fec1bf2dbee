"""Every headline figure's 95% interval and, between two models, its paired test.

``FIGURES`` says, for each figure, which prediction rows measure it and what one example
contributes; ``intervals`` gives one model's figures their interval and n, ``paired_tests`` gives
each base-vs-tuned difference its test (exact McNemar for a proportion, paired bootstrap
otherwise). The statistics themselves are in ``engine.evaluation.stats``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from engine.data import tasks
from engine.evaluation.formatting import verdict
from engine.evaluation.scoring import _faith_checked, _faith_judged, _value
from engine.evaluation.stats import (ALPHA, _mean, _micro_f1, _micro_precision, _micro_recall, _r, bootstrap_ci,
                                     macro_f1, mcnemar_exact, paired_bootstrap, wilson)


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
