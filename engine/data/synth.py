"""Deterministic synthetic contact-center transcripts with ground-truth labels for the six tasks.

No public data ships with the product, so this module invents calls. Each call is first a list of
*events* (greeting, verification, problem, hold, transfer, apology, ... closing), sampled from a
few latent traits (industry, contact reason, agent skill, customer mood). The labels are a
documented, pure function of those events plus a little seeded noise (``label_csat`` and friends),
and the transcript is rendered from the same events with varied wording, so a model can learn the
labels from the text and an evaluator can re-check them from ``meta.events``.

Every example gets its own ``random.Random`` seeded from the string ``"{seed}:{split}:{i}"``
(string seeds go through SHA-512, not ``hash()``, so PYTHONHASHSEED does not matter): output is
identical for the same seed, independent of iteration order, and different for another seed.

Event records (``meta.events``) are small dicts with a ``type`` key, in call order:

    {"type": "greeting", "proper": bool, "disclosure": bool}   # disclosure = recording notice
    {"type": "problem", "reason": <ROOT_CAUSES item>, "mood": -2..1, "product": str}
    {"type": "repeat_contact", "count": int >= 2}              # "this is my third call"
    {"type": "tenure", "years": int >= 0}                      # 0 = customer for under a year
    {"type": "verification", "done": bool}                     # done=False: skipped though required
    {"type": "interruption"}                                   # agent cut the customer off
    {"type": "empathy"} / {"type": "apology"}
    {"type": "troubleshooting", "steps": int}
    {"type": "policy"}                                         # agent explained a policy
    {"type": "knowledge_gap"}                                  # agent gave wrong info, corrected it
    {"type": "hold", "minutes": int, "asked": bool, "thanked": bool}
    {"type": "transfer", "warm": bool, "to": str}
    {"type": "rude"}                                           # rude / dismissive agent moment
    {"type": "cancellation_threat"}
    {"type": "competitor_mention", "name": str}
    {"type": "escalation"}                                     # supervisor joined the call
    {"type": "refund", "kind": "refund"|"credit", "amount": float}
    {"type": "resolution", "resolved": bool}                   # + "retained": bool for cancellation_request
    {"type": "callback", "when": str}
    {"type": "upsell", "pushy": bool}
    {"type": "closing", "proper": bool, "mood": -2..2}         # mood = customer's mood at the end

Moods are integers: -2 angry, -1 annoyed, 0 neutral, 1 pleased, 2 delighted.
The label rules are written out in each ``label_*`` docstring and in docs/data.md.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path

from engine.core.fileio import atomic_write
from engine.data.tasks import (
    COACHING_BEHAVIOURS,
    SYSTEM_PROMPT,
    TASKS,
    answer_line,
    humanize,
    user_content,
)

PRESETS = {
    "demo": {"train": 300, "validation": 60, "test": 60},
    "plan": {"train": 25790, "validation": 3223, "test": 3225},
}
SPLITS = ("train", "validation", "test")

# ---------------------------------------------------------------------------------------------
# Vocabulary. Each industry has its own companies, products and wording, and only the contact
# reasons that make sense for it (weights are rough shares of real contact mixes).
# Slots filled at render time: {company} {product} {amount} {date} {ref} {device} {item}
# {service} {other_product}.
# ---------------------------------------------------------------------------------------------

INDUSTRIES = {
    "telecom": {
        "companies": ["Nexa Mobile", "BrightWave Telecom", "Skyline Wireless", "Orbit Connect"],
        "products": ["Unlimited Plus plan", "Fiber 500 broadband", "family mobile plan", "5G home internet",
                     "prepaid SIM plan"],
        "ref": ["account number", "phone number on the account"],
        "device": ["router", "phone", "modem"],
        "item": ["new phone", "replacement SIM card", "router"],
        "service": ["internet", "mobile data", "phone signal"],
        "teams": ["billing team", "technical support", "network team", "retention team"],
        "competitors": ["Vertex Mobile", "Pulse Telecom", "Lumen Wireless"],
        "reasons": {
            "billing_dispute": (0.20, [
                "My bill this month is {amount} higher than usual and I didn't change anything on my {product}.",
                "There's a roaming charge of {amount} on my bill, but I haven't left the country.",
                "I was charged {amount} for an international call I never made.",
            ]),
            "technical_issue": (0.18, [
                "My {device} keeps dropping the connection every evening.",
                "Since {date} my {service} has been crawling, I'm paying for the {product} and getting nothing close.",
                "My {device} won't connect to the network at all, it just says no service.",
            ]),
            "service_outage": (0.12, [
                "The {service} has been completely down in my area since {date}.",
                "There's no {service} at all at my house, and my neighbours say theirs is out too.",
            ]),
            "plan_change": (0.10, [
                "I'd like to move from my {product} to something with more data.",
                "I want to downgrade my {product}, I'm not using half of it.",
            ]),
            "cancellation_request": (0.10, [
                "I want to cancel my {product}.",
                "I'm moving abroad and need to close my {product} by {date}.",
            ]),
            "product_inquiry": (0.08, [
                "I'm looking at the {other_product} and wanted to know what's included.",
                "Does the {other_product} work with the phone I already have?",
            ]),
            "account_access": (0.06, [
                "I can't log in to my online account, it says my password is wrong but I just reset it.",
                "The app keeps locking me out of my account.",
            ]),
            "delivery_problem": (0.06, [
                "I ordered a {item} on {date} and it still hasn't arrived.",
                "The tracking for my {item} says delivered, but there's nothing here.",
            ]),
            "refund_request": (0.05, [
                "I returned the {item} two weeks ago and still haven't had my {amount} back.",
                "I paid {amount} for an add-on I cancelled on day one, I want that refunded.",
            ]),
            "fraud_concern": (0.05, [
                "I got a text saying my SIM was swapped, and I didn't do that.",
                "Someone ordered a phone on my account and it wasn't me.",
            ]),
        },
    },
    "banking": {
        "companies": ["Harbor Bank", "Crestline Credit Union", "Meridian Savings", "Northgate Bank"],
        "products": ["checking account", "Platinum credit card", "savings account", "debit card", "personal loan"],
        "ref": ["card number", "account number", "date of birth and postcode"],
        "device": ["mobile banking app", "online banking", "card reader"],
        "item": ["replacement card", "new debit card", "card reader"],
        "service": ["online banking", "the mobile app", "card payments"],
        "teams": ["fraud team", "cards team", "lending team", "account services"],
        "competitors": ["Summit Bank", "Clearwater Bank", "a digital bank"],
        "reasons": {
            "fraud_concern": (0.18, [
                "There are three transactions on my {product} that I didn't make, about {amount} in total.",
                "I just got an alert for a {amount} payment I don't recognise.",
                "Someone called pretending to be from your bank and I think I gave them my details.",
            ]),
            "billing_dispute": (0.16, [
                "You charged me an overdraft fee of {amount}, but I had money in the account.",
                "There's a {amount} annual fee on my {product} that I was told would be waived.",
            ]),
            "account_access": (0.14, [
                "I'm locked out of {service} after entering the wrong passcode.",
                "The one-time code for logging in never arrives on my phone.",
            ]),
            "technical_issue": (0.10, [
                "The {device} crashes every time I try to make a transfer.",
                "My card keeps getting declined at shops even though there's money in the account.",
            ]),
            "delivery_problem": (0.08, [
                "My {item} was supposed to arrive by {date} and it hasn't come.",
                "I've been waiting three weeks for my {item}.",
            ]),
            "refund_request": (0.08, [
                "I want the {amount} late-payment fee refunded, the payment was late because of your system.",
                "A merchant refunded me {amount} a week ago and it still isn't in my account.",
            ]),
            "product_inquiry": (0.10, [
                "What's the interest rate on the {other_product} at the moment?",
                "I'm thinking about opening a {other_product}, what do I need?",
            ]),
            "plan_change": (0.06, [
                "I'd like to switch my {product} to the one without a monthly fee.",
                "Can I increase the limit on my {product}?",
            ]),
            "cancellation_request": (0.06, [
                "I want to close my {product}.",
                "Please close my {product}, I'm moving my money elsewhere.",
            ]),
            "service_outage": (0.04, [
                "{service} has been down all morning and I need to pay rent today.",
                "None of my card payments are going through, is your system down?",
            ]),
        },
    },
    "retail": {
        "companies": ["ShopRight", "Cartwell", "Maple & Finch", "QuickBasket"],
        "products": ["wireless headphones", "standing desk", "coffee machine", "winter jacket", "air fryer",
                     "Prime-style membership"],
        "ref": ["order number", "email on the account"],
        "device": ["website", "app", "checkout page"],
        "item": ["order", "parcel", "package"],
        "service": ["the website", "the app", "checkout"],
        "teams": ["returns team", "delivery team", "payments team", "customer care"],
        "competitors": ["MegaMart", "BuyHub", "the big online store"],
        "reasons": {
            "delivery_problem": (0.24, [
                "My {product} was due on {date} and the {item} still hasn't shown up.",
                "The {item} arrived but the {product} inside is damaged.",
                "Tracking has said 'out for delivery' for four days now.",
            ]),
            "refund_request": (0.18, [
                "I sent the {product} back on {date} and I'm still waiting for my {amount} refund.",
                "I want a refund for the {product}, it stopped working after a week.",
            ]),
            "billing_dispute": (0.12, [
                "I was charged twice for the same {product}, {amount} each time.",
                "My card was charged {amount} for an order I cancelled.",
            ]),
            "product_inquiry": (0.12, [
                "Is the {other_product} back in stock, and does it come in black?",
                "What's the difference between the {product} and the newer model?",
            ]),
            "technical_issue": (0.08, [
                "The {device} gives me an error every time I try to pay.",
                "My discount code won't apply on the {device}.",
            ]),
            "account_access": (0.08, [
                "I can't get into my account, the reset email never arrives.",
                "My account says it's been suspended and I don't know why.",
            ]),
            "cancellation_request": (0.08, [
                "I'd like to cancel my {product} before the next renewal.",
                "Please cancel the order I placed on {date}, I don't need it any more.",
            ]),
            "fraud_concern": (0.06, [
                "There's an order for {amount} on my account that I never placed.",
                "Someone changed the delivery address on my account.",
            ]),
            "plan_change": (0.04, [
                "Can I switch my membership from monthly to yearly?",
                "I want to change my subscription box to every other month.",
            ]),
        },
    },
    "utilities": {
        "companies": ["GreenGrid Energy", "Riverside Water", "PowerHome", "Civic Gas & Electric"],
        "products": ["fixed-rate tariff", "variable tariff", "dual fuel plan", "water service", "green energy plan"],
        "ref": ["account number", "meter number", "supply address"],
        "device": ["smart meter", "in-home display", "prepayment meter"],
        "item": ["smart meter", "new meter", "welcome pack"],
        "service": ["power", "gas supply", "water supply", "electricity"],
        "teams": ["billing team", "metering team", "field engineers", "home moves team"],
        "competitors": ["BrightSpark Energy", "Octave Power", "another supplier"],
        "reasons": {
            "billing_dispute": (0.26, [
                "My bill jumped to {amount} this quarter, that's double what I normally pay.",
                "You've billed me on an estimated reading again and it's way off.",
                "I've been charged {amount} for a period before I even moved in.",
            ]),
            "service_outage": (0.16, [
                "We've had no {service} since {date} and nobody can tell me why.",
                "The {service} keeps cutting out on our street.",
            ]),
            "technical_issue": (0.14, [
                "My {device} stopped sending readings on {date}.",
                "The {device} shows an error code and my top-ups aren't going through.",
            ]),
            "plan_change": (0.12, [
                "My {product} ends next month and I want to move to something cheaper.",
                "I'd like to switch to the {other_product}.",
            ]),
            "cancellation_request": (0.10, [
                "I'm moving out on {date} and need to close the account.",
                "I'm switching suppliers, I need to close my {product}.",
            ]),
            "refund_request": (0.08, [
                "I'm {amount} in credit on my account and I want it paid back.",
                "I overpaid {amount} after the final bill and I'd like a refund.",
            ]),
            "product_inquiry": (0.08, [
                "What does the {other_product} actually cost per unit?",
                "Do you offer solar panel installation with the {other_product}?",
            ]),
            "account_access": (0.04, [
                "I can't log in to see my bills online.",
                "The online account won't accept my {ref}.",
            ]),
            "delivery_problem": (0.02, [
                "The engineer was supposed to fit my {item} on {date} and never turned up.",
            ]),
        },
    },
    "insurance": {
        "companies": ["SafeHarbor Insurance", "Keystone Mutual", "Evergreen Cover", "Atlas Assurance"],
        "products": ["car insurance policy", "home insurance policy", "travel insurance", "pet insurance",
                     "contents cover"],
        "ref": ["policy number", "date of birth and postcode"],
        "device": ["online portal", "claims app"],
        "item": ["policy documents", "green card", "claim pack"],
        "service": ["the claims portal", "the online portal"],
        "teams": ["claims team", "underwriting", "renewals team", "policy services"],
        "competitors": ["Guardian Direct", "CoverQuick", "a comparison site"],
        "reasons": {
            "billing_dispute": (0.20, [
                "My renewal premium went up by {amount} and I haven't made any claims.",
                "You took {amount} from my account twice this month for my {product}.",
            ]),
            "refund_request": (0.14, [
                "I cancelled my {product} in the cooling-off period and still haven't had my {amount} back.",
                "My claim was approved on {date} but the {amount} payout never arrived.",
            ]),
            "plan_change": (0.14, [
                "I need to add my partner as a named driver on my {product}.",
                "I've moved house and need to update my {product}.",
            ]),
            "cancellation_request": (0.12, [
                "I want to cancel my {product}, I've found it cheaper elsewhere.",
                "I sold the car, so I need to cancel the {product}.",
            ]),
            "product_inquiry": (0.12, [
                "Does my {product} cover accidental damage?",
                "What would the excess be on the {other_product}?",
            ]),
            "technical_issue": (0.08, [
                "The {device} won't let me upload photos for my claim.",
                "I keep getting an error when I try to download my documents from the {device}.",
            ]),
            "account_access": (0.08, [
                "I'm locked out of the {device}.",
                "The {device} says my {ref} doesn't match.",
            ]),
            "delivery_problem": (0.06, [
                "I never received my {item} and I need them by {date}.",
                "My {item} went to my old address.",
            ]),
            "fraud_concern": (0.06, [
                "I got a letter about a claim on my {product} that I never made.",
                "Someone's been calling me pretending to be from {company}.",
            ]),
        },
    },
    "airline": {
        "companies": ["SkyBridge Airways", "Aurora Air", "Coastal Airlines", "Polaris Travel"],
        "products": ["return flight to Lisbon", "flight to Chicago", "holiday package to Crete", "business class seat",
                     "frequent flyer membership"],
        "ref": ["booking reference", "frequent flyer number"],
        "device": ["check-in app", "website", "booking page"],
        "item": ["suitcase", "checked bag", "luggage"],
        "service": ["online check-in", "the booking system"],
        "teams": ["baggage services", "refunds team", "reservations", "loyalty team"],
        "competitors": ["JetLine", "Horizon Air", "another airline"],
        "reasons": {
            "refund_request": (0.22, [
                "My {product} was cancelled on {date} and I want my {amount} back, not a voucher.",
                "I was told I'd get a refund of {amount} for the downgrade and it never came.",
            ]),
            "plan_change": (0.18, [
                "I need to move my {product} to a later date.",
                "Can I change the name on my booking? It's spelled wrong.",
            ]),
            "delivery_problem": (0.16, [
                "My {item} didn't arrive with me on {date}.",
                "My {item} came back damaged, the handle is snapped off.",
            ]),
            "billing_dispute": (0.12, [
                "I was charged {amount} for a seat I never selected.",
                "You charged me a {amount} bag fee even though my fare included luggage.",
            ]),
            "cancellation_request": (0.10, [
                "I need to cancel my {product}.",
                "I'd like to cancel my {product}, I can't travel any more.",
            ]),
            "technical_issue": (0.08, [
                "The {device} won't let me check in, it just spins.",
                "I can't download my boarding pass from the {device}.",
            ]),
            "product_inquiry": (0.08, [
                "How much extra baggage can I add to my {product}?",
                "Does the {other_product} include lounge access?",
            ]),
            "account_access": (0.04, [
                "I can't log in to my frequent flyer account.",
                "My loyalty account is showing someone else's name.",
            ]),
            "fraud_concern": (0.02, [
                "Miles have been taken out of my account that I didn't spend.",
            ]),
        },
    },
    "saas": {
        "companies": ["CloudDesk", "Taskly", "DataForge", "PixelCRM"],
        "products": ["Pro plan", "Team plan", "Enterprise plan", "Starter plan"],
        "ref": ["workspace ID", "admin email"],
        "device": ["desktop app", "dashboard", "API integration", "browser extension"],
        "item": ["hardware security key", "licence keys", "onboarding kit"],
        "service": ["the platform", "the dashboard", "the API", "sync"],
        "teams": ["tier 2 support", "billing team", "engineering on-call", "customer success"],
        "competitors": ["WorkHive", "Stackly", "a competitor"],
        "reasons": {
            "technical_issue": (0.24, [
                "Our {device} stopped syncing on {date} and the team can't see each other's changes.",
                "Exports from the {device} come out empty.",
                "The {device} throws an error when we connect it to our calendar.",
            ]),
            "account_access": (0.16, [
                "I'm the admin and I'm locked out of our workspace.",
                "Single sign-on stopped working for our whole team this morning.",
            ]),
            "billing_dispute": (0.14, [
                "We were billed {amount} for 40 seats, we only have 25 users.",
                "You charged us for the {product} after we downgraded.",
            ]),
            "service_outage": (0.12, [
                "{service} has been down for us for two hours.",
                "Nothing loads, is {service} down? Our whole team is stuck.",
            ]),
            "plan_change": (0.10, [
                "We'd like to upgrade from the {product} to the {other_product}.",
                "Can we switch from monthly to annual billing on the {product}?",
            ]),
            "cancellation_request": (0.08, [
                "We want to cancel our {product} at the end of this cycle.",
                "Please cancel our subscription, we're consolidating tools.",
            ]),
            "refund_request": (0.06, [
                "We were auto-renewed for {amount} and we'd like that refunded.",
                "We paid {amount} for the annual {product} by mistake, we wanted monthly.",
            ]),
            "product_inquiry": (0.06, [
                "Does the {other_product} include audit logs?",
                "Is there a limit on API calls on the {product}?",
            ]),
            "fraud_concern": (0.04, [
                "There were logins to our workspace from a country we don't operate in.",
                "Someone added an unknown admin to our account.",
            ]),
        },
    },
}

CUSTOMER_FIRST = ["Maria", "James", "Aisha", "Tom", "Priya", "Daniel", "Chloe", "Hiro", "Fatima", "Luca", "Grace",
                  "Omar", "Sofia", "Ben", "Mei", "Carlos", "Hannah", "Kwame", "Elena", "Ravi", "Nora", "Jack",
                  "Zoe", "Mateo", "Ingrid", "Samuel", "Leila", "Patrick", "Yuki", "Andre"]
CUSTOMER_LAST = ["Garcia", "Smith", "Khan", "Murphy", "Patel", "Nguyen", "Okafor", "Rossi", "Cohen", "Larsen",
                 "Silva", "Brown", "Tanaka", "Dubois", "Novak", "Hughes", "Mensah", "Fischer", "Reyes", "O'Brien"]
AGENT_NAMES = ["Sam", "Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Dana", "Chris", "Lena",
               "Marcus", "Nina", "Owen", "Tessa", "Victor", "Ivy", "Kofi", "Rosa", "Ethan"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth"}


# ---------------------------------------------------------------------------------------------
# Label rules: pure functions of the events. ``rng=None`` gives the exact rule (tests, the
# evaluator); passing the example's rng adds the documented noise the generator uses.
# ---------------------------------------------------------------------------------------------


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
        mood = _clamp(mood + _pick(rng, (-1, 1)), -2, 2)
    return mood


def _end_mood(f: dict, events: list) -> int:
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
        csat = _clamp(csat + _pick(rng, (-1, 1)), 1, 5)
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
    end = _end_mood(f, events)
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
        level = 1 if level != 1 else _pick(rng, (0, 2))
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
    start, end = f["start_mood"], _end_mood(f, events)
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
    end = _end_mood(f, events)
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


# ---------------------------------------------------------------------------------------------
# Sampling the events of one call.
# ---------------------------------------------------------------------------------------------

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


def _pick(rng: random.Random, seq):
    # rng.choice is ~10x slower (it goes through _randbelow); this keeps the plan preset fast.
    return seq[int(rng.random() * len(seq))]


def _pick_weighted(rng: random.Random, pairs) -> str:
    r = rng.random() * sum(w for _, w in pairs)
    for item, w in pairs:
        r -= w
        if r < 0:
            return item
    return pairs[-1][0]


def sample_call(rng: random.Random) -> dict:
    """Sample one call: industry, people, products and the ordered event list.

    Returns ``{"industry", "company", "customer", "agent", "agents", "product", "other_product",
    "skill", "slots", "problem_text", "events"}``: ``slots`` are the names and values the
    transcript and rationale share, ``problem_text`` the customer's problem statement. The closing
    event's mood comes from ``customer_end_mood`` (with its noise).
    """
    industry = _pick(rng, list(INDUSTRIES))
    ind = INDUSTRIES[industry]
    reason = _pick_weighted(rng, [(r, w) for r, (w, _) in ind["reasons"].items()])
    skill = _pick_weighted(rng, SKILL_WEIGHTS)
    p = SKILL[skill]
    product, other_product = rng.sample(ind["products"], 2)
    agents = rng.sample(AGENT_NAMES, 4)
    call = {
        "industry": industry,
        "company": _pick(rng, ind["companies"]),
        "customer": f"{_pick(rng, CUSTOMER_FIRST)} {_pick(rng, CUSTOMER_LAST)}",
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
        "ref": _pick(rng, ind["ref"]), "device": _pick(rng, ind["device"]), "item": _pick(rng, ind["item"]),
        "service": _pick(rng, ind["service"]), "daypart": _pick(rng, ("morning", "afternoon", "evening")),
        "date": _date(rng), "amount": _fmt_money(_pick(rng, (12.5, 19.99, 24, 35, 48.75, 60, 89.99, 120, 149, 210))),
        "small_amount": _fmt_money(_pick(rng, (3, 5, 7.5, 8, 10, 12, 15))),
    }
    call["slots"] = slots
    ev = []
    ev.append({"type": "greeting", "proper": rng.random() < p["greet"], "disclosure": rng.random() < p["disclose"]})

    repeat = 0
    if reason != "product_inquiry" and rng.random() < 0.28:
        repeat = _pick_weighted(rng, ((2, 0.55), (3, 0.32), (4, 0.13)))
    mood = _pick_weighted(rng, list(zip((-2, -1, 0, 1), REASON_MOOD[reason])))
    if repeat:
        mood = max(-2, mood - 1)  # a repeat caller opens angrier
    ev.append({"type": "problem", "reason": reason, "mood": mood, "product": product})
    call["problem_text"] = _pick(rng, ind["reasons"][reason][1]).format(**slots)
    if repeat:
        ev.append({"type": "repeat_contact", "count": repeat})
    if rng.random() < 0.45:
        years = _pick_weighted(rng, ((0, 0.3), (rng.randint(1, 4), 0.35), (rng.randint(5, 15), 0.35)))
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

    # The middle of the call: diagnosis, holds, transfers; order varies a little.
    middle = []
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
        ev.append({"type": "transfer", "warm": rng.random() < p["warm"], "to": _pick(rng, ind["teams"])})
        if rng.random() < 0.3:
            ev.append({"type": "hold", "minutes": rng.randint(2, 12), "asked": rng.random() < p["ask_hold"],
                       "thanked": rng.random() < p["thank_hold"]})
    if rng.random() < p["rude"] * (1.5 if upset else 1.0):
        ev.append({"type": "rude"})

    threat_p = 0.0 if reason == "cancellation_request" else (0.3 if mood <= -2 else 0.15 if mood == -1 else 0.03)
    threat_p += 0.2 if repeat else 0
    if rng.random() < threat_p:
        ev.append({"type": "cancellation_threat"})
        if rng.random() < 0.6:
            ev.append({"type": "competitor_mention", "name": _pick(rng, ind["competitors"])})
    elif reason == "cancellation_request" and rng.random() < 0.4:
        ev.append({"type": "competitor_mention", "name": _pick(rng, ind["competitors"])})
    elif rng.random() < 0.03:
        ev.append({"type": "competitor_mention", "name": _pick(rng, ind["competitors"])})

    resolve_p = p["resolve"] * RESOLVE_FACTOR.get(reason, 1.0) * (0.8 if repeat >= 3 else 1.0)
    resolved = rng.random() < resolve_p
    if not resolved and (mood <= -2 or any(e["type"] == "rude" for e in ev)) and rng.random() < 0.45:
        ev.append({"type": "escalation"})
    if (reason in REFUNDY and rng.random() < 0.45) or rng.random() < 0.06:
        # On a refund call the refund itself is the resolution; the extra gesture is a credit.
        kind = "credit" if reason == "refund_request" else _pick(rng, ("credit", "credit", "refund"))
        amount = round(_pick(rng, (5, 10, 15, 20, 25, 30, 40, 50, 75)) + _pick(rng, (0, 0, 0.5, 0.99)), 2)
        ev.append({"type": "refund", "kind": kind, "amount": amount})
    resolution = {"type": "resolution", "resolved": resolved}
    if reason == "cancellation_request":
        resolution["retained"] = resolved and rng.random() < 0.4
    ev.append(resolution)
    if not resolved and rng.random() < p["callback"]:
        ev.append({"type": "callback", "when": _pick(rng, ("tomorrow morning", "within 24 hours", "by Friday",
                                                           "later today", "within 48 hours", "on Monday"))})
    if rng.random() < (0.3 if resolved else 0.1):
        ev.append({"type": "upsell", "pushy": rng.random() < p["pushy"] * (1.5 if upset else 1.0)})
    closing = {"type": "closing", "proper": rng.random() < p["close"]}
    closing["mood"] = customer_end_mood(ev + [closing], rng)
    ev.append(closing)
    call["events"] = ev
    return call


# ---------------------------------------------------------------------------------------------
# Rendering the transcript. Each event becomes one or more (speaker, text) lines; consecutive
# lines of one speaker are joined, so the transcript always alternates Agent / Customer.
# ---------------------------------------------------------------------------------------------

GREET_PROPER = [
    "Thank you for calling {company}, my name is {agent}. How can I help you today?",
    "Good {daypart}, you're through to {company}, this is {agent} speaking. What can I do for you?",
    "Hi, thanks for calling {company}. I'm {agent}, how can I help?",
    "Welcome to {company} customer support, {agent} here. How may I help you today?",
]
GREET_POOR = ["Yeah, {company}.", "Hello?", "{company}, what do you need?", "Support. Go ahead."]
DISCLOSURE = [
    "Just so you know, this call may be recorded for quality and training purposes.",
    "Before we start, this call is recorded for quality and training.",
    "Please note calls are recorded for quality purposes.",
]
MOOD_OPEN = {
    -2: ["Finally, a human. I'm absolutely fed up.", "I'm furious, honestly.", "This is ridiculous, I've had enough.",
         "I'm really angry right now."],
    -1: ["Hi. I'm a bit frustrated, to be honest.", "Hi, I'm not happy about something.",
         "Hello, I've got a problem and it's getting annoying.", "Hi. This is really frustrating."],
    0: ["Hi, I hope you can help me.", "Hello, I've got a question about my account.", "Hi there.",
        "Hi, yes, thanks."],
    1: ["Hi! Hope you're having a good day.", "Hello, lovely to get through so quickly!",
        "Hi there, thanks for picking up so fast."],
}
NAME_INTRO = ["My name is {customer}.", "It's {customer} here.", "This is {customer}.", "{customer} speaking."]
REPEAT = [
    "This is my {ordinal} call about this.",
    "I've already called {times} about this and nothing has changed.",
    "I'm calling again, this is the {ordinal} time now.",
    "Every time I call I get told it's sorted, and it never is. This is call number {count}.",
]
TENURE_LONG = ["I've been with {company} for {years} years.", "I've been a loyal customer for {years} years.",
               "{years} years I've been with you."]
TENURE_MID = ["I've been with you for about {years} years.", "I've had the account for {years} years or so."]
TENURE_NEW = ["I only signed up a few months ago.", "I joined {company} this year.",
              "I'm a new customer, only a couple of months in."]
VERIFY_ASK = [
    "Before I look into that, can I take your {ref}, please?",
    "Sure, let me pull up your account. Could you confirm your {ref}?",
    "I can help with that. First I need to verify you, what's your {ref}?",
    "Of course. For security, can you give me your {ref}?",
]
VERIFY_GIVE = ["Sure, it's {refval}.", "Yes, {refval}.", "It's {refval}.", "Okay, {refval}."]
VERIFY_OK = ["Thank you, you're verified.", "Perfect, that matches.", "Great, thanks, I've got your account up.",
             "Thanks, {first}, that's all confirmed."]
VERIFY_SKIP = ["Okay, let me just look at that.", "Right, let me see what's going on.", "Fine, I'll check."]
EMPATHY = [
    "I completely understand how frustrating that must be.",
    "That sounds really stressful, I'd feel the same way.",
    "I can hear how annoying this has been for you.",
    "I understand, nobody wants to deal with that.",
    "I hear you, that's not the experience you should be having.",
]
APOLOGY = [
    "I'm really sorry about this.",
    "I apologise for the trouble this has caused.",
    "I'm sorry you've had to go through that.",
    "Sorry about all of this, {first}.",
]
ACK = ["Thank you.", "Okay.", "Thanks, I appreciate that.", "Right.", "Okay, thanks.", "Mm-hm."]
INTERRUPT_CUST = ["And the other thing is that when I tried to—", "But that's not what I— ",
                  "Can I just finish, because the part that—", "Wait, I was saying that the—"]
INTERRUPT_AGENT = ["Yeah, yeah, I get it.", "Okay, okay, I've got the gist.", "Right, I know, let me just stop you there.",
                   "Sure, I understand, moving on."]
INTERRUPT_BACK = ["...okay.", "You're not really listening.", "Fine.", "Let me finish, please."]
TROUBLE = {
    "technical_issue": [
        "Can you close the {device} completely, open it again and tell me what you see?",
        "Let's try signing out of the {device} and back in.",
        "I'm going to push a reset to your {device} from my side, give it a minute.",
        "Could you check whether you're on the latest version of the {device}?",
    ],
    "service_outage": [
        "Let me check the status for your area.",
        "I'm running a line test from here now.",
        "Can you tell me whether any lights on the equipment are red?",
    ],
    "account_access": [
        "I'm going to unlock the account and send a fresh reset link.",
        "Let me clear the failed attempts on your profile.",
        "Can you check your spam folder for the verification message?",
    ],
    "other": [
        "Let me go through the account history with you.",
        "I'm just checking the notes on the account.",
        "Let me look at what happened on {date}.",
    ],
}
TROUBLE_CUST = {
    "technical_issue": ["Okay, done.", "It's doing the same thing.", "Right, it's restarting now.", "Nothing's changed.",
                        "Give me a second... okay."],
    "service_outage": ["Okay.", "All the lights are red, yes.", "Nothing's working here.", "Right."],
    "account_access": ["Okay, I see it.", "Nothing's come through yet.", "Okay, got it.", "Give me a second... okay."],
    "other": ["Okay.", "Sure.", "Mm-hm.", "Go on.", "Right."],
}
POLICY_LINES = {
    "billing_dispute": ["Our policy is that charges are reviewed against the usage records before we adjust them.",
                        "The terms say disputes have to be raised within 60 days of the bill, which you're within."],
    "refund_request": ["Refunds go back to the original payment method and take 3 to 5 business days.",
                       "Under our policy, refunds are processed once the return is checked in."],
    "cancellation_request": ["There's a 30-day notice period on cancellations under the contract.",
                             "Cancelling before the end of the minimum term carries an early exit fee."],
    "plan_change": ["Plan changes take effect from the next billing cycle.",
                    "You can change plans once per billing cycle without a fee."],
    "fraud_concern": ["For your protection I have to block the card while we investigate.",
                      "Our policy is that disputed transactions are investigated within 10 business days."],
    "delivery_problem": ["If an item isn't delivered within 10 days we can send a replacement or refund it.",
                         "Our policy is to open a trace with the courier before we resend."],
}
POLICY_CUST = ["That's a bit annoying, but okay.", "Fine, if that's the rule.", "Okay, I understand.",
               "Nobody told me that before."]
GAP_AGENT = [
    "The {other_product} doesn't include that... actually, sorry, let me check. Yes, it does. My mistake.",
    "I think that takes about a month. Hang on, no, sorry, it's 5 days. I had that wrong.",
    "I'm not sure that's something we offer. Oh wait, it is, sorry, I'm quite new to this.",
]
GAP_CUST = ["So which is it?", "Are you sure this time?", "Okay...", "That's confusing."]
HOLD_ASK = ["Would you mind if I put you on a brief hold while I check?", "Is it okay if I place you on hold for a moment?",
            "Can I put you on hold for a couple of minutes while I look into this?"]
HOLD_ASK_REPLY = ["Sure.", "Yes, that's fine.", "Okay, go ahead.", "Fine."]
HOLD_NOASK = ["Hold on.", "Hang on.", "Wait there.", "One sec."]
HOLD_THANK = ["Thank you for holding for {minutes}, I appreciate your patience.",
              "Thanks so much for waiting, sorry that took {minutes}.",
              "Thanks for your patience, {first}. That was about {minutes}, sorry."]
HOLD_BACK = ["Okay, I'm back.", "Right.", "So.", "Okay, I'm back, so."]
HOLD_COMPLAIN = ["I've been sitting here for {minutes}.", "That was {minutes} on hold.",
                 "{minutes} of that music, seriously."]
TRANSFER_WARM = ["I'm going to bring in our {to}. I'll stay on and explain everything so you don't have to repeat yourself.",
                 "Let me connect you to our {to}; I'll brief them first."]
TRANSFER_WARM_NEW = ["Hi {first}, this is {agent2} from the {to}. {agent} has filled me in, so let's pick up from there.",
                     "Hello {first}, {agent2} here in the {to}. I've got the notes from {agent}."]
TRANSFER_COLD = ["I'll transfer you.", "That's the {to}, I'll put you through.", "You need the {to}. Transferring now."]
TRANSFER_COLD_NEW = ["{to}, {agent2} speaking.", "Hi, {agent2} here. What's this about?", "{agent2}, {to}, how can I help?"]
TRANSFER_COLD_CUST = ["I've already explained all of this once.", "Ugh, do I have to start from the beginning?",
                      "I just told the last person everything."]
RUDE = ["Look, that's not my problem, I just read what's on the screen.",
        "I already told you, there's nothing I can do.",
        "You should have read the terms before you signed up.",
        "Well, maybe if you'd called earlier this wouldn't have happened.",
        "Sir, calm down, you're not the only customer I have today.",
        "I don't make the rules, okay?"]
RUDE_CUST = ["Excuse me? Don't talk to me like that.", "Wow. Great attitude.", "That's a really rude thing to say.",
             "Are you serious?"]
THREAT = ["If this isn't sorted today I'm cancelling.", "Honestly, I'm ready to leave {company} over this.",
          "One more problem and I'm taking my business elsewhere.", "I'm seriously thinking of cancelling everything."]
COMPETITOR = ["{name} offered me a better deal last week.", "{name} keeps sending me offers, and I'm tempted.",
              "My sister switched to {name} and she's had no problems."]
COMPETITOR_AGENT = ["I'd hate to lose you.", "I understand, let's see what I can do.", "I hear you."]
ESCALATE_CUST = ["I want to speak to a supervisor.", "Put me through to your manager, please.",
                 "Can I talk to someone more senior?"]
ESCALATE_AGENT = ["Of course, let me get my supervisor.", "One moment, I'll bring in my team lead."]
ESCALATE_SUP = ["Hi {first}, this is {sup}, I'm a supervisor here. I've read the notes and I'm taking this on personally.",
                "Hello, {sup} here, team lead. I'm sorry about how this went, let me look at it myself."]
REFUND = ["I've applied a {amount} {kind} to your account for the trouble.",
          "I can offer you a {kind} of {amount}, which I've just put through.",
          "As a goodwill gesture I've added a {amount} {kind}."]
REFUND_CUST = ["Thank you, that helps.", "Okay, that's something.", "I appreciate that.", "Fine, thanks."]
RESOLVED = {
    "billing_dispute": ["I've reversed the charge, you'll see it on your next bill.",
                        "That charge was applied in error, I've removed it and corrected the bill."],
    "technical_issue": ["That's done it, the {device} is working normally now.",
                        "I can see it's back online on my side. Is it working for you?"],
    "account_access": ["You should be able to log in now.", "The account's unlocked and the reset link is on its way."],
    "service_outage": ["The engineers have just restored the {service} in your area.",
                       "I've reset the connection from our side and the {service} is back."],
    "delivery_problem": ["I've arranged a replacement that will arrive on {date}.",
                         "The courier has it, it will be with you by {date}, and I've upgraded the shipping."],
    "refund_request": ["I've processed the refund of {amount}; it'll be back in 3 to 5 business days.",
                       "The {amount} refund has gone through, you'll get a confirmation email."],
    "plan_change": ["All done, you're on the {other_product} from the next billing cycle.",
                    "I've made the change; your new plan starts on {date}."],
    "product_inquiry": ["Yes, the {other_product} includes that, and I've emailed you the full details.",
                        "It does, and it's {small_amount} a month extra. I've sent you a summary."],
    "fraud_concern": ["I've blocked the card, cancelled those transactions, and a new one is on its way.",
                      "I've secured the account, reset your access and flagged the activity to our fraud team."],
}
RETAINED = ["Before you go, I can offer you {small_amount} off a month for the next six months if you stay.",
            "What if I move you to the {other_product} at the same price as now?"]
RETAINED_CUST = ["Okay, that works. I'll stay.", "Alright, for that price I'll stay.", "Fine, let's do that then."]
CANCELLED = ["I've processed the cancellation, effective {date}. You'll get a confirmation email.",
             "That's cancelled for you from {date}; the final bill will come next month."]
UNRESOLVED_BY_REASON = {
    "product_inquiry": ["I don't have that information to hand, I'll need to check with the product team.",
                        "I'm honestly not sure, and I can't find it in our system right now."],
    "service_outage": ["I can see there's a fault, but there's no estimate for a fix yet.",
                       "The engineers are still working on it and I don't have a time for you."],
    "delivery_problem": ["I can't see where the parcel is, I'll have to open an investigation with the courier."],
}
UNRESOLVED = ["I'm afraid I can't fix this today.", "Unfortunately that's not something I can sort out on this call.",
              "I'm sorry, the system won't let me do that from here.",
              "I've raised a ticket, but I can't promise when it'll be fixed."]
UNRESOLVED_CUST = ["So I'm still stuck.", "That's not good enough.", "So nothing's fixed.",
                   "Great. So I called for nothing."]
CALLBACK = ["I'll call you back {when} with an update.", "Someone from our specialist team will call you {when}.",
            "I've booked a callback for {when}, and I'll follow it up myself."]
UPSELL = ["While I have you, did you know you could add the {other_product} for just {small_amount} more a month?",
          "By the way, you qualify for the {other_product}, would you like to hear about it?",
          "You might also like our {other_product}; shall I send you the details?"]
UPSELL_OK = ["Maybe later, thanks.", "I'll think about it.", "Send me the details."]
UPSELL_PUSH = ["It's honestly a great deal, I can add it right now.", "Are you sure? It's only today, I can just add it.",
               "Most people in your situation take it, shall I switch you?"]
UPSELL_PUSH_CUST = ["I said no.", "I'm not interested, I just wanted my problem fixed.", "No. Please stop."]
CLOSE_ASK = ["Is there anything else I can help you with today?", "Anything else I can do for you?",
             "Is there anything else on your mind today?"]
CLOSE_PROPER = ["Thank you for calling {company}, {first}. Have a great {daypart}.",
                "Thanks for your patience today, {first}. Take care.",
                "Thanks for calling, {first}, and have a lovely day."]
CLOSE_ABRUPT = ["Okay. Bye.", "Right, that's it then.", "Okay, bye now.", "Alright. *click*"]
MOOD_END = {
    -2: ["This has been a complete waste of time.", "I'm done with this. Unbelievable.",
         "Worst service I've ever had."],
    -1: ["Well, I'm still not happy about it.", "Okay. Not great, but okay.", "I suppose that's it then."],
    0: ["Okay, thanks.", "Alright, that's everything.", "Fine, thank you."],
    1: ["Thanks, that's really helpful.", "Great, thank you for sorting that.", "Brilliant, thanks for your help."],
    2: ["You've been fantastic, thank you so much!", "Thank you, you've made my day!",
        "Honestly, best call I've had with you, thanks!"],
}
SMALL_TALK = [
    ("Customer", "Sorry, my dog's barking in the background.", "Agent", "No worries at all!"),
    ("Agent", "How's your day going otherwise?", "Customer", "Busy, but fine."),
    ("Customer", "Can you hear me okay? The line's a bit crackly.", "Agent", "I can hear you fine, thanks."),
    ("Agent", "Is the weather any better where you are?", "Customer", "Raining, as usual."),
    ("Customer", "Sorry, just give me a second, I'm driving.", "Agent", "Take your time."),
    ("Customer", "Hang on, let me find my glasses.", "Agent", "Of course."),
]


def minutes_text(minutes: int) -> str:
    """How a hold length is said in the transcript.

    >>> minutes_text(1), minutes_text(6)
    ('1 minute', '6 minutes')
    """
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _fmt_money(amount: float) -> str:
    return f"${amount:,.2f}" if amount != int(amount) else f"${int(amount)}"


def _date(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return _pick(rng, WEEKDAYS)
    day = rng.randint(1, 28)
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{_pick(rng, MONTHS)} {day}{suffix}"


def _ref_value(rng: random.Random, ref: str) -> str:
    if "email" in ref:
        return "it's the one ending in @mailbox.com"
    if "date of birth" in ref:
        born = f"{rng.randint(1, 28)} {_pick(rng, MONTHS)} {rng.randint(1950, 2002)}"
        return f"{born}, postcode {_pick(rng, 'ABCDEGHK')}{rng.randint(1, 20)}"
    if "address" in ref:
        street = _pick(rng, ("Elm", "Station", "Mill", "Park", "Church"))
        return f"{rng.randint(2, 120)} {street} {_pick(rng, ('Road', 'Street', 'Lane'))}"
    if "booking" in ref:
        return "".join(_pick(rng, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))
    return " ".join(str(rng.randint(100, 999)) for _ in range(3))


def render_transcript(call: dict, rng: random.Random) -> str:
    """Render a call's events as ``Agent: ...`` / ``Customer: ...`` lines, alternating speakers."""
    slots = call["slots"]
    lines: list[tuple[str, str]] = []

    def say(who: str, options, **extra):
        text = _pick(rng, options)
        lines.append((who, text.format(**{**slots, **extra}) if "{" in text else text))

    agent_now = call["agent"]
    reason = None
    upset = False
    events = call["events"]
    n = len(events)
    small_talk_at = rng.randint(2, max(2, n - 2)) if rng.random() < 0.35 else -1
    for idx, e in enumerate(events):
        t = e["type"]
        if idx == small_talk_at:
            a, b, c, d = _pick(rng, SMALL_TALK)
            lines.append((a, b))
            lines.append((c, d))
        if t == "greeting":
            say("Agent", GREET_PROPER if e["proper"] else GREET_POOR)
            if e.get("disclosure"):
                say("Agent", DISCLOSURE)
        elif t == "problem":
            reason, mood = e["reason"], e["mood"]
            upset = mood < 0
            say("Customer", MOOD_OPEN[mood])
            if rng.random() < 0.6:
                say("Customer", NAME_INTRO)
            lines.append(("Customer", call["problem_text"]))
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
        elif t == "troubleshooting":
            key = reason if reason in TROUBLE else "other"
            pool = TROUBLE[key]
            for step in rng.sample(pool, min(e["steps"], len(pool))):
                lines.append(("Agent", step.format(**slots)))
                say("Customer", TROUBLE_CUST[key])
        elif t == "policy":
            say("Agent", POLICY_LINES.get(reason, POLICY_LINES["plan_change"]))
            say("Customer", POLICY_CUST)
        elif t == "knowledge_gap":
            say("Agent", GAP_AGENT)
            say("Customer", GAP_CUST)
        elif t == "hold":
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
        elif t == "transfer":
            to = e["to"]
            new_agent = next(a for a in call["agents"][1:] if a != agent_now)
            if e["warm"]:
                say("Agent", TRANSFER_WARM, to=to)
                say("Customer", ["Okay, thank you.", "Thanks.", "Alright."])
                say("Agent", TRANSFER_WARM_NEW, to=to, agent2=new_agent, agent=agent_now)
            else:
                say("Agent", TRANSFER_COLD, to=to)
                say("Customer", ["Wait—", "Okay...", "Again?"])
                say("Agent", TRANSFER_COLD_NEW, to=to[0].upper() + to[1:], agent2=new_agent)
                say("Customer", TRANSFER_COLD_CUST)
            agent_now = new_agent
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
            sup = call["agents"][3]
            say("Agent", ESCALATE_SUP, sup=sup)
            say("Customer", ["Thank you. Finally.", "Okay.", "About time."])
        elif t == "refund":
            say("Agent", REFUND, amount=_fmt_money(e["amount"]), kind=e["kind"])
            say("Customer", REFUND_CUST)
        elif t == "resolution":
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
    # Join runs of one speaker into a single turn so speakers strictly alternate.
    turns: list[list] = []
    for who, text in lines:
        if turns and turns[-1][0] == who:
            turns[-1][1] += " " + text
        else:
            turns.append([who, text])
    return "\n".join(f"{who}: {text}" for who, text in turns)


