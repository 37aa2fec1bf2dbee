"""Phase 3 evaluation: generate on a test set, parse and score every answer, report the metrics.

``ccr eval`` and the Evaluate page run ``run_eval_job`` (job kind ``eval``). For each model
(the base first when ``base`` is given, then ``model``):

1. the examples come from a ChatML/CSV file or the working dataset's test split; the prompt is
   the example's messages up to its last user turn, exactly what training saw;
2. answers are generated greedily in batches with ``LocalGenerator`` (greedy: a rerun gives the
   same answers, so a resumed evaluation is consistent with its first half);
3. each answer is parsed (``scoring.parse_prediction``), scored by Phase 1's quality scorer,
   checked for the reasoning structure and for faithfulness (``answer_faithfulness``: the
   scorer's contradiction and grounding checks), and the batch is written to ``eval_predictions`` in one
   transaction keyed (evaluation, example): a stopped evaluation resumes where it was, with
   nothing generated twice and nothing lost;
4. the metrics are computed from the stored rows (``metrics.evaluate_predictions``), and the
   report is written atomically as JSON and as one self-contained HTML file
   (``engine.evaluation.report``).
"""

from __future__ import annotations

import gc
import hashlib
import json
import time
from pathlib import Path

from engine.evaluation import baseline, figures, formatting, metrics as M, scoring, stats
from engine.evaluation.report import write_report
from engine.core import store
from engine.data import tasks
from engine.data.example import reference_of
from engine.core.paths import Home, resolve_home


class EvalDataError(ValueError):
    """No usable examples: the message names the file or dataset."""


# ---------------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------------


def prompt_messages(messages: list[dict]) -> list[dict]:
    """The messages up to and including the last user turn (the reference answer is dropped).

    >>> prompt_messages([{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
    ...                  {"role": "assistant", "content": "a"}])
    [{'role': 'system', 'content': 's'}, {'role': 'user', 'content': 'u'}]
    """
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    return [{"role": m["role"], "content": m["content"]} for m in messages[:last_user + 1]]


def _example(key: str, task, messages: list[dict], labels: dict, transcript: str) -> dict:
    prompt = prompt_messages(messages)
    return {"key": key, "task": task if task in tasks.TASKS else None, "messages": prompt,
            "labels": labels or {}, "transcript": transcript, "reference": reference_of(messages),
            "prompt": prompt[-1]["content"] if prompt else ""}


def interleave(examples: list[dict], limit: int = 0) -> list[dict]:
    """Round-robin over tasks in their order of appearance, so that a small ``limit`` still
    covers every task; without a limit the order is simply the input order.

    >>> [e["key"] for e in interleave([{"key": k, "task": t} for k, t in
    ...  [("a", "csat"), ("b", "csat"), ("c", "churn"), ("d", "churn")]], 3)]
    ['a', 'c', 'b']
    """
    if not limit or limit >= len(examples):
        return list(examples)
    groups: dict = {}
    for e in examples:
        groups.setdefault(e.get("task"), []).append(e)
    out: list[dict] = []
    queues = [list(g) for g in groups.values()]
    while len(out) < limit and any(queues):
        for q in queues:
            if q and len(out) < limit:
                out.append(q.pop(0))
    return out


def load_examples(home: Home | str | None, data: str | None = None, dataset: str | None = None,
                  split: str = "test", limit: int = 0) -> tuple[list[dict], str, list[str]]:
    """(examples, a description of where they came from, problems with skipped lines)."""
    from engine.data import importer

    problems: list[str] = []
    examples: list[dict] = []
    if data:
        try:
            records = importer.read_records(data, default_split=split)
        except importer.ImportFileError as exc:
            raise EvalDataError(str(exc)) from None
        seen: set[str] = set()
        for line, ex, reason in records:
            if reason:
                problems.append(f"{data}:{line}: {reason}")
                continue
            key = ex["ex_id"] if ex["ex_id"] not in seen else f"{ex['ex_id']}#line{line}"
            seen.add(key)
            examples.append(_example(key, ex.get("task"), ex["messages"], ex.get("labels") or {}, ex["transcript"]))
        source = str(Path(data).resolve())
        if not examples:
            raise EvalDataError(f"{data}: no usable examples" + (f" ({problems[0]})" if problems else ""))
    else:
        db = store.connect(home)
        dataset = dataset or store.working_dataset(db)
        if not dataset:
            raise EvalDataError("no dataset yet: create one (ccr data synth) or pass --data FILE")
        row = db.execute("SELECT id FROM datasets WHERE name = ?", [dataset]).fetchone()
        if not row:
            raise EvalDataError(f"no dataset named {dataset!r}")
        for ex_id, task, messages, labels, transcript in db.execute(
                "SELECT ex_id, task, messages, labels, transcript FROM examples WHERE dataset_id = ? AND split = ? "
                "ORDER BY id", [row[0], split]):
            examples.append(_example(ex_id, task, json.loads(messages), json.loads(labels), transcript))
        source = f"dataset:{dataset}/{split}"
        if not examples:
            raise EvalDataError(f"dataset {dataset!r} has no {split} examples")
    for i, e in enumerate(examples):
        e["position"] = i
    return interleave(examples, limit), source, problems


