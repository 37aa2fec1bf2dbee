"""Phase 2: LoRA fine-tuning with the HF Trainer, checkpoints that survive kills, live metrics.

A run lives in ``<models>/<run>/``:

    config.yaml                 the resolved TrainConfig (what ``--resume`` reloads)
    manifest.json               base model, data files with sha256 and counts, code version, start/end,
                                final metrics (what ``load_model("run:<run>")`` reads)
    adapter_model.safetensors   the LoRA adapter, written at the end
    adapter_config.json
    checkpoints/checkpoint-N/   Trainer checkpoints (adapter, optimizer, scheduler, RNG, trainer state)
                                each finished with a COMPLETE marker written last

This module is the run itself, a short recipe (``train``: setup model, setup data, add LoRA, build
the Trainer, train, record), the job function, and the per-rank entry point of a multi-GPU run
(``accelerate launch -m engine.training.train``). Its parts live beside it:

- engine/training/runs.py: the run folder, manifest, checkpoints and their COMPLETE markers, data
  paths, the job config (``prepare_launch``); no torch.
- engine/training/encoding.py: ChatML -> token ids and labels (loss only on assistant turns),
  batches, the (seed, epoch) data order.
- engine/training/trainer.py: the Trainer subclass and the callbacks (markers, stop, metrics).
- engine/training/distributed.py: the hand-over to `accelerate launch` and what ranks agree on.
- engine/training/export.py: the adapter or a merged model for transformers and vLLM.

Why these choices:
- Checkpoints are the Trainer's own, so resume restores optimizer, scheduler, RNG and data
  position; resume takes the newest complete one and removes the rest.
- A stop (job cancel/pause, Ctrl-C, SIGTERM) is seen by a TrainerCallback at the end of the
  current optimizer step, which saves a checkpoint and ends training.

This module is imported by the CLI and the job engine; torch, transformers and peft are imported
inside the functions that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

from engine.core import store
from engine.core.config import TrainConfig, load_config, to_dict
from engine.core.fileio import file_sha256
from engine.core.paths import Home, resolve_home
from engine.data.example import ChatMLError, read_example
from engine.training.distributed import cuda_gpus, dist_rank, launch_distributed, stop_file_reader
from engine.training.encoding import EpochSampler, collate, encode_example, ensure_chat_template, label_loss
from engine.training.runs import (ADAPTER_FILES, MARKER, DataError, RunError, check_run_name, code_version,
                                  fsync_tree, last_complete_checkpoint, load_run_config, read_manifest,
                                  remove_incomplete_checkpoints, run_folder, write_manifest, write_run_config)


# ---------------------------------------------------------------------------------------------
# Data files: ChatML JSONL -> encoded examples (engine/training/encoding.py encodes each one)
# ---------------------------------------------------------------------------------------------


def read_chatml(path: str | os.PathLike) -> list[list[dict]]:
    """The ``messages`` of every line of a ChatML JSONL file; the first bad line raises DataError."""
    path = Path(path)
    out = []
    try:
        fh = open(path, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with fh:
        line_no = 0
        try:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{line_no}: invalid JSON ({exc.msg} at column {exc.colno})") from None
                try:
                    messages = read_example(obj, need="assistant").messages
                except ChatMLError as exc:  # training's own wording of the reader's rules
                    reason = ("no assistant turn to learn from" if exc.rule == "no_assistant" else
                              f"messages[{exc.index}] needs a role (system, user or assistant) and text content"
                              if exc.rule == "bad_message" else "expected an object with a non-empty messages list")
                    raise DataError(f"{path}:{line_no}: {reason}") from None
                out.append([{"role": m["role"], "content": m["content"]} for m in messages])
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}:{line_no + 1}: invalid UTF-8 ({exc.reason})") from None
    if not out:
        raise DataError(f"{path}: no examples")
    return out


def encode_file(tokenizer, path: str | os.PathLike, max_length: int, limit: int = 0) -> tuple[list[dict], dict]:
    """Encode a ChatML file; returns the examples and counts (examples, tokens, assistant tokens,
    truncated, dropped) for the manifest."""
    records = read_chatml(path)
    if limit:
        records = records[:limit]
    examples, truncated, dropped = [], 0, 0
    for messages in records:
        ex = encode_example(tokenizer, messages, max_length)
        if ex is None:
            dropped += 1
            continue
        truncated += ex.pop("truncated")
        examples.append(ex)
    if not examples:
        raise DataError(f"{path}: no example keeps an assistant token within max_length={max_length}")
    stats = {"path": str(path), "lines": len(records), "examples": len(examples),
             "tokens": sum(len(e["input_ids"]) for e in examples),
             "assistant_tokens": sum(sum(1 for x in e["labels"] if x != -100) for e in examples),
             "truncated": truncated, "dropped": dropped}
    return examples, stats


def report_trackers(cfg: TrainConfig) -> list[str]:
    """``cfg.report_to`` as the Trainer's list of integrations ("none" and blanks dropped).

    >>> report_trackers(TrainConfig(report_to="tensorboard")), report_trackers(TrainConfig(report_to=["none"]))
    (['tensorboard'], [])
    """
    names = [cfg.report_to] if isinstance(cfg.report_to, str) else list(cfg.report_to or [])
    return [n.strip() for n in names if n and n.strip() and n.strip() != "none"]


# ---------------------------------------------------------------------------------------------
# The run: setup model, setup data, add LoRA, build the Trainer, record, train, record
# ---------------------------------------------------------------------------------------------


def train(home: Home | str | None, run: str, cfg: TrainConfig, *, resume: bool = False, should_stop=None,
          on_progress=None, log=print, job_id: int | None = None, callbacks: tuple = ()) -> dict:
    """Train (or resume) ``run`` with ``cfg``; returns the final metrics, or ``{"stopped": how, ...}``.

    ``should_stop()`` returns None, 'pause' or 'cancel'; ``on_progress(dict)`` gets step, max_steps,
    eta_s, losses after every step; ``callbacks`` are extra TrainerCallbacks (tests use one to die
    mid-run). Under `accelerate launch` every rank calls this; only rank 0 writes files and rows.
    """
    import torch
    import transformers

    from engine.training.trainer import Checkpoints, Metrics, Stop

    home = resolve_home(home)
    check_run_name(run)
    rank, local_rank, world = dist_rank()
    main_rank = rank == 0
    folder = run_folder(home, run)
    db = store.connect(home) if main_rank else None
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)

    resume_from = _resume_point(folder, run, db, resume=resume, log=log)
    model, tokenizer, info, device, reason = _setup_model(cfg, home, local_rank, world, log)
    if should_stop and should_stop():
        return {"stopped": should_stop(), "step": 0}
    train_set, train_stats, eval_set, eval_stats = _setup_data(tokenizer, cfg, log)
    model = _add_lora(model, cfg)
    trainable, total = model.get_nb_trainable_parameters()
    weights_dtype = str(next(model.base_model.parameters()).dtype).replace("torch.", "")

    shared: dict = {}  # what the callbacks learn: whether training was stopped, the last losses
    own = [Checkpoints(cfg.save_total_limit, shared, log), Stop(shared, should_stop, log),
           Metrics(shared, run=run, home=home, device=device, on_progress=on_progress, log=log)]
    trainer = _build_trainer(cfg, model, tokenizer, train_set, eval_set, folder=folder, device=device,
                             weights_dtype=weights_dtype, world=world, callbacks=[*own, *callbacks], log=log)
    started = time.time()
    if main_rank:
        _record_start(db, folder, run, cfg, job_id=job_id, started=started, resume_from=resume_from,
                      train_stats=train_stats, eval_stats=eval_stats, facts={
                          "base_source": info.get("source"), "device": device, "weights_dtype": weights_dtype,
                          "precision_reason": reason, "world_size": world, "trainable_params": trainable,
                          "total_params": total, "trainable_percent": round(100 * trainable / total, 4)})
    log(f"run {run}: {trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%), "
        f"{len(train_set)} examples, batch {cfg.batch_size} x {cfg.gradient_accumulation_steps} x {world}")

    final, stopped = _run_trainer(trainer, resume_from, shared, evaluate=bool(eval_set), db=db, folder=folder,
                                  run=run)
    final = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in final.items()}
    # A stop from a signal or a departed supervisor ("local") is an interruption, not a finished run.
    status = {"pause": "paused", "cancel": "cancelled"}.get(stopped, "interrupted") if stopped else "succeeded"
    if main_rank:
        _record_finish(db, folder, run, status, final, stopped, log)
    return {"run": run, "dir": str(folder), "status": status, "stopped": stopped, **final,
            "trainable_params": trainable, "total_params": total, "seconds": round(time.time() - started, 1)}


def _resume_point(folder: Path, run: str, db, *, resume: bool, log) -> str | None:
    """The newest complete checkpoint to resume from (None: start over). Rank 0 (the one with ``db``)
    removes the checkpoints a kill cut short and the metrics rows logged after the checkpoint."""
    if not resume:
        return None
    last = last_complete_checkpoint(folder)
    resume_from = last["path"] if last else None
    if db is not None:
        for path in remove_incomplete_checkpoints(folder, keep_below=last["step"] if last else None):
            log(f"skipping incomplete checkpoint {Path(path).name} (no {MARKER} marker); removed it")
        log(f"resuming from {Path(resume_from).name}" if resume_from else "no complete checkpoint: starting over")
        store.delete_train_metrics_after(db, run, last["step"] if last else -1)
    return resume_from


def _setup_model(cfg: TrainConfig, home: Home, local_rank: int, world: int, log) -> tuple:
    """The base model on this rank's device in the chosen precision: (model, tokenizer, load info,
    device, why that precision)."""
    import torch

    from engine.core.model_catalog import load_model, pick_device, precision_choice

    device = pick_device(None if cfg.device == "auto" else cfg.device)
    if world > 1 and device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    precision, reason = precision_choice(device, cfg.precision)
    log(f"loading {cfg.base_model} on {device}; precision {reason}")
    model, tokenizer, info = load_model(cfg.base_model, home=home, device=device, dtype=precision, for_training=True)
    if ensure_chat_template(tokenizer):
        log(f"{cfg.base_model} has no chat template: using ChatML")
    return model, tokenizer, info, device, reason


def _setup_data(tokenizer, cfg: TrainConfig, log) -> tuple[list[dict], dict, list[dict], dict | None]:
    """The encoded training and validation examples and their counts (train_set, train_stats,
    eval_set, eval_stats; no validation data: [] and None)."""
    train_set, train_stats = encode_file(tokenizer, cfg.data, cfg.max_length)
    eval_set, eval_stats = [], None
    if cfg.eval_data:
        eval_set, eval_stats = encode_file(tokenizer, cfg.eval_data, cfg.max_length, limit=cfg.eval_max_examples)
        eval_set.sort(key=lambda e: len(e["input_ids"]))  # evaluation order does not matter; padding does
    log(f"data: {train_stats['examples']} training examples ({train_stats['tokens']} tokens, "
        f"{train_stats['truncated']} truncated, {train_stats['dropped']} dropped)"
        + (f", {eval_stats['examples']} validation examples" if eval_stats else ", no validation data"))
    return train_set, train_stats, eval_set, eval_stats


def _add_lora(model, cfg: TrainConfig):
    """The model wrapped with fresh LoRA adapters (initialised from ``cfg.seed``)."""
    import torch
    from peft import get_peft_model

    torch.manual_seed(cfg.seed)  # LoRA initialisation
    model.config.use_cache = False
    return get_peft_model(model, cfg.lora.to_peft())


def _build_trainer(cfg: TrainConfig, model, tokenizer, train_set: list[dict], eval_set: list[dict], *,
                   folder: Path, device: str, weights_dtype: str, world: int, callbacks: list, log):
    """The run's Trainer: its arguments, our sampler, collator and loss, and ``callbacks``."""
    import transformers

    from engine.training.trainer import Epochs, RunTrainer

    on_cuda = device.startswith("cuda")
    args = cfg.training_arguments(str(folder / "checkpoints"), evaluate=bool(eval_set), device=device,
                                  weights_dtype=weights_dtype, world_size=world, report_to=report_trackers(cfg))
    logits_only = cfg.loss_logits_only
    if logits_only and not hasattr(transformers.modeling_utils, "slice_logits_to_keep"):
        # transformers before ~5.20 takes only an int or 1-D logits_to_keep, not a (batch, length) mask
        log("this transformers version cannot keep logits per position: computing them everywhere")
        logits_only = False
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pad_to = cfg.max_length if cfg.padding == "max_length" else None
    sampler = EpochSampler([len(e["input_ids"]) for e in train_set], cfg.seed, group=cfg.group_by_length,
                           group_size=cfg.batch_size * cfg.gradient_accumulation_steps * world * 8)

    # TensorBoard's callback takes its folder from the environment when the Trainer builds it: the
    # run's own folder (HOME/models/RUN/tensorboard) unless the user named one.
    tb_env = os.environ.get("TENSORBOARD_LOGGING_DIR")
    if "tensorboard" in report_trackers(cfg) and not tb_env:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(folder / "tensorboard")
    trainer = RunTrainer(
        model=model, args=args, train_dataset=train_set, eval_dataset=eval_set or None,
        data_collator=lambda feats: collate(feats, pad_id, pad_to=pad_to, multiple_of=8 if on_cuda else None,
                                            logits_only=logits_only),
        compute_loss_func=label_loss if logits_only else None,
        processing_class=tokenizer,
        callbacks=[Epochs(sampler), *callbacks],
        sampler=sampler,
    )
    if tb_env is None:
        os.environ.pop("TENSORBOARD_LOGGING_DIR", None)

    # Our Metrics callback logs one line per logging step; the Trainer's own printer would repeat it.
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
    return trainer


