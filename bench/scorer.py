"""Throughput of the chain quality scorer: ``python bench/scorer.py [N] [--stages] [--chars=2000]``.

Builds N realistic chains by varying the test fixtures (names, amounts, sentence order inside
each step, a few truncated or untidy chains) and times ``score_chain`` over all of them on one
core, with the transcript and labels (as the generator scores) and without them. Each figure is
the best of 3 rounds, in chains per second of this process's CPU time (``time.process_time``),
so that other work on a shared machine distorts it less; wall-clock rates are shown alongside.
``--stages`` also times parsing, sentence analysis and each criterion separately;
``--chars=2000`` trims the chains to about that length (the fixtures are about 2,700).
``--processes N`` also scores the chains (with transcript+labels) split over N worker processes
and prints that rate on a separate line: chains per second of wall-clock time, all processes
together (what a multi-core generator gets), and the rate per process in CPU time.
``score_chain`` itself stays single-threaded; the lines above it are one core's figures.
"""

from __future__ import annotations

import multiprocessing
import platform
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from engine.chains import analysis, criteria  # noqa: E402
from engine.chains import quality as q  # noqa: E402
from engine.chains.chain import parse_chain, render_chain  # noqa: E402
from test_quality import FIXTURES  # noqa: E402

NAMES = ["Priya", "Marco", "Leah", "Sam", "Ana", "Kofi", "Mei", "Omar", "Ines", "Tomas"]
ROUNDS = 3


def vary(chain: str, rng: random.Random, chars: int | None = None, transcript: str = "") -> tuple[str, str]:
    """A variant of a fixture chain and its transcript (the same names and amounts swapped in
    both, so the variant stays faithful to its call); with ``chars``, trimmed to about that
    length by dropping the last sentence of the longest step until it fits."""
    p = parse_chain(chain)
    steps = {}
    for s in p["steps"]:
        sents = re.split(r"(?<=[.!?])\s+", s["body"])
        if len(sents) > 2 and rng.random() < 0.5:
            head, tail = sents[0], sents[1:]
            rng.shuffle(tail)
            sents = [head] + tail
        steps[s["n"]] = sents
    while True:
        text = render_chain({n: " ".join(v) for n, v in steps.items()}, p["parts"]["analysis"],
                            p["parts"]["insights"], p["final_answer"])
        longest = max(steps.values(), key=lambda v: len(" ".join(v)))
        if chars is None or len(text) <= chars or len(longest) < 2:
            break
        longest.pop()
    for name in ("Priya", "Marco", "Leah"):
        new = rng.choice(NAMES)
        text, transcript = text.replace(name, new), transcript.replace(name, new)
    amounts: dict[str, str] = {}
    for m in re.finditer(r"\$(\d+)\.(\d\d)", text):
        amounts.setdefault(m.group(), f"${rng.randint(10, 200)}.{m.group(2)}")
    for old, new in amounts.items():
        text, transcript = text.replace(old, new), transcript.replace(old, new)
    if rng.random() < 0.3:  # typographic punctuation, as models often write
        text = text.replace("'", "\u2019").replace(" - ", " \u2013 ", 3)
    roll = rng.random()
    if roll < 0.05:      # truncated generation
        text = text[: rng.randint(300, len(text))]
    elif roll < 0.10:    # missing closer and chatter around
        text = "Sure, here is the analysis.\n" + text.replace("</analysis>", "") + "\nLet me know!"
    return text, transcript


def build(n: int, seed: int = 0, chars: int | None = None):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        task, labels, transcript, chain = FIXTURES[i % len(FIXTURES)]
        text, transcript = vary(chain, rng, chars, transcript)
        out.append((text, task, labels, transcript))
    return out


def best_rate(fn, items) -> tuple[float, float]:
    """Best-of-ROUNDS rates; results are dropped as they come, as the generator does."""
    best_cpu = best_wall = float("inf")
    for _ in range(ROUNDS):
        w0, c0 = time.perf_counter(), time.process_time()
        for item in items:
            fn(item)
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return len(items) / best_cpu, len(items) / best_wall