# ---------------------------------------------------------------------------------------------
# Reference answers: 1-3 sentences of rationale from the events, then the canonical answer line.
# ---------------------------------------------------------------------------------------------

REASON_GLOSS = {
    "billing_dispute": ["is disputing a charge on their bill", "questions an unexpected charge",
                        "believes they were billed incorrectly"],
    "technical_issue": ["reports something that is not working technically", "has a technical fault",
                        "cannot get something to work properly"],
    "account_access": ["cannot get into their account", "is locked out of their account",
                       "has a login problem"],
    "service_outage": ["has lost service entirely", "is affected by a service outage",
                       "reports that the service is down"],
    "cancellation_request": ["wants to cancel", "is calling to close their {thing}", "asks to end the service"],
    "delivery_problem": ["has a delivery that is late, missing or damaged", "is chasing a delivery",
                         "did not receive what was sent"],
    "refund_request": ["wants money back", "is chasing a refund", "asks for a refund"],
    "plan_change": ["wants to change their plan", "asks to modify their {thing}", "wants a different plan or option"],
    "product_inquiry": ["is asking about a product", "wants information before buying",
                        "has a question about what a product includes"],
    "fraud_concern": ["reports activity they did not authorise", "suspects fraud on their account",
                      "is worried someone else is using their account"],
}
DEDUCTION_WORDS = {"rude": "the rude remark", "interruption": "interrupting the customer",
                   "knowledge_gap": "the wrong information given", "pushy_upsell": "the pushy upsell"}
