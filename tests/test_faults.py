"""Faults: processes killed with SIGKILL at random points, the whole app killed mid-job and
started again, training killed and resumed, and several people pressing Start at once.

Every test here runs the product's real code paths in real processes: the job engine's
``Worker`` supervising ``python -m engine.core.jobs run`` children, the real Streamlit app, the
OpenAI-compatible fake teacher over HTTP (tests/fake_teacher_server.py), and the tiny Llama of
tests/test_train.py. They assert what survives (rows, checkpoints, exports), never how long it
took.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine import api

from engine.data import datasets

from engine.core import jobs, store

from engine.training import runs, train
from engine.core.config import TrainConfig, load_config
from engine.core.paths import CONFIGS, REPO

sys.path.insert(0, str(Path(__file__).parent))
from fake_teacher_server import FakeTeacher  # noqa: E402
from helpers import arm_failpoint, free_port, start_app, wait_for  # noqa: E402
from test_jobs import _alive  # noqa: E402
from test_train import TINY_OVERRIDES, tiny_home, tiny_model  # noqa: E402,F401  (fixtures)

# ---------------------------------------------------------------------------------------------
# Shared checks
# ---------------------------------------------------------------------------------------------


def teacher_values(server: FakeTeacher, n: int, batch: int) -> dict:
    """The Generate page's settings for the fake HTTP teacher (free mode: one request per example)."""
    return {"backend": "openai", "teacher": "fake-teacher", "base_url": server.base_url, "guided": False,
            "batch_size": batch, "concurrency": batch, "http_retries": 3, "timeout_s": 20, "limit": n}


def selection(db, n: int) -> list[int]:
    from engine.chains.selection import resolve_dataset, selection_ids

    return selection_ids(db, resolve_dataset(db, None)[0], "train", n)


def assert_one_chain_per_example(db, ids: list[int], attempts_each: int) -> None:
    """Exactly one chain per selected example (none elsewhere), each consistent with its attempt rows."""
    rows = db.execute("SELECT example_id, COUNT(*) FROM chains GROUP BY example_id").fetchall()
    assert sorted(r[0] for r in rows) == sorted(ids), "lost or extra chains"
    assert all(r[1] == 1 for r in rows), "duplicated chains"
    for ex_id, status, attempts, score in db.execute("SELECT example_id, status, attempts, score FROM chains"):
        got = db.execute("SELECT attempt, score FROM chain_attempts WHERE example_id = ? ORDER BY attempt",
                         [ex_id]).fetchall()
        assert [a for a, _ in got] == list(range(1, attempts_each + 1)), (ex_id, got)
        assert attempts == attempts_each and status == "passed"
        assert score == max(s for _, s in got)  # the best attempt is the chain
    assert db.execute("SELECT COUNT(*) FROM chain_attempts").fetchone()[0] == len(ids) * attempts_each


def assert_database_sound(db) -> None:
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []


def assert_export_parses(home, tmp_path: Path) -> int:
    """`ccr export reasoning` writes only complete JSON lines, one per passed/approved chain."""
    from engine import cli

    out = tmp_path / "export" / "train_reasoning.jsonl"
    out.parent.mkdir()
    assert cli.main(["export", "reasoning", "--home", str(home.data), "--out", str(out)]) == 0
    db = store.connect(home)
    want = db.execute("SELECT c.example_id, c.text FROM chains c JOIN examples e ON e.id = c.example_id "
                      "WHERE e.split = 'train' AND c.status IN ('passed', 'approved')").fetchall()
    ex_ids = {i: x for i, x in db.execute("SELECT id, ex_id FROM examples")}
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(want) > 0
    seen = {}
    for line in lines:
        obj = json.loads(line)
        assert isinstance(obj["messages"], list) and obj["messages"][-1]["role"] == "assistant"
        assert obj["meta"]["chain_status"] in ("passed", "approved") and obj["meta"]["id"]
        seen[obj["meta"]["id"]] = obj["messages"][-1]["content"]
    assert seen == {ex_ids[i]: text for i, text in want}
    assert (out.parent / "validation_reasoning.jsonl").read_text() == ""  # nothing generated for it
    assert sorted(p.name for p in out.parent.iterdir()) == ["train_reasoning.jsonl", "validation_reasoning.jsonl"]
    return len(lines)


