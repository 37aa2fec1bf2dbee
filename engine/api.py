"""The facade the pages call. It imports nothing heavy (no torch, no transformers): pages stay
fast and a broken GPU stack can never take the UI down.

Every function opens its own short-lived connection, so it is safe from any Streamlit thread.
Reads return plain dicts and lists; writes go through ``engine.core.store`` or queue jobs.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from engine.core import jobs, store
from engine.evaluation.metrics import SMALL_SAMPLE  # noqa: F401 (the pages' small-sample rule: fewer examples per task)
from engine.core.paths import REPO, Home, resolve_home


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
    from engine.data import datasets

    return datasets.list_datasets(home())


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
    from engine.data import tasks

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
    """Save an uploaded file under the home's uploads folder and queue its import. A dataset name
    is trimmed; one that is blank after trimming (but not empty: empty means "from the file
    name") or otherwise unusable raises ValueError before anything is saved."""
    if dataset is not None and dataset != "":
        dataset = store.clean_dataset_name(dataset)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).name)[:120] or "upload.jsonl"
    target = home().data / "uploads" / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    config = {"path": str(target), "dataset": dataset or None, "split": split or None, "display_name": filename}
    return _enqueue("import", config, f"import {filename}")


def clean_dataset_name(name: str) -> str:
    """A dataset name trimmed, or ValueError saying why it cannot be used (blank, too long...)."""
    return store.clean_dataset_name(name)


def dataset_usage(name: str) -> dict:
    """What deleting dataset ``name`` would remove (examples, chains, attempts, reviews)."""
    ds = dataset_id(name)
    if ds is None:
        raise ValueError(f"no dataset named {name!r}")
    return store.dataset_usage(db(), ds)


def rename_dataset(old: str, new: str) -> str:
    """Rename a dataset (``ccr data rename``); returns the new (trimmed) name. Refused while a job
    works on it, for a blank or taken name."""
    return store.rename_dataset(db(), old, new)


def delete_dataset(name: str) -> dict:
    """Delete a dataset with its examples, chains, attempts and reviews (``ccr data delete``);
    returns what was removed. Refused while a job works on it."""
    ds = dataset_id(name)
    if ds is None:
        raise ValueError(f"no dataset named {name!r}")
    return {"dataset": name, **store.delete_dataset(db(), ds)}


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
        f"SELECT id, kind, title, status, progress, stats, config, error, created_at, started_at, finished_at, "
        f"heartbeat, pid FROM jobs {where} ORDER BY id DESC LIMIT ?", params + [limit]))
    for r in rows:
        r["stats"] = json.loads(r["stats"] or "{}")
        r["config"] = json.loads(r["config"] or "{}")
    return rows


def job(job_id: int) -> dict | None:
    return store.get_job(db(), job_id)


def active_jobs() -> list[dict]:
    rows = _rows(db().execute("SELECT id, kind, title, status, progress, stats, config, started_at, finished_at "
                              "FROM jobs WHERE status IN ('queued', 'running', 'pausing') ORDER BY id"))
    for r in rows:
        r["stats"] = json.loads(r["stats"] or "{}")
        r["config"] = json.loads(r["config"] or "{}")
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
    from engine.core import model_catalog as m

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
    trained = runs.get("succeeded", 0)
    if trained:
        train_next = (f"{trained:,} run(s) trained. Next: evaluate base vs tuned (Evaluate page), or train again "
                      "on more chains.")
    elif n_chains:
        train_next = "Export the chains (Review page), then train a LoRA adapter on the Train page."
    else:
        train_next = "Needs reasoning chains (or any ChatML file)."
    rows = [
        {"phase": "data", "state": state("synth", n_examples > 0, True),
         "counts": f"{n_examples:,} examples ({n_train:,} train) in {ds_name}" if ds_name else "no dataset yet",
         "next": "Create a demo dataset or upload your own JSONL/CSV on the Data page." if not n_examples
         else "Data is in. Next: generate reasoning chains.", "page": "data"},
        {"phase": "generate", "state": state("generate", n_chains >= n_train > 0, n_examples > 0),
         "counts": f"{n_chains:,} of {n_train:,} train chains" + (f", average score {avg:.1f}" if avg else ""),
         "next": "Test one example, then launch the full run on the Generate page." if n_examples
         else "Needs a dataset first.", "page": "generate"},
        {"phase": "review", "state": "ready" if flagged else state("review", n_chains > 0, False),
         "counts": f"{flagged:,} flagged, {chains.get('approved', 0):,} approved, {chains.get('rejected', 0):,} rejected",
         "next": f"Review the {flagged:,} flagged chains." if flagged else "Nothing waiting for review.",
         "page": "review"},
        {"phase": "train", "state": state("train", trained > 0, n_chains > 0),
         "counts": ", ".join(f"{v:,} {k}" for k, v in runs.items()) or "no runs yet",
         "next": train_next, "page": "train"},
        {"phase": "evaluate", "state": state("eval", evals > 0, trained > 0),
         "counts": f"{evals:,} evaluations", "next": "Evaluate base vs tuned on the test split.", "page": "evaluate"},
        {"phase": "deploy", "state": "running" if serving else ("ready" if runs.get("succeeded", 0) else "waiting"),
         "counts": f"{serving} API server(s) running", "next": "Serve the tuned model over an OpenAI-compatible API.",
         "page": "deploy"},
    ]
    return rows


def engine_status(worker) -> dict:
    """What the sidebar shows: the engine thread's health and the active jobs."""
    status = worker.status() if worker else {"alive": False, "running": [], "last_error": None}
    status["active"] = active_jobs()
    return status


# ---------------------------------------------------------------------------------------------
# Phase 3: evaluation, comparison, deployment (pages/evaluate.py, pages/compare.py, pages/deploy.py)
# ---------------------------------------------------------------------------------------------