MOOD_WORDS = {-2: "angry", -1: "frustrated", 0: "calm", 1: "pleased", 2: "delighted"}


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
        good.append(f"a {f['refund']['kind']} of {_fmt_money(f['refund']['amount'])} was offered")
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
    end = _end_mood(f, events)
    start = f["start_mood"]
    sentences: list[str] = []
    if task == "csat":
        good, bad = _good_bad(f, end)
        if good and bad:
            sentences.append(_pick(rng, [
                f"{_cap(_join(good))}, but {_join(bad)}.",
                f"On the plus side {_join(good)}; on the other hand {_join(bad)}.",
                f"Although {_join(good)}, {_join(bad)}.",
            ]))
        elif good:
            sentences.append(_pick(rng, [f"{_cap(_join(good))}, with no major friction.",
                                         f"The call went smoothly: {_join(good)}."]))
        else:
            sentences.append(_pick(rng, [f"{_cap(_join(bad))}.", f"Little went right: {_join(bad)}."]))
        sentences.append(_pick(rng, [
            f"The customer ends the call {MOOD_WORDS[end]}.",
            f"By the end the customer sounds {MOOD_WORDS[end]}.",
        ]))
    elif task == "quality":
        b = qa_breakdown(events, f)
        met = [k for k, v in b.items() if v == QA_RUBRIC[k]]
        missed = [k for k, v in b.items() if v < QA_RUBRIC[k]]
        deductions = [DEDUCTION_WORDS[k] for k in QA_DEDUCTIONS if f[k]]
        if missed:
            sentences.append(_pick(rng, [
                f"The agent met the rubric on {_join([humanize(k) for k in met]) or 'nothing'} but lost points on "
                f"{_join([humanize(k) for k in missed])}.",
                f"Rubric gaps: {_join([humanize(k) for k in missed])}; the rest ({_join([humanize(k) for k in met])}) "
                f"was handled well." if met else f"Rubric gaps: {_join([humanize(k) for k in missed])}.",
            ]))
        else:
            sentences.append(_pick(rng, [
                "The agent hit every rubric item: greeting, disclosure, verification, empathy, hold and transfer "
                "etiquette, ownership, resolution and closing.",
                "Every QA rubric item was covered, from the greeting through to a proper close.",
            ]))
        if deductions:
            sentences.append(_pick(rng, (f"Points are deducted for {_join(deductions)}.",
                                         f"Further deductions apply for {_join(deductions)}.")))
    elif task == "churn":
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
            sentences.append(_pick(rng, [f"Risk factors: {_join(drivers)}.",
                                         f"{_cap(_join(drivers))}, which raises the risk."]))
        else:
            sentences.append(_pick(rng, ["There is no sign the customer is thinking of leaving.",
                                         "Nothing in the call points to the customer leaving."]))
        if protect:
            sentences.append(_pick(rng, [f"Working in the other direction: {_join(protect)}.",
                                         f"This is softened by {_join(protect)}."]))
        sentences.append(f"The customer ends {MOOD_WORDS[end]}.")
    elif task == "sentiment":
        sentences.append(_pick(rng, [
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
    elif task == "root_cause":
        gloss = _pick(rng, REASON_GLOSS[f["reason"]]).format(thing=f["product"] or "service")
        said = call["problem_text"]
        sentences.append(_pick(rng, [
            f'The customer {gloss}: "{said}"',
            f'This {call["industry"]} customer {gloss}, saying "{said}"',
            f'"{said}" The customer {gloss}.',
        ]))
        if f["cancellation_threat"] and f["reason"] != "cancellation_request":
            sentences.append("The cancellation threat is a consequence of the problem, not the reason for the call.")
        elif f["repeat_count"] >= 2:
            sentences.append("It is a repeat contact, but the underlying reason is unchanged.")
    elif task == "coaching":
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
            sentences.append(_pick(rng, [f"Coach on {what} because {_join(reasons[:4])}.",
                                         f"{_cap(_join(reasons[:4]))}."]))
            if len(reasons) > 4:
                sentences.append(f"Also, {_join(reasons[4:])}.")
        else:
            sentences.append(_pick(rng, ["The agent followed every expected behaviour on this call.",
                                         "No behaviour needs coaching on this call; it was handled by the book."]))
    return " ".join(sentences) + "\n" + answer_line(task, labels)


# ---------------------------------------------------------------------------------------------
# Examples, presets and files.
# ---------------------------------------------------------------------------------------------


def make_example(preset: str, split: str, i: int, seed: int = 0) -> dict:
    """The i-th example of a split: a ChatML record with ``meta`` (id, task, labels, events, industry).

    >>> ex = make_example("demo", "train", 7)
    >>> ex["meta"]["id"], ex["meta"]["task"], [m["role"] for m in ex["messages"]]
    ('demo-0-train-000007', 'quality', ['system', 'user', 'assistant'])
    """
    rng = random.Random(f"{seed}:{split}:{i}")
    task = TASKS[i % len(TASKS)]  # cycling keeps every split balanced over the six tasks
    call = sample_call(rng)
    facts = call_facts(call["events"])
    labels = labels_for(call["events"], rng, facts)
    transcript = render_transcript(call, rng)
    answer = reference_answer(task, call, labels, rng, facts)
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_content(transcript, task)},
            {"role": "assistant", "content": answer},
        ],
        "meta": {"id": f"{preset}-{seed}-{split}-{i:06d}", "task": task, "labels": labels,
                 "events": call["events"], "industry": call["industry"]},
    }


