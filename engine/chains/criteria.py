"""The quality scorer's scale and its criteria: one pure function per criterion.

Each ``criterion_<name>(a)`` reads an ``Analysed`` chain (engine/chains/analysis.py) and returns
``{"points", "max", "reason"}`` (the deductions add ``faults``). Weights (``WEIGHTS``, summing
to 100) follow the plan's list, plus agreement with the label:

=================  ====  ==========================================================================
sections            20   the three tags opened, closed, in order; ``Final answer:``; the 8 part headers
length               5   >= 500 characters of substantive text (headers, tags, junk not counted)
steps               20   the five steps in order, each with a body of real content
reasoning           15   distinct causal sentences (because / due to / therefore ...) with content
actionable          15   specific actions (verb + concrete object) in each insight part
business_impact     10   distinct business-impact terms in a meaningful sentence, mainly Step 5
label_agreement     15   the final answer's label agrees with the reference
consistency          0   deduction: statements that contradict the labels (or the transcript)
grounding            0   deduction: specifics (amounts, names, dates, products...) nobody supports
=================  ====  ==========================================================================

The two deductions cap the score of an unfaithful chain (engine/chains/quality.py says how);
``THRESHOLD`` and ``GATE_THRESHOLD`` are the pass marks of a generated chain and of a test
generation. engine/chains/quality.py adds the criteria up (``score_chain``) and is where callers
import the scale from.
"""

from __future__ import annotations

from engine.data import tasks as _tasks
from engine.chains.analysis import _STEP_REGIONS, Analysed
from engine.chains.chain import ANALYSIS_PARTS, INSIGHT_PARTS, SECTIONS, STEPS
from engine.chains.vocabulary import _IMPACT_RANK

THRESHOLD = 70
GATE_THRESHOLD = 75

WEIGHTS = {
    "sections": 20.0,
    "length": 5.0,
    "steps": 20.0,
    "reasoning": 15.0,
    "actionable": 15.0,
    "business_impact": 10.0,
    "label_agreement": 15.0,
    # Faithfulness: deductions only (``max`` 0, points <= 0), so a faithful chain keeps its score.
    "consistency": 0.0,
    "grounding": 0.0,
}
CRITERIA = tuple(WEIGHTS)
FORM_CRITERIA = tuple(k for k, v in WEIGHTS.items() if v > 0)
FAITH_CRITERIA = ("consistency", "grounding")
# The optional judge model's rating (engine/chains/judge.py) joins a breakdown as one more deduction.
JUDGE_CRITERION = "judge"
DEDUCTIONS = FAITH_CRITERIA + (JUDGE_CRITERION,)

# A chain whose body contradicts its labels never passes: its score is capped at 55 (50, 45...
# with each further contradiction), well below THRESHOLD whatever its form.
CONTRADICTION_CAP = 55.0
CONTRADICTION_POINTS = 10.0   # the least a contradiction costs
# Each unsupported specific costs 4 points; from INVENTED_LIMIT on, the score is capped at 65
# (minus 3 per further one). Why 2: one unsupported specific may be the check's own error (a
# paraphrased amount, a capitalised common word), so it costs points but cannot fail a chain
# alone; two independent ones are a pattern of invention, and such a chain goes to review.
INVENTED_POINTS = 4.0
INVENTED_LIMIT = 2
INVENTED_CAP = 65.0

MIN_CHARS = 500            # substantive characters for full length credit
STEP_WORDS = 12            # distinct non-header content words for a full step body
CAUSAL_TARGET = 5          # weighted causal sentences for full reasoning credit
ACTION_TARGET = 6          # distinct action sentences for full count credit
IMPACT_TARGET = 4.0        # weighted distinct impact terms for full credit


def _result(name: str, points: float, reason: str) -> dict:
    top = WEIGHTS[name]
    points = top if points > top else points if points > 0.0 else 0.0
    # round() formats the float in decimal, slowly; quarters are exact already.
    return {"points": points if (points * 4.0).is_integer() else round(points, 2), "max": top, "reason": reason}


