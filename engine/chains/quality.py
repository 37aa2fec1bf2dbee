"""The reasoning-chain quality scorer: 0-100, one pure function per criterion.

``score_chain(text, task, labels, transcript)`` returns the score, every criterion's points with
a one-sentence reason for reviewers, and whether the three sections are all there. Chains below
``THRESHOLD`` are retried and then flagged; a test generation must reach ``GATE_THRESHOLD``.

Weights (``WEIGHTS``, summing to 100) follow the plan's list, plus agreement with the label:

=================  ====  ==========================================================================
sections            20   the three tags opened, closed, in order; ``Final answer:``; the 8 part headers
length               5   >= 500 characters of substantive text (headers, tags, junk not counted)
steps               20   the five steps in order, each with a body of real content
reasoning           15   distinct causal sentences (because / due to / therefore ...) with content
actionable          15   specific actions (verb + concrete object) in each insight part
business_impact     10   distinct business-impact terms in a meaningful sentence, mainly Step 5
label_agreement     15   the final answer's label agrees with the reference
consistency          0   deduction: statements that contradict the labels (or the transcript)
grounding            0   deduction: specifics (amounts, names, dates, products...) nobody supports
=================  ====  ==========================================================================

Faithfulness (consistency, grounding). Form cannot tell a faithful chain from a fluent one that
contradicts the call or invents facts, so two criteria read what the sentences *say* and deduct
from the form score: a chain that contradicts its labels is capped at ``CONTRADICTION_CAP`` (55)
whatever its form; one with ``INVENTED_LIMIT`` (2) or more unsupported specifics is capped at
``INVENTED_CAP`` (65); a single unsupported specific costs ``INVENTED_POINTS``. A faithful chain
loses nothing. Each deduction lists the sentences at fault (``faults``: sentence, reason, kind
contradiction | invented, region) for the Review page; ``reasons`` turns a breakdown into the
review list's categories. The checks, their vocabularies and the negation and hedging rules are
described where they are defined (section "Faithfulness" below). An optional judge model
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
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from functools import lru_cache, reduce
from itertools import accumulate, chain, compress, count, repeat
from operator import add, and_, itemgetter, not_, or_, sub

from engine.data import tasks as _tasks
from engine.data.example import ChatMLError, read_example
from engine.chains.chain import ANALYSIS_PARTS, INSIGHT_PARTS, SECTION_PARTS, SECTIONS, STEPS, parse_chain

THRESHOLD = 70
GATE_THRESHOLD = 75

WEIGHTS = {
    "sections": 20.0,
    "length": 5.0,
    "steps": 20.0,
    "reasoning": 15.0,
    "actionable": 15.0,
    "business_impact": 10.0,
    "label_agreement": 15.0,
    # Faithfulness: deductions only (``max`` 0, points <= 0), so a faithful chain keeps its score.
    "consistency": 0.0,
    "grounding": 0.0,
}
CRITERIA = tuple(WEIGHTS)
FORM_CRITERIA = tuple(k for k, v in WEIGHTS.items() if v > 0)
FAITH_CRITERIA = ("consistency", "grounding")
# The optional judge model's rating (engine/chains/judge.py) joins a breakdown as one more deduction.
JUDGE_CRITERION = "judge"
DEDUCTIONS = FAITH_CRITERIA + (JUDGE_CRITERION,)

# A chain whose body contradicts its labels never passes: its score is capped at 55 (50, 45...
# with each further contradiction), well below THRESHOLD whatever its form.
CONTRADICTION_CAP = 55.0
CONTRADICTION_POINTS = 10.0   # the least a contradiction costs
# Each unsupported specific costs 4 points; from INVENTED_LIMIT on, the score is capped at 65
# (minus 3 per further one). Why 2: one unsupported specific may be the check's own error (a
# paraphrased amount, a capitalised common word), so it costs points but cannot fail a chain
# alone; two independent ones are a pattern of invention, and such a chain goes to review.
INVENTED_POINTS = 4.0
INVENTED_LIMIT = 2
INVENTED_CAP = 65.0

MIN_CHARS = 500            # substantive characters for full length credit
STEP_WORDS = 12            # distinct non-header content words for a full step body
CAUSAL_TARGET = 5          # weighted causal sentences for full reasoning credit
CAUSAL_PER_UNIT = 3        # at most this many counted from one step or part
ACTION_TARGET = 6          # distinct action sentences for full count credit
IMPACT_TARGET = 4.0        # weighted distinct impact terms for full credit
NGRAM = 7                  # transcript copy detection: shared word 7-grams

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
_AMOUNT_RE = re.compile("[0-9%$\u00a3\u20ac]")   # a number, percentage or money amount
_COMMA_SO_RE = re.compile(", [sS][oO] ")        # ", so " in any case (ASCII letters only)


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

_PRIMARY_IMPACT = ("step5", "insights:Business Actions")

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
_STEP_REGIONS = {n: f"step{n}" for n in range(1, len(STEPS) + 1)}
_ACTION_WORDS = _ACTIONS[1] | _ACTIONS[3]
_IMPACT_WORDS = _IMPACT[1] | _IMPACT[3]
_PART_REGIONS = {name: {p: f"{name}:{p}" for p in parts} for name, parts in SECTION_PARTS.items()}


# --------------------------------------------------------------------------------------------
# Analysis shared by the criteria
#
# Speed: a call or a bytecode costs far more than the C work of a set operation on a sentence,
# so the analysis is a few whole-chain string operations (join, replace, encode, translate,
# split) and ``map`` over the sentences, not a Python loop over words; each criterion then reads
# the small per-sentence sets the analysis left.


class Sentence:
    """One sentence of the chain's body text, as ``analyse`` classified it.

    ``kind`` is ``ok`` (earns content credit), ``thin`` (fewer than 2 content words beyond the
    header words: "N/A", "See above."), ``junk`` (under half distinct words, lorem ipsum, or 8+
    words with almost no function words: keyword salad), ``copy`` (mostly 7-word sequences of
    the transcript) or ``dup`` (the same words as an earlier sentence). ``text`` is the sentence
    as written, ``toks`` its lower-case words, ``ts`` their set, ``content`` the words of 3+
    letters that are not function words, ``specific`` the content words that are not header
    words either.
    """

    __slots__ = ("region", "text", "toks", "ts", "content", "specific", "kind")

    def __init__(self, region: str, text: str, toks: list[str], ts: set, content: set, specific: set, kind: str):
        self.region, self.text, self.toks, self.ts = region, text, toks, ts
        self.content, self.specific, self.kind = content, specific, kind


class Analysed:
    """A chain parsed and split into classified sentences; the input of every criterion.

    Sentences are kept as parallel lists, in order (``regions``, ``texts``, ``toks``, ``sets``,
    ``contents``, ``specifics``, ``signals``: the sentence's words in ``_SIGNAL`` or in the
    transcript, ``kinds``);
    ``sentences`` builds ``Sentence`` objects from them on demand. From the sentences that earn
    content credit (kind ``ok``) ``analyse`` also gathers what the criteria count, in one pass:
    ``ok_chars`` (their length), ``step_words`` (step region: distinct specific words),
    ``causal`` (causal sentences, those grounded, their weight), ``actions`` (action sentences
    in <insights>, those outside any part, the parts with one) and ``impact`` (impact term: best
    weight, and whether one is stated with a direction or amount in Step 5 / Business Actions).
    """

    __slots__ = ("text", "parsed", "grounding", "copied_chars", "regions", "texts", "toks", "sets",
                 "contents", "specifics", "signals", "kinds", "ok_chars", "step_words", "causal",
                 "actions", "impact", "contradictions", "invented", "faith_checked")

    @property
    def sentences(self) -> list[Sentence]:
        return list(map(Sentence, self.regions, self.texts, self.toks, self.sets, self.contents,
                        self.specifics, self.kinds))



class _Transcript:
    """What scoring needs of a transcript: its words in order (``toks``), their set
    (``words``), for each word the bit set of its positions (``positions``: bit p set when it
    is the p-th word; the words' sets are disjoint and add up to ``all_positions``), the
    grounding vocabulary (``vocab``) and ``signal``: ``_SIGNAL`` and the words, the set each
    sentence is intersected with. For the faithfulness checks, computed on first use (most
    chains need few of them): the numbers it states (``numbers()``, as ``_number_key`` writes
    them), the customer's mood in their last words (``mood()``: -1, 0, 1) and whether it has a
    hold or a transfer (``events()``: has_hold, maybe_hold, has_transfer, maybe_transfer; has:
    named, maybe: named or possibly meant, "hang on", "bring in")."""

    __slots__ = ("toks", "words", "positions", "all_positions", "vocab", "signal", "text", "_numbers", "_mood",
                 "_events")

    def __init__(self, transcript: str):
        self.text = transcript
        self._numbers = self._mood = self._events = None
        self.toks = toks = _tokens(transcript)
        self.words = words = frozenset(toks)
        self.positions = positions = dict.fromkeys(words, 0)
        for p, t in enumerate(toks):
            positions[t] |= 1 << p
        self.all_positions = (1 << len(toks)) - 1
        self.vocab = frozenset(t for t in words if len(t) > 3 and t not in _STOP and t not in _TRANSCRIPT_GENERIC)
        self.signal = _SIGNAL | words

    def numbers(self) -> frozenset:
        if self._numbers is None:
            self._numbers = frozenset(map(_number_key, _NUM_RE.findall(self.text)))
        return self._numbers

    def mood(self) -> int:
        if self._mood is None:
            self._mood = _evidence_mood(self.text)
        return self._mood

    def events(self) -> tuple[bool, bool, bool, bool]:
        if self._events is None:
            words = self.words
            has_hold = not words.isdisjoint(("hold", "holding"))
            maybe_hold = has_hold or not words.isdisjoint(("hang", "wait", "waiting", "sec", "moment", "back"))
            low = f" {' '.join(self.toks)} "
            has_transfer = not words.isdisjoint(_TRANSFER_WORDS) or any(p in low for p in _TRANSFER_PHRASES)
            maybe_transfer = has_transfer or " bring in " in low or " through to " in low
            self._events = (has_hold, maybe_hold, has_transfer, maybe_transfer)
        return self._events


@lru_cache(maxsize=256)
def _transcript_info(transcript: str) -> _Transcript:
    """The transcript's ``_Transcript``, cached: a retry scores the same transcript again."""
    return _Transcript(transcript)


def _label_words(labels: dict | None) -> frozenset:
    words = set()
    for value in (labels or {}).values():
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(v, str):
                words.update(w for w in _tokens(v) if len(w) > 3)
    return frozenset(words)


def _units(parsed: dict) -> tuple[list[str], list[str]]:
    """(regions, bodies): step bodies, part bodies, or whole section bodies without headers."""
    sections = parsed["sections"]
    steps = parsed["steps"]
    if steps:
        regions = list(map(_STEP_REGIONS.get, map(itemgetter("n"), steps), repeat("thinking")))
        bodies = list(map(itemgetter("body"), steps))
    elif sections.get("thinking"):
        regions, bodies = ["thinking"], [sections["thinking"]]
    else:
        regions, bodies = [], []
    for name in ("analysis", "insights"):
        parts = parsed["parts"].get(name)
        if parts:
            names = _PART_REGIONS[name]
            regions.extend([names.get(p) or f"{name}:{p}" for p in parts])
            bodies.extend(parts.values())
        elif sections.get(name):
            regions.append(name)
            bodies.append(sections[name])
    return regions, bodies


def _sentence_lines(regions: list[str], bodies: list[str]) -> tuple[list[str], list[str], list[list[str]], bool]:
    """(region, text, tokens) of each sentence or line with words, as three lists, and whether
    ", so " may occur in one of them.

    All units are joined with newlines and handled as one string (a call per unit costs more
    than its work); a sentence's unit is found from where its line starts, by bisection over the
    units' end offsets (the replacements below keep every offset).
    """
    joined = "\n".join(bodies)
    if not joined.isascii() and any(c in joined for c in _LOWERS_TO_ASCII):
        bodies = [b.lower() for b in bodies]
        joined = "\n".join(bodies)
    joined = joined.replace(_MARK, " ").replace(". ", ".\n").replace("! ", "!\n").replace("? ", "?\n")
    # _TOKEN_TABLE lowers letters itself, so the bytes are not lower-cased first (a pass over
    # the text); ", so " is looked for with a regex instead.
    token_lines = list(map(str.split, joined.encode("ascii", "replace").translate(_TOKEN_TABLE).decode("ascii").split("\n")))
    lines = joined.split("\n")
    unit_ends = list(map(add, accumulate(map(len, bodies)), count()))
    line_starts = map(add, accumulate(map(len, lines), initial=0), count())
    units = map(bisect_left, repeat(unit_ends), compress(line_starts, token_lines))
    return (list(map(regions.__getitem__, units)), list(map(str.strip, compress(lines, token_lines))),
            list(filter(None, token_lines)), _COMMA_SO_RE.search(joined) is not None)


def _copies(toks: list[list[str]], signals: list[set], tr: _Transcript) -> list[bool] | None:
    """For each sentence, whether half its words or more are covered by NGRAM-word sequences of
    the transcript (an n-gram shared with the transcript covers its NGRAM words); ``None`` when
    no sentence is. Coverage runs over the chain's word stream across sentence breaks, so a paste
    of short transcript lines is caught too.

    A transcript n-gram can only occur in the chain if each of its words does. The positions
    of the transcript words missing from the chain (``signals`` hold the transcript words of
    each sentence) rule out every n-gram that starts there or up to NGRAM - 1 words before
    (bit operations on the position sets); the n-grams left, usually none, are searched for in
    the chain's words joined by spaces.
    """
    if len(tr.toks) < NGRAM:
        return None
    present = tr.words.intersection(chain.from_iterable(signals))
    absent = tr.all_positions - sum(map(tr.positions.__getitem__, present))
    gone = absent
    for shift in range(1, NGRAM):
        gone |= absent >> shift
    alive = ((1 << (len(tr.toks) - NGRAM + 1)) - 1) & ~gone   # bit p: the n-gram at word p may occur
    if not alive:
        return None
    line = f" {' '.join(map(' '.join, toks))} "
    needles = set()
    while alive:
        low = alive & -alive
        start = low.bit_length() - 1
        needles.add(f" {' '.join(tr.toks[start:start + NGRAM])} ")
        alive ^= low
    found = []
    for needle in needles:
        pos = line.find(needle)
        while pos != -1:
            found.append(pos)
            pos = line.find(needle, pos + 1)
    if not found:
        return None
    cover = bytearray(line.count(" ") - 1)   # one byte per word
    word = prev = 0
    for pos in sorted(found):
        word += line.count(" ", prev, pos)    # words before the space at ``pos``
        prev = pos
        cover[word:word + NGRAM] = b"\x01" * NGRAM
    flags = []
    start = 0
    for sentence_toks in toks:
        end = start + len(sentence_toks)
        flags.append(cover.count(1, start, end) * 2 >= end - start)
        start = end
    return flags if True in flags else None


def analyse(text: str, transcript: str | None = None, labels: dict | None = None, parsed: dict | None = None) -> Analysed:
    """Parse ``text``, split its section bodies into classified sentences and gather, from the
    sentences that earn content credit, what each criterion counts.

    >>> a = analyse("<thinking>\\nStep 1 - Customer Sentiment Analysis\\nN/A\\n"
    ...             "The bill was wrong. The bill was wrong.\\n</thinking>")
    >>> [(s.region, s.kind) for s in a.sentences]
    [('step1', 'thin'), ('step1', 'ok'), ('step1', 'dup')]
    """
    if parsed is None:
        parsed = parse_chain(text)
    a = Analysed()
    a.text, a.parsed = text, parsed
    tr = _transcript_info(transcript) if transcript else None
    vocab = tr.vocab if tr is not None else frozenset()
    label_words = _label_words(labels) - _STOP_SHORT if labels else frozenset()
    a.grounding = grounding = (vocab, label_words) if (transcript or labels) else None
    regions, texts, toks, comma_so = _sentence_lines(*_units(parsed))
    a.regions, a.texts, a.toks = regions, texts, toks
    a.sets = sets = list(map(set, toks))
    a.contents = contents = list(map(sub, sets, repeat(_STOP_SHORT)))
    a.specifics = specifics = list(map(sub, contents, repeat(_HEADER_WORDS)))
    a.signals = signals = list(map(and_, sets, repeat(tr.signal if tr is not None else _SIGNAL)))
    lorem = not _LOREM.isdisjoint(chain.from_iterable(signals))
    copies = _copies(toks, signals, tr) if tr is not None and toks else None
    a.kinds = kinds = []
    seen: set[tuple] = set()
    ok_chars = 0
    step_words: dict[str, set] = {}
    per_unit: dict[str, int] = {}
    n_causal = grounded = 0
    causal_weight = 0.0
    n_actions = loose = 0
    parts_with: set[str] = set()
    impact: dict[str, float] = {}
    impact_primary = False
    causal_single, causal_anchors = _CAUSAL[1], _CAUSAL[3]
    action_single, action_keys, _, action_anchors = _ACTIONS
    impact_single, impact_keys, _, impact_anchors = _IMPACT
    for i, (sentence_toks, ts, content, specific, sig) in enumerate(zip(toks, sets, contents, specifics, signals)):
        # The sentence's kind: junk, thin, copy, dup (its words came before) or ok.
        n = len(sentence_toks)
        key = tuple(sentence_toks)
        if copies is not None and copies[i]:
            kind = "copy"                        # mostly 7-word sequences of the transcript
        elif n >= 6 and len(ts) < n * 0.5:
            kind = "junk"                        # "because because because"
        elif lorem and not _LOREM.isdisjoint(sig):
            kind = "junk"                        # lorem ipsum
        elif n >= 8 and len(content) > 0.7 * len(ts) and len(ts & _STOP) < 0.1 * n:
            kind = "junk"                        # keyword salad: no function words
        elif len(specific) < 2:
            kind = "thin"                        # "N/A", "See above."
        elif key in seen:
            kind = "dup"                         # the same words as an earlier sentence
        else:
            kind = "ok"
        kinds.append(kind)
        seen.add(key)
        if kind != "ok":
            continue
        # What the criteria count in a sentence that earns content credit.
        region = regions[i]
        ok_chars += len(texts[i])
        if region in step_words:
            step_words[region] |= specific
        elif region[:4] == "step":
            step_words[region] = set(specific)
        if not sig and not comma_so:
            continue
        n_content = len(content)
        if n_content >= 3 and (
            not causal_single.isdisjoint(sig) or (comma_so and ", so " in texts[i].lower())
            or (not causal_anchors.isdisjoint(sig) and _multi(sentence_toks, sig, _CAUSAL))
        ):
            count_in_unit = per_unit.get(region, 0)
            if count_in_unit < CAUSAL_PER_UNIT:
                per_unit[region] = count_in_unit + 1
                n_causal += 1
                if grounding is None:
                    causal_weight += 1.0
                elif not vocab.isdisjoint(content) or not label_words.isdisjoint(content):
                    causal_weight += 1.0
                    grounded += 1
                else:
                    causal_weight += 0.5
        if n_content >= 3 and not _IMPACT_WORDS.isdisjoint(sig):
            found = list(map(impact_single.__getitem__, impact_keys & sig))
            if not impact_anchors.isdisjoint(sig):
                found.extend([canon for _, canon in _multi(sentence_toks, sig, _IMPACT)])
            if found:
                primary = region in _PRIMARY_IMPACT
                weight = 1.0 if primary else 0.5
                if _DIRECTION.isdisjoint(sig) and _AMOUNT_RE.search(texts[i]) is None:
                    weight *= 0.5
                elif primary:
                    impact_primary = True
                for term in found:
                    if impact.get(term, 0.0) < weight:
                        impact[term] = weight
        if region[:8] == "insights" and not _ACTION_WORDS.isdisjoint(sig):
            # An action or modal verb followed, in the same sentence, by two specific content
            # words; the words after the earliest verb include those after any later one.
            ends = list(map(sentence_toks.index, action_keys & sig))   # + 1: the word after
            if not action_anchors.isdisjoint(sig):
                ends.extend([end - 1 for end, _ in _multi(sentence_toks, sig, _ACTIONS)])
            if ends and len((content - _GENERIC).intersection(sentence_toks[min(ends) + 1:])) >= 2:
                n_actions += 1
                if region == "insights":
                    loose += 1
                else:
                    parts_with.add(region[9:])
    a.ok_chars = ok_chars
    a.copied_chars = sum(map(len, compress(texts, copies))) if copies is not None else 0
    a.step_words = step_words
    a.causal = (n_causal, grounded, causal_weight)
    a.actions = (n_actions, loose, parts_with)
    a.impact = (impact, impact_primary)
    _faithfulness(a, tr, labels, label_words)
    return a


# --------------------------------------------------------------------------------------------
# Faithfulness: what the chain asserts against the labels and the transcript
#
# Form criteria cannot tell a faithful chain from a fluent one that contradicts the call or
# invents facts, so two more checks read the same sentences (``analyse`` calls ``_faithfulness``):
#
# - consistency: a sentence that asserts the customer's mood, the agent's performance, the churn
#   risk, the root cause or a coaching need must agree with the example's labels (whichever it
#   has); with no label for a claim the transcript decides where it can (the customer's last
#   words, whether there was a hold, a transfer). Negation ("not satisfied" is negative, "no sign
#   of frustration" asserts nothing) and hedging ("may become frustrated", "should show empathy":
#   no assertion) are read from the few words before the claim word, within its clause.
# - grounding: specifics (numbers and amounts, names of people and companies, dates, channels,
#   products, payment methods) must appear in the transcript or the labels. <insights> holds
#   proposals ("cap refunds under $100", "offer a chatbot"), so there only names and dates count.
#
# Both are word-set intersections per sentence plus one regex pass over the body for numbers and
# capitalised names: a sentence with no claim word costs one set operation.

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
_TRANSFER_PHRASES = (" connect you to ", " put you through ", " bring in our ", " pass you to ", " hand you over ")
_HOLD_WORDS = frozenset(("hold", "holds"))   # not "held": "held back", "held accountable"
_TRANSFER_WORDS = frozenset(("transfer", "transfers", "transferred", "transferring"))
_CLAIM_REGIONS_SKIP = ("insights", "analysis:Patterns & Trends")   # proposals and generalisations

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
_DATE_WORDS = _WEEKDAYS | _REL_DATES
_GROUND_TRIGGERS = _DATE_WORDS | _NUMBER_UNIT | _CHANNELS[1] | _CHANNELS[3]
_FAITH_TRIGGERS = _CONSIST_TRIGGERS | _GROUND_TRIGGERS
# The words that make a sentence a claim these checks read (public: a teacher or a test can keep
# neutral text free of them).
CLAIM_WORDS = _FAITH_TRIGGERS


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


def _evidence_mood(transcript: str) -> int:
    """The customer's mood in their last two turns from strong cue words: -1, 0 (none or both), 1."""
    lines = [ln for ln in transcript.splitlines() if ln.lstrip().lower().startswith("customer")]
    words = set(_tokens(" ".join(lines[-2:]))) if lines else set()
    neg = not words.isdisjoint(_EVIDENCE_NEG)
    pos = not words.isdisjoint(_EVIDENCE_POS)
    return -1 if neg and not pos else 1 if pos and not neg else 0


_EVIDENCE_NEG = frozenset("""waste useless ridiculous unacceptable terrible awful worst disgusting pathetic
    cancelling canceling leaving stuck joke furious angry disappointed fed""".split())
_EVIDENCE_POS = frozenset("""fantastic perfect brilliant wonderful excellent amazing great lovely appreciate
    helpful happy pleased sorted""".split())


def _number_key(raw: str) -> str:
    """``"$1,064.50"`` -> ``"1064.5"``; ``"20%"`` -> ``"20"``; ``"7.00"`` -> ``"7"``."""
    s = raw.strip("$\u00a3\u20ac%").replace(",", "")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s.lstrip("0") or "0"


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


def _consistency(a: "Analysed", lv: dict, tr: "_Transcript | None", hits: list) -> list[dict]:
    """Sentences whose claims contradict the labels (or, without a label, the transcript)."""
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
        mood_ok_here = mood_ok
        if claims_ok and "sentiment" in hit and "sentiment" in lv:
            j = toks.index("sentiment")
            start, end, _ = cl.bounds(j)
            said = next((t for t in toks[j + 1:min(end, j + 5)] if t in _SENTIMENTS), None)
            if (said and said != lv["sentiment"] and not _hedged(toks, j, start) and not _negated(toks, j, start)
                    and _START.isdisjoint(toks[start:end])):
                reasons.append(f"says the sentiment is {said}, but it is {lv['sentiment']}")
                mood_ok_here = False
        # 1. the customer's mood against CSAT and sentiment (or the transcript's last words)
        if claims_ok and mood_ok_here and not _MOOD_WORDS.isdisjoint(hit):
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
                    reasons.append(f"says the customer was {word}{' at the end' if ph == 'end' else ''}, but {why}")
                    break
        if claims_ok and traj_wrong is not None and not traj_wrong.isdisjoint(hit):
            for t in hit & traj_wrong:
                j = toks.index(t)
                start, end, _ = cl.bounds(j)
                if (not _negated(toks, j, start) and not _hedged(toks, j, start)
                        and not _CUST_SUBJ.isdisjoint(toks[start:end])):
                    reasons.append(f"says the customer's mood {t}, but the trajectory is {traj}")
                    break
        # 2. the agent's performance against the QA score band: praise below 60, harsh words from 85
        if claims_ok and agent_words is not None and not agent_words.isdisjoint(hit):
            single, phrases = (_PRAISE, _PRAISE_OVERALL) if qa < 60 else (_HARSH, _HARSH_PHRASES)
            found = [(toks.index(t), t) for t in hit & single]
            if not phrases[3].isdisjoint(hit):
                found += [(end - 1, canon) for end, canon in _multi(toks, hit, phrases)]
            for j, t in sorted(found):
                start, end, _ = cl.bounds(j)
                if (not _negated(toks, j, start) and not _hedged(toks, j, start, end)
                        and _subject(toks, j, start, end, region) == "agent"):
                    reasons.append(f"praises the agent ('{t}'), but the QA score is {qa}/100" if qa < 60
                                   else f"calls the agent '{t}', but the QA score is {qa}/100")
                    break
        # 3. churn risk
        if churn is not None and not _CHURN_CLAIM_WORDS.isdisjoint(hit):
            said = _churn_claim(toks, cl)
            if said and ((said[1] and said[0] == churn) or (not said[1] and {said[0], churn} == {"low", "high"})):
                reasons.append(f"says churn risk is {'not ' if said[1] else ''}{said[0]}, but it is {churn}")
        # 4. root cause: the cause a sentence asserts, in another reason's words and none of the label's
        if cause is not None and not _ROOT_TRIGGERS[3].isdisjoint(hit):
            after = _multi(toks, hit, _ROOT_TRIGGERS)
            if after:
                j = min(end for end, _ in after)
                named = {_CAUSE_OF[w] for w in _CAUSE_ALL.intersection(toks[j:j + 12])}
                ok = _CAUSE_OK[cause]
                if named and named.isdisjoint(ok) and _HEDGES.isdisjoint(toks[max(0, j - 8):j]):
                    other = ", ".join(sorted(_tasks.humanize(c) for c in named))
                    reasons.append(f"gives the cause as {other}, but the root cause is {_tasks.humanize(cause)}")
        # 5. coaching areas, verification, holds and transfers
        if coaching and not _NO_COACHING[3].isdisjoint(hit) and _multi(toks, hit, _NO_COACHING):
            reasons.append("says no coaching is needed, but the coaching areas are "
                           + ", ".join(sorted(_tasks.humanize(c) for c in coaching)))
        if claims_ok and coaching is not None and not _BEHAVIOUR_CHECKED.isdisjoint(hit):
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
                    reasons.append(f"credits the agent with {_tasks.humanize(b)}, a coaching area of this call")
                    break
                if b == "identity_verification" and failed and b not in coaching:
                    reasons.append("says verification was skipped, but identity verification is not a coaching "
                                   "area of this call (it was done)")
                    break
        if claims_ok and tr is not None and not _EVENT_WORDS.isdisjoint(hit):
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
        # 6. a CSAT or QA figure stated in the body
        if "csat" in hit and "csat" in lv:
            m = _CSAT_NUM_RE.search(text)
            if m and int(m.group(1)) != lv["csat"]:
                reasons.append(f"states CSAT {m.group(1)}, but it is {lv['csat']}/5")
        if "score" in hit and "quality" in lv and not sets[i].isdisjoint(("qa", "quality")):
            m = _QA_NUM_RE.search(text)
            if m and abs(int(m.group(1)) - lv["quality"]) > 10:
                reasons.append(f"states a QA score of {m.group(1)}, but it is {lv['quality']}/100")
        for why in reasons:
            faults.append({"sentence": text, "region": region, "kind": "contradiction", "reason": why})
    return faults


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


def _grounding(a: "Analysed", tr: "_Transcript", label_words: frozenset, label_numbers: frozenset,
               hits: list) -> tuple[list[dict], int]:
    """Specifics not supported by the transcript or labels, one fault per distinct specific, and
    how many specifics were checked."""
    faults: list[dict] = []
    seen: set[str] = set()
    checked = 0
    kinds, regions, texts = a.kinds, a.regions, a.texts
    words = tr.words
    numbers = None   # the transcript's numbers, read at the first number of the chain
    joined = "\n".join(texts)
    ends = list(map(add, accumulate(map(len, texts)), count()))   # each line's end offset in ``joined``
    lower_words: set | None = None

    def fault(i: int, key: str, reason: str) -> None:
        if key not in seen:
            seen.add(key)
            faults.append({"sentence": texts[i], "region": regions[i], "kind": "invented", "reason": reason})

    # Numbers and amounts (two plain regexes: one with an alternation and look-behinds costs
    # several times more); the character before a match is tested here instead.
    # Speed: a supported specific (most of them) is counted and left before any other test.
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
    # Names of people, companies, products and months: capitalised words inside a sentence.
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
    # Channels, products, payment methods, weekdays, relative dates and spelled-out durations.
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
    return faults, checked


_NUM_RE = re.compile(r"\d[\d,]*(?:\.\d+)?%?")
_CAP_RE = re.compile(r" [A-Z][A-Za-z'\u2019]+(?:[ \-][A-Z][A-Za-z0-9'\u2019]*)*")
_MID_SENTENCE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789,;)")
_NUMBER_NAMES = {v: k for k, v in _NUMBER_WORDS.items()}


