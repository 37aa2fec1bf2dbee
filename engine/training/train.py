"""Phase 2: LoRA fine-tuning with the HF Trainer, checkpoints that survive kills, live metrics.

A run lives in ``<models>/<run>/``:

    config.yaml                 the resolved TrainConfig (what ``--resume`` reloads)
    manifest.json               base model, data files with sha256 and counts, code version, start/end,
                                final metrics (what ``load_model("run:<run>")`` reads)
    adapter_model.safetensors   the LoRA adapter, written at the end
    adapter_config.json
    checkpoints/checkpoint-N/   Trainer checkpoints (adapter, optimizer, scheduler, RNG, trainer state)
                                each finished with a COMPLETE marker written last

Why these choices:
- Loss only on the assistant turns: labels come from the chat template's character spans (the
  rendered prefix up to each assistant turn), never from pad masks, because SmolLM2's pad token
  *is* its end token ``<|im_end|>`` and the end token must be learned.
- Dynamic padding with length-grouped batches: padding every row to ``max_length`` spends most
  of the compute and memory on pad tokens (see bench/training.py).
- Checkpoints are the Trainer's own, so resume restores optimizer, scheduler, RNG and data
  position; the marker file, written (and fsynced) after everything else, tells a complete
  checkpoint from one a kill cut short. Resume takes the newest complete one and removes the rest.
- The data order is a pure function of (seed, epoch) (``EpochSampler``), so a run resumed in
  its second epoch skips exactly the batches it had trained on, and every DDP rank agrees on it.
- A stop (job cancel/pause, Ctrl-C, SIGTERM) is seen by a TrainerCallback at the end of the
  current optimizer step, which saves a checkpoint and ends training.

This module is imported by the CLI and the job engine; torch, transformers and peft are imported
inside the functions that need them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

from engine.core import failpoints, store
from engine.core.config import TrainConfig, load_config, to_dict
from engine.core.fileio import atomic_write, file_sha256
from engine.core.paths import CONFIGS, REPO, RUN_NAME, Home, resolve_home

MARKER = "COMPLETE"
CHECKPOINT_PREFIX = "checkpoint-"
STOP_FILE = "STOP"
DEFAULT_TRAIN_FILE = "train_reasoning.jsonl"
DEFAULT_PRESET = CONFIGS / "train" / "smollm2_cpu.yaml"
ROLES = ("system", "user", "assistant")
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
# Base models without a chat template (Mistral-7B-v0.1 is a base model) get ChatML, the format of
# the training data; the BOS token opens the sequence as in the model's pre-training.
CHATML_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class DataError(ValueError):
    """Training data that cannot be used; the message names the file and line."""


class RunError(ValueError):
    """A run that cannot be started or resumed as asked (name taken, nothing to resume...)."""


# ---------------------------------------------------------------------------------------------
# Runs, data paths and checkpoints (no torch: the pages list these through engine.api)
# ---------------------------------------------------------------------------------------------


def run_folder(home: Home | str | None, run: str) -> Path:
    return resolve_home(home).models / run


def check_run_name(run: str) -> str:
    if not RUN_NAME.fullmatch(run or ""):  # fullmatch: "$" alone would accept a trailing newline
        raise RunError(f"run name {run!r}: use letters, digits, '.', '_' or '-' (at most 100 characters)")
    return run


def new_run_name(preset: str | os.PathLike | None = None) -> str:
    stem = Path(preset).stem if preset else "train"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "train"
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def default_data(home: Home | str | None) -> Path:
    """Phase 1's export: ``<home>/train_reasoning.jsonl``."""
    return resolve_home(home).data / DEFAULT_TRAIN_FILE


def sibling_validation(path: str | os.PathLike) -> Path | None:
    """``train_reasoning.jsonl`` -> ``validation_reasoning.jsonl`` (``train_chatml.jsonl`` likewise) if it exists."""
    path = Path(path)
    if "train" not in path.name:
        return None
    candidate = path.with_name(path.name.replace("train", "validation", 1))
    if not candidate.is_file() or candidate == path:
        return None
    # An export with no validation chains writes an empty file: train without evaluation then,
    # rather than failing a run the user did not ask to evaluate (a named empty file still fails).
    with open(candidate, "rb") as f:
        return candidate if any(line.strip() for line in f) else None


def resolve_data(cfg: TrainConfig, home: Home | str | None) -> TrainConfig:
    """Fill in the default data files and make both paths absolute (config.yaml records them)."""
    data = Path(cfg.data).expanduser() if cfg.data else default_data(home)
    if not data.exists():
        hint = (" (Phase 1 writes it; or pass --data FILE with any ChatML JSONL)" if not cfg.data else "")
        raise DataError(f"training data {data} does not exist{hint}")
    cfg.data = str(data.resolve())
    if cfg.eval_data:
        eval_path = Path(cfg.eval_data).expanduser()
        if not eval_path.exists():
            raise DataError(f"validation data {eval_path} does not exist")
        cfg.eval_data = str(eval_path.resolve())
    else:
        sib = sibling_validation(data)
        cfg.eval_data = str(sib.resolve()) if sib else None
    return cfg