def _log_text(job: dict) -> str:
    try:
        return Path(job["log_path"]).read_text(errors="replace")
    except (OSError, TypeError):
        return ""


# ---------------------------------------------------------------------------------------------
# 1. The generation child killed with SIGKILL at random points, eleven times
# ---------------------------------------------------------------------------------------------


def test_generation_child_sigkilled_at_random_points_under_the_worker(demo_home, tmp_path):
    """A real Worker runs the generate job in its child process; the child is SIGKILLed eleven
    times, each at a point drawn at random (FAULT_SEED=N in the environment draws others): at
    startup (as soon as its process exists) or mid-round (while the teacher holds the k-th request
    of that run, after 0-4 committed rounds). The held request is what makes every kill land
    mid-run, on a machine of any speed. Each time the worker marks the job failed with its log
    tail and the Jobs page's Resume (``api.resume_job``) queues it again. At the end: one chain
    per example with its two attempts, a sound database and an export that parses."""
    server = FakeTeacher(quality="bad-greedy").start()  # attempt 1 bad, attempt 2 good
    n, batch, want_kills = 24, 2, 11
    values = teacher_values(server, n, batch)
    api.record_generate_override(values, "fault test")
    rng = random.Random(int(os.environ.get("FAULT_SEED", "6")))
    db = store.connect(demo_home)
    kills, progress_at_kill, points = 0, [], []
    worker = jobs.Worker(demo_home, poll_s=0.1).start_thread()
    try:
        for i in range(want_kills):
            at_startup = rng.random() < 0.25
            server.hold(after=0 if at_startup else rng.randint(0, 2 * batch + 1))
            if i == 0:
                job_id = api.start_generate(values)
            else:
                assert api.resume_job(job_id)  # the product's Resume
            sup = wait_for(lambda: worker.running.get(job_id), timeout=60, interval=0.01, what="the child to start")
            if not at_startup:
                server.wait_held()
            assert sup.proc.poll() is None  # a held request: it cannot have finished
            sup.proc.send_signal(signal.SIGKILL)
            kills += 1
            points.append("startup" if at_startup else "mid-round")
            job = wait_for(lambda: (j := store.get_job(db, job_id))["status"] in store.FINAL_JOB_STATES and j,
                           timeout=60, interval=0.02)
            server.drop()
            progress_at_kill.append(db.execute("SELECT COUNT(*) FROM chain_attempts").fetchone()[0])
            assert job["status"] == "failed" and "killed by signal 9" in job["error"], job
            assert f"of job {job_id} (generate)" in job["log_tail"]
        assert api.resume_job(job_id)
        job = wait_for(lambda: (j := store.get_job(db, job_id))["status"] in store.FINAL_JOB_STATES and j,
                       timeout=300, interval=0.05)
    finally:
        worker.stop()
        server.stop()
    assert kills == want_kills and {"startup", "mid-round"} <= set(points), points
    assert len(set(progress_at_kill)) >= 4, progress_at_kill  # the kills fell at different points of the run
    assert job["status"] == "succeeded", job["error"]
    assert job["runs"] == kills + 1
    assert job["result"]["summary"].startswith(f"generated {n}, passed {n}, flagged 0")
    ids = selection(db, n)
    assert_one_chain_per_example(db, ids, attempts_each=2)
    temps = dict(db.execute("SELECT attempt, json_extract(sampling, '$.temperature') FROM chain_attempts "
                            "GROUP BY attempt").fetchall())
    assert temps == {1: 0.0, 2: 0.7}
    # Each kill loses at most the answered part of the round in flight (held requests are never answered).
    assert 2 * n <= server.calls <= 2 * n + kills * (batch - 1), (server.calls, kills)
    assert_database_sound(db)
    assert assert_export_parses(demo_home, tmp_path) == n


# ---------------------------------------------------------------------------------------------
# 2. The whole app killed mid-job, then started again
# ---------------------------------------------------------------------------------------------