def _faithfulness(a: "Analysed", tr: "_Transcript | None", labels: dict | None, label_words: frozenset) -> None:
    """Set ``a.contradictions``, ``a.invented`` (fault dicts) and ``a.faith_checked``."""
    lv = _label_view(labels)
    hits = list(map(and_, a.sets, repeat(_FAITH_TRIGGERS)))
    a.contradictions = _consistency(a, lv, tr, hits) if (lv or tr is not None) else []
    if tr is not None:
        numbers = frozenset(str(v) for k, v in lv.items() if k in ("csat", "quality"))
        a.invented, checked = _grounding(a, tr, label_words, numbers, hits)
    else:
        a.invented, checked = [], None
    a.faith_checked = (bool(lv) or tr is not None, checked)




def _result(name: str, points: float, reason: str) -> dict:
    top = WEIGHTS[name]
    points = top if points > top else points if points > 0.0 else 0.0
    # round() formats the float in decimal, slowly; quarters are exact already.
    return {"points": points if (points * 4.0).is_integer() else round(points, 2), "max": top, "reason": reason}


# --------------------------------------------------------------------------------------------
# The criteria


def criterion_sections(a: Analysed) -> dict:
    """Three tags present (3 each) and closed (1.5 each), in order (2), ``Final answer:`` (1.5),
    the eight part headers (3); all of it halved when a section is missing. (A chain missing a
    section should not be accepted whatever its score: ``passes`` also requires ``sections_ok``.)

    >>> from engine.chains.chain import render_chain
    >>> criterion_sections(analyse(render_chain({}, {}, {}, "CSAT: 3/5")))
    {'points': 20.0, 'max': 20.0, 'reason': 'All three sections present, closed and in order, with all 8 part headers.'}
    >>> criterion_sections(analyse("<thinking>x</thinking><insights>y"))["reason"]
    'Missing <analysis>; <insights> not closed; no Final answer header; 0 of 8 part headers.'
    """
    p = a.parsed
    present = [s for s in SECTIONS if p["present"][s]]
    closed = [s for s in SECTIONS if p["closed"][s]]
    n_parts = len(p["parts"]["analysis"]) + len(p["parts"]["insights"])
    total_parts = len(ANALYSIS_PARTS) + len(INSIGHT_PARTS)
    points = 3.0 * len(present) + 1.5 * len(closed)
    if p["in_order"] and present:
        points += 2.0 * len(present) / len(SECTIONS)
    if p["has_final_header"]:
        points += 1.5
    points += 3.0 * n_parts / total_parts
    if len(present) < len(SECTIONS):
        points /= 2
    faults = []
    missing = [s for s in SECTIONS if s not in present]
    if missing:
        faults.append("missing " + ", ".join(f"<{s}>" for s in missing))
    unclosed = [s for s in present if s not in closed]
    if unclosed:
        faults.append(", ".join(f"<{s}>" for s in unclosed) + " not closed")
    if present and not p["in_order"]:
        faults.append("sections out of order or duplicated")
    if not p["has_final_header"]:
        faults.append("no Final answer header")
    if faults:
        faults.append(f"{n_parts} of {total_parts} part headers")
        reason = "; ".join(faults)
        reason = reason[0].upper() + reason[1:] + "."
    elif n_parts < total_parts:
        reason = f"All three sections present, closed and in order; {n_parts} of {total_parts} part headers."
    else:
        reason = f"All three sections present, closed and in order, with all {total_parts} part headers."
    return _result("sections", points, reason)


