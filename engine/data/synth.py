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

This module assembles examples and writes the files; the parts live beside it:
``calls`` samples the events, ``labels`` holds the label rules, ``render`` writes the transcript,
``reference`` the reference answer, ``vocabulary`` all the words, ``pick`` the seeded choices.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

from engine.core.fileio import atomic_write
from engine.data.calls import sample_call
from engine.data.labels import call_facts, labels_for
from engine.data.reference import reference_answer
from engine.data.render import render_transcript
from engine.data.tasks import SYSTEM_PROMPT, TASKS, user_content

PRESETS = {
    "demo": {"train": 300, "validation": 60, "test": 60},
    "plan": {"train": 25790, "validation": 3223, "test": 3225},
}
SPLITS = ("train", "validation", "test")

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
