"""Hostile input for the importer: property-based mixes of valid and invalid lines, broken
Unicode, and a 50 MB file streamed without being loaded whole."""

import json
import subprocess
import sys
import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data import importer
from engine.core.paths import REPO

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
               max_size=40).filter(lambda s: s.strip())


@st.composite
def valid_line(draw, i):
    transcript = "Customer: " + draw(TEXT)
    task = draw(st.sampled_from(["csat", "churn", None]))
    meta = {"id": f"v{i}"}
    if task == "csat":
        meta.update(task=task, labels={"csat": draw(st.integers(1, 5))})
    elif task == "churn":
        meta.update(task=task, labels={"churn": draw(st.sampled_from(["low", "medium", "high"]))})
    obj = {"messages": [{"role": "user", "content": transcript}, {"role": "assistant", "content": draw(TEXT)}],
           "meta": meta}
    return json.dumps(obj, ensure_ascii=draw(st.booleans())).encode("utf-8")


INVALID = [
    b"{",
    b"null",
    b'"just a string"',
    b'{"messages": []}',
    b'{"messages": [{"role": "user", "content": 3}]}',
    b'{"messages": [{"role": "narrator", "content": "x"}]}',
    b'{"messages": [{"role": "assistant", "content": "x"}]}',
    b'{"messages": [{"role": "user", "content": "\\ud83d"}]}',        # lone high surrogate
    b'{"messages": [{"role": "user", "content": "ok"}], "meta": {"task": "csat", "labels": {"csat": 0}}}',
    b'{"messages": [{"role": "user", "content": "\xc3\x28"}]}',          # invalid UTF-8 sequence
    b'\xff\xfe{"messages": 1}',
    b'{"messages": [{"role": "user", "content": "x"}], "meta": "oops"}',
    # Issue 10: each of these used to be accepted, or to abort the import at insert.
    b'{"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}, '
    b'{"role": "user", "content": "Customer: hi"}]}',                       # answer before the question
    b'{"messages": [], "messages": [{"role": "user", "content": "Customer: hi"}, '
    b'{"role": "assistant", "content": "a"}]}',                             # duplicate key
    b'{"messages": [{"role": "user", "content": "Customer: hi"}, {"role": "assistant", "content": "a"}], '
    b'"meta": {"score": NaN}}',
    b'{"messages": [{"role": "user", "content": "Customer: hi"}, {"role": "assistant", "content": "a"}], '
    b'"id": "\\ud83d"}',                                                   # surrogate in a top-level id
    b'{"messages": [{"role": "user", "content": "Customer: hi"}, {"role": "assistant", "content": "a"}], '
    b'"meta": {"n": ' + b"1" * 4301 + b'}}',
    b'{"messages": [{"role": "user", "content": "Customer: hi"}, {"role": "assistant", "content": "a"}], '
    b'"meta": {"n": ' + b"[" * 1000 + b"]" * 1000 + b'}}',
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mix_keeps_exactly_the_valid_lines(tmp_path_factory, data):
    n = data.draw(st.integers(1, 25))
    lines, valid_numbers = [], []
    for i in range(n):
        if data.draw(st.booleans()):
            lines.append(data.draw(valid_line(i)))
            valid_numbers.append(i + 1)
        else:
            lines.append(data.draw(st.sampled_from(INVALID)))
    path = tmp_path_factory.mktemp("prop") / "mix.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    good, bad = [], []
    for line, example, reason in importer.read_records(path):  # must never raise
        (bad if reason else good).append(line)
        if example:
            assert example["ex_id"] == f"v{line - 1}"
    assert good == valid_numbers
    assert bad == [i for i in range(1, n + 1) if i not in valid_numbers]


@settings(max_examples=40, deadline=None)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("bytes") / "x.jsonl"
    path.write_bytes(raw)
    for line, example, reason in importer.read_records(path):
        assert (example is None) != (reason is None)


def test_fifty_megabyte_file_is_streamed(tmp_path):
    """A 50 MB file (one 30 MB line among 20 MB of good lines) imports in bounded memory."""
    path = tmp_path / "big.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "Customer: " + "x" * 1900},
                                    {"role": "assistant", "content": "CSAT: 3/5"}]}).encode()
    with open(path, "wb") as fh:
        for i in range(5000):
            fh.write(good.replace(b'"messages"', f'"meta": {{"id": "g{i}"}}, "messages"'.encode(), 1) + b"\n")
        fh.write(b'{"messages": [{"role": "user", "content": "' + b"y" * (30 << 20) + b'"}]}\n')
        for i in range(5000, 10000):
            fh.write(good.replace(b'"messages"', f'"meta": {{"id": "g{i}"}}, "messages"'.encode(), 1) + b"\n")
    assert path.stat().st_size > 50_000_000
    probe = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(REPO)!r})
        from engine.data import datasets
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r = datasets.import_file({str(tmp_path / 'home')!r}, {str(path)!r})
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(r["accepted"], r["rejected"], r["errors"][0][0], r["errors"][0][1], (peak - base) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    accepted, rejected, line, *reason, grown_mb = out.stdout.split()
    assert (int(accepted), int(rejected), int(line)) == (10000, 1, 5001)
    assert " ".join(reason).startswith("line over 1 MiB")
    # Loading the file (or the 30 MB line) whole would grow the process by well over 30 MB.
    assert int(grown_mb) < 25, f"import grew the process by {grown_mb} MB"