def split_sizes(preset: str) -> dict:
    """``{split: n}`` for a preset name.

    >>> split_sizes("demo")
    {'train': 300, 'validation': 60, 'test': 60}
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    return dict(PRESETS[preset])


def iter_examples(preset: str, split: str, seed: int = 0) -> Iterator[dict]:
    """Yield every example of one split of a preset, in order."""
    sizes = split_sizes(preset)
    if split not in sizes:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    for i in range(sizes[split]):
        yield make_example(preset, split, i, seed)


def iter_preset(preset: str, seed: int = 0) -> Iterator[tuple[str, dict]]:
    """Yield ``(split, example)`` over all splits of a preset."""
    for split in split_sizes(preset):
        for example in iter_examples(preset, split, seed):
            yield split, example


def write_synth(out_dir, preset: str = "demo", seed: int = 0) -> dict:
    """Write ``{split}_chatml.jsonl`` for the three splits into ``out_dir``, each atomically.

    Returns ``{"files": {split: path}, "counts": {split: n}, "seconds": s}``.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files, counts = {}, {}
    for split in split_sizes(preset):
        path = out / f"{split}_chatml.jsonl"
        n = 0
        with atomic_write(path) as fh:  # readers never see half a file
            buf = []
            for example in iter_examples(preset, split, seed):
                buf.append(json.dumps(example, ensure_ascii=False))
                n += 1
                if len(buf) >= 2000:
                    fh.write("\n".join(buf) + "\n")
                    buf.clear()
            if buf:
                fh.write("\n".join(buf) + "\n")
        files[split], counts[split] = str(path), n
    return {"files": files, "counts": counts, "seconds": round(time.perf_counter() - t0, 3)}
