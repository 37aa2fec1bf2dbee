"""Phase 1: the reasoning-chain job (job kind ``generate``): the full, resumable run.

The gate test (``gate.py``), the export (``export.py``) and the human review (``review.py``)
have their own modules; what they share with the job is in ``selection.py`` (config, dataset,
examples) and ``acceptance.py`` (score, structure faults, judge).

The full run (``run_generate_job``, job kind ``generate``):

- The selection is the first ``limit`` examples of a split (id order); done examples are those
  with a chain keyed (example, prompt version, teacher). A restarted run loads the selection,
  skips what is done, and continues: nothing is lost or generated twice.
- Pending examples are sorted by transcript length and taken ``batch_size`` at a time (similar
  lengths batch with little padding). Each round generates one attempt for every unsettled
  example of the batch; every attempt is recorded. An example whose best attempt passes
  (score >= threshold and all sections) is settled as ``passed``; one that used all attempts is
  settled with its best attempt as ``flagged`` for review. A round's attempts and the chains it
  settled are committed in ONE transaction, so a kill at any point leaves either the whole round
  or none of it; a resumed run also reuses recorded attempts of unsettled examples, so at most
  the one round in flight is redone.
- Attempt k samples with ``temperatures[k-1]`` and seed ``seed + 1000 k``: attempt 1 is greedy
  (reproducible), retries explore.
- ``ctx.check()`` runs between rounds: pause, cancel and resume cost at most one round.
- It starts only when the gate is open (``gate.gate_status``); ``test: true`` runs the gate test.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field

from engine.chains.acceptance import (accepted, chain_reasons, fill_missing_reasons, judge_attempts, score_for,
                                      structure_faults)
from engine.chains.gate import gate_status, run_test
from engine.chains.selection import (balance_counts, chain_keys, chunked_query, config_from, format_balance,
                                     load_examples, resolve_dataset, selection_ids)
from engine.core import store

BUCKETS = [f"{b}-{b + 9}" for b in range(0, 90, 10)] + ["90-100"]


def distribution(scores) -> dict[str, int]:
    """Counts of scores in ten buckets (0-9 ... 90-100).

    >>> distribution([5, 72.5, 79.9, 100])["70-79"]
    2
    """
    out = {b: 0 for b in BUCKETS}
    for s in scores:
        out[BUCKETS[min(9, max(0, int(float(s) // 10)))]] += 1
    return out


def selection_summary(db, ids: list[int], tid: str, pk: str) -> dict:
    """Counts and average over the chains of a selection (what the summary line reports)."""
    fill_missing_reasons(db)
    n = passed = flagged = contradiction = invented = 0
    total = 0.0
    scores = []
    for status, score, reasons in chunked_query(
            db, "SELECT status, score, reasons FROM chains WHERE prompt_version = ? AND teacher = ? "
                "AND example_id IN ({ids})", ids, [pk, tid]):
        n += 1
        total += score
        scores.append(score)
        passed += status in ("passed", "approved")
        flagged += status == "flagged"
        contradiction += ",contradiction," in (reasons or "")
        invented += ",invented," in (reasons or "")
    return {"generated": n, "passed": passed, "flagged": flagged,
            "average": round(total / n, 2) if n else 0.0, "scores": scores,
            "with_contradiction": contradiction, "with_invented": invented}


def summary_line(result: dict) -> str:
    line = (f"generated {result['generated']}, passed {result['passed']}, flagged {result['flagged']}, "
            f"average score {result['average']:.1f}")
    if result.get("with_contradiction") is not None:
        line += (f"; {result['with_contradiction']} with a contradiction, {result['with_invented']} with "
                 f"invented specifics")
    j = result.get("judge")
    if j:
        line += (f"; judge rated {j['rated']} attempts, {j['unfaithful']} unfaithful"
                 + (f", unavailable for {j['unavailable']}" if j["unavailable"] else ""))
    return line


def _settle(attempts: list[dict], cfg) -> tuple[str | None, dict | None]:
    """('passed' | 'flagged' | None, best attempt) for an example's attempts so far."""
    if not attempts:
        return None, None
    best = max(attempts, key=lambda a: (accepted(a, cfg.threshold), a["score"], -a["attempt"]))
    if accepted(best, cfg.threshold):
        return "passed", best
    if len(attempts) >= cfg.attempts:
        return "flagged", best
    return None, best


