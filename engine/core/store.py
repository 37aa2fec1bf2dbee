"""The one SQLite database, and the only module that writes to it.

Why these choices:
- WAL mode lets the UI read while a job writes; a busy timeout makes concurrent writers wait
  instead of failing.
- The connection is in autocommit mode and every multi-row write is an explicit transaction,
  so a kill between two statements never leaves half a unit of work behind.
- A connection is never shared across threads: ``connect()`` is cheap, call it per thread.
- Rows that a resumed job may write again are keyed by UNIQUE constraints, and writes use
  upserts on those keys, so a resume can neither lose nor duplicate them.
- Schema changes are ``sqlite_utils`` migrations (engine/core/schema.py), applied under a file
  lock so two processes starting together do not race; re-running them is a no-op.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from sqlite_utils import Database

from engine.core.paths import Home, resolve_home
from engine.core.schema import ACTIVE_SQL, FINAL_JOB_STATES, migrations, reasons_text

BUSY_TIMEOUT_S = 30


_migrated: set[str] = set()


def connect(home: str | os.PathLike | Home | None = None) -> Database:
    """A new connection to the home's database (WAL, busy timeout, migrations applied).

    Call it once per thread; never hand the result to another thread.
    """
    home = resolve_home(home).ensure()
    return open_db(home.db)


def open_db(path: str | os.PathLike) -> Database:
    path = Path(path)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL is durable across application crashes in WAL mode (only an OS crash can lose
    # the last commits), and much faster than FULL for many small job commits.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    db = Database(conn)
    key = str(path.resolve())
    if key not in _migrated:
        migrate(db, path)
        _migrated.add(key)
    return db


def migrate(db: Database, path: Path) -> None:
    """Apply pending migrations; safe to call again and from several processes at once."""
    lock_path = path.with_name(path.name + ".migrate.lock")
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            migrations.apply(db)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def immediate(db: Database) -> Iterator[Database]:
    """A write transaction that takes the write lock up front (no upgrade deadlocks)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    else:
        db.execute("COMMIT")


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def now() -> float:
    return time.time()


# ---------------------------------------------------------------------------------------------
# Datasets and examples
# ---------------------------------------------------------------------------------------------


DATASET_NAME_MAX = 100