# ---------------------------------------------------------------------------------------------
# Scoring one answer
# ---------------------------------------------------------------------------------------------


def answer_faithfulness(result: dict) -> dict:
    """One answer's faithfulness from its ``quality.score_chain`` result: ``contradictions`` and
    ``invented`` (unsupported specifics) counted by the scorer's checks, ``checked`` (the example
    had labels or a transcript to check against), ``judged`` (checked, and the answer has
    reasoning sentences inside its sections for the checks to read) and ``faithful`` (judged and
    neither fault; None when not judged: an answer that asserts nothing is not called faithful).

    >>> answer_faithfulness({"faithfulness": {"contradictions": 0, "invented": 0, "faithful": True,
    ...                                       "sentences": 0, "checked": True}})
    {'contradictions': 0, 'invented': 0, 'checked': True, 'judged': False, 'faithful': None}
    """
    f = result["faithfulness"]
    judged = bool(f.get("checked")) and f.get("sentences", 0) > 0
    return {"contradictions": int(f["contradictions"]), "invented": int(f["invented"]),
            "checked": bool(f.get("checked")), "judged": judged, "faithful": bool(f["faithful"]) if judged else None}


def score_answer(example: dict, text: str) -> dict:
    """Parsed labels, quality score, structure, faithfulness (``answer_faithfulness``, and the
    sentences at fault in ``at_fault``) and correctness of one answer (no model needed)."""
    from engine.chains.quality import at_fault, score_chain

    task, labels = example.get("task"), example.get("labels") or {}
    parsed = scoring.parse_prediction(task, text) if task else None
    q = score_chain(text, task, labels or None, example.get("transcript"))
    return {"parsed": parsed, "score": q["score"], "criteria": q["criteria"], "structure": scoring.structure_of(text),
            "faithfulness": answer_faithfulness(q), "at_fault": at_fault(q["criteria"]),
            "correct": tasks.agrees(task, parsed, labels) if task else None}


def model_fingerprint(model: str, home: Home) -> str:
    """Size and modification time of the model's weight files, so a run retrained under the same
    name gets a new run key instead of resuming the old weights' predictions."""
    import os

    from engine.core import model_catalog

    try:
        spec = model_catalog.resolve_model(model, home)
    except Exception as exc:  # the load itself will report it properly
        return f"unresolved:{exc}"
    folder = spec.adapter or spec.source
    if not folder or not os.path.exists(folder):
        return spec.name
    p = Path(folder)
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.suffix in (".safetensors", ".bin", ".gguf", ".json"))
    return ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)