def criterion_length(a: Analysed) -> dict:
    """Substantive characters: counted sentences inside the sections, each once.

    >>> words = "billing refund hold transfer outage router invoice credit manager voucher renewal tariff".split()
    >>> long = "<thinking>" + " ".join(f"The {w} issue made the customer wait for weeks." for w in words)
    >>> criterion_length(analyse(long))["points"]
    5.0
    >>> same = "<thinking>" + " ".join(f"Point {i} shows the refund was late for customer {i}." for i in range(12))
    >>> criterion_length(analyse(same))["reason"]  # differing only in numbers: one sentence
    '49 characters of substantive text (500 needed).'
    >>> criterion_length(analyse("<thinking>Step 1 - Customer Sentiment Analysis\\nN/A</thinking>"))["points"]
    0.0
    """
    chars = a.ok_chars
    points = WEIGHTS["length"] * min(1.0, chars / MIN_CHARS)
    reason = f"{chars:,} characters of substantive text ({MIN_CHARS} needed)"
    if a.copied_chars:
        reason += f"; {a.copied_chars:,} characters copied from the transcript not counted"
    return _result("length", points, reason + ".")


def criterion_steps(a: Analysed) -> dict:
    """Per step (4 each): header 1 (0.6 when the title differs), body 3 scaled by its distinct
    content words beyond the header words (12 for full); out of order costs a quarter.

    >>> from engine.chains.chain import render_chain
    >>> body = ("The customer was angry because the invoice doubled after the plan change last month; "
    ...         "she threatened to cancel her broadband contract twice.")
    >>> nouns = ["invoice", "bill", "statement", "charge", "receipt"]
    >>> criterion_steps(analyse(render_chain({n: body.replace("invoice", nouns[n - 1]) for n in range(1, 6)}, {}, {}, "")))
    {'points': 20.0, 'max': 20.0, 'reason': '5 of 5 steps found in order, all with substantive bodies.'}
    >>> criterion_steps(analyse(render_chain({1: "N/A", 2: body}, {}, {}, "")))["reason"]
    '5 of 5 steps found in order; thin bodies: Step 1, Step 3, Step 4, Step 5.'
    """
    steps = a.parsed["steps"]
    first: dict[int, dict] = {}
    order = []
    for s in steps:
        if 1 <= s["n"] <= len(STEPS) and s["n"] not in first:
            first[s["n"]] = s
            order.append(s["n"])
    words = a.step_words
    points = 0.0
    thin, short = [], []
    for n, s in sorted(first.items()):
        points += 1.0 if s["title_ok"] else 0.6
        k = len(words.get(_STEP_REGIONS[n], ()))
        points += 3.0 * min(1.0, k / STEP_WORDS)
        if k < STEP_WORDS / 2:
            thin.append(f"Step {n}")
        elif k < STEP_WORDS:
            short.append(f"Step {n}")
    in_order = order == sorted(order)
    if not in_order:
        points *= 0.75
    reason = f"{len(first)} of {len(STEPS)} steps found" + (" in order" if in_order else " out of order")
    if len(first) < len(STEPS):
        reason += "; missing " + ", ".join(f"Step {n} - {STEPS[n - 1]}" for n in range(1, len(STEPS) + 1) if n not in first)
    if thin:
        reason += "; thin bodies: " + ", ".join(thin)
    if short:
        reason += f"; short bodies (under {STEP_WORDS} distinct content words): " + ", ".join(short)
    if first and not thin and not short:
        reason += ", all with substantive bodies"
    return _result("steps", points, reason + ".")


