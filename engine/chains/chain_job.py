"""Phase 1: the reasoning-chain job, its test gate, the export and the human review.

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

The gate: ``run_test`` generates one example, scores it and records it in ``gate_tests``; a full
run starts only when a test for the same teacher and prompt version on the same dataset reached
``gate_threshold`` or an override (with its reason) was recorded for that dataset.
"""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

from engine.chains import quality

from engine.core import store
from engine.core.config import GenerateConfig, load_config, to_dict
from engine.core.fileio import atomic_write
from engine.core.paths import Home, resolve_home
from engine.data.example import reference_of

STATUSES = ("passed", "flagged", "approved", "rejected")
FAITHFUL_TARGET = 0.95   # share of chains with no contradiction and no unsupported specific
BUCKETS = [f"{b}-{b + 9}" for b in range(0, 90, 10)] + ["90-100"]


def _keys(cfg) -> tuple[str, str]:
    from engine.chains.teacher import prompt_key, teacher_id

    return teacher_id(cfg), prompt_key(cfg)


def config_from(config: dict | GenerateConfig | None = None, overrides: list[str] | tuple = (),
                path: str | None = None) -> GenerateConfig:
    if isinstance(config, GenerateConfig):
        return config
    return load_config(GenerateConfig, path, overrides, data=config or None)


def resolve_dataset(db, name: str | None) -> tuple[int, str]:
    """(id, name) of ``name`` or the working dataset; ValueError when there is none."""
    name = name or store.working_dataset(db)
    if not name:
        raise ValueError("no dataset yet: create one (`ccr data synth`) or import one (`ccr data import FILE`)")
    row = db.execute("SELECT id FROM datasets WHERE name = ?", [name]).fetchone()
    if not row:
        raise ValueError(f"no dataset named {name!r}")
    return row[0], name


_EX_COLS = "id, ex_id, split, task, messages, meta, labels, transcript"


def _example(ex: dict) -> dict:
    for key in ("messages", "meta", "labels"):
        ex[key] = json.loads(ex[key])
    return ex


def selection_ids(db, dataset_id: int, split: str, limit: int | None, balanced: bool = False,
                  seed: int = 0) -> list[int]:
    """Row ids of the examples a run works on: the first ``limit`` of the split in id order, or
    with ``balanced`` the first ``limit`` of ``balanced_order`` (even across tasks and, within a
    task, across label values). Both are deterministic, so a resumed run selects the same ids."""
    if balanced:
        rows = [(i, task, json.loads(labels) if labels else {}) for i, task, labels in db.execute(
            "SELECT id, task, labels FROM examples WHERE dataset_id = ? AND split = ?", [dataset_id, split])]
        order = balanced_order(rows, seed)
        return order if limit is None else order[:max(0, int(limit))]
    sql = "SELECT id FROM examples WHERE dataset_id = ? AND split = ? ORDER BY id"
    params: list = [dataset_id, split]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return [r[0] for r in db.execute(sql, params)]


# ---------------------------------------------------------------------------------------------
# Balanced selection: a small student trained on skewed labels learns the majority answer (8 of
# the 16 CSAT chains of the first 96 demo examples were 5/5, and the tuned model answered 5/5 to
# most CSAT calls), so the demo and `ccr export reasoning --balanced` pick examples round-robin
# over (task, label value) strata.
# ---------------------------------------------------------------------------------------------

QA_BANDS = ((0, 49), (50, 69), (70, 84), (85, 100))


def label_stratum(task: str | None, labels: dict | None) -> str:
    """The label value an example is balanced on within its task: the CSAT score, the QA score's
    band, the churn level, the sentiment, the root cause, and for coaching how many behaviours
    (none, one, several: the count is what a student over- or under-predicts). Examples without
    a usable label share one stratum, ``(no label)``.

    >>> [label_stratum("csat", {"csat": 4}), label_stratum("quality", {"quality": 72}),
    ...  label_stratum("coaching", {"coaching": ["empathy", "ownership"]}), label_stratum("churn", {})]
    ['4', '70-84', 'several', '(no label)']
    """
    labels = labels or {}
    try:
        if task == "csat":
            return str(int(labels["csat"]))
        if task == "quality":
            score = float(labels["quality"])
            return next(f"{lo}-{hi}" for lo, hi in QA_BANDS if score <= hi) if score >= 0 else "(no label)"
        if task == "coaching":
            n = len(labels["coaching"])
            return "none" if n == 0 else "one" if n == 1 else "several"
        if task in ("churn", "sentiment", "root_cause"):
            value = labels[task]
            return str(value) if value not in (None, "") else "(no label)"
    except (KeyError, TypeError, ValueError, StopIteration):
        pass
    return "(no label)"


def _round_robin(queues: list[list]) -> list:
    """One item from each queue in turn; an exhausted queue drops out and the others go on.

    >>> _round_robin([[1, 2, 3], [4], [5, 6]])
    [1, 4, 5, 2, 6, 3]
    """
    out = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


