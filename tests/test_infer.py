"""Batch inference: input forms, resume after a kill (partial last line), the CLI and the job."""

from __future__ import annotations

import json

import pytest
from phase3_fakes import FakeGenerator

from engine.serving import infer

from engine.data import tasks
from engine.core.config import InferConfig
from engine.core.jobs import JobStopped


def _write_input(path, n: int = 7) -> None:
    lines = []
    for i in range(n):
        if i % 3 == 0:
            lines.append({"messages": [{"role": "system", "content": tasks.SYSTEM_PROMPT},
                                       {"role": "user", "content": f"Customer: call {i}"},
                                       {"role": "assistant", "content": "the reference, not sent"}],
                          "meta": {"id": f"ex-{i}", "task": "csat"}})
        elif i % 3 == 1:
            lines.append({"prompt": f"Summarise call {i}"})
        else:
            lines.append({"transcript": f"Agent: hello {i}\nCustomer: my bill", "task": "churn"})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


class StopAfter:
    def __init__(self, n):
        self.n, self.home, self.job_id = n, None, None

    def check(self):
        self.n -= 1
        if self.n < 0:
            raise JobStopped("pause")

    def log(self, msg):
        pass

    def progress(self, *a, **k):
        pass


def _outputs(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_input_forms_and_one_output_line_each(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_input(src)
    gen = FakeGenerator(lambda m: "Churn risk: high" if "churn" in m[-1]["content"].lower() else "CSAT: 2/5")
    r = infer.run_infer(InferConfig(input=str(src), output=str(out), batch_size=3), generator=gen)
    assert r["generated"] == 7 and r["errors"] == 0
    rows = _outputs(out)
    assert sorted(x["line"] for x in rows) == list(range(1, 8))
    first = next(x for x in rows if x["line"] == 1)
    assert first["id"] == "ex-0" and first["parsed"] == {"csat": 2} and first["model"] == "fake-model"
    third = next(x for x in rows if x["line"] == 3)
    assert third["task"] == "churn" and third["parsed"] == {"churn": "high"}
    # The reference answer is never part of the prompt; a transcript line gets the task's instruction.
    assert all(m["role"] != "assistant" for p in gen.prompts for m in p)
    assert any(tasks.INSTRUCTIONS["churn"] in p[-1]["content"] for p in gen.prompts)


def test_bad_lines_are_reported_in_the_output_and_the_rest_answered(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"prompt": "a"}\n{broken\n\n{"transcript": "x", "task": "weather"}\n[1]\n{"prompt": "b"}\n')
    r = infer.run_infer(InferConfig(input=str(src), output=str(out)), generator=FakeGenerator())
    rows = {x["line"]: x for x in _outputs(out)}
    assert r["errors"] == 3 and r["generated"] == 2
    assert rows[2]["error"].startswith("invalid JSON") and "unknown task 'weather'" in rows[4]["error"]
    assert rows[5]["error"] == "not a JSON object" and "output" in rows[6]
    assert 3 not in rows  # blank lines are not records


def test_stop_then_kill_mid_write_then_resume(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_input(src, 10)
    gen = FakeGenerator()
    with pytest.raises(JobStopped):
        infer.run_infer(InferConfig(input=str(src), output=str(out), batch_size=4), ctx=StopAfter(1), generator=gen)
    assert len(_outputs(out)) == 4 and len(gen.prompts) == 4
    # A kill in the middle of a write leaves half a line at the end.
    with open(out, "a") as fh:
        fh.write('{"line": 9, "output": "half a li')
    gen2 = FakeGenerator()
    r = infer.run_infer(InferConfig(input=str(src), output=str(out), batch_size=4), generator=gen2)
    assert r["skipped_already_done"] == 4 and r["generated"] == 6 and len(gen2.prompts) == 6
    rows = _outputs(out)  # every line parses: the partial one was cut off
    assert sorted(x["line"] for x in rows) == list(range(1, 11))
    # Running again is a no-op.
    gen3 = FakeGenerator()
    r = infer.run_infer(InferConfig(input=str(src), output=str(out)), generator=gen3)
    assert r["generated"] == 0 and gen3.prompts == [] and len(_outputs(out)) == 10


def test_refuses_to_overwrite_its_input(tmp_path):
    src = tmp_path / "in.jsonl"
    _write_input(src, 2)
    with pytest.raises(infer.InferInputError, match="must not be the input"):
        infer.run_infer(InferConfig(input=str(src), output=str(src)), generator=FakeGenerator())


def test_ccr_infer_cli_runs_as_a_job_with_a_progress_bar(tmp_path, home, monkeypatch, capsys):
    from engine import cli
    from engine.core import generation, store

    fake = FakeGenerator(lambda m: "Churn risk: low")
    monkeypatch.setattr(generation, "LocalGenerator", lambda *a, **k: fake)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_input(src, 5)
    assert cli.main(["infer", "--model", "smollm2-135m-instruct", "--input", str(src), "--output", str(out),
                     "--batch-size", "2"]) == 0
    err = capsys.readouterr().err
    assert "5/5" in err and "5 lines generated" in err  # tqdm's bar, then the summary
    assert len(_outputs(out)) == 5
    db = store.connect(home)
    assert db.execute("SELECT kind, status FROM jobs").fetchall() == [("infer", "succeeded")]
    assert cli.main(["infer", "--input", str(tmp_path / "nope.jsonl"), "--output", str(out)]) == 2


@pytest.mark.slow
def test_real_batch_inference_with_the_embedded_model(tmp_path, embedded_generator):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"transcript": "Agent: Hello.\nCustomer: Cancel my plan now!", "task": "churn"}) + "\n"
                   + json.dumps({"prompt": "Say hi."}) + "\n")
    r = infer.run_infer(InferConfig(input=str(src), output=str(out), max_new_tokens=6, batch_size=2),
                        generator=embedded_generator)
    rows = _outputs(out)
    assert r["generated"] == 2 and [x["line"] for x in sorted(rows, key=lambda x: x["line"])] == [1, 2]
    assert all(0 < x["completion_tokens"] <= 6 and x["output"] for x in rows)
