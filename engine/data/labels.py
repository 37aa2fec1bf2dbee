"""The label rules of the synthetic calls: pure functions of the events.

``rng=None`` gives the exact rule (tests, the evaluator); passing the example's rng adds the
documented noise the generator uses. The rules are written out in each ``label_*`` docstring and
in docs/data.md; the event records they read are listed in ``engine.data.synth``.
"""

from __future__ import annotations

import math
import random

from engine.data.pick import pick
from engine.data.tasks import COACHING_BEHAVIOURS



def call_facts(events: list) -> dict:
    """Summarise an event list into the flags the label rules read.

    Every ``label_*`` rule takes ``facts=call_facts(events)`` optionally, so ``labels_for``
    summarises a call once instead of once per rule (the plan preset is 32k calls).

    >>> f = call_facts([{"type": "problem", "reason": "billing_dispute", "mood": -1},
    ...                 {"type": "hold", "minutes": 4, "asked": True, "thanked": False},
    ...                 {"type": "hold", "minutes": 7, "asked": True, "thanked": True},
    ...                 {"type": "resolution", "resolved": True}])
    >>> f["hold_minutes"], f["bad_holds"], f["resolved"], f["first_contact_resolution"]
    (11, 1, True, True)
    """
    f = {
        "reason": None, "start_mood": 0, "end_mood": None, "product": None,
        "repeat_count": 0, "tenure_years": None, "verification_skipped": False, "verified": False,
        "greeting_proper": True, "disclosure": True, "has_greeting": False,
        "empathy": False, "apology": False, "interruption": False, "knowledge_gap": False,
        "troubleshooting": False, "policy": False, "rude": False,
        "holds": 0, "hold_minutes": 0, "bad_holds": 0, "hold_asked_all": True, "hold_thanked_all": True,
        "transfers": 0, "cold_transfers": 0, "escalation": False, "cancellation_threat": False,
        "competitor": None, "refund": None, "resolved": False, "retained": None, "callback": None,
        "upsell": False, "pushy_upsell": False, "closing_proper": True, "has_closing": False,
    }
    for e in events:
        t = e["type"]
        if t == "greeting":
            f["has_greeting"] = True
            f["greeting_proper"] = bool(e.get("proper", True))
            f["disclosure"] = bool(e.get("disclosure", True))
        elif t == "problem":
            f["reason"] = e["reason"]
            f["start_mood"] = int(e.get("mood", 0))
            f["product"] = e.get("product")
        elif t == "repeat_contact":
            f["repeat_count"] = int(e.get("count", 2))
        elif t == "tenure":
            f["tenure_years"] = int(e["years"])
        elif t == "verification":
            f["verified"] = bool(e["done"])
            f["verification_skipped"] = not e["done"]
        elif t == "hold":
            f["holds"] += 1
            f["hold_minutes"] += int(e.get("minutes", 0))
            asked, thanked = bool(e.get("asked", True)), bool(e.get("thanked", True))
            f["hold_asked_all"] &= asked
            f["hold_thanked_all"] &= thanked
            f["bad_holds"] += not (asked and thanked)
        elif t == "transfer":
            f["transfers"] += 1
            f["cold_transfers"] += not e.get("warm", False)
        elif t == "competitor_mention":
            f["competitor"] = e.get("name", "a competitor")
        elif t == "refund":
            f["refund"] = e
        elif t == "resolution":
            f["resolved"] = bool(e["resolved"])
            f["retained"] = e.get("retained")
        elif t == "callback":
            f["callback"] = e.get("when", "later")
        elif t == "upsell":
            f["upsell"] = True
            f["pushy_upsell"] = bool(e.get("pushy", False))
        elif t == "closing":
            f["has_closing"] = True
            f["closing_proper"] = bool(e.get("proper", True))
            if "mood" in e:
                f["end_mood"] = int(e["mood"])
        elif t in ("empathy", "apology", "interruption", "knowledge_gap", "troubleshooting", "policy", "rude",
                   "escalation", "cancellation_threat"):
            f[t] = True
    f["first_contact_resolution"] = f["resolved"] and f["repeat_count"] < 2 and f["transfers"] == 0
    f["cancelled"] = f["reason"] == "cancellation_request" and f["resolved"] and f["retained"] is False
    f["next_step"] = f["resolved"] or f["callback"] is not None or f["escalation"]
    return f