class App:
    """The real Streamlit app (`streamlit run app.py`) in its own process.

    The app starts its engine thread on the first script run of a session (``st.cache_resource``
    in app.py), and an HTTP GET of ``/`` does not run the script. So the test opens a session the
    way a browser does, over the websocket, and asks for one script run (a ``rerun_script``
    BackMsg); it keeps that session open until the engine has claimed a job. This drives the real
    app process (its engine thread, its supervised children) without a browser.
    """

    def __init__(self, home, log_path: Path):
        self.home, self.log_path, self.port = home, log_path, free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "App":
        self.proc = start_app(self.home, self.port, self.log_path)
        return self

    def open_session_until(self, predicate, timeout: float = 120.0):
        """Open a browser-like session (one script run) and keep it open until ``predicate()``."""
        import websockets
        from streamlit.proto.BackMsg_pb2 import BackMsg

        async def run():
            async with websockets.connect(f"ws://127.0.0.1:{self.port}/_stcore/stream", subprotocols=["streamlit"],
                                          max_size=None) as ws:
                msg = BackMsg()
                msg.rerun_script.query_string = ""
                await ws.send(msg.SerializeToString())
                deadline = time.time() + timeout
                while time.time() < deadline:
                    value = predicate()
                    if value:
                        return value
                    try:  # drain what the app sends, as a browser would
                        await asyncio.wait_for(ws.recv(), 0.1)
                    except asyncio.TimeoutError:
                        pass
                raise AssertionError("condition not met in time (app log: "
                                     + self.log_path.read_text(errors="replace")[-2000:] + ")")

        return asyncio.run(run())

    def kill9(self) -> None:
        self.proc.kill()  # SIGKILL to the app process only, as `kill -9 PID` does
        self.proc.wait()


def _big_chatml(home, copies: int) -> bytes:
    """The demo train file repeated with fresh ids: an import long enough to kill mid-way."""
    lines = (home.data / "synth-demo-seed0" / "train_chatml.jsonl").read_text(encoding="utf-8").splitlines()
    out = []
    for k in range(copies):
        for line in lines:
            obj = json.loads(line)
            obj["meta"]["id"] = f"{obj['meta']['id']}-copy{k}"
            out.append(json.dumps(obj, ensure_ascii=False))
    return ("\n".join(out) + "\n").encode()


@pytest.mark.slow
def test_app_killed_mid_job_and_restarted(demo_home, tmp_path, monkeypatch):
    """kill -9 of the real app while it generates: the job's child (told by the kernel that its
    supervisor died) stops at its next safe point and requeues itself; the restarted app resumes
    it (queued -> running -> succeeded) with exactly one chain per example. A non-resumable job
    (an import) killed the same way ends interrupted, with its log tail, and is not rerun.

    Each kill lands on an observed event: the teacher holds the fifth request (two rounds are
    committed, the third is in flight), and the import is held after its first committed batch
    (the ``import.batch`` failpoint); both are released only once the child has logged that it
    will stop, so neither can finish first on a fast machine."""
    server = FakeTeacher().start()
    n, batch = 16, 2
    values = teacher_values(server, n, batch)
    api.record_generate_override(values, "fault test")
    server.hold(after=2 * batch)  # rounds 1 and 2 answered; round 3 waits
    job_id = api.start_generate(values)  # what the Generate page's Launch does
    db = store.connect(demo_home)
    app_log = tmp_path / "app.log"
    held = arm_failpoint(monkeypatch, tmp_path / "failpoints", "import.batch", 1)  # only the import reaches it
    apps: list[App] = []
    try:
        app = App(demo_home, app_log)
        apps.append(app)
        app.start()
        child = app.open_session_until(lambda: (j := store.get_job(db, job_id))["status"] == "running" and j["pid"])
        server.wait_held()
        assert db.execute("SELECT COUNT(*) FROM chains").fetchone()[0] == 2 * batch
        app.kill9()
        wait_for(lambda: "stop requested" in _log_text(store.get_job(db, job_id)), timeout=60,
                 what="the child to log that it stops")
        server.release()  # the round in flight completes, then the child stops at its safe point
        wait_for(lambda: not _alive(child), timeout=90)
        job = store.get_job(db, job_id)
        done_before = db.execute("SELECT COUNT(*) FROM chains").fetchone()[0]
        assert job["status"] == "queued" and job["pid"] is None, job  # requeued by the stopping child
        assert f"job {job_id} interrupted" in _log_text(job)
        assert done_before == 3 * batch  # the round in flight was finished and kept, nothing after it

        app = App(demo_home, app_log)
        apps.append(app)
        app.start()
        seen: list[str] = []

        def finished():
            status = store.get_job(db, job_id)["status"]
            if not seen or seen[-1] != status:
                seen.append(status)
            return status in store.FINAL_JOB_STATES

        app.open_session_until(finished, timeout=120)
        job = store.get_job(db, job_id)
        assert job["status"] == "succeeded", job["error"]
        assert seen[0] in ("queued", "running") and seen[-2:] == ["running", "succeeded"], seen
        assert job["runs"] == 2 and job["result"]["already_done"] == done_before
        assert_one_chain_per_example(db, selection(db, n), attempts_each=1)
        assert server.calls == n  # nothing was asked twice

        # A non-resumable kind: an import, killed with the app while held after its first batch.
        import_id = api.start_import(_big_chatml(demo_home, 2), "big_train.jsonl", dataset="big")
        child = app.open_session_until(lambda: held.exists() and store.get_job(db, import_id)["pid"])
        app.kill9()
        wait_for(lambda: "stop requested" in _log_text(store.get_job(db, import_id)), timeout=60,
                 what="the import to log that it stops")
        held.unlink()
        wait_for(lambda: not _alive(child), timeout=90)
        job = store.get_job(db, import_id)
        assert job["status"] == "interrupted", job
        assert "supervisor went away" in job["error"]
        assert f"job {import_id} (import)" in job["log_tail"]
        accepted = db.execute("SELECT COUNT(*) FROM examples e JOIN datasets d ON d.id = e.dataset_id "
                              "WHERE d.name = 'big'").fetchone()[0]
        assert accepted == datasets.BATCH  # the one committed batch, nothing after the stop
        assert_database_sound(db)
    finally:
        for a in apps:
            if a.proc is not None and a.proc.poll() is None:
                a.kill9()
        server.stop()


