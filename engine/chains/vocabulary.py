"""The words the quality scorer reads: its tokeniser, its phrase vocabularies and numbers.

``_tokens`` splits text into lower-case words; ``_vocab`` builds a phrase vocabulary that
``_find`` and ``_multi`` match on token lists with set operations; ``_number_key`` writes a
number as the grounding check compares it. Below them are the vocabularies of the form
criteria (engine/chains/criteria.py, counted by engine/chains/analysis.py): stop words, header
words, filler, causal, action and business-impact words. The faithfulness checks keep their own
vocabularies (engine/chains/consistency.py, engine/chains/grounding.py).
"""

from __future__ import annotations

import re

from engine.chains.chain import ANALYSIS_PARTS, INSIGHT_PARTS, STEPS

_STOP = frozenset(
    """a about above after again against all also am an and any are as at be been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves because since due
    therefore thus hence consequently result led leads leading resulted resulting results caused
    causing owing given means driven contributed contributing stems stemming may might must
    shall cannot still yet even though although however whether either neither per via upon
    within without across among around toward towards onto s t d ll re ve m don didn doesn isn
    wasn weren aren haven hasn hadn won wouldn shouldn couldn ok okay""".split()
)
_ALPHA = "abcdefghijklmnopqrstuvwxyz"
_SHORT = frozenset(a + b for a in _ALPHA for b in _ALPHA) | frozenset(_ALPHA)
_STOP_SHORT = _STOP | _SHORT          # content words are tokens of 3+ characters outside _STOP
_LOREM = frozenset(
    """lorem ipsum dolor amet consectetur adipiscing elit eiusmod tempor incididunt labore dolore
    aliqua veniam nostrud exercitation ullamco laboris nisi aliquip commodo consequat""".split()
)
# Words of the headers themselves: repeating a title is not content.
_HEADER_WORDS = frozenset(
    w
    for title in STEPS + ANALYSIS_PARTS + INSIGHT_PARTS + ("step", "thinking", "insights", "final answer")
    for w in re.findall(r"[a-z]+", title.lower())
)
# Objects too vague to make an action specific ("improve overall performance").
_GENERIC = frozenset(
    """things thing stuff everything something anything overall general better best good great
    improvement improvements improve performance quality experience process processes issues
    issue areas area aspects aspect matters necessary needed appropriate relevant accordingly
    practices practice various etc efforts effort steps step measures measure ways way level
    levels results outcomes going forward future work""".split()
)
# Transcript words that ground nothing: speakers and courtesy.
_TRANSCRIPT_GENERIC = frozenset(
    """agent customer call calling thank thanks please hello help today yes yeah okay sure right
    sorry welcome name like just know want need going""".split()
)

# Tokenising by bytes.translate + str.split is several times faster than a regex. Text is first
# encoded to ASCII (anything else becomes "?"), so the 256-byte table of bytes.translate applies:
# letters stay (upper case lowered), newlines stay (sentence breaks), all else is a space. Tokens
# are words only: numbers are not content, and sentences that differ only in their numbers
# ("Point 1 ...", "Point 2 ...") count as duplicates.
# (Non-ASCII letters thus split words: "café" gives "caf"; str.translate with a dict would keep
# them but is fifty times slower on any text that is not pure ASCII. Two non-ASCII letters lower
# to ASCII ones, "İ" and the Kelvin sign "K": text holding them is lower-cased first, as str.lower
# does, before encoding.)
_MARK = "\x1e"   # the ASCII record separator reads as a space in section bodies
_TOKEN_TABLE = bytes(
    ord(chr(b).lower()) if chr(b).isascii() and chr(b).isalpha() else 10 if b == 10 else 32 for b in range(256)
)
_LOWERS_TO_ASCII = ("\u0130", "\u212a")


def _tokens(text: str) -> list[str]:
    """Lower-case word tokens: ``_tokens("Don't re-route!") == ['don', 't', 're', 'route']``."""
    return text.lower().encode("ascii", "replace").translate(_TOKEN_TABLE).decode("ascii").split()