def _round(x: float) -> int:
    # Half away from zero, unlike round()'s banker's rounding, so the documented rule is plain.
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def _clamp(x, lo, hi):
    return max(lo, min(hi, x))


def customer_end_mood(events: list, rng: random.Random | None = None) -> int:
    """The customer's mood at the end of the call, -2 (angry) .. 2 (delighted).

    Rule: start from the mood the customer opened with, then
    +2 if the issue was resolved, -1 if not;
    +1 empathy and +0.5 apology (only when the customer started upset, mood < 0);
    +1 refund/credit offered; +0.5 callback promised on an unresolved call;
    -2 rude agent; -1 total hold >= 10 min; -1 per cold transfer, -0.5 per warm transfer;
    -0.5 interruption; -0.5 knowledge gap; -1 pushy upsell;
    round half away from zero, clamp to -2..2. Noise (rng given): 10% chance of +-1.

    >>> customer_end_mood([{"type": "problem", "reason": "billing_dispute", "mood": -1},
    ...                    {"type": "empathy"}, {"type": "resolution", "resolved": True}])
    2
    >>> customer_end_mood([{"type": "problem", "reason": "service_outage", "mood": -1},
    ...                    {"type": "rude"}, {"type": "resolution", "resolved": False}])
    -2
    """
    f = call_facts(events)
    m = float(f["start_mood"])
    m += 2 if f["resolved"] else -1
    if f["start_mood"] < 0:
        m += 1 if f["empathy"] else 0
        m += 0.5 if f["apology"] else 0
    m += 1 if f["refund"] else 0
    m += 0.5 if (f["callback"] is not None and not f["resolved"]) else 0
    m -= 2 if f["rude"] else 0
    m -= 1 if f["hold_minutes"] >= 10 else 0
    m -= f["cold_transfers"] + 0.5 * (f["transfers"] - f["cold_transfers"])
    m -= 0.5 if f["interruption"] else 0
    m -= 0.5 if f["knowledge_gap"] else 0
    m -= 1 if f["pushy_upsell"] else 0
    mood = _clamp(_round(m), -2, 2)
    if rng is not None and rng.random() < 0.10:
        mood = _clamp(mood + pick(rng, (-1, 1)), -2, 2)
    return mood


def end_mood(f: dict, events: list) -> int:
    """The mood stored in the closing event, else the exact rule (events from outside the generator)."""
    return f["end_mood"] if f["end_mood"] is not None else customer_end_mood(events)