_CHUNKS: list = []   # the shares of the chains, copied into each worker once (not per round)


def _init_worker(chunks: list) -> None:
    _CHUNKS[:] = chunks


def _score_chunk(index: int) -> tuple[int, float]:
    """Score one share of the chains: (number of chains, CPU seconds)."""
    c0 = time.process_time()
    for text, task, labels, transcript in _CHUNKS[index]:
        q.score_chain(text, task, labels, transcript)
    return len(_CHUNKS[index]), time.process_time() - c0


def multi_rate(items, processes: int) -> tuple[float, float]:
    """Best-of-ROUNDS rates of ``processes`` workers scoring ``items`` in ``processes`` shares:
    (chains per second of wall-clock time for all of them, chains per second of CPU time per
    worker, all shares together)."""
    chunks = [items[i::processes] for i in range(processes)]
    best_wall, best_cpu = float("inf"), float("inf")
    with multiprocessing.Pool(processes, initializer=_init_worker, initargs=(chunks,)) as pool:
        pool.map(_score_chunk, range(processes), chunksize=1)   # warm-up
        for _ in range(ROUNDS):
            w0 = time.perf_counter()
            done = pool.map(_score_chunk, range(processes), chunksize=1)
            best_wall = min(best_wall, time.perf_counter() - w0)
            best_cpu = min(best_cpu, sum(cpu for _, cpu in done))
    return len(items) / best_wall, len(items) / best_cpu


def main() -> None:
    """Print the rates (see the module docstring)."""
    argv = sys.argv[1:]
    args = [a for i, a in enumerate(argv) if not a.startswith("--") and (i == 0 or argv[i - 1] != "--processes")]
    n = int(args[0]) if args else 10000
    chars = next((int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--chars=")), None)
    items = build(n, chars=chars)
    avg_chars = sum(len(t) for t, *_ in items) / n
    print(f"python {platform.python_version()} on {platform.machine()} ({platform.processor() or 'cpu'}); "
          f"{n} chains, {avg_chars:.0f} characters on average")
    for label, fn in (
        ("with transcript+labels", lambda it: q.score_chain(it[0], it[1], it[2], it[3])),
        ("text only", lambda it: q.score_chain(it[0])),
    ):
        cpu, wall = best_rate(fn, items)
        s = q.summarize(fn(it) for it in items)
        print(f"{label:24s} {cpu:8,.0f} chains/s of CPU time ({wall:,.0f}/s wall); "
              f"average {s['average']}, share>=70 {s['share_ge_70']:.1%}")
    print(f"the plan's 25,790 chains: about {25790 / cpu:.1f} s of one core")
    procs = next((int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--processes=")), None)
    if "--processes" in sys.argv[1:]:
        procs = int(sys.argv[sys.argv.index("--processes") + 1])
    if procs:
        wall, cpu = multi_rate(items, procs)
        print(f"{procs} processes (with transcript+labels): {wall:,.0f} chains/s of wall-clock time, all processes "
              f"together ({cpu:,.0f}/s of CPU time per process; {multiprocessing.cpu_count()} CPUs here)")
    if "--stages" in sys.argv:
        parsed = [parse_chain(t) for t, *_ in items]
        analysed = [analysis.analyse(t, tr, lb, parsed=p) for (t, _, lb, tr), p in zip(items, parsed)]
        stages = [
            ("parse_chain", lambda it: parse_chain(it[0]), items),
            ("analyse (after parse)", lambda ip: analysis.analyse(ip[0][0], ip[0][3], ip[0][2], parsed=ip[1]),
             list(zip(items, parsed))),
        ]
        for name in q.CRITERIA:
            fn = getattr(criteria, f"criterion_{name}")
            if name == "label_agreement":
                stages.append((name, lambda ai, fn=fn: fn(ai[0], ai[1][1], ai[1][2]), list(zip(analysed, items))))
            else:
                stages.append((name, fn, analysed))
        for name, fn, arg in stages:
            cpu, _ = best_rate(fn, arg)
            print(f"  {name:22s} {1e6 / cpu:7.1f} us per chain")


if __name__ == "__main__":
    main()
