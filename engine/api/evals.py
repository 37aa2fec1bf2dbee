"""The Evaluate and Compare pages' entry points: evaluations, their figures and comparisons
(``ccr eval``), and one answer scored against an example."""

from __future__ import annotations

import json
from pathlib import Path

from engine import queries
from engine.api.common import db, enqueue, home, run_job
from engine.api.data import example


def evaluations(limit: int = 100) -> list[dict]:
    """Evaluations, newest first, with their headline figures."""
    from engine.evaluation import metrics as M

    rows = queries.evaluations(db(), limit)
    for r in rows:
        r["headline"] = M.headline(r["metrics"]) if r["metrics"] else {}
    return rows


def evaluation(evaluation_id: int) -> dict | None:
    from engine.evaluation import evaluate

    try:
        return evaluate.evaluation_row(db(), evaluation_id)
    except ValueError:
        return None


def eval_predictions(evaluation_id: int) -> list[dict]:
    from engine.evaluation import evaluate

    return evaluate.predictions(db(), evaluation_id)


def eval_disagreements(base_id: int, tuned_id: int, limit: int = 50) -> list[dict]:
    """Examples where the two evaluations' answers differ in correctness (first) or parsed labels."""
    from engine.evaluation import evaluate

    conn = db()
    return evaluate.disagreements(evaluate.predictions(conn, base_id), evaluate.predictions(conn, tuned_id), limit)


def eval_deltas(base_id: int, tuned_id: int, keys: list[str] | None = None) -> dict:
    """Headline deltas of tuned against base (or only ``keys``), each with its paired test
    (p-value, significant, verdict)."""
    from engine.evaluation import evaluate

    try:
        return evaluate.comparison(db(), base_id, tuned_id, keys)
    except ValueError:
        return {}


def eval_constant_answer(evaluation_ids: list[int]) -> dict:
    """The best constant answer per task on the last evaluation's examples and each evaluation's
    overall accuracy against it, with its paired test (``engine.evaluation.baseline``)."""
    from engine.evaluation import evaluate

    try:
        return evaluate.constant_answer(db(), list(evaluation_ids))
    except ValueError:
        return {}


def eval_pair(model_a: str, model_b: str) -> tuple[dict, dict] | None:
    """The newest finished base-vs-tuned evaluation of these two models (either way round), as
    (base evaluation, tuned evaluation) rows of ``evaluations()``, or None."""
    rows = evaluations()
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        base = by_id.get(r["compare_to"])
        if r["metrics"] and base and base["metrics"] and {r["model"], base["model"]} == {model_a, model_b}:
            return base, r
    return None


def eval_intervals(evaluation_id: int) -> dict:
    """An evaluation's figures with their 95% intervals and n (``figures.intervals``)."""
    from engine.evaluation import evaluate

    try:
        return evaluate.intervals_of(db(), evaluation_id)
    except ValueError:
        return {}


def format_figure(entry: dict | None, value=None) -> str:
    """``0.40 [0.17, 0.69], n=10`` (the one formatter, shared with the report and the CLI)."""
    from engine.evaluation import formatting

    return formatting.format_figure(entry, value)


def format_p(test: dict) -> str:
    """A paired test's p-value for a table: ``0.0312``, ``<0.0005``, ``n/a``."""
    from engine.evaluation import formatting

    return formatting.format_p(test).lstrip("=")


def small_sample_warning(metrics: dict | None) -> str | None:
    from engine.evaluation import formatting

    return formatting.small_sample_warning(metrics)


def eval_figures(evaluation_id: int) -> dict:
    """An evaluation's ``metrics`` and ``headline`` complete with faithfulness: for an evaluation
    finished before faithfulness was measured, computed from its stored answers (not written back)."""
    from engine.evaluation import evaluate
    from engine.evaluation import metrics as M

    try:
        metrics = evaluate.evaluation_row(db(), evaluation_id)["metrics"]
    except ValueError:
        return {"metrics": None, "headline": {}}
    return {"metrics": metrics, "headline": M.headline(metrics) if metrics else {}}


