"""Faithfulness, part 2: specifics of the chain that neither the transcript nor the labels support.

Specifics are numbers and amounts, names of people and companies, dates, channels, products and
payment methods; each must appear in the transcript or the labels. <insights> holds proposals
("cap refunds under $100", "offer a chatbot"), so there only names and dates count.

``_grounding`` reads the sentences ``analyse`` (engine/chains/analysis.py) classified and
returns one fault per distinct unsupported specific; ``criterion_grounding``
(engine/chains/criteria.py) turns them into the deduction. Two plain regex passes over the body
(numbers, capitalised names) and a word-set intersection per sentence.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from itertools import accumulate, compress, count
from operator import add

from engine.chains.consistency import _CONSIST_TRIGGERS, _UNCHECKED_KINDS
from engine.chains.transcript import _Transcript
from engine.chains.vocabulary import _HEADER_WORDS, _NUM_RE, _STOP_SHORT, _find, _number_key, _tokens, _vocab

# Grounding vocabulary: channels, payment methods, offers and products named in a chain, each
# canonical name supported by any of its variants in the transcript.
_CHANNELS = _vocab(
    "chatbot, chat bot=chatbot, chatbots=chatbot, bot=chatbot, live chat=chat, web chat=chat, webchat=chat, "
    "chat, email, emails=email, emailed=email, e mail=email, sms=text message, text message, texted=text message, "
    "app, apps=app, website, web site=website, portal, social media, twitter, facebook, whatsapp, instagram, "
    "voicemail, cash, cheque, paypal, gift card, voucher, vouchers=voucher, coupon, promo code, discount code, "
    "free trial, loyalty program, loyalty programme=loyalty program, loyalty points, premium plan, "
    "warranty, router, modem, sim card=sim, sim, headphones, laptop, tablet, smartwatch"
)
_CHANNEL_VARIANTS: dict[str, list[tuple[str, ...]]] = {}
for _spec in (
    "chatbot: chatbot chatbots bot; chat: chat webchat; email: email emails emailed mail; "
    "text message: sms text texted texts; app: app apps; website: website site; portal: portal; "
    "social media: social; twitter: twitter; facebook: facebook; whatsapp: whatsapp; instagram: instagram; "
    "voicemail: voicemail; cash: cash; cheque: cheque check; paypal: paypal; gift card: gift; "
    "voucher: voucher vouchers; coupon: coupon coupons; promo code: promo; discount code: discount; "
    "free trial: trial; loyalty program: loyalty; loyalty points: loyalty points; "
    "premium plan: premium; warranty: warranty; router: router; modem: modem; sim: sim; "
    "headphones: headphones; laptop: laptop; tablet: tablet; smartwatch: smartwatch watch"
).split(";"):
    _canon, _, _variants = _spec.partition(":")
    _CHANNEL_VARIANTS[_canon.strip()] = [tuple(v.split("+")) for v in _variants.split()]
_WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())
_REL_DATES = frozenset("yesterday tomorrow tonight weekend".split())
_MONTHS = frozenset("""january february march april june july august september october november december""".split())
_NUMBER_WORDS = {w: str(n) for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "hundred": "100"})
_UNITS = frozenset("""minute minutes hour hours day days week weeks month months year years dollars dollar
    pounds pound euros euro percent""".split())
_NUMBER_UNIT = frozenset(_NUMBER_WORDS) - {"zero", "one"}   # "one hold" is a count, not a specific
# Capitalised words a chain may use without naming anyone: metrics, teams, roles, days-of-week
# handled as dates, words models capitalise at will.
_CAPS_OK = frozenset("""csat qa nps aht fcr sla roi kpi kpis crm ivr faq vip ceo uk us usa eu
    step steps customer agent agents caller client supervisor manager team teams support billing
    technical quality final answer analysis thinking insights key critical patterns trends immediate
    process business strategic metrics strengths issues coaching improvements actions root cause
    sentiment performance evaluation interaction assessment impact overall however therefore also
    additionally furthermore moreover overall note first second third next finally then this that
    these the a an in on at for of and or but if because since while when after before during i
    mr mrs ms dr sir madam ok okay yes no thank thanks hello hi please sorry assurance service services
    experience satisfaction score scores rubric management center centre contact department policy
    product products account accounts company resolution retention churn report begin end transcript""".split())
_NAME_SUFFIXES = ("ly", "ed", "ing", "tion", "sion", "ment", "ness", "ous", "ive", "ful", "able", "ible",
                  "ity", "ance", "ence", "ism", "ist", "less", "ship", "ize", "ise", "ical", "ial")
_LOWER_WORD_RE = re.compile(r"(?<![A-Za-z])[a-z]+")
_DATE_WORDS = _WEEKDAYS | _REL_DATES
_GROUND_TRIGGERS = _DATE_WORDS | _NUMBER_UNIT | _CHANNELS[1] | _CHANNELS[3]
_FAITH_TRIGGERS = _CONSIST_TRIGGERS | _GROUND_TRIGGERS
# The words that make a sentence a claim these checks read (public: a teacher or a test can keep
# neutral text free of them).
CLAIM_WORDS = _FAITH_TRIGGERS
_CAP_RE = re.compile(r" [A-Z][A-Za-z'\u2019]+(?:[ \-][A-Z][A-Za-z0-9'\u2019]*)*")
_MID_SENTENCE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789,;)")
_NUMBER_NAMES = {v: k for k, v in _NUMBER_WORDS.items()}


def _grounding(a, tr: _Transcript, label_words: frozenset, label_numbers: frozenset,
               hits: list) -> tuple[list[dict], int]:
    """Specifics not supported by the transcript or labels, one fault per distinct specific, and
    how many specifics were checked, in the sentences of ``a`` (an ``Analysed`` chain; ``hits``:
    each sentence's words among the faithfulness checks' trigger words)."""
    faults: list[dict] = []
    seen: set[str] = set()
    texts = a.texts

    def fault(i: int, key: str, reason: str) -> None:
        if key not in seen:
            seen.add(key)
            faults.append({"sentence": texts[i], "region": a.regions[i], "kind": "invented", "reason": reason})

    joined = "\n".join(texts)
    ends = list(map(add, accumulate(map(len, texts)), count()))   # each line's end offset in ``joined``
    checked = _check_numbers(a, tr, label_numbers, joined, ends, fault)
    checked += _check_names(a, tr.words, label_words, joined, ends, fault)
    checked += _check_terms(a, tr, label_numbers, hits, fault)
    return faults, checked


def _check_numbers(a, tr: _Transcript, label_numbers: frozenset, joined: str, ends: list[int], fault) -> int:
    """Numbers and amounts: ``fault`` for each unsupported one; how many were checked."""
    # Two plain regexes: one with an alternation and look-behinds costs several times more; the
    # character before a match is tested here instead.
    # Speed: a supported specific (most of them) is counted and left before any other test.
    kinds, regions, words = a.kinds, a.regions, tr.words
    checked = 0
    numbers = None   # the transcript's numbers, read at the first number of the chain
    for m in _NUM_RE.finditer(joined):
        pos = m.start()
        prev = joined[pos - 1:pos]
        if prev and (prev.isalnum() or prev in "./"):
            continue    # "B2B", "v2", ".5", "2/5"
        num = m.group()
        key = _number_key(num)
        if numbers is None:
            numbers = tr.numbers()
        if key in numbers or key in label_numbers or _NUMBER_NAMES.get(key, "\0") in words:
            checked += 1
            continue
        i = bisect_left(ends, pos)
        if kinds[i] in _UNCHECKED_KINDS or regions[i].startswith("insights"):
            continue
        if joined[max(0, pos - 7):pos].lower().endswith(("out of ", "step ")):
            continue
        after = joined[m.end():m.end() + 1]
        if after in (".", ")") and (pos == 0 or joined[max(0, pos - 2):pos] in (": ", "; ") or prev == "\n"):
            continue    # a list marker: "did well by: 1.", "; 2."
        checked += 1
        shown = (prev if prev in "$\u00a3\u20ac" else "") + num.rstrip(".,")
        fault(i, "n:" + key, f"'{shown}' is not in the transcript or the labels")
    return checked


def _check_names(a, words: frozenset, label_words: frozenset, joined: str, ends: list[int], fault) -> int:
    """Names of people, companies, products and months (capitalised words inside a sentence):
    ``fault`` for each unsupported one; how many were checked."""
    kinds = a.kinds
    checked = 0
    lower_words: set | None = None
    for m in _CAP_RE.finditer(joined):
        pos = m.start()
        if pos == 0 or joined[pos - 1] not in _MID_SENTENCE:
            continue
        cap = m.group()[1:]
        low = cap.lower()
        if (low in words and low not in _WEEKDAYS) or low in _CAPS_OK:
            checked += 1
            continue    # one word the transcript has ("Priya") or a known one ("CSAT")
        parts = _tokens(cap)
        if not parts or parts[0] in _WEEKDAYS:
            continue    # weekdays are counted with the dates below
        i = bisect_left(ends, pos + 1)
        if kinds[i] in _UNCHECKED_KINDS:
            continue
        checked += 1
        # A lone capitalised word shaped like an ordinary one ("Unresolved", "Management") is
        # not taken for a name; in a run of capitalised words ("Unlimited Plus") every word counts.
        unknown = [w for w in parts if w not in words and w not in label_words and w not in _CAPS_OK
                   and w not in _HEADER_WORDS and w not in _STOP_SHORT and w not in _FAITH_TRIGGERS
                   and (len(parts) > 1 or not w.endswith(_NAME_SUFFIXES))]
        if not unknown:
            continue
        if lower_words is None:
            lower_words = set(_LOWER_WORD_RE.findall(joined))
        if all(w in lower_words for w in unknown):
            continue    # common words written with capitals ("the Refund", "Poor Service")
        if all(len(w) >= 3 and any(h.startswith(w) for h in _HEADER_WORDS) for w in unknown):
            continue    # a header cut off by the token budget ("Process Improv")
        what = "date" if parts[0] in _MONTHS else "name"
        fault(i, "c:" + " ".join(parts), f"the {what} '{cap}' is not in the transcript")
    return checked


def _check_terms(a, tr: _Transcript, label_numbers: frozenset, hits: list, fault) -> int:
    """Channels, products, payment methods, weekdays, relative dates and spelled-out durations:
    ``fault`` for each unsupported one; how many were checked."""
    kinds, regions, words = a.kinds, a.regions, tr.words
    checked = 0
    for i in compress(range(len(hits)), hits):
        hit = hits[i] & _GROUND_TRIGGERS
        if not hit or kinds[i] in _UNCHECKED_KINDS:
            continue
        for t in hit & _DATE_WORDS:
            checked += 1
            if t not in words:
                fault(i, "d:" + t, f"the date '{t.capitalize()}' is not in the transcript")
        if regions[i].startswith("insights"):
            continue
        toks = a.toks[i]
        if not _NUMBER_UNIT.isdisjoint(hit):
            for j, t in enumerate(toks[:-1]):
                if t in _NUMBER_UNIT and toks[j + 1] in _UNITS:
                    checked += 1
                    n = _NUMBER_WORDS[t]
                    if t not in words and n not in tr.numbers() and n not in label_numbers:
                        fault(i, "n:" + n, f"'{t} {toks[j + 1]}' is not in the transcript")
        if not (_CHANNELS[1].isdisjoint(hit) and _CHANNELS[3].isdisjoint(hit)):
            for _, canon in _find(toks, hit, _CHANNELS):
                checked += 1
                if not any(all(w in words for w in variant) for variant in _CHANNEL_VARIANTS.get(canon, [(canon,)])):
                    fault(i, "p:" + canon, f"mentions {canon}, which the transcript never does")
    return checked
