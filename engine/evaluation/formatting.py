"""Figures and tests in words: ``0.40 [0.17, 0.69], n=10``, p-values, verdicts, the small-sample
warning, and one answer's faithfulness.

One formatter for the report, the Evaluate page and the CLI, so the three always say the same.
"""

from __future__ import annotations

from engine.evaluation.stats import ALPHA, BOOTSTRAP_RESAMPLES, SMALL_SAMPLE, mcnemar_exact


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


def faithfulness_word(f: dict | None) -> str:
    """One answer's faithfulness in words (report, pages, CLI).

    >>> faithfulness_word({"judged": True, "faithful": False, "contradictions": 1, "invented": 2})
    'unfaithful: 1 contradiction, 2 unsupported specifics'
    >>> faithfulness_word({"judged": False, "checked": True, "faithful": None, "contradictions": 0, "invented": 0})
    'not judged: no reasoning to check'
    """
    if not f:
        return "n/a"
    if not f.get("judged"):
        return "not judged: " + ("no reasoning to check" if f.get("checked") else "no labels or transcript")
    if f.get("faithful"):
        return "faithful"
    bits = []
    if f["contradictions"]:
        bits.append(f"{f['contradictions']} contradiction{'s' if f['contradictions'] != 1 else ''}")
    if f["invented"]:
        bits.append(f"{f['invented']} unsupported specific{'s' if f['invented'] != 1 else ''}")
    return "unfaithful: " + ", ".join(bits)