def label_csat(events: list, rng: random.Random | None = None, facts: dict | None = None) -> int:
    """CSAT 1-5.

    Rule: score = 3, then
    +1 resolved / -1 unresolved; +1 more for first-contact resolution (resolved, not a repeat
    contact, no transfer); +0.5 empathy; +0.5 apology; +0.5 refund/credit offered;
    -0.5 per transfer and another -0.5 per cold transfer; total hold -1 if >= 10 min, -0.5 if 5-9;
    repeat contact -1 (second call) or -1.5 (third or later); -1.5 rude agent; -0.5 each for
    interruption, knowledge gap, pushy upsell and abrupt closing.
    CSAT = score rounded half away from zero, clamped to 1..5. Noise (rng given): 8% chance of +-1.

    >>> label_csat([{"type": "problem", "reason": "technical_issue", "mood": -1}, {"type": "empathy"},
    ...             {"type": "apology"}, {"type": "resolution", "resolved": True}])
    5
    >>> label_csat([{"type": "problem", "reason": "technical_issue", "mood": -2},
    ...             {"type": "repeat_contact", "count": 3}, {"type": "hold", "minutes": 12, "asked": False,
    ...             "thanked": False}, {"type": "resolution", "resolved": False}])
    1
    """
    f = facts or call_facts(events)
    s = 3.0
    s += 1 if f["resolved"] else -1
    s += 1 if f["first_contact_resolution"] else 0
    s += 0.5 * (f["empathy"] + f["apology"] + bool(f["refund"]))
    s -= 0.5 * f["transfers"] + 0.5 * f["cold_transfers"]
    s -= 1 if f["hold_minutes"] >= 10 else 0.5 if f["hold_minutes"] >= 5 else 0
    s -= 1.5 if f["repeat_count"] >= 3 else 1 if f["repeat_count"] == 2 else 0
    s -= 1.5 if f["rude"] else 0
    s -= 0.5 * (f["interruption"] + f["knowledge_gap"] + f["pushy_upsell"] + (not f["closing_proper"]))
    csat = _clamp(_round(s), 1, 5)
    if rng is not None and rng.random() < 0.08:
        csat = _clamp(csat + pick(rng, (-1, 1)), 1, 5)
    return csat


# The QA rubric: item -> points. Sums to 100.
QA_RUBRIC = {
    "greeting": 10,            # proper greeting with name and company
    "disclosure": 5,           # recording / compliance notice
    "verification": 10,        # identity verified when the call needed it
    "empathy": 15,             # empathy shown to an upset customer (free when not upset)
    "hold_etiquette": 10,      # asked permission and thanked for waiting on every hold
    "transfer_handling": 5,    # no cold transfers
    "ownership": 15,           # the customer leaves with a fix or a concrete next step
    "resolution": 20,          # resolved; half when unresolved but a callback/escalation is set
    "closing": 10,             # proper closing
}
QA_DEDUCTIONS = {"rude": 15, "interruption": 5, "knowledge_gap": 5, "pushy_upsell": 5}


def qa_breakdown(events: list, facts: dict | None = None) -> dict:
    """Points earned per QA rubric item (before deductions and noise).

    >>> b = qa_breakdown([{"type": "greeting", "proper": True, "disclosure": True},
    ...                   {"type": "problem", "reason": "billing_dispute", "mood": 0},
    ...                   {"type": "verification", "done": True}, {"type": "resolution", "resolved": True},
    ...                   {"type": "closing", "proper": True, "mood": 1}])
    >>> sum(b.values())
    100
    """
    f = facts or call_facts(events)
    hold = 10
    if f["holds"]:
        hold = 5 * f["hold_asked_all"] + 5 * f["hold_thanked_all"]
    return {
        "greeting": QA_RUBRIC["greeting"] if f["greeting_proper"] else 0,
        "disclosure": QA_RUBRIC["disclosure"] if f["disclosure"] else 0,
        "verification": 0 if f["verification_skipped"] else QA_RUBRIC["verification"],
        "empathy": QA_RUBRIC["empathy"] if (f["empathy"] or f["start_mood"] >= 0) else 0,
        "hold_etiquette": hold,
        "transfer_handling": 0 if f["cold_transfers"] else QA_RUBRIC["transfer_handling"],
        "ownership": QA_RUBRIC["ownership"] if f["next_step"] else 0,
        "resolution": 20 if f["resolved"] else 10 if f["next_step"] else 0,
        "closing": QA_RUBRIC["closing"] if f["closing_proper"] else 0,
    }


