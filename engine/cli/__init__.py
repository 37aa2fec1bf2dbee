"""``ccr``: the command line: argument parsing and printing over ``engine.api``, the entry layer
the app's pages call too (a command runs its job in its own process, where a page queues it).

Every command takes ``--home DIR`` (or ``CCR_HOME``): the state folder with the database,
JSONL files, logs and trained models. Exit status: 0 success, 1 partial success (some input
rejected, some job failed), 2 cannot run (bad arguments, unreadable file, missing model).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from engine import api
from engine.cli.chains import (cmd_export_reasoning, cmd_generate, cmd_review_approve, cmd_review_edit,
                               cmd_review_list, cmd_review_reject, cmd_review_show, cmd_score, os_user)
from engine.cli.data import (cmd_data_delete, cmd_data_export, cmd_data_import, cmd_data_list, cmd_data_rename,
                             cmd_data_synth, cmd_jobs_cancel, cmd_jobs_list, cmd_jobs_log, cmd_jobs_pause,
                             cmd_jobs_resume, cmd_models_list, cmd_worker)
from engine.cli.runs import cmd_demo, cmd_eval, cmd_export_model, cmd_infer, cmd_serve, cmd_train


def build_parser() -> argparse.ArgumentParser:
    # --home is accepted before or after the command; SUPPRESS keeps a later default from
    # overwriting a value given earlier.
    home_parent = argparse.ArgumentParser(add_help=False)
    home_parent.add_argument("--home", default=argparse.SUPPRESS,
                             help="state folder (database, JSONL, logs, models); default $CCR_HOME or the checkout's data/")
    parser = argparse.ArgumentParser(prog="ccr", description="Contact-center reasoning: data, generation, training, "
                                     "evaluation and serving, headless.", parents=[home_parent])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data_parsers(sub, home_parent)
    _add_job_parsers(sub, home_parent)
    _add_eval_parsers(sub, home_parent)
    _add_demo_serve_parsers(sub, home_parent)
    esub = _add_train_parsers(sub, home_parent)
    _add_generate_parsers(sub, home_parent)
    _add_review_parsers(sub, home_parent)
    _add_export_score_parsers(sub, esub, home_parent)
    return parser


def _model_args(p, what: str) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--model", help=f"model to {what}: registry name, HF id or local folder "
                       "(default smollm2-135m-instruct)")
    group.add_argument("--run", help="a trained run's adapter (same as --model run:RUN)")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best present)")
    p.add_argument("--dtype", help="weights' precision: auto (default: bf16 on CUDA and on CPUs with AMX-BF16 or "
                   "AVX512-BF16, fp16 on MPS, else fp32), fp32, bf16 or fp16")


def _review_filter_args(p, default_status=None) -> None:
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


def _add_data_parsers(sub, home_parent) -> None:
    """ccr data: synth, import, export, list, rename, delete."""
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


def _add_job_parsers(sub, home_parent) -> None:
    """ccr models list, ccr worker, ccr jobs."""
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


def _add_eval_parsers(sub, home_parent) -> None:
    """Phase 3: ccr eval, ccr infer."""
    # Phase 3: eval, infer, serve
    p = sub.add_parser("eval", help="evaluate a model (and its base) on a test set: structure, quality score, "
                       "task accuracy; writes a JSON and an HTML report", parents=[home_parent])
    _model_args(p, "evaluate")
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
    _model_args(p, "run")
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


def _add_demo_serve_parsers(sub, home_parent) -> None:
    """ccr demo, ccr serve."""
    p = sub.add_parser("demo", help="the whole loop on CPU: synth -> generate -> export -> train -> evaluate base "
                       "vs tuned (rerun to continue after a stop)", parents=[home_parent])
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    D = api.demo_defaults()
    p.add_argument("--train-limit", type=int, default=None, help="chains for N train examples, balanced across tasks "
                   f"and label values (default {D['train_chains']}: what fits an hour on two cores; 0: all 300)")
    p.add_argument("--validation-limit", type=int, default=D['validation_chains'], help="chains for N validation "
                   f"examples, for the eval-loss curve (default {D['validation_chains']})")
    p.add_argument("--eval-limit", type=int, default=0, help="test examples to evaluate on (0: all 60)")
    p.add_argument("--max-new-tokens", type=int, default=D['max_new_tokens'],
                   help=f"longest answer in the evaluation (default {D['max_new_tokens']})")
    p.add_argument("--run", help="run name (default demo-seedN)")
    p.add_argument("--generate-override", action="append", metavar="KEY=VALUE",
                   help="override a teacher setting of configs/generate/generate_smollm2_cpu.yaml, e.g. "
                        "prompt_version=4 (repeatable; the demo keeps its dataset, split, limit and balanced selection)")
    p.add_argument("--train-override", action="append", metavar="KEY=VALUE",
                   help="override a training setting of configs/train/smollm2_cpu.yaml (repeatable)")
    p.add_argument("--report", help="report path (default HOME/reports/RUN.json)")
    p.add_argument("--dry-run", action="store_true", help="print how long the whole loop would take (from the speed "
                   "measured on this machine), and exit")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible chat API (foreground; Ctrl-C stops)",
                       parents=[home_parent])
    _model_args(p, "serve")
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


def _add_train_parsers(sub, home_parent):
    """Phase 2: ccr train, ccr export model; returns the `ccr export` subcommands (Phase 1 adds `export reasoning`)."""
    # Phase 2: train, export model
    p = sub.add_parser("train", help="LoRA fine-tuning from a preset (configs/train/*.yaml) with checkpoints, live "
                       "metrics and resume; --dry-run estimates parameters, memory, disk and steps",
                       parents=[home_parent])
    p.add_argument("--config", help="preset YAML (default configs/train/smollm2_cpu.yaml)")
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
    return esub


def _add_generate_parsers(sub, home_parent) -> None:
    """Phase 1: ccr generate."""
    # Phase 1: generate, review, export reasoning, score
    p = sub.add_parser("generate", help="generate reasoning chains (test gate, auto-retry, resumable; rerun to "
                       "continue)", parents=[home_parent])
    p.add_argument("--config", help="YAML preset (default configs/generate/generate_smollm2_cpu.yaml)")
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


def _add_review_parsers(sub, home_parent) -> None:
    """ccr review: list, show, approve, reject, edit."""
    review_p = sub.add_parser("review", help="list, show, approve, reject and edit reasoning chains",
                              parents=[home_parent])
    rsub = review_p.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

    p = rsub.add_parser("list", help="chains matching the filters, lowest score first", parents=[home_parent])
    _review_filter_args(p, "flagged")
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
        p.add_argument("--reviewer", metavar="NAME", default=os_user(),
                       help="who decides, stored with each decision (required; default: your OS user name)")
        _review_filter_args(p, "flagged")
        p.set_defaults(func=func)
    p = rsub.add_parser("edit", help="replace a chain's text from a file (- for stdin) and re-score it; "
                        "approved when it passes, else still flagged with its new score",
                        parents=[home_parent])
    p.add_argument("id", type=int)
    p.add_argument("--file", required=True)
    p.add_argument("--reviewer", metavar="NAME", default=os_user(),
                   help="who edits, stored with the edit (required; default: your OS user name)")
    p.set_defaults(func=cmd_review_edit)


def _add_export_score_parsers(sub, esub, home_parent) -> None:
    """ccr export reasoning (under `ccr export`, made by _add_train_parsers), ccr score."""
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


def _warning_line(message, category, filename, lineno, line=None) -> str:
    # A command's user sees "warning: configs/x.yaml moved to ...", not the engine's file and line.
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.formatwarning = _warning_line
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "home"):
        args.home = None
    try:
        with api.home_at(args.home):
            return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        # The input's or the machine's fault (a config, a path, a model, a file) that a command did
        # not catch itself: one line and exit status 2. Anything else is a bug: its traceback.
        if not api.expected_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
