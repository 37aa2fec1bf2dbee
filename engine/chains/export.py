"""Export of the reasoning chains as the training files (ChatML JSONL, train and validation).

Which chains go out: approved or passed (flagged too on request; rejected never), one per
example, optionally a balanced subset (``selection.balanced_order``). Written with a temp file
and a rename, so a kill never leaves half a file.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.chains.selection import task_sort_key, balanced_order, label_stratum, load_examples, resolve_dataset
from engine.core import store
from engine.core.fileio import atomic_write
from engine.core.paths import Home, resolve_home

_STATUS_RANK = {"approved": 3, "passed": 2, "flagged": 1}


def export_reasoning(home: Home | str | None = None, out: str | Path | None = None, include_flagged: bool = False,
                     dataset: str | None = None, balanced: bool = False, limit: int | None = None,
                     seed: int = 0) -> dict:
    """Write the train and validation chains as ChatML JSONL (temp file + rename).

    One line per example that has a usable chain: approved or passed (flagged too with
    ``include_flagged``; rejected never). The last assistant turn is replaced by the chain; the
    example's meta is kept and gains ``chain_score``, ``chain_status``, ``teacher`` and
    ``prompt_version``. When an example has chains from several teachers or prompt versions,
    the best status wins, then the newest. ``out`` names the train file (default
    ``<home>/train_reasoning.jsonl``); the validation file goes beside it.

    ``limit``: at most N lines per file, the first N by example id or, with ``balanced``, the
    first N of ``balanced_order`` (seeded by ``seed``). ``balanced`` without a limit keeps the
    largest set with the same count for every task present (the smallest task's count), the
    label values within each task as even as the chains allow. Lines left out are counted in
    the report (``left_out``), never dropped silently; ``by_label`` gives each file's
    {task: {label value: lines}}.
    """
    home = resolve_home(home).ensure()
    db = store.connect(home)
    ds_id, ds_name = resolve_dataset(db, dataset)
    train_path = Path(out) if out else home.data / "train_reasoning.jsonl"
    name = train_path.name
    val_name = name.replace("train", "validation") if "train" in name else f"{train_path.stem}.validation{train_path.suffix or '.jsonl'}"
    paths = {"train": train_path, "validation": train_path.with_name(val_name)}
    allowed = ["approved", "passed"] + (["flagged"] if include_flagged else [])
    report = {"dataset": ds_name, "include_flagged": include_flagged, "balanced": balanced, "limit": limit}
    for split, path in paths.items():
        best: dict[int, tuple] = {}
        for row in db.execute(
                f"SELECT c.example_id, c.text, c.score, c.status, c.teacher, c.prompt_version, c.updated_at "
                f"FROM chains c JOIN examples e ON e.id = c.example_id WHERE e.dataset_id = ? AND e.split = ? "
                f"AND c.status IN ({', '.join('?' for _ in allowed)})", [ds_id, split, *allowed]):
            rank = (_STATUS_RANK[row[3]], row[6])
            if row[0] not in best or rank > best[row[0]][0]:
                best[row[0]] = (rank, row)
        keep = _export_selection(db, sorted(best), balanced, limit, seed)
        lines = 0
        by_status = {s: 0 for s in allowed}
        by_label: dict[str, dict[str, int]] = {}
        with atomic_write(path) as fh:
            for ex in load_examples(db, keep):
                _, (_, text, score, status, tid, pk, _) = best[ex["id"]]
                messages = [dict(m) for m in ex["messages"]]
                idx = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
                if idx is None:
                    messages.append({"role": "assistant", "content": text})
                else:
                    messages[idx]["content"] = text
                meta = dict(ex["meta"])
                meta.setdefault("id", ex["ex_id"])
                meta.setdefault("task", ex["task"])
                meta.setdefault("labels", ex["labels"])
                meta.update({"chain_score": score, "chain_status": status, "teacher": tid, "prompt_version": pk})
                fh.write(json.dumps({"messages": messages, "meta": meta}, ensure_ascii=False) + "\n")
                lines += 1
                by_status[status] += 1
                counts = by_label.setdefault(ex["task"] or "", {})
                value = label_stratum(ex["task"], ex["labels"])
                counts[value] = counts.get(value, 0) + 1
        report[split] = {"path": str(path), "lines": lines, "by_status": by_status, "left_out": len(best) - lines,
                         "by_label": {t: dict(sorted(v.items())) for t, v in sorted(by_label.items(), key=task_sort_key)}}
    return report


def _export_selection(db, ids: list[int], balanced: bool, limit: int | None, seed: int) -> list[int]:
    """The example ids (sorted) whose chains an export writes; see ``export_reasoning``."""
    if limit is not None and int(limit) < 0:
        raise ValueError(f"limit must be 0 or more, got {limit}")
    if not balanced:
        return ids if limit is None else ids[:int(limit)]
    rows = [(e["id"], e["task"], e["labels"]) for e in load_examples(db, ids)]
    if limit is None:
        per_task: dict[str, int] = {}
        for _, task, _ in rows:
            per_task[task or ""] = per_task.get(task or "", 0) + 1
        limit = min(per_task.values()) * len(per_task) if per_task else 0
    return sorted(balanced_order(rows, seed)[:int(limit)])
