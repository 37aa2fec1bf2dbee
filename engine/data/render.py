"""Rendering a sampled call as a transcript. Each event becomes one or more (speaker, text) lines;
consecutive lines of one speaker are joined, so the transcript always alternates Agent / Customer.
"""

from __future__ import annotations

import random

from engine.data.pick import pick
from engine.data.vocabulary import (
    ACK, APOLOGY, CALLBACK, CANCELLED, CLOSE_ABRUPT, CLOSE_ASK, CLOSE_PROPER, COMPETITOR,
    COMPETITOR_AGENT, DISCLOSURE, EMPATHY, ESCALATE_AGENT, ESCALATE_CUST, ESCALATE_SUP, GAP_AGENT,
    GAP_CUST, GREET_POOR, GREET_PROPER, HOLD_ASK, HOLD_ASK_REPLY, HOLD_BACK, HOLD_COMPLAIN, HOLD_NOASK,
    HOLD_THANK, INTERRUPT_AGENT, INTERRUPT_BACK, INTERRUPT_CUST, MONTHS, MOOD_END, MOOD_OPEN,
    NAME_INTRO, ORDINALS, POLICY_CUST, POLICY_LINES, REFUND, REFUND_CUST, REPEAT, RESOLVED, RETAINED,
    RETAINED_CUST, RUDE, RUDE_CUST, SMALL_TALK, TENURE_LONG, TENURE_MID, TENURE_NEW, THREAT,
    TRANSFER_COLD, TRANSFER_COLD_CUST, TRANSFER_COLD_NEW, TRANSFER_WARM, TRANSFER_WARM_NEW, TROUBLE,
    TROUBLE_CUST, UNRESOLVED, UNRESOLVED_BY_REASON, UNRESOLVED_CUST, UPSELL, UPSELL_OK, UPSELL_PUSH,
    UPSELL_PUSH_CUST, VERIFY_ASK, VERIFY_GIVE, VERIFY_OK, VERIFY_SKIP,
)


def minutes_text(minutes: int) -> str:
    """How a hold length is said in the transcript.

    >>> minutes_text(1), minutes_text(6)
    ('1 minute', '6 minutes')
    """
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def fmt_money(amount: float) -> str:
    return f"${amount:,.2f}" if amount != int(amount) else f"${int(amount)}"


def _ref_value(rng: random.Random, ref: str) -> str:
    if "email" in ref:
        return "it's the one ending in @mailbox.com"
    if "date of birth" in ref:
        born = f"{rng.randint(1, 28)} {pick(rng, MONTHS)} {rng.randint(1950, 2002)}"
        return f"{born}, postcode {pick(rng, 'ABCDEGHK')}{rng.randint(1, 20)}"
    if "address" in ref:
        street = pick(rng, ("Elm", "Station", "Mill", "Park", "Church"))
        return f"{rng.randint(2, 120)} {street} {pick(rng, ('Road', 'Street', 'Lane'))}"
    if "booking" in ref:
        return "".join(pick(rng, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))
    return " ".join(str(rng.randint(100, 999)) for _ in range(3))


class _Script:
    """The lines said so far in one transcript, and what the next lines depend on: the agent now on
    the line (a transfer hands over) and the contact reason (said once, read by later events)."""

    def __init__(self, call: dict, rng: random.Random):
        self.call, self.rng, self.slots = call, rng, call["slots"]
        self.lines: list[tuple[str, str]] = []
        self.agent_now = call["agent"]
        self.reason = None

    def line(self, who: str, text: str) -> None:
        self.lines.append((who, text))

    def say(self, who: str, options, **extra) -> None:
        """One of ``options``, its slots filled from the call and ``extra``."""
        text = pick(self.rng, options)
        self.lines.append((who, text.format(**{**self.slots, **extra}) if "{" in text else text))


