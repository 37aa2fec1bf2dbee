"""What a reasoning-chain run works on: its config and key, its dataset, its examples.

Shared by the job (``chain_job``), the gate test (``gate``), the export (``export``) and the
review (``review``): the selection is the first ``limit`` examples of a split in id order, or
with ``balanced`` an order even across tasks and label values (``balanced_order``); both are
deterministic, so a resumed run selects the same examples.
"""

from __future__ import annotations

import json
import random

from engine.core import store
from engine.core.config import GenerateConfig, load_config


def chain_keys(cfg) -> tuple[str, str]:
    """(teacher id, prompt key) of a run: the key its chains, attempts and gate tests are stored under."""
    from engine.chains.teacher import prompt_key, teacher_id

    return teacher_id(cfg), prompt_key(cfg)


def config_from(config: dict | GenerateConfig | None = None, overrides: list[str] | tuple = (),
                path: str | None = None) -> GenerateConfig:
    if isinstance(config, GenerateConfig):
        return config
    return load_config(GenerateConfig, path, overrides, data=config or None)


def resolve_dataset(db, name: str | None) -> tuple[int, str]:
    """(id, name) of ``name`` or the working dataset; ValueError when there is none."""
    name = name or store.working_dataset(db)
    if not name:
        raise ValueError("no dataset yet: create one (`ccr data synth`) or import one (`ccr data import FILE`)")
    row = db.execute("SELECT id FROM datasets WHERE name = ?", [name]).fetchone()
    if not row:
        raise ValueError(f"no dataset named {name!r}")
    return row[0], name


_EX_COLS = "id, ex_id, split, task, messages, meta, labels, transcript"


def _example(ex: dict) -> dict:
    for key in ("messages", "meta", "labels"):
        ex[key] = json.loads(ex[key])
    return ex


def selection_ids(db, dataset_id: int, split: str, limit: int | None, balanced: bool = False,
                  seed: int = 0) -> list[int]:
    """Row ids of the examples a run works on: the first ``limit`` of the split in id order, or
    with ``balanced`` the first ``limit`` of ``balanced_order`` (even across tasks and, within a
    task, across label values). Both are deterministic, so a resumed run selects the same ids."""
    if balanced:
        rows = [(i, task, json.loads(labels) if labels else {}) for i, task, labels in db.execute(
            "SELECT id, task, labels FROM examples WHERE dataset_id = ? AND split = ?", [dataset_id, split])]
        order = balanced_order(rows, seed)
        return order if limit is None else order[:max(0, int(limit))]
    sql = "SELECT id FROM examples WHERE dataset_id = ? AND split = ? ORDER BY id"
    params: list = [dataset_id, split]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return [r[0] for r in db.execute(sql, params)]


# ---------------------------------------------------------------------------------------------
# Balanced selection: a small student trained on skewed labels learns the majority answer (8 of
# the 16 CSAT chains of the first 96 demo examples were 5/5, and the tuned model answered 5/5 to
# most CSAT calls), so the demo and `ccr export reasoning --balanced` pick examples round-robin
# over (task, label value) strata.
# ---------------------------------------------------------------------------------------------

QA_BANDS = ((0, 49), (50, 69), (70, 84), (85, 100))


def label_stratum(task: str | None, labels: dict | None) -> str:
    """The label value an example is balanced on within its task: the CSAT score, the QA score's
    band, the churn level, the sentiment, the root cause, and for coaching how many behaviours
    (none, one, several: the count is what a student over- or under-predicts). Examples without
    a usable label share one stratum, ``(no label)``.

    >>> [label_stratum("csat", {"csat": 4}), label_stratum("quality", {"quality": 72}),
    ...  label_stratum("coaching", {"coaching": ["empathy", "ownership"]}), label_stratum("churn", {})]
    ['4', '70-84', 'several', '(no label)']
    """
    labels = labels or {}
    try:
        if task == "csat":
            return str(int(labels["csat"]))
        if task == "quality":
            score = float(labels["quality"])
            return next(f"{lo}-{hi}" for lo, hi in QA_BANDS if score <= hi) if score >= 0 else "(no label)"
        if task == "coaching":
            n = len(labels["coaching"])
            return "none" if n == 0 else "one" if n == 1 else "several"
        if task in ("churn", "sentiment", "root_cause"):
            value = labels[task]
            return str(value) if value not in (None, "") else "(no label)"
    except (KeyError, TypeError, ValueError, StopIteration):
        pass
    return "(no label)"


def _round_robin(queues: list[list]) -> list:
    """One item from each queue in turn; an exhausted queue drops out and the others go on.

    >>> _round_robin([[1, 2, 3], [4], [5, 6]])
    [1, 4, 5, 2, 6, 3]
    """
    out = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