def evaluations(limit: int = 100) -> list[dict]:
    """Evaluations, newest first, with their headline figures."""
    from engine.evaluation import metrics as M

    rows = _rows(db().execute(
        "SELECT id, job_id, model, data_path, n, status, metrics, report_path, compare_to, created_at, finished_at "
        "FROM evaluations ORDER BY id DESC LIMIT ?", [limit]))
    for r in rows:
        r["metrics"] = json.loads(r["metrics"]) if r["metrics"] else None
        r["headline"] = M.headline(r["metrics"]) if r["metrics"] else {}
        r["done"] = _count("SELECT COUNT(*) FROM eval_predictions WHERE evaluation_id = ?", [r["id"]])
    return rows


def evaluation(evaluation_id: int) -> dict | None:
    from engine.evaluation import evaluate

    try:
        return evaluate.evaluation_row(db(), evaluation_id)
    except ValueError:
        return None


def eval_predictions(evaluation_id: int) -> list[dict]:
    from engine.evaluation import evaluate

    return evaluate.predictions(db(), evaluation_id)


def eval_disagreements(base_id: int, tuned_id: int, limit: int = 50) -> list[dict]:
    """Examples where the two evaluations' answers differ in correctness (first) or parsed labels."""
    from engine.evaluation import evaluate

    conn = db()
    return evaluate.disagreements(evaluate.predictions(conn, base_id), evaluate.predictions(conn, tuned_id), limit)


def eval_deltas(base_id: int, tuned_id: int, keys: list[str] | None = None) -> dict:
    """Headline deltas of tuned against base (or only ``keys``), each with its paired test
    (p-value, significant, verdict)."""
    from engine.evaluation import evaluate

    try:
        return evaluate.comparison(db(), base_id, tuned_id, keys)
    except ValueError:
        return {}


def eval_pair(model_a: str, model_b: str) -> tuple[dict, dict] | None:
    """The newest finished base-vs-tuned evaluation of these two models (either way round), as
    (base evaluation, tuned evaluation) rows of ``evaluations()``, or None."""
    rows = evaluations()
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        base = by_id.get(r["compare_to"])
        if r["metrics"] and base and base["metrics"] and {r["model"], base["model"]} == {model_a, model_b}:
            return base, r
    return None


def eval_intervals(evaluation_id: int) -> dict:
    """An evaluation's figures with their 95% intervals and n (``metrics.intervals``)."""
    from engine.evaluation import evaluate

    try:
        return evaluate.intervals_of(db(), evaluation_id)
    except ValueError:
        return {}


def format_figure(entry: dict | None, value=None) -> str:
    """``0.40 [0.17, 0.69], n=10`` (the one formatter, shared with the report and the CLI)."""
    from engine.evaluation import metrics as M

    return M.format_figure(entry, value)


def format_p(test: dict) -> str:
    """A paired test's p-value for a table: ``0.0312``, ``<0.0005``, ``n/a``."""
    from engine.evaluation import metrics as M

    return M.format_p(test).lstrip("=")


def small_sample_warning(metrics: dict | None) -> str | None:
    from engine.evaluation import metrics as M

    return M.small_sample_warning(metrics)


def eval_figures(evaluation_id: int) -> dict:
    """An evaluation's ``metrics`` and ``headline`` complete with faithfulness: for an evaluation
    finished before faithfulness was measured, computed from its stored answers (not written back)."""
    from engine.evaluation import evaluate
    from engine.evaluation import metrics as M

    try:
        metrics = evaluate.evaluation_row(db(), evaluation_id)["metrics"]
    except ValueError:
        return {"metrics": None, "headline": {}}
    return {"metrics": metrics, "headline": M.headline(metrics) if metrics else {}}


def faithfulness_word(faithfulness: dict | None) -> str:
    """One answer's faithfulness in words: ``faithful``, ``unfaithful: 1 contradiction``, ``not judged: ...``."""
    from engine.evaluation import evaluate

    return evaluate.faithfulness_word(faithfulness)


def confusion_views(metrics: dict | None) -> list[dict]:
    """An evaluation's confusion matrices over each task's whole label space (``metrics.confusion_views``)."""
    from engine.evaluation import metrics as M

    return M.confusion_views(metrics)


def start_eval(model: str, base: str | None = None, data: str | None = None, dataset: str | None = None,
               split: str = "test", limit: int = 0, max_new_tokens: int = 512, batch_size: int = 8) -> int:
    """Queue an evaluation (of ``model``, and of ``base`` for a comparison)."""
    if data:
        from engine.core import model_catalog as m

        data = str(m.check_path_allowed(data, home(), "evaluation data"))
    config = {"model": model, "base": base or None, "data": data or None, "dataset": dataset or None, "split": split,
              "limit": int(limit), "max_new_tokens": int(max_new_tokens), "batch_size": int(batch_size)}
    title = f"evaluate {model}" + (f" vs {base}" if base else "")
    key = "eval:" + json.dumps(config, sort_keys=True)
    return _enqueue("eval", config, title, dedupe_key=key)


def read_report(path: str | None) -> bytes | None:
    """A report file's bytes for a download button (only files inside the home folder)."""
    if not path:
        return None
    p = Path(path).resolve()
    root = home().data.resolve()
    if root not in p.parents or not p.is_file():
        return None
    return p.read_bytes()


def model_names() -> list[str]:
    """Names a model picker offers: the registry's models available here, then trained runs."""
    return [r["name"] for r in models() if r["available"]] or ["smollm2-135m-instruct"]


# -- serving ------------------------------------------------------------------------------------


def new_api_key() -> str:
    import secrets

    return "ccr-" + secrets.token_urlsafe(24)


