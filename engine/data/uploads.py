"""Files that come in through the app: an upload saved under the home's ``uploads`` folder (for an
import or a batch inference), a temporary copy for functions that read a path, the file an
export writes to, and an uploaded file's line count."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from engine.core.paths import Home


def safe_name(name: str) -> str:
    """``name`` with everything but letters, digits, ``.``, ``_`` and ``-`` replaced (a path part)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def save_upload(home: Home, content: bytes, filename: str | None, default: str) -> Path:
    """Write an upload to ``HOME/uploads/DATE-TIME-NAME`` (the name made safe; ``default`` when
    nothing is left of it) and return the path."""
    safe = safe_name(Path(filename or default).name)[:120] or default
    target = home.data / "uploads" / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    return target


def export_path(home: Home, dataset: str, split: str | None, task: str | None) -> Path:
    """``HOME/exports/NAME-SPLIT[-TASK].jsonl`` for a dataset export (its folder created)."""
    safe = safe_name(dataset).strip("._")[:120] or "dataset"
    out = home.data / "exports" / f"{safe}-{split or 'all'}{'-' + task if task else ''}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


@contextlib.contextmanager
def temp_copy(content: bytes, prefix: str = "ccr-", suffix: str = ".jsonl") -> Iterator[str]:
    """The bytes in a temporary file for the block, for functions that read a path (removed after)."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        yield tmp
    finally:
        os.unlink(tmp)


def count_lines(content: bytes | None) -> int:
    """Non-blank lines of a file's bytes (batch inference's input size)."""
    return sum(1 for line in (content or b"").splitlines() if line.strip())