def list_checkpoints(folder: str | os.PathLike) -> list[dict]:
    """Every ``checkpoint-N`` of a run folder, oldest first: step, path, complete (marker present), size, time."""
    ck_root = Path(folder) / "checkpoints"
    rows = []
    if not ck_root.is_dir():
        return rows
    for path in ck_root.iterdir():
        if not path.is_dir() or not path.name.startswith(CHECKPOINT_PREFIX):
            continue
        try:
            step = int(path.name[len(CHECKPOINT_PREFIX):])
        except ValueError:
            continue
        marker = path / MARKER
        info = {}
        if marker.exists():
            with contextlib.suppress(OSError, ValueError):
                info = json.loads(marker.read_text())
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        rows.append({"step": step, "path": str(path), "complete": marker.exists(), "bytes": size,
                     "time": info.get("time") or path.stat().st_mtime, "loss": info.get("loss"),
                     "epoch": info.get("epoch")})
    return sorted(rows, key=lambda r: r["step"])


def last_complete_checkpoint(folder: str | os.PathLike) -> dict | None:
    complete = [c for c in list_checkpoints(folder) if c["complete"]]
    return complete[-1] if complete else None


def _fsync_tree(path: Path) -> None:
    for f in sorted(path.rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    with contextlib.suppress(OSError):  # the directory entries themselves (not possible everywhere)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def mark_complete(checkpoint: Path, info: dict) -> None:
    """Flush a checkpoint's files to disk, then write its marker: the marker exists only once all else does."""
    _fsync_tree(checkpoint)
    with atomic_write(checkpoint / MARKER) as fh:
        json.dump({**info, "time": time.time()}, fh)


def rotate_checkpoints(folder: Path, keep: int) -> list[str]:
    """Delete the oldest complete checkpoints beyond ``keep`` (always keeping the newest)."""
    complete = [c for c in list_checkpoints(folder) if c["complete"]]
    removed = []
    for c in complete[:max(0, len(complete) - max(1, keep))]:
        shutil.rmtree(c["path"], ignore_errors=True)
        removed.append(c["path"])
    return removed


def remove_incomplete_checkpoints(folder: Path, keep_below: int | None = None) -> list[str]:
    """Remove checkpoints without a marker (cut short by a kill) so the Trainer can write those steps again."""
    removed = []
    for c in list_checkpoints(folder):
        if not c["complete"] or (keep_below is not None and c["step"] > keep_below):
            shutil.rmtree(c["path"], ignore_errors=True)
            removed.append(c["path"])
    return removed


def read_manifest(folder: str | os.PathLike) -> dict | None:
    path = Path(folder) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_manifest(folder: Path, manifest: dict) -> None:
    with atomic_write(folder / "manifest.json") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)


def write_run_config(folder: Path, cfg: TrainConfig) -> None:
    import yaml

    with atomic_write(folder / "config.yaml") as fh:
        fh.write("# Resolved config of this run; `ccr train --resume <run>` reloads it.\n")
        yaml.safe_dump(to_dict(cfg), fh, sort_keys=False)


def load_run_config(home: Home | str | None, run: str, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    path = run_folder(home, run) / "config.yaml"
    if not path.exists():
        raise RunError(f"run {run!r} has no {path}; nothing to resume")
    return load_config(TrainConfig, path, list(overrides))


def latest_run(home: Home | str | None) -> str | None:
    """The most recently started run (the one a bare ``--resume`` continues)."""
    db = store.connect(home)
    row = db.execute("SELECT name FROM train_runs ORDER BY created_at DESC, id DESC LIMIT 1").fetchone()
    if row:
        return row[0]
    models = resolve_home(home).models
    folders = sorted((p for p in models.glob("*/config.yaml")), key=lambda p: p.stat().st_mtime) if models.exists() else []
    return folders[-1].parent.name if folders else None


def code_version() -> dict:
    """The checkout's git revision (and whether it had local changes), when there is one."""
    out = {}
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5)
        if rev.returncode == 0:
            out["git_rev"] = rev.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                   capture_output=True, text=True, timeout=5)
            out["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        out["ccr"] = version("ccr")
    return out


# ---------------------------------------------------------------------------------------------
# Data: ChatML JSONL -> token ids and labels (loss only on assistant turns)
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
                messages = obj.get("messages") if isinstance(obj, dict) else None
                if not isinstance(messages, list) or not messages:
                    raise DataError(f"{path}:{line_no}: expected an object with a non-empty messages list")
                for i, m in enumerate(messages):
                    if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                        raise DataError(f"{path}:{line_no}: messages[{i}] needs a role (system, user or assistant) "
                                        f"and text content")
                if not any(m["role"] == "assistant" for m in messages):
                    raise DataError(f"{path}:{line_no}: no assistant turn to learn from")
                out.append([{"role": m["role"], "content": m["content"]} for m in messages])
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}:{line_no + 1}: invalid UTF-8 ({exc.reason})") from None
    if not out:
        raise DataError(f"{path}: no examples")
    return out


