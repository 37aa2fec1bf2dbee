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
=================  ====  ==========================================================================

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
text. ``bench/scorer.py`` measures the rate (about 2,000 chains of 2,000 characters a second on
one core of a server CPU: the plan's 25,790 chains in about 13 s).
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from functools import lru_cache, reduce
from itertools import accumulate, chain, compress, count, repeat
from operator import add, and_, itemgetter, not_, or_, sub

from engine import tasks as _tasks
from engine.chain import ANALYSIS_PARTS, INSIGHT_PARTS, SECTION_PARTS, SECTIONS, STEPS, parse_chain

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
}
CRITERIA = tuple(WEIGHTS)

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
_CAUSAL_WORDS = _CAUSAL[1] | _CAUSAL[3]
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
                 "actions", "impact")

    @property
    def sentences(self) -> list[Sentence]:
        return list(map(Sentence, self.regions, self.texts, self.toks, self.sets, self.contents,
                        self.specifics, self.kinds))



class _Transcript:
    """What scoring needs of a transcript: its words in order (``toks``), their set
    (``words``), for each word the bit set of its positions (``positions``: bit p set when it
    is the p-th word; the words' sets are disjoint and add up to ``all_positions``), the
    grounding vocabulary (``vocab``) and ``signal``: ``_SIGNAL`` and the words, the set each
    sentence is intersected with."""

    __slots__ = ("toks", "words", "positions", "all_positions", "vocab", "signal")

    def __init__(self, transcript: str):
        self.toks = toks = _tokens(transcript)
        self.words = words = frozenset(toks)
        self.positions = positions = dict.fromkeys(words, 0)
        for p, t in enumerate(toks):
            positions[t] |= 1 << p
        self.all_positions = (1 << len(toks)) - 1
        self.vocab = frozenset(t for t in words if len(t) > 3 and t not in _STOP and t not in _TRANSCRIPT_GENERIC)
        self.signal = _SIGNAL | words


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
    return a


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

    >>> from engine.chain import render_chain
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

    >>> from engine.chain import render_chain
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


# The keyword each answer pattern of ``engine.tasks._PATTERNS`` starts with (one of them must be
# in the text, in any case). Those patterns try every character of the text with re.I, which
# costs more than all the rest of the scoring on a chain without a final answer; testing for the
# keyword first skips them where they cannot match. Keep in step with engine.tasks.
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


# --------------------------------------------------------------------------------------------
# Public entry points


def score_chain(text: str, task: str | None = None, labels: dict | None = None, transcript: str | None = None) -> dict:
    """Score one chain: ``{"score", "criteria": {name: {points, max, reason}}, "sections_ok", "problems"}``.

    >>> from engine.chain import render_chain
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
    p = a.parsed
    score = sum(map(itemgetter("points"), criteria.values()))
    return {
        "score": score if (score * 4.0).is_integer() else round(score, 2),
        "criteria": criteria,
        "sections_ok": all(p["present"].values()) and all(p["closed"].values()) and p["in_order"],
        "problems": p["problems"],
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
    if not isinstance(obj, dict):
        raise ValueError("line is not a JSON object")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("no 'messages' list")
    assistant = user = None
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError("a message lacks a string 'role' or 'content'")
        if m["role"] == "assistant":
            assistant = m["content"]
        elif m["role"] == "user" and assistant is None:
            user = m["content"]
    if assistant is None:
        raise ValueError("no assistant message")
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    task = meta.get("task", obj.get("task"))
    task = task if task in _tasks.TASKS else None
    labels = meta.get("labels", obj.get("labels"))
    labels = labels if isinstance(labels, dict) else None
    transcript = _tasks.split_user_content(user)[0] if user else None
    return assistant, task, labels, transcript, meta.get("id", obj.get("id"))


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
    """Aggregate scored lines: count, errors, average, share_ge_70, share_all_sections and the
    average points per criterion (zeros when nothing was scored).

    >>> summarize([{"line": 1, "score": 80.0, "sections_ok": True, "criteria": {"steps": {"points": 20.0}}},
    ...            {"line": 2, "score": 60.0, "sections_ok": False, "criteria": {"steps": {"points": 10.0}}},
    ...            {"line": 3, "error": "invalid JSON"}])["average"]
    70.0
    """
    scored = errors = ge = all_sections = 0
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
    return {
        "count": scored,
        "errors": errors,
        "average": round(total / scored, 2) if scored else 0.0,
        "min": lo if lo is not None else 0.0,
        "max": hi if hi is not None else 0.0,
        "share_ge_70": round(ge / scored, 4) if scored else 0.0,
        "share_all_sections": round(all_sections / scored, 4) if scored else 0.0,
        "criteria": {name: round(v / scored, 2) if scored else 0.0 for name, v in sums.items()},
    }