def start_server(model: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                 max_queue: int = 64, max_batch: int = 8, idle_shutdown_s: float = 0.0,
                 dedupe_key: str | None = None) -> int:
    """Queue a ``serve`` job (a service: it runs beside batch jobs). Refuses an exposed address
    without a key, like ``ccr serve``."""
    from engine.serving import serve

    serve.check_bind(host, api_key)  # ServeError is a ValueError: the page shows it
    if port:
        same = check_port_free(host, int(port), {"model": model, "host": host, "api_key": api_key or None})
        if same:  # the same server asked for again (a double press): that job
            return same
    config = {"model": model, "host": host, "port": int(port), "api_key": api_key or None,
              "max_queue": int(max_queue), "max_batch": int(max_batch), "idle_shutdown_s": float(idle_shutdown_s)}
    return _enqueue("serve", config, f"serve {model} on {host}:{port}",
                    dedupe_key=dedupe_key or (f"serve:{host}:{port}" if port else None))


def check_port_free(host: str, port: int, wanted: dict | None = None) -> int | None:
    """ValueError saying why ``host:port`` cannot take a new server: another of ours is queued or
    running there, or another program listens on it (checked by binding it, as the server would).
    Returns the job id when the active server there is ``wanted`` itself (same model, host and
    key: a second press of the same Start), else None."""
    import socket

    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port}: a port is a number from 1 to 65535 (or 0 for any free one)")
    for r in db().execute("SELECT id, config FROM jobs WHERE kind = 'serve' AND status IN ('queued', 'running', "
                          "'pausing')").fetchall():
        c = json.loads(r[1] or "{}")
        if int(c.get("port") or 0) == int(port):
            if wanted and all(c.get(k) == v for k, v in wanted.items()):
                return r[0]
            raise ValueError(f"port {port} is taken by server job #{r[0]} ({c.get('model')} on {c.get('host')}): "
                             "stop it first, or pick another port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ValueError(f"host {host!r}: {exc.strerror or exc}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            raise ValueError(f"port {port} on {host} is in use by another program ({exc.strerror or exc}): pick "
                             "another port, or 0 for any free one") from None
    return None


def server_info(job_id: int) -> dict | None:
    """A serve job's state for the pages: status, ready, url (base URL, without /v1), key, model."""
    job = store.get_job(db(), job_id)
    if not job or job["kind"] != "serve":
        return None
    stats = job["stats"] or {}
    ready = job["status"] == "running" and stats.get("state") == "ready" and bool(stats.get("url"))
    return {"job_id": job_id, "status": job["status"], "ready": ready, "url": stats.get("url"),
            "api_key": job["config"].get("api_key"), "model": job["config"].get("model"),
            "host": job["config"].get("host"), "port": job["config"].get("port"), "error": job.get("error"),
            "served": stats.get("served", 0), "rejected": stats.get("rejected", 0), "queue": stats.get("queue", 0),
            "compare": (job.get("dedupe_key") or "").startswith(COMPARE_KEY)}


def servers(include_finished: bool = False) -> list[dict]:
    """Serve jobs (active ones, or the last 20 of any state)."""
    where = "" if include_finished else "AND status IN ('queued', 'running', 'pausing')"
    ids = [r[0] for r in db().execute(f"SELECT id FROM jobs WHERE kind = 'serve' {where} ORDER BY id DESC LIMIT 20")]
    return [s for s in (server_info(i) for i in ids) if s]


COMPARE_KEY = "compare-serve:"  # the dedupe key of the servers the Compare page starts (it may stop those only)


def find_server(model: str) -> dict | None:
    """An active server of ``model`` (``server_info``), whoever started it (Deploy, Compare,
    `ccr serve` through the queue): a ready one first, else the newest queued or starting one."""
    found = [s for s in servers() if s["model"] == model]
    return next((s for s in found if s["ready"]), found[0] if found else None)


def compare_servers(model_names_: list[str], idle_shutdown_s: float = 900.0) -> dict[str, int]:
    """A server per model for the Compare page: an active server of the same model is reused
    (one model process, not one per page or per press); otherwise a short-lived loopback server
    is started, which stops itself after ``idle_shutdown_s`` without requests."""
    out = {}
    for name in dict.fromkeys(model_names_):
        running = find_server(name)
        out[name] = running["job_id"] if running else start_server(
            name, "127.0.0.1", 0, new_api_key(), max_queue=8, max_batch=1, idle_shutdown_s=idle_shutdown_s,
            dedupe_key=COMPARE_KEY + name)
    return out


def api_snippets(url: str, api_key: str | None, model: str, reveal: bool = False) -> dict:
    """Copyable curl and openai-client snippets for a running server. The key is never in them
    unless ``reveal``: they read it from the environment variable CCR_API_KEY instead."""
    masked = bool(api_key) and not reveal
    key_expr = 'os.environ["CCR_API_KEY"]' if masked else f'"{api_key or "none"}"'
    shell_key = "$CCR_API_KEY" if masked else api_key
    auth = f" \\\n  -H \"Authorization: Bearer {shell_key}\"" if api_key else ""
    curl = (f"curl {url}/v1/chat/completions \\\n  -H 'Content-Type: application/json'{auth} \\\n"
            f"  -d '{{\"model\": \"{model}\", \"max_tokens\": 256, \"messages\": "
            f"[{{\"role\": \"user\", \"content\": \"Call transcript: ... Predict the CSAT.\"}}]}}'")
    python = ((f"import os\n" if masked else "") +
              f"from openai import OpenAI\n\nclient = OpenAI(base_url=\"{url}/v1\", api_key={key_expr})\n"
              f"reply = client.chat.completions.create(\n    model=\"{model}\",\n"
              f"    messages=[{{\"role\": \"user\", \"content\": \"Call transcript: ... Predict the CSAT.\"}}],\n"
              f"    max_tokens=256,\n)\nprint(reply.choices[0].message.content)\n\n"
              f"# streamed\nfor chunk in client.chat.completions.create(model=\"{model}\", messages=[...], "
              f"stream=True):\n    print(chunk.choices[0].delta.content or \"\", end=\"\")")
    return {"curl": curl, "python": python}


def stream_chat(url: str, api_key: str | None, model: str, messages: list[dict], max_tokens: int = 256,
                temperature: float = 0.0, timeout_s: float = 600.0, stats: dict | None = None):
    """Yield the text pieces of one streamed chat completion from a ``ccr serve`` server.

    ``stats`` (a dict) receives what the server reports at the end: ``prompt_tokens``,
    ``completion_tokens`` (its usage chunk) and ``finish_reason``."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {"model": model, "messages": messages, "max_tokens": int(max_tokens), "temperature": temperature,
            "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers,
                      timeout=httpx.Timeout(timeout_s, connect=10.0)) as r:
        if r.status_code != 200:
            r.read()
            try:
                message = r.json()["error"]["message"]
            except Exception:
                message = r.text[:200]
            raise RuntimeError(f"server answered {r.status_code}: {message}")
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            obj = json.loads(data)
            if "error" in obj:
                raise RuntimeError(obj["error"].get("message", "server error"))
            if stats is not None and obj.get("usage"):
                stats.update({k: obj["usage"].get(k) for k in ("prompt_tokens", "completion_tokens")})
            for choice in obj.get("choices", []):
                if stats is not None and choice.get("finish_reason"):
                    stats["finish_reason"] = choice["finish_reason"]
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    yield piece


def stream_pair(specs: list[dict], stats: list[dict] | None = None):
    """Stream several chats at once: yields (index, piece) as pieces arrive, (index, None) when one
    ends and (index, Exception) when one fails. Each spec holds ``stream_chat``'s arguments.

    ``stats`` (one dict per spec) receives each stream's ``first_token_s`` and ``seconds`` (from
    its request, measured in its own thread) and the server's token counts (``stream_chat``)."""
    import queue
    import threading

    events: queue.Queue = queue.Queue()

    def pump(i: int, spec: dict) -> None:
        own = stats[i] if stats is not None else {}
        start = time.perf_counter()
        try:
            for piece in stream_chat(**spec, stats=own):
                own.setdefault("first_token_s", time.perf_counter() - start)
                events.put((i, piece))
            own["seconds"] = time.perf_counter() - start
            events.put((i, None))
        except Exception as exc:  # shown beside that model's answer
            own["seconds"] = time.perf_counter() - start
            events.put((i, exc))

    for i, spec in enumerate(specs):
        threading.Thread(target=pump, args=(i, spec), daemon=True).start()
    left = len(specs)
    while left:
        i, item = events.get()
        if item is None or isinstance(item, Exception):
            left -= 1
        yield i, item


