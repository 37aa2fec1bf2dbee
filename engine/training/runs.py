"""A training run on disk: its folder, config.yaml, manifest.json, checkpoints that survive kills,
its data paths, and the job config ``ccr train`` and the Training page launch.

A run lives in ``<models>/<run>/`` (the layout is in engine/training/train.py's docstring). A
checkpoint is complete once its ``COMPLETE`` marker exists: the marker is written (and fsynced)
after everything else, so resume tells a complete checkpoint from one a kill cut short.

No torch here: the pages list runs and checkpoints through engine.api.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from engine.core import store
from engine.core.config import TrainConfig, load_config, to_dict
from engine.core.fileio import atomic_write
from engine.core.paths import CONFIGS, REPO, RUN_NAME, Home, resolve_home

MARKER = "COMPLETE"
CHECKPOINT_PREFIX = "checkpoint-"
STOP_FILE = "STOP"
DEFAULT_TRAIN_FILE = "train_reasoning.jsonl"
DEFAULT_PRESET = CONFIGS / "train" / "smollm2_cpu.yaml"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


class DataError(ValueError):
    """Training data that cannot be used; the message names the file and line."""


class RunError(ValueError):
    """A run that cannot be started or resumed as asked (name taken, nothing to resume...)."""


# ---------------------------------------------------------------------------------------------
# Runs, data paths and checkpoints
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


def fsync_tree(path: Path) -> None:
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
    fsync_tree(checkpoint)
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
# The job config of a new or resumed run (engine.core.jobs JOB_KINDS["train"] runs it)
# ---------------------------------------------------------------------------------------------


def resume_name(home: Home | str | None, resume: bool | str, run: str | None = None) -> str:
    """The run ``--resume`` continues: the one named, else ``run``, else the latest; RunError when
    there is none."""
    name = resume if isinstance(resume, str) else (run or latest_run(home))
    if not name:
        raise RunError("no run to resume (none started in this home)")
    return name


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
        name = check_run_name(resume_name(home, resume, run))
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

