"""The reasoning-chain quality scorer: 0-100, one pure function per criterion.

``score_chain(text, task, labels, transcript)`` returns the score, every criterion's points with
a one-sentence reason for reviewers, and whether the three sections are all there. Chains below
``THRESHOLD`` are retried and then flagged; a test generation must reach ``GATE_THRESHOLD``.

This module is the scorer's public entry (score_chain, passes, reasons, at_fault, score_file,
summarize, and the scale: THRESHOLD, WEIGHTS, CRITERIA, DEDUCTIONS...); the work is done in

- engine/chains/analysis.py: ``analyse``, the chain split into classified sentences, with what
  each criterion counts;
- engine/chains/criteria.py: the scale (weights, thresholds, caps) and the nine criteria;
- engine/chains/consistency.py and engine/chains/grounding.py: the faithfulness checks;
- engine/chains/vocabulary.py and engine/chains/transcript.py: the tokeniser and vocabularies,
  and what is read from a transcript.

Weights (``WEIGHTS``, summing to 100; the table is in engine/chains/criteria.py) follow the
plan's list, plus agreement with the label: sections 20, length 5, steps 20, reasoning 15,
actionable 15, business impact 10, label agreement 15; consistency and grounding are deductions.

Faithfulness (consistency, grounding). Form cannot tell a faithful chain from a fluent one that
contradicts the call or invents facts, so two criteria read what the sentences *say* and deduct
from the form score: a chain that contradicts its labels is capped at ``CONTRADICTION_CAP`` (55)
whatever its form; one with ``INVENTED_LIMIT`` (2) or more unsupported specifics is capped at
``INVENTED_CAP`` (65); a single unsupported specific costs ``INVENTED_POINTS``. A faithful chain
loses nothing. Each deduction lists the sentences at fault (``faults``: sentence, reason, kind
contradiction | invented, region) for the Review page; ``reasons`` turns a breakdown into the
review list's categories. The checks, their vocabularies and the negation and hedging rules are
described where they are defined (engine/chains/consistency.py, grounding.py). An optional judge model
(engine/chains/judge.py, generation only) adds a third deduction, ``judge``, and the reason ``judge``.

How gaming is defeated. Every content criterion (length, step bodies, reasoning, actions, impact)
counts only *sentences that carry content*, after these filters:

- a sentence is counted once, however often it is repeated (normalised word sequence);
- a sentence with under half distinct words ("because because because"), Latin filler (lorem
  ipsum) or a long run of words without English function words (keyword salad) is junk;
- a sentence whose words are mostly covered by 7-word sequences of the transcript (when the
  transcript is given) is a copy, not reasoning, and earns nothing;
- keywords count as distinct terms: the tenth "churn" adds nothing;
- a step body needs distinct content words beyond the header's own words, so a header followed
  by "N/A" or a restatement of its title earns only the header point;
- text outside the three sections (the final answer, junk around the chain) earns nothing
  except the label, so a chain that is only the reference answer scores low.

Speed: no regex scans the body text per sentence. Sentences are tokenised by bytes.translate and
str.split, vocabularies are matched with set operations, section headers are matched only on
lines that contain their keyword, copy detection hashes n-grams only inside runs of
transcript words, and transcript n-grams are cached per transcript. Every pass is linear in the
text; the faithfulness checks add one set intersection per sentence, work only on sentences
with a claim word, and two plain regex passes (numbers, capitalised names) over the body.
``bench/scorer.py`` measures the rate (docs/benchmarks.md: at least 1,000 chains a second on
one core, the plan's 25,790 chains well under a minute).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from operator import itemgetter

from engine.data import tasks as _tasks
from engine.data.example import ChatMLError, read_example
from engine.chains.analysis import analyse
from engine.chains.criteria import (
    CONTRADICTION_CAP, CONTRADICTION_POINTS, CRITERIA, DEDUCTIONS, FAITH_CRITERIA, FORM_CRITERIA, GATE_THRESHOLD,
    INVENTED_CAP, INVENTED_LIMIT, INVENTED_POINTS, JUDGE_CRITERION, THRESHOLD, WEIGHTS, criterion_actionable,
    criterion_business_impact, criterion_consistency, criterion_grounding, criterion_label_agreement,
    criterion_length, criterion_reasoning, criterion_sections, criterion_steps,
)
from engine.chains.grounding import CLAIM_WORDS

# The scale is defined with the criteria (engine/chains/criteria.py) and the claim words with the
# checks (engine/chains/grounding.py); callers import them from here, with the entry points.
__all__ = [
    "THRESHOLD", "GATE_THRESHOLD", "WEIGHTS", "CRITERIA", "FORM_CRITERIA", "FAITH_CRITERIA", "JUDGE_CRITERION",
    "DEDUCTIONS", "CONTRADICTION_CAP", "CONTRADICTION_POINTS", "INVENTED_POINTS", "INVENTED_LIMIT", "INVENTED_CAP",
    "CLAIM_WORDS", "REASONS", "MAX_JSON_DEPTH",
    "score_chain", "passes", "reasons", "at_fault", "score_file", "summarize",
]


def at_fault(criteria: dict | None) -> list[dict]:
    """The faulty sentences recorded in a score breakdown (``{"sentence", "reason", "kind",
    "region"}``, contradictions first, then invented specifics, then the sentences a judge model
    named), for pages that highlight them; [] for a breakdown scored before faithfulness was checked."""
    out: list[dict] = []
    for name in DEDUCTIONS:
        c = (criteria or {}).get(name)
        if isinstance(c, dict) and isinstance(c.get("faults"), list):
            out.extend(f for f in c["faults"] if isinstance(f, dict) and isinstance(f.get("sentence"), str))
    return out


REASONS = ("contradiction", "invented", "judge", "form")


def reasons(criteria: dict | None, threshold: float = THRESHOLD) -> list[str]:
    """Why a chain falls short, from its score breakdown (the review list filters on these):
    ``contradiction`` (a statement contradicts the labels), ``invented`` (an unsupported
    specific), ``judge`` (the optional judge model rated it unfaithful; engine/chains/judge.py),
    ``form`` (the form criteria alone stay below ``threshold``, or a section is missing). A
    faithful chain of good form has none.

    >>> reasons({"sections": {"points": 20.0, "max": 20.0}, "steps": {"points": 60.0, "max": 60.0},
    ...          "consistency": {"points": -35.0, "max": 0.0, "faults": [{"sentence": "x", "kind": "contradiction"}]}})
    ['contradiction']
    """
    criteria = criteria or {}
    out = []
    for name, kind in (("consistency", "contradiction"), ("grounding", "invented")):
        c = criteria.get(name)
        if isinstance(c, dict) and c.get("faults"):
            out.append(kind)
    judge = criteria.get(JUDGE_CRITERION)
    if isinstance(judge, dict) and judge.get("faithful") is False:
        out.append("judge")
    form = sum(float(c.get("points") or 0.0) for k, c in criteria.items()
               if k not in DEDUCTIONS and isinstance(c, dict))
    sec = criteria.get("sections")
    if form < threshold or (isinstance(sec, dict) and float(sec.get("points") or 0) < float(sec.get("max") or 0) - 1e-6):
        out.append("form")
    return out


# --------------------------------------------------------------------------------------------
# Public entry points


def score_chain(text: str, task: str | None = None, labels: dict | None = None, transcript: str | None = None) -> dict:
    """Score one chain: ``{"score", "criteria": {name: {points, max, reason}}, "sections_ok",
    "problems", "faithfulness"}``.

    The form criteria add up to at most 100; ``grounding`` and then ``consistency`` deduct from
    that sum (their ``faults`` list the sentences at fault), so the score is always the sum of
    the criteria's points. ``faithfulness`` counts the contradictions and unsupported specifics
    (``faithful``: none of either), the reasoning sentences the checks read (``sentences``; none
    in an answer without sections) and whether labels or a transcript were there to check them
    against (``checked``).

    >>> from engine.chains.chain import render_chain
    >>> r = score_chain(render_chain({n: "N/A" for n in range(1, 6)}, {}, {}, "CSAT: 4/5"), "csat", {"csat": 4})
    >>> r["score"], r["sections_ok"], r["criteria"]["steps"]["points"]
    (40.0, True, 5.0)
    >>> round(sum(c["points"] for c in r["criteria"].values()), 2) == r["score"]
    True
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    labels = labels if isinstance(labels, dict) else None
    task = task if isinstance(task, str) else None
    a = analyse(text, transcript=transcript if isinstance(transcript, str) else None, labels=labels)
    criteria = {
        "sections": criterion_sections(a),
        "length": criterion_length(a),
        "steps": criterion_steps(a),
        "reasoning": criterion_reasoning(a),
        "actionable": criterion_actionable(a),
        "business_impact": criterion_business_impact(a),
        "label_agreement": criterion_label_agreement(a, task, labels),
    }
    form = sum(map(itemgetter("points"), criteria.values()))
    criteria["grounding"] = grounding = criterion_grounding(a, form)
    criteria["consistency"] = consistency = criterion_consistency(a, form + grounding["points"])
    p = a.parsed
    score = form + grounding["points"] + consistency["points"]
    score = score if score > 0.0 else 0.0
    return {
        "score": score if (score * 4.0).is_integer() else round(score, 2),
        "criteria": criteria,
        "sections_ok": all(p["present"].values()) and all(p["closed"].values()) and p["in_order"],
        "problems": p["problems"],
        "faithfulness": {"contradictions": len(a.contradictions), "invented": len(a.invented),
                         "faithful": not a.contradictions and not a.invented,
                         # what the checks read: reasoning sentences inside the sections, and whether
                         # there were labels or a transcript to check them against (evaluation
                         # judges an answer's faithfulness only when both are there)
                         "sentences": len(a.texts), "checked": a.faith_checked[0]},
    }


