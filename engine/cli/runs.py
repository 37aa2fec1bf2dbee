"""``ccr eval``, ``infer``, ``demo``, ``serve`` (Phase 3), ``ccr train`` and ``export model`` (Phase 2):
parse, call ``engine.api``, print. Each runs its job in this process."""

from __future__ import annotations

import os
import sys
import time

from engine import api
from engine.cli.output import check_model, input_error_exit, job_exit, print_estimate, print_eval_table


def _model_arg(args) -> str:
    from engine.core.model_catalog import DEFAULT_MODEL

    return f"run:{args.run}" if getattr(args, "run", None) else (args.model or DEFAULT_MODEL)


def cmd_eval(args) -> int:
    from engine.evaluation.evaluate import EvalDataError

    model = _model_arg(args)
    if args.data and not os.path.isfile(args.data):
        print(f"error: {args.data}: no such file", file=sys.stderr)
        return 2
    if not all(check_model(m) for m in [model] + ([args.base] if args.base else [])):
        return 2
    try:  # unusable data is exit status 2, before any job is created
        est = api.eval_plan([model] + ([args.base] if args.base else []), args.data, args.dataset, args.split,
                            args.limit, args.max_new_tokens, args.batch_size)
    except EvalDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"estimate: {est['text']}", flush=True)
    if args.dry_run:
        return 0
    config = {"model": model, "base": args.base, "data": os.path.abspath(args.data) if args.data else None,
              "dataset": args.dataset, "split": args.split, "limit": args.limit,
              "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
              "report": os.path.abspath(args.report) if args.report else None, "device": args.device,
              "dtype": args.dtype}
    job = api.run_eval(config)
    if job["status"] != "succeeded":
        return input_error_exit(job, "EvalDataError") or job_exit(job)
    r = job["result"]
    print_eval_table(r)
    print(f"{r['n_examples']} examples; report: {r['report']} and {r['html']}")
    return 0


def cmd_infer(args) -> int:
    model = _model_arg(args)
    if not os.path.isfile(args.input):
        print(f"error: {args.input}: no such file", file=sys.stderr)
        return 2
    if not check_model(model):
        return 2
    with open(args.input, "rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    est = api.estimate("infer", model=model, lines=lines, max_new_tokens=args.max_new_tokens,
                       batch_size=args.batch_size)
    if not print_estimate(est):
        return 2
    if args.dry_run:
        return 0
    config = {"model": model, "input": os.path.abspath(args.input), "output": os.path.abspath(args.output),
              "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
              "temperature": args.temperature, "top_p": args.top_p, "seed": args.seed, "device": args.device,
              "dtype": args.dtype, "progress_bar": not args.no_progress}
    job = api.run_infer(config)
    if job["status"] != "succeeded":
        return input_error_exit(job, "InferInputError") or job_exit(job)
    r = job["result"]
    print(f"{r['generated']} lines generated ({r['skipped_already_done']} already done, {r['errors']} unusable) "
          f"in {r['seconds']} s -> {r['output']}", file=sys.stderr)
    return 0 if r["errors"] == 0 else 1


def cmd_demo(args) -> int:
    from engine.demo import DemoError, format_summary

    if not check_model("smollm2-135m-instruct"):
        return 2
    est = api.estimate("demo", seed=args.seed, train_limit=args.train_limit, validation_limit=args.validation_limit,
                       eval_limit=args.eval_limit, max_new_tokens=args.max_new_tokens,
                       train_overrides=args.train_override or [], generate_overrides=args.generate_override or [])
    if not print_estimate(est):
        return 2
    if args.dry_run:
        return 0
    t0 = time.time()
    try:
        summary = api.run_demo(seed=args.seed, train_limit=args.train_limit,
                               validation_limit=args.validation_limit, eval_limit=args.eval_limit,
                               max_new_tokens=args.max_new_tokens, train_overrides=args.train_override or [],
                               generate_overrides=args.generate_override or [],
                               run=args.run, report=os.path.abspath(args.report) if args.report else None)
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    print(f"the whole loop took {(time.time() - t0) / 60:.1f} min")
    return 0


def cmd_serve(args) -> int:
    from engine.serving.serve import ServeError

    model = _model_arg(args)
    try:
        api.check_bind(args.host, args.api_key)
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not check_model(model):
        return 2
    config = {"model": model, "host": args.host, "port": args.port, "api_key": args.api_key,
              "max_queue": args.max_queue, "max_batch": args.max_batch, "max_body_bytes": args.max_body_bytes,
              "max_tokens_limit": args.max_tokens_limit, "default_max_tokens": args.default_max_tokens,
              "allowed_hosts": args.allowed_host or [], "idle_shutdown_s": args.idle_shutdown,
              "device": args.device, "dtype": args.dtype}
    job = api.run_server(config)
    if job["status"] != "succeeded":
        return input_error_exit(job, "ServeError") or job_exit(job)
    r = job["result"] or {}
    print(f"server stopped ({r.get('ended')}): {r.get('served', 0)} requests served, {r.get('rejected', 0)} "
          f"answered 429", file=sys.stderr)
    return 0


def cmd_train(args) -> int:
    from engine.core.config import ConfigError
    from engine.core.model_catalog import ModelNotAvailable, PathNotAllowed
    from engine.training.dryrun import format_estimate
    from engine.training.runs import DataError, RunError

    resume, overrides = args.resume, list(args.overrides)
    if isinstance(resume, str) and "=" in resume:  # `--resume max_steps=9`: an override, not a run name
        overrides.insert(0, resume)
        resume = True
    try:
        if args.dry_run:
            dry = api.train_dry_run(args.config, overrides, args.data, args.run, resume)
            print(format_estimate(dry["estimate"], dry["title"]))
            if dry["time"]:
                print(f"time         {dry['time']['text']}")
            return 0
        launch = api.prepare_train(args.config, overrides, data=args.data, eval_data=args.eval_data, run=args.run,
                                   resume=resume)
    except (ConfigError, DataError, RunError, ModelNotAvailable, PathNotAllowed, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verb = "resuming" if launch["resume"] else "starting"
    print(f"{verb} run {launch['run']} -> {api.run_folder(launch['run'])} (Ctrl-C stops after saving a "
          f"checkpoint; `ccr train --resume {launch['run']}` continues)", flush=True)
    job = api.run_training(launch)
    if job["status"] != "succeeded":
        if job["status"] in ("paused", "cancelled", "interrupted"):
            print(f"run {launch['run']} {job['status']}; resume with: ccr train --resume {launch['run']}",
                  file=sys.stderr)
        return job_exit(job)
    r = job["result"]
    losses = ", ".join(f"{k} {r[k]:.4f}" for k in ("train_loss", "eval_loss") if r.get(k) is not None)
    print(f"run {r['run']} finished at step {r['step']}" + (f": {losses}" if losses else "") +
          f"; adapter in {r['dir']} (use it as --model run:{r['run']})")
    return 0


def cmd_export_model(args) -> int:
    from engine.core.model_catalog import ModelNotAvailable
    from engine.training.runs import RunError

    try:
        r = api.export_model(args.run, merge=args.merge, out=args.out, dtype=args.dtype)
    except (RunError, ModelNotAvailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    what = "merged model" if r["merged"] else "adapter"
    print(f"wrote the {what} of run {r['run']} to {r['out']} ({r['bytes'] / 2**20:.1f} MiB: {', '.join(r['files'])})")
    return 0
