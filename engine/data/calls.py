"""Sampling the events of one synthetic call from a few latent traits (industry, contact reason,
agent skill, customer mood). The event records are listed in ``engine.data.synth``.
"""

from __future__ import annotations

import random

from engine.data.labels import customer_end_mood
from engine.data.pick import pick, pick_weighted
from engine.data.render import fmt_money
from engine.data.vocabulary import AGENT_NAMES, CUSTOMER_FIRST, CUSTOMER_LAST, INDUSTRIES, MONTHS, WEEKDAYS


# Per agent skill: probabilities of doing things right (or of lapses, named *_p).
SKILL = {
    "good":    {"greet": .97, "disclose": .96, "verify": .97, "empathy": .92, "apology": .75, "interrupt": .03,
                "gap": .03, "ask_hold": .95, "thank_hold": .95, "warm": .9, "rude": .0, "resolve": .85,
                "callback": .8, "close": .96, "pushy": .1},
    "average": {"greet": .88, "disclose": .88, "verify": .9, "empathy": .65, "apology": .5, "interrupt": .15,
                "gap": .15, "ask_hold": .75, "thank_hold": .75, "warm": .6, "rude": .05, "resolve": .65,
                "callback": .55, "close": .82, "pushy": .35},
    "poor":    {"greet": .6, "disclose": .7, "verify": .72, "empathy": .25, "apology": .2, "interrupt": .4,
                "gap": .35, "ask_hold": .4, "thank_hold": .45, "warm": .3, "rude": .35, "resolve": .4,
                "callback": .3, "close": .5, "pushy": .7},
}
SKILL_WEIGHTS = (("good", 0.42), ("average", 0.36), ("poor", 0.22))

# How the customer tends to feel when calling about each reason (weights for moods -2, -1, 0, 1).
REASON_MOOD = {
    "billing_dispute": (0.3, 0.45, 0.25, 0.0),
    "technical_issue": (0.2, 0.45, 0.3, 0.05),
    "account_access": (0.15, 0.45, 0.35, 0.05),
    "service_outage": (0.35, 0.45, 0.2, 0.0),
    "cancellation_request": (0.15, 0.3, 0.5, 0.05),
    "delivery_problem": (0.25, 0.45, 0.3, 0.0),
    "refund_request": (0.25, 0.45, 0.3, 0.0),
    "plan_change": (0.0, 0.1, 0.6, 0.3),
    "product_inquiry": (0.0, 0.05, 0.55, 0.4),
    "fraud_concern": (0.3, 0.5, 0.2, 0.0),
}
# Reasons where a fix is harder on one call (outages are rarely fixed by the agent).
RESOLVE_FACTOR = {"service_outage": 0.55, "fraud_concern": 0.85, "technical_issue": 0.85, "refund_request": 0.9}
# Reasons where a refund/credit naturally comes up.
REFUNDY = {"billing_dispute", "refund_request", "service_outage", "delivery_problem"}
TROUBLESHOOT = {"technical_issue", "service_outage", "account_access"}
POLICY = {"billing_dispute", "refund_request", "cancellation_request", "plan_change", "fraud_concern",
          "delivery_problem"}


