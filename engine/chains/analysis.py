"""The analysis every criterion of the quality scorer reads: a chain split into classified sentences.

``analyse`` parses a chain, splits its section bodies into sentences, classifies each (``ok``,
``thin``, ``junk``, ``copy``, ``dup``: the filters against gaming, engine/chains/quality.py)
and gathers, from the sentences that earn content credit, what each form criterion counts
(engine/chains/criteria.py); it then runs the faithfulness checks (engine/chains/consistency.py,
engine/chains/grounding.py) on the same sentences.

Speed: a call or a bytecode costs far more than the C work of a set operation on a sentence,
so the analysis is a few whole-chain string operations (join, replace, encode, translate,
split) and ``map`` over the sentences, not a Python loop over words; each criterion then reads
the small per-sentence sets the analysis left.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from itertools import accumulate, chain, compress, count, repeat
from operator import add, and_, itemgetter, sub

from engine.chains.chain import SECTION_PARTS, STEPS, parse_chain
from engine.chains.consistency import _consistency, _label_view
from engine.chains.grounding import _FAITH_TRIGGERS, _grounding
from engine.chains.transcript import _Transcript, _transcript_info
from engine.chains.vocabulary import (
    _ACTION_WORDS, _ACTIONS, _CAUSAL, _DIRECTION, _GENERIC, _HEADER_WORDS, _IMPACT, _IMPACT_WORDS, _LOREM,
    _LOWERS_TO_ASCII, _MARK, _SIGNAL, _STOP, _STOP_SHORT, _TOKEN_TABLE, _multi, _tokens,
)

CAUSAL_PER_UNIT = 3        # at most this many counted from one step or part
NGRAM = 7                  # transcript copy detection: shared word 7-grams
_AMOUNT_RE = re.compile("[0-9%$\u00a3\u20ac]")   # a number, percentage or money amount
_COMMA_SO_RE = re.compile(", [sS][oO] ")        # ", so " in any case (ASCII letters only)
_PRIMARY_IMPACT = ("step5", "insights:Business Actions")
_STEP_REGIONS = {n: f"step{n}" for n in range(1, len(STEPS) + 1)}
_PART_REGIONS = {name: {p: f"{name}:{p}" for p in parts} for name, parts in SECTION_PARTS.items()}


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
    content credit (kind ``ok``) ``analyse`` also gathers what the criteria count:
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
    a.grounding = (vocab, label_words) if (transcript or labels) else None
    regions, texts, toks, comma_so = _sentence_lines(*_units(parsed))
    a.regions, a.texts, a.toks = regions, texts, toks
    a.sets = sets = list(map(set, toks))
    a.contents = contents = list(map(sub, sets, repeat(_STOP_SHORT)))
    a.specifics = specifics = list(map(sub, contents, repeat(_HEADER_WORDS)))
    a.signals = signals = list(map(and_, sets, repeat(tr.signal if tr is not None else _SIGNAL)))
    copies = _copies(toks, signals, tr) if tr is not None and toks else None
    a.kinds = kinds = _kinds(toks, sets, contents, specifics, signals, copies)
    ok = [i for i, kind in enumerate(kinds) if kind == "ok"]
    a.ok_chars = sum([len(texts[i]) for i in ok])
    a.copied_chars = sum(map(len, compress(texts, copies))) if copies is not None else 0
    a.step_words = _step_words(ok, regions, specifics)
    # The sentences the vocabulary criteria read: those with signal words (all of them when a
    # ", so " may be in one).
    said = ok if comma_so else [i for i in ok if signals[i]]
    a.causal = _causal(a, said, comma_so, vocab, label_words)
    a.impact = _impact(a, said)
    a.actions = _actions(a, said)
    _faithfulness(a, tr, labels, label_words)
    return a


def _kinds(toks: list[list[str]], sets: list[set], contents: list[set], specifics: list[set], signals: list[set],
           copies: list[bool] | None) -> list[str]:
    """Each sentence's kind (``Sentence``): junk, thin, copy, dup (its words came before) or ok."""
    lorem = not _LOREM.isdisjoint(chain.from_iterable(signals))
    kinds = []
    seen: set[tuple] = set()
    for i, (sentence_toks, ts, content, specific, sig) in enumerate(zip(toks, sets, contents, specifics, signals)):
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
    return kinds


