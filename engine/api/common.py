"""What every entry point of ``engine.api`` shares: the home folder, a connection, queueing a job
(a second press of the same button returns the first job), and the checks made before a job
is queued rather than inside it."""

from __future__ import annotations

import contextlib
import os
import re

from engine.core import jobs, store
from engine.core.paths import Home, resolve_home

# The home folder ``ccr --home DIR`` names while its command runs (``home_at``); None: CCR_HOME
# or the checkout's folders. A module setting rather than a parameter of every entry point, so
# that the pages' calls stay as they are.
_HOME: str | None = None


def home() -> Home:
    return resolve_home(_HOME or os.environ.get("CCR_HOME")).ensure()


@contextlib.contextmanager
def home_at(path: str | os.PathLike | None):
    """Run the entry points inside the block on ``path`` (``ccr --home DIR``); None changes nothing."""
    global _HOME
    before = _HOME
    _HOME = str(path) if path else before
    try:
        yield
    finally:
        _HOME = before


def db():
    return store.connect(home())


def enqueue(kind: str, config: dict, title: str, dedupe_key: str | None = None) -> int:
    try:
        return jobs.enqueue(home(), kind, config, title=title, dedupe_key=dedupe_key)
    except store.DuplicateJob as exc:
        return exc.job_id


def parse_overrides(text: str | list | None) -> list[str]:
    """``key=value`` overrides from a list, or from a text box (one a line, ``#`` comments)."""
    if not text:
        return []
    if isinstance(text, list):
        return [t.strip() for t in text if t.strip()]
    return [line.strip() for line in re.split(r"[\n]+", text) if line.strip() and not line.strip().startswith("#")]


def refuse_model_path(name: str) -> None:
    """Raise PathNotAllowed (a ValueError) for a model folder outside the allowed folders, now
    rather than in the job; a model that is merely missing is left for the job to report."""
    from engine.core.model_catalog import ModelNotAvailable, resolve_model

    try:
        resolve_model(name, home())
    except ModelNotAvailable:
        pass


def run_job(kind: str, config: dict, title: str, echo: bool = True) -> dict:
    """Run a job in this process and return its row (``ccr``: the command waits for its job, which
    the app still shows live and can cancel or pause)."""
    return jobs.run_inline(home(), kind, config, title=title, echo=echo)