def test_power_loss_of_worker_and_child_is_recovered_as_stale(demo_home, monkeypatch):
    """The worker (standing in for the app) and its job's child die together (SIGKILL to both, as
    an OOM kill of the process tree or a power cut would), while the teacher holds a request of
    the third round: nobody closes the job row. The next engine finds it running with a stale
    heartbeat and requeues it (generate is resumable); the resumed run ends with one chain per
    example. (STALE_AFTER_S is lowered from 30 s so the test waits one second, not thirty, for
    the heartbeat to be observed stale.)"""
    server = FakeTeacher().start()
    n, batch = 12, 2
    values = teacher_values(server, n, batch)
    api.record_generate_override(values, "fault test")
    server.hold(after=2 * batch)
    job_id = api.start_generate(values)
    db = store.connect(demo_home)
    env = dict(os.environ, CCR_HOME=str(demo_home.data))
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "worker"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        child = wait_for(lambda: (j := store.get_job(db, job_id))["status"] == "running" and j["pid"], timeout=60)
        server.wait_held()
        os.kill(child, signal.SIGKILL)
        proc.kill()
    finally:
        proc.kill()
        proc.wait()
    wait_for(lambda: not _alive(child), timeout=30)
    server.drop()
    job = store.get_job(db, job_id)
    assert job["status"] == "running"  # nobody was left to close it
    assert db.execute("SELECT COUNT(*) FROM chains").fetchone()[0] == 2 * batch
    monkeypatch.setattr(jobs, "STALE_AFTER_S", 1.0)
    wait_for(lambda: store.now() - store.get_job(db, job_id)["heartbeat"] > jobs.STALE_AFTER_S, timeout=30,
             interval=0.05, what="the dead job's heartbeat to go stale")
    worker = jobs.Worker(demo_home, poll_s=0.1).start_thread()
    try:
        job = wait_for(lambda: (j := store.get_job(db, job_id))["status"] in store.FINAL_JOB_STATES and j,
                       timeout=120)
    finally:
        worker.stop()
        server.stop()
    assert job["status"] == "succeeded", job["error"]
    assert job["runs"] == 2 and job["result"]["already_done"] == 2 * batch
    assert_one_chain_per_example(db, selection(db, n), attempts_each=1)
    assert_database_sound(db)


# ---------------------------------------------------------------------------------------------
# 3. Training killed three times under the real worker
# ---------------------------------------------------------------------------------------------