@dataclass
class _Tally:
    """What this run has done so far: the progress bar's numbers and the result's."""
    total: int      # examples selected
    done: int       # of them, those with a chain (before this run or by it)
    scores: list    # the scores of those chains
    passed: int
    flagged: int
    t_start: float = field(default_factory=time.time)
    new_chains: int = 0
    gen_tokens: int = 0
    attempts: int = 0
    retries: int = 0
    gen_seconds: float = 0.0
    judge: dict = field(default_factory=lambda: {"rated": 0, "unfaithful": 0, "unavailable": 0, "not_sent": 0})


def run_generate_job(ctx, config: dict) -> dict:
    """Job kind ``generate``: the gate test (``test: true``) or the full, resumable run."""
    cfg = config_from(config)
    if cfg.test:
        return run_test(ctx.home, cfg, log=ctx.log)
    db = ctx.db
    tid, pk = chain_keys(cfg)
    if not gate_status(ctx.home, cfg)["ok"]:
        raise RuntimeError(f"no test for teacher {tid} and prompt {pk} scored >= {cfg.gate_threshold:g}: run a test "
                           "first (Generate page, or `ccr generate --test`) or launch with an override")
    ds_id, ds_name = resolve_dataset(db, cfg.dataset)
    ids = selection_ids(db, ds_id, cfg.split, cfg.limit, balanced=cfg.select == "balanced", seed=cfg.seed)
    done_ids = {r[0] for r in chunked_query(
        db, "SELECT example_id FROM chains WHERE prompt_version = ? AND teacher = ? AND example_id IN ({ids})",
        ids, [pk, tid])}
    pending = load_examples(db, [i for i in ids if i not in done_ids])
    pending.sort(key=lambda e: (len(e["transcript"]), e["id"]))  # similar lengths batch together
    prior = _prior_attempts(db, pending, cfg, tid, pk)
    summary0 = selection_summary(db, ids, tid, pk)
    _log_start(ctx, cfg, ids, ds_name, len(done_ids), len(pending))
    tally = _Tally(total=len(ids), done=len(done_ids), scores=list(summary0["scores"]),
                   passed=summary0["passed"], flagged=summary0["flagged"])
    report = functools.partial(_report, ctx, cfg, tally)
    report(force=True)
    step = max(1, int(cfg.batch_size))
    for start in range(0, len(pending), step):
        _run_batch(ctx, cfg, pending[start:start + step], prior, tally, report)
    report(force=True)
    result = _result(db, ids, cfg, tally, ds_name, len(done_ids))
    ctx.log(result["summary"])
    return result


def _prior_attempts(db, pending: list[dict], cfg, tid: str, pk: str) -> dict[int, list[dict]]:
    """{example id: attempts} recorded by a run that stopped before settling these examples, to
    reuse; re-scored (cheap) to get sections_ok and the current criteria."""
    prior: dict[int, list[dict]] = {}
    for ex_id, attempt, text, tokens, seconds, criteria in chunked_query(
            db, "SELECT example_id, attempt, text, tokens, seconds, criteria FROM chain_attempts WHERE "
                "prompt_version = ? AND teacher = ? AND example_id IN ({ids}) ORDER BY attempt",
            [e["id"] for e in pending], [pk, tid]):
        prior.setdefault(ex_id, []).append({"attempt": attempt, "text": text, "tokens": tokens, "seconds": seconds,
                                            "judged": (json.loads(criteria or "{}") or {}).get("judge")})
    by_id = {e["id"]: e for e in pending}
    for ex_id, rows in prior.items():
        for a in rows:
            r = score_for(by_id[ex_id], a["text"])
            stored_judge = a.pop("judged")
            if isinstance(stored_judge, dict):  # the judge's recorded rating is kept, not asked again
                from engine.chains import judge

                judge.reapply(r, stored_judge, cfg.judge, cfg.threshold)
            a.update(score=r["score"], criteria=r["criteria"], sections_ok=r["sections_ok"],
                     faults=structure_faults(a["text"]))
    return prior