def criterion_sections(a: Analysed) -> dict:
    """Three tags present (3 each) and closed (1.5 each), in order (2), ``Final answer:`` (1.5),
    the eight part headers (3); all of it halved when a section is missing. (A chain missing a
    section should not be accepted whatever its score: ``passes`` also requires ``sections_ok``.)

    >>> from engine.chains.analysis import analyse
    >>> from engine.chains.chain import render_chain
    >>> criterion_sections(analyse(render_chain({}, {}, {}, "CSAT: 3/5")))
    {'points': 20.0, 'max': 20.0, 'reason': 'All three sections present, closed and in order, with all 8 part headers.'}
    >>> criterion_sections(analyse("<thinking>x</thinking><insights>y"))["reason"]
    'Missing <analysis>; <insights> not closed; no Final answer header; 0 of 8 part headers.'
    """
    p = a.parsed
    present = [s for s in SECTIONS if p["present"][s]]
    closed = [s for s in SECTIONS if p["closed"][s]]
    n_parts = len(p["parts"]["analysis"]) + len(p["parts"]["insights"])
    total_parts = len(ANALYSIS_PARTS) + len(INSIGHT_PARTS)
    points = 3.0 * len(present) + 1.5 * len(closed)
    if p["in_order"] and present:
        points += 2.0 * len(present) / len(SECTIONS)
    if p["has_final_header"]:
        points += 1.5
    points += 3.0 * n_parts / total_parts
    if len(present) < len(SECTIONS):
        points /= 2
    faults = []
    missing = [s for s in SECTIONS if s not in present]
    if missing:
        faults.append("missing " + ", ".join(f"<{s}>" for s in missing))
    unclosed = [s for s in present if s not in closed]
    if unclosed:
        faults.append(", ".join(f"<{s}>" for s in unclosed) + " not closed")
    if present and not p["in_order"]:
        faults.append("sections out of order or duplicated")
    if not p["has_final_header"]:
        faults.append("no Final answer header")
    if faults:
        faults.append(f"{n_parts} of {total_parts} part headers")
        reason = "; ".join(faults)
        reason = reason[0].upper() + reason[1:] + "."
    elif n_parts < total_parts:
        reason = f"All three sections present, closed and in order; {n_parts} of {total_parts} part headers."
    else:
        reason = f"All three sections present, closed and in order, with all {total_parts} part headers."
    return _result("sections", points, reason)


def criterion_length(a: Analysed) -> dict:
    """Substantive characters: counted sentences inside the sections, each once.

    >>> from engine.chains.analysis import analyse
    >>> words = "billing refund hold transfer outage router invoice credit manager voucher renewal tariff".split()
    >>> long = "<thinking>" + " ".join(f"The {w} issue made the customer wait for weeks." for w in words)
    >>> criterion_length(analyse(long))["points"]
    5.0
    >>> same = "<thinking>" + " ".join(f"Point {i} shows the refund was late for customer {i}." for i in range(12))
    >>> criterion_length(analyse(same))["reason"]  # differing only in numbers: one sentence
    '49 characters of substantive text (500 needed).'
    >>> criterion_length(analyse("<thinking>Step 1 - Customer Sentiment Analysis\\nN/A</thinking>"))["points"]
    0.0
    """
    chars = a.ok_chars
    points = WEIGHTS["length"] * min(1.0, chars / MIN_CHARS)
    reason = f"{chars:,} characters of substantive text ({MIN_CHARS} needed)"
    if a.copied_chars:
        reason += f"; {a.copied_chars:,} characters copied from the transcript not counted"
    return _result("length", points, reason + ".")


def criterion_steps(a: Analysed) -> dict:
    """Per step (4 each): header 1 (0.6 when the title differs), body 3 scaled by its distinct
    content words beyond the header words (12 for full); out of order costs a quarter.

    >>> from engine.chains.analysis import analyse
    >>> from engine.chains.chain import render_chain
    >>> body = ("The customer was angry because the invoice doubled after the plan change last month; "
    ...         "she threatened to cancel her broadband contract twice.")
    >>> nouns = ["invoice", "bill", "statement", "charge", "receipt"]
    >>> criterion_steps(analyse(render_chain({n: body.replace("invoice", nouns[n - 1]) for n in range(1, 6)}, {}, {}, "")))
    {'points': 20.0, 'max': 20.0, 'reason': '5 of 5 steps found in order, all with substantive bodies.'}
    >>> criterion_steps(analyse(render_chain({1: "N/A", 2: body}, {}, {}, "")))["reason"]
    '5 of 5 steps found in order; thin bodies: Step 1, Step 3, Step 4, Step 5.'
    """
    steps = a.parsed["steps"]
    first: dict[int, dict] = {}
    order = []
    for s in steps:
        if 1 <= s["n"] <= len(STEPS) and s["n"] not in first:
            first[s["n"]] = s
            order.append(s["n"])
    words = a.step_words
    points = 0.0
    thin, short = [], []
    for n, s in sorted(first.items()):
        points += 1.0 if s["title_ok"] else 0.6
        k = len(words.get(_STEP_REGIONS[n], ()))
        points += 3.0 * min(1.0, k / STEP_WORDS)
        if k < STEP_WORDS / 2:
            thin.append(f"Step {n}")
        elif k < STEP_WORDS:
            short.append(f"Step {n}")
    in_order = order == sorted(order)
    if not in_order:
        points *= 0.75
    reason = f"{len(first)} of {len(STEPS)} steps found" + (" in order" if in_order else " out of order")
    if len(first) < len(STEPS):
        reason += "; missing " + ", ".join(f"Step {n} - {STEPS[n - 1]}" for n in range(1, len(STEPS) + 1) if n not in first)
    if thin:
        reason += "; thin bodies: " + ", ".join(thin)
    if short:
        reason += f"; short bodies (under {STEP_WORDS} distinct content words): " + ", ".join(short)
    if first and not thin and not short:
        reason += ", all with substantive bodies"
    return _result("steps", points, reason + ".")


