"""The entry layer: what the pages and the ``ccr`` commands call. It imports nothing heavy (no
torch, no transformers): pages stay fast and a broken GPU stack can never take the UI down.

For each action there is one function that validates its input and queues the job (a page) or
hands back what ``ccr`` runs inline; for each thing a page shows, one query function. They are
grouped by page area in the modules beside this one and all re-exported here, so pages and
commands call ``api.NAME``:

- ``data``: datasets and examples (Data page, ``ccr data``, ``ccr models list``);
- ``pipeline``: jobs, the pipeline overview, the demo (Jobs and Pipeline pages, ``ccr jobs``, ``ccr demo``);
- ``reasoning``: chain generation, review, quality, export, scoring (``ccr generate``, ``review``, ``export reasoning``, ``score``);
- ``training``: presets, dry run, launch, runs (Train page, ``ccr train``, ``ccr export model``);
- ``evals``: evaluations and comparisons (Evaluate and Compare pages, ``ccr eval``);
- ``serving``: servers and batch inference (Deploy page, ``ccr serve``, ``ccr infer``).

Every function opens its own short-lived connection, so it is safe from any Streamlit thread.
Reads return plain dicts and lists (the SQL is in ``engine.queries``); writes go through
``engine.core.store`` or queue jobs.
"""

from __future__ import annotations

from engine.api.common import db, home, home_at, parse_overrides, run_job
from engine.api.data import (
    datasets, current_dataset, set_current_dataset, dataset_id, examples, example, label_distribution,
    task_counts, start_synth, start_import, clean_dataset_name, dataset_usage, rename_dataset, delete_dataset,
    export_dataset, models, model_names, chain_tasks, run_synth, check_import, run_import, write_dataset,
    model_availability)
from engine.api.pipeline import (
    list_jobs, job, active_jobs, cancel_job, pause_job, resume_job, worker, jobs_queued, job_log,
    pipeline_state, engine_status, demo_defaults, last_demo, start_demo, run_demo)
from engine.api.reasoning import (
    generate_fields, generate_presets, generate_config, generate_gate, start_generate_test,
    record_generate_override, start_generate, generate_title, generate_jobs, chains, chain, chain_parts,
    at_fault, review_chains, bulk_review, edit_chain, check_reviewer, quality_report, export_reasoning,
    score_chatml, generate_setup, run_generate, score_lines, score_summary)
from engine.api.training import (
    train_presets, train_data_files, train_estimate, start_training, resume_training, train_runs, train_run,
    train_metrics, start_export_model, train_dry_run, prepare_train, run_training, run_folder, export_model)
from engine.api.evals import (
    evaluations, evaluation, eval_predictions, eval_disagreements, eval_deltas, eval_constant_answer, eval_pair,
    eval_intervals,
    format_figure, format_p, small_sample_warning, eval_figures, faithfulness_word, confusion_views,
    start_eval, read_report, chat_messages, example_prompt, score_answer, eval_title, eval_plan, run_eval)
from engine.api.serving import (
    new_api_key, start_server, check_port_free, server_info, servers, find_server, compare_servers,
    start_infer, check_bind, run_server, run_infer, COMPARE_KEY)
from engine.core.jobs import EXPECTED_ERRORS, expected_error
from engine.core.schema import ACTIVE_JOB_STATES
from engine.data import uploads
from engine.evaluation.stats import SMALL_SAMPLE  # noqa: F401 (the pages' small-sample rule: fewer examples per task)
from engine.serving.client import api_snippets, stream_chat, stream_pair
from engine.training.probes import precision_choice

__all__ = [  # what pages and commands call (the modules' public names)
    "datasets", "current_dataset", "set_current_dataset", "dataset_id", "examples", "example",
    "label_distribution", "task_counts", "start_synth", "start_import", "clean_dataset_name", "dataset_usage",
    "rename_dataset", "delete_dataset", "export_dataset", "models", "model_names", "chain_tasks", "run_synth",
    "check_import", "run_import", "write_dataset", "model_availability", "list_jobs", "job", "active_jobs",
    "cancel_job", "pause_job", "resume_job", "worker", "jobs_queued", "job_log", "pipeline_state",
    "engine_status", "demo_defaults", "last_demo", "start_demo", "run_demo", "generate_fields",
    "generate_presets", "generate_config", "generate_gate", "start_generate_test", "record_generate_override",
    "start_generate", "generate_title", "generate_jobs", "chains", "chain", "chain_parts", "at_fault",
    "review_chains", "bulk_review", "edit_chain", "check_reviewer", "quality_report", "export_reasoning",
    "score_chatml", "generate_setup", "run_generate", "score_lines", "score_summary", "train_presets",
    "train_data_files", "train_estimate", "start_training", "resume_training", "train_runs", "train_run",
    "train_metrics", "start_export_model", "train_dry_run", "prepare_train", "run_training", "run_folder",
    "export_model", "evaluations", "evaluation", "eval_predictions", "eval_disagreements", "eval_deltas",
    "eval_constant_answer",
    "eval_pair", "eval_intervals", "format_figure", "format_p", "small_sample_warning", "eval_figures",
    "faithfulness_word", "confusion_views", "start_eval", "read_report", "chat_messages", "example_prompt",
    "score_answer", "eval_title", "eval_plan", "run_eval", "new_api_key", "start_server", "check_port_free",
    "server_info", "servers", "find_server", "compare_servers", "start_infer", "check_bind", "run_server",
    "run_infer", "COMPARE_KEY", "db", "home", "home_at", "parse_overrides", "run_job", "EXPECTED_ERRORS",
    "expected_error", "ACTIVE_JOB_STATES", "SMALL_SAMPLE", "api_snippets", "stream_chat", "stream_pair", "precision_choice",
    "estimate", "count_lines"]