def clean_dataset_name(name) -> str:
    """``name`` without surrounding spaces; ValueError (saying why) for an empty name, a name of
    spaces, one over 100 characters, or one with control characters (a line break in a picker).

    >>> clean_dataset_name("  calls 2024 ")
    'calls 2024'
    >>> clean_dataset_name("   ")
    Traceback (most recent call last):
    ...
    ValueError: a dataset name cannot be empty or only spaces
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a dataset name cannot be empty or only spaces")
    name = name.strip()
    if len(name) > DATASET_NAME_MAX:
        raise ValueError(f"a dataset name has at most {DATASET_NAME_MAX} characters (this one has {len(name)})")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError("a dataset name cannot contain line breaks, tabs or other control characters")
    return name


def create_dataset(db: Database, name: str, kind: str, source: str | None = None,
                   preset: str | None = None, seed: int | None = None) -> int:
    """Create (or return the existing) dataset called ``name`` (trimmed; see ``clean_dataset_name``)."""
    name = clean_dataset_name(name)
    with immediate(db):
        row = db.execute("SELECT id FROM datasets WHERE name = ?", [name]).fetchone()
        if row:
            return row[0]
        cur = db.execute(
            "INSERT INTO datasets (name, kind, source, preset, seed, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [name, kind, source, preset, seed, now()],
        )
        return cur.lastrowid


def jobs_using_dataset(db: Database, name: str) -> list[tuple[int, str]]:
    """(id, kind) of active jobs that read or write dataset ``name``: named in their config, or a
    generation or evaluation of the working dataset when that is ``name`` (the chosen one, else the
    newest: what such a job resolves when it starts, ``working_dataset``)."""
    working = working_dataset(db)
    out = []
    for job_id, kind, config in db.execute(
            f"SELECT id, kind, config FROM jobs WHERE status IN {ACTIVE_SQL} AND kind IN "
            "('synth', 'import', 'generate', 'eval', 'demo') ORDER BY id"):
        c = json.loads(config or "{}")
        if c.get("dataset") == name or (kind in ("generate", "eval") and not c.get("dataset") and not c.get("data")
                                        and name == working):
            out.append((job_id, kind))
    return out


def _refuse_busy(db: Database, name: str) -> None:
    busy = jobs_using_dataset(db, name)
    if busy:
        raise ValueError(f"job #{busy[0][0]} ({busy[0][1]}) is working on dataset {name!r}: wait for it to end "
                         "or cancel it first")


def dataset_usage(db: Database, dataset_id: int) -> dict:
    """What deleting a dataset would remove: its examples, their chains, attempts and reviews."""
    q = "SELECT COUNT(*) FROM {} WHERE example_id IN (SELECT id FROM examples WHERE dataset_id = ?)"
    return {"examples": db.execute("SELECT COUNT(*) FROM examples WHERE dataset_id = ?", [dataset_id]).fetchone()[0],
            "chains": db.execute(q.format("chains"), [dataset_id]).fetchone()[0],
            "attempts": db.execute(q.format("chain_attempts"), [dataset_id]).fetchone()[0],
            "reviews": db.execute("SELECT COUNT(*) FROM reviews WHERE chain_id IN (SELECT c.id FROM chains c JOIN "
                                  "examples e ON e.id = c.example_id WHERE e.dataset_id = ?)", [dataset_id]).fetchone()[0]}


def delete_dataset(db: Database, dataset_id: int) -> dict:
    """Delete a dataset with its examples, chains, attempts and reviews (foreign keys cascade) and
    its gate tests, in one transaction; returns what was removed. Refused (ValueError) while an
    active job works on it."""
    row = db.execute("SELECT name FROM datasets WHERE id = ?", [dataset_id]).fetchone()
    if row:
        _refuse_busy(db, row[0])
    usage = dataset_usage(db, dataset_id)
    with immediate(db):
        db.execute("DELETE FROM gate_tests WHERE example_id IN (SELECT id FROM examples WHERE dataset_id = ?) OR "
                   "(override = 1 AND json_extract(config, '$.dataset') = ?)", [dataset_id, row[0] if row else None])
        db.execute("DELETE FROM datasets WHERE id = ?", [dataset_id])
        if row and get_setting(db, "current_dataset") == row[0]:
            db.execute("DELETE FROM settings WHERE key = 'current_dataset'")
    return usage


def rename_dataset(db: Database, old: str, new: str) -> str:
    """Rename dataset ``old`` to ``new`` (trimmed, validated, unused); the working-dataset setting
    and the gate overrides recorded for it follow. Returns the new name."""
    new = clean_dataset_name(new)
    _refuse_busy(db, old)
    with immediate(db):
        if not db.execute("SELECT 1 FROM datasets WHERE name = ?", [old]).fetchone():
            raise ValueError(f"no dataset named {old!r}")
        if new != old and db.execute("SELECT 1 FROM datasets WHERE name = ?", [new]).fetchone():
            raise ValueError(f"a dataset named {new!r} already exists")
        db.execute("UPDATE datasets SET name = ? WHERE name = ?", [new, old])
        db.execute("UPDATE gate_tests SET config = json_set(config, '$.dataset', ?) "
                   "WHERE override = 1 AND json_extract(config, '$.dataset') = ?", [new, old])
        if get_setting(db, "current_dataset") == old:
            db.execute("UPDATE settings SET value = ?, updated_at = ? WHERE key = 'current_dataset'",
                       [dumps(new), now()])
    return new


def insert_examples(db: Database, dataset_id: int, rows: Iterable[dict]) -> tuple[int, list[str]]:
    """Insert examples in one transaction; returns (inserted, ids that already existed).

    Each row: split, ex_id, task, messages (list), meta (dict), labels (dict), transcript,
    source_file, source_line, and optionally raw (the imported line's own text, which the
    dataset export writes back). An id already in the dataset is not inserted again.
    Every row is serialised before the transaction starts, so a row that cannot be (a value
    JSON cannot write) raises before anything is written.
    """
    inserted, duplicates = 0, []
    t = now()
    params = [[dataset_id, r["split"], r["ex_id"], r.get("task"), json.dumps(r["messages"], ensure_ascii=False),
               dumps(r["meta"]), dumps(r.get("labels") or {}), r["transcript"], r.get("source_file"),
               r.get("source_line"), r.get("raw"), t] for r in rows]
    with immediate(db):
        for p in params:
            cur = db.execute(
                # ON CONFLICT on the key only: OR IGNORE would also silently skip NOT NULL violations.
                "INSERT INTO examples (dataset_id, split, ex_id, task, messages, meta, labels, "
                "transcript, source_file, source_line, raw, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (dataset_id, ex_id) DO NOTHING", p)
            if cur.rowcount:
                inserted += 1
            else:
                duplicates.append(p[2])
    return inserted, duplicates


# ---------------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------------


class DuplicateJob(Exception):
    """An active job with the same dedupe key exists; ``job_id`` names it."""

    def __init__(self, job_id: int):
        super().__init__(f"job {job_id} is already queued or running")
        self.job_id = job_id


def enqueue_job(db: Database, kind: str, config: dict, title: str | None = None,
                dedupe_key: str | None = None, status: str = "queued") -> int:
    """Queue a job; with ``dedupe_key``, a second request while one is active raises DuplicateJob."""
    try:
        with immediate(db):
            cur = db.execute(
                "INSERT INTO jobs (kind, title, config, status, dedupe_key, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [kind, title or kind, dumps(config), status, dedupe_key, now()],
            )
            return cur.lastrowid
    except sqlite3.IntegrityError:
        row = db.execute(
            f"SELECT id FROM jobs WHERE dedupe_key = ? AND status IN {ACTIVE_SQL}", [dedupe_key]
        ).fetchone()
        raise DuplicateJob(row[0] if row else -1) from None


def claim_job(db: Database, worker: str, kinds: Iterable[str] | None = None, job_id: int | None = None) -> dict | None:
    """Atomically move the oldest queued job (of ``kinds``, or ``job_id``) to running for ``worker``.

    ``BEGIN IMMEDIATE`` serialises claimers, and the ``status = 'queued'`` guard in the UPDATE
    means two workers can never both get the same job.
    """
    where, params = "status = 'queued'", []
    if job_id is not None:
        where += " AND id = ?"
        params.append(job_id)
    if kinds is not None:
        kinds = list(kinds)
        where += f" AND kind IN ({', '.join('?' for _ in kinds)})"
        params.extend(kinds)
    with immediate(db):
        row = db.execute(f"SELECT id FROM jobs WHERE {where} ORDER BY id LIMIT 1", params).fetchone()
        if not row:
            return None
        t = now()
        cur = db.execute(
            "UPDATE jobs SET status = 'running', worker = ?, heartbeat = ?, started_at = COALESCE(started_at, ?), "
            "runs = runs + 1, pause_requested = 0, error = NULL WHERE id = ? AND status = 'queued'",
            [worker, t, t, row[0]],
        )
        if cur.rowcount != 1:
            return None
    return get_job(db, row[0])


def get_job(db: Database, job_id: int) -> dict | None:
    job = next(db.query("SELECT * FROM jobs WHERE id = ?", [job_id]), None)
    if job is None:
        return None
    for key in ("config", "stats", "result"):
        job[key] = json.loads(job[key]) if job[key] else ({} if key != "result" else None)
    return job


def set_job_pid(db: Database, job_id: int, pid: int | None, log_path: str | None = None) -> None:
    with immediate(db):
        db.execute("UPDATE jobs SET pid = ?, log_path = COALESCE(?, log_path), heartbeat = ? WHERE id = ?",
                   [pid, log_path, now(), job_id])


def update_job_progress(db: Database, job_id: int, progress: float | None = None, stats: dict | None = None) -> None:
    """Record progress (0..1) and stats; also counts as a heartbeat."""
    with immediate(db):
        if stats is not None:
            db.execute("UPDATE jobs SET progress = COALESCE(?, progress), stats = ?, heartbeat = ? WHERE id = ?",
                       [progress, dumps(stats), now(), job_id])
        else:
            db.execute("UPDATE jobs SET progress = COALESCE(?, progress), heartbeat = ? WHERE id = ?",
                       [progress, now(), job_id])


def heartbeat_job(db: Database, job_id: int, log_tail: str | None = None) -> None:
    with immediate(db):
        db.execute("UPDATE jobs SET heartbeat = ?, log_tail = COALESCE(?, log_tail) WHERE id = ?",
                   [now(), log_tail, job_id])


def finish_job(db: Database, job_id: int, status: str, error: str | None = None,
               log_tail: str | None = None, result: dict | None = None) -> None:
    """Close a job in a final state (succeeded, failed, cancelled, paused, interrupted)."""
    assert status in FINAL_JOB_STATES, status
    with immediate(db):
        db.execute(
            "UPDATE jobs SET status = ?, error = ?, log_tail = COALESCE(?, log_tail), "
            "result = COALESCE(?, result), finished_at = ?, pid = NULL, "
            "progress = CASE WHEN ? = 'succeeded' THEN 1.0 ELSE progress END WHERE id = ?",
            [status, error, log_tail, dumps(result) if result is not None else None, now(), status, job_id],
        )


def request_cancel(db: Database, job_id: int) -> None:
    """Ask a job to stop; a queued job is cancelled at once."""
    with immediate(db):
        db.execute("UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ? AND status = 'queued'",
                   [now(), job_id])
        db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status IN ('running', 'pausing')", [job_id])


def request_pause(db: Database, job_id: int) -> None:
    with immediate(db):
        db.execute("UPDATE jobs SET pause_requested = 1, status = 'pausing' WHERE id = ? AND status = 'running'",
                   [job_id])


def requeue_job(db: Database, job_id: int) -> bool:
    """Put a paused, interrupted or failed job back in the queue (it resumes from its saved state)."""
    with immediate(db):
        cur = db.execute(
            "UPDATE jobs SET status = 'queued', cancel_requested = 0, pause_requested = 0, error = NULL, "
            "finished_at = NULL, pid = NULL WHERE id = ? AND status IN ('paused', 'interrupted', 'failed')",
            [job_id],
        )
        return cur.rowcount == 1


def recover_stale_jobs(db: Database, stale_after_s: float, resumable_kinds: Iterable[str]) -> list[int]:
    """Jobs marked running whose worker stopped beating: requeue resumable ones, fail the rest.

    Called when a worker starts, periodically, and when a ``ccr`` command starts an inline job:
    a killed app, worker or command leaves its job in 'running' with an old heartbeat.

    A job a ``ccr`` command ran in its own process (worker ``host:pid:inline``) becomes
    'interrupted', never queued. Why: the command is how its user continues (``ccr demo`` says
    "run it again"); a worker picking it up as well would run the same stage twice at once, two
    trainers writing one run folder.
    """
    resumable = set(resumable_kinds)
    cutoff = now() - stale_after_s
    touched = []
    with immediate(db):
        rows = db.execute(
            "SELECT id, kind, runs, worker FROM jobs WHERE status IN ('running', 'pausing') "
            "AND COALESCE(heartbeat, 0) < ?",
            [cutoff],
        ).fetchall()
        for job_id, kind, runs, worker in rows:
            if (worker or "").endswith(":inline"):
                db.execute("UPDATE jobs SET status = 'interrupted', pid = NULL, finished_at = ?, "
                           "error = 'the ccr command running it stopped (killed, or the machine went down); "
                           "run the command again to continue' WHERE id = ?", [now(), job_id])
            elif kind in resumable and runs < 5:
                db.execute("UPDATE jobs SET status = 'queued', pid = NULL, worker = NULL, "
                           "error = 'worker stopped; resumed' WHERE id = ?", [job_id])
            else:
                db.execute("UPDATE jobs SET status = 'failed', pid = NULL, finished_at = ?, "
                           "error = 'worker stopped while the job was running (see log tail)' WHERE id = ?",
                           [now(), job_id])
            touched.append(job_id)
    return touched


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def set_setting(db: Database, key: str, value) -> None:
    with immediate(db):
        db.execute("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                   [key, dumps(value), now()])


def get_setting(db: Database, key: str, default=None):
    row = db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return json.loads(row[0]) if row else default


def working_dataset(db: Database) -> str | None:
    """The dataset the pipeline works on when none is named: the chosen one (the
    ``current_dataset`` setting) while it exists, else the newest; None when there is none."""
    name = get_setting(db, "current_dataset")
    if name and db.execute("SELECT 1 FROM datasets WHERE name = ?", [name]).fetchone():
        return name
    row = db.execute("SELECT name FROM datasets ORDER BY id DESC LIMIT 1").fetchone()
    return row[0] if row else None


# ---------------------------------------------------------------------------------------------
# Phase 2: training runs and their metrics (engine/training/train.py)
# ---------------------------------------------------------------------------------------------


def upsert_train_run(db: Database, name: str, *, job_id: int | None, config: dict, base_model: str,
                     data_path: str | None, data_hash: str | None, status: str, dir: str) -> None:
    """Create a run's row, or (on resume) point it at the new job and mark it running again."""
    with immediate(db):
        db.execute(
            "INSERT INTO train_runs (name, job_id, config, base_model, data_path, data_hash, status, dir, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET job_id = excluded.job_id, "
            "config = excluded.config, status = excluded.status, finished_at = NULL",
            [name, job_id, dumps(config), base_model, data_path, data_hash, status, dir, now()],
        )


