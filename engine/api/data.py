"""The Data page's entry points: datasets and their examples, synthesis, import, export,
rename and delete (``ccr data ...``), and the model list."""

from __future__ import annotations

import os

from engine import queries
from engine.api.common import db, enqueue, home, run_job
from engine.core import store
from engine.data import uploads


def datasets() -> list[dict]:
    from engine.data import datasets

    return datasets.list_datasets(home())


def current_dataset() -> str | None:
    """The dataset the pipeline works on: the chosen one, else the newest."""
    return store.working_dataset(db())


def set_current_dataset(name: str) -> None:
    store.set_setting(db(), "current_dataset", name)


def dataset_id(name: str | None) -> int | None:
    return queries.dataset_id(db(), name)


def examples(dataset: str, split: str | None = None, task: str | None = None, search: str | None = None,
             limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
    """A page of examples (id, ex_id, split, task, labels, first line) and the total count."""
    ds = dataset_id(dataset)
    if ds is None:
        return [], 0
    return queries.examples(db(), ds, split, task, search, limit, offset)


def example(example_id: int) -> dict | None:
    return queries.example(db(), example_id)


def label_distribution(dataset: str, split: str | None = None) -> dict[str, dict[str, int]]:
    """For each label key, how many examples (of the tasks that ask it) have each value."""
    from engine.data import tasks

    ds = dataset_id(dataset)
    if ds is None:
        return {}
    out: dict[str, dict[str, int]] = {}
    for task, labels in queries.example_labels(db(), ds, split):
        for key in tasks.TASK_KEYS.get(task, ()):
            if key not in labels:
                continue
            values = labels[key] if isinstance(labels[key], list) else [labels[key]]
            if key == "coaching" and not values:
                values = ["none"]
            for v in values:
                bucket = out.setdefault(key, {})
                bucket[str(v)] = bucket.get(str(v), 0) + 1
    return out


def task_counts(dataset: str) -> list[dict]:
    ds = dataset_id(dataset)
    if ds is None:
        return []
    return queries.task_counts(db(), ds)


def start_synth(preset: str = "demo", seed: int = 0) -> int:
    """Queue a synthetic dataset; pressing the button twice while it runs makes one job."""
    return enqueue("synth", {"preset": preset, "seed": seed}, f"synthesize {preset} (seed {seed})",
                    dedupe_key=f"synth:{preset}:{seed}")


def start_import(content: bytes, filename: str, dataset: str | None = None, split: str | None = None) -> int:
    """Save an uploaded file under the home's uploads folder and queue its import. A dataset name
    is trimmed; one that is blank after trimming (but not empty: empty means "from the file
    name") or otherwise unusable raises ValueError before anything is saved."""
    if dataset is not None and dataset != "":
        dataset = store.clean_dataset_name(dataset)
    target = uploads.save_upload(home(), content, filename, "upload.jsonl")
    config = {"path": str(target), "dataset": dataset or None, "split": split or None, "display_name": filename}
    return enqueue("import", config, f"import {filename}")


def clean_dataset_name(name: str) -> str:
    """A dataset name trimmed, or ValueError saying why it cannot be used (blank, too long...)."""
    return store.clean_dataset_name(name)


def dataset_usage(name: str) -> dict:
    """What deleting dataset ``name`` would remove (examples, chains, attempts, reviews)."""
    ds = dataset_id(name)
    if ds is None:
        raise ValueError(f"no dataset named {name!r}")
    return store.dataset_usage(db(), ds)


def rename_dataset(old: str, new: str) -> str:
    """Rename a dataset (``ccr data rename``); returns the new (trimmed) name. Refused while a job
    works on it, for a blank or taken name."""
    return store.rename_dataset(db(), old, new)


def delete_dataset(name: str) -> dict:
    """Delete a dataset with its examples, chains, attempts and reviews (``ccr data delete``);
    returns what was removed. Refused while a job works on it."""
    ds = dataset_id(name)
    if ds is None:
        raise ValueError(f"no dataset named {name!r}")
    return {"dataset": name, **store.delete_dataset(db(), ds)}


def export_dataset(name: str, split: str | None = None, task: str | None = None) -> dict:
    """Write dataset ``name`` (or one split and/or task of it) as ChatML JSONL to
    ``HOME/exports/NAME-SPLIT[-TASK].jsonl`` through ``datasets.export_dataset`` (``ccr data export``);
    returns its result plus the size."""
    from engine.data import datasets, tasks

    if split not in (None, "train", "validation", "test"):
        raise ValueError(f"unknown split {split!r} (expected train, validation or test)")
    if task is not None and task not in tasks.TASKS:
        raise ValueError(f"unknown task {task!r} (expected one of {', '.join(tasks.TASKS)})")
    out = uploads.export_path(home(), name, split, task)
    r = datasets.export_dataset(home(), name, out, split=split, task=task)
    return {**r, "dataset": name, "split": split, "task": task, "bytes": out.stat().st_size}


def models() -> list[dict]:
    from engine.core import model_catalog as m

    return m.list_models(home())


def model_names() -> list[str]:
    """Names a model picker offers: the registry's models available here, then trained runs."""
    return [r["name"] for r in models() if r["available"]] or ["smollm2-135m-instruct"]


def chain_tasks() -> list[str]:
    from engine.data import tasks

    return list(tasks.TASKS)


# -- what `ccr data` runs in its own process ----------------------------------------------------


def run_synth(preset: str, seed: int, out: str | None = None, dataset: str | None = None) -> dict:
    """``ccr data synth``: synthesize a dataset in this process; returns the job row. A dataset
    name that cannot be used raises ValueError before the job."""
    if dataset is not None:
        dataset = store.clean_dataset_name(dataset)
    config = {"preset": preset, "seed": seed, "out": out, "dataset": dataset}
    return run_job("synth", config, f"synthesize {preset} (seed {seed})")


def check_import(path: str, split: str | None) -> None:
    """What ``ccr data import`` refuses before any job: an unreadable file (ImportFileError, an
    OSError) or an unknown split (ValueError)."""
    from engine.data import importer

    importer.read_records(path)
    if split and importer.SPLIT_ALIASES.get(split.lower()) is None:
        raise ValueError(f"unknown split {split!r} (expected train, validation or test)")


def run_import(path: str, dataset: str | None, split: str | None) -> dict:
    """``ccr data import``: import a file in this process (after ``check_import``); the job row."""
    config = {"path": os.path.abspath(path), "dataset": dataset, "split": split, "display_name": path}
    return run_job("import", config, f"import {os.path.basename(path)}", echo=False)


def write_dataset(name: str, out: str, split: str | None = None, task: str | None = None) -> dict:
    """``ccr data export``: dataset ``name`` (or a split/task of it) as ChatML JSONL at ``out``."""
    from engine.data import datasets

    return datasets.export_dataset(home(), name, out, split=split, task=task)


def model_availability(name: str) -> tuple[bool, str]:
    """Whether model ``name`` can be loaded here, and why not."""
    from engine.core import model_catalog

    return model_catalog.availability(name, home())
