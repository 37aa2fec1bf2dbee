"""Property test for `ccr data import` (issue 10): arbitrary JSON values in every field of a line.

Each example writes a file of lines of three kinds and imports it with the real `ccr data import`
entry point (in this process; the same import job the Data page queues) into a real SQLite file
in a fresh home:

- *valid* lines: a correct ChatML example with arbitrary well-formed JSON in every free place
  (extra message fields, meta, unknown top-level fields, top-level id/task/labels). They must
  all be accepted.
- *broken* lines: a valid line with one defect planted in one of those places: a lone surrogate
  (escaped in a value or a key, or written raw, which is invalid UTF-8), a 5,000-digit integer
  or 2^63, NaN or -Infinity, 1e400 (a float overflowing to infinity), 65 levels of nesting, a
  duplicate key, or the turns out of order. They must all be rejected.
- *arbitrary* lines: anything (any JSON value in any field, surrogates, huge numbers, nesting
  up to 3,000 deep, duplicate keys, random bytes, blank lines). Either outcome is allowed, but
  the invariants below must hold. Lines may end in CRLF; `--split` is given or not.

For every file: the summary line prints and the exit status matches it; accepted + rejected is
the number of non-blank lines; every non-blank line is either reported once as
`FILE:LINE: reason` or stored exactly once; each stored line's `raw` is the input line byte for
byte, and the dataset export is exactly the accepted lines, in order, byte for byte.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import cli

from engine.data import datasets

from engine.core import store

# ---------------------------------------------------------------------------------------------
# A JSON writer that can also write what json.dumps cannot or will not: duplicate keys, integers
# beyond Python's 4,300-digit str() limit, 1e400, and nesting deeper than json.dumps recurses.


@dataclass(frozen=True)
class BigInt:
    digits: int


@dataclass(frozen=True)
class Overflow:
    """Written as 1e400, which a JSON reader turns into infinity."""


@dataclass(frozen=True)
class Deep:
    levels: int


@dataclass(frozen=True)
class DupObject:
    pairs: tuple


def dump(value, ascii_only: bool) -> str:
    if isinstance(value, BigInt):
        return "9" * value.digits
    if isinstance(value, Overflow):
        return "1e400"
    if isinstance(value, Deep):
        return "[" * value.levels + "]" * value.levels
    if isinstance(value, (dict, DupObject)):
        pairs = value.items() if isinstance(value, dict) else value.pairs
        return "{" + ", ".join(f"{dump(k, ascii_only)}: {dump(v, ascii_only)}" for k, v in pairs) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)  # str, int, float (nan -> NaN), bool, None


def dump_line(value, ascii_only: bool) -> bytes:
    # A lone surrogate written unescaped (ascii_only=False) becomes invalid UTF-8: one more defect.
    return dump(value, ascii_only).encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------------------------
# Strategies

SAFE_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
ANY_TEXT = st.one_of(st.text(st.characters(exclude_categories=()), max_size=12),  # surrogates included
                     st.sampled_from(["\ud83d", "a\udfffb", "", "\x00", "NaN", "</thinking>"]))
SAFE_NUMBER = st.one_of(st.integers(-(2 ** 63), 2 ** 63 - 1), st.floats(allow_nan=False, allow_infinity=False))
ANY_NUMBER = st.one_of(st.integers(), st.floats(), st.builds(BigInt, st.integers(19, 5000)), st.just(Overflow()),
                       st.sampled_from([2 ** 63, -(2 ** 63) - 1, 2 ** 64]))
SAFE_JSON = st.recursive(st.none() | st.booleans() | SAFE_NUMBER | SAFE_TEXT,
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SAFE_TEXT, inner, max_size=3),
                         max_leaves=8)
ANY_JSON = st.recursive(st.none() | st.booleans() | ANY_NUMBER | ANY_TEXT | st.builds(Deep, st.integers(1, 3000)),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3)
                        | st.builds(DupObject, st.lists(st.tuples(st.sampled_from(["k", "id"]), inner),
                                                        min_size=2, max_size=3).map(tuple)),
                        max_leaves=8)

RESERVED = {"messages", "meta", "id", "task", "labels", "split"}
FREE_KEY = SAFE_TEXT.filter(lambda k: k not in RESERVED and k not in ("role", "content"))
LABELS = st.fixed_dictionaries({}, optional={
    "csat": st.integers(1, 5), "quality": st.integers(0, 100) | st.floats(0, 100),
    "churn": st.sampled_from(["low", "medium", "high"]),
    "coaching": st.lists(st.sampled_from(["empathy", "ownership"])),
    "my_tag": SAFE_JSON})


@st.composite
def valid_obj(draw, n: int) -> dict:
    """A correct example with arbitrary well-formed JSON in every free place."""
    def message(role: str, content: str) -> dict:
        return {**draw(st.dictionaries(FREE_KEY, SAFE_JSON, max_size=2)), "role": role, "content": content}

    messages = [message("system", draw(SAFE_TEXT))] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(1, 2))):
        messages.append(message("user", "Customer: " + draw(SAFE_TEXT) + "x"))
        messages.append(message("assistant", draw(SAFE_TEXT) + " CSAT: 3/5"))
    obj = {"messages": messages}
    meta = draw(st.dictionaries(FREE_KEY, SAFE_JSON, max_size=3))
    placed = {"id": f"valid-{n}" if draw(st.booleans()) else 10 ** 9 + n,  # ids never collide
              "task": draw(st.sampled_from(["csat", "churn", "my-own-task"]))}
    if draw(st.booleans()):
        placed["labels"] = draw(LABELS)  # else read from the answer
    for key, value in placed.items():
        where = draw(st.sampled_from(["meta", "top", "both"]))  # in both places: equal values
        if where != "top":
            meta[key] = value
        if where != "meta":
            obj[key] = value
    if meta or draw(st.booleans()):
        obj["meta"] = meta
    obj.update(draw(st.dictionaries(FREE_KEY, SAFE_JSON, max_size=2)))  # unknown top-level fields
    return dict(draw(st.permutations(list(obj.items()))))


@st.composite
def broken_line(draw, n: int) -> bytes:
    """A valid example with one defect planted in one place."""
    obj = draw(valid_obj(n))
    kind = draw(st.sampled_from(["surrogate", "raw-surrogate", "surrogate-key", "big-int", "int64", "nan", "inf",
                                 "overflow", "deep", "dup-key", "order"]))
    if kind == "order":
        msgs = obj["messages"]
        first = 1 if msgs[0]["role"] == "system" else 0
        how = draw(st.sampled_from(["swap", "late-system", "trailing-user", "no-answer"]))
        if how == "swap":  # the answer before the question (issue 10: system, assistant, user)
            msgs[first], msgs[first + 1] = msgs[first + 1], msgs[first]
        elif how == "late-system":
            msgs.insert(draw(st.integers(first + 1, len(msgs))), {"role": "system", "content": "s"})
        elif how == "trailing-user":
            msgs.append({"role": "user", "content": "Customer: and?"})
        else:
            msgs.pop()
        return dump_line(obj, True)
    place = draw(st.sampled_from(["meta", "message", "top", "top-id", "top-task", "top-labels"]))
    if kind == "surrogate-key":
        target = obj["messages"][0] if place == "message" else obj
        if place == "meta":
            target = obj["meta"] = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
        target["\ud800key"] = 1
        return dump_line(obj, True)
    value = {"surrogate": "x\udc80", "raw-surrogate": "x\udc80", "big-int": BigInt(5000), "int64": 2 ** 63,
             "nan": float("nan"), "inf": float("-inf"), "overflow": Overflow(), "deep": Deep(65),
             "dup-key": DupObject((("k", 1), ("k", 2))),
             }[kind]
    if place == "meta":
        obj["meta"] = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
        obj["meta"]["planted"] = value
    elif place == "message":
        obj["messages"][draw(st.integers(0, len(obj["messages"]) - 1))]["planted"] = value
    elif place == "top":
        obj["planted"] = value
    else:
        key = place[4:]
        if isinstance(obj.get("meta"), dict):
            obj["meta"].pop(key, None)
        obj[key] = value if key != "labels" else {"my_tag": value}
    return dump_line(obj, kind != "raw-surrogate")


@st.composite
def arbitrary_line(draw) -> bytes:
    kind = draw(st.sampled_from(["fields", "fields", "value", "bytes", "blank"]))
    if kind == "bytes":
        return draw(st.binary(max_size=60)).replace(b"\n", b" ")
    if kind == "blank":
        return draw(st.sampled_from([b"", b"   ", b"\t", b"\r"]))
    if kind == "value":
        return dump_line(draw(ANY_JSON), draw(st.booleans()))
    message = st.fixed_dictionaries({}, optional={"role": st.sampled_from(["system", "user", "assistant"]) | ANY_JSON,
                                                  "content": ANY_TEXT | ANY_JSON, "extra": ANY_JSON})
    obj = draw(st.fixed_dictionaries({}, optional={
        "messages": st.lists(message, max_size=4) | ANY_JSON, "meta": ANY_JSON, "id": ANY_JSON, "task": ANY_JSON,
        "labels": ANY_JSON, "split": ANY_JSON, "other": ANY_JSON}))
    return dump_line(obj, draw(st.booleans()))


@st.composite
def file_lines(draw) -> list[tuple[str, bytes]]:
    lines = []
    for n in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["valid", "broken", "arbitrary"]))
        if kind == "valid":
            lines.append((kind, dump_line(draw(valid_obj(n)), draw(st.booleans()))))
        elif kind == "broken":
            lines.append((kind, draw(broken_line(n))))
        else:
            lines.append((kind, draw(arbitrary_line())))
    return lines


# ---------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines=file_lines(), crlf=st.booleans(), split=st.sampled_from([None, "test"]))
def test_ccr_data_import_of_any_lines(tmp_path_factory, lines, crlf, split):
    folder = tmp_path_factory.mktemp("prop")
    path = folder / "calls.jsonl"
    raw_lines = [line + (b"\r" if crlf and line.strip() else b"") for _, line in lines]
    path.write_bytes(b"".join(line + b"\n" for line in raw_lines))
    # What a line is, as the README defines it: the bytes before its newline, less the file's BOM.
    if raw_lines[0].startswith(b"\xef\xbb\xbf"):
        raw_lines[0] = raw_lines[0][3:]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["--home", str(folder / "home"), "data", "import", str(path), "--dataset", "p"]
                      + (["--split", split] if split else []))
    out, err = out.getvalue(), err.getvalue()

    # The summary line always prints, and the exit status agrees with it.
    summary = re.fullmatch(r"accepted (\d+), rejected (\d+)", out.splitlines()[-1] if out else "")
    assert summary, (out, err)
    accepted, rejected = int(summary[1]), int(summary[2])
    assert rc == (1 if rejected else 0) and "Traceback" not in err, err
    nonblank = [i + 1 for i, line in enumerate(raw_lines) if line.strip()]
    assert accepted + rejected == len(nonblank)

    # Each non-blank line is either reported once (on one line of stderr) or stored once.
    prefix = f"{path}:"
    reported = [int(m[1]) for m in re.finditer(rf"^{re.escape(prefix)}(\d+): .+$", err, re.M)]
    assert len(reported) == rejected == len(set(reported))
    assert all(l.startswith((prefix, "warning: ")) for l in err.splitlines()), err
    db = store.connect(folder / "home")
    rows = db.execute("SELECT source_line, raw, messages, split FROM examples ORDER BY source_line").fetchall()
    stored = [row[0] for row in rows]
    assert len(stored) == accepted == len(set(stored))
    assert sorted(reported + stored) == nonblank

    # The kinds with a known answer get it.
    for number, (kind, _) in enumerate(lines, 1):
        if kind == "valid":
            assert number in stored, (number, err)
        elif kind == "broken":
            assert number in reported, number

    # Stored byte for byte, and exported byte for byte in file order.
    for line, raw, messages, stored_split in rows:
        assert raw.encode("utf-8") == raw_lines[line - 1]
        obj = json.loads(raw)
        assert isinstance(obj, dict) and obj["messages"] == json.loads(messages)
        assert obj["messages"][-1]["role"] == "assistant" and stored_split in ("train", "validation", "test")
    export = folder / "export.jsonl"
    assert datasets.export_dataset(folder / "home", "p", export)["lines"] == accepted
    assert export.read_bytes() == b"".join(raw_lines[line - 1] + b"\n" for line in stored)
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in _numbers(rows))
    if split is None and any(kind == "valid" for kind, _ in lines):
        assert f"warning: {path}: " in err  # stored as train only because nothing named a split


def _numbers(rows):
    for _, raw, _, _ in rows:
        stack = [json.loads(raw)]
        while stack:
            v = stack.pop()
            if isinstance(v, dict):
                stack.extend(v.values())
            elif isinstance(v, list):
                stack.extend(v)
            else:
                yield v