def finish_train_run(db: Database, name: str, status: str, final_metrics: dict | None = None) -> None:
    with immediate(db):
        db.execute("UPDATE train_runs SET status = ?, final_metrics = COALESCE(?, final_metrics), finished_at = ? "
                   "WHERE name = ?", [status, dumps(final_metrics) if final_metrics is not None else None, now(), name])


def write_train_metrics(db: Database, run_name: str, rows: Iterable[dict]) -> None:
    """Upsert metric rows keyed (run, step, kind): a resumed run rewrites its steps, never duplicates them."""
    t = now()
    with immediate(db):
        for r in rows:
            db.execute(
                "INSERT INTO train_metrics (run_name, step, kind, epoch, loss, learning_rate, grad_norm, tokens_per_s, "
                "memory_mb, extra, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(run_name, step, kind) DO UPDATE SET epoch = excluded.epoch, loss = excluded.loss, "
                "learning_rate = excluded.learning_rate, grad_norm = excluded.grad_norm, "
                "tokens_per_s = excluded.tokens_per_s, memory_mb = excluded.memory_mb, extra = excluded.extra, "
                "created_at = excluded.created_at",
                [run_name, int(r["step"]), r["kind"], r.get("epoch"), r.get("loss"), r.get("learning_rate"),
                 r.get("grad_norm"), r.get("tokens_per_s"), r.get("memory_mb"),
                 dumps(r["extra"]) if r.get("extra") is not None else None, t],
            )