def chat_messages(transcript: str, task: str) -> list[dict]:
    """The standard prompt for a pasted transcript (what the dataset's examples look like)."""
    from engine.data import tasks

    return [{"role": "system", "content": tasks.SYSTEM_PROMPT},
            {"role": "user", "content": tasks.user_content(transcript, task)}]


def example_prompt(example_id: int) -> dict | None:
    """An example's prompt (messages up to the last user turn), task, labels and transcript."""
    from engine.evaluation import evaluate

    ex = example(example_id)
    if not ex:
        return None
    reference = next((m["content"] for m in reversed(ex["messages"]) if m.get("role") == "assistant"), None)
    return {"messages": evaluate.prompt_messages(ex["messages"]), "task": ex["task"], "labels": ex["labels"],
            "transcript": ex["transcript"], "ex_id": ex["ex_id"], "reference": reference}


def score_answer(text: str, task: str | None, labels: dict | None = None, transcript: str | None = None) -> dict:
    """Parsed labels, quality score, structure and correctness of one answer."""
    from engine.evaluation import evaluate

    s = evaluate.score_answer({"task": task, "labels": labels or {}, "transcript": transcript}, text)
    s["sections"] = {k: v for k, v in s["structure"].items()}
    return s


# -- batch inference ----------------------------------------------------------------------------


def start_infer(model: str, content: bytes | None = None, filename: str | None = None, path: str | None = None,
                batch_size: int = 8, max_new_tokens: int = 512) -> int:
    """Queue batch inference over an uploaded file (``content``) or a file under an allowed folder."""
    if content is not None:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename or "input.jsonl").name)[:120] or "input.jsonl"
        source = home().data / "uploads" / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(content)
    elif path:
        from engine.core import model_catalog as m

        source = m.check_path_allowed(path, home(), "input file")
        if not source.is_file():
            raise ValueError(f"{path}: no such file")
    else:
        raise ValueError("give a file to upload or a path")
    out = home().data / "infer" / f"{source.stem}-{re.sub(r'[^A-Za-z0-9._-]+', '_', model)}.out.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    config = {"model": model, "input": str(source), "output": str(out), "batch_size": int(batch_size),
              "max_new_tokens": int(max_new_tokens)}
    return _enqueue("infer", config, f"batch inference {source.name} with {model}", dedupe_key=f"infer:{out}")


# ---------------------------------------------------------------------------------------------
# Phase 1: reasoning-chain generation, quality and review (pages/generate.py, quality.py, review.py)
# ---------------------------------------------------------------------------------------------


def generate_fields() -> list[tuple[str, str, object]]:
    """(name, help, default) of every generation setting, for the Generate page's form."""
    from engine.core.config import GenerateConfig, describe

    return describe(GenerateConfig)


