"""Export a trained run: its adapter (with manifest and config), or the base model with the adapter
merged in, a folder that transformers and vLLM load.

The Train page's Export button queues ``run_export_model_job`` (engine.core.jobs JOB_KINDS
["export_model"]); ``ccr export model`` calls ``export_model`` directly.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from engine.core.fileio import atomic_write
from engine.core.paths import Home, resolve_home
from engine.training.encoding import ensure_chat_template
from engine.training.runs import (ADAPTER_FILES, RunError, check_run_name, code_version, fsync_tree, read_manifest,
                                  run_folder)


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
        fsync_tree(tmp)
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