def criterion_reasoning(a: Analysed) -> dict:
    """Distinct causal sentences with at least 3 content words; grounded in the transcript or
    labels counts 1, otherwise 0.5 (all count 1 when there is nothing to ground against); at
    most 3 per step or part; 5 for full credit.

    >>> text = ("<thinking>The customer escalated because the refund was delayed twice. "
    ...         "Because because because because refund refund. "
    ...         "Churn risk rose since the agent never confirmed a resolution date.</thinking>")
    >>> criterion_reasoning(analyse(text))
    {'points': 6.0, 'max': 15.0, 'reason': '2 distinct causal statements (5 for full credit).'}
    >>> criterion_reasoning(analyse(text, transcript="Customer: my refund is delayed again."))["reason"]
    '2 distinct causal statements (5 for full credit), 1 grounded in the transcript or labels.'
    """
    n_causal, grounded, weight = a.causal
    points = WEIGHTS["reasoning"] * min(1.0, weight / CAUSAL_TARGET)
    reason = f"{n_causal} distinct causal statement{'s' if n_causal != 1 else ''} ({CAUSAL_TARGET} for full credit)"
    if a.grounding is not None:
        reason += f", {grounded} grounded in the transcript or labels"
    return _result("reasoning", points, reason + ".")


def criterion_actionable(a: Analysed) -> dict:
    """Specific actions (an action or modal verb followed by two concrete object words) in
    ``<insights>``: 60% for the share of the 4 insight parts with one, 40% for the count (6).

    >>> text = ("<insights>\\nImmediate Coaching: Coach Dana on explaining hold reasons before placing callers on hold.\\n"
    ...         "Process Improvements: Improve overall performance and quality.\\n</insights>")
    >>> criterion_actionable(analyse(text))
    {'points': 3.25, 'max': 15.0, 'reason': '1 specific action; in 1 of 4 insight parts (none in Process Improvements, Business Actions, Strategic Insights).'}
    """
    n_actions, loose, parts_with = a.actions
    covered = len(parts_with) + 0.5 * min(loose, len(INSIGHT_PARTS) - len(parts_with))
    points = WEIGHTS["actionable"] * (
        0.6 * covered / len(INSIGHT_PARTS) + 0.4 * min(1.0, n_actions / ACTION_TARGET)
    )
    reason = f"{n_actions} specific action{'s' if n_actions != 1 else ''}"
    if loose and not parts_with:
        reason += " in <insights>, without part headers"
    else:
        reason += f"; in {len(parts_with)} of {len(INSIGHT_PARTS)} insight parts"
        lacking = [p for p in INSIGHT_PARTS if p not in parts_with]
        if lacking and parts_with:
            reason += " (none in " + ", ".join(lacking) + ")"
    return _result("actionable", points, reason + ".")


