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

from engine.core import jobs, store
from engine.core.paths import resolve_home


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


def _expected_message(error: str | None) -> str | None:
    """The message of a job error ("ClassName: message") that is the input's or the machine's
    fault (jobs.EXPECTED_ERRORS, OSError and its kind), else None (a bug: keep the class name)."""
    import builtins

    name, sep, message = (error or "").partition(": ")
    builtin = getattr(builtins, name, None)
    if sep and (name in jobs.EXPECTED_ERRORS or isinstance(builtin, type) and issubclass(builtin, OSError)):
        return message
    return None


def _job_exit(job: dict) -> int:
    if job["status"] == "succeeded":
        return 0
    if job["status"] in ("failed",):
        message = _expected_message(job.get("error"))
        if message is not None:  # cannot run: one line, exit status 2 (no traceback was printed)
            print(f"error: {message}", file=sys.stderr)
            return 2
        print(f"error: {job.get('error')}", file=sys.stderr)
        return 1
    print(f"job {job['id']} {job['status']}" + (f": {job['error']}" if job.get("error") else ""), file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


def cmd_data_synth(args) -> int:
    if args.dataset is not None:
        try:
            args.dataset = store.clean_dataset_name(args.dataset)
        except ValueError as exc:
            print(f"error: --dataset: {exc}", file=sys.stderr)
            return 2
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
    from engine.data import importer

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
    if args.dataset is not None:
        try:
            args.dataset = store.clean_dataset_name(args.dataset)
        except ValueError as exc:
            print(f"error: --dataset: {exc}", file=sys.stderr)
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
    from engine.data import datasets

    try:
        r = datasets.export_dataset(_home(args), args.dataset, args.out, split=args.split, task=args.task)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {r['lines']} lines to {r['out']}")
    return 0


def cmd_data_rename(args) -> int:
    db = store.connect(_home(args))
    try:
        new = store.rename_dataset(db, args.old, args.new)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"renamed dataset {args.old!r} to {new!r}")
    return 0


def cmd_data_delete(args) -> int:
    db = store.connect(_home(args))
    row = db.execute("SELECT id FROM datasets WHERE name = ?", [args.name]).fetchone()
    if not row:
        print(f"error: no dataset named {args.name!r}", file=sys.stderr)
        return 2
    usage = store.dataset_usage(db, row[0])
    what = (f"dataset {args.name!r}: {usage['examples']:,} examples, {usage['chains']:,} reasoning chains "
            f"({usage['attempts']:,} attempts, {usage['reviews']:,} review decisions)")
    if not args.yes:
        print(f"would delete {what}; nothing deleted. Run again with --yes to delete it.", file=sys.stderr)
        return 2
    try:
        store.delete_dataset(db, row[0])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"deleted {what}")
    return 0


def cmd_data_list(args) -> int:
    from engine.data import datasets

    rows = datasets.list_datasets(_home(args))
    for r in rows:
        r["created"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))
    _print_table(rows, ["name", "kind", "train", "validation", "test", "total", "created", "source"])
    return 0


# ---------------------------------------------------------------------------------------------
# models, worker, jobs
# ---------------------------------------------------------------------------------------------


def cmd_models_list(args) -> int:
    from engine.core import model_catalog

    rows = model_catalog.list_models(_home(args))
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
    cols = ["id", "kind", "title", "status", "progress", "error", "stats", "started_at", "finished_at"]
    rows = [dict(zip(cols, r)) for r in db.execute(
        f"SELECT {', '.join(cols)} FROM jobs {where} ORDER BY id DESC LIMIT ?", params + [args.limit])]
    now = time.time()
    for r in rows:
        r.update(_job_times(r, now))
        r["progress"] = f"{100 * (r['progress'] or 0):.0f}%"
        r["error"] = (r["error"] or "")[:60]
    _print_table(rows, ["id", "kind", "status", "progress", "elapsed", "rate", "eta", "title", "error"])
    return 0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _job_times(row: dict, now: float) -> dict:
    """Elapsed, rate and ETA as of now (the same rule as the pages' ui.job_times): elapsed from the
    job's start, the ETA it last wrote counted down from when it wrote it."""
    stats = json.loads(row.get("stats") or "{}")
    active = row["status"] in ("running", "pausing")
    start = row.get("started_at")
    elapsed = (now if active else (row.get("finished_at") or now)) - start if start else None
    eta = None
    if active and stats.get("eta_s") is not None:
        eta = max(0.0, stats["eta_s"] - max(0.0, now - (stats.get("at") or now)))
    rate = stats.get("rate") if stats.get("rate") is not None else stats.get("steps_per_s")
    return {"elapsed": _duration(elapsed), "eta": _duration(eta), "rate": f"{rate:.3g}/s" if rate else ""}


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
# Phase 3: eval, infer, serve
# ---------------------------------------------------------------------------------------------