def _log_start(ctx, cfg, ids: list[int], ds_name: str, n_done: int, n_pending: int) -> None:
    """The run's opening log lines: what it works on, with which teacher (and judge)."""
    from engine.chains import teacher

    tid, pk = chain_keys(cfg)
    ctx.log(f"generate: {ds_name}/{cfg.split}, {len(ids)} examples selected ({cfg.select}), {n_done} already done, "
            f"{n_pending} to go; teacher {tid}, prompt {pk}, batch {cfg.batch_size}, "
            f"{'guided' if cfg.guided else 'free'} mode")
    if cfg.select == "balanced":
        ctx.log("selection by task and label value: " + format_balance(balance_counts(ctx.db, ids)))
    if cfg.backend == "local" and n_pending:  # loaded now rather than in the first round, to log its precision
        info = teacher.local_generator(cfg, ctx.home).info
        ctx.log(f"teacher on {info.get('device')}; precision {info.get('precision_reason') or info.get('dtype')}")
    if cfg.judge.enabled:
        ctx.log(f"judge: {cfg.judge.model} at {cfg.judge.base_url} rates every chain the scorer accepts "
                f"(unfaithful below {cfg.judge.threshold}/5)")


def _report(ctx, cfg, tally: _Tally, force: bool = False, live: dict | None = None) -> None:
    """Write progress; ``live`` is the teacher's event inside the current call (a decode step, a
    finished request), so the bar, rate and ETA move within a batch, not only between them."""
    tid, pk = chain_keys(cfg)
    elapsed = max(1e-6, time.time() - tally.t_start)
    in_call = 0.0
    if live:  # the share of the current call done: rows (or requests) finished, or decode steps
        in_call = max(live["done"] / max(1, live["of"]), live.get("step", 0) / max(1, live.get("budget") or 1))
        in_call = min(0.99, in_call) * live["examples"]
    tokens = tally.gen_tokens + (live or {}).get("tokens", 0)
    progressed = tally.new_chains + in_call  # examples' worth of work this run has done
    rate = tally.new_chains / elapsed if tally.new_chains else None
    speed = progressed / elapsed if progressed else None
    extra = {"batch": {k: live.get(k) for k in ("stage", "done", "of", "tokens", "step", "budget", "examples")}
             } if live else {}
    done, total, scores = tally.done, tally.total, tally.scores
    ctx.progress(done, total, force=force, fraction=(done + in_call) / total if total else None, rate=rate,
                 examples_per_s=rate, tokens_per_s=round(tokens / elapsed, 2) if tokens else None,
                 eta_s=round((total - done - in_call) / speed, 1) if speed else None,
                 passed=tally.passed, flagged=tally.flagged, attempts=tally.attempts, retries=tally.retries,
                 average=round(sum(scores) / len(scores), 2) if scores else None,
                 distribution=distribution(scores), threshold=cfg.threshold, teacher=tid, prompt_version=pk,
                 **extra)


def _run_batch(ctx, cfg, batch: list[dict], prior: dict[int, list[dict]], tally: _Tally, report) -> None:
    """One batch, round after round until every example is settled: a round commits the attempts
    of the one before with the chains they settle (one transaction), then generates the next
    attempt of every example still unsettled."""
    attempts = {e["id"]: list(prior.get(e["id"], [])) for e in batch}
    settled_ids: set[int] = set()
    new_attempts: list[dict] = []
    while True:
        finished, todo = _settle_round(ctx, cfg, batch, attempts, settled_ids)
        if new_attempts or finished:
            tally.new_chains += store.save_generation_step(ctx.db, new_attempts, finished)
            tally.done += len(finished)
            for c in finished:
                tally.scores.append(c["score"])
                if c["status"] == "passed":
                    tally.passed += 1
                else:
                    tally.flagged += 1
            report()
        if not todo:
            return
        ctx.check()  # between rounds: everything so far is committed
        new_attempts = _generate_round(ctx, cfg, todo, attempts, tally, report)


