"""Phase 2's entry points (pages/train.py, ``ccr train``, ``ccr export model``): presets and data
files, the dry run (in a subprocess: engine/training/probes.py), launch and resume, runs and
their metrics."""

from __future__ import annotations

import time
from pathlib import Path

from engine import queries
from engine.api.common import db, enqueue, home, parse_overrides, refuse_model_path, run_job
from engine.api.pipeline import list_jobs
from engine.core import jobs, store
from engine.core.schema import ACTIVE_JOB_STATES
from engine.training import probes


def train_presets() -> list[dict]:
    """The training presets in configs/train/ (YAML files with a ``lora`` section) and their header comments."""
    import yaml

    from engine.core.paths import CONFIGS

    out = []
    for path in sorted((CONFIGS / "train").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        if not isinstance(data, dict) or "lora" not in data:
            continue
        header = []
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            header.append(line[1:].strip())
        out.append({"name": path.stem, "path": str(path), "header": "\n".join(header),
                    "base_model": data.get("base_model"), "device": data.get("device"),
                    "precision": data.get("precision")})
    # the product's default first
    return sorted(out, key=lambda p: (p["name"] != "smollm2_cpu", p["name"]))


def train_data_files() -> list[dict]:
    """ChatML JSONL files in the home to train on: Phase 1's export first, then the others (train files first)."""
    from engine.training.runs import DEFAULT_TRAIN_FILE

    h = home()
    seen, rows = set(), []
    for path in [h.data / DEFAULT_TRAIN_FILE, *sorted(h.data.glob("*.jsonl")), *sorted(h.data.glob("*/*.jsonl"))]:
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        st = path.stat()
        rows.append({"path": str(path), "name": str(path.relative_to(h.data)), "bytes": st.st_size,
                     "modified": st.st_mtime, "default": path.name == DEFAULT_TRAIN_FILE})
    return sorted(rows, key=lambda r: (not r["default"], "train" not in Path(r["name"]).name, r["name"]))


def train_estimate(preset: str, data: str | None = None, overrides: str | list | None = None,
                   timeout: float = 180.0) -> dict:
    """The dry run's estimate for the Train page (``probes.dry_run``: in a subprocess, cached)."""
    return probes.dry_run(home(), preset, data, parse_overrides(overrides), timeout)


def start_training(preset: str, data: str | None = None, eval_data: str | None = None,
                   overrides: str | list | None = None, run: str | None = None) -> tuple[int, str]:
    """Queue a new training run; returns (job id, run name). Raises ValueError with a readable message."""
    import hashlib

    from engine.training import runs

    from engine.core.model_catalog import check_config_path, check_path_allowed

    # Paths typed into the app (directly or as overrides) must stay inside the allowed folders;
    # the preset is checked before it is read.
    check_config_path(preset, home())
    launch = runs.prepare_launch(home(), config_path=preset, overrides=parse_overrides(overrides),
                                  data=data or None, eval_data=eval_data or None, run=run or None)
    for key in ("data", "eval_data", "accelerate_config"):
        if launch["config"].get(key):
            check_path_allowed(launch["config"][key], home(), key)
    refuse_model_path(launch["config"]["base_model"])
    # Two presses of Launch (two sessions, a double click) make one job. A named run is keyed by
    # its name; an unnamed one by what it would train, because each press would otherwise get its
    # own timestamped run name. The existing job's run name is returned.
    key = f"train:{launch['run']}" if run else "train-new:" + hashlib.sha256(
        store.dumps([launch["preset"], launch["config"]]).encode()).hexdigest()[:24]
    job_id = enqueue("train", launch, f"train {launch['run']}", dedupe_key=key)
    queued = store.get_job(db(), job_id)
    return job_id, (queued or {}).get("config", {}).get("run") or launch["run"]


def resume_training(run: str, overrides: str | list | None = None) -> int:
    """Continue ``run`` from its last complete checkpoint: requeue its stopped job, or queue a new one."""
    from engine.training import runs

    conn = db()
    job_id = queries.train_run_job(conn, run)
    over = parse_overrides(overrides)
    if job_id and not over and store.requeue_job(conn, job_id):
        return job_id
    launch = runs.prepare_launch(home(), overrides=over, resume=run)
    return enqueue("train", launch, f"train {run} (resume)", dedupe_key=f"train:{run}")


def train_runs() -> list[dict]:
    """Every run, newest first, with its job's state (a 'running' run whose job is gone shows 'interrupted')."""
    rows = queries.train_runs(db())
    for r in rows:
        # A job process killed outright (kill -9 of `ccr train`) leaves its row running with an old heartbeat.
        stale = r["job_status"] in ("running", "pausing") and (r["heartbeat"] or 0) < time.time() - jobs.STALE_AFTER_S
        if r["status"] == "running" and (stale or r["job_status"] not in ACTIVE_JOB_STATES):
            r["status"] = "interrupted"
        if r["job_status"] in ("queued", "pausing"):
            r["status"] = r["job_status"]
    # A run whose job is queued (or just starting) has no row yet: list it from its job, so the
    # Train page can show the run it launched at once.
    named = {r["name"] for r in rows}
    pending = []
    for j in list_jobs(limit=50, kind="train"):
        name = (j["config"] or {}).get("run")
        if j["status"] in ACTIVE_JOB_STATES and name and name not in named:
            cfg = j["config"].get("config") or {}
            pending.append({"name": name, "job_id": j["id"], "base_model": cfg.get("base_model"),
                            "data_path": cfg.get("data"), "status": j["status"],
                            "dir": str(home().models / name), "final_metrics": {}, "created_at": j["created_at"],
                            "finished_at": None, "job_status": j["status"], "progress": j["progress"],
                            "stats": j["stats"], "heartbeat": j["heartbeat"]})
            named.add(name)
    return pending + rows


def train_run(name: str) -> dict | None:
    """One run: its row, manifest, checkpoints and job."""
    from engine.training import runs

    rows = [r for r in train_runs() if r["name"] == name]
    if not rows:
        return None
    r = rows[0]
    r["manifest"] = runs.read_manifest(r["dir"]) or {}
    r["checkpoints"] = runs.list_checkpoints(r["dir"])
    r["job"] = store.get_job(db(), r["job_id"]) if r["job_id"] else None
    return r


def train_metrics(runs: list[str], kind: str | None = None) -> list[dict]:
    """Metric rows of ``runs`` (train and eval), ordered by run and step."""
    return queries.train_metrics(db(), runs, kind) if runs else []


def start_export_model(run: str, merge: bool = False) -> int:
    """Queue ``export.export_model`` for the Train page (``ccr export model --run RUN [--merge]``).

    A job, not a call: a merge loads torch, transformers and peft, which must never happen in the
    Streamlit process. Two presses make one job (per run and kind of export)."""
    from engine.training import runs

    folder = runs.run_folder(home(), runs.check_run_name(run))  # RunError is a ValueError
    if not (folder / runs.ADAPTER_FILES[0]).exists():
        raise ValueError(f"run {run!r} has no {runs.ADAPTER_FILES[0]} in {folder} (not finished yet?)")
    what = "merged" if merge else "adapter"
    return enqueue("export_model", {"run": run, "merge": bool(merge)},
                    f"export {run} ({'merged model' if merge else 'adapter'})", dedupe_key=f"export-model:{run}:{what}")


# -- what `ccr train` and `ccr export model` run in their own process ---------------------------


def train_dry_run(config_path: str | None, overrides: list[str], data: str | None = None, run: str | None = None,
                  resume: bool | str = False) -> dict:
    """``ccr train --dry-run`` in this process: ``dryrun.estimate`` of the preset (or of the run
    ``resume`` continues) with ``overrides``, the title to print it under, and ``time``, the
    duration from this machine's measured speed (None without data)."""
    from engine import estimate as E
    from engine.core.config import TrainConfig, load_config, to_dict
    from engine.core.model_catalog import check_config_path
    from engine.training import dryrun, runs

    if config_path:  # refused before it is read (README: "Allowed folders")
        check_config_path(config_path, home(), cli=True)
    if resume:
        name = runs.resume_name(home(), resume, run)
        cfg, title = runs.load_run_config(home(), name, overrides), f"run {name}"
    else:
        path = config_path or str(runs.DEFAULT_PRESET)
        cfg, title = load_config(TrainConfig, path, overrides), path
    e = dryrun.estimate(cfg, home(), data or cfg.data or str(runs.default_data(home())))
    t = None
    if e.get("data"):
        c = {**to_dict(cfg), "device": e["device"], "precision": e["precision"]}
        t = E.train(db(), c, e["data"]["total_steps"], e["data"]["mean_length"])
    return {"estimate": e, "title": title, "time": t}


def prepare_train(config_path: str | None, overrides: list[str], data: str | None = None,
                  eval_data: str | None = None, run: str | None = None, resume: bool | str = False) -> dict:
    """``ccr train``'s launch (``runs.prepare_launch``): the preset refused outside the config
    folders before it is read; ConfigError, DataError, RunError, ModelNotAvailable... saying why not."""
    from engine.core.model_catalog import check_config_path
    from engine.training import runs

    if config_path:
        check_config_path(config_path, home(), cli=True)
    return runs.prepare_launch(home(), config_path=config_path, overrides=overrides, data=data, eval_data=eval_data,
                                run=run, resume=resume)


def run_training(launch: dict) -> dict:
    """Train in this process (``prepare_train``'s launch); the job row."""
    return run_job("train", launch, f"train {launch['run']}")


def run_folder(run: str) -> Path:
    from engine.training import runs

    return runs.run_folder(home(), run)


def export_model(run: str, merge: bool = False, out: str | None = None, dtype: str | None = None) -> dict:
    """``ccr export model``: write a run's adapter, or the merged model, in this process."""
    from engine.training import export

    return export.export_model(home(), run, merge=merge, out=out, dtype=dtype)
