"""Seeded picks shared by the call sampler, the label noise, the transcript and the rationale.

Every draw in the synthetic data goes through ``random.Random`` methods or these two helpers, in a
fixed order, which is what makes an example a pure function of its seed string.
"""

from __future__ import annotations

import random


def pick(rng: random.Random, seq):
    # rng.choice is ~10x slower (it goes through _randbelow); this keeps the plan preset fast.
    return seq[int(rng.random() * len(seq))]


def pick_weighted(rng: random.Random, pairs) -> str:
    r = rng.random() * sum(w for _, w in pairs)
    for item, w in pairs:
        r -= w
        if r < 0:
            return item
    return pairs[-1][0]