def criterion_reasoning(a: Analysed) -> dict:
    """Distinct causal sentences with at least 3 content words; grounded in the transcript or
    labels counts 1, otherwise 0.5 (all count 1 when there is nothing to ground against); at
    most 3 per step or part; 5 for full credit.

    >>> from engine.chains.analysis import analyse
    >>> text = ("<thinking>The customer escalated because the refund was delayed twice. "
    ...         "Because because because because refund refund. "
    ...         "Churn risk rose since the agent never confirmed a resolution date.</thinking>")
    >>> criterion_reasoning(analyse(text))
    {'points': 6.0, 'max': 15.0, 'reason': '2 distinct causal statements (5 for full credit).'}
    >>> criterion_reasoning(analyse(text, transcript="Customer: my refund is delayed again."))["reason"]
    '2 distinct causal statements (5 for full credit), 1 grounded in the transcript or labels.'
    """
    n_causal, grounded, weight = a.causal
    points = WEIGHTS["reasoning"] * min(1.0, weight / CAUSAL_TARGET)
    reason = f"{n_causal} distinct causal statement{'s' if n_causal != 1 else ''} ({CAUSAL_TARGET} for full credit)"
    if a.grounding is not None:
        reason += f", {grounded} grounded in the transcript or labels"
    return _result("reasoning", points, reason + ".")


def criterion_actionable(a: Analysed) -> dict:
    """Specific actions (an action or modal verb followed by two concrete object words) in
    ``<insights>``: 60% for the share of the 4 insight parts with one, 40% for the count (6).

    >>> from engine.chains.analysis import analyse
    >>> text = ("<insights>\\nImmediate Coaching: Coach Dana on explaining hold reasons before placing callers on hold.\\n"
    ...         "Process Improvements: Improve overall performance and quality.\\n</insights>")
    >>> criterion_actionable(analyse(text))
    {'points': 3.25, 'max': 15.0, 'reason': '1 specific action; in 1 of 4 insight parts (none in Process Improvements, Business Actions, Strategic Insights).'}
    """
    n_actions, loose, parts_with = a.actions
    covered = len(parts_with) + 0.5 * min(loose, len(INSIGHT_PARTS) - len(parts_with))
    points = WEIGHTS["actionable"] * (
        0.6 * covered / len(INSIGHT_PARTS) + 0.4 * min(1.0, n_actions / ACTION_TARGET)
    )
    reason = f"{n_actions} specific action{'s' if n_actions != 1 else ''}"
    if loose and not parts_with:
        reason += " in <insights>, without part headers"
    else:
        reason += f"; in {len(parts_with)} of {len(INSIGHT_PARTS)} insight parts"
        lacking = [p for p in INSIGHT_PARTS if p not in parts_with]
        if lacking and parts_with:
            reason += " (none in " + ", ".join(lacking) + ")"
    return _result("actionable", points, reason + ".")