def generate_presets() -> dict[str, dict]:
    """The ``configs/generate_*.yaml`` presets by file name, as dicts (default preset first)."""
    import yaml

    from engine.core.paths import CONFIGS

    files = sorted(CONFIGS.glob("generate_*.yaml"), key=lambda p: (p.name != "generate_smollm2_cpu.yaml", p.name))
    return {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) or {} for p in files}


def generate_config(values: dict) -> dict:
    """Validate a Generate-page configuration; returns the full config dict (raises ConfigError)."""
    from engine.chains import selection
    from engine.core.config import to_dict

    config = to_dict(selection.config_from(dict(values)))
    if config["backend"] == "local":
        _refuse_model_path(config["teacher"])
    return config


def _refuse_model_path(name: str) -> None:
    """Raise PathNotAllowed (a ValueError) for a model folder outside the allowed folders, now
    rather than in the job; a model that is merely missing is left for the job to report."""
    from engine.core.model_catalog import ModelNotAvailable, resolve_model

    try:
        resolve_model(name, home())
    except ModelNotAvailable:
        pass


def generate_gate(values: dict) -> dict:
    from engine.chains import gate, selection

    return gate.gate_status(home(), selection.config_from(dict(values)))


def start_generate_test(values: dict) -> int:
    """Queue a test generation on one example (the gate)."""
    config = {**generate_config(values), "test": True}
    return _enqueue("generate", config, f"test generation ({config['teacher']})", dedupe_key="generate-test")


def record_generate_override(values: dict, reason: str) -> int:
    from engine.chains import gate, selection

    return gate.record_override(home(), selection.config_from(dict(values)), reason)


def start_generate(values: dict) -> int:
    """Queue the full run; refused (ValueError) unless a test passed the gate or an override is recorded."""
    from engine.chains.gate import gate_status

    config = {**generate_config(values), "test": False}
    gate = gate_status(home(), config)
    if not gate["ok"]:
        raise ValueError(f"run a test that scores >= {gate['threshold']:g} first, or record an override")
    limit = f", {config.get('select', 'first')} {config['limit']}" if config.get("limit") is not None else ""
    key = f"generate:{config.get('dataset') or current_dataset()}:{config['split']}:{gate['teacher']}:{gate['prompt_version']}"
    return _enqueue("generate", config, f"generate chains ({config['split']}{limit})", dedupe_key=key)


def generate_jobs(limit: int = 20) -> list[dict]:
    return list_jobs(limit=limit, kind="generate")


def chains(dataset: str | None = None, limit: int | None = 100, offset: int = 0, order: str = "score",
           **filters) -> tuple[list[dict], int]:
    from engine.chains import review

    return review.list_chains(home(), dataset, limit=limit, offset=offset, order=order, **filters)


def chain(chain_id: int) -> dict | None:
    from engine.chains import review

    return review.chain_detail(home(), chain_id)


def chain_parts(text: str) -> dict:
    """The chain split into its sections, steps and parts, for a readable layout."""
    from engine.chains.chain import parse_chain

    return parse_chain(text)


def at_fault(criteria: dict | None) -> list[dict]:
    """The sentences a score breakdown names as contradicting the labels or inventing specifics."""
    from engine.chains import quality

    return quality.at_fault(criteria)


def review_chains(chain_ids: list[int], decision: str, reviewer: str | None = None) -> int:
    """Approve or reject chains as ``reviewer`` (required: ValueError without a name)."""
    from engine.chains import review

    return review.review(home(), chain_ids, decision, review.check_reviewer(reviewer))


def bulk_review(decision: str, reviewer: str | None = None, **filters) -> int:
    from engine.chains import review

    return review.bulk_review(home(), decision, None, review.check_reviewer(reviewer), **filters)


def edit_chain(chain_id: int, text: str, reviewer: str | None = None) -> dict:
    """Replace a chain's text and re-score it; approved when it passes (the Review page's *Save
    edit and approve*). ``reviewer`` is required, as for a decision."""
    from engine.chains import review

    return review.edit_chain(home(), chain_id, text, review.check_reviewer(reviewer))


def check_reviewer(name: str | None) -> str:
    from engine.chains import review

    return review.check_reviewer(name)


def quality_report(**filters) -> dict:
    from engine.chains import review

    return review.quality_report(home(), **filters)


def export_reasoning(include_flagged: bool = False, balanced: bool = False, limit: int | None = None) -> dict:
    """``ccr export reasoning [--include-flagged] [--balanced] [--limit N]``: the report has each
    file's lines, ``left_out`` and ``by_label`` ({task: {label value: lines}})."""
    from engine.chains import export

    return export.export_reasoning(home(), None, include_flagged, balanced=balanced, limit=limit)


def chain_tasks() -> list[str]:
    from engine.data import tasks

    return list(tasks.TASKS)


# ---------------------------------------------------------------------------------------------
# Phase 2: training (engine/training/train.py; the dry run runs in a subprocess so the UI never imports torch)
# ---------------------------------------------------------------------------------------------

_ESTIMATES: dict = {}


def train_presets() -> list[dict]:
    """The training presets in configs/ (YAML files with a ``lora`` section) and their header comments."""
    import yaml

    from engine.core.paths import CONFIGS

    out = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        if not isinstance(data, dict) or "lora" not in data:
            continue
        header = []
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            header.append(line[1:].strip())
        out.append({"name": path.stem, "path": str(path), "header": "\n".join(header),
                    "base_model": data.get("base_model"), "device": data.get("device"),
                    "precision": data.get("precision")})
    # the product's default first
    return sorted(out, key=lambda p: (p["name"] != "smollm2_cpu", p["name"]))