def _record_start(db, folder: Path, run: str, cfg: TrainConfig, *, job_id: int | None, started: float,
                  resume_from: str | None, train_stats: dict, eval_stats: dict | None, facts: dict) -> None:
    """Rank 0: the run's config.yaml, its manifest (data hashes, code version, ``facts`` about the
    model and device) and its train_runs row, before the first step."""
    folder.mkdir(parents=True, exist_ok=True)
    write_run_config(folder, cfg)
    manifest = read_manifest(folder) or {}
    data_info = {"train": {**train_stats, "sha256": file_sha256(cfg.data)}}
    if eval_stats:
        data_info["eval"] = {**eval_stats, "sha256": file_sha256(cfg.eval_data)}
    manifest.update({
        "run": run, "base_model": cfg.base_model, "status": "running", "data": data_info,
        "code_version": code_version(), "started_at": manifest.get("started_at") or started, "finished_at": None,
        **facts, "config_file": "config.yaml",
        "resumes": manifest.get("resumes", []) + ([{"from": Path(resume_from).name, "at": started}]
                                                  if resume_from else []),
    })
    write_manifest(folder, manifest)
    store.upsert_train_run(db, run, job_id=job_id, config=to_dict(cfg), base_model=cfg.base_model,
                           data_path=cfg.data, data_hash=data_info["train"]["sha256"], status="running",
                           dir=str(folder))


