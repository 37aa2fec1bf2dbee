"""The training dry run and the hardware probe for the pages, each in a subprocess: both need
torch, which must never load in the Streamlit process. Results are cached in this process
(the dry run per inputs and data file version, the probe per device and precision), so a page
rerun does not start another process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.core.model_catalog import PathNotAllowed, check_config_path
from engine.core.paths import REPO, Home

_ESTIMATES: dict = {}
_PRECISIONS: dict = {}


def dry_run(home: Home, preset: str, data: str | None, over: list[str], timeout: float = 180.0) -> dict:
    """The dry run's estimate (``python -m engine.training.dryrun --json``), cached per inputs and data file version."""
    try:  # the preset is read by the dry run: refuse a path outside the config folders first
        check_config_path(preset, home)
    except PathNotAllowed as exc:
        return {"error": str(exc)}
    mtime = Path(data).stat().st_mtime if data and Path(data).exists() else None
    key = (preset, data, tuple(over), mtime)
    if key in _ESTIMATES:
        return _ESTIMATES[key]
    cmd = [sys.executable, "-m", "engine.training.dryrun", "--json", "--config", preset, "--home", str(home.data)]
    if data:
        cmd += ["--data", data]
    cmd += over
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return {"error": f"the dry run took over {timeout:.0f} s"}
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": (proc.stderr or "dry run failed").strip()[-2000:]}
    if "error" not in result:
        _ESTIMATES[key] = result
    return result


def precision_choice(device: str | None = "auto", precision: str | None = "auto", timeout: float = 120.0) -> dict:
    """The device and weights' precision a job would use on this machine, and why
    (``models.hardware_choice``: device, precision, reason, and ``text``, the line the Train and
    Generate pages show). The probe needs torch, which must not load in the UI process, so it
    runs in a subprocess (``python -m engine.core.model_catalog precision``), once per (device, precision)."""
    key = (device or "auto", precision or "auto")
    if key in _PRECISIONS:
        return _PRECISIONS[key]
    if "torch" in sys.modules:  # an engine process (the command line, a test) has it loaded already
        from engine.core.model_catalog import hardware_choice

        result = hardware_choice(*key)
    else:
        cmd = [sys.executable, "-m", "engine.core.model_catalog", "precision", "--device", key[0], "--precision", key[1]]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  cwd=str(REPO))
        except subprocess.TimeoutExpired:
            return {"error": f"the probe took over {timeout:.0f} s", "text": "Precision: the hardware probe timed out"}
        lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
        if not lines:
            why = (proc.stderr or "no output").strip().splitlines()[-1:] or ["no output"]
            return {"error": why[0], "text": f"Precision: the hardware probe failed ({why[0]})"}
        result = json.loads(lines[-1])
    _PRECISIONS[key] = result
    return result