def _date(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return pick(rng, WEEKDAYS)
    day = rng.randint(1, 28)
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{pick(rng, MONTHS)} {day}{suffix}"


def sample_call(rng: random.Random) -> dict:
    """Sample one call: industry, people, products and the ordered event list.

    Returns ``{"industry", "company", "customer", "agent", "agents", "product", "other_product",
    "skill", "slots", "problem_text", "events"}``: ``slots`` are the names and values the
    transcript and rationale share, ``problem_text`` the customer's problem statement. The closing
    event's mood comes from ``customer_end_mood`` (with its noise).
    """
    # The steps draw from rng in this fixed order; reordering them changes every example.
    industry = pick(rng, list(INDUSTRIES))
    ind = INDUSTRIES[industry]
    reason = pick_weighted(rng, [(r, w) for r, (w, _) in ind["reasons"].items()])
    skill = pick_weighted(rng, SKILL_WEIGHTS)
    p = SKILL[skill]
    call = _cast(rng, industry, skill)
    ev, mood, repeat = _opening_events(rng, call, reason, p)
    ev.extend(_handling_events(rng, ind, reason, p, mood, repeat))
    ev.extend(_outcome_events(rng, ev, reason, p, mood, repeat))
    call["events"] = ev
    return call


def _cast(rng: random.Random, industry: str, skill: str) -> dict:
    """The people, products and slot values of a call (everything but its events)."""
    ind = INDUSTRIES[industry]
    product, other_product = rng.sample(ind["products"], 2)
    agents = rng.sample(AGENT_NAMES, 4)
    call = {
        "industry": industry,
        "company": pick(rng, ind["companies"]),
        "customer": f"{pick(rng, CUSTOMER_FIRST)} {pick(rng, CUSTOMER_LAST)}",
        "agent": agents[0],
        "agents": agents,
        "product": product,
        "other_product": other_product,
        "skill": skill,
    }
    # Slot values are fixed per call so the transcript and the rationale name the same things.
    slots = {
        "company": call["company"], "agent": call["agent"], "customer": call["customer"],
        "first": call["customer"].split()[0], "product": product, "other_product": other_product,
        "ref": pick(rng, ind["ref"]), "device": pick(rng, ind["device"]), "item": pick(rng, ind["item"]),
        "service": pick(rng, ind["service"]), "daypart": pick(rng, ("morning", "afternoon", "evening")),
        "date": _date(rng), "amount": fmt_money(pick(rng, (12.5, 19.99, 24, 35, 48.75, 60, 89.99, 120, 149, 210))),
        "small_amount": fmt_money(pick(rng, (3, 5, 7.5, 8, 10, 12, 15))),
    }
    call["slots"] = slots
    return call


def _opening_events(rng: random.Random, call: dict, reason: str, p: dict) -> tuple[list, int, int]:
    """Greeting, problem, repeat contact, tenure, verification and the agent's first response.

    Sets ``call["problem_text"]``; returns ``(events, opening mood, repeat count or 0)``.
    """
    ind = INDUSTRIES[call["industry"]]
    ev = []
    ev.append({"type": "greeting", "proper": rng.random() < p["greet"], "disclosure": rng.random() < p["disclose"]})

    repeat = 0
    if reason != "product_inquiry" and rng.random() < 0.28:
        repeat = pick_weighted(rng, ((2, 0.55), (3, 0.32), (4, 0.13)))
    mood = pick_weighted(rng, list(zip((-2, -1, 0, 1), REASON_MOOD[reason])))
    if repeat:
        mood = max(-2, mood - 1)  # a repeat caller opens angrier
    ev.append({"type": "problem", "reason": reason, "mood": mood, "product": call["product"]})
    call["problem_text"] = pick(rng, ind["reasons"][reason][1]).format(**call["slots"])
    if repeat:
        ev.append({"type": "repeat_contact", "count": repeat})
    if rng.random() < 0.45:
        years = pick_weighted(rng, ((0, 0.3), (rng.randint(1, 4), 0.35), (rng.randint(5, 15), 0.35)))
        ev.append({"type": "tenure", "years": years})
    if reason != "product_inquiry":
        ev.append({"type": "verification", "done": rng.random() < p["verify"]})
    elif rng.random() < 0.3:
        ev.append({"type": "verification", "done": True})  # a general question needs no verification
    if rng.random() < p["interrupt"]:
        ev.append({"type": "interruption"})
    upset = mood < 0
    if rng.random() < (p["empathy"] if upset else p["empathy"] * 0.3):
        ev.append({"type": "empathy"})
    if rng.random() < (p["apology"] if upset else p["apology"] * 0.2):
        ev.append({"type": "apology"})
    return ev, mood, repeat


def _handling_events(rng: random.Random, ind: dict, reason: str, p: dict, mood: int, repeat: int) -> list:
    """The middle of the call: diagnosis, holds, transfers (order varies a little), then friction."""
    ev, middle = [], []
    if reason in TROUBLESHOOT or rng.random() < 0.1:
        middle.append({"type": "troubleshooting", "steps": rng.randint(1, 3)})
    if reason in POLICY and rng.random() < 0.55:
        middle.append({"type": "policy"})
    if rng.random() < p["gap"]:
        middle.append({"type": "knowledge_gap"})
    if rng.random() < 0.45:
        minutes = rng.randint(1, 6) if rng.random() < 0.6 else rng.randint(7, 18)
        middle.append({"type": "hold", "minutes": minutes, "asked": rng.random() < p["ask_hold"],
                       "thanked": rng.random() < p["thank_hold"]})
    rng.shuffle(middle)
    ev.extend(middle)
    n_transfers = 0
    if rng.random() < 0.22:
        n_transfers = 2 if rng.random() < 0.2 else 1
    for _ in range(n_transfers):
        ev.append({"type": "transfer", "warm": rng.random() < p["warm"], "to": pick(rng, ind["teams"])})
        if rng.random() < 0.3:
            ev.append({"type": "hold", "minutes": rng.randint(2, 12), "asked": rng.random() < p["ask_hold"],
                       "thanked": rng.random() < p["thank_hold"]})
    if rng.random() < p["rude"] * (1.5 if mood < 0 else 1.0):
        ev.append({"type": "rude"})

    threat_p = 0.0 if reason == "cancellation_request" else (0.3 if mood <= -2 else 0.15 if mood == -1 else 0.03)
    threat_p += 0.2 if repeat else 0
    if rng.random() < threat_p:
        ev.append({"type": "cancellation_threat"})
        if rng.random() < 0.6:
            ev.append({"type": "competitor_mention", "name": pick(rng, ind["competitors"])})
    elif reason == "cancellation_request" and rng.random() < 0.4:
        ev.append({"type": "competitor_mention", "name": pick(rng, ind["competitors"])})
    elif rng.random() < 0.03:
        ev.append({"type": "competitor_mention", "name": pick(rng, ind["competitors"])})
    return ev


def _outcome_events(rng: random.Random, so_far: list, reason: str, p: dict, mood: int, repeat: int) -> list:
    """Escalation, refund, resolution, callback, upsell and the closing (whose mood reads the whole call)."""
    ev = []
    resolve_p = p["resolve"] * RESOLVE_FACTOR.get(reason, 1.0) * (0.8 if repeat >= 3 else 1.0)
    resolved = rng.random() < resolve_p
    if not resolved and (mood <= -2 or any(e["type"] == "rude" for e in so_far)) and rng.random() < 0.45:
        ev.append({"type": "escalation"})
    if (reason in REFUNDY and rng.random() < 0.45) or rng.random() < 0.06:
        # On a refund call the refund itself is the resolution; the extra gesture is a credit.
        kind = "credit" if reason == "refund_request" else pick(rng, ("credit", "credit", "refund"))
        amount = round(pick(rng, (5, 10, 15, 20, 25, 30, 40, 50, 75)) + pick(rng, (0, 0, 0.5, 0.99)), 2)
        ev.append({"type": "refund", "kind": kind, "amount": amount})
    resolution = {"type": "resolution", "resolved": resolved}
    if reason == "cancellation_request":
        resolution["retained"] = resolved and rng.random() < 0.4
    ev.append(resolution)
    if not resolved and rng.random() < p["callback"]:
        ev.append({"type": "callback", "when": pick(rng, ("tomorrow morning", "within 24 hours", "by Friday",
                                                          "later today", "within 48 hours", "on Monday"))})
    if rng.random() < (0.3 if resolved else 0.1):
        ev.append({"type": "upsell", "pushy": rng.random() < p["pushy"] * (1.5 if mood < 0 else 1.0)})
    closing = {"type": "closing", "proper": rng.random() < p["close"]}
    closing["mood"] = customer_end_mood(so_far + ev + [closing], rng)
    ev.append(closing)
    return ev