def _run_trainer(trainer, resume_from: str | None, shared: dict, *, evaluate: bool, db, folder: Path,
                 run: str) -> tuple[dict, str | None]:
    """Train to the end or to a stop; returns (final metrics, how it was stopped or None). Rank 0 saves
    the adapter at the end, and records a failure or interruption before re-raising it."""
    try:
        output = trainer.train(resume_from_checkpoint=resume_from)
        stopped = shared.get("stopped")
        final = {"step": trainer.state.global_step, "epoch": trainer.state.epoch,
                 "train_loss": shared.get("loss"), "mean_train_loss": output.training_loss,
                 "tokens_seen": trainer.state.num_input_tokens_seen}
        if not stopped and evaluate:
            # The last step may just have been evaluated (eval_steps divides it): do not evaluate twice.
            evaluated = [h for h in trainer.state.log_history if "eval_loss" in h]
            if evaluated and evaluated[-1].get("step") == trainer.state.global_step:
                final["eval_loss"] = evaluated[-1]["eval_loss"]
            else:
                final["eval_loss"] = trainer.evaluate()["eval_loss"]
        if db is not None and not stopped:
            _save_adapter(trainer.model, folder)
    except BaseException as exc:
        if db is not None:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            store.finish_train_run(db, run, status)
            manifest = read_manifest(folder) or {}
            write_manifest(folder, {**manifest, "status": status, "error": f"{type(exc).__name__}: {exc}"})
        raise
    return final, stopped


