"""Reading users' files: ChatML JSONL and CSV, streamed line by line, every bad line explained.

``read_records(path)`` yields ``(line_no, example_or_None, reason_or_None)`` and never raises
for bad content: a bad line is reported as ``FILE:LINE: reason`` by the caller and the lines
around it are kept. It never holds more than one line in memory, so a 50 MB file streams.

Every line is checked completely before it is handed on, so that nothing later (the hash of the
id, ``json.dumps`` at insert, SQLite's UTF-8 encoding, a reader of the export) can fail on it:
valid UTF-8, strict JSON (no duplicate keys, no NaN/Infinity), integers within 64 bits, finite
floats, no lone surrogate in any string or key, at most ``MAX_DEPTH`` levels of nesting, the
ChatML turn order and the labels' ranges. A JSONL example carries ``raw``, the line's own text,
which is what the dataset export writes back: the line is kept verbatim, unknown fields included.
Text is kept verbatim too: HTML, script tags and fake reasoning tags in a transcript are data.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

from engine.data import tasks
from engine.data.example import ChatMLError, quote, read_example

MAX_LINE_BYTES = 1 << 20  # 1 MiB: a JSONL line, or a CSV record (all its fields together)
MAX_DEPTH = 64  # nesting levels of one line; ChatML needs 4 (line, messages, message, value)
INT_RANGE = (-(1 << 63), (1 << 63) - 1)  # what SQLite's INTEGER and most JSON readers hold exactly
# Labels are read from the end of the answer only: the answer line is its last line, and the
# answer patterns in engine.data.tasks can take quadratic time on long runs of blanks.
ANSWER_TAIL_CHARS = 1000
SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                 "val": "validation", "dev": "validation", "test": "test", "testing": "test"}
# More words that mark a file name as one split (never accepted as a meta.split value). Held-out
# words map to test: storing evaluation data as train is the mistake that must not happen silently.
NAME_SPLIT_WORDS = {**SPLIT_ALIASES, "trainset": "train", "valset": "validation", "devset": "validation",
                    "testset": "test", "holdout": "test", "heldout": "test", "eval": "test", "evaluation": "test"}
CSV_COLUMNS = ("transcript", "answer", "id", "task", "split", "system", "instruction", "csat", "quality", "churn",
               "sentiment", "sentiment_trajectory", "root_cause", "coaching")


class ImportFileError(OSError):
    """The file as a whole cannot be read (missing, a folder, unknown format)."""


class _Reject(ValueError):
    """Raised from the JSON parser's hooks: the line is refused with this reason."""


def split_from_name(path: str | os.PathLike) -> str | None:
    """The split a file name names, or None when it names none (or two different ones).

    >>> split_from_name("data/valid-2024.jsonl"), split_from_name("calls.jsonl")
    ('validation', None)
    >>> split_from_name("acme_held-out_calls.jsonl"), split_from_name("train_test_split.jsonl")
    ('test', None)
    """
    words = [w for w in re.split(r"[^a-z]+", Path(path).stem.lower()) if w]
    words += [a + b for a, b in zip(words, words[1:])]  # "held-out" -> "heldout"
    found = {NAME_SPLIT_WORDS[w] for w in words if w in NAME_SPLIT_WORDS}
    return found.pop() if len(found) == 1 else None


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


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def printable(text: str) -> str:
    """``text`` safe to print, store and encode: a lone surrogate becomes a ``\\udXXX`` escape.

    >>> printable("caf\\udce9.jsonl")
    'caf\\\\udce9.jsonl'
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _path_text(path: tuple) -> str:
    """('meta', 'a', 0) -> 'meta.a[0]'; keys are escaped and capped."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = repr(part)[1:-1]  # control characters and surrogates escaped: a reason is one line
            key = key if len(key) <= 40 else key[:37] + "..."
            out += f".{key}" if out else key
    return out or "the line"