def render_transcript(call: dict, rng: random.Random) -> str:
    """Render a call's events as ``Agent: ...`` / ``Customer: ...`` lines, alternating speakers."""
    s = _Script(call, rng)
    events = call["events"]
    n = len(events)
    small_talk_at = rng.randint(2, max(2, n - 2)) if rng.random() < 0.35 else -1
    for idx, e in enumerate(events):
        if idx == small_talk_at:
            a, b, c, d = pick(rng, SMALL_TALK)
            s.line(a, b)
            s.line(c, d)
        if e["type"] in _OPENING_EVENTS:
            _say_opening(s, e)
        elif e["type"] in _HANDLING_EVENTS:
            _say_handling(s, e)
        else:
            _say_outcome(s, e)
    return _alternate(s.lines)


_OPENING_EVENTS = ("greeting", "problem", "repeat_contact", "tenure", "verification", "interruption", "empathy",
                   "apology")
_HANDLING_EVENTS = ("troubleshooting", "policy", "knowledge_gap", "hold", "transfer", "rude",
                    "cancellation_threat", "competitor_mention", "escalation")


def _say_opening(s: _Script, e: dict) -> None:
    """Greeting, the problem, who the customer is, and the agent's first response."""
    t, say, rng, slots = e["type"], s.say, s.rng, s.slots
    if t == "greeting":
        say("Agent", GREET_PROPER if e["proper"] else GREET_POOR)
        if e.get("disclosure"):
            say("Agent", DISCLOSURE)
    elif t == "problem":
        s.reason = e["reason"]
        say("Customer", MOOD_OPEN[e["mood"]])
        if rng.random() < 0.6:
            say("Customer", NAME_INTRO)
        s.line("Customer", s.call["problem_text"])
    elif t == "repeat_contact":
        c = e["count"]
        say("Customer", REPEAT, ordinal=ORDINALS.get(c, f"{c}th"), count=c,
            times="twice" if c == 2 else f"{c - 1} times")
    elif t == "tenure":
        y = e["years"]
        say("Customer", TENURE_NEW if y < 1 else TENURE_MID if y < 5 else TENURE_LONG, years=y)
    elif t == "verification":
        if e["done"]:
            say("Agent", VERIFY_ASK)
            say("Customer", VERIFY_GIVE, refval=_ref_value(rng, slots["ref"]))
            say("Agent", VERIFY_OK)
        else:
            say("Agent", VERIFY_SKIP)
            say("Customer", ACK)
    elif t == "interruption":
        say("Customer", INTERRUPT_CUST)
        say("Agent", INTERRUPT_AGENT)
        say("Customer", INTERRUPT_BACK)
    elif t == "empathy":
        say("Agent", EMPATHY)
    elif t == "apology":
        say("Agent", APOLOGY)
        say("Customer", ACK)


def _say_handling(s: _Script, e: dict) -> None:
    """The middle of the call: diagnosis, holds, transfers, friction and escalation."""
    t, say, reason = e["type"], s.say, s.reason
    if t == "troubleshooting":
        key = reason if reason in TROUBLE else "other"
        pool = TROUBLE[key]
        for step in s.rng.sample(pool, min(e["steps"], len(pool))):
            s.line("Agent", step.format(**s.slots))
            say("Customer", TROUBLE_CUST[key])
    elif t == "policy":
        say("Agent", POLICY_LINES.get(reason, POLICY_LINES["plan_change"]))
        say("Customer", POLICY_CUST)
    elif t == "knowledge_gap":
        say("Agent", GAP_AGENT)
        say("Customer", GAP_CUST)
    elif t == "hold":
        _say_hold(s, e)
    elif t == "transfer":
        _say_transfer(s, e)
    elif t == "rude":
        say("Agent", RUDE)
        say("Customer", RUDE_CUST)
    elif t == "cancellation_threat":
        say("Customer", THREAT)
    elif t == "competitor_mention":
        say("Customer", COMPETITOR, name=e["name"])
        say("Agent", COMPETITOR_AGENT)
    elif t == "escalation":
        say("Customer", ESCALATE_CUST)
        say("Agent", ESCALATE_AGENT)
        sup = s.call["agents"][3]
        say("Agent", ESCALATE_SUP, sup=sup)
        say("Customer", ["Thank you. Finally.", "Okay.", "About time."])