def _model_arg(args) -> str:
    from engine.core.model_catalog import DEFAULT_MODEL

    return f"run:{args.run}" if getattr(args, "run", None) else (args.model or DEFAULT_MODEL)


def _check_model(home, name: str) -> bool:
    from engine.core import model_catalog

    ok, why = model_catalog.availability(name, home)
    if not ok:
        print(f"error: model {name}: {why}", file=sys.stderr)
    return ok


def cmd_eval(args) -> int:
    home = _home(args)
    model = _model_arg(args)
    if args.data and not os.path.isfile(args.data):
        print(f"error: {args.data}: no such file", file=sys.stderr)
        return 2
    if not all(_check_model(home, m) for m in [model] + ([args.base] if args.base else [])):
        return 2
    from engine.evaluation import evaluate

    try:  # unusable data is exit status 2, before any job is created
        examples, _, _ = evaluate.load_examples(home, args.data, args.dataset, args.split, args.limit)
    except evaluate.EvalDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from engine import estimate

    est = estimate.evaluate(store.connect(home), [model] + ([args.base] if args.base else []), len(examples),
                            args.max_new_tokens, args.batch_size, home)
    print(f"estimate: {est['text']}", flush=True)
    if args.dry_run:
        return 0
    config = {"model": model, "base": args.base, "data": os.path.abspath(args.data) if args.data else None,
              "dataset": args.dataset, "split": args.split, "limit": args.limit,
              "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
              "report": os.path.abspath(args.report) if args.report else None, "device": args.device,
              "dtype": args.dtype}
    title = f"evaluate {model}" + (f" vs {args.base}" if args.base else "")
    job = jobs.run_inline(home, "eval", config, title=title)
    if job["status"] != "succeeded":
        if job.get("error") and "EvalDataError" in job["error"]:
            print(f"error: {job['error'].split(': ', 1)[1]}", file=sys.stderr)
            return 2
        return _job_exit(job)
    r = job["result"]
    _print_eval_table(r)
    print(f"{r['n_examples']} examples; report: {r['report']} and {r['html']}")
    return 0


def _print_eval_table(r: dict) -> None:
    """Each figure as ``value [95% interval], n``; with a base, the delta, its paired test's p and verdict."""
    from engine.evaluation.metrics import format_figure, format_p

    names = list(r["headline"])
    intervals = r.get("intervals") or {}
    comp = r.get("comparison")
    rows = []
    for key in dict.fromkeys(k for h in r["headline"].values() for k in h):
        row = {"metric": key, **{n: format_figure((intervals.get(n) or {}).get(key), r["headline"][n].get(key))
                                 for n in names}}
        if comp:
            d = comp["deltas"].get(key)
            if d:
                row["delta"] = f"{d['delta']:+.4g}"
                row["p"] = format_p(d).lstrip("=")
                row["paired test at 95%"] = d.get("verdict", "")
        rows.append(row)
    _print_table(rows, ["metric"] + names + (["delta", "p", "paired test at 95%"] if comp else []))
    print("value [95% interval], n: Wilson for rates, bootstrap for MAE/means/F1; deltas: exact McNemar or "
          "paired bootstrap (docs/evaluation.md)")
    for name, f in (r.get("faithfulness") or {}).items():
        if f and f.get("n"):
            print(f"faithfulness of {name}: {f['judged']} of {f['n']} answers judged (with reasoning to check; "
                  f"faithful_rate is over these), {f['with_contradiction']} with a contradiction, "
                  f"{f['invented']} unsupported specifics in all")
    if r.get("small_sample_warning"):
        print(f"warning: {r['small_sample_warning']}")