def balanced_order(rows, seed: int = 0) -> list[int]:
    """Order ``rows`` (id, task, labels) so that every prefix is as balanced as the data allows.

    Within a task the ids are grouped by ``label_stratum``, each group shuffled with a seeded
    generator, and the groups taken round-robin; the tasks are then interleaved round-robin (in
    ``tasks.TASKS`` order, unknown tasks after). So the first 60 of a split with six tasks are 10
    per task and, for CSAT, 2 per score. A stratum with too few examples is used up and drops
    out: the remaining values (or tasks) fill its turns, so a prefix never runs short while
    examples are left, and the shares are then as even as the data allows. Deterministic: the
    same rows and seed give the same order (a string seed hashes the same in every process).
    """
    from engine.data.tasks import TASKS

    by_task: dict[str, dict[str, list[int]]] = {}
    for row_id, task, labels in sorted(rows, key=lambda r: r[0]):
        by_task.setdefault(task or "", {}).setdefault(label_stratum(task, labels), []).append(row_id)
    per_task = {}
    for task, strata in by_task.items():
        rng = random.Random(f"balanced:{seed}:{task}")
        values = sorted(strata)
        rng.shuffle(values)  # which value gets the odd extra pick varies with the seed, not always the first
        queues = []
        for value in values:
            ids = list(strata[value])
            rng.shuffle(ids)
            queues.append(ids)
        per_task[task] = _round_robin(queues)
    order = [t for t in TASKS if t in per_task] + sorted(t for t in per_task if t not in TASKS)
    return _round_robin([per_task[t] for t in order])


def balance_counts(db, ids: list[int]) -> dict[str, dict[str, int]]:
    """{task: {label stratum: count}} of the examples ``ids`` (what a balanced selection holds)."""
    out: dict[str, dict[str, int]] = {}
    for ex in load_examples(db, list(ids)):
        counts = out.setdefault(ex["task"] or "", {})
        value = label_stratum(ex["task"], ex["labels"])
        counts[value] = counts.get(value, 0) + 1
    return {t: dict(sorted(v.items())) for t, v in sorted(out.items(), key=_task_key)}


def _task_key(item) -> tuple:
    """Sort key of a (task, ...) pair: the six tasks in their usual order, unknown ones after."""
    from engine.data.tasks import TASKS

    task = item[0]
    return (TASKS.index(task), "") if task in TASKS else (len(TASKS), task or "")


def load_examples(db, ids: list[int]) -> list[dict]:
    out = []
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        q = ", ".join("?" for _ in part)
        out.extend(_example(r) for r in db.query(f"SELECT {_EX_COLS} FROM examples WHERE id IN ({q})", part))
    by_id = {e["id"]: e for e in out}
    return [by_id[i] for i in ids if i in by_id]


def score_for(example: dict, text: str) -> dict:
    return quality.score_chain(text, example.get("task"), example.get("labels"), example.get("transcript"))


_CONTROL_TOKEN_RE = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>")


def structure_faults(text: str) -> list[str]:
    """What makes a chain structurally unfit for training, beyond what its score weighs: the
    parser's problems, a step or part header written twice (a quoted transcript line that reads
    as a header, say), a raw chat control token. A chain with any is never accepted as passed:
    it is retried, then flagged for review.

    >>> from engine.chains.chain import render_chain
    >>> structure_faults(render_chain({n: "Calm." for n in range(1, 6)}, {}, {}, "CSAT: 3/5"))
    []
    >>> chain = render_chain({1: "Calm.\\nStep 3 - Interaction Quality Assessment", 2: "x", 3: "y", 4: "z",
    ...                       5: "<|im_start|>assistant"}, {}, {}, "CSAT: 3/5")
    >>> structure_faults(chain)
    ['steps out of order', 'Step 3 appears 2 times', 'a raw chat control token']
    """
    from engine.chains.chain import parse_chain

    p = parse_chain(text)
    faults = list(p["problems"])
    steps = [s["n"] for s in p["steps"]]
    faults += [f"Step {n} appears {steps.count(n)} times" for n in sorted(set(steps)) if steps.count(n) > 1]
    for section, order in p["part_order"].items():
        faults += [f"<{section}> has {k} {order.count(k)} times" for k in dict.fromkeys(order) if order.count(k) > 1]
    if _CONTROL_TOKEN_RE.search(text):
        faults.append("a raw chat control token")
    return faults


def accepted(result: dict, threshold: float) -> bool:
    """The acceptance rule of a generated chain: the scorer's (``quality.passes``) and no
    ``structure_faults`` (``result["faults"]``)."""
    return quality.passes(result, threshold) and not result.get("faults")


def chain_reasons(result: dict, threshold: float = quality.THRESHOLD) -> list[str]:
    """Why a scored chain falls short, as the review list filters it: ``quality.reasons`` of its
    breakdown, plus ``form`` for a missing section or a structure fault (``result["faults"]``).

    >>> chain_reasons({"criteria": {"sections": {"points": 20.0, "max": 20.0}, "steps": {"points": 70.0}},
    ...                "sections_ok": True, "faults": ["Step 3 appears 2 times"]})
    ['form']
    """
    why = quality.reasons(result.get("criteria"), threshold)
    if "form" not in why and (result.get("faults") or not result.get("sections_ok", True)):
        why.append("form")
    return why


def stored_reasons(criteria, status: str | None) -> list[str]:
    """The reasons of a chain stored with only its breakdown and status: ``quality.reasons``,
    and for a flagged chain with none, ``form`` (it was flagged for its structure: a duplicated
    header, a control token).

    >>> stored_reasons({}, "flagged"), stored_reasons({"steps": {"points": 95.0}}, "passed")
    (['form'], [])
    """
    why = quality.reasons(criteria if isinstance(criteria, dict) else {})
    if status == "flagged" and not why:
        why = ["form"]
    return why