def criterion_business_impact(a: Analysed) -> dict:
    """Distinct impact terms (cost, churn, CSAT, AHT, FCR, revenue...) in counted sentences;
    each term weighs 1 in Step 5 / Business Actions and 0.5 elsewhere, halved again without a
    direction or quantity nearby; 4 for full credit, at most 7 points with nothing in Step 5 /
    Business Actions. The reason lists the heaviest terms.

    >>> s5 = ("<thinking>Step 5 - Business Impact Analysis\\nThe repeat calls raise handle time and cost, "
    ...       "and churn risk is high, threatening annual revenue of $600.</thinking>")
    >>> criterion_business_impact(analyse(s5))["points"]
    10.0
    >>> criterion_business_impact(analyse(s5.replace("cost,", "cost cost cost cost,")))["points"]
    10.0
    >>> criterion_business_impact(analyse("<thinking>Churn churn churn churn churn churn.</thinking>"))["points"]
    0.0
    """
    best, primary = a.impact
    total = sum(best.values())
    points = WEIGHTS["business_impact"] * min(1.0, total / IMPACT_TARGET)
    if not best:
        return _result("business_impact", 0.0, "No business-impact terms (cost, churn, CSAT, AHT, revenue...) in a meaningful sentence.")
    terms = ", ".join(sorted(best, key=lambda k: (-best[k], _IMPACT_RANK[k]))[:6])
    reason = f"Impact terms: {terms}"
    if not primary:
        points = min(points, 7.0)
        reason += "; none stated with a direction or amount in Step 5 / Business Actions"
    return _result("business_impact", points, reason + ".")


