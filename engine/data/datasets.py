"""Datasets: synthesize, import, export and list. The CLI and the Data page call these."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

from engine.core import failpoints, store

from engine.data import importer
from engine.data.example import quote
from engine.core.fileio import atomic_write
from engine.core.paths import Home, resolve_home

BATCH = 500


def import_file(home: Home | str | None, path: str | os.PathLike, dataset: str | None = None,
                split: str | None = None, display_name: str | None = None,
                on_error: Callable[[str], None] | None = None,
                on_progress: Callable[[int, int], None] | None = None, kind: str = "import",
                preset: str | None = None, seed: int | None = None) -> dict:
    """Import a ChatML JSONL or CSV file into ``dataset``; bad lines are reported, good ones kept.

    Returns ``{"dataset", "accepted", "rejected", "errors": [[line, reason], ...], "file",
    "split_note"}``; every non-blank line is counted once, as accepted or rejected.
    ``on_error`` gets each ``FILE:LINE: reason`` as it is found. Raises ImportFileError when
    the file itself cannot be read. ``display_name`` is the name used in messages (an
    uploaded file's own name rather than its temp path). ``split_note`` is set when lines
    went to train only because nothing named a split (no ``split``, no split word in the
    file name, none on the line): held-out data stored as train would be trained on.
    """
    home = resolve_home(home)
    path = Path(path)
    # A file name that is not valid UTF-8 must not make the messages or the job row unwritable.
    shown = importer.printable(display_name or str(path))
    split = _split_for(split, display_name or path)
    records = importer.read_records(path, default_split=split)  # raises ImportFileError
    db = store.connect(home)
    name = dataset or importer.dataset_from_name(shown)
    dataset_id = store.create_dataset(db, name, kind, source=importer.printable(str(path)), preset=preset, seed=seed)
    accepted, errors, seen, defaulted = 0, [], {}, 0
    batch: list[tuple[int, dict]] = []

    def reject(line: int, reason: str) -> None:
        errors.append([line, reason])
        if on_error:
            on_error(f"{shown}:{line}: {reason}")

    def store_rows(rows: list[tuple[int, dict]]) -> None:
        nonlocal accepted, defaulted
        inserted, dups = store.insert_examples(db, dataset_id, [dict(ex, source_file=shown, source_line=line)
                                                               for line, ex in rows])
        accepted += inserted
        dup_set = set(dups)
        for line, ex in rows:
            if ex["ex_id"] in dup_set:
                reject(line, f"duplicate id {quote(ex['ex_id'])} (already in dataset {name!r})")
            elif split is None and "split" not in ex["meta"]:
                defaulted += 1

    def flush() -> None:
        if not batch:
            return
        try:
            store_rows(batch)
        except UNSTORABLE:
            # One row the database refused must cost that row only: the batch was rolled back
            # whole, so store its rows one at a time and reject the ones that fail.
            for line, ex in batch:
                try:
                    store_rows([(line, ex)])
                except UNSTORABLE as exc:
                    seen.pop(ex["ex_id"], None)
                    reject(line, f"could not be stored ({type(exc).__name__}: {quote(str(exc), 120)})")
        batch.clear()

    lines = 0
    for line, example, reason in records:
        lines = line
        if reason:
            reject(line, reason)
            continue
        first = seen.get(example["ex_id"])
        if first is not None:
            reject(line, f"duplicate id {quote(example['ex_id'])} (first seen on line {first})")
            continue
        seen[example["ex_id"]] = line
        batch.append((line, example))
        if len(batch) >= BATCH:
            flush()
            if on_progress:
                on_progress(accepted, len(errors))
    flush()
    errors.sort()
    return {"dataset": name, "dataset_id": dataset_id, "file": shown, "lines": lines, "accepted": accepted,
            "rejected": len(errors), "errors": errors, "split_note": _split_note(shown, defaulted)}


def _split_for(split: str | None, name: str | os.PathLike) -> str | None:
    """The split every line of a file goes to: the one asked for (any alias), else the one its name
    says, else None (then each line's own split, or train)."""
    if split is not None and importer.SPLIT_ALIASES.get(split.lower()) is None:
        raise ValueError(f"unknown split {split!r} (expected train, validation or test)")
    return importer.SPLIT_ALIASES[split.lower()] if split else importer.split_from_name(name)


def _split_note(shown: str, defaulted: int) -> str | None:
    """The warning for lines that went to train only because nothing named a split."""
    if not defaulted:
        return None
    return (f"{shown}: {defaulted} line(s) stored as train: no --split was given and neither the file name "
            f"nor the lines name a split. If this is held-out test or validation data, import it again into "
            f"a new dataset with --split test (on the Data page: Split).")


# What a single row can make the database refuse (a constraint, a value it cannot bind or
# serialise). Anything else (locked past the busy timeout, disk full) is the database's own
# failure: the import stops there, keeping every batch committed before it.
UNSTORABLE = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
              ValueError, TypeError, OverflowError, RecursionError)


def synthesize(home: Home | str | None, preset: str = "demo", seed: int = 0, out: str | os.PathLike | None = None,
               dataset: str | None = None, on_progress: Callable[[str, dict], None] | None = None) -> dict:
    """Write the synthetic splits with ``engine.data.synth`` and register them as one dataset."""
    from engine.data import synth

    home = resolve_home(home).ensure()
    if preset not in synth.PRESETS:
        raise ValueError(f"unknown preset {preset!r} (known: {', '.join(synth.PRESETS)})")
    out_dir = Path(out) if out else home.data / f"synth-{preset}-seed{seed}"
    t0 = time.time()
    written = synth.write_synth(out_dir, preset=preset, seed=seed)
    name = dataset or f"{preset}-seed{seed}"
    reports = {}
    for split, path in written["files"].items():
        if on_progress:
            on_progress(split, written)
        reports[split] = import_file(home, path, dataset=name, split=split, kind="synth", preset=preset, seed=seed)
    db = store.connect(home)
    if not store.get_setting(db, "current_dataset"):
        store.set_setting(db, "current_dataset", name)
    return {"dataset": name, "out": str(out_dir), "files": {k: str(v) for k, v in written["files"].items()},
            "counts": written["counts"], "write_seconds": round(written["seconds"], 2),
            "seconds": round(time.time() - t0, 2),
            "imported": {s: r["accepted"] for s, r in reports.items()},
            "rejected": {s: r["rejected"] for s, r in reports.items()}}


def example_filter(dataset_id: int, split: str | None = None, task: str | None = None) -> tuple[list[str], list]:
    """The WHERE terms and parameters that pick a dataset's examples, of one split and task if given
    (the export and the Data page's list pick the same rows).

    >>> example_filter(3, "test", None)
    (['dataset_id = ?', 'split = ?'], [3, 'test'])
    """
    where, params = ["dataset_id = ?"], [dataset_id]
    for column, value in (("split", split), ("task", task)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    return where, params


def export_dataset(home: Home | str | None, dataset: str, out: str | os.PathLike, split: str | None = None,
                   task: str | None = None) -> dict:
    """Write a dataset (or one split/task of it) as ChatML JSONL, atomically; each imported JSONL
    line comes back byte for byte (see docs/data.md#import)."""
    db = store.connect(home)
    ds = db.execute("SELECT id FROM datasets WHERE name = ?", [dataset]).fetchone()
    if not ds:
        raise ValueError(f"no dataset named {dataset!r}")
    where, params = example_filter(ds[0], split, task)
    n = 0
    with atomic_write(out) as fh:
        for messages, meta, raw in db.execute(
                f"SELECT messages, meta, raw FROM examples WHERE {' AND '.join(where)} ORDER BY id", params):
            # An imported JSONL line is written back as it was read; CSV rows and rows stored
            # before lines were kept are written in the converted form.
            fh.write(raw if raw is not None else
                     json.dumps({"messages": json.loads(messages), "meta": json.loads(meta)}, ensure_ascii=False))
            fh.write("\n")
            n += 1
    return {"out": str(out), "lines": n}


def list_datasets(home: Home | str | None = None) -> list[dict]:
    db = store.connect(home)
    rows = []
    for ds_id, name, kind, source, preset, seed, created in db.execute(
            "SELECT id, name, kind, source, preset, seed, created_at FROM datasets ORDER BY id"):
        counts = {split: n for split, n in db.execute(
            "SELECT split, COUNT(*) FROM examples WHERE dataset_id = ? GROUP BY split", [ds_id])}
        rows.append({"id": ds_id, "name": name, "kind": kind, "source": source, "preset": preset, "seed": seed,
                     "created_at": created, "train": counts.get("train", 0),
                     "validation": counts.get("validation", 0), "test": counts.get("test", 0),
                     "total": sum(counts.values())})
    return rows


# ---------------------------------------------------------------------------------------------
# Job functions (engine.core.jobs.JOB_KINDS)
# ---------------------------------------------------------------------------------------------


def run_synth_job(ctx, config: dict) -> dict:
    from engine.core.config import SynthConfig, load_config

    cfg = load_config(SynthConfig, data=config)
    ctx.log(f"synthesizing preset {cfg.preset} seed {cfg.seed}")
    steps = {"train": 1, "validation": 2, "test": 3}

    def progress(split, written):
        ctx.progress(steps[split], 3, stage=f"registering {split}", counts=written["counts"])
        ctx.check()

    result = synthesize(ctx.home, cfg.preset, cfg.seed, cfg.out, cfg.dataset, on_progress=progress)
    ctx.log(f"dataset {result['dataset']}: {result['counts']} in {result['seconds']} s")
    return result


def run_import_job(ctx, config: dict) -> dict:
    from engine.core.config import ImportConfig, load_config

    cfg = load_config(ImportConfig, data={k: v for k, v in config.items() if k != "display_name"})

    def on_error(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def on_progress(accepted: int, rejected: int) -> None:
        ctx.progress(accepted + rejected, None, accepted=accepted, rejected=rejected)
        failpoints.hit("import.batch")  # a fault test holds here after a committed batch
        ctx.check()

    report = import_file(ctx.home, cfg.path, cfg.dataset, cfg.split, display_name=config.get("display_name"),
                         on_error=on_error, on_progress=on_progress)
    if report["split_note"]:
        print(f"warning: {report['split_note']}", file=sys.stderr, flush=True)
    ctx.log(f"accepted {report['accepted']}, rejected {report['rejected']}")
    report["errors"] = report["errors"][:1000]  # the job row keeps the first 1000; the log has all
    return report
