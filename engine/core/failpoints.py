"""Failpoints: named places in the engine where a fault test can hold a process, then kill or
stop it exactly there (the pattern of etcd's gofail and TiKV's fail-rs).

Why: a test that sleeps and then kills proves nothing on a machine five times faster (the work
is over before the kill) or slower (the kill lands before the work began). Holding the process
at a named point turns "kill it mid-run" into an observed event.

Off unless ``CCR_FAILPOINTS`` is set (then one environment read per hit). The variable lists
``name=N`` pairs separated by commas, e.g. ``CCR_FAILPOINTS="train.step=5"``: the process that
reaches ``hit("train.step", 5)`` writes ``$CCR_FAILPOINT_DIR/train.step-5.held`` (its pid inside)
and waits until a test deletes that file. Where a hit passes no value, N counts the hits of that
name in this process (``import.batch=1``: after the first committed import batch).

The points: ``train.step`` (end of each optimizer step, before the stop check; N = global
step), ``import.batch`` (after each committed import batch, before the stop check).
Children started by the job engine inherit the environment, so a test sets the variable before
the job's process starts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "CCR_FAILPOINTS"
DIR_ENV = "CCR_FAILPOINT_DIR"
_hits: dict[str, int] = {}


def armed() -> dict[str, int]:
    """The failpoints set in the environment, ``{name: N}`` (empty when off)."""
    spec = os.environ.get(ENV, "")
    points = {}
    for part in spec.split(","):
        name, _, value = part.strip().partition("=")
        if name and value.strip().isdigit():
            points[name] = int(value)
    return points


def held_file(name: str, n: int) -> Path:
    """The file whose presence says a process is held at ``name`` = ``n`` (a test deletes it to release)."""
    return Path(os.environ.get(DIR_ENV) or ".") / f"{name}-{n}.held"


def hit(name: str, value: int | None = None) -> None:
    """Hold here while ``name`` is armed at this value (or at this hit count when ``value`` is None)."""
    if ENV not in os.environ:
        return
    _hits[name] = _hits.get(name, 0) + 1
    n = _hits[name] if value is None else int(value)
    if armed().get(name) != n:
        return
    marker = held_file(name, n)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(os.getpid()))
    while marker.exists():
        time.sleep(0.01)