def passes(result: dict, threshold: float = THRESHOLD) -> bool:
    """The acceptance rule: the score reaches ``threshold`` *and* all three sections are present,
    closed and in order. A chain that lacks, say, ``<analysis>`` but is otherwise excellent can
    score above 70; the plan's target "all sections present" needs this second condition.

    >>> passes({"score": 82.0, "sections_ok": True}), passes({"score": 82.0, "sections_ok": False})
    (True, False)
    >>> passes({"score": 72.0, "sections_ok": True}, GATE_THRESHOLD)
    False
    """
    return float(result.get("score", 0.0)) >= threshold and bool(result.get("sections_ok"))


def _chatml_parts(obj) -> tuple[str, str | None, dict | None, str | None, object]:
    """(assistant text, task, labels, transcript, id) from one ChatML object; raises ValueError."""
    try:
        ex = read_example(obj, roles=None, need="assistant")
    except ChatMLError as exc:  # chain scoring's own wording of the reader's rules
        reason = {"not_object": "line is not a JSON object", "no_assistant": "no assistant message",
                  "bad_message": "a message lacks a string 'role' or 'content'"}.get(exc.rule, "no 'messages' list")
        raise ValueError(reason) from None
    task, labels = ex.meta.get("task"), ex.meta.get("labels")
    return (ex.reference, task if task in _tasks.TASKS else None, labels if isinstance(labels, dict) else None,
            ex.transcript, ex.meta.get("id"))