def _record_finish(db, folder: Path, run: str, status: str, final: dict, stopped: str | None, log) -> None:
    """Rank 0: the manifest's and train_runs row's final status and metrics."""
    manifest = read_manifest(folder) or {}
    manifest.update({"status": status, "final_metrics": final, "finished_at": time.time() if not stopped else None,
                     "adapter": ADAPTER_FILES[0] if not stopped else manifest.get("adapter")})
    manifest.pop("error", None)
    write_manifest(folder, manifest)
    store.finish_train_run(db, run, status, final)
    log(f"run {run} {status} at step {final['step']}: " + ", ".join(
        f"{k} {v}" for k, v in final.items() if k.endswith("loss") and v is not None))


def _save_adapter(model, folder: Path) -> None:
    """Write the adapter beside a temp folder, then move each file into the run folder."""
    tmp = folder / f".adapter-tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    fsync_tree(tmp)
    for name in ADAPTER_FILES:
        os.replace(tmp / name, folder / name)
    shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The job (engine.core.jobs JOB_KINDS["train"]) and the per-rank entry point under `accelerate launch`
# ---------------------------------------------------------------------------------------------


def run_train_job(ctx, config: dict) -> dict:
    """Job function: train or resume one run; a stop saves a checkpoint and ends the job paused or cancelled."""
    from engine.core.jobs import JobStopped

    cfg = load_config(TrainConfig, data=config["config"])
    run = check_run_name(config["run"])
    folder = run_folder(ctx.home, run)
    row = ctx.db.execute("SELECT job_id FROM train_runs WHERE name = ?", [run]).fetchone()
    # A job resumed from the Jobs page re-runs with its first config: its own run continues.
    resume = bool(config.get("resume")) or (row is not None and row[0] == ctx.job_id)
    if not resume and (folder / "manifest.json").exists():
        raise RunError(f"run {run!r} already exists; resume it instead")
    ctx.check()

    def on_progress(p: dict) -> None:
        ctx.progress(p["step"], p["max_steps"], **{k: v for k, v in p.items() if k not in ("step", "max_steps")})

    gpus = cuda_gpus() if cfg.device in ("auto", "cuda") and cfg.multi_gpu == "auto" else 0
    if gpus > 1:
        result = launch_distributed(ctx, run, cfg, resume, gpus)
    else:
        result = train(ctx.home, run, cfg, resume=resume, should_stop=ctx.stop_requested, on_progress=on_progress,
                       log=ctx.log, job_id=ctx.job_id)
    if result.get("stopped"):
        raise JobStopped(result["stopped"])
    return result


def _worker_main(argv: list[str]) -> int:
    """Entry point of each rank: ``accelerate launch -m engine.training.train --home H --run R [--resume]``."""
    parser = argparse.ArgumentParser(prog="python -m engine.training.train")
    parser.add_argument("--home", required=True)
    parser.add_argument("--models")
    parser.add_argument("--run", required=True)
    parser.add_argument("--job-id", type=int)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    home = resolve_home(args.home)
    if args.models:
        home = Home(home.data, Path(args.models))
    cfg = load_run_config(home, args.run)
    rank = dist_rank()[0]
    folder = run_folder(home, args.run)
    db = store.connect(home) if rank == 0 else None

    def on_progress(p: dict) -> None:
        if db is not None and args.job_id is not None:
            frac = min(1.0, p["step"] / p["max_steps"]) if p.get("max_steps") else None
            store.update_job_progress(db, args.job_id, frac, {"done": p["step"], "total": p["max_steps"], **p})

    def log(message: str) -> None:
        if rank == 0:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    train(home, args.run, cfg, resume=args.resume, should_stop=stop_file_reader(folder), on_progress=on_progress,
          log=log, job_id=args.job_id)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
