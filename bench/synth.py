"""Throughput of the synthetic data generator: ``python bench/synth.py [preset ...]``.

Times ``write_synth`` (generation, JSON encoding and the atomic fsync'd writes) into a temp
folder for each preset (default: demo, then plan) and prints lines, seconds, lines/s, CPU
seconds and the bytes written. CPU seconds are shown because wall time on a shared 2-core
machine moves with whatever else is running.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.data.synth import PRESETS, write_synth  # noqa: E402


def bench(preset: str, seed: int = 0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cpu0, t0 = time.process_time(), time.perf_counter()
        result = write_synth(tmp, preset, seed)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        size = sum(os.path.getsize(p) for p in result["files"].values())
    lines = sum(result["counts"].values())
    return {"preset": preset, "lines": lines, "seconds": wall, "cpu_seconds": cpu,
            "lines_per_s": lines / wall, "mb": size / 1e6, "counts": result["counts"]}


def main(argv: list[str]) -> None:
    presets = argv or ["demo", "plan"]
    for preset in presets:
        if preset not in PRESETS:
            raise SystemExit(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        r = bench(preset)
        print(f"{r['preset']:>5}: {r['lines']:>6} lines in {r['seconds']:6.2f} s "
              f"({r['lines_per_s']:,.0f} lines/s, {r['cpu_seconds']:.2f} s CPU, {r['mb']:.1f} MB) {r['counts']}")


if __name__ == "__main__":
    main(sys.argv[1:])
