"""Statistics for small evaluations: Wilson intervals, the exact McNemar test, the percentile
and paired bootstraps, and the statistics the bootstrap recomputes (mean, macro-F1, micro P/R/F1).

Why this is here: with 5 examples per task a rate moves in steps of 0.2, so "0.2 -> 0.4" can be
one lucky answer. Every figure therefore carries its interval and its n, and every delta its
p-value, and the tables say "not significant" where it is not (``engine.evaluation.figures``
says which test each figure gets). docs/evaluation.md has the formulas. Nothing here needs numpy
or scipy: Wilson is a closed form, the exact McNemar test is a binomial sum over integers, and
the bootstrap uses ``random.Random`` with a fixed seed, so the same predictions always give the
same intervals (on any machine, in any order of figures). Pure functions over plain values: no
task knowledge.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
ALPHA = 0.05  # "significant" means p < ALPHA (two-sided), i.e. at the 95% level
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
SMALL_SAMPLE = 10  # fewer examples than this per task: the page and the report warn


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


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
