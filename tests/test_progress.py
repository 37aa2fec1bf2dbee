"""Live progress at the grain a user feels: a generation reports inside one batch (decode steps,
finished requests), the job row carries it with the time it was written, and elapsed and ETA are
computed when they are read (the page, the sidebar, the Jobs page, `ccr jobs list`)."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path

import pytest

from engine.chains import chain_job, gate, selection, teacher

from engine.core import jobs, store
from engine.core.config import to_dict

sys.path.insert(0, str(Path(__file__).parent))
from fake_teacher_server import FakeTeacher  # noqa: E402
from test_chain_job import some_examples  # noqa: E402


@pytest.fixture
def server():
    s = FakeTeacher().start()
    yield s
    s.stop()


def tiny_model():
    """A tiny random Llama with the embedded model's tokenizer: the real decoding code, in milliseconds."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from engine.core.model_catalog import embedded_folder

    tok = AutoTokenizer.from_pretrained(str(embedded_folder()))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=4096)).eval()
    return model, tok


def test_guided_local_decoding_reports_every_step_before_the_batch_ends(demo_home):
    """The embedded path's decoder (a tiny random Llama, the same code): one event per decode step."""
    model, tok = tiny_model()
    gen = types.SimpleNamespace(model=model, tokenizer=tok, device="cpu", end_ids=[tok.eos_token_id],
                                lock=threading.Lock())
    exs = some_examples(demo_home, 1)
    cfg = selection.config_from({"part_tokens": 12, "batch_size": 1})
    events: list[dict] = []
    outs = teacher._guided_local(gen, exs, cfg, 0.0, 0, progress=events.append)
    assert len(outs) == 1 and outs[0].text
    decode = [e for e in events if e["stage"] == "decode"]
    assert events[0]["stage"] == "prefill" and len(decode) >= 3
    steps = [e["step"] for e in decode]
    assert steps == sorted(steps) and steps[-1] <= 12 and all(e["budget"] == 12 for e in decode)
    tokens = [e["tokens"] for e in decode]
    assert tokens == sorted(tokens) and tokens[-1] == outs[0].completion_tokens
    assert all(e["of"] == 13 and 0 <= e["done"] <= 13 for e in decode)


def test_batched_generate_reports_every_decode_step():
    """LocalGenerator.generate (free mode, evaluation, batch inference): one event per new token."""
    from engine.core.generation import LocalGenerator

    model, tok = tiny_model()
    gen = LocalGenerator(loaded=(model, tok, {"name": "tiny"}))
    events: list[dict] = []
    outs = gen.generate([[{"role": "user", "content": "Say hello."}], [{"role": "user", "content": "Hi there."}]],
                        max_new_tokens=6, batch_size=2, progress=events.append)
    assert len(events) >= 3 and [e["step"] for e in events] == list(range(1, len(events) + 1))
    assert {e["of"] for e in events} == {2} and {e["budget"] for e in events} == {6}
    assert events[-1]["tokens"] == sum(o.completion_tokens for o in outs)


def test_http_teacher_reports_each_finished_request(demo_home, server):
    cfg = selection.config_from({"backend": "openai", "teacher": "fake-teacher", "base_url": server.base_url,
                                "guided": True, "concurrency": 2, "timeout_s": 10})
    events: list[dict] = []
    teacher.teach(some_examples(demo_home, 1), cfg, progress=events.append)
    assert [e["done"] for e in events] == list(range(1, 14)) and {e["of"] for e in events} == {13}
    assert events[-1]["tokens"] > events[0]["tokens"] > 0


class RecordingContext(jobs.JobContext):
    """A real job context (writes the job row) that also keeps every progress write it made."""

    def __init__(self, home, job_id):
        super().__init__(home, job_id, min_interval=0.0)
        self.writes: list[tuple[float, dict]] = []
        self.chains_at_write: list[int] = []

    def progress(self, done, total=None, force=False, fraction=None, **stats):
        super().progress(done, total, force=force, fraction=fraction, **stats)
        row = store.get_job(self.db, self.job_id)
        self.writes.append((row["progress"], row["stats"]))
        self.chains_at_write.append(self.db.execute("SELECT COUNT(*) FROM chains").fetchone()[0])