def _check_tree(obj) -> str | None:
    """Depth and string problems anywhere in a parsed line, keys included; iterative, so a deep
    line can never raise RecursionError here."""
    stack = [(obj, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep (at {_path_text(path[:3])}...)"
        if isinstance(value, str):
            if not _encodable(value):
                return f"{_path_text(path)} contains a lone surrogate (invalid Unicode)"
        elif isinstance(value, dict):
            for key, item in reversed(list(value.items())):  # reversed: the first problem in line order
                if not _encodable(key):
                    return f"a key in {_path_text(path)} contains a lone surrogate (invalid Unicode)"
                stack.append((item, depth + 1, path + (key,)))
        elif isinstance(value, list):
            for i in range(len(value) - 1, -1, -1):
                stack.append((value[i], depth + 1, path + (i,)))
    return None


# A lone surrogate can only come from a \uD800-\uDFFF escape (the bytes are valid UTF-8), and
# deep nesting needs many brackets: lines with neither skip the tree walk (most lines).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _needs_tree_check(text: str) -> bool:
    return bool(_SURROGATE_ESCAPE.search(text)) or text.count("[") + text.count("{") > MAX_DEPTH


def _parse_int(text: str) -> int:
    # Checked before int(): Python refuses more than 4,300 digits with a ValueError of its own.
    if len(text) > 20:
        raise _Reject(f"integer with {len(text.lstrip('-'))} digits is out of range (64-bit integers only)")
    value = int(text)
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise _Reject(f"integer {text} is out of range (64-bit integers only)")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Reject(f"number {text if len(text) <= 40 else text[:37] + '...'} is out of range (not a finite number)")
    return value


def _parse_constant(name: str):
    raise _Reject(f"{name} is not valid JSON (NaN and Infinity are refused)")


def _unique_keys(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _Reject(f"duplicate key {quote(key)} in one object")
            seen.add(key)
    return obj


def parse_line(text: str):
    """Strict JSON for one line: raises ``_Reject`` (a ValueError) with the reason.

    >>> for text in ('{"a": 1, "a": 2}', '[NaN]', '{"n": 1e999}', '"abc'):
    ...     try:
    ...         parse_line(text)
    ...     except ValueError as exc:
    ...         print(exc)
    duplicate key 'a' in one object
    NaN is not valid JSON (NaN and Infinity are refused)
    number 1e999 is out of range (not a finite number)
    invalid JSON (Unterminated string starting at column 1)
    """
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_int=_parse_int, parse_float=_parse_float,
                          parse_constant=_parse_constant)
    except json.JSONDecodeError as exc:
        # Some of json's messages end in "at" ("Unterminated string starting at"); ours adds the column.
        msg = exc.msg[:-3] if exc.msg.endswith(" at") else exc.msg
        raise _Reject(f"invalid JSON ({msg} at column {exc.colno})") from None
    except RecursionError:
        raise _Reject(f"nested more than {MAX_DEPTH} levels deep") from None


def _answer_labels(task: str, answer: str) -> dict:
    tail = answer[-ANSWER_TAIL_CHARS:]
    if len(answer) > ANSWER_TAIL_CHARS and "\n" in tail:
        tail = tail[tail.index("\n") + 1:]  # whole lines only
    return tasks.parse_answer(task, tail) or {}


def validate_chatml(obj, default_split: str | None = None, check_tree: bool = True) -> tuple[dict | None, str | None]:
    """Check one decoded JSON line; returns (example, None) or (None, reason).

    ``check_tree=False`` skips the walk over every string and level, for a caller that knows
    the line can hold neither a lone surrogate nor deep nesting (``_needs_tree_check``).

    >>> validate_chatml({"messages": [{"role": "user", "content": "Customer: hi"},
    ...                               {"role": "assistant", "content": "CSAT: 4/5"}]})[1] is None
    True
    >>> validate_chatml({"messages": [{"role": "bot", "content": "x"}]})[1]
    "messages[0]: unknown role 'bot' (expected system, user or assistant)"
    """
    problem = _check_tree(obj) if check_tree and isinstance(obj, dict) else None
    if problem:
        return None, problem
    try:
        example = read_example(obj, strict=True)
    except ChatMLError as exc:
        return None, str(exc)
    messages, meta, transcript = example.messages, example.meta, example.transcript
    task = meta.get("task")
    if task is not None and not isinstance(task, str):
        return None, f"meta.task is not text ({type(task).__name__})"
    labels = meta.get("labels")
    if labels is None:
        labels = _answer_labels(task, messages[-1]["content"]) if task in tasks.TASKS else {}
    if not isinstance(labels, dict):
        return None, f"meta.labels is not an object ({type(labels).__name__})"
    errors = tasks.validate_labels(labels)
    if errors:
        return None, errors[0] if len(errors[0]) <= 200 else errors[0][:197] + "..."
    ex_id = meta.get("id")
    if ex_id is None or ex_id == "":
        digest = hashlib.sha1(json.dumps(messages, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()
        ex_id = f"h-{digest[:16]}"
    elif not isinstance(ex_id, (str, int)) or isinstance(ex_id, bool):
        return None, f"meta.id is not text or a number ({type(ex_id).__name__})"
    ex_id = str(ex_id)
    split = meta.get("split")
    if split is None or split == "":
        split = default_split or "train"
    elif not isinstance(split, str) or split.lower() not in SPLIT_ALIASES:
        return None, f"unknown split {quote(split)} (expected train, validation or test)"
    split = SPLIT_ALIASES[split.lower()]
    meta.update({"id": ex_id, "labels": labels})
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
    """Each non-blank line as an example (with ``raw``: the line's text without its newline) or a reason."""
    for line_no, raw, problem in _read_lines(path):
        if problem:
            yield line_no, None, problem
            continue
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # UTF-8 byte-order mark: the file's, not the line's
        if not raw.strip():
            continue  # blank lines are not records
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield line_no, None, f"invalid UTF-8 at byte {exc.start}"
            continue
        text = text[:-1] if text.endswith("\n") else text
        try:
            example, reason = validate_chatml(parse_line(text), default_split, check_tree=_needs_tree_check(text))
        except _Reject as exc:
            example, reason = None, str(exc)
        except Exception as exc:  # a check that failed in an unforeseen way costs this line only
            example, reason = None, f"line could not be checked ({type(exc).__name__}: {quote(str(exc), 120)})"
        if example is not None:
            example["raw"] = text
        yield line_no, example, reason


def _csv_number(key: str, value: str) -> tuple[int | float | None, str | None]:
    """A CSV cell read as the same text would be read in JSON: "3" is an integer, "3.0" a float.

    So ``csat`` 3.0 is refused in both formats (CSAT is an integer 1-5; a decimal point usually
    means the column went through a float type, and guessing would hide it), and ``quality``
    87.5 is accepted in both.

    >>> _csv_number("csat", "3"), _csv_number("csat", "3.0"), _csv_number("csat", "nan")[1]
    ((3, None), (3.0, None), "column csat: 'nan' is not a number")
    """
    try:
        if re.fullmatch(r"[+-]?\d+", value):
            return _parse_int(value), None
        number = float(value)
    except _Reject as exc:
        return None, f"column {key}: {exc}"
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        return None, f"column {key}: {quote(value)} is not a number"
    return number, None


def _csv_labels(row: dict) -> tuple[dict, str | None]:
    labels: dict = {}
    for key in ("csat", "quality"):
        value = (row.get(key) or "").strip()
        if value:
            number, problem = _csv_number(key, value)
            if problem:
                return {}, problem
            labels[key] = number
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
    several lines is reported at its first line. A record may hold up to 1 MiB (UTF-8), like a
    JSONL line; a longer physical line is never read whole, and reading starts afresh after it.
    """
    # csv's own cap (131,072 characters by default) would refuse records JSONL accepts. Only ever
    # raised, never lowered, so no other reader in the process is limited by it.
    if csv.field_size_limit() < MAX_LINE_BYTES + 2:
        csv.field_size_limit(MAX_LINE_BYTES + 2)
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
        except _Overlong:
            yield 1, None, f"CSV header over 1 MiB ({MAX_LINE_BYTES} bytes)"
            return
        if not header or "transcript" not in header or "answer" not in header:
            yield 1, None, "CSV header must name the columns transcript and answer"
            return
        unknown = [h for h in header if h not in CSV_COLUMNS]
        if unknown:
            yield 1, None, f"unknown CSV column {quote(unknown[0])} (known: {', '.join(CSV_COLUMNS)})"
            return
        while True:
            start = line_counter.lines + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except _Overlong:
                yield start, None, f"record over 1 MiB ({MAX_LINE_BYTES} bytes)"
                continue
            except csv.Error as exc:
                if "field larger than field limit" in str(exc):
                    yield start, None, f"record over 1 MiB ({MAX_LINE_BYTES} bytes)"
                else:
                    yield start, None, f"CSV error ({exc})"
                continue
            try:
                example, reason = _csv_record(row, default_split)
            except Exception as exc:  # a check that failed in an unforeseen way costs this record only
                example, reason = None, f"record could not be checked ({type(exc).__name__}: {quote(str(exc), 120)})"
            yield start, example, reason


def _csv_record(row: dict, default_split: str | None) -> tuple[dict | None, str | None]:
    if None in row:
        return None, "more fields than the header has columns"
    bad = [k for k, v in row.items() if isinstance(v, str) and not _encodable(v)]
    if bad:
        return None, f"invalid UTF-8 in column {bad[0]}"
    if sum(len(v.encode("utf-8")) for v in row.values() if isinstance(v, str)) > MAX_LINE_BYTES:
        return None, f"record over 1 MiB ({MAX_LINE_BYTES} bytes)"
    transcript = (row.get("transcript") or "").strip()
    answer = row.get("answer") or ""
    if not transcript:
        return None, "empty transcript"
    if not answer.strip():
        return None, "empty answer (column answer)"
    labels, problem = _csv_labels(row)
    if problem:
        return None, problem
    task = (row.get("task") or "").strip() or None
    instruction = (row.get("instruction") or "").strip()
    if task in tasks.TASKS and not instruction:
        user = tasks.user_content(transcript, task)
    else:
        user = f"{tasks.TRANSCRIPT_HEADER}\n\n{transcript}" + (f"\n\n{tasks.TASK_HEADER} {instruction}" if instruction else "")
    messages = [{"role": "system", "content": (row.get("system") or "").strip() or tasks.SYSTEM_PROMPT},
                {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    # No label cells: labels are read from the answer, as for a JSONL line without meta.labels.
    meta = {"labels": labels} if labels else {}
    if task:
        meta["task"] = task
    if (row.get("id") or "").strip():
        meta["id"] = row["id"].strip()
    if (row.get("split") or "").strip():
        meta["split"] = row["split"].strip()
    # No "raw": a CSV record is not a ChatML line; the export writes the converted line.
    return validate_chatml({"messages": messages, "meta": meta}, default_split, check_tree=False)


class _Overlong(Exception):
    """A physical CSV line over 1 MiB: skipped unread, and the record it was part of refused."""


class _CountingLines(io.TextIOBase):
    """Wraps a text file for csv, counting physical lines read so records get line numbers.

    A physical line over 1 MiB is skipped without reading it whole, and ``_Overlong`` is raised
    through the csv reader, which starts afresh at the next line (as the JSONL reader does).
    """

    def __init__(self, fh):
        self.fh = fh
        self.lines = 0

    def __iter__(self):
        return self

    def __next__(self):
        line = self.fh.readline(MAX_LINE_BYTES + 1)
        if not line:
            raise StopIteration
        self.lines += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith("\n"):
            while line and not line.endswith("\n"):
                line = self.fh.readline(MAX_LINE_BYTES)
            raise _Overlong
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