MAX_JSON_DEPTH = 100  # a ChatML line nests about 4 deep; Python's json recurses per level


def _loads_bounded(line: str):
    """``json.loads`` of a line nested at most MAX_JSON_DEPTH deep; ValueError otherwise.

    Deeper nesting makes ``json.loads`` raise RecursionError (about 1,000 levels) or exhaust the
    stack, so the depth is counted first: strings removed, then brackets added up.
    """
    import re
    from itertools import accumulate

    outside_strings = re.sub(r'"[^"\\]*(?:\\.[^"\\]*)*"', "", line)
    steps = (1 if b in "[{" else -1 for b in re.findall(r"[\[\]{}]", outside_strings))
    if max(accumulate(steps), default=0) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return json.loads(line)


def score_file(path) -> Iterator[dict]:
    """Score the last assistant turn of every line of a ChatML JSONL file, lazily.

    Yields ``{"line", "score", "criteria", "sections_ok", "id"}`` per line, or
    ``{"line", "error"}`` for a line that is not valid ChatML; blank lines are skipped.
    """
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = _loads_bounded(line)
                text, task, labels, transcript, ex_id = _chatml_parts(obj)
            except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                yield {"line": n, "error": str(exc) if not isinstance(exc, json.JSONDecodeError) else f"invalid JSON: {exc.msg}"}
                continue
            try:
                r = score_chain(text, task, labels, transcript)
            except Exception as exc:  # a scorer bug must not stop a many-hour job
                yield {"line": n, "error": f"scoring failed: {type(exc).__name__}: {exc}"}
                continue
            yield {"line": n, "score": r["score"], "criteria": r["criteria"], "sections_ok": r["sections_ok"], "id": ex_id}


def summarize(results: Iterable[dict]) -> dict:
    """Aggregate scored lines: count, errors, average, share_ge_70, share_all_sections, the
    shares of chains with a contradiction, with an unsupported specific and faithful (neither),
    and the average points per criterion (zeros when nothing was scored).

    >>> summarize([{"line": 1, "score": 80.0, "sections_ok": True, "criteria": {"steps": {"points": 20.0}}},
    ...            {"line": 2, "score": 60.0, "sections_ok": False, "criteria": {"steps": {"points": 10.0}}},
    ...            {"line": 3, "error": "invalid JSON"}])["average"]
    70.0
    """
    scored = errors = ge = all_sections = contradicting = inventing = faithful = 0
    total = 0.0
    sums = {name: 0.0 for name in CRITERIA}
    lo = hi = None
    for r in results:
        if "error" in r:
            errors += 1
            continue
        scored += 1
        s = float(r["score"])
        total += s
        lo = s if lo is None else min(lo, s)
        hi = s if hi is None else max(hi, s)
        ge += s >= THRESHOLD
        all_sections += bool(r.get("sections_ok"))
        for name, c in (r.get("criteria") or {}).items():
            sums[name] = sums.get(name, 0.0) + float(c.get("points", 0.0))
        why = reasons(r.get("criteria"))
        contradicting += "contradiction" in why
        inventing += "invented" in why
        faithful += "contradiction" not in why and "invented" not in why
    return {
        "count": scored,
        "errors": errors,
        "average": round(total / scored, 2) if scored else 0.0,
        "min": lo if lo is not None else 0.0,
        "max": hi if hi is not None else 0.0,
        "share_ge_70": round(ge / scored, 4) if scored else 0.0,
        "share_all_sections": round(all_sections / scored, 4) if scored else 0.0,
        "share_contradiction": round(contradicting / scored, 4) if scored else 0.0,
        "share_invented": round(inventing / scored, 4) if scored else 0.0,
        "share_faithful": round(faithful / scored, 4) if scored else 0.0,
        "criteria": {name: round(v / scored, 2) if scored else 0.0 for name, v in sums.items()},
    }
