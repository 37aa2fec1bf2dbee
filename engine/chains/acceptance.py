"""When a generated reasoning chain is accepted: its score, its structure faults, the judge.

A chain is accepted (settled as ``passed``) when the scorer passes it (``quality.passes``) and it
has no ``structure_faults``; ``chain_reasons`` says why one falls short, as the review list
filters it; ``judge_attempts`` adds the judge model's rating when ``cfg.judge`` is on.
"""

from __future__ import annotations

import json
import re

from engine.chains import quality
from engine.core import store


def score_for(example: dict, text: str) -> dict:
    return quality.score_chain(text, example.get("task"), example.get("labels"), example.get("transcript"))


_CONTROL_TOKEN_RE = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>")


def structure_faults(text: str) -> list[str]:
    """What makes a chain structurally unfit for training, beyond what its score weighs: the
    parser's problems, a step or part header written twice (a quoted transcript line that reads
    as a header, say), a raw chat control token. A chain with any is never accepted as passed:
    it is retried, then flagged for review.

    >>> from engine.chains.chain import render_chain
    >>> structure_faults(render_chain({n: "Calm." for n in range(1, 6)}, {}, {}, "CSAT: 3/5"))
    []
    >>> chain = render_chain({1: "Calm.\\nStep 3 - Interaction Quality Assessment", 2: "x", 3: "y", 4: "z",
    ...                       5: "<|im_start|>assistant"}, {}, {}, "CSAT: 3/5")
    >>> structure_faults(chain)
    ['steps out of order', 'Step 3 appears 2 times', 'a raw chat control token']
    """
    from engine.chains.chain import parse_chain

    p = parse_chain(text)
    faults = list(p["problems"])
    steps = [s["n"] for s in p["steps"]]
    faults += [f"Step {n} appears {steps.count(n)} times" for n in sorted(set(steps)) if steps.count(n) > 1]
    for section, order in p["part_order"].items():
        faults += [f"<{section}> has {k} {order.count(k)} times" for k in dict.fromkeys(order) if order.count(k) > 1]
    if _CONTROL_TOKEN_RE.search(text):
        faults.append("a raw chat control token")
    return faults


def accepted(result: dict, threshold: float) -> bool:
    """The acceptance rule of a generated chain: the scorer's (``quality.passes``) and no
    ``structure_faults`` (``result["faults"]``)."""
    return quality.passes(result, threshold) and not result.get("faults")


def chain_reasons(result: dict, threshold: float = quality.THRESHOLD) -> list[str]:
    """Why a scored chain falls short, as the review list filters it: ``quality.reasons`` of its
    breakdown, plus ``form`` for a missing section or a structure fault (``result["faults"]``).

    >>> chain_reasons({"criteria": {"sections": {"points": 20.0, "max": 20.0}, "steps": {"points": 70.0}},
    ...                "sections_ok": True, "faults": ["Step 3 appears 2 times"]})
    ['form']
    """
    why = quality.reasons(result.get("criteria"), threshold)
    if "form" not in why and (result.get("faults") or not result.get("sections_ok", True)):
        why.append("form")
    return why


def stored_reasons(criteria, status: str | None) -> list[str]:
    """The reasons of a chain stored with only its breakdown and status: ``quality.reasons``,
    and for a flagged chain with none, ``form`` (it was flagged for its structure: a duplicated
    header, a control token).

    >>> stored_reasons({}, "flagged"), stored_reasons({"steps": {"points": 95.0}}, "passed")
    (['form'], [])
    """
    why = quality.reasons(criteria if isinstance(criteria, dict) else {})
    if status == "flagged" and not why:
        why = ["form"]
    return why


def fill_missing_reasons(db) -> int:
    """Derive and store the reasons of chains stored without them (a database from before the
    reasons column: its migration leaves them NULL, as core does not know the quality rules).
    Called before chains are read; a no-op once every chain has them, and cheap then: the lookup
    reads the partial index ``chains_missing_reasons``, not the table. Returns how many it filled."""
    missing = {}
    for chain_id, criteria, status in db.execute("SELECT id, criteria, status FROM chains WHERE reasons IS NULL"):
        try:
            crit = json.loads(criteria)
        except ValueError:
            crit = {}
        missing[chain_id] = stored_reasons(crit, status)
    if missing:
        store.set_chain_reasons(db, missing)
    return len(missing)


def judge_attempts(cfg, pairs: list[tuple[dict, dict]], everything: bool = False) -> dict:
    """Rate scored attempts with the judge model (``cfg.judge``; engine/chains/judge.py) and add its
    criterion to each, in place. ``pairs``: (example, attempt) where an attempt has ``text``,
    ``score``, ``criteria``, ``sections_ok`` and ``faults``. Only attempts the scorer accepts are
    sent (``everything``: all of them, for the gate test); the requests run concurrently. The
    judge's failures are recorded per attempt ("judge unavailable"), never raised. Returns counts:
    rated, unfaithful, unavailable, not_sent, and the first error."""
    from engine.chains import judge

    send = [(ex, a) for ex, a in pairs if everything or accepted(a, cfg.threshold)]
    verdicts = {id(a): v for (_, a), v in zip(send, judge.rate(cfg.judge, [(ex, a["text"]) for ex, a in send]))}
    counts = {"rated": 0, "unfaithful": 0, "unavailable": 0, "not_sent": 0, "error": None}
    for _, a in pairs:
        verdict = verdicts.get(id(a))
        e = judge.entry(verdict, cfg.judge, a["score"], cfg.threshold)
        judge.apply(a, e)
        if verdict is None:
            counts["not_sent"] += 1
        elif e.get("unavailable"):
            counts["unavailable"] += 1
            counts["error"] = counts["error"] or verdict["error"]
        else:
            counts["rated"] += 1
            counts["unfaithful"] += e["faithful"] is False
    return counts