# Estimates before launch (engine/estimate.py): the pages and the `--dry-run` commands show the same.
# Here rather than in a page area's module because it spans them all (and calls ``train_estimate``
# through this module, which tests replace).


def estimate(kind: str, **params) -> dict:
    """How long a job would take, from the speed this machine measured (``engine.estimate``).

    ``kind`` and its parameters:

    - ``generate``: ``values`` (the Generate page's settings, as for ``start_generate``) or
      ``config`` (a validated one: ``ccr generate``);
    - ``train``: ``preset``, ``data``, ``overrides`` (as for ``start_training``; runs the dry run);
    - ``eval``: ``model``, ``base``, ``data``, ``dataset``, ``split``, ``limit``, ``max_new_tokens``,
      ``batch_size`` (as for ``start_eval``);
    - ``infer``: ``model``, ``lines`` (input lines), ``batch_size``, ``max_new_tokens``;
    - ``demo``: ``train_limit``, ``eval_limit``, ``seed`` (as for ``start_demo``), and ``ccr demo``'s
      ``validation_limit``, ``max_new_tokens``, ``generate_overrides``, ``train_overrides``.

    Returns ``{"seconds" (None: unknown), "text" (the duration and its basis), "long" (over
    30 minutes or unknown: the pages ask for a confirmation), ...}``; ``{"error": message}`` when
    the inputs cannot be estimated (no dataset, a bad file).
    """
    from engine import estimate as E

    conn = db()
    try:
        if kind == "generate":
            if "config" in params:
                from engine.core.config import to_dict

                config = to_dict(params["config"])
            else:
                config = generate_config(params["values"])
            return E.generate(conn, config, E.generate_pending(conn, config))
        if kind == "train":
            from engine.core.config import TrainConfig, load_config, to_dict

            dry = train_estimate(params["preset"], params.get("data"), params.get("overrides"))
            if dry.get("error"):
                return {"error": dry["error"]}
            if not dry.get("data"):
                return {"error": "no training data: the dry run cannot count steps"}
            cfg = to_dict(load_config(TrainConfig, params["preset"], parse_overrides(params.get("overrides"))))
            cfg["device"], cfg["precision"] = dry["device"], dry["precision"]
            return E.train(conn, cfg, dry["data"]["total_steps"], dry["data"]["mean_length"])
        if kind == "eval":
            from engine.evaluation import evaluate
            from engine.core import model_catalog as m

            data = params.get("data")
            if data:  # the folders start_eval accepts, before reading anything
                data = str(m.check_path_allowed(data, home(), "evaluation data"))
            rows, _, _ = evaluate.load_examples(home(), data, params.get("dataset"),
                                                    params.get("split", "test"), int(params.get("limit") or 0))
            names = [params["model"]] + ([params["base"]] if params.get("base") else [])
            return E.evaluate(conn, names, len(rows), int(params.get("max_new_tokens", 512)),
                              int(params.get("batch_size", 8)), home())
        if kind == "infer":
            return E.infer(conn, params["model"], int(params["lines"]), int(params.get("max_new_tokens", 512)),
                           int(params.get("batch_size", 8)), home())
        if kind == "demo":
            return E.demo_plan(conn, seed=int(params.get("seed", 0)), train_limit=params.get("train_limit"),
                               eval_limit=int(params.get("eval_limit") or 0), home=home(),
                               **{k: params[k] for k in ("validation_limit", "max_new_tokens", "train_overrides",
                                                         "generate_overrides") if k in params})
    except (ValueError, OSError) as exc:  # ConfigError, EvalDataError, no dataset: say why
        return {"error": str(exc)}
    raise ValueError(f"unknown kind {kind!r} (expected generate, train, eval, infer or demo)")


def count_lines(content: bytes | None = None, path: str | None = None) -> int:
    """Non-blank lines of an uploaded file's bytes or of a file (batch inference's input size)."""
    if content is None and path:
        from engine.core import model_catalog as m

        content = m.check_path_allowed(path, home(), "input file").read_bytes()
    return uploads.count_lines(content)
