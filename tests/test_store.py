"""The SQLite store: migrations are safe to re-run, the job claim is exclusive, keys hold."""

import json
import multiprocessing
import sqlite3
import threading

import pytest

from engine.core import store


def test_migrations_rerun_safely(home):
    db = store.connect(home)
    tables = set(db.table_names())
    assert {"datasets", "examples", "jobs", "chains", "chain_attempts", "reviews", "gate_tests", "train_runs",
            "train_metrics", "evaluations", "eval_predictions", "settings"} <= tables
    applied = db.execute("SELECT COUNT(*) FROM _sqlite_migrations").fetchone()[0]
    # Forget that this process applied them, then apply again: nothing changes, nothing fails.
    store._migrated.clear()
    db2 = store.connect(home)
    store.migrations.apply(db2)
    assert db2.execute("SELECT COUNT(*) FROM _sqlite_migrations").fetchone()[0] == applied
    assert set(db2.table_names()) == tables


def test_wal_and_busy_timeout(home):
    db = store.connect(home)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == store.BUSY_TIMEOUT_S * 1000


def _migrate_in_process(path, q):
    try:
        store._migrated.clear()
        db = store.open_db(path)
        q.put(db.execute("SELECT COUNT(*) FROM _sqlite_migrations").fetchone()[0])
    except Exception as exc:  # pragma: no cover - reported through the queue
        q.put(repr(exc))


def test_concurrent_first_open_from_processes(tmp_path):
    path = tmp_path / "race.db"
    q = multiprocessing.get_context("spawn").Queue()
    procs = [multiprocessing.get_context("spawn").Process(target=_migrate_in_process, args=(path, q)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    assert len(set(results)) == 1 and isinstance(results[0], int), results


def test_claim_is_exclusive_across_threads(home):
    db = store.connect(home)
    ids = [store.enqueue_job(db, "synth", {"n": i}) for i in range(40)]
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(name):
        conn = store.connect(home)  # one connection per thread
        while True:
            job = store.claim_job(conn, name)
            if job is None:
                return
            with lock:
                claimed.append(job["id"])

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == ids  # every job once, none twice
    assert db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'running'").fetchone()[0] == 40


def test_claim_respects_kinds_and_order(home):
    db = store.connect(home)
    a = store.enqueue_job(db, "train", {})
    b = store.enqueue_job(db, "synth", {})
    assert store.claim_job(db, "w", kinds=["synth"])["id"] == b
    assert store.claim_job(db, "w", kinds=["synth"]) is None
    assert store.claim_job(db, "w")["id"] == a


def test_dedupe_key_makes_one_active_job(home):
    db = store.connect(home)
    first = store.enqueue_job(db, "synth", {}, dedupe_key="synth:demo:0")
    with pytest.raises(store.DuplicateJob) as err:
        store.enqueue_job(db, "synth", {}, dedupe_key="synth:demo:0")
    assert err.value.job_id == first
    store.finish_job(db, first, "succeeded")
    # Once the first is finished, the same request makes a new job.
    assert store.enqueue_job(db, "synth", {}, dedupe_key="synth:demo:0") != first


def test_stale_running_jobs_are_recovered(home):
    db = store.connect(home)
    gen = store.enqueue_job(db, "generate", {})
    syn = store.enqueue_job(db, "synth", {})
    store.claim_job(db, "dead-worker", job_id=gen)
    store.claim_job(db, "dead-worker", job_id=syn)
    db.execute("UPDATE jobs SET heartbeat = 0")
    touched = store.recover_stale_jobs(db, 30, resumable_kinds={"generate"})
    assert sorted(touched) == [gen, syn]
    assert store.get_job(db, gen)["status"] == "queued"   # resumable: continues
    failed = store.get_job(db, syn)
    assert failed["status"] == "failed" and "worker stopped" in failed["error"]


def test_a_killed_ccr_commands_job_is_interrupted_not_queued(home):
    """A job run inline by a ``ccr`` command that was killed: its user reruns the command, so a
    worker must not start it too (two trainers on one run folder); ``run_inline`` recovers it."""
    from engine.core import jobs

    db = store.connect(home)
    dead = store.enqueue_job(db, "train", {})
    store.claim_job(db, "host:4242:inline", job_id=dead)
    db.execute("UPDATE jobs SET heartbeat = 0")
    assert store.recover_stale_jobs(db, 30, resumable_kinds={"train"}) == [dead]
    job = store.get_job(db, dead)
    assert job["status"] == "interrupted" and "run the command again" in job["error"]

    # With no app open, the next command is what notices.
    again = store.enqueue_job(db, "train", {})
    store.claim_job(db, "host:4243:inline", job_id=again)
    db.execute("UPDATE jobs SET heartbeat = 0 WHERE id = ?", [again])
    done = jobs.run_inline(home, "synth", {"preset": "demo", "seed": 7}, echo=False)
    assert done["status"] == "succeeded"
    assert store.get_job(db, again)["status"] == "interrupted"


def test_cancel_queued_and_running(home):
    db = store.connect(home)
    queued = store.enqueue_job(db, "synth", {})
    running = store.enqueue_job(db, "synth", {})
    store.claim_job(db, "w", job_id=running)
    store.request_cancel(db, queued)
    store.request_cancel(db, running)
    assert store.get_job(db, queued)["status"] == "cancelled"
    job = store.get_job(db, running)
    assert job["status"] == "running" and job["cancel_requested"] == 1


def test_examples_keyed_by_dataset_and_id(home):
    db = store.connect(home)
    ds = store.create_dataset(db, "d", "import")
    assert store.create_dataset(db, "d", "import") == ds
    row = {"split": "train", "ex_id": "x1", "task": "csat", "messages": [{"role": "user", "content": "hi"}],
           "meta": {"id": "x1"}, "labels": {"csat": 3}, "transcript": "hi"}
    assert store.insert_examples(db, ds, [row]) == (1, [])
    assert store.insert_examples(db, ds, [row, dict(row, ex_id="x2")]) == (1, ["x1"])
    assert db.execute("SELECT COUNT(*) FROM examples").fetchone()[0] == 2
    assert json.loads(db.execute("SELECT labels FROM examples WHERE ex_id='x1'").fetchone()[0]) == {"csat": 3}


def test_write_transaction_rolls_back_on_error(home):
    db = store.connect(home)
    ds = store.create_dataset(db, "d", "import")
    good = {"split": "train", "ex_id": "ok", "task": None, "messages": [], "meta": {}, "labels": {}, "transcript": "t"}
    bad = dict(good, ex_id="bad", transcript=None)  # NOT NULL violation mid-batch
    with pytest.raises(sqlite3.IntegrityError):
        store.insert_examples(db, ds, [good, bad])
    assert db.execute("SELECT COUNT(*) FROM examples").fetchone()[0] == 0