def cmd_infer(args) -> int:
    home = _home(args)
    model = _model_arg(args)
    if not os.path.isfile(args.input):
        print(f"error: {args.input}: no such file", file=sys.stderr)
        return 2
    if not _check_model(home, model):
        return 2
    from engine import estimate

    with open(args.input, "rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    est = estimate.infer(store.connect(home), model, lines, args.max_new_tokens, args.batch_size, home)
    print(f"estimate: {est['text']}", flush=True)  # stdout, as the other commands: stderr is for errors
    if args.dry_run:
        return 0
    config = {"model": model, "input": os.path.abspath(args.input), "output": os.path.abspath(args.output),
              "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
              "temperature": args.temperature, "top_p": args.top_p, "seed": args.seed, "device": args.device,
              "dtype": args.dtype, "progress_bar": not args.no_progress}
    job = jobs.run_inline(home, "infer", config, title=f"batch inference {os.path.basename(args.input)} with {model}",
                          echo=False)
    if job["status"] != "succeeded":
        if job.get("error") and "InferInputError" in job["error"]:
            print(f"error: {job['error'].split(': ', 1)[1]}", file=sys.stderr)
            return 2
        return _job_exit(job)
    r = job["result"]
    print(f"{r['generated']} lines generated ({r['skipped_already_done']} already done, {r['errors']} unusable) "
          f"in {r['seconds']} s -> {r['output']}", file=sys.stderr)
    return 0 if r["errors"] == 0 else 1


def cmd_demo(args) -> int:
    from engine import demo

    home = _home(args)
    if not _check_model(home, "smollm2-135m-instruct"):
        return 2
    from engine import estimate

    est = estimate.demo_plan(store.connect(home), seed=args.seed, train_limit=args.train_limit,
                             validation_limit=args.validation_limit, eval_limit=args.eval_limit,
                             max_new_tokens=args.max_new_tokens, train_overrides=args.train_override or [], home=home)
    print(f"estimate: {est['text']}", flush=True)
    if args.dry_run:
        return 0
    t0 = time.time()
    try:
        summary = demo.run_demo(home, seed=args.seed, train_limit=args.train_limit,
                                validation_limit=args.validation_limit, eval_limit=args.eval_limit,
                                max_new_tokens=args.max_new_tokens, train_overrides=args.train_override or [],
                                run=args.run, report=os.path.abspath(args.report) if args.report else None)
    except demo.DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(demo.format_summary(summary))
    print(f"the whole loop took {(time.time() - t0) / 60:.1f} min")
    return 0


def cmd_serve(args) -> int:
    from engine.serving import serve

    home = _home(args)
    model = _model_arg(args)
    try:
        serve.check_bind(args.host, args.api_key)
    except serve.ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not _check_model(home, model):
        return 2
    config = {"model": model, "host": args.host, "port": args.port, "api_key": args.api_key,
              "max_queue": args.max_queue, "max_batch": args.max_batch, "max_body_bytes": args.max_body_bytes,
              "max_tokens_limit": args.max_tokens_limit, "default_max_tokens": args.default_max_tokens,
              "allowed_hosts": args.allowed_host or [], "idle_shutdown_s": args.idle_shutdown,
              "device": args.device, "dtype": args.dtype}
    job = jobs.run_inline(home, "serve", config, title=f"serve {model} on {args.host}:{args.port}")
    if job["status"] != "succeeded":
        if job.get("error") and "ServeError" in job["error"]:
            print(f"error: {job['error'].split(': ', 1)[1]}", file=sys.stderr)
            return 2
        return _job_exit(job)
    r = job["result"] or {}
    print(f"server stopped ({r.get('ended')}): {r.get('served', 0)} requests served, {r.get('rejected', 0)} "
          f"answered 429", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------
# Phase 2: train, export model
# ---------------------------------------------------------------------------------------------


def cmd_train(args) -> int:
    from engine.training import train
    from engine.core.config import ConfigError, TrainConfig, load_config
    from engine.core.model_catalog import ModelNotAvailable, PathNotAllowed, check_config_path

    home = _home(args)
    resume, overrides = args.resume, list(args.overrides)
    if isinstance(resume, str) and "=" in resume:  # `--resume max_steps=9`: an override, not a run name
        overrides.insert(0, resume)
        resume = True
    try:
        if args.config:  # refused before it is read (README: "Allowed folders")
            check_config_path(args.config, home, cli=True)
        if args.dry_run:
            from engine.training import dryrun

            if resume:
                name = resume if isinstance(resume, str) else (args.run or train.latest_run(home))
                if not name:
                    raise train.RunError("no run to resume (none started in this home)")
                cfg, title = train.load_run_config(home, name, overrides), f"run {name}"
            else:
                path = args.config or str(train.DEFAULT_PRESET)
                cfg, title = load_config(TrainConfig, path, overrides), path
            data = args.data or cfg.data or str(train.default_data(home))
            e = dryrun.estimate(cfg, home, data)
            print(dryrun.format_estimate(e, title))
            if e.get("data"):
                from engine import estimate
                from engine.core.config import to_dict

                c = {**to_dict(cfg), "device": e["device"], "precision": e["precision"]}
                t = estimate.train(store.connect(home), c, e["data"]["total_steps"], e["data"]["mean_length"])
                print(f"time         {t['text']}")
            return 0
        launch = train.prepare_launch(home, config_path=args.config, overrides=overrides, data=args.data,
                                      eval_data=args.eval_data, run=args.run, resume=resume)
    except (ConfigError, train.DataError, train.RunError, ModelNotAvailable, PathNotAllowed, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verb = "resuming" if launch["resume"] else "starting"
    print(f"{verb} run {launch['run']} -> {train.run_folder(home, launch['run'])} (Ctrl-C stops after saving a "
          f"checkpoint; `ccr train --resume {launch['run']}` continues)", flush=True)
    job = jobs.run_inline(home, "train", launch, title=f"train {launch['run']}")
    if job["status"] != "succeeded":
        if job["status"] in ("paused", "cancelled", "interrupted"):
            print(f"run {launch['run']} {job['status']}; resume with: ccr train --resume {launch['run']}",
                  file=sys.stderr)
        return _job_exit(job)
    r = job["result"]
    losses = ", ".join(f"{k} {r[k]:.4f}" for k in ("train_loss", "eval_loss") if r.get(k) is not None)
    print(f"run {r['run']} finished at step {r['step']}" + (f": {losses}" if losses else "") +
          f"; adapter in {r['dir']} (use it as --model run:{r['run']})")
    return 0


def cmd_export_model(args) -> int:
    from engine.training import train
    from engine.core.model_catalog import ModelNotAvailable

    try:
        r = train.export_model(_home(args), args.run, merge=args.merge, out=args.out, dtype=args.dtype)
    except (train.RunError, ModelNotAvailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    what = "merged model" if r["merged"] else "adapter"
    print(f"wrote the {what} of run {r['run']} to {r['out']} ({r['bytes'] / 2**20:.1f} MiB: {', '.join(r['files'])})")
    return 0


# ---------------------------------------------------------------------------------------------
# Phase 1: generate, review, export reasoning, score
# ---------------------------------------------------------------------------------------------


def _print_breakdown(criteria: dict) -> None:
    from engine.chains import quality

    rows = [{"criterion": k, "points": f"{c['points']:g}/{c['max']:g}", "reason": c["reason"]}
            for k, c in criteria.items()]
    _print_table(rows, ["criterion", "points", "reason"])
    faults = quality.at_fault(criteria)
    if faults:
        print("sentences at fault:")
        for f in faults:
            print(f"  [{f['kind']}] >>{f['sentence']}<<  {f['reason']}")


def _generate_test(home, cfg) -> dict | None:
    from engine.core.config import to_dict

    job = jobs.run_inline(home, "generate", {**to_dict(cfg), "test": True}, title=f"test generation ({cfg.teacher})",
                          echo=False)
    if job["status"] != "succeeded":
        _job_exit(job)
        return None
    r = job["result"]
    print(f"--- chain for {r['ex_id']} ({r['task']}) ---")
    print(r["text"])
    print("---")
    _print_breakdown(r["criteria"])
    print(f"test score {r['score']:.1f} (gate {r['gate_threshold']:g}): "
          + ("passed" if r["passed"] else "below the gate" + ("" if r["sections_ok"] else "; sections incomplete")))
    return r


def cmd_generate(args) -> int:
    from engine.chains import selection
    from engine.chains.gate import gate_status, record_override
    from engine.core.config import ConfigError, to_dict
    from engine.core.paths import CONFIGS

    home = _home(args)
    overrides = list(args.overrides)
    if args.limit is not None:
        overrides.append(f"limit={args.limit}")
    if args.split:
        overrides.append(f"split={args.split}")
    path = args.config or (CONFIGS / "generate_smollm2_cpu.yaml")
    try:
        if args.config:  # refused before it is read (README: "Allowed folders"); PathNotAllowed is a ValueError
            from engine.core.model_catalog import check_config_path

            check_config_path(args.config, home, cli=True)
        cfg = selection.config_from(None, overrides, path)
        selection.resolve_dataset(store.connect(home), cfg.dataset)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run or not (args.test or cfg.test):
        from engine import estimate

        db = store.connect(home)
        est = estimate.generate(db, to_dict(cfg), estimate.generate_pending(db, to_dict(cfg)))
        print(f"estimate: {est['text']}", flush=True)
        if args.dry_run:
            return 0
    if cfg.backend == "local" and not _check_model(home, cfg.teacher):
        return 2
    if args.test or cfg.test:
        r = _generate_test(home, cfg)
        return 0 if r and r["passed"] else 1
    gate = gate_status(home, cfg)
    if not gate["ok"]:
        if args.override:
            record_override(home, cfg, args.reason or "ccr generate --override")
            print(f"gate overridden for {gate['teacher']} / prompt {gate['prompt_version']} (recorded)")
        else:
            print(f"no test for {gate['teacher']} / prompt {gate['prompt_version']} has scored >= "
                  f"{cfg.gate_threshold:g} yet: testing on one example first")
            r = _generate_test(home, cfg)
            if r is None:
                return 1
            if not r["passed"]:
                print(f"error: the test scored {r['score']:.1f} < {cfg.gate_threshold:g}; change the configuration, "
                      "or run again with --override (recorded) to generate anyway", file=sys.stderr)
                return 1
    title = f"generate chains ({cfg.split}" + (f", {cfg.select} {cfg.limit}" if cfg.limit is not None else "") + ")"
    job = jobs.run_inline(home, "generate", to_dict(cfg), title=title)
    if job["status"] != "succeeded":
        return _job_exit(job)
    print(job["result"]["summary"])
    return 0


def _review_filters(args) -> dict:
    return {"status": args.status or None, "task": args.task, "min_score": args.min_score,
            "max_score": args.max_score, "search": args.search, "reason": args.reason}


def cmd_review_list(args) -> int:
    from engine.chains import review

    rows, total = review.list_chains(_home(args), args.dataset, limit=args.limit, **_review_filters(args))
    for r in rows:
        r["score"] = f"{r['score']:.1f}"
        r["updated"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["updated_at"]))
        r["reasons"] = ",".join(r["reasons"]) or "-"
    _print_table(rows, ["id", "ex_id", "split", "task", "status", "score", "reasons", "attempts", "teacher",
                        "updated"])
    print(f"{len(rows)} of {total} chains")
    return 0


def cmd_review_show(args) -> int:
    from engine.chains import review

    c = review.chain_detail(_home(args), args.id)
    if not c:
        print(f"error: no chain {args.id}", file=sys.stderr)
        return 2
    ex = c["example"] or {}
    print(f"chain {c['id']}: {ex.get('ex_id')} ({ex.get('task')}), {c['status']}, score {c['score']:.1f}, "
          f"{c['attempts']} attempt(s), teacher {c['teacher']}, prompt {c['prompt_version']}")
    print("--- transcript ---")
    print(ex.get("transcript", ""))
    print("--- chain ---")
    print(c["text"])
    print("---")
    _print_breakdown(c["criteria"])
    for rv in c["reviews"]:
        print(f"review: {rv['decision']} by {rv['reviewer'] or '-'} at "
              f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(rv['created_at']))}")
    return 0


def _os_user() -> str | None:
    """The OS user name (``--reviewer``'s default), or None where there is none (a container
    without a passwd entry)."""
    import getpass

    try:
        return getpass.getuser() or None
    except (OSError, KeyError):
        return None


def _reviewer(args) -> str | None:
    """``--reviewer`` checked (required, one line); prints why and returns None when refused."""
    from engine.chains import review

    try:
        return review.check_reviewer(args.reviewer)
    except ValueError as exc:
        print(f"error: {exc}; give --reviewer NAME (the default, your OS user name, is not available here)"
              if not (args.reviewer or "").strip() else f"error: --reviewer: {exc}", file=sys.stderr)
        return None


def _cmd_review_decide(args, decision: str) -> int:
    from engine.chains import review

    home = _home(args)
    args.reviewer = _reviewer(args)
    if args.reviewer is None:
        return 2
    if args.ids:
        n = review.review(home, args.ids, decision, args.reviewer)
    elif args.all:
        n = review.bulk_review(home, decision, args.dataset, args.reviewer, **_review_filters(args))
    else:
        print("error: give chain ids, or --all to decide every chain matching the filters "
              "(--status, --task, --min-score, --max-score, --search, --reason)", file=sys.stderr)
        return 2
    print(f"{decision}d {n} chain(s)" if decision == "approve" else f"rejected {n} chain(s)")
    return 0


def cmd_review_approve(args) -> int:
    return _cmd_review_decide(args, "approve")


def cmd_review_reject(args) -> int:
    return _cmd_review_decide(args, "reject")


def cmd_review_edit(args) -> int:
    from engine.chains import review

    args.reviewer = _reviewer(args)
    if args.reviewer is None:
        return 2
    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    except OSError as exc:
        print(f"error: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        r = review.edit_chain(_home(args), args.id, text, args.reviewer)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_breakdown(r["criteria"])
    print(f"chain {args.id}: score {r['score_before']:.1f} -> {r['score']:.1f}, now {r['status']}")
    return 0


def cmd_export_reasoning(args) -> int:
    from engine.chains import export, selection

    try:
        r = export.export_reasoning(_home(args), args.out, args.include_flagged, args.dataset,
                                      balanced=args.balanced, limit=args.limit, seed=args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split in ("train", "validation"):
        s = r[split]
        print(f"wrote {s['lines']} {split} lines to {s['path']} ("
              + ", ".join(f"{k} {v}" for k, v in s["by_status"].items())
              + (f"; {s['left_out']} usable chains left out to balance or limit" if s["left_out"] else "") + ")")
        if args.balanced and s["lines"]:
            print(f"  by task and label value: {selection.format_balance(s['by_label'])}")
    return 0


def cmd_score(args) -> int:
    from engine.chains import quality

    if not os.path.isfile(args.file):
        what = "is a directory" if os.path.isdir(args.file) else (
            "not a regular file" if os.path.exists(args.file) else "no such file")
        print(f"error: {args.file}: {what}", file=sys.stderr)
        return 2
    results = []
    try:
        for r in quality.score_file(args.file):
            if "error" in r:
                print(f"{args.file}:{r['line']}: {r['error']}", file=sys.stderr)
            elif args.json:
                print(json.dumps({"line": r["line"], "score": r["score"], "criteria": r["criteria"]},
                                 ensure_ascii=False))
            results.append(r)
    except OSError as exc:  # unreadable (permissions, a disk error): the lines so far are printed
        print(f"error: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    s = quality.summarize(results)
    if not args.json:
        print(f"scored {s['count']} chains ({s['errors']} unreadable lines): average {s['average']:.1f}, "
              f"{100 * s['share_ge_70']:.1f}% >= {quality.THRESHOLD}, "
              f"{100 * s['share_all_sections']:.1f}% with all sections; "
              f"{100 * s['share_faithful']:.1f}% faithful ({100 * s['share_contradiction']:.1f}% with a "
              f"contradiction, {100 * s['share_invented']:.1f}% with an unsupported specific)")
        _print_table([{"criterion": k, "average points": f"{v:g}/{quality.WEIGHTS.get(k, 0):g}"}
                      for k, v in s["criteria"].items()], ["criterion", "average points"])
    return 0 if s["errors"] == 0 else 1


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
    p = dsub.add_parser("rename", help="rename a dataset (its examples and chains stay with it)", parents=[home_parent])
    p.add_argument("old", help="the dataset's name")
    p.add_argument("new", help="the new name (surrounding spaces are trimmed; it must not be blank or taken)")
    p.set_defaults(func=cmd_data_rename)
    p = dsub.add_parser("delete", help="delete a dataset with its examples, chains and reviews (asks for --yes)",
                        parents=[home_parent])
    p.add_argument("name", help="the dataset's name")
    p.add_argument("--yes", action="store_true", help="really delete (without it: say what would be deleted)")
    p.set_defaults(func=cmd_data_delete)

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

    # Phase 3: eval, infer, serve
    def model_args(p, what: str) -> None:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--model", help=f"model to {what}: registry name, HF id or local folder "
                           "(default smollm2-135m-instruct)")
        group.add_argument("--run", help="a trained run's adapter (same as --model run:RUN)")
        p.add_argument("--device", help="cuda, mps or cpu (default: the best present)")
        p.add_argument("--dtype", help="weights' precision: auto (default: bf16 on CUDA and on CPUs with AMX-BF16 or "
                       "AVX512-BF16, fp16 on MPS, else fp32), fp32, bf16 or fp16")

    p = sub.add_parser("eval", help="evaluate a model (and its base) on a test set: structure, quality score, "
                       "task accuracy; writes a JSON and an HTML report", parents=[home_parent])
    model_args(p, "evaluate")
    p.add_argument("--base", help="also evaluate this model (usually the run's base) and compare the two")
    p.add_argument("--data", help="ChatML JSONL or CSV file (default: the working dataset's test split)")
    p.add_argument("--dataset", help="dataset to take the split from (default: the working dataset)")
    p.add_argument("--split", default="test", help="split of the dataset (default test)")
    p.add_argument("--limit", type=int, default=0, help="at most N examples, covering every task (0: all)")
    p.add_argument("--max-new-tokens", type=int, default=512, help="longest answer per example (default 512)")
    p.add_argument("--batch-size", type=int, default=8, help="examples generated together (default 8)")
    p.add_argument("--report", help="JSON report path; the HTML goes beside it (default HOME/reports/eval-JOB.json)")
    p.add_argument("--dry-run", action="store_true", help="print the number of examples and how long the evaluation "
                   "would take (from the speed measured on this machine), and exit")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("infer", help="batch inference over a JSONL file (resumable: rerun to continue)",
                       parents=[home_parent])
    model_args(p, "run")
    p.add_argument("--input", required=True, help="JSONL: ChatML lines, {\"prompt\": ...} or "
                   "{\"transcript\": ..., \"task\": ...}")
    p.add_argument("--output", required=True, help="JSONL output, one line per input line")
    p.add_argument("--batch-size", type=int, default=8, help="lines generated together (default 8)")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--dry-run", action="store_true", help="print how long the input would take (from the speed "
                   "measured on this machine), and exit")
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("demo", help="the whole loop on CPU: synth -> generate -> export -> train -> evaluate base "
                       "vs tuned (rerun to continue after a stop)", parents=[home_parent])
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    from engine import demo as D

    p.add_argument("--train-limit", type=int, default=None, help="chains for N train examples, balanced across tasks "
                   f"and label values (default {D.TRAIN_CHAINS}: what fits an hour on two cores; 0: all 300)")
    p.add_argument("--validation-limit", type=int, default=D.VALIDATION_CHAINS, help="chains for N validation "
                   f"examples, for the eval-loss curve (default {D.VALIDATION_CHAINS})")
    p.add_argument("--eval-limit", type=int, default=0, help="test examples to evaluate on (0: all 60)")
    p.add_argument("--max-new-tokens", type=int, default=D.EVAL_MAX_NEW_TOKENS,
                   help=f"longest answer in the evaluation (default {D.EVAL_MAX_NEW_TOKENS})")
    p.add_argument("--run", help="run name (default demo-seedN)")
    p.add_argument("--train-override", action="append", metavar="KEY=VALUE",
                   help="override a training setting of configs/smollm2_cpu.yaml (repeatable)")
    p.add_argument("--report", help="report path (default HOME/reports/RUN.json)")
    p.add_argument("--dry-run", action="store_true", help="print how long the whole loop would take (from the speed "
                   "measured on this machine), and exit")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible chat API (foreground; Ctrl-C stops)",
                       parents=[home_parent])
    model_args(p, "serve")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need --api-key)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--api-key", default=os.environ.get("CCR_API_KEY") or None,
                   help="require 'Authorization: Bearer KEY' (default $CCR_API_KEY)")
    p.add_argument("--max-queue", type=int, default=64, help="waiting requests at most; more get 429 (default 64)")
    p.add_argument("--max-batch", type=int, default=8, help="requests generated together (default 8)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body (default 1 MiB)")
    p.add_argument("--max-tokens-limit", type=int, default=4096, help="largest max_tokens accepted (default 4096)")
    p.add_argument("--default-max-tokens", type=int, default=512, help="max_tokens when a request gives none")
    p.add_argument("--allowed-host", action="append", help="another Host header value to accept (repeatable)")
    p.add_argument("--idle-shutdown", type=float, default=0.0, help="stop after N idle seconds (0: never)")
    p.set_defaults(func=cmd_serve)

    # Phase 2: train, export model
    p = sub.add_parser("train", help="LoRA fine-tuning from a preset (configs/*.yaml) with checkpoints, live "
                       "metrics and resume; --dry-run estimates parameters, memory, disk and steps",
                       parents=[home_parent])
    p.add_argument("--config", help="preset YAML (default configs/smollm2_cpu.yaml)")
    p.add_argument("--data", help="training ChatML JSONL (default HOME/train_reasoning.jsonl, Phase 1's export)")
    p.add_argument("--eval-data", help="validation ChatML JSONL (default the data file's validation_* sibling)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN",
                   help="continue RUN (default the latest run) from its last complete checkpoint")
    p.add_argument("--dry-run", action="store_true", help="build the model on the meta device and print "
                   "parameters, trainable share, memory and disk estimates, tokens and steps per epoch")
    p.add_argument("--run", help="run name (default PRESET-DATE-TIME); the run folder is HOME/models/RUN")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, dotted for nested fields: max_steps=3 lora.r=8")
    p.set_defaults(func=cmd_train)

    export_p = sub.add_parser("export", help="export artifacts (a trained model)", parents=[home_parent])
    esub = export_p.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    p = esub.add_parser("model", help="write a run's adapter, or with --merge the base model with the adapter "
                        "merged in (safetensors; transformers and vLLM load it)", parents=[home_parent])
    p.add_argument("--run", required=True, help="the trained run")
    p.add_argument("--merge", action="store_true", help="merge the adapter into the base model's weights")
    p.add_argument("--out", help="output folder (default HOME/models/exports/RUN-adapter or RUN-merged); "
                   "written to a temp folder and renamed")
    p.add_argument("--dtype", help="precision of the merged weights: fp32, bf16 or fp16 (default fp32 on CPU)")
    p.set_defaults(func=cmd_export_model)

    # Phase 1: generate, review, export reasoning, score
    p = sub.add_parser("generate", help="generate reasoning chains (test gate, auto-retry, resumable; rerun to "
                       "continue)", parents=[home_parent])
    p.add_argument("--config", help="YAML preset (default configs/generate_smollm2_cpu.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config fields (see the preset)")
    p.add_argument("--limit", type=int, help="only N examples of the split (the first N; with select=balanced "
                   "balanced across tasks and label values)")
    p.add_argument("--split", help="train, validation or test (default from the config: train)")
    p.add_argument("--test", action="store_true", help="generate one example, show it and its score, record the gate")
    p.add_argument("--override", action="store_true", help="launch without a passing test (recorded)")
    p.add_argument("--reason", help="why the gate is overridden (stored with the override)")
    p.add_argument("--dry-run", action="store_true", help="print how many examples are left and how long they "
                   "would take (from the speed measured on this machine), and exit")
    p.set_defaults(func=cmd_generate)

    review_p = sub.add_parser("review", help="list, show, approve, reject and edit reasoning chains",
                              parents=[home_parent])
    rsub = review_p.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

    def review_filters(p, default_status=None) -> None:
        p.add_argument("--dataset", help="dataset (default: the working dataset)")
        p.add_argument("--status", default=default_status, choices=["passed", "flagged", "approved", "rejected"],
                       help=f"chain status (default {default_status or 'any'})")
        p.add_argument("--task", help="task, e.g. csat")
        p.add_argument("--min-score", type=float)
        p.add_argument("--max-score", type=float)
        p.add_argument("--search", help="text in the example id or the chain")
        p.add_argument("--reason", choices=["contradiction", "invented", "judge", "form"],
                       help="why the chain falls short: contradiction (a statement contradicts the labels), "
                            "invented (a specific the transcript does not support), judge (the judge model rated it "
                            "unfaithful), form (structure or content below the threshold)")

    p = rsub.add_parser("list", help="chains matching the filters, lowest score first", parents=[home_parent])
    review_filters(p, "flagged")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_review_list)
    p = rsub.add_parser("show", help="a chain beside its transcript, with each criterion's reason",
                        parents=[home_parent])
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_review_show)
    for name, func in (("approve", cmd_review_approve), ("reject", cmd_review_reject)):
        p = rsub.add_parser(name, help=f"{name} chains by id, or every chain matching the filters with --all",
                            parents=[home_parent])
        p.add_argument("ids", nargs="*", type=int)
        p.add_argument("--all", action="store_true", help="every chain matching the filters")
        p.add_argument("--reviewer", metavar="NAME", default=_os_user(),
                       help="who decides, stored with each decision (required; default: your OS user name)")
        review_filters(p, "flagged")
        p.set_defaults(func=func)
    p = rsub.add_parser("edit", help="replace a chain's text from a file (- for stdin) and re-score it; "
                        "approved when it passes, else still flagged with its new score",
                        parents=[home_parent])
    p.add_argument("id", type=int)
    p.add_argument("--file", required=True)
    p.add_argument("--reviewer", metavar="NAME", default=_os_user(),
                   help="who edits, stored with the edit (required; default: your OS user name)")
    p.set_defaults(func=cmd_review_edit)

    # `ccr export` is created above (Phase 2's `export model`); Phase 1 adds `export reasoning`
    p = esub.add_parser("reasoning", help="write train_reasoning.jsonl and validation_reasoning.jsonl (passed and "
                        "approved chains)", parents=[home_parent])
    p.add_argument("--out", help="train file (default HOME/train_reasoning.jsonl; validation goes beside it)")
    p.add_argument("--include-flagged", action="store_true", help="also chains still flagged for review")
    p.add_argument("--dataset", help="dataset (default: the working dataset)")
    p.add_argument("--balanced", action="store_true",
                   help="balance the lines across tasks and, within a task, across label values (CSAT 1-5, QA "
                   "bands, churn, sentiment, root cause, coaching none/one/several); without --limit every task "
                   "keeps the smallest task's count; the lines left out are counted")
    p.add_argument("--limit", type=int, help="at most N lines per file: the first N by example id, or with "
                   "--balanced the first N of the balanced round-robin")
    p.add_argument("--seed", type=int, default=0, help="seed of the balanced selection (default 0)")
    p.set_defaults(func=cmd_export_reasoning)

    p = sub.add_parser("score", help="score the assistant turn of every line of a ChatML JSONL file",
                       parents=[home_parent])
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="one JSON object per line: line, score, criteria")
    p.set_defaults(func=cmd_score)
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
    except Exception as exc:
        # The input's or the machine's fault (a config, a path, a model, a file) that a command did
        # not catch itself: one line and exit status 2. Anything else is a bug: its traceback.
        if not jobs.expected_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
