"""How long a job will take, before it is launched: from the speed this machine measured.

The rule: look up the last succeeded jobs of the same kind and the same model (and, where it
matters, the same settings) and use the speed they reached; the estimate names its basis
("about 3 h 10 min: 300 examples at 0.026 ex/s measured on job #4"). With no such job there is a
documented per-kind default for the embedded SmolLM2-135M on CPU (``DEFAULTS``, from
docs/benchmarks.md), labelled "no measurement yet: rough default"; for any other model nothing
is known and the estimate says so (``seconds`` None), which the pages treat as long.

Everything here is a pure function of its arguments but ``measured``, the one query over
finished jobs. Nothing heavy is imported: the pages call it through ``engine.api.estimate``.
"""

from __future__ import annotations

import json
import math

# A job whose estimate is longer than this asks for a confirmation on the pages (or is unknown).
LONG_S = 30 * 60

EMBEDDED = "smollm2-135m-instruct"
# Rough defaults for the embedded model on two idle cores of an AVX2-only CPU, the slower kind
# here (the `ccr demo` of 2026-12-06 in docs/benchmarks.md, "A demo under an hour"):
# - generate: guided, batch 8: the gate test and 42 chains in 6.1 min, 0.115 examples/s; free
#   mode about 5x slower;
# - train: 118 real tokens a wall second without gradient checkpointing (27 steps of 4 examples
#   of ~923 tokens at max_length 1280, the eval-loss passes included); checkpointing costs 20-35%
#   of that (bench/training.py);
# - eval / infer: seconds per token of budget per example, by batch size, for a batch that runs
#   to its budget (the base model does on 7 of 12 answers): 60 base answers in one batch of 60 at
#   768 tokens took 5.6 min (0.0073); a row-step of a batch of 16 costs ~1.5x one of 60
#   (bench/evaluation.py), and one answer alone runs at ~30 tokens/s.
DEFAULTS = {
    "generate": {"guided": 0.1, "free": 0.02},                 # examples per second
    "train": {"plain": 115.0, "checkpointed": 80.0},            # real tokens per second
    "eval": {1: 0.035, 8: 0.02, 16: 0.015, 60: 0.0075},         # batch size -> s per budget token per example
}


def eval_seconds_per_token(batch_size: int) -> float:
    """The default cost of one token of budget for one example at ``batch_size`` (the nearest
    measured batch size at or below it).

    >>> eval_seconds_per_token(1), eval_seconds_per_token(12), eval_seconds_per_token(100)
    (0.035, 0.02, 0.0075)
    """
    return DEFAULTS["eval"][max(k for k in DEFAULTS["eval"] if k <= max(1, int(batch_size)))]
DEFAULT_LABEL = "(no measurement yet: rough default for the embedded model on CPU, from docs/benchmarks.md)"
# Tokens a demo-sized chat takes in training (prompt 320-520 + guided chain 540-700, docs/benchmarks.md).
DEMO_TOKENS_PER_EXAMPLE = 1000


def format_duration(seconds: float | None) -> str:
    """'about 3 h 10 min', 'about 12 min', 'about 40 s'; 'unknown' for None.

    >>> format_duration(3 * 3600 + 600), format_duration(725), format_duration(41), format_duration(None)
    ('about 3 h 10 min', 'about 12 min', 'about 41 s', 'unknown')
    >>> format_duration(3 * 86400 + 7200)
    'about 3 d 2 h'
    """
    if seconds is None:
        return "unknown"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"about {s} s"
    if s < 3600:
        return f"about {round(s / 60)} min"
    if s < 86400:
        h, m = divmod(round(s / 60), 60)
        return f"about {h} h" + (f" {m} min" if m else "")
    d, h = divmod(round(s / 3600), 24)
    return f"about {d} d" + (f" {h} h" if h else "")


def _rate_text(rate: float, unit: str) -> str:
    short = {"examples": "ex/s", "lines": "lines/s", "tokens": "tokens/s"}.get(unit, f"{unit}/s")
    return f"{rate:.3g} {short}"