# The keyword each answer pattern of ``engine.data.tasks._PATTERNS`` starts with (one of them must be
# in the text, in any case). Those patterns try every character of the text with re.I, which
# costs more than all the rest of the scoring on a chain without a final answer; testing for the
# keyword first skips them where they cannot match. Keep in step with engine.data.tasks.
_ANSWER_KEYWORDS = {
    "csat": (b"csat",),
    "quality": (b"qa", b"quality"),
    "churn": (b"churn",),
    "sentiment": (b"sentiment",),
    "root_cause": (b"root", b"contact"),
    "coaching": (b"coaching",),
}
# Characters that re.I matches with an ASCII letter although they do not lower-case to it.
_CASE_SPECIALS_UTF8 = tuple(c.encode() for c in ("\u0130", "\u0131", "\u017f", "\u212a"))


def _keyword_text(text: str) -> bytes | None:
    """``text`` as lower-cased UTF-8 for the keyword test; ``None`` (no test) when it holds a
    character of ``_CASE_SPECIALS_UTF8``."""
    raw = text.encode("utf-8", "surrogatepass")
    if not text.isascii() and any(map(raw.__contains__, _CASE_SPECIALS_UTF8)):
        return None
    return raw.lower()


def _answer_str(task: str, parsed: dict) -> str:
    try:
        return _tasks.answer_line(task, {**{k: None for k in _tasks.TASK_KEYS[task]}, **parsed})
    except Exception:  # a partial answer (sentiment without trajectory)
        return ", ".join(f"{k}={v}" for k, v in parsed.items())