def train_data_files() -> list[dict]:
    """ChatML JSONL files in the home to train on: Phase 1's export first, then the others (train files first)."""
    from engine.training.train import DEFAULT_TRAIN_FILE

    h = home()
    seen, rows = set(), []
    for path in [h.data / DEFAULT_TRAIN_FILE, *sorted(h.data.glob("*.jsonl")), *sorted(h.data.glob("*/*.jsonl"))]:
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        st = path.stat()
        rows.append({"path": str(path), "name": str(path.relative_to(h.data)), "bytes": st.st_size,
                     "modified": st.st_mtime, "default": path.name == DEFAULT_TRAIN_FILE})
    return sorted(rows, key=lambda r: (not r["default"], "train" not in Path(r["name"]).name, r["name"]))


def _parse_overrides(text: str | list | None) -> list[str]:
    if not text:
        return []
    if isinstance(text, list):
        return [t.strip() for t in text if t.strip()]
    return [line.strip() for line in re.split(r"[\n]+", text) if line.strip() and not line.strip().startswith("#")]


def train_estimate(preset: str, data: str | None = None, overrides: str | list | None = None,
                   timeout: float = 180.0) -> dict:
    """The dry run's estimate (``python -m engine.training.dryrun --json``), cached per inputs and data file version."""
    import subprocess
    import sys

    from engine.core.model_catalog import PathNotAllowed, check_config_path

    try:  # the preset is read by the dry run: refuse a path outside the config folders first
        check_config_path(preset, home())
    except PathNotAllowed as exc:
        return {"error": str(exc)}
    over = _parse_overrides(overrides)
    mtime = Path(data).stat().st_mtime if data and Path(data).exists() else None
    key = (preset, data, tuple(over), mtime)
    if key in _ESTIMATES:
        return _ESTIMATES[key]
    cmd = [sys.executable, "-m", "engine.training.dryrun", "--json", "--config", preset, "--home", str(home().data)]
    if data:
        cmd += ["--data", data]
    cmd += over
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return {"error": f"the dry run took over {timeout:.0f} s"}
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": (proc.stderr or "dry run failed").strip()[-2000:]}
    if "error" not in result:
        _ESTIMATES[key] = result
    return result


_PRECISIONS: dict = {}


def precision_choice(device: str | None = "auto", precision: str | None = "auto", timeout: float = 120.0) -> dict:
    """The device and weights' precision a job would use on this machine, and why
    (``models.hardware_choice``: device, precision, reason, and ``text``, the line the Train and
    Generate pages show). The probe needs torch, which must not load in the UI process, so it
    runs in a subprocess (``python -m engine.core.model_catalog precision``), once per (device, precision)."""
    import subprocess
    import sys

    key = (device or "auto", precision or "auto")
    if key in _PRECISIONS:
        return _PRECISIONS[key]
    if "torch" in sys.modules:  # an engine process (the command line, a test) has it loaded already
        from engine.core.model_catalog import hardware_choice

        result = hardware_choice(*key)
    else:
        cmd = [sys.executable, "-m", "engine.core.model_catalog", "precision", "--device", key[0], "--precision", key[1]]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  cwd=str(REPO))
        except subprocess.TimeoutExpired:
            return {"error": f"the probe took over {timeout:.0f} s", "text": "Precision: the hardware probe timed out"}
        lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
        if not lines:
            why = (proc.stderr or "no output").strip().splitlines()[-1:] or ["no output"]
            return {"error": why[0], "text": f"Precision: the hardware probe failed ({why[0]})"}
        result = json.loads(lines[-1])
    _PRECISIONS[key] = result
    return result


def start_training(preset: str, data: str | None = None, eval_data: str | None = None,
                   overrides: str | list | None = None, run: str | None = None) -> tuple[int, str]:
    """Queue a new training run; returns (job id, run name). Raises ValueError with a readable message."""
    import hashlib

    from engine.training import train

    from engine.core.model_catalog import check_config_path, check_path_allowed

    # Paths typed into the app (directly or as overrides) must stay inside the allowed folders;
    # the preset is checked before it is read.
    check_config_path(preset, home())
    launch = train.prepare_launch(home(), config_path=preset, overrides=_parse_overrides(overrides),
                                  data=data or None, eval_data=eval_data or None, run=run or None)
    for key in ("data", "eval_data", "accelerate_config"):
        if launch["config"].get(key):
            check_path_allowed(launch["config"][key], home(), key)
    _refuse_model_path(launch["config"]["base_model"])
    # Two presses of Launch (two sessions, a double click) make one job. A named run is keyed by
    # its name; an unnamed one by what it would train, because each press would otherwise get its
    # own timestamped run name. The existing job's run name is returned.
    key = f"train:{launch['run']}" if run else "train-new:" + hashlib.sha256(
        store.dumps([launch["preset"], launch["config"]]).encode()).hexdigest()[:24]
    job_id = _enqueue("train", launch, f"train {launch['run']}", dedupe_key=key)
    queued = store.get_job(db(), job_id)
    return job_id, (queued or {}).get("config", {}).get("run") or launch["run"]


def resume_training(run: str, overrides: str | list | None = None) -> int:
    """Continue ``run`` from its last complete checkpoint: requeue its stopped job, or queue a new one."""
    from engine.training import train

    conn = db()
    row = conn.execute("SELECT job_id FROM train_runs WHERE name = ?", [run]).fetchone()
    over = _parse_overrides(overrides)
    if row and row[0] and not over and store.requeue_job(conn, row[0]):
        return row[0]
    launch = train.prepare_launch(home(), overrides=over, resume=run)
    return _enqueue("train", launch, f"train {run} (resume)", dedupe_key=f"train:{run}")