def result(kind: str, units: float, unit: str, rate: float | None, basis: str, *, job_id: int | None = None,
           measured: bool = False, note: str = "") -> dict:
    """An estimate: ``units`` of work at ``rate`` units a second, and the sentence that says so.

    >>> r = result("generate", 300, "examples", 0.026, "measured on job #4", job_id=4, measured=True)
    >>> r["text"], r["long"]
    ('about 3 h 12 min: 300 examples at 0.026 ex/s measured on job #4', True)
    >>> result("train", 4000, "tokens", 40.0, "measured on job #2", note="2 steps of 4 examples")["text"]
    'about 2 min: 4,000 tokens (2 steps of 4 examples) at 40 tokens/s measured on job #2'

    >>> result("train", 10, "tokens", None, "no measurement yet and no default for this model")["long"]
    True
    """
    seconds = units / rate if rate else None
    if units <= 0:
        seconds = 0.0
    what = f"{units:,.0f} {unit[:-1] if units == 1 and unit.endswith('s') else unit}"
    if note:
        what += f" ({note})"
    if seconds is None:
        text = f"duration unknown: {what}; {basis}"
    elif units <= 0:
        text = f"nothing left to do: 0 {unit}"
    else:
        text = f"{format_duration(seconds)}: {what} at {_rate_text(rate, unit)} {basis}"
    return {"kind": kind, "seconds": None if seconds is None else round(seconds, 1), "units": units, "unit": unit,
            "rate": rate, "measured": measured, "job_id": job_id, "basis": basis, "text": text,
            "long": seconds is None or seconds > LONG_S}


def combine(kind: str, parts: list[dict]) -> dict:
    """The sum of several estimates (the demo's stages); unknown if any part is."""
    known = all(p["seconds"] is not None for p in parts)
    seconds = sum(p["seconds"] for p in parts) if known else None
    text = (format_duration(seconds) if known else "duration unknown") + ": " + "; ".join(
        f"{p['kind']} {p['text']}" for p in parts)
    return {"kind": kind, "seconds": seconds, "parts": parts, "text": text, "measured": all(p["measured"] for p in parts),
            "long": seconds is None or seconds > LONG_S}


# ---------------------------------------------------------------------------------------------
# The one query: finished jobs' speeds
# ---------------------------------------------------------------------------------------------


def finished_jobs(db, kind: str, limit: int = 50) -> list[dict]:
    """The last succeeded jobs of ``kind``, newest first, with config, result and stats decoded."""
    rows = db.execute("SELECT id, config, result, stats, started_at, finished_at FROM jobs WHERE kind = ? AND "
                      "status = 'succeeded' ORDER BY finished_at DESC, id DESC LIMIT ?", [kind, limit]).fetchall()
    out = []
    for job_id, config, res, stats, started, finished in rows:
        out.append({"id": job_id, "config": json.loads(config or "{}"), "result": json.loads(res or "null") or {},
                    "stats": json.loads(stats or "{}"), "started_at": started, "finished_at": finished})
    return out


def measured(db, kind: str, same_model, same_settings=None) -> tuple[dict | None, float | None]:
    """(job, rate) of the newest succeeded job of ``kind`` whose model matches (``same_model(job)``)
    and, preferably, whose settings match too (``same_settings(job)``); the rate is what
    ``RATE[kind](job)`` reads from it (None when it measured nothing)."""
    fallback = None
    for job in finished_jobs(db, kind):
        rate = RATE[kind](job)
        if not rate or not same_model(job):
            continue
        if same_settings is None or same_settings(job):
            return job, rate
        fallback = fallback or (job, rate)
    return fallback or (None, None)


def _generate_rate(job: dict) -> float | None:
    r = job["result"]
    if job["config"].get("test") or not r.get("new_chains"):
        return None
    return r.get("examples_per_s")


def _train_rate(job: dict) -> float | None:
    """Real (non-padding) tokens per wall second of the whole run, loading and evaluation included."""
    r = job["result"]
    if r.get("stopped") or not r.get("tokens_seen") or not r.get("seconds"):
        return None
    return r["tokens_seen"] / r["seconds"]


def _infer_rate(job: dict) -> float | None:
    r = job["result"]
    return r["generated"] / r["seconds"] if r.get("generated") and r.get("seconds") else None


RATE = {"generate": _generate_rate, "train": _train_rate, "infer": _infer_rate}


# ---------------------------------------------------------------------------------------------
# Per kind
# ---------------------------------------------------------------------------------------------


def generate(db, config: dict, pending: int) -> dict:
    """``pending`` examples to generate with ``config`` (a GenerateConfig dict)."""
    def same_model(job):
        c = job["config"]
        return (c.get("backend"), c.get("teacher"), bool(c.get("guided", True))) == (
            config.get("backend"), config.get("teacher"), bool(config.get("guided", True)))

    def same_settings(job):
        c = job["config"]
        return all(c.get(k) == config.get(k) for k in ("batch_size", "part_tokens", "attempts", "threshold", "device"))

    job, rate = measured(db, "generate", same_model, same_settings)
    if job:
        note = "" if same_settings(job) else f"that job had batch {job['config'].get('batch_size')}, other settings"
        return result("generate", pending, "examples", rate, f"measured on job #{job['id']}", job_id=job["id"],
                      measured=True, note=note)
    if config.get("backend", "local") == "local" and config.get("teacher") == EMBEDDED:
        mode = "guided" if config.get("guided", True) else "free"
        return result("generate", pending, "examples", DEFAULTS["generate"][mode], DEFAULT_LABEL)
    return result("generate", pending, "examples", None,
                  f"no measurement yet for {config.get('teacher')} ({config.get('backend')}): a short run "
                  "(limit 2) measures it")


