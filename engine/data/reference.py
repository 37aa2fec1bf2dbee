"""Reference answers of the synthetic examples: 1-3 sentences of rationale from the events, then
the canonical answer line.
"""

from __future__ import annotations

import random

from engine.data.labels import QA_DEDUCTIONS, QA_RUBRIC, call_facts, end_mood, qa_breakdown
from engine.data.pick import pick
from engine.data.render import fmt_money
from engine.data.tasks import answer_line, humanize
from engine.data.vocabulary import DEDUCTION_WORDS, MOOD_WORDS, ORDINALS, REASON_GLOSS



def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _good_bad(f: dict, end: int) -> tuple[list[str], list[str]]:
    """Customer-experience drivers in plain words, for the CSAT and churn rationales."""
    good, bad = [], []
    if f["first_contact_resolution"]:
        good.append("the issue was resolved on the first contact")
    elif f["resolved"]:
        good.append("the issue was eventually resolved")
    else:
        bad.append("the issue was left unresolved")
    if f["empathy"]:
        good.append("the agent showed empathy")
    if f["apology"]:
        good.append("the agent apologised")
    if f["refund"]:
        good.append(f"a {f['refund']['kind']} of {fmt_money(f['refund']['amount'])} was offered")
    if f["hold_minutes"] >= 5:
        bad.append(f"the customer spent {f['hold_minutes']} minutes on hold")
    if f["transfers"]:
        bad.append("the call was transferred " + ("twice" if f["transfers"] == 2 else "once")
                   + (" without a handover" if f["cold_transfers"] else ""))
    if f["repeat_count"] >= 2:
        bad.append(f"this was the customer's {ORDINALS.get(f['repeat_count'], 'latest')} call about it")
    if f["rude"]:
        bad.append("the agent was dismissive")
    if f["interruption"]:
        bad.append("the agent interrupted the customer")
    if f["pushy_upsell"]:
        bad.append("the agent pushed an upsell")
    if not f["closing_proper"]:
        bad.append("the call ended abruptly")
    return good, bad


def reference_answer(task: str, call: dict, labels: dict, rng: random.Random, facts: dict | None = None) -> str:
    """1-3 sentences of rationale grounded in the events, then ``answer_line(task, labels)``."""
    events = call["events"]
    f = facts or call_facts(events)
    end = end_mood(f, events)
    start = f["start_mood"]
    if task == "csat":
        sentences = _csat_sentences(f, end, rng)
    elif task == "quality":
        sentences = _quality_sentences(events, f, rng)
    elif task == "churn":
        sentences = _churn_sentences(f, end, rng)
    elif task == "sentiment":
        sentences = _sentiment_sentences(f, start, end, rng)
    elif task == "root_cause":
        sentences = _root_cause_sentences(call, f, rng)
    elif task == "coaching":
        sentences = _coaching_sentences(f, labels, rng)
    else:
        sentences = []
    return " ".join(sentences) + "\n" + answer_line(task, labels)


def _csat_sentences(f: dict, end: int, rng: random.Random) -> list[str]:
    """Why the customer would rate the call so: what went well and badly, and how they end."""
    sentences: list[str] = []
    good, bad = _good_bad(f, end)
    if good and bad:
        sentences.append(pick(rng, [
            f"{_cap(_join(good))}, but {_join(bad)}.",
            f"On the plus side {_join(good)}; on the other hand {_join(bad)}.",
            f"Although {_join(good)}, {_join(bad)}.",
        ]))
    elif good:
        sentences.append(pick(rng, [f"{_cap(_join(good))}, with no major friction.",
                                     f"The call went smoothly: {_join(good)}."]))
    else:
        sentences.append(pick(rng, [f"{_cap(_join(bad))}.", f"Little went right: {_join(bad)}."]))
    sentences.append(pick(rng, [
        f"The customer ends the call {MOOD_WORDS[end]}.",
        f"By the end the customer sounds {MOOD_WORDS[end]}.",
    ]))
    return sentences


def _quality_sentences(events: list, f: dict, rng: random.Random) -> list[str]:
    """Which QA rubric items were met or missed, and the deductions."""
    sentences: list[str] = []
    b = qa_breakdown(events, f)
    met = [k for k, v in b.items() if v == QA_RUBRIC[k]]
    missed = [k for k, v in b.items() if v < QA_RUBRIC[k]]
    deductions = [DEDUCTION_WORDS[k] for k in QA_DEDUCTIONS if f[k]]
    if missed:
        sentences.append(pick(rng, [
            f"The agent met the rubric on {_join([humanize(k) for k in met]) or 'nothing'} but lost points on "
            f"{_join([humanize(k) for k in missed])}.",
            f"Rubric gaps: {_join([humanize(k) for k in missed])}; the rest ({_join([humanize(k) for k in met])}) "
            f"was handled well." if met else f"Rubric gaps: {_join([humanize(k) for k in missed])}.",
        ]))
    else:
        sentences.append(pick(rng, [
            "The agent hit every rubric item: greeting, disclosure, verification, empathy, hold and transfer "
            "etiquette, ownership, resolution and closing.",
            "Every QA rubric item was covered, from the greeting through to a proper close.",
        ]))
    if deductions:
        sentences.append(pick(rng, (f"Points are deducted for {_join(deductions)}.",
                                     f"Further deductions apply for {_join(deductions)}.")))
    return sentences