def fill_missing_reasons(db) -> int:
    """Derive and store the reasons of chains stored without them (a database from before the
    reasons column: its migration leaves them NULL, as core does not know the quality rules).
    Called before chains are read; a no-op once every chain has them. Returns how many it filled."""
    missing = {}
    for chain_id, criteria, status in db.execute("SELECT id, criteria, status FROM chains WHERE reasons IS NULL"):
        try:
            crit = json.loads(criteria)
        except ValueError:
            crit = {}
        missing[chain_id] = stored_reasons(crit, status)
    if missing:
        store.set_chain_reasons(db, missing)
    return len(missing)


def judge_attempts(cfg, pairs: list[tuple[dict, dict]], everything: bool = False) -> dict:
    """Rate scored attempts with the judge model (``cfg.judge``; engine/chains/judge.py) and add its
    criterion to each, in place. ``pairs``: (example, attempt) where an attempt has ``text``,
    ``score``, ``criteria``, ``sections_ok`` and ``faults``. Only attempts the scorer accepts are
    sent (``everything``: all of them, for the gate test); the requests run concurrently. The
    judge's failures are recorded per attempt ("judge unavailable"), never raised. Returns counts:
    rated, unfaithful, unavailable, not_sent, and the first error."""
    from engine.chains import judge

    send = [(ex, a) for ex, a in pairs if everything or accepted(a, cfg.threshold)]
    verdicts = {id(a): v for (_, a), v in zip(send, judge.rate(cfg.judge, [(ex, a["text"]) for ex, a in send]))}
    counts = {"rated": 0, "unfaithful": 0, "unavailable": 0, "not_sent": 0, "error": None}
    for _, a in pairs:
        verdict = verdicts.get(id(a))
        e = judge.entry(verdict, cfg.judge, a["score"], cfg.threshold)
        judge.apply(a, e)
        if verdict is None:
            counts["not_sent"] += 1
        elif e.get("unavailable"):
            counts["unavailable"] += 1
            counts["error"] = counts["error"] or verdict["error"]
        else:
            counts["rated"] += 1
            counts["unfaithful"] += e["faithful"] is False
    return counts