# Words too frequent to anchor a multi-word phrase search on.
_COMMON = frozenset(
    """the a an to of in on at by for from as so that this which is it and be was were are will
    call calls contact contacts customer agent time cost service level first value volume risk""".split()
)


def _vocab(spec: str) -> tuple[dict, frozenset, dict, frozenset]:
    """Phrase vocabulary from ``"phrase=canonical, phrase, ..."``, matched on token lists with set
    operations, not regexes, for speed: (single words, their keys, multi-word phrases keyed by
    an anchor word - the longest uncommon one - and those anchors). A phrase is kept as
    (" word word ", its number of words, canonical) for a substring search in the sentence's
    words joined by spaces."""
    single: dict[str, str] = {}
    multi: dict[str, list[tuple[str, int, str]]] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        phrase, _, canon = item.partition("=")
        words = _tokens(phrase)
        canon = canon.strip() or " ".join(words)
        if len(words) == 1:
            single[words[0]] = canon
            continue
        rare = [w for w in words if w not in _COMMON]
        anchor = max(rare, key=len) if rare else words[-1]
        multi.setdefault(anchor, []).append((f" {' '.join(words)} ", len(words), canon))
    return single, frozenset(single), multi, frozenset(multi)


def _multi(toks: list[str], ts: set, vocab: tuple) -> list[tuple[int, str]]:
    """(index just after the phrase, canonical) for each multi-word phrase found, at its first
    occurrence."""
    hits = vocab[3] & ts
    if not hits:
        return []
    line = f" {' '.join(toks)} "
    out = []
    for anchor in hits:
        for needle, size, canon in vocab[2][anchor]:
            pos = line.find(needle)
            if pos != -1:   # the words before it: one space each
                out.append((line.count(" ", 0, pos) + size, canon))
    return out


def _find(toks: list[str], ts: set, vocab: tuple) -> list[tuple[int, str]]:
    """(index just after the phrase, canonical) for each vocabulary word or phrase in ``toks`` (at
    its first occurrence), in no particular order.

    >>> sorted(_find(_tokens("Repeat calls raise cost"), set(_tokens("Repeat calls raise cost")), _IMPACT))
    [(2, 'repeat contact'), (4, 'cost')]
    """
    single, skeys, _, mkeys = vocab
    out = [(toks.index(t) + 1, single[t]) for t in skeys.intersection(ts)] if not skeys.isdisjoint(ts) else []
    if not mkeys.isdisjoint(ts):
        out.extend(_multi(toks, ts, vocab))
    return out