def _step_words(ok: list[int], regions: list[str], specifics: list[set]) -> dict[str, set]:
    """Step region: the distinct specific words of its sentences that earn content credit."""
    step_words: dict[str, set] = {}
    for i in ok:
        region = regions[i]
        if region in step_words:
            step_words[region] |= specifics[i]
        elif region[:4] == "step":
            step_words[region] = set(specifics[i])
    return step_words


def _causal(a: Analysed, said: list[int], comma_so: bool, vocab: frozenset,
            label_words: frozenset) -> tuple[int, int, float]:
    """(causal sentences, those grounded in the transcript or labels, their weight): at most
    ``CAUSAL_PER_UNIT`` from one step or part."""
    per_unit: dict[str, int] = {}
    n_causal = grounded = 0
    causal_weight = 0.0
    causal_single, causal_anchors = _CAUSAL[1], _CAUSAL[3]
    for i in said:
        content, sig, region = a.contents[i], a.signals[i], a.regions[i]
        if len(content) >= 3 and (
            not causal_single.isdisjoint(sig) or (comma_so and ", so " in a.texts[i].lower())
            or (not causal_anchors.isdisjoint(sig) and _multi(a.toks[i], sig, _CAUSAL))
        ):
            count_in_unit = per_unit.get(region, 0)
            if count_in_unit < CAUSAL_PER_UNIT:
                per_unit[region] = count_in_unit + 1
                n_causal += 1
                if a.grounding is None:
                    causal_weight += 1.0
                elif not vocab.isdisjoint(content) or not label_words.isdisjoint(content):
                    causal_weight += 1.0
                    grounded += 1
                else:
                    causal_weight += 0.5
    return n_causal, grounded, causal_weight


def _impact(a: Analysed, said: list[int]) -> tuple[dict[str, float], bool]:
    """(impact term: its best weight, whether one is stated with a direction or amount in Step 5
    / Business Actions)."""
    impact: dict[str, float] = {}
    impact_primary = False
    impact_single, impact_keys, _, impact_anchors = _IMPACT
    for i in said:
        sig = a.signals[i]
        if len(a.contents[i]) >= 3 and not _IMPACT_WORDS.isdisjoint(sig):
            found = list(map(impact_single.__getitem__, impact_keys & sig))
            if not impact_anchors.isdisjoint(sig):
                found.extend([canon for _, canon in _multi(a.toks[i], sig, _IMPACT)])
            if found:
                primary = a.regions[i] in _PRIMARY_IMPACT
                weight = 1.0 if primary else 0.5
                if _DIRECTION.isdisjoint(sig) and _AMOUNT_RE.search(a.texts[i]) is None:
                    weight *= 0.5
                elif primary:
                    impact_primary = True
                for term in found:
                    if impact.get(term, 0.0) < weight:
                        impact[term] = weight
    return impact, impact_primary


def _actions(a: Analysed, said: list[int]) -> tuple[int, int, set[str]]:
    """(action sentences in <insights>, those outside any part, the parts with one)."""
    n_actions = loose = 0
    parts_with: set[str] = set()
    _, action_keys, _, action_anchors = _ACTIONS
    for i in said:
        region, sig, sentence_toks = a.regions[i], a.signals[i], a.toks[i]
        if region[:8] == "insights" and not _ACTION_WORDS.isdisjoint(sig):
            # An action or modal verb followed, in the same sentence, by two specific content
            # words; the words after the earliest verb include those after any later one.
            ends = list(map(sentence_toks.index, action_keys & sig))   # + 1: the word after
            if not action_anchors.isdisjoint(sig):
                ends.extend([end - 1 for end, _ in _multi(sentence_toks, sig, _ACTIONS)])
            if ends and len((a.contents[i] - _GENERIC).intersection(sentence_toks[min(ends) + 1:])) >= 2:
                n_actions += 1
                if region == "insights":
                    loose += 1
                else:
                    parts_with.add(region[9:])
    return n_actions, loose, parts_with


def _faithfulness(a: Analysed, tr: _Transcript | None, labels: dict | None, label_words: frozenset) -> None:
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