def ensure_chat_template(tokenizer) -> bool:
    """Give a tokenizer without a chat template (a base model's) the ChatML one; True if it did."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = CHATML_TEMPLATE
    return True


def _render(tokenizer, messages, generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant turn in it.

    A span runs from the end of the generation prompt before the turn to the end of the turn's
    rendering without trailing whitespace, so it covers the answer and its end token
    (``...<|im_end|>``) but not the newline the template puts after it.
    """
    text = _render(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True) if i else ""
        upto = _render(tokenizer, messages[:i + 1])
        if not (text.startswith(upto) and upto.startswith(before)):
            raise DataError("the chat template renders a conversation differently from its prefixes "
                            "(cannot find the assistant turns); use a model with a prefix-stable template")
        spans.append((len(before), len(upto.rstrip())))
    return text, spans


def encode_example(tokenizer, messages: list[dict], max_length: int) -> dict | None:
    """``{"input_ids", "labels"}`` with -100 everywhere but the assistant turns; None if no label survives
    truncation to ``max_length``."""
    text, spans = assistant_spans(tokenizer, messages)
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        labels = [-100] * len(ids)
        for k, (s, e) in enumerate(enc["offset_mapping"]):
            if e > s and any(e > a and s < b for a, b in spans):
                labels[k] = ids[k]
    else:  # slow tokenizers have no offsets: tokenize the prefixes instead
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        labels = [-100] * len(ids)
        for a, b in spans:
            start = len(tokenizer(text[:a], add_special_tokens=False)["input_ids"]) if a else 0
            end = len(tokenizer(text[:b], add_special_tokens=False)["input_ids"])
            labels[start:end] = ids[start:end]
    truncated = len(ids) > max_length
    if truncated:
        ids, labels = _fit(ids, labels, max_length)
    if all(x == -100 for x in labels):
        return None
    return {"input_ids": ids, "labels": labels, "truncated": truncated}


