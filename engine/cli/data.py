"""``ccr data``, ``ccr models list``, ``ccr worker`` and ``ccr jobs``: parse, call ``engine.api``, print."""

from __future__ import annotations

import sys
import time

from engine import api
from engine.cli.output import input_error_exit, job_exit, job_times, print_table


def cmd_data_synth(args) -> int:
    try:
        job = api.run_synth(args.preset, args.seed, args.out, args.dataset)
    except ValueError as exc:  # the dataset name, before any job
        print(f"error: --dataset: {exc}", file=sys.stderr)
        return 2
    if job["status"] != "succeeded":
        return job_exit(job)
    r = job["result"]
    print(f"dataset {r['dataset']}: wrote {r['counts']['train']} train / {r['counts']['validation']} validation / "
          f"{r['counts']['test']} test lines to {r['out']} in {r['write_seconds']} s "
          f"(registered in {r['seconds']} s)")
    return 0


def cmd_data_import(args) -> int:
    from engine.data.importer import ImportFileError

    # Read errors of the file as a whole are exit status 2, before any job is created.
    try:
        api.check_import(args.file, args.split)
    except (ImportFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dataset is not None:
        try:
            args.dataset = api.clean_dataset_name(args.dataset)
        except ValueError as exc:
            print(f"error: --dataset: {exc}", file=sys.stderr)
            return 2
    job = api.run_import(args.file, args.dataset, args.split)
    if job["status"] != "succeeded":
        return input_error_exit(job, "ImportFileError") or job_exit(job)
    r = job["result"]
    print(f"accepted {r['accepted']}, rejected {r['rejected']}")
    return 0 if r["rejected"] == 0 else 1


def cmd_data_export(args) -> int:
    try:
        r = api.write_dataset(args.dataset, args.out, split=args.split, task=args.task)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {r['lines']} lines to {r['out']}")
    return 0


def cmd_data_rename(args) -> int:
    try:
        new = api.rename_dataset(args.old, args.new)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"renamed dataset {args.old!r} to {new!r}")
    return 0


def cmd_data_delete(args) -> int:
    try:
        usage = api.dataset_usage(args.name)
    except ValueError as exc:  # no such dataset
        print(f"error: {exc}", file=sys.stderr)
        return 2
    what = (f"dataset {args.name!r}: {usage['examples']:,} examples, {usage['chains']:,} reasoning chains "
            f"({usage['attempts']:,} attempts, {usage['reviews']:,} review decisions)")
    if not args.yes:
        print(f"would delete {what}; nothing deleted. Run again with --yes to delete it.", file=sys.stderr)
        return 2
    try:
        api.delete_dataset(args.name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"deleted {what}")
    return 0


def cmd_data_list(args) -> int:
    rows = api.datasets()
    for r in rows:
        r["created"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))
    print_table(rows, ["name", "kind", "train", "validation", "test", "total", "created", "source"])
    return 0


def cmd_models_list(args) -> int:
    rows = api.models()
    for r in rows:
        r["available"] = "yes" if r["available"] else "no"
    print_table(rows, ["name", "kind", "params", "available", "detail"])
    return 0


def cmd_worker(args) -> int:
    worker = api.worker(slots=args.slots)
    print(f"worker {worker.name} on {api.home().db} (Ctrl-C to stop; running jobs are requeued)", flush=True)
    worker.start_thread()
    try:
        while worker.alive():
            time.sleep(0.5)
            if args.once and not worker.running and not api.jobs_queued():
                break
    except KeyboardInterrupt:
        print("stopping worker...", flush=True)
    worker.stop()
    return 0


def cmd_jobs_list(args) -> int:
    rows = api.list_jobs(limit=args.limit, recent_s=None if args.all else 86400)
    now = time.time()
    for r in rows:
        r.update(job_times(r, now))
        r["progress"] = f"{100 * (r['progress'] or 0):.0f}%"
        r["error"] = (r["error"] or "")[:60]
    print_table(rows, ["id", "kind", "status", "progress", "elapsed", "rate", "eta", "title", "error"])
    return 0


def _job_or_fail(job_id: int):
    job = api.job(job_id)
    if job is None:
        print(f"error: no job {job_id}", file=sys.stderr)
    return job


def cmd_jobs_cancel(args) -> int:
    if not _job_or_fail(args.id):
        return 2
    api.cancel_job(args.id)
    print(f"job {args.id}: cancel requested ({api.job(args.id)['status']})")
    return 0


def cmd_jobs_pause(args) -> int:
    if not _job_or_fail(args.id):
        return 2
    api.pause_job(args.id)
    print(f"job {args.id}: {api.job(args.id)['status']}")
    return 0


def cmd_jobs_resume(args) -> int:
    if not _job_or_fail(args.id):
        return 2
    ok = api.resume_job(args.id)
    print(f"job {args.id}: " + ("queued again; a worker (the app or `ccr worker`) resumes it" if ok
                                else f"cannot resume a job that is {api.job(args.id)['status']}"))
    return 0 if ok else 1


def cmd_jobs_log(args) -> int:
    if not _job_or_fail(args.id):
        return 2
    print(api.job_log(args.id, 200000) or "(no log)")
    return 0
