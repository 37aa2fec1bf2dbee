"""The job engine with real child processes: success, failure with log, hard kill, cancel,
worker death, and a job never running twice."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.data import datasets

from engine.core import jobs, store
from engine.core.paths import REPO

sys.path.insert(0, str(Path(__file__).parent))
from helpers import arm_failpoint, wait_for  # noqa: E402




@pytest.fixture(scope="module")
def big_jsonl(tmp_path_factory):
    """~26k valid ChatML lines: an import long enough to cancel or kill mid-way."""
    from engine.data import synth

    out = tmp_path_factory.mktemp("big")
    synth.write_synth(out, preset="plan", seed=3)
    return out / "train_chatml.jsonl"


def run_worker(home, until, timeout=120.0):
    worker = jobs.Worker(home, poll_s=0.2).start_thread()
    try:
        return wait_for(until, timeout)
    finally:
        worker.stop()


def test_worker_runs_job_in_child_process(home):
    job_id = jobs.enqueue(home, "synth", {"preset": "demo", "seed": 1})
    db = store.connect(home)
    job = run_worker(home, lambda: (j := store.get_job(db, job_id))["status"] in store.FINAL_JOB_STATES and j)
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["counts"] == {"train": 300, "validation": 60, "test": 60}
    assert job["pid"] is None and job["progress"] == 1.0
    log = Path(job["log_path"]).read_text()
    assert f"job {job_id} (synth) pid" in log
    assert int(log.split(" pid ")[1].split()[0]) != os.getpid()  # it ran in another process
    assert db.execute("SELECT COUNT(*) FROM examples").fetchone()[0] == 420


def test_failing_job_is_marked_failed_with_log(home):
    job_id = jobs.enqueue(home, "synth", {"preset": "nonexistent"})
    db = store.connect(home)
    job = run_worker(home, lambda: (j := store.get_job(db, job_id))["status"] in store.FINAL_JOB_STATES and j)
    assert job["status"] == "failed"
    assert "unknown preset 'nonexistent'" in job["error"]
    assert "Traceback" in job["log_tail"]


def test_killed_child_is_marked_failed_with_log_tail(home, big_jsonl, monkeypatch, tmp_path):
    held = arm_failpoint(monkeypatch, tmp_path, "import.batch", 1)  # the child holds after one batch
    job_id = jobs.enqueue(home, "import", {"path": str(big_jsonl)})
    db = store.connect(home)
    worker = jobs.Worker(home, poll_s=0.2).start_thread()
    try:
        pid = wait_for(lambda: (j := store.get_job(db, job_id))["status"] == "running" and j["pid"])
        wait_for(held.exists, what="the import to commit its first batch")
        os.kill(pid, signal.SIGKILL)
        job = wait_for(lambda: (j := store.get_job(db, job_id))["status"] != "running" and j)
        held.unlink()
    finally:
        worker.stop()
    assert job["status"] == "failed"
    assert "killed by signal 9" in job["error"]
    assert f"job {job_id} (import)" in job["log_tail"]
    assert db.execute("SELECT COUNT(*) FROM examples").fetchone()[0] == datasets.BATCH  # the committed batch


def test_cancel_stops_a_running_job(home, big_jsonl, monkeypatch, tmp_path):
    held = arm_failpoint(monkeypatch, tmp_path, "import.batch", 1)
    job_id = jobs.enqueue(home, "import", {"path": str(big_jsonl)})
    db = store.connect(home)
    worker = jobs.Worker(home, poll_s=0.2).start_thread()
    try:
        wait_for(held.exists, what="the import to commit its first batch")
        store.request_cancel(db, job_id)
        held.unlink()  # its next stop check sees the cancel
        job = wait_for(lambda: (j := store.get_job(db, job_id))["status"] in store.FINAL_JOB_STATES and j)
    finally:
        worker.stop()
    assert job["status"] == "cancelled"
    imported = db.execute("SELECT COUNT(*) FROM examples").fetchone()[0]
    assert imported == datasets.BATCH  # stopped part-way, after its one committed batch


def test_two_workers_never_run_a_job_twice(home):
    ids = [jobs.enqueue(home, "synth", {"preset": "demo", "seed": s, "dataset": f"d{s}"}) for s in range(4)]
    db = store.connect(home)
    w1 = jobs.Worker(home, poll_s=0.1, name="w1").start_thread()
    w2 = jobs.Worker(home, poll_s=0.1, name="w2").start_thread()
    try:
        wait_for(lambda: all(store.get_job(db, i)["status"] == "succeeded" for i in ids), timeout=180)
    finally:
        w1.stop()
        w2.stop()
    rows = db.execute(f"SELECT runs, worker FROM jobs WHERE id IN ({','.join(map(str, ids))})").fetchall()
    assert all(runs == 1 for runs, _ in rows)
    assert db.execute("SELECT COUNT(*) FROM examples").fetchone()[0] == 4 * 420


def test_worker_killed_mid_job_then_restarted(home, big_jsonl, monkeypatch, tmp_path):
    """kill -9 of the worker (the app): its child stops too, and the next worker leaves no job 'running'."""
    held = arm_failpoint(monkeypatch, tmp_path, "import.batch", 1)
    env = dict(os.environ, CCR_HOME=str(home.data))
    job_id = jobs.enqueue(home, "import", {"path": str(big_jsonl)})
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "worker"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = store.connect(home)
    try:
        child = wait_for(lambda: (j := store.get_job(db, job_id))["status"] == "running" and j["pid"])
        wait_for(held.exists, what="the import to commit its first batch")
    finally:
        proc.kill()
        proc.wait()
    # The child gets SIGTERM from the kernel when its supervisor dies, and stops at a safe point.
    wait_for(lambda: "stop requested" in Path(store.get_job(db, job_id)["log_path"]).read_text(errors="replace"),
             what="the child to log that it stops")
    held.unlink()
    wait_for(lambda: not _alive(child), timeout=60)
    job = store.get_job(db, job_id)
    assert job["status"] == "interrupted", job["status"]
    assert job["error"]
    # A new worker starts cleanly and nothing is left running.
    worker = jobs.Worker(home, poll_s=0.2).start_thread()
    wait_for(lambda: worker.passes >= 2 or not worker.alive(), what="two passes of the new worker")
    assert worker.alive() and worker.last_error is None
    worker.stop()
    assert db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'running'").fetchone()[0] == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of an exited process is reaped by init; treat "Z" as dead.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_run_inline_records_a_job(home):
    job = jobs.run_inline(home, "synth", {"preset": "demo", "seed": 2}, echo=False)
    assert job["status"] == "succeeded"
    assert job["worker"].endswith(":inline")
    assert job["result"]["dataset"] == "demo-seed2"


def test_unknown_kind_is_refused(home):
    with pytest.raises(ValueError, match="unknown job kind"):
        jobs.enqueue(home, "nope", {})
