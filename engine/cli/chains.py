"""``ccr generate``, ``review``, ``export reasoning`` and ``score`` (Phase 1): parse, call
``engine.api``, print."""

from __future__ import annotations

import json
import os
import sys
import time

from engine import api
from engine.cli.output import check_model, job_exit, print_breakdown, print_estimate, print_table


def _generate_test(cfg) -> dict | None:
    job = api.run_generate(cfg, test=True)
    if job["status"] != "succeeded":
        job_exit(job)
        return None
    r = job["result"]
    print(f"--- chain for {r['ex_id']} ({r['task']}) ---")
    print(r["text"])
    print("---")
    print_breakdown(r["criteria"])
    print(f"test score {r['score']:.1f} (gate {r['gate_threshold']:g}): "
          + ("passed" if r["passed"] else "below the gate" + ("" if r["sections_ok"] else "; sections incomplete")))
    return r


def cmd_generate(args) -> int:
    from engine.core.config import ConfigError

    overrides = list(args.overrides)
    if args.limit is not None:
        overrides.append(f"limit={args.limit}")
    if args.split:
        overrides.append(f"split={args.split}")
    try:
        cfg = api.generate_setup(args.config, overrides)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run or not (args.test or cfg.test):
        est = api.estimate("generate", config=cfg)
        if not print_estimate(est):
            return 2
        if args.dry_run:
            return 0
    if cfg.backend == "local" and not check_model(cfg.teacher):
        return 2
    if args.test or cfg.test:
        r = _generate_test(cfg)
        return 0 if r and r["passed"] else 1
    gate = api.generate_gate(cfg)
    if not gate["ok"]:
        if args.override:
            api.record_generate_override(cfg, args.reason or "ccr generate --override")
            print(f"gate overridden for {gate['teacher']} / prompt {gate['prompt_version']} (recorded)")
        else:
            print(f"no test for {gate['teacher']} / prompt {gate['prompt_version']} has scored >= "
                  f"{cfg.gate_threshold:g} yet: testing on one example first")
            r = _generate_test(cfg)
            if r is None:
                return 1
            if not r["passed"]:
                print(f"error: the test scored {r['score']:.1f} < {cfg.gate_threshold:g}; change the configuration, "
                      "or run again with --override (recorded) to generate anyway", file=sys.stderr)
                return 1
    job = api.run_generate(cfg)
    if job["status"] != "succeeded":
        return job_exit(job)
    print(job["result"]["summary"])
    return 0


def _review_filters(args) -> dict:
    return {"status": args.status or None, "task": args.task, "min_score": args.min_score,
            "max_score": args.max_score, "search": args.search, "reason": args.reason}


def cmd_review_list(args) -> int:
    rows, total = api.chains(args.dataset, limit=args.limit, **_review_filters(args))
    for r in rows:
        r["score"] = f"{r['score']:.1f}"
        r["updated"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["updated_at"]))
        r["reasons"] = ",".join(r["reasons"]) or "-"
    print_table(rows, ["id", "ex_id", "split", "task", "status", "score", "reasons", "attempts", "teacher",
                        "updated"])
    print(f"{len(rows)} of {total} chains")
    return 0


def cmd_review_show(args) -> int:
    c = api.chain(args.id)
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
    print_breakdown(c["criteria"])
    for rv in c["reviews"]:
        print(f"review: {rv['decision']} by {rv['reviewer'] or '-'} at "
              f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(rv['created_at']))}")
    return 0


def os_user() -> str | None:
    """The OS user name (``--reviewer``'s default), or None where there is none (a container
    without a passwd entry)."""
    import getpass

    try:
        return getpass.getuser() or None
    except (OSError, KeyError):
        return None


def _reviewer(args) -> str | None:
    """``--reviewer`` checked (required, one line); prints why and returns None when refused."""
    try:
        return api.check_reviewer(args.reviewer)
    except ValueError as exc:
        print(f"error: {exc}; give --reviewer NAME (the default, your OS user name, is not available here)"
              if not (args.reviewer or "").strip() else f"error: --reviewer: {exc}", file=sys.stderr)
        return None


def _cmd_review_decide(args, decision: str) -> int:
    args.reviewer = _reviewer(args)
    if args.reviewer is None:
        return 2
    if args.ids:
        n = api.review_chains(args.ids, decision, args.reviewer)
    elif args.all:
        n = api.bulk_review(decision, args.reviewer, args.dataset, **_review_filters(args))
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
    args.reviewer = _reviewer(args)
    if args.reviewer is None:
        return 2
    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    except OSError as exc:
        print(f"error: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        r = api.edit_chain(args.id, text, args.reviewer)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_breakdown(r["criteria"])
    print(f"chain {args.id}: score {r['score_before']:.1f} -> {r['score']:.1f}, now {r['status']}")
    return 0


def cmd_export_reasoning(args) -> int:
    from engine.chains.chain_job import format_balance

    try:
        r = api.export_reasoning(args.include_flagged, balanced=args.balanced, limit=args.limit, out=args.out,
                                 dataset=args.dataset, seed=args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split in ("train", "validation"):
        s = r[split]
        print(f"wrote {s['lines']} {split} lines to {s['path']} ("
              + ", ".join(f"{k} {v}" for k, v in s["by_status"].items())
              + (f"; {s['left_out']} usable chains left out to balance or limit" if s["left_out"] else "") + ")")
        if args.balanced and s["lines"]:
            print(f"  by task and label value: {format_balance(s['by_label'])}")
    return 0


def cmd_score(args) -> int:
    if not os.path.isfile(args.file):
        what = "is a directory" if os.path.isdir(args.file) else (
            "not a regular file" if os.path.exists(args.file) else "no such file")
        print(f"error: {args.file}: {what}", file=sys.stderr)
        return 2
    results = []
    try:
        for r in api.score_lines(args.file):
            if "error" in r:
                print(f"{args.file}:{r['line']}: {r['error']}", file=sys.stderr)
            elif args.json:
                print(json.dumps({"line": r["line"], "score": r["score"], "criteria": r["criteria"]},
                                 ensure_ascii=False))
            results.append(r)
    except OSError as exc:  # unreadable (permissions, a disk error): the lines so far are printed
        print(f"error: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    scored = api.score_summary(results)
    s = scored["summary"]
    if not args.json:
        print(f"scored {s['count']} chains ({s['errors']} unreadable lines): average {s['average']:.1f}, "
              f"{100 * s['share_ge_70']:.1f}% >= {scored['threshold']}, "
              f"{100 * s['share_all_sections']:.1f}% with all sections; "
              f"{100 * s['share_faithful']:.1f}% faithful ({100 * s['share_contradiction']:.1f}% with a "
              f"contradiction, {100 * s['share_invented']:.1f}% with an unsupported specific)")
        print_table([{"criterion": k, "average points": f"{v:g}/{scored['weights'].get(k, 0):g}"}
                      for k, v in s["criteria"].items()], ["criterion", "average points"])
    return 0 if s["errors"] == 0 else 1