def label_quality(events: list, rng: random.Random | None = None, facts: dict | None = None) -> int:
    """QA score 0-100 from the rubric.

    Rule: sum of ``QA_RUBRIC`` points earned (greeting 10, recording disclosure 5, verification
    10, empathy 15 when the customer opened upset (free otherwise), hold etiquette 10 (5 asked
    permission + 5 thanked, on every hold; full when no hold), transfer handling 5 (no cold
    transfer), ownership 15 (resolved, callback or escalation), resolution 20 (10 when unresolved
    but a callback/escalation is set), closing 10), minus deductions: rude 15, interruption 5,
    knowledge gap 5, pushy upsell 5. Clamp 0..100. Noise (rng given): uniform -3..+3 points.

    >>> label_quality([{"type": "greeting", "proper": True, "disclosure": True},
    ...                {"type": "problem", "reason": "plan_change", "mood": 0},
    ...                {"type": "verification", "done": True}, {"type": "resolution", "resolved": True},
    ...                {"type": "closing", "proper": True, "mood": 1}])
    100
    """
    f = facts or call_facts(events)
    score = sum(qa_breakdown(events, f).values())
    score -= sum(points for key, points in QA_DEDUCTIONS.items() if f[key])
    if rng is not None:
        score += rng.randint(-3, 3)
    return _clamp(score, 0, 100)


def churn_score(events: list, facts: dict | None = None) -> int:
    """The churn points behind ``label_churn`` (see its docstring)."""
    f = facts or call_facts(events)
    end = end_mood(f, events)
    s = 0
    s += 3 if f["cancellation_threat"] else 0
    s += 1 if f["competitor"] else 0
    s += 2 if f["repeat_count"] >= 3 else 1 if f["repeat_count"] == 2 else 0
    s += 0 if f["resolved"] else 2
    s += 1 if f["rude"] else 0
    s += 1 if end <= -1 else 0
    if f["tenure_years"] is not None:
        s += 1 if f["tenure_years"] < 1 else -1 if f["tenure_years"] >= 5 else 0
    s -= 1 if (f["resolved"] and end >= 1) else 0
    s -= 1 if f["refund"] else 0
    s += 2 if f["reason"] == "cancellation_request" else 0
    return s


def label_churn(events: list, rng: random.Random | None = None, facts: dict | None = None) -> str:
    """Churn risk low/medium/high.

    Rule: a processed cancellation (contact reason cancellation_request, resolved, not retained)
    is ``high``. Otherwise points: +3 cancellation threat; +1 competitor mention; +1 second call /
    +2 third call or later; +2 unresolved; +1 rude agent; +1 customer ends negative (mood <= -1);
    tenure +1 if under a year, -1 if 5+ years; -1 resolved and customer ends pleased (mood >= 1);
    -1 refund/credit offered; +2 contact reason cancellation_request (retained or unresolved).
    Points <= 1 low, 2-3 medium, >= 4 high. Noise (rng given): 6% chance of moving one level.

    >>> label_churn([{"type": "problem", "reason": "billing_dispute", "mood": -2},
    ...              {"type": "repeat_contact", "count": 3}, {"type": "cancellation_threat"},
    ...              {"type": "resolution", "resolved": False}])
    'high'
    >>> label_churn([{"type": "problem", "reason": "product_inquiry", "mood": 0},
    ...              {"type": "tenure", "years": 8}, {"type": "resolution", "resolved": True}])
    'low'
    """
    f = facts or call_facts(events)
    if f["cancelled"]:
        level = 2
    else:
        s = churn_score(events, f)
        level = 0 if s <= 1 else 1 if s <= 3 else 2
    if rng is not None and rng.random() < 0.06:
        level = 1 if level != 1 else pick(rng, (0, 2))
    return ("low", "medium", "high")[level]