def criterion_label_agreement(a: Analysed, task: str | None = None, labels: dict | None = None) -> dict:
    """The final answer's label agrees with the reference (15; 10 when the answer line is only
    found outside the final answer). Without reference labels, a parseable answer earns 15.

    >>> a = analyse("<thinking>x</thinking>\\nFinal answer:\\nLong wait. CSAT: 2/5")
    >>> criterion_label_agreement(a, "csat", {"csat": 2})["points"]
    15.0
    >>> criterion_label_agreement(a, "csat", {"csat": 4})["reason"]
    'Final answer says CSAT: 2/5; the reference is CSAT: 4/5.'
    >>> criterion_label_agreement(a)["reason"]
    'No reference labels; the final answer parses (CSAT: 2/5).'
    """
    final = a.parsed["final_answer"]
    candidates = (task,) if task else _tasks.TASKS
    found = None
    for where, text in (("final", final), ("text", a.text)):
        if not text:
            continue
        low = _keyword_text(text)
        for t in candidates:
            if low is not None and t in _ANSWER_KEYWORDS and not any(map(low.__contains__, _ANSWER_KEYWORDS[t])):
                continue    # no answer line of this task can be there
            got = _tasks.parse_answer(t, text)
            if got:
                found = (t, where, got)
                break
        if found:
            break
    if found is None:
        what = f"{_tasks.TASK_TITLES.get(task, task)} answer line" if task else "task's answer line"
        return _result("label_agreement", 0.0, f"No {what} found in the final answer.")
    t, where, got = found
    full = WEIGHTS["label_agreement"] if where == "final" else WEIGHTS["label_agreement"] * 2 / 3
    said = _answer_str(t, got)
    verdict = _tasks.agrees(t, got, labels or {})
    place = "" if where == "final" else " (found outside the final answer)"
    if verdict is None:
        return _result("label_agreement", full, f"No reference labels; the final answer parses ({said}){place}.")
    if verdict:
        return _result("label_agreement", full, f"Final answer {said} agrees with the reference{place}.")
    try:
        want = _tasks.answer_line(t, labels)
    except Exception:
        want = str({k: labels.get(k) for k in _tasks.TASK_KEYS[t]})
    return _result("label_agreement", 0.0, f"Final answer says {said}; the reference is {want}.")


