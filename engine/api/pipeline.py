"""Jobs, the pipeline overview and the demo: what the Jobs and Pipeline pages, the sidebar and
``ccr jobs ...``/``ccr demo`` call."""

from __future__ import annotations


from engine import queries
from engine.api.common import db, enqueue, home
from engine.api.data import current_dataset, dataset_id
from engine.core import jobs, store


def list_jobs(limit: int = 50, kind: str | None = None, recent_s: float | None = None) -> list[dict]:
    """Jobs, newest first (of one ``kind``); with ``recent_s``, only the active ones and those
    finished in the last ``recent_s`` seconds (``ccr jobs list`` without ``--all``)."""
    return queries.jobs(db(), limit, kind, recent_s)


def job(job_id: int) -> dict | None:
    return store.get_job(db(), job_id)


def active_jobs() -> list[dict]:
    return queries.active_jobs(db())


def cancel_job(job_id: int) -> None:
    store.request_cancel(db(), job_id)


def pause_job(job_id: int) -> None:
    store.request_pause(db(), job_id)


def resume_job(job_id: int) -> bool:
    return store.requeue_job(db(), job_id)


def worker(slots: int = 1) -> jobs.Worker:
    """The job loop ``ccr worker`` runs (the app's engine thread is the same)."""
    return jobs.Worker(home(), slots=slots)


def jobs_queued() -> bool:
    return queries.any_queued(db())


def job_log(job_id: int, nbytes: int = 20000) -> str:
    row = store.get_job(db(), job_id)
    if not row:
        return ""
    return jobs.tail_file(row.get("log_path"), nbytes) or (row.get("log_tail") or "")


def pipeline_state() -> list[dict]:
    """One row per phase: its state (done / running / ready / waiting), counts, and the next step."""
    ds_name = current_dataset()
    counts = queries.pipeline_counts(db(), dataset_id(ds_name))
    running = {r["kind"] for r in active_jobs()}
    n_examples, n_train, chains, avg = counts["examples"], counts["train"], counts["chains"], counts["avg_score"]
    n_chains = sum(chains.values())
    runs, evals, serving = counts["runs"], counts["evaluations"], counts["serving"]

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


def start_demo(train_limit: int | None = None, eval_limit: int = 0, seed: int = 0,
               generate_overrides: list[str] | tuple = (), train_overrides: list[str] | tuple = ()) -> int:
    """Queue the whole loop (``ccr demo``) as one job; each stage shows as its own job too.
    ``train_limit`` None: the demo's default size (``demo_defaults()``); 0: all 300. The overrides
    (``key=value``, as ``ccr demo --generate-override/--train-override``) are checked first:
    ``DemoError`` names a bad one and nothing is queued."""
    from engine import demo

    demo.check_overrides(generate_overrides, train_overrides)
    config = {"seed": int(seed), "train_limit": train_limit, "eval_limit": int(eval_limit)}
    if generate_overrides:
        config["generate_overrides"] = list(generate_overrides)
    if train_overrides:
        config["train_overrides"] = list(train_overrides)
    return enqueue("demo", config, "demo: the whole loop", dedupe_key="demo")


def run_demo(**params) -> dict:
    """``ccr demo``: the whole loop in this process (``demo.run_demo``'s parameters); its summary.
    DemoError when a stage fails."""
    from engine import demo

    return demo.run_demo(home(), **params)