def delete_train_metrics_after(db: Database, run_name: str, step: int) -> int:
    """Drop a run's metrics past ``step`` (a resume from an earlier checkpoint recomputes them)."""
    with immediate(db):
        return db.execute("DELETE FROM train_metrics WHERE run_name = ? AND step > ?", [run_name, step]).rowcount


# ---------------------------------------------------------------------------------------------
# Phase 3: evaluations and their predictions (engine/evaluation/evaluate.py)
# ---------------------------------------------------------------------------------------------


def start_evaluation(db: Database, run_key: str, *, job_id: int | None, model: str, data_path: str, n: int,
                     config: dict) -> tuple[int, bool]:
    """(evaluation id, resumed): an evaluation with the same run key is continued (a finished one
    is reused as it is), otherwise a new one is created. The run key names the model and its
    weights' fingerprint, the examples and the generation settings, so a resume never mixes
    predictions made under other settings."""
    with immediate(db):
        row = db.execute("SELECT id FROM evaluations WHERE run_key = ? ORDER BY id DESC LIMIT 1",
                         [run_key]).fetchone()
        if row:
            db.execute("UPDATE evaluations SET status = 'running', job_id = ?, n = ?, finished_at = NULL "
                       "WHERE id = ?", [job_id, n, row[0]])
            return row[0], True
        cur = db.execute(
            "INSERT INTO evaluations (job_id, model, data_path, n, status, config, run_key, created_at) "
            "VALUES (?, ?, ?, ?, 'running', ?, ?, ?)", [job_id, model, data_path, n, dumps(config), run_key, now()])
        return cur.lastrowid, False