def run_key(model: str, source: str, keys: list[str], cfg, fingerprint: str = "") -> str:
    """Identifies one evaluation's work: the same key means stored predictions are reused."""
    blob = json.dumps({"model": model, "source": source, "keys": keys, "max_new_tokens": cfg.max_new_tokens,
                       "max_prompt_tokens": cfg.max_prompt_tokens, "weights": fingerprint}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def load_generator(model: str, home, device: str | None = None, dtype: str | None = None):
    """A ``LocalGenerator`` for inference; a LoRA adapter is merged into its base weights.

    Why merge: an unmerged adapter adds two small matmuls and an add to every adapted linear
    layer at every step, which on a CPU costs far more than its FLOPs. Merged, the model is a
    plain transformers model of the base's size, and the answers stay the same up to float
    rounding. The adapter files on disk are untouched.
    """
    from engine.core.generation import LocalGenerator

    gen = LocalGenerator(model, home, device=device, dtype=dtype)
    if hasattr(getattr(gen, "model", None), "merge_and_unload"):
        gen.model = gen.model.merge_and_unload()
        gen.model.eval()
    return gen


def evaluate_model(home: Home, model: str, examples: list[dict], source: str, cfg, ctx=None, generator=None,
                   progress=None) -> int:
    """Generate, score and store predictions for ``examples``; returns the evaluation id.

    ``generator``: an already loaded ``LocalGenerator`` (tests, the demo); otherwise the model
    is loaded here, and only when some example still lacks a prediction.
    """
    db = store.connect(home)
    keys = [e["key"] for e in examples]
    key = run_key(model, source, keys, cfg, model_fingerprint(model, home))
    from engine.core.config import to_dict

    eval_id, resumed = store.start_evaluation(db, key, job_id=getattr(ctx, "job_id", None), model=model,
                                              data_path=source, n=len(examples), config=to_dict(cfg))
    done = store.eval_done_keys(db, eval_id)
    todo = [e for e in examples if e["key"] not in done]
    log = ctx.log if ctx else (lambda msg: None)
    log(f"evaluation {eval_id} of {model} on {source}: {len(examples)} examples"
        + (f", {len(examples) - len(todo)} already stored (resumed)" if resumed else ""))
    if progress:
        progress(len(examples) - len(todo))
    try:
        if todo and generator is None:
            generator = load_generator(model, home, device=cfg.device, dtype=cfg.dtype)
            info = getattr(generator, "info", {}) or {}
            log(f"loaded {model} on {generator.device}; precision {info.get('precision_reason') or info.get('dtype')}")
        bs = max(1, cfg.batch_size)
        # Sorting by prompt length makes each batch pad little; the rows are keyed, so order is free.
        todo.sort(key=lambda e: len(e["prompt"]))
        stored = [len(examples) - len(todo)]

        def store_row(e: dict, c) -> None:
            s = score_answer(e, c.text)
            store.write_eval_predictions(db, eval_id, [{
                **s, "key": e["key"], "task": e["task"], "labels": e["labels"], "output": c.text,
                "position": e["position"], "prompt": e["prompt"], "reference": e["reference"],
                "completion_tokens": c.completion_tokens, "finish_reason": c.finish_reason, "seconds": c.seconds}])
            stored[0] += 1
            if progress:
                progress(stored[0])

        def each_step(event: dict) -> None:
            # A batch of 60 decodes for many minutes: a cancel or pause lands between decode steps
            # (the answers finished so far are already stored; the rest are generated again on resume),
            # and the progress moves with the steps, not only when an answer is done.
            if ctx:
                ctx.check()
            if progress:
                progress(stored[0], event)

        for start in range(0, len(todo), bs):
            if ctx:
                ctx.check()
            chunk = todo[start:start + bs]
            # Each answer is scored and stored as soon as it is finished, not when its batch ends:
            # a kill loses only the answers still being written.
            generator.generate([e["messages"] for e in chunk], max_new_tokens=cfg.max_new_tokens,
                               temperature=0.0, batch_size=bs, max_prompt_tokens=cfg.max_prompt_tokens or None,
                               progress=each_step, on_row=lambda j, c, chunk=chunk: store_row(chunk[j], c))
    except BaseException:
        store.finish_evaluation(db, eval_id, "stopped")
        raise
    result = compute_metrics(db, eval_id, keys)
    store.finish_evaluation(db, eval_id, "succeeded", result)
    return eval_id


def predictions(db, evaluation_id: int, keys: list[str] | None = None) -> list[dict]:
    """An evaluation's stored predictions (decoded), in the evaluation's example order.

    Each row has ``faithfulness`` (``answer_faithfulness``) and ``at_fault`` (the sentences at
    fault, ``quality.at_fault``). A prediction stored before faithfulness was measured has
    neither stored: its answer is scored again here, against its labels and the transcript in
    its stored prompt (``faithfulness["on_read"]`` says so); nothing is written back.
    """
    from engine.chains.quality import at_fault

    out = []
    wanted = set(keys) if keys is not None else None
    for r in list(db.query("SELECT * FROM eval_predictions WHERE evaluation_id = ? ORDER BY position, id",
                           [evaluation_id])):
        if wanted is not None and r["example_key"] not in wanted:
            continue
        for k in ("parsed", "labels", "criteria", "structure", "faithfulness"):
            r[k] = json.loads(r[k]) if r.get(k) else None
        r["correct"] = None if r["correct"] is None else bool(r["correct"])
        if r["faithfulness"] is None:
            transcript = tasks.split_user_content(r["prompt"])[0] if r.get("prompt") else None
            again = score_answer({"task": r["task"], "labels": r["labels"] or {}, "transcript": transcript},
                                 r["output"])
            r["faithfulness"] = {**again["faithfulness"], "on_read": True}
            r["at_fault"] = again["at_fault"]
        else:
            r["at_fault"] = at_fault(r["criteria"])
        out.append(r)
    return out


def metric_rows(rows: list[dict]) -> list[dict]:
    """``predictions()`` rows as ``metrics.evaluate_predictions`` reads them; ``key`` pairs two
    models' answers to the same example in the paired tests."""
    return [{"key": r["example_key"], "task": r["task"], "labels": r["labels"], "parsed": r["parsed"],
             "score": r["score"], "structure": r["structure"], "criteria": r.get("criteria"),
             "finish_reason": r.get("finish_reason"), "faithfulness": r.get("faithfulness")} for r in rows]


def compute_metrics(db, evaluation_id: int, keys: list[str] | None = None) -> dict:
    rows = predictions(db, evaluation_id, keys)
    m = M.evaluate_predictions(metric_rows(rows))
    tokens = [r["completion_tokens"] for r in rows if r.get("completion_tokens") is not None]
    m["generation"] = {
        "mean_completion_tokens": round(sum(tokens) / len(tokens), 1) if tokens else None,
        "truncated_rate": round(sum(1 for r in rows if r.get("finish_reason") == "length") / len(rows), 4)
        if rows else 0.0,
    }
    return m


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def evaluation_row(db, evaluation_id: int) -> dict:
    r = next(db.query("SELECT * FROM evaluations WHERE id = ?", [evaluation_id]), None)
    if r is None:
        raise ValueError(f"no evaluation {evaluation_id}")
    r["metrics"] = json.loads(r["metrics"]) if r["metrics"] else None
    r["config"] = json.loads(r["config"]) if r.get("config") else {}
    if r["metrics"] is not None and "faithfulness" not in r["metrics"]:
        r["metrics"] = with_faithfulness(db, evaluation_id, r["metrics"])
    return r


def with_faithfulness(db, evaluation_id: int, metrics: dict) -> dict:
    """``metrics`` of an evaluation finished before faithfulness was measured, with its
    ``faithfulness`` section (and those figures' intervals) computed from the stored answers on
    read (``predictions``), so old evaluations get the figures, intervals and paired tests too."""
    rows = metric_rows(predictions(db, evaluation_id))
    metrics = {**metrics, "faithfulness": scoring.faithfulness_metrics(rows)}
    if metrics.get("intervals") is not None:
        keys = [f"faithfulness.{k}" for k in scoring.FAITHFULNESS_KEYS]
        metrics["intervals"] = {**metrics["intervals"], **figures.intervals(rows, keys)}
    return metrics


def intervals_of(db, evaluation_id: int, metrics: dict | None = None) -> dict:
    """An evaluation's figures with their 95% intervals: stored with its metrics, or computed from
    its stored predictions for an evaluation finished before intervals were recorded."""
    if metrics is None:
        metrics = evaluation_row(db, evaluation_id)["metrics"] or {}
    if metrics.get("intervals") is not None:
        return metrics["intervals"]
    return figures.intervals(metric_rows(predictions(db, evaluation_id)))


def comparison(db, base_id: int, tuned_id: int, keys: list[str] | None = None) -> dict:
    """Headline deltas of tuned against base (or only ``keys``), each with its paired test over the
    shared examples."""
    a, b = evaluation_row(db, base_id), evaluation_row(db, tuned_id)
    if not a["metrics"] or not b["metrics"]:
        return {}
    return M.compare(metric_rows(predictions(db, base_id)), metric_rows(predictions(db, tuned_id)),
                     M.headline(a["metrics"]), M.headline(b["metrics"]), keys)


def disagreements(a: list[dict], b: list[dict], limit: int = 20) -> list[dict]:
    """Examples where two models' answers differ in correctness (first), in faithfulness (one
    judged faithful, the other not) or in parsed labels.

    ``a`` and ``b`` are ``predictions()`` of the base and the tuned model.
    """
    by_key = {r["example_key"]: r for r in a}
    flips, unfaithful, others = [], [], []
    for rb in b:
        ra = by_key.get(rb["example_key"])
        if ra is None:
            continue
        item = {"key": rb["example_key"], "task": rb["task"], "labels": rb["labels"], "prompt": rb.get("prompt"),
                "base": _side(ra), "tuned": _side(rb)}
        fa, fb = ((r.get("faithfulness") or {}).get("faithful") for r in (ra, rb))
        if bool(ra["correct"]) != bool(rb["correct"]):
            flips.append(item)
        elif fa != fb and False in (fa, fb):  # one answer unfaithful, the other faithful or not judged
            unfaithful.append(item)
        elif ra["parsed"] != rb["parsed"]:
            others.append(item)
    return (flips + unfaithful + others)[:limit]


def _side(r: dict) -> dict:
    return {"output": r["output"], "parsed": r["parsed"], "correct": r["correct"], "score": r["score"],
            "faithfulness": r.get("faithfulness"), "at_fault": r.get("at_fault") or []}


# How the report's figures are to be read; written into every report so a JSON reader need not
# know this code. docs/evaluation.md explains each line.
STATISTICS = {
    "confidence": 0.95,
    "proportions": "Wilson score interval",
    "means_mae_f1": f"percentile bootstrap, {stats.BOOTSTRAP_RESAMPLES} resamples, seed {stats.BOOTSTRAP_SEED}",
    "paired_proportions": "exact McNemar test (binomial on the discordant pairs), two-sided",
    "paired_other": f"paired bootstrap, {stats.BOOTSTRAP_RESAMPLES} resamples, seed {stats.BOOTSTRAP_SEED}, two-sided",
    "significant": f"p < {stats.ALPHA}",
    "pairing": "by example id; examples only one model answered are left out of the test",
    "faithfulness": "the quality scorer's consistency and grounding checks over each answer's reasoning; "
                    "faithful_rate over the judged answers (with reasoning sentences), contradiction_rate and "
                    "invented_per_answer over every answer",
}


def constant_answer(db, evaluation_ids: list[int], rows: dict[int, list[dict]] | None = None) -> dict:
    """The best constant answer per task on the examples of the last of ``evaluation_ids`` (the
    tuned, or only, model), and each model's overall accuracy against it with a paired test
    (``engine.evaluation.baseline``); the figures are computed from the stored answers on read
    (``rows``: those ``predictions()`` already read, by evaluation id)."""
    rows = rows or {eid: predictions(db, eid) for eid in evaluation_ids}
    best = baseline.best_constant(rows[evaluation_ids[-1]]) if evaluation_ids else baseline.best_constant([])
    models = []
    for eid in evaluation_ids:
        versus = baseline.versus_constant(rows[eid], best)
        model = evaluation_row(db, eid)["model"]
        models.append({"evaluation_id": eid, "model": model, **versus,
                       "summary": baseline.summary(best, model, versus)})
    return {**best, "description": baseline.describe(best), "models": models}


def build_report(db, evaluation_ids: list[int], roles: list[str], source: str, n_examples: int,
                 examples_in_report: int = 20) -> dict:
    """The report as a dict; with two evaluations the first is the base and the second the tuned."""
    models = []
    for eid, role in zip(evaluation_ids, roles):
        ev = evaluation_row(db, eid)
        metrics = ev["metrics"]
        if metrics is not None and metrics.get("intervals") is None:
            metrics["intervals"] = intervals_of(db, eid, metrics)
        models.append({"evaluation_id": eid, "model": ev["model"], "role": role, "metrics": metrics,
                       "headline": M.headline(metrics) if metrics else {}})
    last = models[-1]["metrics"] if models else None
    preds = {eid: predictions(db, eid) for eid in evaluation_ids}   # read once: examples and the constant bar
    report = {"created_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "data": source, "n_examples": n_examples,
              "models": models, "headline": {m["model"]: m["headline"] for m in models},
              "intervals": {m["model"]: (m["metrics"] or {}).get("intervals", {}) for m in models},
              "faithfulness": {m["model"]: (m["metrics"] or {}).get("faithfulness") for m in models},
              "statistics": STATISTICS, "sample_sizes": formatting.sample_sizes(last or {}),
              "small_sample_warning": formatting.small_sample_warning(last), "comparison": None, "examples": [],
              "constant_answer": constant_answer(db, evaluation_ids, preds)}
    if len(models) == 2:
        base, tuned = models
        report["comparison"] = {"base": base["model"], "tuned": tuned["model"],
                                "deltas": comparison(db, base["evaluation_id"], tuned["evaluation_id"])}
        report["examples"] = disagreements(preds[base["evaluation_id"]], preds[tuned["evaluation_id"]],
                                           examples_in_report)
    elif models:
        wrong = [r for r in preds[models[0]["evaluation_id"]] if r["correct"] is False]
        report["examples"] = [{"key": r["example_key"], "task": r["task"], "labels": r["labels"],
                               "prompt": r.get("prompt"), "model": _side(r)} for r in wrong[:examples_in_report]]
    return report


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------


def default_report_path(home: Home, job_id: int | None) -> Path:
    return resolve_home(home).data / "reports" / f"eval-{job_id or int(time.time())}.json"


def run_evaluation(home: Home | str | None, cfg, ctx=None, generators: dict | None = None) -> dict:
    """Evaluate ``cfg.model`` (and ``cfg.base``) and write the report; returns the job result.

    ``generators``: model name -> loaded ``LocalGenerator`` to reuse (tests, the demo).
    """
    home = resolve_home(home).ensure()
    examples, source, problems = load_examples(home, cfg.data, cfg.dataset, cfg.split, cfg.limit)
    log = ctx.log if ctx else (lambda msg: None)
    for p in problems[:20]:
        log(f"skipped {p}")
    runs = [(cfg.base, "base"), (cfg.model, "tuned")] if cfg.base else [(cfg.model, "model")]
    total = len(examples) * len(runs)
    ids = []
    rate_base: dict = {}
    for i, (model, role) in enumerate(runs):
        offset = i * len(examples)

        def progress(done: int, event: dict | None = None, offset=offset, model=model) -> None:
            if ctx:
                finished = offset + done
                # The rate counts only what this run generated: predictions stored by an earlier
                # run (a resume) arrive at once and would make the ETA far too optimistic.
                base = rate_base.setdefault("done", finished)
                elapsed = time.time() - rate_base.setdefault("t", time.time())
                made = finished - base
                extra: dict = {}
                fraction = None
                if event:  # inside a batch: the open rows' share of their token budget is work done
                    open_rows = event["of"] - event["done"]
                    part = open_rows * min(0.99, event["step"] / max(1, event["budget"]))
                    fraction = (finished + part) / total
                    extra["batch"] = {**event, "examples": event["of"], "unit": "answers"}
                ctx.progress(finished, total, model=model, stage=f"evaluating {model}", fraction=fraction,
                             eta_s=round(elapsed / made * (total - finished), 1) if made > 0 else None, **extra)

        gen = (generators or {}).get(model)
        ids.append(evaluate_model(home, model, examples, source, cfg, ctx=ctx, generator=gen, progress=progress))
        gc.collect()  # the model loaded for this run is no longer referenced: free it before the next
    db = store.connect(home)
    if len(ids) == 2:
        store.finish_evaluation(db, ids[1], "succeeded", compare_to=ids[0])
    report = build_report(db, ids, [r for _, r in runs], source, len(examples), cfg.examples_in_report)
    report["skipped_lines"] = problems
    path = Path(cfg.report) if cfg.report else default_report_path(home, getattr(ctx, "job_id", None))
    json_path, html_path = write_report(report, path)
    for eid in ids:
        store.finish_evaluation(db, eid, "succeeded", report_path=json_path)
    log(f"report: {json_path} and {html_path}")
    const = report["constant_answer"]
    if const["n"]:
        log(const["description"])
        for m in const["models"]:
            log(m["summary"])
    return {"evaluations": ids, "report": json_path, "html": html_path, "n_examples": len(examples),
            "headline": report["headline"], "intervals": report["intervals"], "skipped": len(problems),
            "faithfulness": {m["model"]: (m["metrics"] or {}).get("faithfulness") for m in report["models"]},
            "small_sample_warning": report["small_sample_warning"], "comparison": report["comparison"],
            "constant_answer": const}


def run_eval_job(ctx, config: dict) -> dict:
    from engine.core.config import EvalConfig, load_config

    cfg = load_config(EvalConfig, data=config)
    return run_evaluation(ctx.home, cfg, ctx=ctx)