def _settle_round(ctx, cfg, batch: list[dict], attempts: dict[int, list[dict]],
                  settled_ids: set[int]) -> tuple[list[dict], list[dict]]:
    """(chains to store, examples still to generate): what the attempts so far decide for the
    batch's unsettled examples; the settled ones join ``settled_ids``."""
    tid, pk = chain_keys(cfg)
    finished, todo = [], []
    for ex in batch:
        if ex["id"] in settled_ids:
            continue
        status, best = _settle(attempts[ex["id"]], cfg)
        if status:
            settled_ids.add(ex["id"])
            finished.append({"example_id": ex["id"], "prompt_version": pk, "teacher": tid,
                             "text": best["text"], "score": best["score"], "criteria": best["criteria"],
                             "status": status, "attempts": len(attempts[ex["id"]]),
                             "reasons": chain_reasons(best, cfg.threshold),
                             "tokens": sum(a.get("tokens") or 0 for a in attempts[ex["id"]]),
                             "seconds": sum(a.get("seconds") or 0 for a in attempts[ex["id"]]),
                             "job_id": ctx.job_id})
        else:
            todo.append(ex)
    return finished, todo


def _generate_round(ctx, cfg, todo: list[dict], attempts: dict[int, list[dict]], tally: _Tally,
                    report) -> list[dict]:
    """Generate, score (and judge) the next attempt of every example of ``todo``, grouped by
    attempt number (attempt k samples with ``temperatures[k-1]`` and seed ``seed + 1000 k``);
    returns the new attempts, also appended to ``attempts``."""
    from engine.chains import teacher

    tid, pk = chain_keys(cfg)
    new_attempts = []
    by_k: dict[int, list[dict]] = {}
    for ex in todo:
        by_k.setdefault(len(attempts[ex["id"]]) + 1, []).append(ex)
    for k, group in sorted(by_k.items()):
        temperature = cfg.temperatures[min(k, len(cfg.temperatures)) - 1] if cfg.temperatures else 0.0
        seed = cfg.seed + 1000 * k
        t0 = time.time()
        outs = teacher.teach(group, cfg, temperature=temperature, seed=seed, home=ctx.home,
                             progress=lambda event, n=len(group): report(live={**event, "examples": n}))
        tally.gen_seconds += time.time() - t0
        made = []
        for ex, out in zip(group, outs):
            r = score_for(ex, out.text)
            a = {"example_id": ex["id"], "prompt_version": pk, "teacher": tid, "attempt": k, "text": out.text,
                 "score": r["score"], "criteria": r["criteria"], "sections_ok": r["sections_ok"],
                 "faults": structure_faults(out.text),
                 "sampling": {"temperature": temperature, "top_p": cfg.top_p, "seed": seed,
                              "mode": "guided" if cfg.guided else "free", "backend": cfg.backend},
                 "tokens": out.completion_tokens, "seconds": round(out.seconds, 3), "job_id": ctx.job_id}
            attempts[ex["id"]].append(a)
            new_attempts.append(a)
            made.append((ex, a))
            tally.gen_tokens += out.completion_tokens
            tally.attempts += 1
            tally.retries += k > 1
        if cfg.judge.enabled:  # after scoring, before settling: the rating decides acceptance too
            rated = judge_attempts(cfg, made)
            for key in tally.judge:
                tally.judge[key] += rated[key]
            if rated["unavailable"]:
                ctx.log(f"judge unavailable for {rated['unavailable']} of {len(group)} chains, kept "
                        f"without a rating: {rated['error']}")
    return new_attempts


def _result(db, ids: list[int], cfg, tally: _Tally, ds_name: str, already_done: int) -> dict:
    """The job's result: the selection's counts and scores, this run's work and speed, the summary line."""
    tid, pk = chain_keys(cfg)
    summary = selection_summary(db, ids, tid, pk)
    elapsed = time.time() - tally.t_start
    new_chains, gen_tokens = tally.new_chains, tally.gen_tokens
    result = {k: v for k, v in summary.items() if k != "scores"}
    result.update({"dataset": ds_name, "split": cfg.split, "selected": tally.total, "already_done": already_done,
                   "new_chains": new_chains, "attempts": tally.attempts, "retries": tally.retries,
                   "seconds": round(elapsed, 2), "generation_seconds": round(tally.gen_seconds, 2),
                   "examples_per_s": round(new_chains / elapsed, 4) if new_chains and elapsed else None,
                   "tokens_per_s": round(gen_tokens / elapsed, 2) if gen_tokens and elapsed else None,
                   "distribution": distribution(summary["scores"]), "teacher": tid, "prompt_version": pk})
    if cfg.judge.enabled:
        result["judge"] = {"model": cfg.judge.model, **tally.judge}
    result["summary"] = summary_line(result)
    return result