def distribution(scores) -> dict[str, int]:
    """Counts of scores in ten buckets (0-9 ... 90-100).

    >>> distribution([5, 72.5, 79.9, 100])["70-79"]
    2
    """
    out = {b: 0 for b in BUCKETS}
    for s in scores:
        out[BUCKETS[min(9, max(0, int(float(s) // 10)))]] += 1
    return out


# ---------------------------------------------------------------------------------------------
# The gate
# ---------------------------------------------------------------------------------------------


def gate_status(home: Home | str | None, cfg) -> dict:
    """Whether a full run may start: a recorded test >= gate threshold, or an override, for this
    teacher and prompt version ON THIS DATASET (a test on another dataset's example, or an
    override recorded for another dataset, does not open the gate here)."""
    cfg = config_from(cfg)
    tid, pk = _keys(cfg)
    db = store.connect(home)
    try:
        ds_id, ds_name = resolve_dataset(db, cfg.dataset)
    except ValueError:
        ds_id = ds_name = None
    rows = list(db.query(
        "SELECT g.id, g.example_id, g.score, g.override, g.reason, g.created_at, e.dataset_id, "
        "json_extract(g.config, '$.dataset') AS dataset FROM gate_tests g LEFT JOIN examples e ON e.id = g.example_id "
        "WHERE g.teacher = ? AND g.prompt_version = ? ORDER BY g.id DESC", [tid, pk]))
    rows = [r for r in rows if (r["dataset_id"] is not None and r["dataset_id"] == ds_id)
            or (r["override"] and ds_name is not None and r["dataset"] == ds_name)]
    tests = [r for r in rows if not r["override"]]
    passing = [r for r in tests if r["score"] is not None and r["score"] >= cfg.gate_threshold]
    overrides = [r for r in rows if r["override"]]
    return {"ok": bool(passing or overrides), "teacher": tid, "prompt_version": pk,
            "threshold": cfg.gate_threshold, "latest_test": tests[0] if tests else None,
            "passing_test": passing[0] if passing else None, "override": overrides[0] if overrides else None}


def record_override(home: Home | str | None, cfg, reason: str | None = None) -> int:
    """Record that a person launched the full run without a passing test."""
    cfg = config_from(cfg)
    tid, pk = _keys(cfg)
    db = store.connect(home)
    # The override holds for the dataset it was recorded on (the working one when none is named).
    config = {**to_dict(cfg), "dataset": resolve_dataset(db, cfg.dataset)[1]}
    return store.add_gate_test(db, None, tid, pk, config, None, None, None, override=True,
                               reason=reason or "override without a passing test")


def run_test(home: Home | str | None, cfg, log=print) -> dict:
    """Generate and score one example (attempt-1 sampling) and record it as a gate test."""
    from engine.chains import teacher

    cfg = config_from(cfg)
    home = resolve_home(home)
    db = store.connect(home)
    ds_id, ds_name = resolve_dataset(db, cfg.dataset)
    if cfg.test_example is not None:
        rows = load_examples(db, [int(cfg.test_example)])
        if not rows:
            raise ValueError(f"test_example: no example with row id {cfg.test_example}")
    else:
        first = selection_ids(db, ds_id, cfg.split, 1)
        if not first:
            raise ValueError(f"dataset {ds_name} has no {cfg.split} examples")
        rows = load_examples(db, first)
    ex = rows[0]
    tid, pk = _keys(cfg)
    log(f"test generation: example {ex['ex_id']} ({ex['task']}) with {tid}, prompt {pk}")
    t0 = time.time()
    out = teacher.teach([ex], cfg, temperature=cfg.temperatures[0], seed=cfg.seed + 1000, home=home)[0]
    seconds = time.time() - t0
    r = score_for(ex, out.text)
    if cfg.judge.enabled:  # the test shows the judge at work too: its rating is sent whatever the score
        r.update(text=out.text, faults=structure_faults(out.text))
        counts = judge_attempts(cfg, [(ex, r)], everything=True)
        log(f"judge {cfg.judge.model}: {r['criteria']['judge']['reason']}" if not counts["unavailable"]
            else f"judge {r['criteria']['judge']['reason']} (the chain is scored without it)")
    gate_id = store.add_gate_test(db, ex["id"], tid, pk, to_dict(cfg), out.text, r["score"], r["criteria"])
    passed = r["score"] >= cfg.gate_threshold and r["sections_ok"] and not structure_faults(out.text)
    log(f"test score {r['score']:.1f} (gate {cfg.gate_threshold:g}): {'passed' if passed else 'below the gate'}")
    return {"test": True, "gate_id": gate_id, "example_id": ex["id"], "ex_id": ex["ex_id"], "task": ex["task"],
            "text": out.text, "score": r["score"], "criteria": r["criteria"], "sections_ok": r["sections_ok"],
            "passed": passed, "gate_threshold": cfg.gate_threshold, "teacher": tid, "prompt_version": pk,
            "seconds": round(seconds, 2), "completion_tokens": out.completion_tokens}


# ---------------------------------------------------------------------------------------------
# The full run
# ---------------------------------------------------------------------------------------------


def selection_summary(db, ids: list[int], tid: str, pk: str) -> dict:
    """Counts and average over the chains of a selection (what the summary line reports)."""
    fill_missing_reasons(db)
    n = passed = flagged = contradiction = invented = 0
    total = 0.0
    scores = []
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        q = ", ".join("?" for _ in part)
        for status, score, reasons in db.execute(
                f"SELECT status, score, reasons FROM chains WHERE prompt_version = ? AND teacher = ? "
                f"AND example_id IN ({q})", [pk, tid, *part]):
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


def run_generate_job(ctx, config: dict) -> dict:
    """Job kind ``generate``: the gate test (``test: true``) or the full, resumable run."""
    from engine.chains import teacher

    cfg = config_from(config)
    if cfg.test:
        return run_test(ctx.home, cfg, log=ctx.log)
    db = ctx.db
    tid, pk = _keys(cfg)
    gate = gate_status(ctx.home, cfg)
    if not gate["ok"]:
        raise RuntimeError(f"no test for teacher {tid} and prompt {pk} scored >= {cfg.gate_threshold:g}: run a test "
                           "first (Generate page, or `ccr generate --test`) or launch with an override")
    ds_id, ds_name = resolve_dataset(db, cfg.dataset)
    ids = selection_ids(db, ds_id, cfg.split, cfg.limit, balanced=cfg.select == "balanced", seed=cfg.seed)
    total = len(ids)
    done_ids = set()
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        q = ", ".join("?" for _ in part)
        done_ids.update(r[0] for r in db.execute(
            f"SELECT example_id FROM chains WHERE prompt_version = ? AND teacher = ? AND example_id IN ({q})",
            [pk, tid, *part]))
    pending = load_examples(db, [i for i in ids if i not in done_ids])
    pending.sort(key=lambda e: (len(e["transcript"]), e["id"]))  # similar lengths batch together
    # Attempts recorded by a run that stopped before settling these examples: reuse them.
    prior: dict[int, list[dict]] = {}
    for start in range(0, len(pending), 500):
        part = [e["id"] for e in pending[start:start + 500]]
        q = ", ".join("?" for _ in part)
        for ex_id, attempt, text, tokens, seconds, criteria in db.execute(
                f"SELECT example_id, attempt, text, tokens, seconds, criteria FROM chain_attempts WHERE "
                f"prompt_version = ? AND teacher = ? AND example_id IN ({q}) ORDER BY attempt", [pk, tid, *part]):
            prior.setdefault(ex_id, []).append({"attempt": attempt, "text": text, "tokens": tokens, "seconds": seconds,
                                                "judged": (json.loads(criteria or "{}") or {}).get("judge")})
    by_id = {e["id"]: e for e in pending}
    for ex_id, rows in prior.items():  # re-score (cheap) to get sections_ok and current criteria
        for a in rows:
            r = score_for(by_id[ex_id], a["text"])
            stored_judge = a.pop("judged")
            if isinstance(stored_judge, dict):  # the judge's recorded rating is kept, not asked again
                from engine.chains import judge

                judge.reapply(r, stored_judge, cfg.judge, cfg.threshold)
            a.update(score=r["score"], criteria=r["criteria"], sections_ok=r["sections_ok"],
                     faults=structure_faults(a["text"]))
    summary0 = selection_summary(db, ids, tid, pk)
    scores = list(summary0["scores"])
    counts = {"passed": summary0["passed"], "flagged": summary0["flagged"]}
    ctx.log(f"generate: {ds_name}/{cfg.split}, {total} examples selected ({cfg.select}), {len(done_ids)} already done, "
            f"{len(pending)} to go; teacher {tid}, prompt {pk}, batch {cfg.batch_size}, "
            f"{'guided' if cfg.guided else 'free'} mode")
    if cfg.select == "balanced":
        ctx.log("selection by task and label value: " + format_balance(balance_counts(db, ids)))
    if cfg.backend == "local" and pending:  # loaded now rather than in the first round, to log its precision
        info = teacher.local_generator(cfg, ctx.home).info
        ctx.log(f"teacher on {info.get('device')}; precision {info.get('precision_reason') or info.get('dtype')}")
    if cfg.judge.enabled:
        ctx.log(f"judge: {cfg.judge.model} at {cfg.judge.base_url} rates every chain the scorer accepts "
                f"(unfaithful below {cfg.judge.threshold}/5)")
    judge_counts = {"rated": 0, "unfaithful": 0, "unavailable": 0, "not_sent": 0}
    t_start = time.time()
    new_chains = gen_tokens = n_attempts = retries = 0
    gen_seconds = 0.0
    done = len(done_ids)

    def report(force: bool = False, live: dict | None = None):
        """Write progress; ``live`` is the teacher's event inside the current call (a decode step, a
        finished request), so the bar, rate and ETA move within a batch, not only between them."""
        elapsed = max(1e-6, time.time() - t_start)
        in_call = 0.0
        if live:  # the share of the current call done: rows (or requests) finished, or decode steps
            in_call = max(live["done"] / max(1, live["of"]), live.get("step", 0) / max(1, live.get("budget") or 1))
            in_call = min(0.99, in_call) * live["examples"]
        tokens = gen_tokens + (live or {}).get("tokens", 0)
        progressed = new_chains + in_call  # examples' worth of work this run has done
        rate = new_chains / elapsed if new_chains else None
        speed = progressed / elapsed if progressed else None
        extra = {"batch": {k: live.get(k) for k in ("stage", "done", "of", "tokens", "step", "budget", "examples")}
                 } if live else {}
        ctx.progress(done, total, force=force, fraction=(done + in_call) / total if total else None, rate=rate,
                     examples_per_s=rate, tokens_per_s=round(tokens / elapsed, 2) if tokens else None,
                     eta_s=round((total - done - in_call) / speed, 1) if speed else None,
                     passed=counts["passed"], flagged=counts["flagged"], attempts=n_attempts, retries=retries,
                     average=round(sum(scores) / len(scores), 2) if scores else None,
                     distribution=distribution(scores), threshold=cfg.threshold, teacher=tid, prompt_version=pk,
                     **extra)

    report(force=True)
    step = max(1, int(cfg.batch_size))
    for start in range(0, len(pending), step):
        batch = pending[start:start + step]
        attempts = {e["id"]: list(prior.get(e["id"], [])) for e in batch}
        settled_ids: set[int] = set()
        new_attempts: list[dict] = []
        while True:
            # settle what the attempts so far decide; commit this round's attempts with those chains
            finished = []
            todo = []
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
            if new_attempts or finished:
                created = store.save_generation_step(db, new_attempts, finished)
                new_chains += created
                done += len(finished)
                for c in finished:
                    scores.append(c["score"])
                    counts["passed" if c["status"] == "passed" else "flagged"] += 1
                new_attempts = []
                report()
            if not todo:
                break
            ctx.check()  # between rounds: everything so far is committed
            by_k: dict[int, list[dict]] = {}
            for ex in todo:
                by_k.setdefault(len(attempts[ex["id"]]) + 1, []).append(ex)
            for k, group in sorted(by_k.items()):
                temperature = cfg.temperatures[min(k, len(cfg.temperatures)) - 1] if cfg.temperatures else 0.0
                seed = cfg.seed + 1000 * k
                t0 = time.time()
                outs = teacher.teach(group, cfg, temperature=temperature, seed=seed, home=ctx.home,
                                     progress=lambda event, n=len(group): report(live={**event, "examples": n}))
                gen_seconds += time.time() - t0
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
                    gen_tokens += out.completion_tokens
                    n_attempts += 1
                    retries += k > 1
                if cfg.judge.enabled:  # after scoring, before settling: the rating decides acceptance too
                    rated = judge_attempts(cfg, made)
                    for key in judge_counts:
                        judge_counts[key] += rated[key]
                    if rated["unavailable"]:
                        ctx.log(f"judge unavailable for {rated['unavailable']} of {len(group)} chains, kept "
                                f"without a rating: {rated['error']}")
    report(force=True)
    summary = selection_summary(db, ids, tid, pk)
    elapsed = time.time() - t_start
    result = {k: v for k, v in summary.items() if k != "scores"}
    result.update({"dataset": ds_name, "split": cfg.split, "selected": total, "already_done": len(done_ids),
                   "new_chains": new_chains, "attempts": n_attempts, "retries": retries,
                   "seconds": round(elapsed, 2), "generation_seconds": round(gen_seconds, 2),
                   "examples_per_s": round(new_chains / elapsed, 4) if new_chains and elapsed else None,
                   "tokens_per_s": round(gen_tokens / elapsed, 2) if gen_tokens and elapsed else None,
                   "distribution": distribution(summary["scores"]), "teacher": tid, "prompt_version": pk})
    if cfg.judge.enabled:
        result["judge"] = {"model": cfg.judge.model, **judge_counts}
    result["summary"] = summary_line(result)
    ctx.log(result["summary"])
    return result


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------

_STATUS_RANK = {"approved": 3, "passed": 2, "flagged": 1}


def export_reasoning(home: Home | str | None = None, out: str | Path | None = None, include_flagged: bool = False,
                     dataset: str | None = None, balanced: bool = False, limit: int | None = None,
                     seed: int = 0) -> dict:
    """Write the train and validation chains as ChatML JSONL (temp file + rename).

    One line per example that has a usable chain: approved or passed (flagged too with
    ``include_flagged``; rejected never). The last assistant turn is replaced by the chain; the
    example's meta is kept and gains ``chain_score``, ``chain_status``, ``teacher`` and
    ``prompt_version``. When an example has chains from several teachers or prompt versions,
    the best status wins, then the newest. ``out`` names the train file (default
    ``<home>/train_reasoning.jsonl``); the validation file goes beside it.

    ``limit``: at most N lines per file, the first N by example id or, with ``balanced``, the
    first N of ``balanced_order`` (seeded by ``seed``). ``balanced`` without a limit keeps the
    largest set with the same count for every task present (the smallest task's count), the
    label values within each task as even as the chains allow. Lines left out are counted in
    the report (``left_out``), never dropped silently; ``by_label`` gives each file's
    {task: {label value: lines}}.
    """
    home = resolve_home(home).ensure()
    db = store.connect(home)
    ds_id, ds_name = resolve_dataset(db, dataset)
    train_path = Path(out) if out else home.data / "train_reasoning.jsonl"
    name = train_path.name
    val_name = name.replace("train", "validation") if "train" in name else f"{train_path.stem}.validation{train_path.suffix or '.jsonl'}"
    paths = {"train": train_path, "validation": train_path.with_name(val_name)}
    allowed = ["approved", "passed"] + (["flagged"] if include_flagged else [])
    report = {"dataset": ds_name, "include_flagged": include_flagged, "balanced": balanced, "limit": limit}
    for split, path in paths.items():
        best: dict[int, tuple] = {}
        for row in db.execute(
                f"SELECT c.example_id, c.text, c.score, c.status, c.teacher, c.prompt_version, c.updated_at "
                f"FROM chains c JOIN examples e ON e.id = c.example_id WHERE e.dataset_id = ? AND e.split = ? "
                f"AND c.status IN ({', '.join('?' for _ in allowed)})", [ds_id, split, *allowed]):
            rank = (_STATUS_RANK[row[3]], row[6])
            if row[0] not in best or rank > best[row[0]][0]:
                best[row[0]] = (rank, row)
        keep = _export_selection(db, sorted(best), balanced, limit, seed)
        lines = 0
        by_status = {s: 0 for s in allowed}
        by_label: dict[str, dict[str, int]] = {}
        with atomic_write(path) as fh:
            for ex in load_examples(db, keep):
                _, (_, text, score, status, tid, pk, _) = best[ex["id"]]
                messages = [dict(m) for m in ex["messages"]]
                idx = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
                if idx is None:
                    messages.append({"role": "assistant", "content": text})
                else:
                    messages[idx]["content"] = text
                meta = dict(ex["meta"])
                meta.setdefault("id", ex["ex_id"])
                meta.setdefault("task", ex["task"])
                meta.setdefault("labels", ex["labels"])
                meta.update({"chain_score": score, "chain_status": status, "teacher": tid, "prompt_version": pk})
                fh.write(json.dumps({"messages": messages, "meta": meta}, ensure_ascii=False) + "\n")
                lines += 1
                by_status[status] += 1
                counts = by_label.setdefault(ex["task"] or "", {})
                value = label_stratum(ex["task"], ex["labels"])
                counts[value] = counts.get(value, 0) + 1
        report[split] = {"path": str(path), "lines": lines, "by_status": by_status, "left_out": len(best) - lines,
                         "by_label": {t: dict(sorted(v.items())) for t, v in sorted(by_label.items(), key=_task_key)}}
    return report


def _export_selection(db, ids: list[int], balanced: bool, limit: int | None, seed: int) -> list[int]:
    """The example ids (sorted) whose chains an export writes; see ``export_reasoning``."""
    if limit is not None and int(limit) < 0:
        raise ValueError(f"limit must be 0 or more, got {limit}")
    if not balanced:
        return ids if limit is None else ids[:int(limit)]
    rows = [(e["id"], e["task"], e["labels"]) for e in load_examples(db, ids)]
    if limit is None:
        per_task: dict[str, int] = {}
        for _, task, _ in rows:
            per_task[task or ""] = per_task.get(task or "", 0) + 1
        limit = min(per_task.values()) * len(per_task) if per_task else 0
    return sorted(balanced_order(rows, seed)[:int(limit)])


def format_balance(by_label: dict[str, dict[str, int]]) -> str:
    """``csat 1:4 2:4 3:3 ...; churn high:5 ...`` for logs and the command line.

    >>> format_balance({"csat": {"1": 2, "5": 2}, "churn": {"low": 3}})
    'csat 1:2 5:2; churn low:3'
    """
    return "; ".join(f"{task or '(no task)'} " + " ".join(f"{v}:{n}" for v, n in counts.items())
                     for task, counts in by_label.items())


# ---------------------------------------------------------------------------------------------
# Review
# ---------------------------------------------------------------------------------------------

_LIST_COLS = ("c.id, c.example_id, e.ex_id, e.split, e.task, c.status, c.score, c.attempts, c.teacher, "
              "c.prompt_version, c.updated_at, c.reasons")


def _filter(dataset_id: int | None, status=None, task=None, min_score=None, max_score=None, search=None,
            teacher=None, prompt_version=None, split=None, ids=None, reason=None) -> tuple[str, list]:
    where, params = [], []
    if reason:
        if reason not in quality.REASONS:
            raise ValueError(f"reason must be one of {', '.join(quality.REASONS)}, got {reason!r}")
        where.append("c.reasons LIKE ?")
        params.append(f"%,{reason},%")
    if dataset_id is not None:
        where.append("e.dataset_id = ?")
        params.append(dataset_id)
    if status:
        statuses = [status] if isinstance(status, str) else list(status)
        where.append(f"c.status IN ({', '.join('?' for _ in statuses)})")
        params.extend(statuses)
    for col, value in (("e.task", task), ("c.teacher", teacher), ("c.prompt_version", prompt_version),
                       ("e.split", split)):
        if value:
            where.append(f"{col} = ?")
            params.append(value)
    if min_score is not None:
        where.append("c.score >= ?")
        params.append(float(min_score))
    if max_score is not None:
        where.append("c.score <= ?")
        params.append(float(max_score))
    if search:
        where.append("(e.ex_id LIKE ? OR c.text LIKE ?)")
        params.extend([f"%{search}%", f"%{search}%"])
    if ids:
        where.append(f"c.id IN ({', '.join('?' for _ in ids)})")
        params.extend(int(i) for i in ids)
    return (" WHERE " + " AND ".join(where)) if where else "", params


def list_chains(home: Home | str | None = None, dataset: str | None = None, limit: int | None = 100,
                offset: int = 0, order: str = "score", **filters) -> tuple[list[dict], int]:
    """A page of chains matching the filters (status, task, min_score, max_score, search,
    teacher, prompt_version, split, reason: contradiction | invented | judge | form) and the total count.
    ``order``: score (lowest first) or recent. Each row's ``reasons`` lists why it falls short."""
    db = store.connect(home)
    fill_missing_reasons(db)
    try:
        ds_id = resolve_dataset(db, dataset)[0]
    except ValueError:
        return [], 0
    where, params = _filter(ds_id, **filters)
    base = f"FROM chains c JOIN examples e ON e.id = c.example_id{where}"
    total = db.execute(f"SELECT COUNT(*) {base}", params).fetchone()[0]
    sort = "c.updated_at DESC, c.id DESC" if order == "recent" else "c.score ASC, c.id ASC"
    sql = f"SELECT {_LIST_COLS} {base} ORDER BY {sort}"
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    rows = list(db.query(sql, params))
    for r in rows:
        r["reasons"] = [x for x in (r["reasons"] or "").split(",") if x]
    return rows, total


def chain_detail(home: Home | str | None, chain_id: int) -> dict | None:
    """A chain with its example (transcript, labels, reference), criteria, why it falls short
    (``reasons``), the sentences at fault (``at_fault``: sentence, reason, kind), attempts and
    reviews."""
    db = store.connect(home)
    fill_missing_reasons(db)
    c = next(db.query("SELECT id, example_id, prompt_version, teacher, text, score, criteria, status, attempts, "
                      "tokens, seconds, job_id, created_at, updated_at, reasons FROM chains WHERE id = ?",
                      [chain_id]), None)
    if not c:
        return None
    c["criteria"] = json.loads(c["criteria"])
    c["reasons"] = [x for x in (c["reasons"] or "").split(",") if x]
    c["at_fault"] = quality.at_fault(c["criteria"])   # the sentences to highlight
    ex = load_examples(db, [c["example_id"]])
    c["example"] = ex[0] if ex else None
    if ex:
        c["reference"] = reference_of(ex[0]["messages"]) or ""
    c["attempt_rows"] = list(db.query("SELECT attempt, score, sampling, tokens, seconds, created_at FROM chain_attempts "
                                      "WHERE example_id = ? AND prompt_version = ? AND teacher = ? ORDER BY attempt",
                                      [c["example_id"], c["prompt_version"], c["teacher"]]))
    for a in c["attempt_rows"]:
        a["sampling"] = json.loads(a["sampling"])
    c["reviews"] = list(db.query("SELECT decision, score_before, score_after, reviewer, created_at FROM reviews "
                                 "WHERE chain_id = ? ORDER BY id", [chain_id]))
    return c


def check_reviewer(name: str | None) -> str:
    """The reviewer's name a decision is stored with, trimmed; ValueError when there is none.

    The Review page and ``ccr review approve/reject/edit`` refuse a decision without a name, so
    every decision in the history says who took it.

    >>> check_reviewer("  Ana ")
    'Ana'
    >>> check_reviewer("   ")
    Traceback (most recent call last):
    ...
    ValueError: a reviewer name is required: decisions are stored with who took them
    """
    name = (name or "").strip()
    if not name:
        raise ValueError("a reviewer name is required: decisions are stored with who took them")
    if len(name) > 80 or any(c in name for c in "\r\n\t"):
        raise ValueError("a reviewer name is one line of at most 80 characters")
    return name


def review(home: Home | str | None, chain_ids, decision: str, reviewer: str | None = None) -> int:
    """Approve or reject chains (stored with the time and reviewer); returns how many changed."""
    if decision not in ("approve", "reject"):
        raise ValueError(f"decision must be approve or reject, got {decision!r}")
    return store.review_chains(store.connect(home), [int(i) for i in chain_ids], decision, reviewer)


def edit_chain(home: Home | str | None, chain_id: int, text: str, reviewer: str | None = None,
               threshold: float = quality.THRESHOLD) -> dict:
    """Replace a chain's text, re-score it against its example, and store the decision.

    The chain becomes ``approved`` when the edited text passes (score >= threshold and all
    sections), else it stays ``flagged`` with its new score and reasons."""
    db = store.connect(home)
    c = chain_detail(home, chain_id)
    if c is None:
        raise ValueError(f"no chain {chain_id}")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the edited chain is empty")
    r = score_for(c["example"] or {}, text)
    r["faults"] = structure_faults(text)
    status = "approved" if quality.passes(r, threshold) and not r["faults"] else "flagged"
    store.review_chains(db, [chain_id], "edit", reviewer, edited_text=text, new_score=r["score"],
                        new_criteria=r["criteria"], new_status=status, new_reasons=chain_reasons(r, threshold))
    return {"id": chain_id, "score_before": c["score"], "score": r["score"], "criteria": r["criteria"],
            "sections_ok": r["sections_ok"], "status": status}


def bulk_review(home: Home | str | None, decision: str, dataset: str | None = None, reviewer: str | None = None,
                **filters) -> int:
    """Approve or reject every chain matching the filters (e.g. status=flagged, min_score=60)."""
    rows, _ = list_chains(home, dataset, limit=None, **filters)
    return review(home, [r["id"] for r in rows], decision, reviewer) if rows else 0


def quality_report(home: Home | str | None = None, dataset: str | None = None, threshold: float = quality.THRESHOLD,
                   **filters) -> dict:
    """What the Quality page shows: scores, pass rate per criterion and per task, the plan's targets."""
    db = store.connect(home)
    fill_missing_reasons(db)
    try:
        ds_id, ds_name = resolve_dataset(db, dataset)
    except ValueError:
        return {"count": 0}
    where, params = _filter(ds_id, **filters)
    rows = db.execute(f"SELECT c.score, c.criteria, c.status, e.task, c.reasons FROM chains c JOIN examples e "
                      f"ON e.id = c.example_id{where}", params).fetchall()
    n = len(rows)
    if not n:
        return {"count": 0, "dataset": ds_name}
    scores = [r[0] for r in rows]
    crit_ok: dict[str, int] = {}
    sections_all = 0
    per_task: dict[str, list] = {}
    contradicting = inventing = unchecked = faithful = 0
    for score, criteria, status, task, reasons in rows:
        crit = json.loads(criteria)
        for name, c in crit.items():
            if c.get("max"):
                crit_ok[name] = crit_ok.get(name, 0) + (c["points"] >= 0.7 * c["max"])
            else:   # faithfulness (and the judge): a deduction; passing it means none, and a judge that answered
                crit_ok[name] = crit_ok.get(name, 0) + (c.get("points", 0) >= 0 and not c.get("faults")
                                                        and not c.get("unavailable"))
        reasons = reasons or ""
        unchecked += "consistency" not in crit
        contradicting += ",contradiction," in reasons
        inventing += ",invented," in reasons
        faithful += "consistency" in crit and ",contradiction," not in reasons and ",invented," not in reasons
        sec = crit.get("sections")
        sections_all += bool(sec and sec["points"] >= sec["max"] - 1e-6)
        per_task.setdefault(task or "(none)", []).append(score)
    avg = sum(scores) / n
    share = sum(s >= threshold for s in scores) / n
    share_sections = sections_all / n
    share_faithful = faithful / n
    return {
        "count": n, "dataset": ds_name, "scores": scores, "average": round(avg, 2),
        "share_ge_threshold": round(share, 4), "share_all_sections": round(share_sections, 4),
        "threshold": threshold,
        "share_faithful": round(share_faithful, 4), "share_contradiction": round(contradicting / n, 4),
        "share_invented": round(inventing / n, 4), "unchecked": unchecked,
        "criteria_pass": {k: round(v / n, 4) for k, v in crit_ok.items()},
        "per_task": {t: {"count": len(s), "average": round(sum(s) / len(s), 2),
                         "pass_rate": round(sum(x >= threshold for x in s) / len(s), 4)} for t, s in sorted(per_task.items())},
        "status": {s: sum(1 for r in rows if r[2] == s) for s in STATUSES},
        "targets": [
            {"target": "average score >= 75", "value": round(avg, 2), "met": avg >= 75},
            {"target": f"more than 80% of chains >= {threshold:g}", "value": f"{100 * share:.1f}%", "met": share > 0.8},
            {"target": "all sections present", "value": f"{100 * share_sections:.1f}%", "met": sections_all == n},
            # Not the plan's own line: form targets can read "met" over chains that contradict their
            # labels or invent facts, so faithfulness has its own (a chain scored before the checks
            # existed counts as not shown to be faithful).
            {"target": f"at least {100 * FAITHFUL_TARGET:g}% of chains faithful (no contradiction, no invented "
                       f"specific)", "value": f"{100 * share_faithful:.1f}%", "met": share_faithful >= FAITHFUL_TARGET},
        ],
    }