def eval_done_keys(db: Database, evaluation_id: int) -> set[str]:
    return {r[0] for r in db.execute("SELECT example_key FROM eval_predictions WHERE evaluation_id = ?",
                                     [evaluation_id])}


def write_eval_predictions(db: Database, evaluation_id: int, rows: Iterable[dict]) -> None:
    """Upsert one batch of predictions in one transaction, keyed (evaluation, example)."""
    t = now()
    with immediate(db):
        for r in rows:
            db.execute(
                "INSERT INTO eval_predictions (evaluation_id, example_key, task, output, parsed, labels, score, "
                "criteria, correct, position, prompt, reference, structure, completion_tokens, finish_reason, "
                "seconds, faithfulness, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(evaluation_id, example_key) DO UPDATE SET task = excluded.task, output = excluded.output, "
                "parsed = excluded.parsed, labels = excluded.labels, score = excluded.score, "
                "criteria = excluded.criteria, correct = excluded.correct, position = excluded.position, "
                "prompt = excluded.prompt, reference = excluded.reference, structure = excluded.structure, "
                "completion_tokens = excluded.completion_tokens, finish_reason = excluded.finish_reason, "
                "seconds = excluded.seconds, faithfulness = excluded.faithfulness",
                [evaluation_id, r["key"], r.get("task"), r["output"],
                 dumps(r["parsed"]) if r.get("parsed") is not None else None, dumps(r.get("labels") or {}),
                 r.get("score"), dumps(r.get("criteria") or {}),
                 None if r.get("correct") is None else int(bool(r["correct"])), r.get("position"), r.get("prompt"),
                 r.get("reference"), dumps(r.get("structure") or {}), r.get("completion_tokens"),
                 r.get("finish_reason"), r.get("seconds"),
                 dumps(r["faithfulness"]) if r.get("faithfulness") is not None else None, t],
            )


