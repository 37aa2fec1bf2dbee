"""What the quality scorer reads from a transcript, computed once per transcript.

``_transcript_info`` returns (and caches: a retry scores the same transcript again) a
``_Transcript``: the words and their positions for copy detection
(engine/chains/analysis.py) and grounding (engine/chains/grounding.py), and, on first use, the
numbers it states, the customer's mood in their last words and whether it has a hold or a
transfer (engine/chains/consistency.py).
"""

from __future__ import annotations

from functools import lru_cache

from engine.chains.vocabulary import _NUM_RE, _SIGNAL, _STOP, _TRANSCRIPT_GENERIC, _number_key, _tokens

# How a transcript names a transfer (the consistency check reads the words in a chain too).
_TRANSFER_PHRASES = (" connect you to ", " put you through ", " bring in our ", " pass you to ", " hand you over ")
_TRANSFER_WORDS = frozenset(("transfer", "transfers", "transferred", "transferring"))


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
