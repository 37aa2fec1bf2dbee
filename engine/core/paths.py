"""Where state lives: the home folder (database, JSONL files, logs) and the models folder.

``--home DIR`` or ``CCR_HOME`` points everything at one folder (``DIR/ccr.db``, ``DIR/models``);
without either, the checkout's ``data/`` and ``models/`` are used, as the README describes.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
PRESET_FOLDERS = ("train", "generate")   # configs/train/*.yaml, configs/generate/*.yaml


@dataclass(frozen=True)
class Home:
    data: Path
    models: Path

    @property
    def db(self) -> Path:
        return self.data / "ccr.db"

    @property
    def logs(self) -> Path:
        return self.data / "logs"

    @property
    def cache(self) -> Path:
        return self.data / "cache"

    def ensure(self) -> "Home":
        for path in (self.data, self.models, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        return self


def resolve_home(home: str | os.PathLike | Home | None = None) -> Home:
    """The state folders for ``--home``/``CCR_HOME``, or the checkout's ``data/`` and ``models/``."""
    if isinstance(home, Home):
        return home
    home = home or os.environ.get("CCR_HOME")
    if home:
        root = Path(home).expanduser().resolve()
        return Home(data=root, models=root / "models")
    return Home(data=REPO / "data", models=REPO / "models")


def moved_preset(path: str | os.PathLike) -> str | os.PathLike:
    """``path``, or for a ``configs/NAME.yaml`` that no longer exists because the presets moved
    into ``configs/train/`` and ``configs/generate/``, the file of that name there (with a
    warning naming it): ``configs/smollm2_cpu.yaml`` -> ``configs/train/smollm2_cpu.yaml``. Why:
    launch commands, scripts and notes written before the split still use the old paths.
    """
    old = Path(path)
    if old.parent.name != "configs" or old.exists():
        return path
    for folder in PRESET_FOLDERS:
        new = old.parent / folder / old.name
        if new.is_file():
            warnings.warn(f"{path} moved to {new}; use the new path", FutureWarning, stacklevel=3)
            return new
    return path


# A trained run's folder name under models/ (a run name is a path part: no separators, no dot-dot)
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