def train_runs() -> list[dict]:
    """Every run, newest first, with its job's state (a 'running' run whose job is gone shows 'interrupted')."""
    rows = _rows(db().execute(
        "SELECT r.name, r.job_id, r.base_model, r.data_path, r.status, r.dir, r.final_metrics, r.created_at, "
        "r.finished_at, j.status AS job_status, j.progress, j.stats, j.heartbeat FROM train_runs r "
        "LEFT JOIN jobs j ON j.id = r.job_id ORDER BY r.created_at DESC, r.id DESC"))
    for r in rows:
        r["final_metrics"] = json.loads(r["final_metrics"]) if r["final_metrics"] else {}
        r["stats"] = json.loads(r["stats"]) if r["stats"] else {}
        # A job process killed outright (kill -9 of `ccr train`) leaves its row running with an old heartbeat.
        stale = r["job_status"] in ("running", "pausing") and (r["heartbeat"] or 0) < time.time() - jobs.STALE_AFTER_S
        if r["status"] == "running" and (stale or r["job_status"] not in ("queued", "running", "pausing")):
            r["status"] = "interrupted"
        if r["job_status"] in ("queued", "pausing"):
            r["status"] = r["job_status"]
    # A run whose job is queued (or just starting) has no row yet: list it from its job, so the
    # Train page can show the run it launched at once.
    named = {r["name"] for r in rows}
    pending = []
    for j in list_jobs(limit=50, kind="train"):
        name = (j["config"] or {}).get("run")
        if j["status"] in ("queued", "running", "pausing") and name and name not in named:
            cfg = j["config"].get("config") or {}
            pending.append({"name": name, "job_id": j["id"], "base_model": cfg.get("base_model"),
                            "data_path": cfg.get("data"), "status": j["status"],
                            "dir": str(home().models / name), "final_metrics": {}, "created_at": j["created_at"],
                            "finished_at": None, "job_status": j["status"], "progress": j["progress"],
                            "stats": j["stats"], "heartbeat": j["heartbeat"]})
            named.add(name)
    return pending + rows


def train_run(name: str) -> dict | None:
    """One run: its row, manifest, checkpoints and job."""
    from engine.training import train

    rows = [r for r in train_runs() if r["name"] == name]
    if not rows:
        return None
    r = rows[0]
    r["manifest"] = train.read_manifest(r["dir"]) or {}
    r["checkpoints"] = train.list_checkpoints(r["dir"])
    r["job"] = store.get_job(db(), r["job_id"]) if r["job_id"] else None
    return r


def train_metrics(runs: list[str], kind: str | None = None) -> list[dict]:
    """Metric rows of ``runs`` (train and eval), ordered by run and step."""
    if not runs:
        return []
    where = f"run_name IN ({', '.join('?' for _ in runs)})"
    params = list(runs)
    if kind:
        where += " AND kind = ?"
        params.append(kind)
    rows = _rows(db().execute(
        f"SELECT run_name, step, kind, epoch, loss, learning_rate, grad_norm, tokens_per_s, memory_mb, extra, "
        f"created_at FROM train_metrics WHERE {where} ORDER BY run_name, step, kind", params))
    for r in rows:
        r["extra"] = json.loads(r["extra"]) if r["extra"] else {}
    return rows


def demo_defaults() -> dict:
    """The demo's default sizes (engine/demo.py), for the page's inputs."""
    from engine import demo as D

    return {"train_chains": D.TRAIN_CHAINS, "validation_chains": D.VALIDATION_CHAINS,
            "max_new_tokens": D.EVAL_MAX_NEW_TOKENS, "eval_batch": D.EVAL_BATCH}


def last_demo() -> dict | None:
    """The last finished ``ccr demo`` (either front door): run, evaluation ids (base, tuned), stage
    times, and the tuned evaluation's headline deltas when both evaluations are still there."""
    from engine.evaluation import evaluate
    from engine.evaluation import metrics as M

    demo = store.get_setting(db(), "last_demo")
    if not demo or len(demo.get("evaluations") or []) != 2:
        return None
    rows = []
    for evaluation_id in demo["evaluations"]:  # the two rows only (the page renders this on every rerun)
        try:
            row = evaluate.evaluation_row(db(), evaluation_id)
        except ValueError:  # deleted since
            return None
        if not row["metrics"]:
            return None
        rows.append({**row, "headline": M.headline(row["metrics"])})
    return {**demo, "base": rows[0], "tuned": rows[1]}


def start_demo(train_limit: int | None = None, eval_limit: int = 0, seed: int = 0) -> int:
    """Queue the whole loop (``ccr demo``) as one job; each stage shows as its own job too.
    ``train_limit`` None: the demo's default size (``demo_defaults()``); 0: all 300."""
    config = {"seed": int(seed), "train_limit": train_limit, "eval_limit": int(eval_limit)}
    return _enqueue("demo", config, "demo: the whole loop", dedupe_key="demo")


# ---------------------------------------------------------------------------------------------
# Page equivalents of `ccr` commands that had none (each calls the engine function its command
# calls): `ccr export model`, `ccr data export`, `ccr score` (`ccr export reasoning` is
# export_reasoning above, `ccr models list` is models())
# ---------------------------------------------------------------------------------------------


def start_export_model(run: str, merge: bool = False) -> int:
    """Queue ``train.export_model`` for the Train page (``ccr export model --run RUN [--merge]``).

    A job, not a call: a merge loads torch, transformers and peft, which must never happen in the
    Streamlit process. Two presses make one job (per run and kind of export)."""
    from engine.training import train

    folder = train.run_folder(home(), train.check_run_name(run))  # RunError is a ValueError
    if not (folder / train.ADAPTER_FILES[0]).exists():
        raise ValueError(f"run {run!r} has no {train.ADAPTER_FILES[0]} in {folder} (not finished yet?)")
    what = "merged" if merge else "adapter"
    return _enqueue("export_model", {"run": run, "merge": bool(merge)},
                    f"export {run} ({'merged model' if merge else 'adapter'})", dedupe_key=f"export-model:{run}:{what}")