def _churn_sentences(f: dict, end: int, rng: random.Random) -> list[str]:
    """What raises the risk of the customer leaving, and what protects against it."""
    sentences: list[str] = []
    drivers, protect = [], []
    if f["cancelled"]:
        drivers.append("the cancellation was processed on this call")
    elif f["reason"] == "cancellation_request":
        drivers.append("the customer called to cancel" + (" and was only retained with an offer"
                                                           if f["retained"] else ""))
    if f["cancellation_threat"]:
        drivers.append("the customer threatened to cancel")
    if f["competitor"]:
        drivers.append(f"they mentioned {f['competitor']}")
    if f["repeat_count"] >= 2:
        drivers.append(f"this is their {ORDINALS.get(f['repeat_count'], 'latest')} contact")
    if not f["resolved"] and f["reason"] != "cancellation_request":
        drivers.append("the problem is still open")
    if f["rude"]:
        drivers.append("the agent was rude")
    if f["tenure_years"] is not None and f["tenure_years"] < 1:
        drivers.append("they are a new customer")
    if f["tenure_years"] is not None and f["tenure_years"] >= 5:
        protect.append(f"a {f['tenure_years']}-year relationship")
    if f["resolved"] and end >= 1 and not f["cancelled"]:
        protect.append("a resolution that left them satisfied")
    if f["refund"]:
        protect.append(f"the {f['refund']['kind']} offered")
    if drivers:
        sentences.append(pick(rng, [f"Risk factors: {_join(drivers)}.",
                                     f"{_cap(_join(drivers))}, which raises the risk."]))
    else:
        sentences.append(pick(rng, ["There is no sign the customer is thinking of leaving.",
                                     "Nothing in the call points to the customer leaving."]))
    if protect:
        sentences.append(pick(rng, [f"Working in the other direction: {_join(protect)}.",
                                     f"This is softened by {_join(protect)}."]))
    sentences.append(f"The customer ends {MOOD_WORDS[end]}.")
    return sentences


def _sentiment_sentences(f: dict, start: int, end: int, rng: random.Random) -> list[str]:
    """How the customer's mood moves from the start of the call to the end, and why."""
    sentences: list[str] = []
    sentences.append(pick(rng, [
        f"The customer opens the call {MOOD_WORDS[start]} and ends it {MOOD_WORDS[end]}.",
        f"At the start the customer is {MOOD_WORDS[start]}; by the close they are {MOOD_WORDS[end]}.",
    ]))
    _, bad = _good_bad(f, end)
    if end > start and f["resolved"]:
        sentences.append("The resolution lifts their mood.")
    elif end < start and bad:
        sentences.append(f"Their mood drops because {bad[0]}.")
    elif end == start:
        sentences.append("Their tone stays much the same throughout.")
    return sentences


def _root_cause_sentences(call: dict, f: dict, rng: random.Random) -> list[str]:
    """The contact reason in plain words, quoting the customer's problem statement."""
    sentences: list[str] = []
    gloss = pick(rng, REASON_GLOSS[f["reason"]]).format(thing=f["product"] or "service")
    said = call["problem_text"]
    sentences.append(pick(rng, [
        f'The customer {gloss}: "{said}"',
        f'This {call["industry"]} customer {gloss}, saying "{said}"',
        f'"{said}" The customer {gloss}.',
    ]))
    if f["cancellation_threat"] and f["reason"] != "cancellation_request":
        sentences.append("The cancellation threat is a consequence of the problem, not the reason for the call.")
    elif f["repeat_count"] >= 2:
        sentences.append("It is a repeat contact, but the underlying reason is unchanged.")
    return sentences


def _coaching_sentences(f: dict, labels: dict, rng: random.Random) -> list[str]:
    """Why each missed behaviour needs coaching (or that none does)."""
    sentences: list[str] = []
    why = {
        "empathy": "no empathy was shown to an upset customer",
        "active_listening": "the agent interrupted the customer",
        "identity_verification": "identity was not verified",
        "hold_etiquette": "a hold was not handled properly (permission or thanks missing)",
        "ownership": "the customer was left without a fix or a next step",
        "product_knowledge": "the agent gave incorrect information",
        "de_escalation": "the agent " + ("was rude" if f["rude"] else "did not calm an angry customer"),
        "call_closing": "the call ended abruptly",
        "transfer_handling": "a transfer was done cold, without a handover",
        "compliance": "the agent " + _join(([] if f["disclosure"] else ["skipped the recording disclosure"])
                                          + (["pushed an upsell"] if f["pushy_upsell"] else [])),
    }
    items = labels["coaching"]
    if items:
        reasons = [why[b] for b in items]
        what = "this" if len(reasons) == 1 else "these points"
        sentences.append(pick(rng, [f"Coach on {what} because {_join(reasons[:4])}.",
                                     f"{_cap(_join(reasons[:4]))}."]))
        if len(reasons) > 4:
            sentences.append(f"Also, {_join(reasons[4:])}.")
    else:
        sentences.append(pick(rng, ["The agent followed every expected behaviour on this call.",
                                     "No behaviour needs coaching on this call; it was handled by the book."]))
    return sentences