def finish_evaluation(db: Database, evaluation_id: int, status: str, metrics: dict | None = None,
                      report_path: str | None = None, compare_to: int | None = None) -> None:
    with immediate(db):
        db.execute("UPDATE evaluations SET status = ?, metrics = COALESCE(?, metrics), "
                   "report_path = COALESCE(?, report_path), compare_to = COALESCE(?, compare_to), finished_at = ? "
                   "WHERE id = ?", [status, dumps(metrics) if metrics is not None else None, report_path,
                                    compare_to, now(), evaluation_id])


# ---------------------------------------------------------------------------------------------
# Phase 1: reasoning chains, their attempts, reviews and gate tests (engine/chains/chain_job.py)
# ---------------------------------------------------------------------------------------------


def save_generation_step(db: Database, attempts: list[dict], chains: list[dict]) -> int:
    """Record a batch's attempts and the chains it finished, in one transaction.

    Attempts are keyed (example, prompt version, teacher, attempt) and upserted, so a batch redone
    after a kill overwrites its own rows. A chain is keyed (example, prompt version, teacher) and
    inserted only if absent: a chain, once written (and perhaps reviewed), is never replaced by
    a later run. Each chain comes with its ``reasons`` (why it falls short: the chains side
    derives them, ``chain_job.chain_reasons``). Returns how many chains were new.
    """
    t = now()
    new = 0
    with immediate(db):
        for a in attempts:
            db.execute(
                "INSERT INTO chain_attempts (example_id, prompt_version, teacher, attempt, text, score, criteria, "
                "sampling, tokens, seconds, job_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(example_id, prompt_version, teacher, attempt) DO UPDATE SET text = excluded.text, "
                "score = excluded.score, criteria = excluded.criteria, sampling = excluded.sampling, "
                "tokens = excluded.tokens, seconds = excluded.seconds, job_id = excluded.job_id, "
                "created_at = excluded.created_at",
                [a["example_id"], a["prompt_version"], a["teacher"], a["attempt"], a["text"], a["score"],
                 dumps(a["criteria"]), dumps(a.get("sampling") or {}), a.get("tokens"), a.get("seconds"),
                 a.get("job_id"), t],
            )
        for c in chains:
            cur = db.execute(
                "INSERT INTO chains (example_id, prompt_version, teacher, text, score, criteria, status, attempts, "
                "tokens, seconds, job_id, created_at, updated_at, reasons) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(example_id, prompt_version, teacher) DO NOTHING",
                [c["example_id"], c["prompt_version"], c["teacher"], c["text"], c["score"], dumps(c["criteria"]),
                 c["status"], c["attempts"], c.get("tokens"), c.get("seconds"), c.get("job_id"), t, t,
                 reasons_text(c["reasons"])],
            )
            new += cur.rowcount
    return new


