"""Faithfulness, part 1: statements of the chain that contradict the example's labels.

A sentence that asserts the customer's mood, the agent's performance, the churn risk, the root
cause or a coaching need must agree with the example's labels (whichever it has); with no label
for a claim the transcript decides where it can (the customer's last words, whether there was a
hold, a transfer). Negation ("not satisfied" is negative, "no sign of frustration" asserts
nothing) and hedging ("may become frustrated", "should show empathy": no assertion) are read
from the few words before the claim word, within its clause.

``_consistency`` reads the sentences ``analyse`` (engine/chains/analysis.py) classified and
returns one fault per contradiction; ``criterion_consistency`` (engine/chains/criteria.py)
turns them into the deduction. Each check is a word-set intersection per sentence: a sentence
with no claim word costs one set operation.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from itertools import compress

from engine.data import tasks as _tasks
from engine.chains.transcript import _TRANSFER_WORDS, _Transcript
from engine.chains.vocabulary import _multi, _vocab

# Customer mood words and their strength (2 strong, 1 plain, 0.5 mild; negative below zero).
_MOOD = {
    **dict.fromkeys("delighted thrilled ecstatic overjoyed elated".split(), 2.0),
    **dict.fromkeys("satisfied happy pleased grateful glad content appreciative thankful positive "
                    "happier satisfying".split(), 1.0),
    **dict.fromkeys("relieved reassured relaxed calmer".split(), 0.5),
    **dict.fromkeys("resigned concerned worried confused impatient anxious uneasy".split(), -0.5),
    **dict.fromkeys("frustrated frustration upset annoyed annoyance dissatisfied dissatisfaction unhappy "
                    "disappointed disappointment irritated irritation exasperated displeased stressed "
                    "unsatisfied negative distressed fed".split(), -1.0),
    **dict.fromkeys("angry anger furious livid irate enraged outraged infuriated hostile fuming".split(), -2.0),
}
_MOOD_WORDS = frozenset(_MOOD)
# Words that describe a mood only as a predicate of the customer ("the customer was positive"),
# not before a noun ("a positive outcome", "negative impact").
_AMBIGUOUS_MOODS = frozenset(("positive", "negative"))
_COPULAS = frozenset("""was is were are felt feel feels seemed seems remained remains stayed stays became
    becomes sounded sounds appeared appears be been""".split())
_ADVERBS = frozenset("very quite rather still more mostly generally largely overall fairly really".split())


def _predicative(toks: list[str], j: int, start: int) -> bool:
    """Token ``j`` follows a copula directly or after one adverb ("was positive", "stayed very
    negative"), not a determiner ("a positive outcome")."""
    k = j - 1
    if k >= start and toks[k] in _ADVERBS:
        k -= 1
    return k >= start and toks[k] in _COPULAS
_PRAISE = frozenset("""excellent exceptional exceptionally outstanding flawless flawlessly perfect perfectly
    superb superbly exemplary brilliant brilliantly impeccable impeccably fantastic amazing stellar""".split())
_PRAISE_OVERALL = _vocab("performed well, performed very well, performed strongly, good job, great job, "
                         "handled the call well, handled it well, strong performance, great service")
_HARSH = frozenset("""rude rudely unprofessional incompetent terrible terribly awful appalling dismissive
    abysmal disrespectful""".split())
_HARSH_PHRASES = _vocab("performed poorly, performed badly, poor performance, poor job, bad job, "
                        "very poor, handled poorly, handled badly")
_NEGATORS = frozenset("""not no never without nothing hardly barely neither nor lack lacked lacking lacks
    didn doesn don wasn weren isn aren hasn haven hadn wouldn couldn shouldn cannot none absence
    absent than less instead free unable""".split())
_HEDGES = frozenset("""may might could possibly perhaps if unless would should whether potentially risk
    risks chance likely unlikely expect expected hope hopefully probably can avoid prevent ensure
    keep make want wants wanted need needs""".split())
_CUST_SUBJ = frozenset("""customer customers caller callers client clients sentiment mood tone emotions
    emotion feelings trajectory""".split())
_AGENT_SUBJ = frozenset("""agent agents representative rep advisor adviser supervisor staff employee
    performance handling service job""".split())
_START = frozenset("""initially first opened opening opens began begins begin start started starts
    starting beginning outset originally early earlier""".split())
_END = frozenset("""end ended ends ending finally eventually closed closes closing left leaves afterwards
    later ultimately became become becomes turned once after""".split())
_CLAUSE = frozenset("but although though however whereas while whilst yet then despite".split())
_TRAJ_UP = frozenset("improved improving improves softened softening calmed warmed brightened recovered".split())
_TRAJ_DOWN = frozenset("worsened worsening worsens deteriorated deteriorating soured".split())
_SENTIMENTS = frozenset(("negative", "neutral", "positive"))
_TRAJECTORIES = frozenset(("worsening", "stable", "improving"))
_CHURN_LOW = frozenset("low minimal little".split())
_CHURN_HIGH = frozenset("high elevated significant serious severe considerable".split())
_CHURN_LEVEL_WORDS = _CHURN_LOW | _CHURN_HIGH | frozenset(("medium", "moderate"))
_CHURN_ANCHORS = frozenset("churn churning attrition cancellation cancelling canceling leaving defection".split())
_CHURN_LINK = frozenset("""is remains stays was looks seems appears very quite rather now still be remain
    considered rated fairly relatively extremely also as not""".split())
_CHURN_VERBS = frozenset("churn leave cancel switch defect".split())
_ROOT_TRIGGERS = _vocab("root cause, contact reason, reason for the call, reason for calling, called about, "
                        "calling about, called to, caused by")
# Words that name each contact reason; a cause asserted with another reason's words and none of
# the label's (or a closely related reason's) contradicts the label.
_CAUSE_WORDS = {
    "billing_dispute": "bill billing billed charge charged charges overcharged overcharge invoice fee fees overdraft roaming",
    "technical_issue": "technical connection connectivity fault faults crash crashes crashing signal dropping dropouts "
                       "glitch bug malfunction malfunctioning slow declined router modem",
    "account_access": "login log locked lockout password passcode access",
    "service_outage": "outage outages",
    "cancellation_request": "cancel cancellation cancelling canceling",
    "delivery_problem": "delivery delivered deliver arrived arrive parcel package tracking shipping shipment courier",
    "refund_request": "refund refunded refunds reimbursement",
    "plan_change": "upgrade downgrade tariff",
    "product_inquiry": "inquiry enquiry question questions information",
    "fraud_concern": "fraud fraudulent unauthorised unauthorized unrecognised unrecognized scam stolen swapped "
                     "suspicious phishing",
}
_CAUSE_WORDS = {k: frozenset(v.split()) for k, v in _CAUSE_WORDS.items()}
_CAUSE_OF = {w: k for k, ws in _CAUSE_WORDS.items() for w in ws}
_CAUSE_ALL = frozenset(_CAUSE_OF)
_CAUSE_RELATED = {
    "billing_dispute": {"refund_request", "fraud_concern", "plan_change"},
    "refund_request": {"billing_dispute", "delivery_problem", "cancellation_request"},
    "delivery_problem": {"refund_request"},
    "technical_issue": {"service_outage", "account_access"},
    "service_outage": {"technical_issue"},
    "account_access": {"technical_issue", "fraud_concern"},
    "fraud_concern": {"billing_dispute", "account_access"},
    "cancellation_request": {"plan_change", "refund_request"},
    "plan_change": {"cancellation_request", "billing_dispute", "product_inquiry"},
    "product_inquiry": {"plan_change"},
}
# Coaching behaviours: the words that name each, and words that praise it.
_BEHAVIOUR_WORDS = {
    "empathy": "empathy empathetic empathised empathized empathic sympathy sympathetic",
    "active_listening": "listened listening",
    "identity_verification": "verified verification verify verifying identity",
    "hold_etiquette": "etiquette",   # "hold" alone names the event, not the behaviour
    "ownership": "ownership",
    "product_knowledge": "knowledge knowledgeable",
    "de_escalation": "escalate escalation escalating",   # "de-escalate": the tokens de + escalate
    "call_closing": "closing",
    "transfer_handling": "transfer transferred transferring",
    "compliance": "compliance compliant disclosure disclosed",
}
_BEHAVIOUR_OF = {w: b for b, ws in _BEHAVIOUR_WORDS.items() for w in ws.split()}
_BEHAVIOUR_ALL = frozenset(_BEHAVIOUR_OF)
_BEHAVIOUR_PRAISE = frozenset("""well good great excellent strong strongly properly correctly proper clear
    clearly effective effectively showed shown shows demonstrated displayed genuine warm thorough
    thoroughly smooth smoothly followed completed done performed""".split())
_SKIPPED = frozenset("skipped skip skipping missed omitted bypassed failed neglected".split())
_NO_COACHING = _vocab("no coaching, nothing to coach, no areas for improvement, no improvement needed, "
                      "no coaching needed, needs no coaching, no need for coaching")
_HOLD_WORDS = frozenset(("hold", "holds"))   # not "held": "held back", "held accountable"
_CLAIM_REGIONS_SKIP = ("insights", "analysis:Patterns & Trends")   # proposals and generalisations
_CSAT_NUM_RE = re.compile(r"(?i)\bcsat\b(?: score)?(?: of| is| was| at| around| about|:|=| -)*\s*([1-5])\b(?!\.\d)")
_QA_NUM_RE = re.compile(r"(?i)\b(?:qa|quality) score(?: of| is| was| at| around| about|:|=| -)*\s*(\d{1,3})\b(?!\.\d)")

_UNCHECKED_KINDS = frozenset(("copy", "dup"))   # a copy is grounded; a repeat was checked once
_PRAISE_WORDS = _PRAISE | _PRAISE_OVERALL[3]
_HARSH_WORDS = _HARSH | _HARSH_PHRASES[3]
_CHURN_MEDIUM = frozenset(("medium", "moderate"))
_CHURN_CLAIM_WORDS = _CHURN_LEVEL_WORDS | _CHURN_VERBS
_CAUSE_OK = {c: frozenset({c} | _CAUSE_RELATED.get(c, set())) for c in _tasks.ROOT_CAUSES}
_BEHAVIOUR_CHECKED = frozenset(w for w, b in _BEHAVIOUR_OF.items() if b != "transfer_handling")
_BEHAVIOUR_VERBS = frozenset(("verified", "listened", "empathised", "empathized"))
_EVENT_WORDS = _HOLD_WORDS | _TRANSFER_WORDS
_CONSIST_TRIGGERS = (_MOOD_WORDS | _PRAISE_WORDS | _HARSH_WORDS | _TRAJ_UP | _TRAJ_DOWN | _CHURN_CLAIM_WORDS
                     | _ROOT_TRIGGERS[3] | _BEHAVIOUR_CHECKED | _NO_COACHING[3] | _EVENT_WORDS
                     | frozenset(("csat", "sentiment", "score")))


def _int_label(value, lo: int, hi: int) -> int | None:
    try:
        v = int(float(value))
    except (TypeError, ValueError):
        return None
    return v if lo <= v <= hi and not isinstance(value, bool) else None


def _label_view(labels: dict | None) -> dict:
    """The labels a claim can be checked against, normalised; a key is absent when the label is
    missing or out of its space (imported data may carry only one label, or a malformed one)."""
    out: dict = {}
    if not labels:
        return out
    csat = _int_label(labels.get("csat"), 1, 5)
    if csat is not None:
        out["csat"] = csat
    qa = _int_label(labels.get("quality"), 0, 100)
    if qa is not None:
        out["quality"] = qa
    for key, space in (("churn", _tasks.CHURN_LEVELS), ("sentiment", _SENTIMENTS),
                       ("sentiment_trajectory", _TRAJECTORIES), ("root_cause", _tasks.ROOT_CAUSES)):
        v = labels.get(key)
        if isinstance(v, str) and v.strip().lower() in space:
            out[key] = v.strip().lower()
    coaching = labels.get("coaching")
    if isinstance(coaching, (list, tuple)):
        out["coaching"] = frozenset(str(c) for c in coaching)
    return out


def _negated(toks: list[str], j: int, start: int, window: int = 3) -> bool:
    """A negator among the few words before ``j`` ("not satisfied", "no sign of frustration",
    "far from happy")."""
    lo = max(start, j - window)
    if not _LIST_JOINERS.isdisjoint(toks[lo:j]):    # "no friction or frustration": the list shares it
        lo = max(start, j - 2 * window)
    return not _NEGATORS.isdisjoint(toks[lo:j]) or (
        j >= start + 2 and toks[j - 1] in ("from", "but") and toks[j - 2] in ("far", "anything"))


_LIST_JOINERS = frozenset(("or", "nor"))


# Words that may stand between a negator and the event it denies ("never placed the customer on
# hold", "no hold or transfer"); any other word ends the search ("without explanation and
# transferred" denies nothing).
_EVENT_SKIP = frozenset("""a an any the on put placed been be t was were being customer caller call them her him
    or nor hold holds transfer transfers""".split())


def _event_negated(toks: list[str], j: int, start: int) -> bool:
    k = j - 1
    while k >= max(start, j - 6):
        t = toks[k]
        if t in _NEGATORS:
            return True
        if t not in _EVENT_SKIP:
            return False
        k -= 1
    return False


def _hedged(toks: list[str], j: int, start: int, end: int | None = None) -> bool:
    """A hedge among the words before ``j`` ("may become frustrated", "should show empathy") or,
    given the clause's ``end``, a counterfactual anywhere in it ("an excellent agent would have
    offered a callback")."""
    if not _HEDGES.isdisjoint(toks[max(start, j - 6):j]):
        return True
    if end is not None and "have" in toks[start:end]:
        clause = toks[start:end]
        return any(clause[k] in _MODALS and clause[k + 1] == "have" for k in range(len(clause) - 1))
    return False


_MODALS = frozenset(("would", "could", "should", "might", "must"))


def _subject(toks: list[str], j: int, start: int, end: int, region: str) -> str | None:
    """Who a claim word at ``j`` is about: the nearest customer or agent word before it in its
    clause; without one, the step or part it sits in (Step 1: the customer; Step 2 and Key
    Strengths: the agent), else the first such word after it; None when nobody is named."""
    for k in range(j - 1, start - 1, -1):      # the subject usually comes first ("Dana was rude to the customer")
        t = toks[k]
        if t in _CUST_SUBJ:
            return "customer"
        if t in _AGENT_SUBJ:
            return "agent"
    if region == "step1":
        return "customer"
    if region in ("step2", "analysis:Key Strengths"):
        return "agent"
    for k in range(j + 1, end):                # "Frustrated by the wait, the customer..."
        t = toks[k]
        if t in _CUST_SUBJ:
            return "customer"
        if t in _AGENT_SUBJ:
            return "agent"
    return None


def _first_subject(toks: list[str], start: int, j: int) -> str | None:
    """The first person named in the clause before ``j`` (its grammatical subject, as a rule):
    "customer" words, or the agent (agent words, he, she); None when nobody is."""
    for k in range(start, j):
        t = toks[k]
        if t in _CUST_SUBJ:
            return "customer"
        if t in _AGENT_SUBJ or t in ("he", "she"):
            return "agent"
    return None


def _phase(toks: list[str], j: int, start: int, end: int, idx: int, prev_start: bool) -> str | None:
    """``start``, ``end`` or None (the whole call): the nearest time word in the clause; a
    clause after one about the start ("frustrated at first, but relieved") is about the end."""
    best, dist = None, 99
    for k in range(start, end):
        t = toks[k]
        ph = "start" if t in _START else "end" if t in _END else None
        if ph and abs(k - j) < dist:
            best, dist = ph, abs(k - j)
    if best is None and idx > 0 and prev_start:
        return "end"
    return best


def _mood_fault(p: float, phase: str | None, lv: dict, evidence: int) -> str | None:
    """Why a customer-mood claim of strength ``p`` about ``phase`` contradicts the labels (the
    rules follow the label definitions in docs/data.md: overall sentiment weighs the end mood
    double, so a negative call never ends pleased, a positive one never ends upset)."""
    if phase == "start":
        return None       # the opening mood is not labelled
    s, traj, csat = lv.get("sentiment"), lv.get("sentiment_trajectory"), lv.get("csat")
    # When CSAT and sentiment disagree (a resolved call can end pleased with a low CSAT), a
    # claim contradicts only the label it cannot be reconciled with.
    why = []
    if p >= 1:
        if csat is not None and csat <= 2 and s != "positive":
            why.append(f"CSAT is {csat}/5")
        if s == "negative":
            why.append("the customer's sentiment is negative")
        if s == "neutral" and p >= 2:
            why.append("the customer's sentiment is neutral")
        if s is None and csat is None and evidence < 0:
            why.append("the customer's last words in the transcript are negative")
    elif p <= -1:
        if phase == "end" and csat is not None and csat >= 4 and s != "negative":
            why.append(f"CSAT is {csat}/5")
        if s == "positive" and (phase == "end" or traj in ("stable", "worsening")):
            why.append("the customer's sentiment is positive" + (f" and {traj}" if phase != "end" else ""))
        if s == "neutral" and p <= -2 and phase == "end":
            why.append("the customer's sentiment is neutral")
        if phase == "end" and s is None and csat is None and evidence > 0:
            why.append("the customer's last words in the transcript are positive")
    return " and ".join(why) or None


_CHURN_HEDGES = _HEDGES - {"risk", "risks", "chance", "likely", "unlikely"}
_EVENT_DET = frozenset("on the a one two another brief long short several lengthy cold warm first second".split())
_EVENT_NOUN_AFTER = frozenset("""times time etiquette handling queues queue policy process expectation
    expectations length duration music message reason reasons explanation request requests""".split())


def _consistency(a, lv: dict, tr: _Transcript | None, hits: list) -> list[dict]:
    """Sentences whose claims contradict the labels (or, without a label, the transcript): the
    checks below, in order, on each sentence of ``a`` (an ``Analysed`` chain) with a claim word
    (``hits``: its words among the faithfulness checks' trigger words)."""
    faults: list[dict] = []
    evidence = tr.mood() if tr is not None and "csat" not in lv and "sentiment" not in lv else 0
    mood_ok = "csat" in lv or "sentiment" in lv or evidence != 0
    traj = lv.get("sentiment_trajectory")
    traj_wrong = _TRAJ_DOWN if traj == "improving" else _TRAJ_UP if traj == "worsening" else None
    qa, churn, cause, coaching = lv.get("quality"), lv.get("churn"), lv.get("root_cause"), lv.get("coaching")
    agent_words = (_PRAISE_WORDS if qa < 60 else _HARSH_WORDS if qa >= 85 else None) if qa is not None else None
    kinds, toks_all, regions, texts, sets = a.kinds, a.toks, a.regions, a.texts, a.sets
    for i in compress(range(len(hits)), hits):
        hit = hits[i] & _CONSIST_TRIGGERS
        if not hit or kinds[i] in _UNCHECKED_KINDS:
            continue
        toks, region, text = toks_all[i], regions[i], texts[i]
        cl = _Clauses(toks, sets[i])
        claims_ok = not region.startswith(_CLAIM_REGIONS_SKIP)
        reasons: list[str] = []
        if claims_ok:
            # 1. the customer's mood, 2. the agent's performance
            reasons += _mood_reasons(toks, hit, cl, region, lv, evidence, mood_ok, traj_wrong)
            if agent_words is not None and not agent_words.isdisjoint(hit):
                reasons += _agent_reasons(toks, hit, cl, region, qa)
        # 3. churn risk, 4. root cause, 5. coaching areas (asserted anywhere)
        reasons += _label_claim_reasons(toks, hit, cl, churn, cause, coaching)
        if claims_ok:
            # 5. coaching behaviours, holds and transfers
            if coaching is not None and not _BEHAVIOUR_CHECKED.isdisjoint(hit):
                reasons += _behaviour_reasons(toks, hit, cl, coaching)
            if tr is not None and not _EVENT_WORDS.isdisjoint(hit):
                reasons += _event_reasons(toks, hit, cl, tr)
        # 6. a CSAT or QA figure stated in the body
        reasons += _figure_reasons(text, hit, sets[i], lv)
        for why in reasons:
            faults.append({"sentence": text, "region": region, "kind": "contradiction", "reason": why})
    return faults


def _mood_reasons(toks: list[str], hit: set, cl: _Clauses, region: str, lv: dict, evidence: int, mood_ok: bool,
                  traj_wrong: frozenset | None) -> list[str]:
    """The customer's mood against CSAT and sentiment (or the transcript's last words), and its
    trajectory."""
    reasons: list[str] = []
    if "sentiment" in hit and "sentiment" in lv:
        j = toks.index("sentiment")
        start, end, _ = cl.bounds(j)
        said = next((t for t in toks[j + 1:min(end, j + 5)] if t in _SENTIMENTS), None)
        if (said and said != lv["sentiment"] and not _hedged(toks, j, start) and not _negated(toks, j, start)
                and _START.isdisjoint(toks[start:end])):
            reasons.append(f"says the sentiment is {said}, but it is {lv['sentiment']}")
            mood_ok = False
    if mood_ok and not _MOOD_WORDS.isdisjoint(hit):
        why = _mood_word_reason(toks, hit, cl, region, lv, evidence)
        if why:
            reasons.append(why)
    if traj_wrong is not None and not traj_wrong.isdisjoint(hit):
        for t in hit & traj_wrong:
            j = toks.index(t)
            start, end, _ = cl.bounds(j)
            if (not _negated(toks, j, start) and not _hedged(toks, j, start)
                    and not _CUST_SUBJ.isdisjoint(toks[start:end])):
                reasons.append(f"says the customer's mood {t}, but the trajectory is {lv['sentiment_trajectory']}")
                break
    return reasons


def _mood_word_reason(toks: list[str], hit: set, cl: _Clauses, region: str, lv: dict, evidence: int) -> str | None:
    """The first mood word about the customer that contradicts the labels, as a reason."""
    start_seen = False
    for j in sorted(map(toks.index, hit & _MOOD_WORDS)):
        t = toks[j]
        start, end, idx = cl.bounds(j)
        if _hedged(toks, j, start, end) or _subject(toks, j, start, end, region) != "customer":
            continue
        if t in _AMBIGUOUS_MOODS and not _predicative(toks, j, start):
            continue    # "a positive outcome", "negative impact": not the customer's mood
        p = _MOOD[t]
        if _negated(toks, j, start):
            if p <= 0:
                continue            # "no sign of frustration": no claim
            p = -1.0                # "not satisfied": negative
        ph = _phase(toks, j, start, end, idx, start_seen)
        start_seen = start_seen or ph == "start"
        why = _mood_fault(p, ph, lv, evidence)
        if why:
            word = f"not {t}" if _MOOD[t] > 0 > p else t
            return f"says the customer was {word}{' at the end' if ph == 'end' else ''}, but {why}"
    return None


def _agent_reasons(toks: list[str], hit: set, cl: _Clauses, region: str, qa: int) -> list[str]:
    """The agent's performance against the QA score band: praise below 60, harsh words from 85."""
    single, phrases = (_PRAISE, _PRAISE_OVERALL) if qa < 60 else (_HARSH, _HARSH_PHRASES)
    found = [(toks.index(t), t) for t in hit & single]
    if not phrases[3].isdisjoint(hit):
        found += [(end - 1, canon) for end, canon in _multi(toks, hit, phrases)]
    for j, t in sorted(found):
        start, end, _ = cl.bounds(j)
        if (not _negated(toks, j, start) and not _hedged(toks, j, start, end)
                and _subject(toks, j, start, end, region) == "agent"):
            return [f"praises the agent ('{t}'), but the QA score is {qa}/100" if qa < 60
                    else f"calls the agent '{t}', but the QA score is {qa}/100"]
    return []


def _label_claim_reasons(toks: list[str], hit: set, cl: _Clauses, churn: str | None, cause: str | None,
                         coaching: frozenset | None) -> list[str]:
    """The churn risk, the root cause (the cause a sentence asserts, in another reason's words
    and none of the label's) and "no coaching needed", wherever they are stated."""
    reasons: list[str] = []
    if churn is not None and not _CHURN_CLAIM_WORDS.isdisjoint(hit):
        said = _churn_claim(toks, cl)
        if said and ((said[1] and said[0] == churn) or (not said[1] and {said[0], churn} == {"low", "high"})):
            reasons.append(f"says churn risk is {'not ' if said[1] else ''}{said[0]}, but it is {churn}")
    if cause is not None and not _ROOT_TRIGGERS[3].isdisjoint(hit):
        after = _multi(toks, hit, _ROOT_TRIGGERS)
        if after:
            j = min(end for end, _ in after)
            named = {_CAUSE_OF[w] for w in _CAUSE_ALL.intersection(toks[j:j + 12])}
            ok = _CAUSE_OK[cause]
            if named and named.isdisjoint(ok) and _HEDGES.isdisjoint(toks[max(0, j - 8):j]):
                other = ", ".join(sorted(_tasks.humanize(c) for c in named))
                reasons.append(f"gives the cause as {other}, but the root cause is {_tasks.humanize(cause)}")
    if coaching and not _NO_COACHING[3].isdisjoint(hit) and _multi(toks, hit, _NO_COACHING):
        reasons.append("says no coaching is needed, but the coaching areas are "
                       + ", ".join(sorted(_tasks.humanize(c) for c in coaching)))
    return reasons


def _behaviour_reasons(toks: list[str], hit: set, cl: _Clauses, coaching: frozenset) -> list[str]:
    """Credit for a behaviour that is a coaching area, or a skipped verification that is not."""
    for j in sorted(map(toks.index, hit & _BEHAVIOUR_CHECKED)):
        t = toks[j]
        b = _BEHAVIOUR_OF[t]
        start, end, _ = cl.bounds(j)
        if _hedged(toks, j, start) or _first_subject(toks, start, j) == "customer":
            continue    # "the customer did not verify their account" is not about the agent
        window = toks[max(start, j - 4):min(end, j + 3)]
        failed = not _NEGATORS.isdisjoint(toks[max(start, j - 4):j]) or not _SKIPPED.isdisjoint(window)
        if b in coaching and not failed and (t in _BEHAVIOUR_VERBS or not _BEHAVIOUR_PRAISE.isdisjoint(window)):
            if b == "de_escalation" and "de" not in toks[max(0, j - 1):j]:
                continue
            return [f"credits the agent with {_tasks.humanize(b)}, a coaching area of this call"]
        if b == "identity_verification" and failed and b not in coaching:
            return ["says verification was skipped, but identity verification is not a coaching "
                    "area of this call (it was done)"]
    return []


def _event_reasons(toks: list[str], hit: set, cl: _Clauses, tr: _Transcript) -> list[str]:
    """A hold or transfer described or denied against the transcript."""
    reasons: list[str] = []
    has_hold, maybe_hold, has_transfer, maybe_transfer = tr.events()
    for words, has, maybe, what in ((_HOLD_WORDS, has_hold, maybe_hold, "hold"),
                                    (_TRANSFER_WORDS, has_transfer, maybe_transfer, "transfer")):
        if words.isdisjoint(hit):
            continue
        j = min(map(toks.index, hit & words))
        start, end, _ = cl.bounds(j)
        if _hedged(toks, j, start) or (j + 1 < len(toks) and toks[j + 1] in _EVENT_NOUN_AFTER):
            continue
        if _event_negated(toks, j, start):
            if has:
                reasons.append(f"says there was no {what}, but the transcript has one")
        elif not maybe and (toks[j] in ("held", "transferred") or (j and toks[j - 1] in _EVENT_DET)):
            reasons.append(f"describes a {what}, but the transcript has none")
    return reasons


def _figure_reasons(text: str, hit: set, ts: set, lv: dict) -> list[str]:
    """A CSAT or QA figure stated in the body against the label."""
    reasons: list[str] = []
    if "csat" in hit and "csat" in lv:
        m = _CSAT_NUM_RE.search(text)
        if m and int(m.group(1)) != lv["csat"]:
            reasons.append(f"states CSAT {m.group(1)}, but it is {lv['csat']}/5")
    if "score" in hit and "quality" in lv and not ts.isdisjoint(("qa", "quality")):
        m = _QA_NUM_RE.search(text)
        if m and abs(int(m.group(1)) - lv["quality"]) > 10:
            reasons.append(f"states a QA score of {m.group(1)}, but it is {lv['quality']}/100")
    return reasons


class _Clauses:
    """A sentence's clauses: it breaks at contrast and sequence words (but, although, then...);
    most sentences have none, and are one clause."""

    __slots__ = ("breaks", "n", "toks")

    def __init__(self, toks: list[str], ts: set):
        self.n = len(toks)
        self.toks = toks if not _CLAUSE.isdisjoint(ts) else None
        self.breaks = None   # found on first use: most sentences need no clause at all

    def bounds(self, j: int) -> tuple[int, int, int]:
        """(start, end, index) of the clause holding token ``j``."""
        if self.toks is None:
            return 0, self.n, 0
        if self.breaks is None:
            self.breaks = [k for k, t in enumerate(self.toks) if t in _CLAUSE]
        idx = bisect_left(self.breaks, j)
        start = self.breaks[idx - 1] + 1 if idx else 0
        end = self.breaks[idx] if idx < len(self.breaks) else self.n
        return start, end, idx


def _churn_claim(toks: list[str], cl: "_Clauses") -> tuple[str, bool] | None:
    """(level, negated) of a churn-risk level the sentence asserts ("churn risk is high", "a low
    risk of leaving", "unlikely to cancel"), or None; hedged claims ("could be high") are none."""
    n = len(toks)
    ts = set(toks)
    for j in sorted(map(toks.index, ts & _CHURN_CLAIM_WORDS)):
        t = toks[j]
        level = "low" if t in _CHURN_LOW else "high" if t in _CHURN_HIGH else "medium" if t in _CHURN_MEDIUM else None
        if level is None:       # "likely to leave", "unlikely to churn"
            if j > 1 and toks[j - 1] == "to" and toks[j - 2] in ("likely", "unlikely"):
                start = cl.bounds(j - 2)[0]
                neg = _negated(toks, j - 2, start)
                if _CHURN_HEDGES.isdisjoint(toks[max(start, j - 8):j - 2]):
                    return ("low" if (toks[j - 2] == "unlikely") != neg else "high"), False
            continue
        start, end, _ = cl.bounds(j)
        nxt = toks[j + 1] if j + 1 < n else ""
        claim = nxt == "churn" or (nxt == "risk" and not _CHURN_ANCHORS.isdisjoint(toks[j + 2:j + 5]))
        if not claim:
            k = j - 1
            while k >= start and toks[k] in _CHURN_LINK:
                k -= 1
            claim = k >= start and toks[k] in ("risk", "churn") and (
                toks[k] == "churn" or not _CHURN_ANCHORS.isdisjoint(toks[max(start, k - 3):k + 4]))
        if not claim or not _CHURN_HEDGES.isdisjoint(toks[max(start, j - 6):j]):
            continue
        return level, not _NEGATORS.isdisjoint(toks[max(start, j - 3):j])
    return None
