"""How ``ccr`` prints: tables, a finished job's exit status and error line, job times, an
evaluation's figures, a chain's score breakdown, and why a model cannot be used here."""

from __future__ import annotations

import sys

from engine import api


def print_table(rows: list[dict], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns))


def _expected_message(error: str | None) -> str | None:
    """The message of a job error ("ClassName: message") that is the input's or the machine's
    fault (api.EXPECTED_ERRORS, OSError and its kind), else None (a bug: keep the class name)."""
    import builtins

    name, sep, message = (error or "").partition(": ")
    builtin = getattr(builtins, name, None)
    if sep and (name in api.EXPECTED_ERRORS or isinstance(builtin, type) and issubclass(builtin, OSError)):
        return message
    return None


def print_estimate(est: dict) -> bool:
    """An estimate on stdout (stderr is for errors, as in every command); after an error line, False."""
    if "error" in est:
        print(f"error: {est['error']}", file=sys.stderr)
        return False
    print(f"estimate: {est['text']}", flush=True)
    return True


def input_error_exit(job: dict, error_class: str) -> int | None:
    """A job that stopped on the user's input (``error_class``, e.g. EvalDataError): its message and
    exit status 2, as a check before the job would have given; None for any other job."""
    if job["status"] != "succeeded" and job.get("error") and error_class in job["error"]:
        print(f"error: {job['error'].split(': ', 1)[1]}", file=sys.stderr)
        return 2
    return None


def job_exit(job: dict) -> int:
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


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def job_times(row: dict, now: float) -> dict:
    """Elapsed, rate and ETA as of now (the same rule as the pages' ui.job_times): elapsed from the
    job's start, the ETA it last wrote counted down from when it wrote it."""
    stats = row.get("stats") or {}
    active = row["status"] in ("running", "pausing")
    start = row.get("started_at")
    elapsed = (now if active else (row.get("finished_at") or now)) - start if start else None
    eta = None
    if active and stats.get("eta_s") is not None:
        eta = max(0.0, stats["eta_s"] - max(0.0, now - (stats.get("at") or now)))
    rate = stats.get("rate") if stats.get("rate") is not None else stats.get("steps_per_s")
    return {"elapsed": _duration(elapsed), "eta": _duration(eta), "rate": f"{rate:.3g}/s" if rate else ""}


def print_eval_table(r: dict) -> None:
    """Each figure as ``value [95% interval], n``; with a base, the delta, its paired test's p and verdict."""
    names = list(r["headline"])
    intervals = r.get("intervals") or {}
    comp = r.get("comparison")
    rows = []
    for key in dict.fromkeys(k for h in r["headline"].values() for k in h):
        row = {"metric": key, **{n: api.format_figure((intervals.get(n) or {}).get(key), r["headline"][n].get(key))
                                 for n in names}}
        if comp:
            d = comp["deltas"].get(key)
            if d:
                row["delta"] = f"{d['delta']:+.4g}"
                row["p"] = api.format_p(d)
                row["paired test at 95%"] = d.get("verdict", "")
        rows.append(row)
    print_table(rows, ["metric"] + names + (["delta", "p", "paired test at 95%"] if comp else []))
    print("value [95% interval], n: Wilson for rates, bootstrap for MAE/means/F1; deltas: exact McNemar or "
          "paired bootstrap (docs/evaluation.md)")
    for name, f in (r.get("faithfulness") or {}).items():
        if f and f.get("n"):
            print(f"faithfulness of {name}: {f['judged']} of {f['n']} answers judged (with reasoning to check; "
                  f"faithful_rate is over these), {f['with_contradiction']} with a contradiction, "
                  f"{f['invented']} unsupported specifics in all")
    const = r.get("constant_answer")
    if const and const.get("n"):
        print(const["description"])
        for m in const["models"]:
            print(f"  {m['summary']}")
    if r.get("small_sample_warning"):
        print(f"warning: {r['small_sample_warning']}")


def print_breakdown(criteria: dict) -> None:
    rows = [{"criterion": k, "points": f"{c['points']:g}/{c['max']:g}", "reason": c["reason"]}
            for k, c in criteria.items()]
    print_table(rows, ["criterion", "points", "reason"])
    faults = api.at_fault(criteria)
    if faults:
        print("sentences at fault:")
        for f in faults:
            print(f"  [{f['kind']}] >>{f['sentence']}<<  {f['reason']}")


def check_model(name: str) -> bool:
    ok, why = api.model_availability(name)
    if not ok:
        print(f"error: model {name}: {why}", file=sys.stderr)
    return ok
