"""``ccr``: the command line, a thin layer over the same engine functions the app calls.

Every command takes ``--home DIR`` (or ``CCR_HOME``): the state folder with the database,
JSONL files, logs and trained models. Exit status: 0 success, 1 partial success (some input
rejected, some job failed), 2 cannot run (bad arguments, unreadable file, missing model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from engine import jobs, store
from engine.paths import resolve_home


def _home(args):
    return resolve_home(args.home).ensure()


def _print_table(rows: list[dict], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))


def _job_exit(job: dict) -> int:
    if job["status"] == "succeeded":
        return 0
    if job["status"] in ("failed",):
        print(f"error: {job.get('error')}", file=sys.stderr)
        return 1
    print(f"job {job['id']} {job['status']}" + (f": {job['error']}" if job.get("error") else ""), file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


def cmd_data_synth(args) -> int:
    config = {"preset": args.preset, "seed": args.seed, "out": args.out, "dataset": args.dataset}
    job = jobs.run_inline(_home(args), "synth", config, title=f"synthesize {args.preset} (seed {args.seed})")
    if job["status"] != "succeeded":
        return _job_exit(job)
    r = job["result"]
    print(f"dataset {r['dataset']}: wrote {r['counts']['train']} train / {r['counts']['validation']} validation / "
          f"{r['counts']['test']} test lines to {r['out']} in {r['write_seconds']} s "
          f"(registered in {r['seconds']} s)")
    return 0


def cmd_data_import(args) -> int:
    from engine import importer

    home = _home(args)
    # Read errors of the file as a whole are exit status 2, before any job is created.
    try:
        importer.read_records(args.file)
    except importer.ImportFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.split and importer.SPLIT_ALIASES.get(args.split.lower()) is None:
        print(f"error: unknown split {args.split!r} (expected train, validation or test)", file=sys.stderr)
        return 2
    config = {"path": os.path.abspath(args.file), "dataset": args.dataset, "split": args.split,
              "display_name": args.file}
    job = jobs.run_inline(home, "import", config, title=f"import {os.path.basename(args.file)}", echo=False)
    if job["status"] != "succeeded":
        if job.get("error") and "ImportFileError" in job["error"]:
            print(f"error: {job['error'].split(': ', 1)[1]}", file=sys.stderr)
            return 2
        return _job_exit(job)
    r = job["result"]
    print(f"accepted {r['accepted']}, rejected {r['rejected']}")
    return 0 if r["rejected"] == 0 else 1


def cmd_data_export(args) -> int:
    from engine import data

    try:
        r = data.export_dataset(_home(args), args.dataset, args.out, split=args.split, task=args.task)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {r['lines']} lines to {r['out']}")
    return 0


def cmd_data_list(args) -> int:
    from engine import data

    rows = data.list_datasets(_home(args))
    for r in rows:
        r["created"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))
    _print_table(rows, ["name", "kind", "train", "validation", "test", "total", "created", "source"])
    return 0


# ---------------------------------------------------------------------------------------------
# models, worker, jobs
# ---------------------------------------------------------------------------------------------


def cmd_models_list(args) -> int:
    from engine import models

    rows = models.list_models(_home(args))
    for r in rows:
        r["available"] = "yes" if r["available"] else "no"
    _print_table(rows, ["name", "kind", "params", "available", "detail"])
    return 0


def cmd_worker(args) -> int:
    home = _home(args)
    worker = jobs.Worker(home, slots=args.slots)
    print(f"worker {worker.name} on {home.db} (Ctrl-C to stop; running jobs are requeued)", flush=True)
    worker.start_thread()
    try:
        while worker.alive():
            time.sleep(0.5)
            if args.once and not worker.running and not store.connect(home).execute(
                    "SELECT 1 FROM jobs WHERE status = 'queued' LIMIT 1").fetchone():
                break
    except KeyboardInterrupt:
        print("stopping worker...", flush=True)
    worker.stop()
    return 0


def cmd_jobs_list(args) -> int:
    db = store.connect(_home(args))
    where = "" if args.all else "WHERE status IN ('queued', 'running', 'pausing') OR finished_at > ?"
    params = [] if args.all else [time.time() - 86400]
    rows = [dict(zip(["id", "kind", "title", "status", "progress", "error"], r)) for r in db.execute(
        f"SELECT id, kind, title, status, progress, error FROM jobs {where} ORDER BY id DESC LIMIT ?",
        params + [args.limit])]
    for r in rows:
        r["progress"] = f"{100 * (r['progress'] or 0):.0f}%"
        r["error"] = (r["error"] or "")[:60]
    _print_table(rows, ["id", "kind", "status", "progress", "title", "error"])
    return 0


def _job_or_fail(db, job_id: int):
    job = store.get_job(db, job_id)
    if job is None:
        print(f"error: no job {job_id}", file=sys.stderr)
    return job


def cmd_jobs_cancel(args) -> int:
    db = store.connect(_home(args))
    if not _job_or_fail(db, args.id):
        return 2
    store.request_cancel(db, args.id)
    print(f"job {args.id}: cancel requested ({store.get_job(db, args.id)['status']})")
    return 0


def cmd_jobs_pause(args) -> int:
    db = store.connect(_home(args))
    if not _job_or_fail(db, args.id):
        return 2
    store.request_pause(db, args.id)
    print(f"job {args.id}: {store.get_job(db, args.id)['status']}")
    return 0


def cmd_jobs_resume(args) -> int:
    db = store.connect(_home(args))
    if not _job_or_fail(db, args.id):
        return 2
    ok = store.requeue_job(db, args.id)
    print(f"job {args.id}: " + ("queued again; a worker (the app or `ccr worker`) resumes it" if ok
                                else f"cannot resume a job that is {store.get_job(db, args.id)['status']}"))
    return 0 if ok else 1


def cmd_jobs_log(args) -> int:
    db = store.connect(_home(args))
    job = _job_or_fail(db, args.id)
    if not job:
        return 2
    print(jobs.tail_file(job.get("log_path"), 200000) or job.get("log_tail") or "(no log)")
    return 0


# ---------------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    # --home is accepted before or after the command; SUPPRESS keeps a later default from
    # overwriting a value given earlier.
    home_parent = argparse.ArgumentParser(add_help=False)
    home_parent.add_argument("--home", default=argparse.SUPPRESS,
                             help="state folder (database, JSONL, logs, models); default $CCR_HOME or the checkout's data/")
    parser = argparse.ArgumentParser(prog="ccr", description="Contact-center reasoning: data, generation, training, "
                                     "evaluation and serving, headless.", parents=[home_parent])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="synthesize, import, export and list datasets", parents=[home_parent])
    dsub = data.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    p = dsub.add_parser("synth", help="write a synthetic dataset (train/validation/test JSONL) and register it",
                        parents=[home_parent])
    p.add_argument("--preset", choices=["demo", "plan"], default="demo",
                   help="demo: a few hundred examples; plan: 25,790 / 3,223 / 3,225")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--out", help="output folder (default HOME/synth-PRESET-seedN)")
    p.add_argument("--dataset", help="dataset name (default PRESET-seedN)")
    p.set_defaults(func=cmd_data_synth)
    p = dsub.add_parser("import", help="import a ChatML JSONL or CSV file; bad lines reported as FILE:LINE: reason",
                        parents=[home_parent])
    p.add_argument("file", help="a .jsonl or .csv file")
    p.add_argument("--dataset", help="dataset to add to (default from the file name)")
    p.add_argument("--split", help="train, validation or test for every line (default: meta.split, then the file name)")
    p.set_defaults(func=cmd_data_import)
    p = dsub.add_parser("export", help="write a dataset (or a split/task of it) as ChatML JSONL", parents=[home_parent])
    p.add_argument("--dataset", required=True)
    p.add_argument("--split")
    p.add_argument("--task")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_data_export)
    p = dsub.add_parser("list", help="list datasets with their split sizes", parents=[home_parent])
    p.set_defaults(func=cmd_data_list)

    models = sub.add_parser("models", help="the model registry", parents=[home_parent])
    msub = models.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    p = msub.add_parser("list", help="named models and trained runs, and whether each is available here",
                        parents=[home_parent])
    p.set_defaults(func=cmd_models_list)

    p = sub.add_parser("worker", help="run queued jobs headless (the same loop as the app's engine)",
                       parents=[home_parent])
    p.add_argument("--slots", type=int, default=1, help="batch jobs to run at once (services run beside them)")
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.set_defaults(func=cmd_worker)

    jobs_p = sub.add_parser("jobs", help="list, cancel, pause, resume jobs and read their logs", parents=[home_parent])
    jsub = jobs_p.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    p = jsub.add_parser("list", help="active jobs and those of the last day", parents=[home_parent])
    p.add_argument("--all", action="store_true", help="every job")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_jobs_list)
    for name, func, text in (("cancel", cmd_jobs_cancel, "cancel a job (a running one stops at its next safe point)"),
                             ("pause", cmd_jobs_pause, "pause a running job (resume continues where it stopped)"),
                             ("resume", cmd_jobs_resume, "queue a paused, interrupted or failed job again"),
                             ("log", cmd_jobs_log, "print a job's log")):
        p = jsub.add_parser(name, help=text, parents=[home_parent])
        p.add_argument("id", type=int)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "home"):
        args.home = None
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