def _complete_steps(folder: Path) -> list[int]:
    return [c["step"] for c in runs.list_checkpoints(folder) if c["complete"]]


@pytest.mark.slow
def test_training_child_killed_three_times_resumes_from_last_complete_checkpoint(tiny_home, tiny_model, monkeypatch):
    """The Train page's launch (``api.start_training``) runs under a real Worker; its child is
    SIGKILLed three times mid-training, each time while held at the end of a chosen optimizer
    step (the ``train.step`` failpoint), so the kill lands at that step on a machine of any
    speed. After each kill the page's Resume (``api.resume_training``) requeues the job; the run continues from the newest checkpoint that was complete at the kill
    (a torn one is skipped) and ends at the same global step with the same losses as a run that
    was never interrupted."""
    max_steps = 30
    overrides = [f"base_model={tiny_model}", *TINY_OVERRIDES, f"max_steps={max_steps}", "save_steps=3",
                 "save_total_limit=2", "eval_steps=6"]
    data_file, eval_data = tiny_home.data / "train_chat.jsonl", tiny_home.data / "validation_chat.jsonl"
    # Each run is held at the end of optimizer step N (the train.step failpoint) and killed there:
    # past the previous resume point, between two checkpoints (save_steps=3).
    kill_at = (5, 14, 23)
    held_dir = tiny_home.data / "failpoints"
    held = arm_failpoint(monkeypatch, held_dir, "train.step", kill_at[0])  # the worker's children inherit it
    job_id, run = api.start_training(str(CONFIGS / "train" / "smollm2_cpu.yaml"), str(data_file), str(eval_data),
                                     "\n".join(overrides), "killed")
    db = store.connect(tiny_home)
    launch = store.get_job(db, job_id)["config"]
    folder = tiny_home.models / run
    worker = jobs.Worker(tiny_home, poll_s=0.1).start_thread()
    resumed_from: list[int] = []
    try:
        for k, step in enumerate(kill_at):
            wait_for(held.exists, timeout=300, interval=0.01, what=f"the run to reach step {step}")
            sup = worker.running[job_id]
            sup.proc.send_signal(signal.SIGKILL)
            sup.proc.wait()
            held.unlink()
            complete = _complete_steps(folder)
            assert complete and complete[-1] == step // 3 * 3, complete  # the newest whole checkpoint
            resumed_from.append(complete[-1])
            job = wait_for(lambda: (j := store.get_job(db, job_id))["status"] == "failed" and j, timeout=30)
            assert "killed by signal 9" in job["error"]
            if k + 1 < len(kill_at):
                held = arm_failpoint(monkeypatch, held_dir, "train.step", kill_at[k + 1])
            else:
                monkeypatch.delenv("CCR_FAILPOINTS")
            assert api.resume_training(run) == job_id  # the same job, queued again
        job = wait_for(lambda: (j := store.get_job(db, job_id))["status"] in store.FINAL_JOB_STATES and j,
                       timeout=300)
    finally:
        worker.stop()
    assert resumed_from == [3, 12, 21]
    assert job["status"] == "succeeded", job["error"]
    assert job["runs"] == 4 and job["result"]["step"] == max_steps
    log = _log_text(job)
    for step in resumed_from:
        assert f"resuming from checkpoint-{step}" in log, (step, log[-3000:])
    manifest = runs.read_manifest(folder)
    assert [r["from"] for r in manifest["resumes"]] == [f"checkpoint-{s}" for s in resumed_from]
    assert manifest["status"] == "succeeded" and (folder / "adapter_model.safetensors").exists()

    # The same configuration, never interrupted: same steps, same losses.
    cfg = load_config(TrainConfig, data=launch["config"])
    reference = train.train(tiny_home, "straight", cfg, log=lambda m: None)
    assert reference["step"] == max_steps

    def losses(name: str) -> dict:
        return {(s, k): v for s, k, v in db.execute("SELECT step, kind, loss FROM train_metrics WHERE run_name = ?",
                                                    [name])}

    want, got = losses("straight"), losses(run)
    assert set(got) == set(want) and len([k for k in want if k[1] == "eval"]) == max_steps // 6
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-4), key


# ---------------------------------------------------------------------------------------------
# 4. Several people pressing Start at once make one job
# ---------------------------------------------------------------------------------------------