def train(db, config: dict, total_steps: int, mean_length: float) -> dict:
    """A run of ``total_steps`` optimizer steps over examples of ``mean_length`` tokens (the dry run's
    figures) with ``config`` (a TrainConfig dict)."""
    per_step = int(config.get("batch_size", 1)) * int(config.get("gradient_accumulation_steps", 1))
    tokens = total_steps * per_step * mean_length

    def same_model(job):
        c = job["config"].get("config") or {}
        return (c.get("base_model"), c.get("device"), c.get("precision")) == (
            config.get("base_model"), config.get("device"), config.get("precision"))

    def same_settings(job):
        c = job["config"].get("config") or {}
        return all(c.get(k) == config.get(k) for k in ("batch_size", "gradient_checkpointing", "max_length"))

    job, rate = measured(db, "train", same_model, same_settings)
    steps = f"{total_steps:,} steps of {per_step} examples"
    if job:
        return result("train", tokens, "tokens", rate, f"measured on job #{job['id']}", job_id=job["id"],
                      measured=True, note=steps)
    if config.get("base_model") == EMBEDDED and config.get("device") in ("cpu", "auto"):
        rate = DEFAULTS["train"]["checkpointed" if config.get("gradient_checkpointing") else "plain"]
        return result("train", tokens, "tokens", rate, DEFAULT_LABEL, note=steps)
    return result("train", tokens, "tokens", None, f"no measurement yet for {config.get('base_model')} on "
                  f"{config.get('device')}: a short run (max_steps=2) measures it", note=steps)


def _eval_measured(db, model: str, max_new_tokens: int, batch_size: int) -> tuple[int | None, float | None, str]:
    """(evaluation id, seconds per example, note) from the stored predictions' generation times."""
    rows = db.execute(
        "SELECT e.id, e.job_id, e.config, COUNT(p.id), SUM(p.seconds) FROM evaluations e JOIN eval_predictions p "
        "ON p.evaluation_id = e.id WHERE e.model = ? AND p.seconds IS NOT NULL GROUP BY e.id ORDER BY e.id DESC "
        "LIMIT 50", [model]).fetchall()
    best = None
    for eval_id, job_id, config, n, seconds in rows:
        if not n or not seconds:
            continue
        c = json.loads(config or "{}")
        per = seconds / n
        if c.get("max_new_tokens") == max_new_tokens and c.get("batch_size") == batch_size:
            return eval_id, per, ""
        if best is None and c.get("max_new_tokens"):
            scaled = per * max_new_tokens / c["max_new_tokens"]
            best = (eval_id, scaled, f"scaled from its {c['max_new_tokens']}-token budget")
    return best or (None, None, "")


def _embedded_based(name: str, home=None) -> bool:
    if name == EMBEDDED:
        return True
    if name.startswith("run:"):
        try:
            from engine.core.model_catalog import resolve_model

            return resolve_model(name, home).base == EMBEDDED
        except Exception:  # a run folder that is gone or unreadable: no default
            return False
    return False


def evaluate(db, models: list[str], n_examples: int, max_new_tokens: int, batch_size: int, home=None) -> dict:
    """``n_examples`` answered by each of ``models`` (the tuned model and its base)."""
    parts = []
    for model in models:
        eval_id, per, note = _eval_measured(db, model, max_new_tokens, batch_size)
        if eval_id:
            job = db.execute("SELECT job_id FROM evaluations WHERE id = ?", [eval_id]).fetchone()
            where = f"evaluation #{eval_id}" + (f" (job #{job[0]})" if job and job[0] else "")
            r = result("eval", n_examples, "examples", 1 / per, f"measured on {where}", job_id=job[0] if job else None,
                       measured=True, note=note)
        elif _embedded_based(model, home):
            r = result("eval", n_examples, "examples", 1 / (eval_seconds_per_token(batch_size) * max_new_tokens),
                       DEFAULT_LABEL)
        else:
            r = result("eval", n_examples, "examples", None, f"no measurement yet for {model}")
        r["model"] = model
        parts.append(r)
    if len(parts) == 1:
        return parts[0]
    out = combine("eval", parts)
    out["text"] = (format_duration(out["seconds"]) if out["seconds"] is not None else "duration unknown") + ": " + \
        "; ".join(f"{p['model']}: {p['text']}" for p in parts)
    return out


