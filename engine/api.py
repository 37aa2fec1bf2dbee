"""The facade the pages call. It imports nothing heavy (no torch, no transformers): pages stay
fast and a broken GPU stack can never take the UI down.

Every function opens its own short-lived connection, so it is safe from any Streamlit thread.
Reads return plain dicts and lists; writes go through ``engine.store`` or queue jobs.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from engine import jobs, store
from engine.paths import Home, resolve_home

PHASES = ("data", "generate", "review", "train", "evaluate", "deploy")


def home() -> Home:
    return resolve_home(os.environ.get("CCR_HOME")).ensure()


def db():
    return store.connect(home())


def _rows(cursor) -> list[dict]:
    cols = [d[0] for d in cursor.description]
    return [dict(zip(cols, r)) for r in cursor.fetchall()]


# ---------------------------------------------------------------------------------------------
# Datasets and examples
# ---------------------------------------------------------------------------------------------


def datasets() -> list[dict]:
    from engine import data

    return data.list_datasets(home())


def current_dataset() -> str | None:
    """The dataset the pipeline works on: the chosen one, else the newest."""
    conn = db()
    name = store.get_setting(conn, "current_dataset")
    if name and conn.execute("SELECT 1 FROM datasets WHERE name = ?", [name]).fetchone():
        return name
    row = conn.execute("SELECT name FROM datasets ORDER BY id DESC LIMIT 1").fetchone()
    return row[0] if row else None


def set_current_dataset(name: str) -> None:
    store.set_setting(db(), "current_dataset", name)


def dataset_id(name: str | None) -> int | None:
    if not name:
        return None
    row = db().execute("SELECT id FROM datasets WHERE name = ?", [name]).fetchone()
    return row[0] if row else None


def examples(dataset: str, split: str | None = None, task: str | None = None, search: str | None = None,
             limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
    """A page of examples (id, ex_id, split, task, labels, first line) and the total count."""
    ds = dataset_id(dataset)
    if ds is None:
        return [], 0
    where, params = ["dataset_id = ?"], [ds]
    if split:
        where.append("split = ?")
        params.append(split)
    if task:
        where.append("task = ?")
        params.append(task)
    if search:
        where.append("(transcript LIKE ? OR ex_id LIKE ?)")
        params.extend([f"%{search}%", f"%{search}%"])
    conn = db()
    total = conn.execute(f"SELECT COUNT(*) FROM examples WHERE {' AND '.join(where)}", params).fetchone()[0]
    rows = _rows(conn.execute(
        f"SELECT id, ex_id, split, task, labels, substr(transcript, 1, 160) AS preview, source_file, source_line "
        f"FROM examples WHERE {' AND '.join(where)} ORDER BY id LIMIT ? OFFSET ?", params + [limit, offset]))
    for r in rows:
        r["labels"] = json.loads(r["labels"])
    return rows, total


def example(example_id: int) -> dict | None:
    rows = _rows(db().execute("SELECT * FROM examples WHERE id = ?", [example_id]))
    if not rows:
        return None
    r = rows[0]
    for key in ("messages", "meta", "labels"):
        r[key] = json.loads(r[key])
    return r


def label_distribution(dataset: str, split: str | None = None) -> dict[str, dict[str, int]]:
    """For each label key, how many examples (of the tasks that ask it) have each value."""
    from engine import tasks

    ds = dataset_id(dataset)
    if ds is None:
        return {}
    where, params = "dataset_id = ?", [ds]
    if split:
        where += " AND split = ?"
        params.append(split)
    out: dict[str, dict[str, int]] = {}
    for task, labels in db().execute(f"SELECT task, labels FROM examples WHERE {where}", params):
        labels = json.loads(labels)
        for key in tasks.TASK_KEYS.get(task, ()):
            if key not in labels:
                continue
            values = labels[key] if isinstance(labels[key], list) else [labels[key]]
            if key == "coaching" and not values:
                values = ["none"]
            for v in values:
                bucket = out.setdefault(key, {})
                bucket[str(v)] = bucket.get(str(v), 0) + 1
    return out


def task_counts(dataset: str) -> list[dict]:
    ds = dataset_id(dataset)
    if ds is None:
        return []
    return _rows(db().execute(
        "SELECT split, COALESCE(task, '(none)') AS task, COUNT(*) AS n FROM examples WHERE dataset_id = ? "
        "GROUP BY split, task ORDER BY split, task", [ds]))


def start_synth(preset: str = "demo", seed: int = 0) -> int:
    """Queue a synthetic dataset; pressing the button twice while it runs makes one job."""
    return _enqueue("synth", {"preset": preset, "seed": seed}, f"synthesize {preset} (seed {seed})",
                    dedupe_key=f"synth:{preset}:{seed}")


def start_import(content: bytes, filename: str, dataset: str | None = None, split: str | None = None) -> int:
    """Save an uploaded file under the home's uploads folder and queue its import."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).name)[:120] or "upload.jsonl"
    target = home().data / "uploads" / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    config = {"path": str(target), "dataset": dataset or None, "split": split or None, "display_name": filename}
    return _enqueue("import", config, f"import {filename}")


def _enqueue(kind: str, config: dict, title: str, dedupe_key: str | None = None) -> int:
    try:
        return jobs.enqueue(home(), kind, config, title=title, dedupe_key=dedupe_key)
    except store.DuplicateJob as exc:
        return exc.job_id


# ---------------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------------


