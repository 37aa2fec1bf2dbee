"""The HF Trainer pieces of a run: the Trainer with our epoch-seeded sampler, and the callbacks that
mark checkpoints complete, stop on request, and stream metrics into the store.

Why: a stop (job cancel/pause, Ctrl-C, SIGTERM) is seen by ``Stop`` at the end of the current
optimizer step, which saves a checkpoint and ends training; ``Checkpoints`` writes the
``COMPLETE`` marker once the Trainer has written everything else.

This module imports transformers at import time: engine.training.train imports it inside
``train()`` only, so the CLI and the job engine load without it.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
import time
from pathlib import Path

import transformers
from transformers import TrainerCallback

from engine.core import failpoints, store
from engine.core.paths import Home
from engine.training.distributed import agree_on_stop, dist_rank
from engine.training.runs import CHECKPOINT_PREFIX, mark_complete, rotate_checkpoints


# ---------------------------------------------------------------------------------------------
# Memory readings for the metrics rows
# ---------------------------------------------------------------------------------------------


def rss_mb() -> float | None:
    """Current resident memory of this process (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _device_memory(device: str) -> tuple[float | None, dict]:
    """(memory_mb for the metrics row, extra readings): accelerator peak since the last reading, else RSS."""
    import torch

    extra = {"peak_rss_mb": round(peak_rss_mb(), 1)}
    if device.startswith("cuda") and torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**20
        extra["cuda_reserved_mb"] = round(torch.cuda.memory_reserved() / 2**20, 1)
        torch.cuda.reset_peak_memory_stats()
        return round(peak, 1), extra
    if device == "mps" and hasattr(torch, "mps"):
        with contextlib.suppress(Exception):
            extra["mps_driver_mb"] = round(torch.mps.driver_allocated_memory() / 2**20, 1)
            return round(torch.mps.current_allocated_memory() / 2**20, 1), extra
    rss = rss_mb()
    return (round(rss, 1) if rss is not None else None), extra


# ---------------------------------------------------------------------------------------------
# The Trainer and its callbacks
# ---------------------------------------------------------------------------------------------


class RunTrainer(transformers.Trainer):
    """The Trainer, drawing the training order from an ``EpochSampler``.

    Why: the Trainer's own samplers draw from the global RNG when iterated, so a run resumed in its
    second epoch would skip batches other than those it had trained on; ours is seeded per epoch.
    """

    def __init__(self, *args, sampler, **kwargs):
        self.epoch_sampler = sampler
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        return self.epoch_sampler


class Epochs(TrainerCallback):
    """Tells the sampler the epoch at its start.

    Why: the Trainer's set_epoch does not reach a sampler under every wrapper accelerate adds
    (skip-batches on resume, DDP shards); the epoch number is floor(state.epoch) at its start.
    """

    def __init__(self, sampler):
        self.sampler = sampler

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.sampler.set_epoch(math.floor(round(state.epoch or 0.0, 6)))
        return control


class Checkpoints(TrainerCallback):
    """Writes the completion marker after the Trainer has written a checkpoint, then rotates."""

    def __init__(self, keep: int, trainer_state: dict, log):
        self.keep = keep
        self.trainer_state = trainer_state
        self.log = log

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
            if folder.is_dir():
                mark_complete(folder, {"step": state.global_step, "epoch": state.epoch,
                                       "loss": self.trainer_state.get("loss"), "max_steps": state.max_steps})
                removed = rotate_checkpoints(Path(args.output_dir).parent, self.keep)
                self.log(f"checkpoint {folder.name} complete" + (f"; removed {len(removed)} older" if removed else ""))
        return control


class Stop(TrainerCallback):
    """At the end of each optimizer step: if a stop was asked for, save a checkpoint and stop."""

    def __init__(self, trainer_state: dict, should_stop, log):
        self.trainer_state = trainer_state
        self.should_stop = should_stop
        self.log = log

    def on_step_end(self, args, state, control, **kwargs):
        failpoints.hit("train.step", state.global_step)  # a fault test holds (and kills) here
        how = self.should_stop() if self.should_stop else None
        how = agree_on_stop(how, args)
        if how:
            self.trainer_state["stopped"] = how
            control.should_save = True
            control.should_training_stop = True
            self.log(f"stop requested ({how}): saving checkpoint-{state.global_step} and stopping")
        return control


class Metrics(TrainerCallback):
    """Streams loss, eval loss, lr, grad norm, tokens/s, memory, epoch and step into train_metrics,
    and progress (with ETA) to the job."""

    def __init__(self, trainer_state: dict, *, run: str, home: Home, device: str, on_progress, log):
        self.trainer_state = trainer_state
        self.run = run
        self.device = device
        self.on_progress = on_progress
        self.log = log
        self.db = store.connect(home) if dist_rank()[0] == 0 else None
        self.step_t0 = None
        self.train_seconds = 0.0
        self.last_seconds = 0.0
        self.last_tokens = 0
        self.session_start = time.time()
        self.session_step0 = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.last_tokens = state.num_input_tokens_seen or 0
        self.session_start = time.time()
        self.session_step0 = state.global_step

    def on_step_begin(self, args, state, control, **kwargs):
        if self.step_t0 is None:
            self.step_t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.step_t0 is not None:
            self.train_seconds += time.perf_counter() - self.step_t0
            self.step_t0 = None
        if self.on_progress and state.is_world_process_zero:
            self.on_progress(self.progress(state))

    def progress(self, state) -> dict:
        done = state.global_step - self.session_step0
        elapsed = time.time() - self.session_start
        rate = done / elapsed if done and elapsed > 0 else None
        left = max(0, state.max_steps - state.global_step)
        return {"step": state.global_step, "max_steps": state.max_steps, "epoch": round(state.epoch or 0, 3),
                "eta_s": round(left / rate, 1) if rate else None, "steps_per_s": round(rate, 4) if rate else None,
                "loss": self.trainer_state.get("loss"), "eval_loss": self.trainer_state.get("eval_loss"),
                "tokens_per_s": self.trainer_state.get("tokens_per_s"), "run": self.run}

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            tokens = state.num_input_tokens_seen or 0
            seconds = self.train_seconds - self.last_seconds
            tps = (tokens - self.last_tokens) / seconds if seconds > 0 and tokens > self.last_tokens else None
            self.last_tokens, self.last_seconds = tokens, self.train_seconds
            memory, extra = _device_memory(self.device)
            extra.update(tokens_seen=tokens, train_seconds=round(self.train_seconds, 2))
            row = {"step": state.global_step, "kind": "train", "epoch": logs.get("epoch", state.epoch),
                   "loss": logs["loss"], "learning_rate": logs.get("learning_rate"),
                   "grad_norm": logs.get("grad_norm"), "tokens_per_s": round(tps, 2) if tps else None,
                   "memory_mb": memory, "extra": extra}
            self.trainer_state.update(loss=logs["loss"], tokens_per_s=row["tokens_per_s"])
        elif "eval_loss" in logs:
            memory, extra = _device_memory(self.device)
            extra.update({k: v for k, v in logs.items() if k.startswith("eval_") and k != "eval_loss"})
            row = {"step": state.global_step, "kind": "eval", "epoch": logs.get("epoch", state.epoch),
                   "loss": logs["eval_loss"], "memory_mb": memory, "extra": extra}
            self.trainer_state.update(eval_loss=logs["eval_loss"])
        else:
            return control
        if self.db is not None:
            store.write_train_metrics(self.db, self.run, [row])
            p = self.progress(state)
            if self.on_progress:
                self.on_progress(p)
            if row["kind"] == "train":
                self.log(f"step {state.global_step}/{state.max_steps} loss {row['loss']:.4f} "
                         f"lr {row['learning_rate'] or 0:.2e} grad {row['grad_norm'] or 0:.3f} "
                         f"tokens/s {row['tokens_per_s'] or 0:.0f} memory {row['memory_mb'] or 0:.0f} MiB"
                         + (f" eta {p['eta_s']:.0f}s" if p.get("eta_s") else ""))
            else:
                self.log(f"step {state.global_step}/{state.max_steps} eval loss {row['loss']:.4f}")
        return control
