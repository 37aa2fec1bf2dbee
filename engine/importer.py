"""Reading users' files: ChatML JSONL and CSV, streamed line by line, every bad line explained.

``read_records(path)`` yields ``(line_no, example_or_None, reason_or_None)`` and never raises
for bad content: a bad line is reported as ``FILE:LINE: reason`` by the caller and the lines
around it are kept. It never holds more than one line in memory, so a 50 MB file streams.
Text is kept verbatim: HTML, script tags and fake reasoning tags in a transcript are data.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from engine import tasks

MAX_LINE_BYTES = 1 << 20  # 1 MiB
ROLES = ("system", "user", "assistant")
SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                 "val": "validation", "dev": "validation", "test": "test", "testing": "test"}
CSV_COLUMNS = ("transcript", "answer", "id", "task", "split", "system", "instruction", "csat", "quality", "churn",
               "sentiment", "sentiment_trajectory", "root_cause", "coaching")


class ImportFileError(OSError):
    """The file as a whole cannot be read (missing, a folder, unknown format)."""


def split_from_name(path: str | os.PathLike) -> str | None:
    """``train_chatml.jsonl`` -> ``train``; ``calls.jsonl`` -> None.

    >>> split_from_name("data/valid-2024.jsonl")
    'validation'
    """
    for token in re.split(r"[^a-z]+", Path(path).stem.lower()):
        if token in SPLIT_ALIASES:
            return SPLIT_ALIASES[token]
    return None


def dataset_from_name(path: str | os.PathLike) -> str:
    """A default dataset name: the file stem without split and format words, else the folder name.

    >>> dataset_from_name("/x/acme_calls_train.jsonl")
    'acme_calls'
    >>> dataset_from_name("/x/synth-demo/test_chatml.jsonl")
    'synth-demo'
    """
    path = Path(path)
    words = [w for w in re.split(r"[_\-.\s]+", path.stem) if w and w.lower() not in SPLIT_ALIASES
             and w.lower() not in ("chatml", "jsonl", "data")]
    return "_".join(words) if words else (path.parent.name or "imported")


def _surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _text_problem(value, where: str) -> str | None:
    if not isinstance(value, str):
        return f"{where} is not text ({type(value).__name__})"
    if _surrogate(value):
        return f"{where} contains a lone surrogate (invalid Unicode)"
    if "\x00" in value:
        return f"{where} contains a NUL character"
    return None


def _walk_strings(value, path: str = "meta") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str):
                yield f"{path} key", k
            yield from _walk_strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk_strings(v, f"{path}[{i}]")


def validate_chatml(obj, default_split: str | None = None) -> tuple[dict | None, str | None]:
    """Check one decoded JSON line; returns (example, None) or (None, reason).

    >>> validate_chatml({"messages": [{"role": "user", "content": "Customer: hi"}]})[1] is None
    True
    >>> validate_chatml({"messages": [{"role": "bot", "content": "x"}]})[1]
    "messages[0]: unknown role 'bot' (expected system, user or assistant)"
    """
    if not isinstance(obj, dict):
        return None, f"not a JSON object ({type(obj).__name__})"
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return None, "messages is missing or not a non-empty list"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            return None, f"messages[{i}] is not an object with role and content"
        if m["role"] not in ROLES:
            return None, f"messages[{i}]: unknown role {m['role']!r} (expected system, user or assistant)"
        problem = _text_problem(m["content"], f"messages[{i}].content")
        if problem:
            return None, problem
    users = [m for m in messages if m["role"] == "user"]
    if not users:
        return None, "no user turn"
    transcript, _ = tasks.split_user_content(users[0]["content"])
    if not transcript.strip():
        return None, "empty transcript"
    meta = obj.get("meta", {})
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        return None, "meta is not an object"
    for where, text in _walk_strings(meta):
        if _surrogate(text):
            return None, f"{where} contains a lone surrogate (invalid Unicode)"
    # Top-level task/labels/id are accepted too (some exporters put them there).
    meta = dict(meta)
    for key in ("id", "task", "labels", "split"):
        if key not in meta and key in obj:
            meta[key] = obj[key]
    task = meta.get("task")
    if task is not None and not isinstance(task, str):
        return None, f"meta.task is not text ({type(task).__name__})"
    labels = meta.get("labels")
    if labels is None:
        labels = {}
        assistant = [m for m in messages if m["role"] == "assistant"]
        if task in tasks.TASKS and assistant:
            labels = tasks.parse_answer(task, assistant[-1]["content"]) or {}
    if not isinstance(labels, dict):
        return None, "meta.labels is not an object"
    errors = tasks.validate_labels(labels)
    if errors:
        return None, errors[0]
    ex_id = meta.get("id")
    if ex_id is None or ex_id == "":
        digest = hashlib.sha1(json.dumps(messages, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()
        ex_id = f"h-{digest[:16]}"
    elif not isinstance(ex_id, (str, int)) or isinstance(ex_id, bool):
        return None, f"meta.id is not text or a number ({type(ex_id).__name__})"
    ex_id = str(ex_id)
    split = meta.get("split") or default_split or "train"
    split = SPLIT_ALIASES.get(str(split).lower())
    if split is None:
        return None, f"unknown split {meta.get('split')!r} (expected train, validation or test)"
    meta.update({"id": ex_id, "labels": labels})
    if task is not None:
        meta["task"] = task
    return {"split": split, "ex_id": ex_id, "task": task, "messages": messages, "meta": meta,
            "labels": labels, "transcript": transcript}, None


def _read_lines(path: Path) -> Iterator[tuple[int, bytes | None, str | None]]:
    """(line_no, raw bytes, None) or (line_no, None, 'line over 1 MiB') without reading a long line whole."""
    with open(path, "rb") as fh:
        line_no = 0
        while True:
            chunk = fh.readline(MAX_LINE_BYTES + 1)
            if not chunk:
                return
            line_no += 1
            if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
                while chunk and not chunk.endswith(b"\n"):  # skip the rest of the line
                    chunk = fh.readline(MAX_LINE_BYTES)
                yield line_no, None, f"line over 1 MiB ({MAX_LINE_BYTES} bytes)"
                continue
            yield line_no, chunk, None


def read_jsonl(path: Path, default_split: str | None = None) -> Iterator[tuple[int, dict | None, str | None]]:
    for line_no, raw, problem in _read_lines(path):
        if problem:
            yield line_no, None, problem
            continue
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # UTF-8 byte-order mark
        if not raw.strip():
            continue  # blank lines are not records
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield line_no, None, f"invalid UTF-8 at byte {exc.start}"
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield line_no, None, f"invalid JSON ({exc.msg} at column {exc.colno})"
            continue
        except RecursionError:
            yield line_no, None, "invalid JSON (nested too deeply)"
            continue
        example, reason = validate_chatml(obj, default_split)
        yield line_no, example, reason


def _csv_labels(row: dict) -> tuple[dict, str | None]:
    labels: dict = {}
    for key in ("csat", "quality"):
        value = (row.get(key) or "").strip()
        if value:
            try:
                number = float(value)
            except ValueError:
                return {}, f"column {key}: {value!r} is not a number"
            labels[key] = int(number) if number.is_integer() else number
    for key in ("churn", "sentiment", "sentiment_trajectory", "root_cause"):
        value = (row.get(key) or "").strip()
        if value:
            labels[key] = value.lower().replace(" ", "_") if key == "root_cause" else value.lower()
    value = (row.get("coaching") or "").strip()
    if value:
        items = [v.strip().lower().replace(" ", "_") for v in re.split(r"[,;]", value) if v.strip()]
        labels["coaching"] = [] if items == ["none"] else items
    return labels, None


def read_csv(path: Path, default_split: str | None = None) -> Iterator[tuple[int, dict | None, str | None]]:
    """CSV with a header row; columns in ``CSV_COLUMNS`` (``transcript`` and ``answer`` required).

    Line numbers are the physical line where each record starts, so a quoted transcript over
    several lines is reported at its first line.
    """
    with open(path, "rb") as raw:
        head = raw.read(3)
    encoding = "utf-8-sig" if head == b"\xef\xbb\xbf" else "utf-8"
    with open(path, "r", encoding=encoding, errors="surrogateescape", newline="") as fh:
        line_counter = _CountingLines(fh)
        reader = csv.DictReader(line_counter)
        try:
            header = reader.fieldnames
        except csv.Error as exc:
            yield 1, None, f"CSV header cannot be read ({exc})"
            return
        if not header or "transcript" not in header or "answer" not in header:
            yield 1, None, "CSV header must name the columns transcript and answer"
            return
        unknown = [h for h in header if h not in CSV_COLUMNS]
        if unknown:
            yield 1, None, f"unknown CSV column {unknown[0]!r} (known: {', '.join(CSV_COLUMNS)})"
            return
        while True:
            start = line_counter.lines + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, None, f"CSV error ({exc})"
                continue
            if None in row:
                yield start, None, f"more fields than the header has columns"
                continue
            bad = [k for k, v in row.items() if isinstance(v, str) and _surrogate(v)]
            if bad:
                yield start, None, f"invalid UTF-8 in column {bad[0]}"
                continue
            transcript = (row.get("transcript") or "").strip()
            answer = row.get("answer") or ""
            if not transcript:
                yield start, None, "empty transcript"
                continue
            if len(transcript.encode("utf-8")) + len(answer.encode("utf-8")) > MAX_LINE_BYTES:
                yield start, None, f"record over 1 MiB ({MAX_LINE_BYTES} bytes)"
                continue
            labels, problem = _csv_labels(row)
            if problem:
                yield start, None, problem
                continue
            task = (row.get("task") or "").strip() or None
            instruction = (row.get("instruction") or "").strip()
            if task in tasks.TASKS and not instruction:
                user = tasks.user_content(transcript, task)
            else:
                user = f"{tasks.TRANSCRIPT_HEADER}\n\n{transcript}" + (f"\n\n{tasks.TASK_HEADER} {instruction}" if instruction else "")
            messages = [{"role": "system", "content": (row.get("system") or "").strip() or tasks.SYSTEM_PROMPT},
                        {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
            meta = {"labels": labels}
            if task:
                meta["task"] = task
            if (row.get("id") or "").strip():
                meta["id"] = row["id"].strip()
            if (row.get("split") or "").strip():
                meta["split"] = row["split"].strip()
            example, reason = validate_chatml({"messages": messages, "meta": meta}, default_split)
            yield start, example, reason


class _CountingLines(io.TextIOBase):
    """Wraps a text file for csv, counting physical lines read so records get line numbers."""

    def __init__(self, fh):
        self.fh = fh
        self.lines = 0

    def __iter__(self):
        return self

    def __next__(self):
        line = self.fh.readline()
        if not line:
            raise StopIteration
        self.lines += 1
        return line


def read_records(path: str | os.PathLike, default_split: str | None = None) -> Iterator[tuple[int, dict | None, str | None]]:
    """Yield ``(line, example, None)`` for good lines and ``(line, None, reason)`` for bad ones."""
    path = Path(path)
    if not path.exists():
        raise ImportFileError(f"{path}: no such file")
    if not path.is_file():
        raise ImportFileError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise ImportFileError(f"{path}: permission denied")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return read_jsonl(path, default_split)
    if suffix in (".csv",):
        return read_csv(path, default_split)
    raise ImportFileError(f"{path}: unknown format {suffix or '(no extension)'}; expected .jsonl or .csv")