def export_dataset(name: str, split: str | None = None, task: str | None = None) -> dict:
    """Write dataset ``name`` (or one split and/or task of it) as ChatML JSONL to
    ``HOME/exports/NAME-SPLIT[-TASK].jsonl`` through ``datasets.export_dataset`` (``ccr data export``);
    returns its result plus the size."""
    from engine.data import datasets, tasks

    if split not in (None, "train", "validation", "test"):
        raise ValueError(f"unknown split {split!r} (expected train, validation or test)")
    if task is not None and task not in tasks.TASKS:
        raise ValueError(f"unknown task {task!r} (expected one of {', '.join(tasks.TASKS)})")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:120] or "dataset"
    out = home().data / "exports" / f"{safe}-{split or 'all'}{'-' + task if task else ''}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    r = datasets.export_dataset(home(), name, out, split=split, task=task)
    return {**r, "dataset": name, "split": split, "task": task, "bytes": out.stat().st_size}


def score_chatml(content: bytes, filename: str = "upload.jsonl") -> dict:
    """Score the last assistant turn of every line of an uploaded ChatML JSONL file with
    ``quality.score_file`` and ``quality.summarize`` (``ccr score FILE``).

    The bytes go to a temp file (removed afterwards) because ``score_file`` reads a path, as the
    command does. Returns the summary, the per-line results (``error`` for unreadable lines), the
    threshold and the criteria's maximum points."""
    import tempfile

    from engine.chains import quality

    fd, tmp = tempfile.mkstemp(prefix="ccr-score-", suffix=".jsonl")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        results = list(quality.score_file(tmp))
    finally:
        os.unlink(tmp)
    return {"file": filename, "summary": quality.summarize(results), "lines": results,
            "threshold": quality.THRESHOLD, "weights": dict(quality.WEIGHTS)}


# ---------------------------------------------------------------------------------------------
# Estimates before launch (engine/estimate.py): the pages and the `--dry-run` commands show the same
# ---------------------------------------------------------------------------------------------


def estimate(kind: str, **params) -> dict:
    """How long a job would take, from the speed this machine measured (``engine.estimate``).

    ``kind`` and its parameters:

    - ``generate``: ``values`` (the Generate page's settings, as for ``start_generate``);
    - ``train``: ``preset``, ``data``, ``overrides`` (as for ``start_training``; runs the dry run);
    - ``eval``: ``model``, ``base``, ``data``, ``dataset``, ``split``, ``limit``, ``max_new_tokens``,
      ``batch_size`` (as for ``start_eval``);
    - ``infer``: ``model``, ``lines`` (input lines), ``batch_size``, ``max_new_tokens``;
    - ``demo``: ``train_limit``, ``eval_limit``, ``seed`` (as for ``start_demo``).

    Returns ``{"seconds" (None: unknown), "text" (the duration and its basis), "long" (over
    30 minutes or unknown: the pages ask for a confirmation), ...}``; ``{"error": message}`` when
    the inputs cannot be estimated (no dataset, a bad file).
    """
    from engine import estimate as E

    conn = db()
    try:
        if kind == "generate":
            config = generate_config(params["values"])
            return E.generate(conn, config, E.generate_pending(conn, config))
        if kind == "train":
            from engine.core.config import TrainConfig, load_config, to_dict

            dry = train_estimate(params["preset"], params.get("data"), params.get("overrides"))
            if dry.get("error"):
                return {"error": dry["error"]}
            if not dry.get("data"):
                return {"error": "no training data: the dry run cannot count steps"}
            cfg = to_dict(load_config(TrainConfig, params["preset"], _parse_overrides(params.get("overrides"))))
            cfg["device"], cfg["precision"] = dry["device"], dry["precision"]
            return E.train(conn, cfg, dry["data"]["total_steps"], dry["data"]["mean_length"])
        if kind == "eval":
            from engine.evaluation import evaluate
            from engine.core import model_catalog as m

            data = params.get("data")
            if data:  # the folders start_eval accepts, before reading anything
                data = str(m.check_path_allowed(data, home(), "evaluation data"))
            examples, _, _ = evaluate.load_examples(home(), data, params.get("dataset"),
                                                    params.get("split", "test"), int(params.get("limit") or 0))
            models = [params["model"]] + ([params["base"]] if params.get("base") else [])
            return E.evaluate(conn, models, len(examples), int(params.get("max_new_tokens", 512)),
                              int(params.get("batch_size", 8)), home())
        if kind == "infer":
            return E.infer(conn, params["model"], int(params["lines"]), int(params.get("max_new_tokens", 512)),
                           int(params.get("batch_size", 8)), home())
        if kind == "demo":
            return E.demo_plan(conn, seed=int(params.get("seed", 0)), train_limit=params.get("train_limit"),
                               eval_limit=int(params.get("eval_limit") or 0), home=home())
    except (ValueError, OSError) as exc:  # ConfigError, EvalDataError, no dataset: say why
        return {"error": str(exc)}
    raise ValueError(f"unknown kind {kind!r} (expected generate, train, eval, infer or demo)")


def count_lines(content: bytes | None = None, path: str | None = None) -> int:
    """Non-blank lines of an uploaded file's bytes or of a file (batch inference's input size)."""
    if content is None and path:
        from engine.core import model_catalog as m

        content = m.check_path_allowed(path, home(), "input file").read_bytes()
    return sum(1 for line in (content or b"").splitlines() if line.strip())