def label_sentiment(events: list, rng: random.Random | None = None, facts: dict | None = None) -> tuple[str, str]:
    """(overall sentiment, trajectory) from the customer's start and end moods.

    Rule: start = the problem event's mood, end = the closing event's mood (or
    ``customer_end_mood`` when there is no closing). Overall weighs the end double:
    x = (start + 2*end) / 3; x <= -0.5 negative, x >= 0.5 positive, else neutral.
    Trajectory: end - start >= 2 improving, <= -1 worsening, else stable.
    No extra noise here (the end mood already carries the generator's noise); ``rng`` is unused
    and accepted only so every rule has the same signature.

    >>> label_sentiment([{"type": "problem", "reason": "billing_dispute", "mood": -2},
    ...                  {"type": "closing", "proper": True, "mood": 1}])
    ('neutral', 'improving')
    >>> label_sentiment([{"type": "problem", "reason": "billing_dispute", "mood": 0},
    ...                  {"type": "closing", "proper": True, "mood": -2}])
    ('negative', 'worsening')
    """
    f = facts or call_facts(events)
    start, end = f["start_mood"], end_mood(f, events)
    x = (start + 2 * end) / 3
    overall = "negative" if x <= -0.5 else "positive" if x >= 0.5 else "neutral"
    delta = end - start
    trajectory = "improving" if delta >= 2 else "worsening" if delta <= -1 else "stable"
    return overall, trajectory


def label_root_cause(events: list, rng: random.Random | None = None, facts: dict | None = None) -> str:
    """Root cause = the contact reason of the problem event (no noise).

    A cancellation threat or complaint about holds during, say, a billing call does not change it.

    >>> label_root_cause([{"type": "problem", "reason": "fraud_concern", "mood": -1}])
    'fraud_concern'
    """
    return (facts or call_facts(events))["reason"]


def label_coaching(events: list, rng: random.Random | None = None, facts: dict | None = None) -> list[str]:
    """Behaviours the agent missed, in ``COACHING_BEHAVIOURS`` order (empty when none; no noise).

    Rule: empathy - customer opened upset (mood < 0) and no empathy statement;
    active_listening - the agent interrupted; identity_verification - verification skipped;
    hold_etiquette - a hold without asking permission or without thanking;
    ownership - unresolved with no callback and no escalation; product_knowledge - knowledge gap;
    de_escalation - rude agent, or the customer opened angry (-2) and still ended negative (<= -1);
    call_closing - abrupt closing; transfer_handling - a cold transfer;
    compliance - no recording disclosure, or a pushy upsell.

    >>> label_coaching([{"type": "greeting", "proper": True, "disclosure": True},
    ...                 {"type": "problem", "reason": "billing_dispute", "mood": -1},
    ...                 {"type": "hold", "minutes": 3, "asked": False, "thanked": True},
    ...                 {"type": "resolution", "resolved": True}, {"type": "closing", "proper": False, "mood": 1}])
    ['empathy', 'hold_etiquette', 'call_closing']
    """
    f = facts or call_facts(events)
    end = end_mood(f, events)
    missed = {
        "empathy": f["start_mood"] < 0 and not f["empathy"],
        "active_listening": f["interruption"],
        "identity_verification": f["verification_skipped"],
        "hold_etiquette": f["bad_holds"] > 0,
        "ownership": not f["next_step"],
        "product_knowledge": f["knowledge_gap"],
        "de_escalation": f["rude"] or (f["start_mood"] <= -2 and end <= -1),
        "call_closing": not f["closing_proper"],
        "transfer_handling": f["cold_transfers"] > 0,
        "compliance": (not f["disclosure"]) or f["pushy_upsell"],
    }
    return [b for b in COACHING_BEHAVIOURS if missed[b]]


def labels_for(events: list, rng: random.Random | None = None, facts: dict | None = None) -> dict:
    """All seven labels of a call (``rng`` adds the documented noise).

    >>> sorted(labels_for([{"type": "problem", "reason": "plan_change", "mood": 0},
    ...                    {"type": "resolution", "resolved": True}]))
    ['churn', 'coaching', 'csat', 'quality', 'root_cause', 'sentiment', 'sentiment_trajectory']
    """
    f = facts or call_facts(events)  # once: the rules all read the same summary
    sentiment, trajectory = label_sentiment(events, rng, f)
    return {
        "csat": label_csat(events, rng, f),
        "quality": label_quality(events, rng, f),
        "churn": label_churn(events, rng, f),
        "sentiment": sentiment,
        "sentiment_trajectory": trajectory,
        "root_cause": label_root_cause(events, rng, f),
        "coaching": label_coaching(events, rng, f),
    }