_REGION_TITLES = {f"step{n}": f"Step {n}" for n in range(1, len(STEPS) + 1)}


def _where(region: str) -> str:
    """``step2`` -> ``Step 2``; ``analysis:Key Strengths`` -> ``Key Strengths``."""
    return _REGION_TITLES.get(region) or region.partition(":")[2] or f"<{region}>"


def _fault_list(faults: list[dict], limit: int = 4) -> str:
    shown = [f'{_where(f["region"])} "{_clip(f["sentence"])}" {f["reason"]}' for f in faults[:limit]]
    more = len(faults) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _clip(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[:n - 3].rstrip() + "..."


def _deduction(name: str, points: float, reason: str, faults: list[dict]) -> dict:
    points = points if (points * 4.0).is_integer() else round(points, 2)
    return {"points": -points if points > 0 else 0.0, "max": WEIGHTS[name], "reason": reason, "faults": faults}


def criterion_grounding(a: Analysed, form: float = 100.0) -> dict:
    """Specifics (numbers, amounts, names, dates, channels, products) that neither the transcript
    nor the labels support: -4 each, and from ``INVENTED_LIMIT`` on the score (``form``, the
    points before this deduction) is capped at ``INVENTED_CAP``. ``faults`` names each sentence.

    >>> tr = "Agent: Hi, this is Sam. Customer: My bill shows $40 too much."
    >>> chain = "<thinking>Step 2 - Agent Performance Evaluation\\nThe agent, Sarah, refunded $40 by email.</thinking>"
    >>> g = criterion_grounding(analyse(chain, tr), form=90.0)
    >>> g["points"], [f["reason"] for f in g["faults"]]
    (-25.0, ["the name 'Sarah' is not in the transcript", 'mentions email, which the transcript never does'])
    """
    faults = a.invented
    checked = a.faith_checked[1]
    if checked is None:
        return _deduction("grounding", 0.0, "No transcript: specifics (numbers, names, dates, products) not checked.", [])
    n = len(faults)
    if not n:
        what = f"All {checked} specifics" if checked else "No specifics"
        tail = " are in the transcript or labels." if checked else " (numbers, names, dates, channels, products) to check."
        return _deduction("grounding", 0.0, what + tail, [])
    points = INVENTED_POINTS * n
    if n >= INVENTED_LIMIT:
        points = max(points, form - (INVENTED_CAP - 3.0 * (n - INVENTED_LIMIT)))
    points = min(points, form)
    reason = f"{n} unsupported specific{'s' if n != 1 else ''} of {checked}: {_fault_list(faults)}"
    if n >= INVENTED_LIMIT:
        reason += f"; {INVENTED_LIMIT} or more cap the score below {THRESHOLD:g}"
    return _deduction("grounding", points, reason + ".", faults)


def criterion_consistency(a: Analysed, before: float = 100.0) -> dict:
    """Statements that contradict the labels (or, without one, the transcript): any contradiction
    caps the score (``before``, the points before this deduction) at ``CONTRADICTION_CAP``, 5 less
    per further one, and costs at least ``CONTRADICTION_POINTS``.

    >>> chain = ("<thinking>Step 1 - Customer Sentiment Analysis\\nThe customer was delighted with the outcome. "
    ...          "There was no sign of frustration.</thinking>")
    >>> c = criterion_consistency(analyse(chain, labels={"csat": 1}), before=90.0)
    >>> c["points"], c["faults"][0]["reason"]
    (-35.0, 'says the customer was delighted, but CSAT is 1/5')
    >>> criterion_consistency(analyse(chain, labels={"csat": 5}))["points"]
    0.0
    """
    faults = a.contradictions
    if not a.faith_checked[0]:
        return _deduction("consistency", 0.0, "No labels or transcript to check the chain's statements against.", [])
    n = len(faults)
    if not n:
        return _deduction("consistency", 0.0, "No statement contradicts the labels or the transcript.", [])
    cap = max(0.0, CONTRADICTION_CAP - 5.0 * (n - 1))
    points = min(before, max(CONTRADICTION_POINTS * n, before - cap))
    reason = (f"{n} contradiction{'s' if n != 1 else ''}: {_fault_list(faults)}; a chain that contradicts its "
              f"labels is capped at {cap:g}.")
    return _deduction("consistency", points, reason, faults)


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