def balanced_order(rows, seed: int = 0) -> list[int]:
    """Order ``rows`` (id, task, labels) so that every prefix is as balanced as the data allows.

    Within a task the ids are grouped by ``label_stratum``, each group shuffled with a seeded
    generator, and the groups taken round-robin; the tasks are then interleaved round-robin (in
    ``tasks.TASKS`` order, unknown tasks after). So the first 60 of a split with six tasks are 10
    per task and, for CSAT, 2 per score. A stratum with too few examples is used up and drops
    out: the remaining values (or tasks) fill its turns, so a prefix never runs short while
    examples are left, and the shares are then as even as the data allows. Deterministic: the
    same rows and seed give the same order (a string seed hashes the same in every process).
    """
    from engine.data.tasks import TASKS

    by_task: dict[str, dict[str, list[int]]] = {}
    for row_id, task, labels in sorted(rows, key=lambda r: r[0]):
        by_task.setdefault(task or "", {}).setdefault(label_stratum(task, labels), []).append(row_id)
    per_task = {}
    for task, strata in by_task.items():
        rng = random.Random(f"balanced:{seed}:{task}")
        values = sorted(strata)
        rng.shuffle(values)  # which value gets the odd extra pick varies with the seed, not always the first
        queues = []
        for value in values:
            ids = list(strata[value])
            rng.shuffle(ids)
            queues.append(ids)
        per_task[task] = _round_robin(queues)
    order = [t for t in TASKS if t in per_task] + sorted(t for t in per_task if t not in TASKS)
    return _round_robin([per_task[t] for t in order])


def balance_counts(db, ids: list[int]) -> dict[str, dict[str, int]]:
    """{task: {label stratum: count}} of the examples ``ids`` (what a balanced selection holds)."""
    out: dict[str, dict[str, int]] = {}
    for ex in load_examples(db, list(ids)):
        counts = out.setdefault(ex["task"] or "", {})
        value = label_stratum(ex["task"], ex["labels"])
        counts[value] = counts.get(value, 0) + 1
    return {t: dict(sorted(v.items())) for t, v in sorted(out.items(), key=task_sort_key)}


def task_sort_key(item) -> tuple:
    """Sort key of a (task, ...) pair: the six tasks in their usual order, unknown ones after."""
    from engine.data.tasks import TASKS

    task = item[0]
    return (TASKS.index(task), "") if task in TASKS else (len(TASKS), task or "")


def load_examples(db, ids: list[int]) -> list[dict]:
    """The examples ``ids`` as dicts (messages, meta and labels decoded), in the order of ``ids``;
    ids with no example are left out."""
    rows = chunked_query(db, f"SELECT {_EX_COLS} FROM examples WHERE id IN ({{ids}})", ids, dicts=True)
    by_id = {e["id"]: e for e in map(_example, rows)}
    return [by_id[i] for i in ids if i in by_id]


CHUNK = 500   # ids per ``IN (...)`` list: SQLite caps a statement's parameters (999 in older builds)


def chunked_query(db, sql: str, ids, params=(), dicts: bool = False) -> list:
    """The rows of ``sql`` over every id of ``ids``, asked ``CHUNK`` ids at a time: ``sql`` holds
    ``{ids}`` where the ``?, ?, ...`` list goes, and ``params`` fill the placeholders before it.
    Rows come chunk by chunk (an ``ORDER BY`` holds within a chunk); as tuples, or with ``dicts``
    as dicts by column name (sqlite-utils' ``db.query``).

    >>> import sqlite3
    >>> db = sqlite3.connect(":memory:")
    >>> _ = db.executescript("CREATE TABLE t (id INTEGER, tag TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'a')")
    >>> chunked_query(db, "SELECT id FROM t WHERE tag = ? AND id IN ({ids}) ORDER BY id", range(1, 1200), ["a"])
    [(1,), (3,)]
    """
    ids = list(ids)
    rows: list = []
    read = db.query if dicts else db.execute
    for start in range(0, len(ids), CHUNK):
        part = ids[start:start + CHUNK]
        rows.extend(read(sql.format(ids=", ".join("?" for _ in part)), [*params, *part]))
    return rows


def format_balance(by_label: dict[str, dict[str, int]]) -> str:
    """``csat 1:4 2:4 3:3 ...; churn high:5 ...`` for logs and the command line.

    >>> format_balance({"csat": {"1": 2, "5": 2}, "churn": {"low": 3}})
    'csat 1:2 5:2; churn low:3'
    """
    return "; ".join(f"{task or '(no task)'} " + " ".join(f"{v}:{n}" for v, n in counts.items())
                     for task, counts in by_label.items())