def criterion_business_impact(a: Analysed) -> dict:
    """Distinct impact terms (cost, churn, CSAT, AHT, FCR, revenue...) in counted sentences;
    each term weighs 1 in Step 5 / Business Actions and 0.5 elsewhere, halved again without a
    direction or quantity nearby; 4 for full credit, at most 7 points with nothing in Step 5 /
    Business Actions. The reason lists the heaviest terms.

    >>> from engine.chains.analysis import analyse
    >>> s5 = ("<thinking>Step 5 - Business Impact Analysis\\nThe repeat calls raise handle time and cost, "
    ...       "and churn risk is high, threatening annual revenue of $600.</thinking>")
    >>> criterion_business_impact(analyse(s5))["points"]
    10.0
    >>> criterion_business_impact(analyse(s5.replace("cost,", "cost cost cost cost,")))["points"]
    10.0
    >>> criterion_business_impact(analyse("<thinking>Churn churn churn churn churn churn.</thinking>"))["points"]
    0.0
    """
    best, primary = a.impact
    total = sum(best.values())
    points = WEIGHTS["business_impact"] * min(1.0, total / IMPACT_TARGET)
    if not best:
        return _result("business_impact", 0.0, "No business-impact terms (cost, churn, CSAT, AHT, revenue...) in a meaningful sentence.")
    terms = ", ".join(sorted(best, key=lambda k: (-best[k], _IMPACT_RANK[k]))[:6])
    reason = f"Impact terms: {terms}"
    if not primary:
        points = min(points, 7.0)
        reason += "; none stated with a direction or amount in Step 5 / Business Actions"
    return _result("business_impact", points, reason + ".")


# The keyword each answer pattern of ``engine.data.tasks._PATTERNS`` starts with (one of them must be
# in the text, in any case). Those patterns try every character of the text with re.I, which
# costs more than all the rest of the scoring on a chain without a final answer; testing for the
# keyword first skips them where they cannot match. Keep in step with engine.data.tasks.
_ANSWER_KEYWORDS = {
    "csat": (b"csat",),
    "quality": (b"qa", b"quality"),
    "churn": (b"churn",),
    "sentiment": (b"sentiment",),
    "root_cause": (b"root", b"contact"),
    "coaching": (b"coaching",),
}
# Characters that re.I matches with an ASCII letter although they do not lower-case to it.
_CASE_SPECIALS_UTF8 = tuple(c.encode() for c in ("\u0130", "\u0131", "\u017f", "\u212a"))


def _keyword_text(text: str) -> bytes | None:
    """``text`` as lower-cased UTF-8 for the keyword test; ``None`` (no test) when it holds a
    character of ``_CASE_SPECIALS_UTF8``."""
    raw = text.encode("utf-8", "surrogatepass")
    if not text.isascii() and any(map(raw.__contains__, _CASE_SPECIALS_UTF8)):
        return None
    return raw.lower()


def _answer_str(task: str, parsed: dict) -> str:
    try:
        return _tasks.answer_line(task, {**{k: None for k in _tasks.TASK_KEYS[task]}, **parsed})
    except Exception:  # a partial answer (sentiment without trajectory)
        return ", ".join(f"{k}={v}" for k, v in parsed.items())


def criterion_label_agreement(a: Analysed, task: str | None = None, labels: dict | None = None) -> dict:
    """The final answer's label agrees with the reference (15; 10 when the answer line is only
    found outside the final answer). Without reference labels, a parseable answer earns 15.

    >>> from engine.chains.analysis import analyse
    >>> a = analyse("<thinking>x</thinking>\\nFinal answer:\\nLong wait. CSAT: 2/5")
    >>> criterion_label_agreement(a, "csat", {"csat": 2})["points"]
    15.0
    >>> criterion_label_agreement(a, "csat", {"csat": 4})["reason"]
    'Final answer says CSAT: 2/5; the reference is CSAT: 4/5.'
    >>> criterion_label_agreement(a)["reason"]
    'No reference labels; the final answer parses (CSAT: 2/5).'
    """
    final = a.parsed["final_answer"]
    candidates = (task,) if task else _tasks.TASKS
    found = None
    for where, text in (("final", final), ("text", a.text)):
        if not text:
            continue
        low = _keyword_text(text)
        for t in candidates:
            if low is not None and t in _ANSWER_KEYWORDS and not any(map(low.__contains__, _ANSWER_KEYWORDS[t])):
                continue    # no answer line of this task can be there
            got = _tasks.parse_answer(t, text)
            if got:
                found = (t, where, got)
                break
        if found:
            break
    if found is None:
        what = f"{_tasks.TASK_TITLES.get(task, task)} answer line" if task else "task's answer line"
        return _result("label_agreement", 0.0, f"No {what} found in the final answer.")
    t, where, got = found
    full = WEIGHTS["label_agreement"] if where == "final" else WEIGHTS["label_agreement"] * 2 / 3
    said = _answer_str(t, got)
    verdict = _tasks.agrees(t, got, labels or {})
    place = "" if where == "final" else " (found outside the final answer)"
    if verdict is None:
        return _result("label_agreement", full, f"No reference labels; the final answer parses ({said}){place}.")
    if verdict:
        return _result("label_agreement", full, f"Final answer {said} agrees with the reference{place}.")
    try:
        want = _tasks.answer_line(t, labels)
    except Exception:
        want = str({k: labels.get(k) for k in _tasks.TASK_KEYS[t]})
    return _result("label_agreement", 0.0, f"Final answer says {said}; the reference is {want}.")