def _say_hold(s: _Script, e: dict) -> None:
    say = s.say
    m = minutes_text(e["minutes"])
    if e["asked"]:
        say("Agent", HOLD_ASK)
        say("Customer", HOLD_ASK_REPLY)
    else:
        say("Agent", HOLD_NOASK)
        say("Customer", ["Oh. Okay.", "Wait, what—", "...fine."])
    if e["thanked"]:
        say("Agent", HOLD_THANK, minutes=m)
    else:
        say("Agent", HOLD_BACK)
        if e["minutes"] >= 5:
            say("Customer", HOLD_COMPLAIN, minutes=m)


def _say_transfer(s: _Script, e: dict) -> None:
    say, to, agent_now = s.say, e["to"], s.agent_now
    new_agent = next(a for a in s.call["agents"][1:] if a != agent_now)
    if e["warm"]:
        say("Agent", TRANSFER_WARM, to=to)
        say("Customer", ["Okay, thank you.", "Thanks.", "Alright."])
        say("Agent", TRANSFER_WARM_NEW, to=to, agent2=new_agent, agent=agent_now)
    else:
        say("Agent", TRANSFER_COLD, to=to)
        say("Customer", ["Wait—", "Okay...", "Again?"])
        say("Agent", TRANSFER_COLD_NEW, to=to[0].upper() + to[1:], agent2=new_agent)
        say("Customer", TRANSFER_COLD_CUST)
    s.agent_now = new_agent


def _say_outcome(s: _Script, e: dict) -> None:
    """Refund, resolution (or not), callback, upsell and the close."""
    t, say = e["type"], s.say
    if t == "refund":
        say("Agent", REFUND, amount=fmt_money(e["amount"]), kind=e["kind"])
        say("Customer", REFUND_CUST)
    elif t == "resolution":
        _say_resolution(s, e)
    elif t == "callback":
        say("Agent", CALLBACK, when=e["when"])
        say("Customer", ["Okay.", "I'll hold you to that.", "Please do."])
    elif t == "upsell":
        say("Agent", UPSELL)
        if e["pushy"]:
            say("Customer", ["No thanks.", "Not right now."])
            say("Agent", UPSELL_PUSH)
            say("Customer", UPSELL_PUSH_CUST)
        else:
            say("Customer", UPSELL_OK)
            say("Agent", ["No problem.", "Of course.", "Sure thing."])
    elif t == "closing":
        if e["proper"]:
            say("Agent", CLOSE_ASK)
            say("Customer", MOOD_END[e["mood"]])
            say("Agent", CLOSE_PROPER)
        else:
            say("Customer", MOOD_END[e["mood"]])
            say("Agent", CLOSE_ABRUPT)


def _say_resolution(s: _Script, e: dict) -> None:
    say, reason = s.say, s.reason
    if reason == "cancellation_request":
        if e["resolved"] and e.get("retained"):
            say("Agent", RETAINED)
            say("Customer", RETAINED_CUST)
        elif e["resolved"]:
            say("Agent", CANCELLED)
            say("Customer", ["Thank you.", "Good.", "Finally."])
        else:
            say("Agent", ["I can't cancel it from here, you'll need to put it in writing.",
                          "The system won't let me cancel it today, I'm sorry."])
            say("Customer", UNRESOLVED_CUST)
    elif e["resolved"]:
        say("Agent", RESOLVED[reason])
        say("Customer", ["Yes, that's it.", "Oh good, thank you.", "Great.", "Okay, that looks right."])
    else:
        say("Agent", UNRESOLVED_BY_REASON[reason] + UNRESOLVED if reason in UNRESOLVED_BY_REASON
            else UNRESOLVED)
        say("Customer", UNRESOLVED_CUST)


def _alternate(lines: list[tuple[str, str]]) -> str:
    """Join runs of one speaker into a single turn so speakers strictly alternate."""
    turns: list[list] = []
    for who, text in lines:
        if turns and turns[-1][0] == who:
            turns[-1][1] += " " + text
        else:
            turns.append([who, text])
    return "\n".join(f"{who}: {text}" for who, text in turns)