def faithfulness_word(faithfulness: dict | None) -> str:
    """One answer's faithfulness in words: ``faithful``, ``unfaithful: 1 contradiction``, ``not judged: ...``."""
    from engine.evaluation import formatting

    return formatting.faithfulness_word(faithfulness)


def confusion_views(metrics: dict | None) -> list[dict]:
    """An evaluation's confusion matrices over each task's whole label space (``scoring.confusion_views``)."""
    from engine.evaluation import scoring

    return scoring.confusion_views(metrics)


def start_eval(model: str, base: str | None = None, data: str | None = None, dataset: str | None = None,
               split: str = "test", limit: int = 0, max_new_tokens: int = 512, batch_size: int = 8) -> int:
    """Queue an evaluation (of ``model``, and of ``base`` for a comparison)."""
    if data:
        from engine.core import model_catalog as m

        data = str(m.check_path_allowed(data, home(), "evaluation data"))
    config = {"model": model, "base": base or None, "data": data or None, "dataset": dataset or None, "split": split,
              "limit": int(limit), "max_new_tokens": int(max_new_tokens), "batch_size": int(batch_size)}
    title = eval_title(model, base)
    key = "eval:" + json.dumps(config, sort_keys=True)
    return enqueue("eval", config, title, dedupe_key=key)


def read_report(path: str | None) -> bytes | None:
    """A report file's bytes for a download button (only files inside the home folder)."""
    if not path:
        return None
    p = Path(path).resolve()
    root = home().data.resolve()
    if root not in p.parents or not p.is_file():
        return None
    return p.read_bytes()


def chat_messages(transcript: str, task: str) -> list[dict]:
    """The standard prompt for a pasted transcript (what the dataset's examples look like)."""
    from engine.data import tasks

    return [{"role": "system", "content": tasks.SYSTEM_PROMPT},
            {"role": "user", "content": tasks.user_content(transcript, task)}]


def example_prompt(example_id: int) -> dict | None:
    """An example's prompt (messages up to the last user turn), task, labels and transcript."""
    from engine.data.example import reference_of
    from engine.evaluation import evaluate

    ex = example(example_id)
    if not ex:
        return None
    reference = reference_of(ex["messages"])
    return {"messages": evaluate.prompt_messages(ex["messages"]), "task": ex["task"], "labels": ex["labels"],
            "transcript": ex["transcript"], "ex_id": ex["ex_id"], "reference": reference}


def score_answer(text: str, task: str | None, labels: dict | None = None, transcript: str | None = None) -> dict:
    """Parsed labels, quality score, structure and correctness of one answer."""
    from engine.evaluation import evaluate

    s = evaluate.score_answer({"task": task, "labels": labels or {}, "transcript": transcript}, text)
    s["sections"] = {k: v for k, v in s["structure"].items()}
    return s


def eval_title(model: str, base: str | None) -> str:
    return f"evaluate {model}" + (f" vs {base}" if base else "")


def eval_plan(models: list[str], data: str | None, dataset: str | None, split: str, limit: int,
              max_new_tokens: int, batch_size: int) -> dict:
    """``ccr eval``'s checks and estimate: the examples it would read (EvalDataError, a ValueError,
    when they are unusable) and how long ``models`` would take on them (``estimate.evaluate``)."""
    from engine import estimate as E
    from engine.evaluation import evaluate

    rows, _, _ = evaluate.load_examples(home(), data, dataset, split, limit)
    return E.evaluate(db(), models, len(rows), max_new_tokens, batch_size, home())


def run_eval(config: dict) -> dict:
    """``ccr eval``: evaluate in this process (``config`` as ``start_eval``'s, plus ``report``,
    ``device`` and ``dtype``); returns the job row."""
    return run_job("eval", config, eval_title(config["model"], config.get("base")))