def test_a_one_batch_generation_moves_the_job_row_at_least_three_times_before_the_batch_ends(demo_home, server):
    values = {"backend": "openai", "teacher": "fake-teacher", "base_url": server.base_url, "guided": True,
              "concurrency": 1, "timeout_s": 10, "limit": 2, "batch_size": 2, "attempts": 1}
    cfg = selection.config_from(values)
    gate.record_override(demo_home, cfg, "test")
    db = store.connect(demo_home)
    job_id = store.enqueue_job(db, "generate", to_dict(cfg))
    store.claim_job(db, "test", job_id=job_id)
    ctx = RecordingContext(demo_home, job_id)
    result = chain_job.run_generate_job(ctx, to_dict(cfg))
    assert result["generated"] == 2
    # writes made while the one batch was in flight (no chain stored yet), each with the batch's state
    inside = [(p, s) for (p, s), n in zip(ctx.writes, ctx.chains_at_write) if n == 0 and s.get("batch")]
    assert len(inside) >= 3, [s.get("batch") for _, s in ctx.writes]
    fractions = [p for p, _ in inside]
    assert fractions == sorted(fractions) and fractions[0] < fractions[-1] < 1.0
    assert all(s["done"] == 0 and s["total"] == 2 and s["at"] for _, s in inside)
    assert [s["batch"]["done"] for _, s in inside] == list(range(1, len(inside) + 1))
    assert inside[-1][1]["eta_s"] is not None and inside[-1][1]["tokens_per_s"]


def test_elapsed_and_eta_are_computed_when_read(home):
    import ui

    job = {"kind": "generate", "status": "running", "started_at": 1000.0,
           "stats": {"done": 1, "total": 5, "eta_s": 100.0, "at": 1010.0, "rate": 0.02}}
    t = ui.job_times(job, now=1040.0)
    assert t["elapsed_s"] == 40.0 and t["eta_s"] == 70.0 and t["stale_s"] == 30.0 and t["rate"] == 0.02
    assert ui.job_times(job, now=1200.0)["eta_s"] == 0.0
    done = {**job, "status": "succeeded", "finished_at": 1100.0}
    assert ui.job_times(done, now=5000.0)["elapsed_s"] == 100.0 and ui.job_times(done, now=5000.0)["eta_s"] is None
    line = ui.progress_line({**job, "stats": {**job["stats"], "batch": {"stage": "decode", "done": 40, "of": 104,
                                                                        "tokens": 1234, "examples": 8}}}, now=1040.0)
    assert "1 / 5" in line and "40/104 parts done, 1,234 tokens" in line and "elapsed 40s" in line
    assert "ETA 1m 10s" in line and "0.02 ex/s" in line


def test_ccr_jobs_list_shows_elapsed_rate_and_eta(home, capsys):
    from engine import cli

    db = store.connect(home)
    job_id = store.enqueue_job(db, "generate", {})
    store.claim_job(db, "test", job_id=job_id)
    db.execute("UPDATE jobs SET started_at = started_at - 125 WHERE id = ?", [job_id])
    import time

    store.update_job_progress(db, job_id, 0.2, {"done": 1, "total": 5, "rate": 0.031, "eta_s": 4000.0,
                                                "at": time.time()})
    assert cli.main(["jobs", "list", "--home", str(home.data)]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    assert "elapsed" in header and "eta" in header
    assert "2m0" in row and "0.031/s" in row and "1h0" in row, out


def test_batch_inference_reports_inside_its_batch(home, tmp_path):
    """Batch inference (Deploy page, `ccr infer`): the one batch's decode steps reach the job row."""
    from engine.core.config import InferConfig
    from engine.core.generation import LocalGenerator
    from engine.serving.infer import run_infer

    model, tok = tiny_model()
    gen = LocalGenerator(loaded=(model, tok, {"name": "tiny"}))
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"prompt": "Say hello."}\n{"prompt": "Say goodbye."}\n')
    db = store.connect(home)
    job_id = store.enqueue_job(db, "infer", {})
    store.claim_job(db, "test", job_id=job_id)
    ctx = RecordingContext(home, job_id)
    result = run_infer(InferConfig(input=str(src), output=str(out), batch_size=2, max_new_tokens=8), ctx=ctx,
                       generator=gen)
    assert result["generated"] == 2
    inside = [(p, s) for p, s in ctx.writes if s.get("batch")]
    assert len(inside) >= 3 and all(s["done"] == 0 and s["total"] == 2 for _, s in inside)
    assert [s["batch"]["step"] for _, s in inside] == sorted(s["batch"]["step"] for _, s in inside)
    assert inside[0][0] < inside[-1][0] < 1.0