def _fit(ids: list[int], labels: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """Shorten an over-long example to ``max_length``, cutting the prompt before the answer.

    Why: a reasoning chain ends with the final answer, so cutting the end (plain truncation)
    would train the model on chains that never reach their answer. When the answer fits, tokens
    are removed from the middle of the prompt before it (the middle of the transcript: its
    start, the system prompt and the instruction at its end survive); otherwise the end is cut.
    """
    excess = len(ids) - max_length
    first = next((k for k, x in enumerate(labels) if x != -100), len(labels))
    keep_edges = 32  # prompt tokens kept on each side of the cut
    if first - 2 * keep_edges >= excess:
        start = (first - excess) // 2
        return ids[:start] + ids[start + excess:], labels[:start] + labels[start + excess:]
    return ids[:max_length], labels[:max_length]


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


def collate(features: list[dict], pad_id: int, pad_to: int | None = None, multiple_of: int | None = None,
            logits_only: bool = False) -> dict:
    """Right-pad a batch to its longest example (or to ``pad_to``); padded labels are -100.

    With ``logits_only`` the batch also carries ``logits_to_keep``, a (batch, length) mask of the
    positions whose next token is a label: the model then projects only those hidden states onto
    the vocabulary (``label_loss`` computes the loss from them).
    """
    import torch

    n = pad_to or max(len(f["input_ids"]) for f in features)
    if multiple_of:
        n = -(-n // multiple_of) * multiple_of
    input_ids = torch.full((len(features), n), pad_id, dtype=torch.long)
    labels = torch.full((len(features), n), -100, dtype=torch.long)
    attention = torch.zeros((len(features), n), dtype=torch.long)
    for i, f in enumerate(features):
        k = min(len(f["input_ids"]), n)
        input_ids[i, :k] = torch.tensor(f["input_ids"][:k])
        labels[i, :k] = torch.tensor(f["labels"][:k])
        attention[i, :k] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
    if logits_only:
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = labels[:, 1:] != -100
        batch["logits_to_keep"] = keep
    return batch


def label_loss(outputs, labels, num_items_in_batch=None):
    """Cross-entropy from logits computed only at the kept positions (see ``collate``).

    The logits come flattened in row-major order of the kept positions, which is the order of
    ``labels[:, 1:]``'s labelled entries. Summed and divided by the labelled tokens of the whole
    accumulated batch when the Trainer passes that count (so gradient accumulation weighs every
    token equally), else a mean.
    """
    import torch.nn.functional as F

    logits = outputs["logits"]
    shifted = labels[:, 1:]
    targets = shifted[shifted != -100].to(logits.device)
    loss = F.cross_entropy(logits.float(), targets, reduction="sum")
    if num_items_in_batch is None:
        return loss / max(1, targets.numel())
    return loss / num_items_in_batch


class EpochSampler:
    """Index order for one epoch, a pure function of (seed, epoch).

    With ``group`` it groups similar lengths: shuffle, cut into mega-batches of ``group_size``
    examples, sort each by length (longest first) so consecutive batches need little padding,
    and start with the longest mega-batch so an out-of-memory shows at step 1, not hours in.
    """

    def __init__(self, lengths: list[int], seed: int, group: bool = True, group_size: int = 64):
        self.lengths = list(lengths)
        self.seed = seed
        self.group = group
        self.group_size = max(1, group_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        return iter(self.order(self.epoch))

    def order(self, epoch: int) -> list[int]:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        idx = list(range(len(self.lengths)))
        rng.shuffle(idx)
        if not self.group:
            return idx
        megas = [sorted(idx[i:i + self.group_size], key=lambda j: -self.lengths[j])
                 for i in range(0, len(idx), self.group_size)]
        longest = max(range(len(megas)), key=lambda m: self.lengths[megas[m][0]])
        megas[0], megas[longest] = megas[longest], megas[0]
        return [j for m in megas for j in m]


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
# Training
# ---------------------------------------------------------------------------------------------


def _dist_rank() -> tuple[int, int, int]:
    """(rank, local rank, world size) from the variables `accelerate launch` / torchrun set."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")),
            int(os.environ.get("WORLD_SIZE", "1")))


def _callbacks(trainer_state: dict, *, run: str, home: Home, device: str, should_stop, on_progress, log):
    """The TrainerCallbacks of a run (classes defined here so this module imports no transformers
    at import time).

    ``trainer_state`` is shared with ``train()``: it learns from the callbacks whether training
    was stopped, and the last losses.
    """
    from transformers import TrainerCallback

    class Checkpoints(TrainerCallback):
        """Writes the completion marker after the Trainer has written a checkpoint, then rotates."""

        def __init__(self, keep: int):
            self.keep = keep

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
                if folder.is_dir():
                    mark_complete(folder, {"step": state.global_step, "epoch": state.epoch,
                                           "loss": trainer_state.get("loss"), "max_steps": state.max_steps})
                    removed = rotate_checkpoints(Path(args.output_dir).parent, self.keep)
                    log(f"checkpoint {folder.name} complete" + (f"; removed {len(removed)} older" if removed else ""))
            return control

    class Stop(TrainerCallback):
        """At the end of each optimizer step: if a stop was asked for, save a checkpoint and stop."""

        def on_step_end(self, args, state, control, **kwargs):
            failpoints.hit("train.step", state.global_step)  # a fault test holds (and kills) here
            how = should_stop() if should_stop else None
            how = _agree_on_stop(how, args)
            if how:
                trainer_state["stopped"] = how
                control.should_save = True
                control.should_training_stop = True
                log(f"stop requested ({how}): saving checkpoint-{state.global_step} and stopping")
            return control

    class Metrics(TrainerCallback):
        """Streams loss, eval loss, lr, grad norm, tokens/s, memory, epoch and step into train_metrics,
        and progress (with ETA) to the job."""

        def __init__(self):
            self.db = store.connect(home) if _dist_rank()[0] == 0 else None
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
            if on_progress and state.is_world_process_zero:
                on_progress(self.progress(state))

        def progress(self, state) -> dict:
            done = state.global_step - self.session_step0
            elapsed = time.time() - self.session_start
            rate = done / elapsed if done and elapsed > 0 else None
            left = max(0, state.max_steps - state.global_step)
            return {"step": state.global_step, "max_steps": state.max_steps, "epoch": round(state.epoch or 0, 3),
                    "eta_s": round(left / rate, 1) if rate else None, "steps_per_s": round(rate, 4) if rate else None,
                    "loss": trainer_state.get("loss"), "eval_loss": trainer_state.get("eval_loss"),
                    "tokens_per_s": trainer_state.get("tokens_per_s"), "run": run}

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                tokens = state.num_input_tokens_seen or 0
                seconds = self.train_seconds - self.last_seconds
                tps = (tokens - self.last_tokens) / seconds if seconds > 0 and tokens > self.last_tokens else None
                self.last_tokens, self.last_seconds = tokens, self.train_seconds
                memory, extra = _device_memory(device)
                extra.update(tokens_seen=tokens, train_seconds=round(self.train_seconds, 2))
                row = {"step": state.global_step, "kind": "train", "epoch": logs.get("epoch", state.epoch),
                       "loss": logs["loss"], "learning_rate": logs.get("learning_rate"),
                       "grad_norm": logs.get("grad_norm"), "tokens_per_s": round(tps, 2) if tps else None,
                       "memory_mb": memory, "extra": extra}
                trainer_state.update(loss=logs["loss"], tokens_per_s=row["tokens_per_s"])
            elif "eval_loss" in logs:
                memory, extra = _device_memory(device)
                extra.update({k: v for k, v in logs.items() if k.startswith("eval_") and k != "eval_loss"})
                row = {"step": state.global_step, "kind": "eval", "epoch": logs.get("epoch", state.epoch),
                       "loss": logs["eval_loss"], "memory_mb": memory, "extra": extra}
                trainer_state.update(eval_loss=logs["eval_loss"])
            else:
                return control
            if self.db is not None:
                store.write_train_metrics(self.db, run, [row])
                p = self.progress(state)
                if on_progress:
                    on_progress(p)
                if row["kind"] == "train":
                    log(f"step {state.global_step}/{state.max_steps} loss {row['loss']:.4f} lr {row['learning_rate'] or 0:.2e}"
                        f" grad {row['grad_norm'] or 0:.3f} tokens/s {row['tokens_per_s'] or 0:.0f} memory "
                        f"{row['memory_mb'] or 0:.0f} MiB" + (f" eta {p['eta_s']:.0f}s" if p.get("eta_s") else ""))
                else:
                    log(f"step {state.global_step}/{state.max_steps} eval loss {row['loss']:.4f}")
            return control

    return Checkpoints, Stop, Metrics


def report_trackers(cfg: TrainConfig) -> list[str]:
    """``cfg.report_to`` as the Trainer's list of integrations ("none" and blanks dropped).

    >>> report_trackers(TrainConfig(report_to="tensorboard")), report_trackers(TrainConfig(report_to=["none"]))
    (['tensorboard'], [])
    """
    names = [cfg.report_to] if isinstance(cfg.report_to, str) else list(cfg.report_to or [])
    return [n.strip() for n in names if n and n.strip() and n.strip() != "none"]


def _agree_on_stop(how: str | None, args) -> str | None:
    """Under DDP every rank must stop at the same step: the most severe request of any rank wins."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return how
    import torch

    code = {None: 0, "pause": 1, "cancel": 2}.get(how, 1)
    flag = torch.tensor([code], device=args.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return {0: None, 1: "pause", 2: "cancel"}[int(flag.item())]


def _stop_file_reader(folder: Path):
    """should_stop for ranks under `accelerate launch`: the job process writes STOP with 'pause' or 'cancel'."""
    path = folder / STOP_FILE

    def should_stop():
        try:
            return path.read_text().strip() or "pause"
        except OSError:
            return None

    return should_stop


def train(home: Home | str | None, run: str, cfg: TrainConfig, *, resume: bool = False, should_stop=None,
          on_progress=None, log=print, job_id: int | None = None, callbacks: tuple = ()) -> dict:
    """Train (or resume) ``run`` with ``cfg``; returns the final metrics, or ``{"stopped": how, ...}``.

    ``should_stop()`` returns None, 'pause' or 'cancel'; ``on_progress(dict)`` gets step, max_steps,
    eta_s, losses after every step; ``callbacks`` are extra TrainerCallbacks (tests use one to die
    mid-run). Under `accelerate launch` every rank calls this; only rank 0 writes files and rows.
    """
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model

    from engine.core.model_catalog import load_model, pick_device, precision_choice

    home = resolve_home(home)
    check_run_name(run)
    rank, local_rank, world = _dist_rank()
    main_rank = rank == 0
    folder = run_folder(home, run)
    ck_root = folder / "checkpoints"
    db = store.connect(home) if main_rank else None
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)

    resume_from = None
    if resume:
        last = last_complete_checkpoint(folder)
        if last:
            resume_from = last["path"]
        if main_rank:
            for path in remove_incomplete_checkpoints(folder, keep_below=last["step"] if last else None):
                log(f"skipping incomplete checkpoint {Path(path).name} (no {MARKER} marker); removed it")
            log(f"resuming from {Path(resume_from).name}" if resume_from else "no complete checkpoint: starting over")
            store.delete_train_metrics_after(db, run, last["step"] if last else -1)

    device = pick_device(None if cfg.device == "auto" else cfg.device)
    if world > 1 and device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    precision, reason = precision_choice(device, cfg.precision)
    log(f"loading {cfg.base_model} on {device}; precision {reason}")
    model, tokenizer, info = load_model(cfg.base_model, home=home, device=device, dtype=precision, for_training=True)
    if ensure_chat_template(tokenizer):
        log(f"{cfg.base_model} has no chat template: using ChatML")
    if should_stop and should_stop():
        return {"stopped": should_stop(), "step": 0}

    train_set, train_stats = encode_file(tokenizer, cfg.data, cfg.max_length)
    eval_set, eval_stats = [], None
    if cfg.eval_data:
        eval_set, eval_stats = encode_file(tokenizer, cfg.eval_data, cfg.max_length, limit=cfg.eval_max_examples)
        eval_set.sort(key=lambda e: len(e["input_ids"]))  # evaluation order does not matter; padding does
    log(f"data: {train_stats['examples']} training examples ({train_stats['tokens']} tokens, "
        f"{train_stats['truncated']} truncated, {train_stats['dropped']} dropped)"
        + (f", {eval_stats['examples']} validation examples" if eval_stats else ", no validation data"))

    targets = cfg.lora.target_modules
    lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout, bias="none",
                      task_type="CAUSAL_LM",
                      target_modules="all-linear" if targets == ["all-linear"] else list(targets))
    torch.manual_seed(cfg.seed)  # LoRA initialisation
    model.config.use_cache = False
    model = get_peft_model(model, lora)
    trainable, total = model.get_nb_trainable_parameters()

    weights_dtype = str(next(model.base_model.parameters()).dtype).replace("torch.", "")
    on_cuda = device.startswith("cuda")
    args = transformers.TrainingArguments(
        output_dir=str(ck_root),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a share of the steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if eval_set and cfg.eval_steps > 0 else "no",
        eval_steps=cfg.eval_steps if cfg.eval_steps > 0 else None,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=None,  # the Checkpoints callback rotates, counting only complete checkpoints
        seed=cfg.seed,
        # Autocast only on CUDA; elsewhere the weights are simply loaded in the chosen precision and
        # the LoRA weights stay fp32 (peft keeps adapters in fp32).
        bf16=on_cuda and weights_dtype == "bfloat16",
        fp16=on_cuda and weights_dtype == "float16",
        use_cpu=device == "cpu",
        # (renamed activation_checkpointing in transformers 5.2x; the old name works in every 5.x)
        gradient_checkpointing=cfg.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        report_to=report_trackers(cfg) or "none",  # the Trainer's own integrations (TensorBoard, MLflow...)
        remove_unused_columns=False,
        prediction_loss_only=True,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        dataloader_pin_memory=on_cuda,
        disable_tqdm=True,
        label_names=["labels"],
        ddp_find_unused_parameters=False if world > 1 else None,
    )

    logits_only = cfg.loss_logits_only
    if logits_only and not hasattr(transformers.modeling_utils, "slice_logits_to_keep"):
        # transformers before ~5.20 takes only an int or 1-D logits_to_keep, not a (batch, length) mask
        log("this transformers version cannot keep logits per position: computing them everywhere")
        logits_only = False
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pad_to = cfg.max_length if cfg.padding == "max_length" else None
    sampler = EpochSampler([len(e["input_ids"]) for e in train_set], cfg.seed, group=cfg.group_by_length,
                           group_size=cfg.batch_size * cfg.gradient_accumulation_steps * world * 8)

    class RunTrainer(transformers.Trainer):
        # The Trainer's own samplers draw from the global RNG when iterated, so a run resumed in its
        # second epoch would skip batches other than those it had trained on; ours is seeded per epoch.
        def _get_train_sampler(self, train_dataset=None):
            return sampler

    class Epochs(transformers.TrainerCallback):
        # The Trainer's set_epoch does not reach a sampler under every wrapper accelerate adds
        # (skip-batches on resume, DDP shards); the epoch number is floor(state.epoch) at its start.
        def on_epoch_begin(self, args, state, control, **kwargs):
            sampler.set_epoch(math.floor(round(state.epoch or 0.0, 6)))
            return control

    # TensorBoard's callback takes its folder from the environment when the Trainer builds it: the
    # run's own folder (HOME/models/RUN/tensorboard) unless the user named one.
    tb_env = os.environ.get("TENSORBOARD_LOGGING_DIR")
    if "tensorboard" in report_trackers(cfg) and not tb_env:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(folder / "tensorboard")
    shared: dict = {}
    Checkpoints, Stop, Metrics = _callbacks(shared, run=run, home=home, device=device, should_stop=should_stop,
                                            on_progress=on_progress, log=log)
    trainer = RunTrainer(
        model=model, args=args, train_dataset=train_set, eval_dataset=eval_set or None,
        data_collator=lambda feats: collate(feats, pad_id, pad_to=pad_to, multiple_of=8 if on_cuda else None,
                                            logits_only=logits_only),
        compute_loss_func=label_loss if logits_only else None,
        processing_class=tokenizer,
        callbacks=[Epochs(), Checkpoints(cfg.save_total_limit), Stop(), Metrics(), *callbacks],
    )
    if tb_env is None:
        os.environ.pop("TENSORBOARD_LOGGING_DIR", None)

    # Our Metrics callback logs one line per logging step; the Trainer's own printer would repeat it.
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
    started = time.time()
    if main_rank:
        folder.mkdir(parents=True, exist_ok=True)
        write_run_config(folder, cfg)
        manifest = read_manifest(folder) or {}
        data_info = {"train": {**train_stats, "sha256": file_sha256(cfg.data)}}
        if eval_stats:
            data_info["eval"] = {**eval_stats, "sha256": file_sha256(cfg.eval_data)}
        manifest.update({
            "run": run, "base_model": cfg.base_model, "base_source": info.get("source"),
            "status": "running", "data": data_info, "code_version": code_version(),
            "started_at": manifest.get("started_at") or started, "finished_at": None,
            "device": device, "weights_dtype": weights_dtype, "precision_reason": reason, "world_size": world,
            "trainable_params": trainable, "total_params": total,
            "trainable_percent": round(100 * trainable / total, 4), "config_file": "config.yaml",
            "resumes": manifest.get("resumes", []) + ([{"from": Path(resume_from).name, "at": started}]
                                                      if resume_from else []),
        })
        write_manifest(folder, manifest)
        store.upsert_train_run(db, run, job_id=job_id, config=to_dict(cfg), base_model=cfg.base_model,
                               data_path=cfg.data, data_hash=data_info["train"]["sha256"], status="running",
                               dir=str(folder))
    log(f"run {run}: {trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%), "
        f"{len(train_set)} examples, batch {cfg.batch_size} x {cfg.gradient_accumulation_steps} x {world}")

    try:
        output = trainer.train(resume_from_checkpoint=resume_from)
        stopped = shared.get("stopped")
        final = {"step": trainer.state.global_step, "epoch": trainer.state.epoch,
                 "train_loss": shared.get("loss"), "mean_train_loss": output.training_loss,
                 "tokens_seen": trainer.state.num_input_tokens_seen}
        if not stopped and eval_set:
            # The last step may just have been evaluated (eval_steps divides it): do not evaluate twice.
            evaluated = [h for h in trainer.state.log_history if "eval_loss" in h]
            if evaluated and evaluated[-1].get("step") == trainer.state.global_step:
                final["eval_loss"] = evaluated[-1]["eval_loss"]
            else:
                final["eval_loss"] = trainer.evaluate()["eval_loss"]
        if main_rank and not stopped:
            _save_adapter(trainer.model, folder)
    except BaseException as exc:
        if main_rank:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            store.finish_train_run(db, run, status)
            manifest = read_manifest(folder) or {}
            write_manifest(folder, {**manifest, "status": status, "error": f"{type(exc).__name__}: {exc}"})
        raise
    final = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in final.items()}
    # A stop from a signal or a departed supervisor ("local") is an interruption, not a finished run.
    status = {"pause": "paused", "cancel": "cancelled"}.get(stopped, "interrupted") if stopped else "succeeded"
    if main_rank:
        manifest = read_manifest(folder) or {}
        manifest.update({"status": status, "final_metrics": final, "finished_at": time.time() if not stopped else None,
                         "adapter": ADAPTER_FILES[0] if not stopped else manifest.get("adapter")})
        manifest.pop("error", None)
        write_manifest(folder, manifest)
        store.finish_train_run(db, run, status, final)
        log(f"run {run} {status} at step {final['step']}: " + ", ".join(
            f"{k} {v}" for k, v in final.items() if k.endswith("loss") and v is not None))
    return {"run": run, "dir": str(folder), "status": status, "stopped": stopped, **final,
            "trainable_params": trainable, "total_params": total, "seconds": round(time.time() - started, 1)}


def _save_adapter(model, folder: Path) -> None:
    """Write the adapter beside a temp folder, then move each file into the run folder."""
    tmp = folder / f".adapter-tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    _fsync_tree(tmp)
    for name in ADAPTER_FILES:
        os.replace(tmp / name, folder / name)
    shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The job (engine.core.jobs JOB_KINDS["train"]) and its multi-GPU hand-over to `accelerate launch`
# ---------------------------------------------------------------------------------------------


def prepare_launch(home: Home | str | None, *, config_path: str | None = None, overrides: list[str] | tuple = (),
                   data: str | None = None, eval_data: str | None = None, run: str | None = None,
                   resume: bool | str = False) -> dict:
    """Resolve what ``ccr train`` and the Training page launch into a job config.

    A new run: preset + data + overrides -> a resolved TrainConfig and a fresh run name.
    ``resume=True`` continues the latest run, ``resume="<run>"`` that run (its config.yaml plus
    ``overrides``, e.g. a larger ``max_steps``).
    """
    home = resolve_home(home)
    if resume:
        name = resume if isinstance(resume, str) else (run or latest_run(home))
        if not name:
            raise RunError("no run to resume (none started in this home)")
        check_run_name(name)
        cfg = load_run_config(home, name, overrides)
        if data:
            cfg.data = data
        if eval_data:
            cfg.eval_data = eval_data
        resolve_data(cfg, home)
        return {"run": name, "resume": True, "config": to_dict(cfg), "preset": None}
    path = config_path or str(DEFAULT_PRESET)
    cfg = load_config(TrainConfig, path, list(overrides))
    if data:
        cfg.data = data
    if eval_data:
        cfg.eval_data = eval_data
    resolve_data(cfg, home)
    name = check_run_name(run) if run else new_run_name(path)
    folder = run_folder(home, name)
    if (folder / "config.yaml").exists() or (folder / "manifest.json").exists():
        raise RunError(f"run {name!r} already exists in {folder.parent}; resume it with --resume {name} "
                       f"or choose another --run")
    return {"run": name, "resume": False, "config": to_dict(cfg), "preset": str(path)}


def cuda_gpus() -> int:
    with contextlib.suppress(Exception):
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    return 0


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


def launch_command(home: Home, run: str, cfg: TrainConfig, resume: bool, processes: int,
                   job_id: int | None) -> list[str]:
    """The `accelerate launch` command line that runs this run's ``train()`` on ``processes`` ranks."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if cfg.accelerate_config:
        cmd += ["--config_file", cfg.accelerate_config]
    else:
        # --multi_gpu is accelerate's torchrun launcher: one process per rank. (Its --cpu launcher
        # runs one process, so the CPU check of this path, cpu=True, uses the same launcher with gloo.)
        cmd += ["--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no", "--multi_gpu"]
    cmd += ["-m", "engine.training.train", "--home", str(home.data), "--models", str(home.models), "--run", run]
    if job_id is not None:
        cmd += ["--job-id", str(job_id)]
    if resume:
        cmd.append("--resume")
    return cmd


def launch_distributed(ctx, run: str, cfg: TrainConfig, resume: bool, processes: int, cpu: bool = False) -> dict:
    """Run the training under `accelerate launch` (DDP, or FSDP through ``accelerate_config``) and
    supervise it: relay a stop as the STOP file, report the outcome from the manifest."""
    folder = run_folder(ctx.home, run)
    folder.mkdir(parents=True, exist_ok=True)
    write_run_config(folder, cfg)
    stop_file = folder / STOP_FILE
    stop_file.unlink(missing_ok=True)
    cmd = launch_command(ctx.home, run, cfg, resume, processes, ctx.job_id)
    ctx.log(f"{processes} {'CPU processes' if cpu else 'GPUs'}: " + " ".join(cmd[1:]))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=str(REPO), env=env)
    stopped = None
    try:
        while proc.poll() is None:
            how = ctx.stop_requested()
            if how and not stopped:
                stopped = how
                stop_file.write_text(how)
                ctx.log(f"stop requested ({how}): asked every rank to checkpoint and stop")
            time.sleep(1.0)
    except BaseException:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        raise
    finally:
        stop_file.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"accelerate launch exited with code {proc.returncode} (see the job log)")
    manifest = read_manifest(folder) or {}
    result = {"run": run, "dir": str(folder), "status": manifest.get("status"), "stopped": stopped,
              "world_size": processes, **(manifest.get("final_metrics") or {})}
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
    rank = _dist_rank()[0]
    folder = run_folder(home, args.run)
    db = store.connect(home) if rank == 0 else None

    def on_progress(p: dict) -> None:
        if db is not None and args.job_id is not None:
            frac = min(1.0, p["step"] / p["max_steps"]) if p.get("max_steps") else None
            store.update_job_progress(db, args.job_id, frac, {"done": p["step"], "total": p["max_steps"], **p})

    def log(message: str) -> None:
        if rank == 0:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    train(home, args.run, cfg, resume=args.resume, should_stop=_stop_file_reader(folder), on_progress=on_progress,
          log=log, job_id=args.job_id)
    return 0


# ---------------------------------------------------------------------------------------------
# Export: the adapter, or a merged model that transformers and vLLM load
# ---------------------------------------------------------------------------------------------


def export_model(home: Home | str | None, run: str, merge: bool = False, out: str | os.PathLike | None = None,
                 dtype: str | None = None, log=print) -> dict:
    """Write ``run``'s adapter (with manifest and config) or the base model with the adapter merged in.

    The folder is written under a temp name beside ``out`` and renamed into place, so a reader
    never sees half an export; an existing ``out`` is replaced only once the new one is complete.
    """
    home = resolve_home(home)
    folder = run_folder(home, check_run_name(run))
    if not (folder / ADAPTER_FILES[0]).exists():
        raise RunError(f"run {run!r} has no {ADAPTER_FILES[0]} in {folder} (not finished yet?)")
    out = Path(out) if out else home.models / "exports" / f"{run}-{'merged' if merge else 'adapter'}"
    out = out.expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    manifest = read_manifest(folder) or {}
    try:
        if merge:
            from engine.core.model_catalog import load_model

            log(f"loading {manifest.get('base_model')} with the adapter of {run}")
            # the saved weights' precision, not a speed choice: fp32 unless asked, whatever the CPU
            model, tokenizer, _ = load_model(f"run:{run}", home=home, device="cpu", dtype=dtype or "fp32")
            merged = model.merge_and_unload()
            merged.save_pretrained(tmp, safe_serialization=True)
            ensure_chat_template(tokenizer)
            tokenizer.save_pretrained(tmp)
            files = sorted(p.name for p in tmp.iterdir())
        else:
            for name in (*ADAPTER_FILES, "manifest.json", "config.yaml"):
                if (folder / name).exists():
                    shutil.copy2(folder / name, tmp / name)
            files = sorted(p.name for p in tmp.iterdir())
        with atomic_write(tmp / "ccr_export.json") as fh:
            json.dump({"run": run, "merged": merge, "base_model": manifest.get("base_model"),
                       "exported_at": time.time(), "code_version": code_version()}, fh, indent=2)
        _fsync_tree(tmp)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"run": run, "out": str(out), "merged": merge, "files": files + ["ccr_export.json"], "bytes": size}


def run_export_model_job(ctx, config: dict) -> dict:
    """Job function (kind ``export_model``): ``export_model`` for the Train page's Export button.

    A merge loads torch, transformers and peft, so the page queues this job (run in the engine's
    child process) instead of exporting in the Streamlit process; ``ccr export model`` calls
    ``export_model`` directly. The export is written to a temp folder and renamed, so a stop
    before the rename leaves the previous export as it was and a rerun starts over cleanly.
    """
    merge = bool(config.get("merge"))
    ctx.progress(0, 1, force=True, stage="merging the adapter into the base model" if merge else "copying the adapter")
    ctx.check()
    result = export_model(ctx.home, config["run"], merge=merge, out=config.get("out"), dtype=config.get("dtype"),
                          log=ctx.log)
    ctx.progress(1, 1, force=True, stage="done", out=result["out"])
    ctx.log(f"wrote the {'merged model' if merge else 'adapter'} of run {result['run']} to {result['out']} "
            f"({result['bytes'] / 2**20:.1f} MiB)")
    return result


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