_CAUSAL = _vocab(
    "because, since, therefore, thus, hence, consequently, caused, causing, due to, owing to, "
    "as a result, as a consequence, led to, leads to, leading to, resulted in, "
    "resulting in, results in, result of, given that, which means, this means, driven by, "
    "contributed to, contributing to, stems from, stem from, stemming from, that is why, "
    "which is why, which explains, this explains"
)
_ACTIONS = _vocab(
    "coach, train, retrain, implement, introduce, offer, provide, follow, review, escalate, update, "
    "schedule, create, add, set up, establish, monitor, track, audit, automate, require, reduce, "
    "shorten, extend, send, call back, contact, reach out, refund, credit, waive, apply, enable, "
    "enforce, fix, correct, investigate, route, prioritise, prioritize, assign, standardise, "
    "standardize, document, publish, launch, pilot, test, measure, share, recognise, recognize, "
    "reward, praise, roll out, deploy, integrate, simplify, clarify, script, revise, rewrite, "
    "adjust, compensate, empower, authorise, authorize, flag, verify, confirm, notify, explain, "
    "acknowledge, apologise, apologize, practise, practice, role play, roleplay, shadow, calibrate, "
    "replace, redesign, invest, expand, prevent, limit, streamline, consolidate, ensure, include, "
    "allow, give, ask, improve, build, design, refresh, retire, alert, analyse, analyze, segment, "
    "survey, benchmark, cut, lower, raise, increase, hire, switch, migrate, remind, check, "
    "sign off, approve, replay, listen, walk through, prepare, identify, restore, retain, save, "
    "recover, resolve, handle, reinforce, mentor, use, publish, "
    # modal recommendations: the object is what follows, verb included
    "should, must, recommend, recommended, recommends, consider, need to, needs to, ought to, "
    "plan to"
)
_IMPACT = _vocab(
    "cost, costs=cost, cost to serve, revenue, retention, retain=retention, churn, attrition=churn, "
    "csat, nps, net promoter=nps, handle time=aht, aht, first contact resolution=fcr, "
    "first call resolution=fcr, fcr, escalation cost, escalation costs=escalation cost, "
    "escalation, escalations=escalation, lifetime value, ltv=lifetime value, clv=lifetime value, "
    "complaint volume, complaints=complaint volume, complaint=complaint volume, "
    "repeat contact, repeat contacts=repeat contact, repeat call=repeat contact, "
    "repeat calls=repeat contact, call volume, contact volume=call volume, refund, refunds=refund, "
    "credit, credits=credit, margin, margins=margin, profit, profitability=profit, loyalty, "
    "cancellation, cancellations=cancellation, cancelation=cancellation, "
    "cancelations=cancellation, upsell, cross sell=upsell, roi, productivity, sla, "
    "service level=sla, reputation, brand, chargeback, chargebacks=chargeback, "
    "acquisition cost, recurring revenue=revenue, mrr=revenue, arr=revenue, budget, "
    "compliance risk, regulatory fine, regulatory fines=regulatory fine, wallet share"
)
_DIRECTION = frozenset(
    """increase increases increased increasing decrease decreases decreased decreasing reduce
    reduces reduced reducing reduction raise raises raised raising lower lowers lowered lowering
    higher high low lowest highest risk risks risky lose loses losing lost loss losses drive
    drives driving drove driven save saves saved saving savings protect protects protected
    protecting likely unlikely affect affects affected affecting hurt hurts hurting damage damages
    damaged damaging grow grows growing growth boost boosts boosted prevent prevents prevented
    avoid avoids avoided erode erodes eroded eroding erosion inflate inflates inflated inflating
    add adds added adding cut cuts cutting drop drops dropped dropping improve improves improved
    improving worsen worsens worsened worsening lift lifts lifted spike spikes spiked rise rises
    rising rose fall falls falling fell expensive waste wasted wasting recover recovers recovered
    jeopardise jeopardize jeopardises jeopardizes threat threatens threatening threatened more
    less fewer extra additional double doubled triple tripled halve halved""".split()
)

# Every vocabulary word a criterion looks for. Each sentence is intersected with this set once;
# the criteria then test that small intersection (its "signal words") instead of the sentence.
_SIGNAL = frozenset().union(
    _LOREM, _CAUSAL[1], _CAUSAL[3], _ACTIONS[1], _ACTIONS[3], _IMPACT[1], _IMPACT[3], _DIRECTION
)
# Impact terms are listed by weight, then in the order of the vocabulary.
_IMPACT_RANK = {
    canon: i for i, canon in enumerate(dict.fromkeys(
        [*_IMPACT[0].values(), *(canon for entries in _IMPACT[2].values() for _, _, canon in entries)]))
}
_ACTION_WORDS = _ACTIONS[1] | _ACTIONS[3]
_IMPACT_WORDS = _IMPACT[1] | _IMPACT[3]

_NUM_RE = re.compile(r"\d[\d,]*(?:\.\d+)?%?")   # a number in text: "$1,064.50", "20%", "7"


def _number_key(raw: str) -> str:
    """``"$1,064.50"`` -> ``"1064.5"``; ``"20%"`` -> ``"20"``; ``"7.00"`` -> ``"7"``."""
    s = raw.strip("$\u00a3\u20ac%").replace(",", "")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s.lstrip("0") or "0"
