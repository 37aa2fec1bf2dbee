"""Read-only queries of the database for the entry layer (``engine.api``): what the pages and the
``ccr`` listings show. Each takes a connection (``store.connect``), reads rows as dicts
(sqlite-utils' ``db.query``) and decodes their JSON columns; writes stay in ``engine.core.store``.
"""

from __future__ import annotations

import json
import time

from engine.core.schema import ACTIVE_SQL
from engine.data.datasets import example_filter

def _decode(rows: list[dict], *keys: str, empty=None) -> list[dict]:
    for r in rows:
        for key in keys:
            r[key] = json.loads(r[key]) if r[key] else (empty() if callable(empty) else empty)
    return rows


# -- datasets and examples ----------------------------------------------------------------------


def dataset_id(db, name: str | None) -> int | None:
    if not name:
        return None
    row = db.execute("SELECT id FROM datasets WHERE name = ?", [name]).fetchone()
    return row[0] if row else None


def examples(db, ds: int, split: str | None = None, task: str | None = None, search: str | None = None,
             limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
    """A page of dataset ``ds``'s examples (id, ex_id, split, task, labels, first line) and the total count."""
    where, params = example_filter(ds, split, task)
    if search:
        where.append("(transcript LIKE ? OR ex_id LIKE ?)")
        params.extend([f"%{search}%", f"%{search}%"])
    total = db.execute(f"SELECT COUNT(*) FROM examples WHERE {' AND '.join(where)}", params).fetchone()[0]
    rows = list(db.query(
        f"SELECT id, ex_id, split, task, labels, substr(transcript, 1, 160) AS preview, source_file, source_line "
        f"FROM examples WHERE {' AND '.join(where)} ORDER BY id LIMIT ? OFFSET ?", params + [limit, offset]))
    for r in rows:
        r["labels"] = json.loads(r["labels"])
    return rows, total


def example(db, example_id: int) -> dict | None:
    rows = list(db.query("SELECT * FROM examples WHERE id = ?", [example_id]))
    if not rows:
        return None
    r = rows[0]
    for key in ("messages", "meta", "labels"):
        r[key] = json.loads(r[key])
    return r


def example_labels(db, ds: int, split: str | None = None):
    """(task, labels) of every example of dataset ``ds`` (of one split)."""
    where, params = "dataset_id = ?", [ds]
    if split:
        where += " AND split = ?"
        params.append(split)
    for task, labels in db.execute(f"SELECT task, labels FROM examples WHERE {where}", params):
        yield task, json.loads(labels)


def task_counts(db, ds: int) -> list[dict]:
    return list(db.query(
        "SELECT split, COALESCE(task, '(none)') AS task, COUNT(*) AS n FROM examples WHERE dataset_id = ? "
        "GROUP BY split, task ORDER BY split, task", [ds]))


# -- jobs ---------------------------------------------------------------------------------------


def jobs(db, limit: int = 50, kind: str | None = None, recent_s: float | None = None) -> list[dict]:
    """Jobs, newest first (of one ``kind``); with ``recent_s``, only the active ones and those
    finished in the last ``recent_s`` seconds."""
    where, params = [], []
    if kind:
        where, params = ["kind = ?"], [kind]
    if recent_s is not None:
        where.append(f"(status IN {ACTIVE_SQL} OR finished_at > ?)")
        params.append(time.time() - recent_s)
    rows = list(db.query(
        f"SELECT id, kind, title, status, progress, stats, config, error, created_at, started_at, finished_at, "
        f"heartbeat, pid FROM jobs {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY id DESC LIMIT ?",
        params + [limit]))
    return _decode(rows, "stats", "config", empty=dict)


def active_jobs(db) -> list[dict]:
    rows = list(db.query("SELECT id, kind, title, status, progress, stats, config, started_at, finished_at "
                         f"FROM jobs WHERE status IN {ACTIVE_SQL} ORDER BY id"))
    return _decode(rows, "stats", "config", empty=dict)


def any_queued(db) -> bool:
    return db.execute("SELECT 1 FROM jobs WHERE status = 'queued' LIMIT 1").fetchone() is not None


def server_job_ids(db, include_finished: bool = False) -> list[int]:
    """Serve jobs, newest first: the active ones, or the last 20 of any state."""
    where = "" if include_finished else f"AND status IN {ACTIVE_SQL}"
    return [r[0] for r in db.execute(f"SELECT id FROM jobs WHERE kind = 'serve' {where} ORDER BY id DESC LIMIT 20")]


def active_servers(db) -> list[tuple[int, dict]]:
    """(id, config) of every queued or running serve job."""
    return [(r[0], json.loads(r[1] or "{}")) for r in db.execute(
        f"SELECT id, config FROM jobs WHERE kind = 'serve' AND status IN {ACTIVE_SQL}").fetchall()]


# -- the pipeline overview ----------------------------------------------------------------------


def pipeline_counts(db, ds: int | None) -> dict:
    """What the Pipeline page counts: dataset ``ds``'s examples (all, train) and chains (by status,
    average score), training runs by status, finished evaluations, running servers."""
    def count(sql: str, params=()) -> int:
        return db.execute(sql, list(params)).fetchone()[0]

    return {
        "examples": count("SELECT COUNT(*) FROM examples WHERE dataset_id = ?", [ds]) if ds else 0,
        "train": count("SELECT COUNT(*) FROM examples WHERE dataset_id = ? AND split = 'train'", [ds]) if ds else 0,
        "chains": dict(db.execute(
            "SELECT c.status, COUNT(*) FROM chains c JOIN examples e ON e.id = c.example_id WHERE e.dataset_id = ? "
            "GROUP BY c.status", [ds]).fetchall()) if ds else {},
        "avg_score": db.execute("SELECT AVG(c.score) FROM chains c JOIN examples e ON e.id = c.example_id "
                                "WHERE e.dataset_id = ?", [ds]).fetchone()[0] if ds else None,
        "runs": dict(db.execute("SELECT status, COUNT(*) FROM train_runs GROUP BY status").fetchall()),
        "evaluations": count("SELECT COUNT(*) FROM evaluations WHERE status = 'succeeded'"),
        "serving": count("SELECT COUNT(*) FROM jobs WHERE kind = 'serve' AND status = 'running'"),
    }


# -- evaluations and training runs --------------------------------------------------------------


def evaluations(db, limit: int = 100) -> list[dict]:
    """Evaluations, newest first, with their metrics and ``done``, the predictions stored so far."""
    rows = list(db.query(
        "SELECT id, job_id, model, data_path, n, status, metrics, report_path, compare_to, created_at, finished_at "
        "FROM evaluations ORDER BY id DESC LIMIT ?", [limit]))
    for r in _decode(rows, "metrics"):
        r["done"] = db.execute("SELECT COUNT(*) FROM eval_predictions WHERE evaluation_id = ?", [r["id"]]).fetchone()[0]
    return rows


def train_run_job(db, run: str) -> int | None:
    row = db.execute("SELECT job_id FROM train_runs WHERE name = ?", [run]).fetchone()
    return row[0] if row else None


def train_runs(db) -> list[dict]:
    """Every run's row, newest first, with its job's status, progress, stats and heartbeat."""
    rows = list(db.query(
        "SELECT r.name, r.job_id, r.base_model, r.data_path, r.status, r.dir, r.final_metrics, r.created_at, "
        "r.finished_at, j.status AS job_status, j.progress, j.stats, j.heartbeat FROM train_runs r "
        "LEFT JOIN jobs j ON j.id = r.job_id ORDER BY r.created_at DESC, r.id DESC"))
    return _decode(rows, "final_metrics", "stats", empty=dict)


def train_metrics(db, runs: list[str], kind: str | None = None) -> list[dict]:
    """Metric rows of ``runs`` (train and eval), ordered by run and step."""
    where = f"run_name IN ({', '.join('?' for _ in runs)})"
    params = list(runs)
    if kind:
        where += " AND kind = ?"
        params.append(kind)
    rows = list(db.query(
        f"SELECT run_name, step, kind, epoch, loss, learning_rate, grad_norm, tokens_per_s, memory_mb, extra, "
        f"created_at FROM train_metrics WHERE {where} ORDER BY run_name, step, kind", params))
    return _decode(rows, "extra", empty=dict)