def list_jobs(limit: int = 50, kind: str | None = None) -> list[dict]:
    where, params = "", []
    if kind:
        where, params = "WHERE kind = ?", [kind]
    rows = _rows(db().execute(
        f"SELECT id, kind, title, status, progress, stats, error, created_at, started_at, finished_at, heartbeat, pid "
        f"FROM jobs {where} ORDER BY id DESC LIMIT ?", params + [limit]))
    for r in rows:
        r["stats"] = json.loads(r["stats"] or "{}")
    return rows


def job(job_id: int) -> dict | None:
    return store.get_job(db(), job_id)


def active_jobs() -> list[dict]:
    rows = _rows(db().execute("SELECT id, kind, title, status, progress, stats FROM jobs "
                              "WHERE status IN ('queued', 'running', 'pausing') ORDER BY id"))
    for r in rows:
        r["stats"] = json.loads(r["stats"] or "{}")
    return rows


def cancel_job(job_id: int) -> None:
    store.request_cancel(db(), job_id)


def pause_job(job_id: int) -> None:
    store.request_pause(db(), job_id)


def resume_job(job_id: int) -> bool:
    return store.requeue_job(db(), job_id)


def job_log(job_id: int, nbytes: int = 20000) -> str:
    row = store.get_job(db(), job_id)
    if not row:
        return ""
    return jobs.tail_file(row.get("log_path"), nbytes) or (row.get("log_tail") or "")


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


def models() -> list[dict]:
    from engine import models as m

    return m.list_models(home())


# ---------------------------------------------------------------------------------------------
# Pipeline overview
# ---------------------------------------------------------------------------------------------


def _count(sql: str, params=()) -> int:
    return db().execute(sql, list(params)).fetchone()[0]


def pipeline_state() -> list[dict]:
    """One row per phase: its state (done / running / ready / waiting), counts, and the next step."""
    conn = db()
    ds_name = current_dataset()
    ds = dataset_id(ds_name)
    running = {r["kind"] for r in active_jobs()}
    n_examples = _count("SELECT COUNT(*) FROM examples WHERE dataset_id = ?", [ds]) if ds else 0
    n_train = _count("SELECT COUNT(*) FROM examples WHERE dataset_id = ? AND split = 'train'", [ds]) if ds else 0
    chains = dict(conn.execute(
        "SELECT c.status, COUNT(*) FROM chains c JOIN examples e ON e.id = c.example_id WHERE e.dataset_id = ? "
        "GROUP BY c.status", [ds]).fetchall()) if ds else {}
    n_chains = sum(chains.values())
    avg = conn.execute("SELECT AVG(c.score) FROM chains c JOIN examples e ON e.id = c.example_id "
                       "WHERE e.dataset_id = ?", [ds]).fetchone()[0] if ds else None
    runs = dict(conn.execute("SELECT status, COUNT(*) FROM train_runs GROUP BY status").fetchall())
    evals = _count("SELECT COUNT(*) FROM evaluations WHERE status = 'succeeded'")
    serving = _count("SELECT COUNT(*) FROM jobs WHERE kind = 'serve' AND status = 'running'")

    def state(kind: str, done: bool, ready: bool) -> str:
        if kind in running:
            return "running"
        return "done" if done else ("ready" if ready else "waiting")

    flagged = chains.get("flagged", 0)
    rows = [
        {"phase": "data", "state": state("synth", n_examples > 0, True),
         "counts": f"{n_examples} examples ({n_train} train) in {ds_name}" if ds_name else "no dataset yet",
         "next": "Create a demo dataset or upload your own JSONL/CSV on the Data page." if not n_examples
         else "Data is in. Next: generate reasoning chains.", "page": "data"},
        {"phase": "generate", "state": state("generate", n_chains >= n_train > 0, n_examples > 0),
         "counts": f"{n_chains} of {n_train} train chains" + (f", average score {avg:.1f}" if avg else ""),
         "next": "Test one example, then launch the full run on the Generate page." if n_examples
         else "Needs a dataset first.", "page": "generate"},
        {"phase": "review", "state": "ready" if flagged else state("review", n_chains > 0, False),
         "counts": f"{flagged} flagged, {chains.get('approved', 0)} approved, {chains.get('rejected', 0)} rejected",
         "next": f"Review the {flagged} flagged chains." if flagged else "Nothing waiting for review.",
         "page": "review"},
        {"phase": "train", "state": state("train", runs.get("succeeded", 0) > 0, n_chains > 0),
         "counts": ", ".join(f"{v} {k}" for k, v in runs.items()) or "no runs yet",
         "next": "Export the chains and train a LoRA adapter on the Train page." if n_chains
         else "Needs reasoning chains (or any ChatML file).", "page": "train"},
        {"phase": "evaluate", "state": state("eval", evals > 0, runs.get("succeeded", 0) > 0),
         "counts": f"{evals} evaluations", "next": "Evaluate base vs tuned on the test split.", "page": "evaluate"},
        {"phase": "deploy", "state": "running" if serving else ("ready" if runs.get("succeeded", 0) else "waiting"),
         "counts": f"{serving} API server(s) running", "next": "Serve the tuned model over an OpenAI-compatible API.",
         "page": "deploy"},
    ]
    return rows


def engine_status(worker) -> dict:
    """What the sidebar shows: the engine thread's health and the active jobs."""
    status = worker.status() if worker else {"alive": False, "running": [], "last_error": "engine not started"}
    status["active"] = active_jobs()
    return status