def infer(db, model: str, n_lines: int, max_new_tokens: int, batch_size: int, home=None) -> dict:
    def same_model(job):
        return job["config"].get("model") == model

    def same_settings(job):
        c = job["config"]
        return c.get("max_new_tokens") == max_new_tokens and c.get("batch_size") == batch_size

    job, rate = measured(db, "infer", same_model, same_settings)
    if job:
        note = "" if same_settings(job) else f"that job: batch {job['config'].get('batch_size')}, " \
            f"{job['config'].get('max_new_tokens')} tokens"
        return result("infer", n_lines, "lines", rate, f"measured on job #{job['id']}", job_id=job["id"], measured=True,
                      note=note)
    eval_id, per, note = _eval_measured(db, model, max_new_tokens, batch_size)
    if eval_id:  # an evaluation of the same model generated the same way
        return result("infer", n_lines, "lines", 1 / per, f"measured on evaluation #{eval_id}", measured=True, note=note)
    if _embedded_based(model, home):
        return result("infer", n_lines, "lines", 1 / (eval_seconds_per_token(batch_size) * max_new_tokens),
                      DEFAULT_LABEL)
    return result("infer", n_lines, "lines", None, f"no measurement yet for {model}")


def demo(db, generate_config: dict, train_config: dict, n_generate: int, n_train_examples: int, epochs: float,
         n_eval: int, max_new_tokens: int, eval_batch_size: int, home=None) -> dict:
    """The demo's three model stages: chains for ``n_generate`` examples, training on
    ``n_train_examples`` chains for ``epochs``, and base vs tuned on ``n_eval`` test examples."""
    per_step = int(train_config.get("batch_size", 1)) * int(train_config.get("gradient_accumulation_steps", 1))
    steps = train_config.get("max_steps") or -1
    if steps <= 0:
        steps = math.ceil(math.ceil(n_train_examples / per_step) * epochs)
    parts = [generate(db, generate_config, n_generate),
             train(db, train_config, steps, min(DEMO_TOKENS_PER_EXAMPLE, train_config.get("max_length", 1e9))),
             evaluate(db, [EMBEDDED], 2 * n_eval, max_new_tokens, eval_batch_size, home)]  # base and tuned
    return combine("demo", parts)


# ---------------------------------------------------------------------------------------------
# The work a launch would do (shared by ``api.estimate`` and the ``--dry-run`` commands)
# ---------------------------------------------------------------------------------------------


def generate_pending(db, config: dict) -> int:
    """Examples a generation with ``config`` would still generate (its selection less the chains
    already there; one for a gate test)."""
    from engine.chains.selection import chain_keys, chunked_query, config_from, resolve_dataset, selection_ids

    if config.get("test"):
        return 1
    cfg = config_from(dict(config))
    ds_id, _ = resolve_dataset(db, cfg.dataset)
    # the job's own selection (chain_job: balanced or first-N), so the estimate counts the same examples
    ids = selection_ids(db, ds_id, cfg.split, cfg.limit, balanced=cfg.select == "balanced", seed=cfg.seed)
    tid, pk = chain_keys(cfg)
    done = sum(n for (n,) in chunked_query(
        db, "SELECT COUNT(*) FROM chains WHERE teacher = ? AND prompt_version = ? AND example_id IN ({ids})", ids, [tid, pk]))
    return len(ids) - done


def demo_plan(db, seed: int = 0, train_limit: int | None = None, validation_limit: int | None = None,
              eval_limit: int = 0, max_new_tokens: int | None = None, eval_batch_size: int | None = None,
              train_overrides=(), home=None, generate_overrides=()) -> dict:
    """``ccr demo``'s estimate with its own settings and defaults (engine/demo.py: ``train_limit``
    None is ``TRAIN_CHAINS``, 0 all 300), chains that all pass, and its teacher and training
    overrides (a bad one: the ConfigError that names it)."""
    from engine import demo as D
    from engine.core.config import to_dict

    validation_limit = D.VALIDATION_CHAINS if validation_limit is None else validation_limit
    max_new_tokens = max_new_tokens or D.EVAL_MAX_NEW_TOKENS
    eval_batch_size = eval_batch_size or D.EVAL_BATCH
    gen = to_dict(D.demo_generate_config(generate_overrides))
    train_cfg = to_dict(D.demo_train_config(train_overrides))
    n_train = D.TRAIN_CHAINS if train_limit is None else (min(train_limit, 300) if train_limit else 300)
    n_val = min(validation_limit, 60) if validation_limit else 0
    out = demo(db, gen, train_cfg, n_train + n_val, n_train, train_cfg["epochs"], min(eval_limit, 60) if eval_limit
               else 60, max_new_tokens, eval_batch_size, home)
    out["text"] += " (assuming every chain passes)"
    return out