def _at_once(fn, n: int = 8) -> list:
    """Call ``fn`` from ``n`` threads released together; returns their results (or exceptions)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def _active(db, kind: str) -> list[int]:
    return [r[0] for r in db.execute("SELECT id FROM jobs WHERE kind = ? AND status IN ('queued', 'running', "
                                     "'pausing')", [kind])]


def test_concurrent_start_presses_make_one_job_each(demo_home, tmp_path, monkeypatch):
    db = store.connect(demo_home)
    # Data page: Create demo dataset
    ids = _at_once(lambda: api.start_synth("demo", 7))
    assert len(set(ids)) == 1 and _active(db, "synth") == [ids[0]], ids

    # Generate page: Test on one example, then Launch full run
    server = FakeTeacher()
    values = teacher_values(server, 4, 2)
    ids = _at_once(lambda: api.start_generate_test(values))
    assert len(set(ids)) == 1 and _active(db, "generate") == [ids[0]], ids
    store.request_cancel(db, ids[0])
    api.record_generate_override(values, "fault test")
    ids = _at_once(lambda: api.start_generate(values))
    assert len(set(ids)) == 1 and _active(db, "generate") == [ids[0]], ids

    # Train page: Launch training with the same preset, data and overrides, with and without a name
    from test_train import write_chatml

    data = write_chatml(demo_home.data / "train_chat.jsonl", 6)
    results = _at_once(lambda: api.start_training(str(CONFIGS / "train" / "smollm2_cpu.yaml"), str(data), None, "max_steps=2"))
    assert all(isinstance(r, tuple) for r in results), results
    assert len(set(results)) == 1 and _active(db, "train") == [results[0][0]], results
    # a press a few seconds later (another run name would be generated) still finds the same job
    monkeypatch.setattr(runs, "new_run_name", lambda preset=None: "later-name")
    assert api.start_training(str(CONFIGS / "train" / "smollm2_cpu.yaml"), str(data), None, "max_steps=2") == results[0]
    results = _at_once(lambda: api.start_training(str(CONFIGS / "train" / "smollm2_cpu.yaml"), str(data), None,
                                                  "max_steps=3", "named"))
    assert len({r for r in results if isinstance(r, tuple)}) == 1, results
    assert len(_active(db, "train")) == 2  # different settings: a second, distinct run

    # the demo loop and a served model: one job each
    ids = _at_once(api.start_demo)
    assert len(set(ids)) == 1 and _active(db, "demo") == [ids[0]]
    ids = _at_once(lambda: api.start_server("smollm2-135m-instruct", "127.0.0.1", 8765))
    assert len(set(ids)) == 1 and _active(db, "serve") == [ids[0]]


# ---------------------------------------------------------------------------------------------
# Exports: a kill at the worst moment leaves the previous file whole
# ---------------------------------------------------------------------------------------------

KILL_BEFORE_RENAME = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from engine.chains import export
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # dies after writing, before the rename
export.export_reasoning({home!r}, {out!r})
"""


def test_export_killed_before_its_rename_leaves_the_previous_file_whole(demo_home, tmp_path):
    from engine.chains import export, gate, selection
    from engine.core.config import to_dict

    server = FakeTeacher().start()
    try:
        values = teacher_values(server, 6, 3)
        cfg = selection.config_from(values)
        gate.record_override(demo_home, cfg, "fault test")
        assert jobs.run_inline(demo_home, "generate", {**to_dict(cfg), "limit": 3}, echo=False)["status"] == "succeeded"
        out = tmp_path / "train_reasoning.jsonl"
        export.export_reasoning(demo_home, out)
        before = out.read_bytes()
        assert len(before.splitlines()) == 3
        assert jobs.run_inline(demo_home, "generate", to_dict(cfg), echo=False)["status"] == "succeeded"  # 6 now
    finally:
        server.stop()
    script = KILL_BEFORE_RENAME.format(repo=str(REPO), home=str(demo_home.data), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert out.read_bytes() == before  # the reader sees the old export, whole
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".train_reasoning.jsonl.")]
    assert leftovers and all(n.endswith(".tmp") for n in leftovers)  # the cut-short file is an obvious temp file
    export.export_reasoning(demo_home, out)
    assert len(out.read_text().splitlines()) == 6