def set_chain_reasons(db: Database, reasons: dict[int, list[str]]) -> None:
    """Store why chains fall short (chain id -> reasons), in one transaction."""
    with immediate(db):
        for chain_id, why in reasons.items():
            db.execute("UPDATE chains SET reasons = ? WHERE id = ?", [reasons_text(why), chain_id])


def review_chains(db: Database, chain_ids: Iterable[int], decision: str, reviewer: str | None = None,
                  edited_text: str | None = None, new_score: float | None = None, new_criteria: dict | None = None,
                  new_status: str | None = None, new_reasons: list[str] | None = None) -> int:
    """Store reviewers' decisions and apply them to the chains, in one transaction.

    approve -> status approved, reject -> rejected, edit -> the chain's text, score, criteria and
    reasons replaced (status ``new_status``). Each decision is a ``reviews`` row with its time and the
    score before and after. Returns the number of chains changed.
    """
    assert decision in ("approve", "reject", "edit"), decision
    status = {"approve": "approved", "reject": "rejected"}.get(decision, new_status)
    t = now()
    changed = 0
    with immediate(db):
        for cid in chain_ids:
            row = db.execute("SELECT score FROM chains WHERE id = ?", [cid]).fetchone()
            if row is None:
                continue
            before = row[0]
            if decision == "edit":
                db.execute("UPDATE chains SET text = ?, score = ?, criteria = ?, status = ?, reasons = ?, "
                           "updated_at = ? WHERE id = ?",
                           [edited_text, new_score, dumps(new_criteria or {}), status, reasons_text(new_reasons), t,
                            cid])
                after = new_score
            else:
                db.execute("UPDATE chains SET status = ?, updated_at = ? WHERE id = ?", [status, t, cid])
                after = before
            db.execute("INSERT INTO reviews (chain_id, decision, edited_text, score_before, score_after, reviewer, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [cid, decision, edited_text if decision == "edit" else None, before, after, reviewer, t])
            changed += 1
    return changed


def add_gate_test(db: Database, example_id: int | None, teacher: str, prompt_version: str, config: dict,
                  text: str | None, score: float | None, criteria: dict | None, override: bool = False,
                  reason: str | None = None) -> int:
    """Record a test generation (or an override of the gate, with its reason)."""
    with immediate(db):
        cur = db.execute(
            "INSERT INTO gate_tests (example_id, teacher, prompt_version, config, text, score, criteria, override, "
            "reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [example_id, teacher, prompt_version, dumps(config), text, score,
             dumps(criteria) if criteria is not None else None, int(bool(override)), reason, now()],
        )
        return cur.lastrowid