_REGION_TITLES = {f"step{n}": f"Step {n}" for n in range(1, len(STEPS) + 1)}


def _where(region: str) -> str:
    """``step2`` -> ``Step 2``; ``analysis:Key Strengths`` -> ``Key Strengths``."""
    return _REGION_TITLES.get(region) or region.partition(":")[2] or f"<{region}>"


def _fault_list(faults: list[dict], limit: int = 4) -> str:
    shown = [f'{_where(f["region"])} "{_clip(f["sentence"])}" {f["reason"]}' for f in faults[:limit]]
    more = len(faults) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _clip(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[:n - 3].rstrip() + "..."


def _deduction(name: str, points: float, reason: str, faults: list[dict]) -> dict:
    points = points if (points * 4.0).is_integer() else round(points, 2)
    return {"points": -points if points > 0 else 0.0, "max": WEIGHTS[name], "reason": reason, "faults": faults}


def criterion_grounding(a: Analysed, form: float = 100.0) -> dict:
    """Specifics (numbers, amounts, names, dates, channels, products) that neither the transcript
    nor the labels support: -4 each, and from ``INVENTED_LIMIT`` on the score (``form``, the
    points before this deduction) is capped at ``INVENTED_CAP``. ``faults`` names each sentence.

    >>> from engine.chains.analysis import analyse
    >>> tr = "Agent: Hi, this is Sam. Customer: My bill shows $40 too much."
    >>> chain = "<thinking>Step 2 - Agent Performance Evaluation\\nThe agent, Sarah, refunded $40 by email.</thinking>"
    >>> g = criterion_grounding(analyse(chain, tr), form=90.0)
    >>> g["points"], [f["reason"] for f in g["faults"]]
    (-25.0, ["the name 'Sarah' is not in the transcript", 'mentions email, which the transcript never does'])
    """
    faults = a.invented
    checked = a.faith_checked[1]
    if checked is None:
        return _deduction("grounding", 0.0, "No transcript: specifics (numbers, names, dates, products) not checked.", [])
    n = len(faults)
    if not n:
        what = f"All {checked} specifics" if checked else "No specifics"
        tail = " are in the transcript or labels." if checked else " (numbers, names, dates, channels, products) to check."
        return _deduction("grounding", 0.0, what + tail, [])
    points = INVENTED_POINTS * n
    if n >= INVENTED_LIMIT:
        points = max(points, form - (INVENTED_CAP - 3.0 * (n - INVENTED_LIMIT)))
    points = min(points, form)
    reason = f"{n} unsupported specific{'s' if n != 1 else ''} of {checked}: {_fault_list(faults)}"
    if n >= INVENTED_LIMIT:
        reason += f"; {INVENTED_LIMIT} or more cap the score below {THRESHOLD:g}"
    return _deduction("grounding", points, reason + ".", faults)


def criterion_consistency(a: Analysed, before: float = 100.0) -> dict:
    """Statements that contradict the labels (or, without one, the transcript): any contradiction
    caps the score (``before``, the points before this deduction) at ``CONTRADICTION_CAP``, 5 less
    per further one, and costs at least ``CONTRADICTION_POINTS``.

    >>> from engine.chains.analysis import analyse
    >>> chain = ("<thinking>Step 1 - Customer Sentiment Analysis\\nThe customer was delighted with the outcome. "
    ...          "There was no sign of frustration.</thinking>")
    >>> c = criterion_consistency(analyse(chain, labels={"csat": 1}), before=90.0)
    >>> c["points"], c["faults"][0]["reason"]
    (-35.0, 'says the customer was delighted, but CSAT is 1/5')
    >>> criterion_consistency(analyse(chain, labels={"csat": 5}))["points"]
    0.0
    """
    faults = a.contradictions
    if not a.faith_checked[0]:
        return _deduction("consistency", 0.0, "No labels or transcript to check the chain's statements against.", [])
    n = len(faults)
    if not n:
        return _deduction("consistency", 0.0, "No statement contradicts the labels or the transcript.", [])
    cap = max(0.0, CONTRADICTION_CAP - 5.0 * (n - 1))
    points = min(before, max(CONTRADICTION_POINTS * n, before - cap))
    reason = (f"{n} contradiction{'s' if n != 1 else ''}: {_fault_list(faults)}; a chain that contradicts its "
              f"labels is capped at {cap:g}.")
    return _deduction("consistency", points, reason, faults)
