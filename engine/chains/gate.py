"""The gate of a full reasoning-chain run: a test on one example, or an override.

``run_test`` generates one example, scores it and records it in ``gate_tests``; a full run
(``chain_job.run_generate_job``) starts only when a test for the same teacher and prompt version
on the same dataset reached ``gate_threshold`` or an override (with its reason) was recorded for
that dataset (``gate_status``, ``record_override``).

Each takes a parsed ``GenerateConfig``: the entry layer (``engine.api``) parses the page's or the
command's settings once, the job parses its stored JSON once (``run_generate_job``).
"""

from __future__ import annotations

import time

from engine.chains.acceptance import judge_attempts, score_for, structure_faults
from engine.chains.selection import chain_keys, load_examples, resolve_dataset, selection_ids
from engine.core import store
from engine.core.config import GenerateConfig, to_dict
from engine.core.paths import Home, resolve_home


def gate_status(home: Home | str | None, cfg: GenerateConfig) -> dict:
    """Whether a full run may start: a recorded test >= gate threshold, or an override, for this
    teacher and prompt version ON THIS DATASET (a test on another dataset's example, or an
    override recorded for another dataset, does not open the gate here)."""
    tid, pk = chain_keys(cfg)
    db = store.connect(home)
    try:
        ds_id, ds_name = resolve_dataset(db, cfg.dataset)
    except ValueError:
        ds_id = ds_name = None
    rows = list(db.query(
        "SELECT g.id, g.example_id, g.score, g.override, g.reason, g.created_at, e.dataset_id, "
        "json_extract(g.config, '$.dataset') AS dataset FROM gate_tests g LEFT JOIN examples e ON e.id = g.example_id "
        "WHERE g.teacher = ? AND g.prompt_version = ? ORDER BY g.id DESC", [tid, pk]))
    rows = [r for r in rows if (r["dataset_id"] is not None and r["dataset_id"] == ds_id)
            or (r["override"] and ds_name is not None and r["dataset"] == ds_name)]
    tests = [r for r in rows if not r["override"]]
    passing = [r for r in tests if r["score"] is not None and r["score"] >= cfg.gate_threshold]
    overrides = [r for r in rows if r["override"]]
    return {"ok": bool(passing or overrides), "teacher": tid, "prompt_version": pk,
            "threshold": cfg.gate_threshold, "latest_test": tests[0] if tests else None,
            "passing_test": passing[0] if passing else None, "override": overrides[0] if overrides else None}


def record_override(home: Home | str | None, cfg: GenerateConfig, reason: str | None = None) -> int:
    """Record that a person launched the full run without a passing test."""
    tid, pk = chain_keys(cfg)
    db = store.connect(home)
    # The override holds for the dataset it was recorded on (the working one when none is named).
    config = {**to_dict(cfg), "dataset": resolve_dataset(db, cfg.dataset)[1]}
    return store.add_gate_test(db, None, tid, pk, config, None, None, None, override=True,
                               reason=reason or "override without a passing test")


def run_test(home: Home | str | None, cfg: GenerateConfig, log=print) -> dict:
    """Generate and score one example (attempt-1 sampling) and record it as a gate test."""
    from engine.chains import teacher

    home = resolve_home(home)
    db = store.connect(home)
    ds_id, ds_name = resolve_dataset(db, cfg.dataset)
    if cfg.test_example is not None:
        rows = load_examples(db, [int(cfg.test_example)])
        if not rows:
            raise ValueError(f"test_example: no example with row id {cfg.test_example}")
    else:
        first = selection_ids(db, ds_id, cfg.split, 1)
        if not first:
            raise ValueError(f"dataset {ds_name} has no {cfg.split} examples")
        rows = load_examples(db, first)
    ex = rows[0]
    tid, pk = chain_keys(cfg)
    log(f"test generation: example {ex['ex_id']} ({ex['task']}) with {tid}, prompt {pk}")
    t0 = time.time()
    out = teacher.teach([ex], cfg, temperature=cfg.temperatures[0], seed=cfg.seed + 1000, home=home)[0]
    seconds = time.time() - t0
    r = score_for(ex, out.text)
    if cfg.judge.enabled:  # the test shows the judge at work too: its rating is sent whatever the score
        r.update(text=out.text, faults=structure_faults(out.text))
        counts = judge_attempts(cfg, [(ex, r)], everything=True)
        log(f"judge {cfg.judge.model}: {r['criteria']['judge']['reason']}" if not counts["unavailable"]
            else f"judge {r['criteria']['judge']['reason']} (the chain is scored without it)")
    gate_id = store.add_gate_test(db, ex["id"], tid, pk, to_dict(cfg), out.text, r["score"], r["criteria"])
    passed = r["score"] >= cfg.gate_threshold and r["sections_ok"] and not structure_faults(out.text)
    log(f"test score {r['score']:.1f} (gate {cfg.gate_threshold:g}): {'passed' if passed else 'below the gate'}")
    return {"test": True, "gate_id": gate_id, "example_id": ex["id"], "ex_id": ex["ex_id"], "task": ex["task"],
            "text": out.text, "score": r["score"], "criteria": r["criteria"], "sections_ok": r["sections_ok"],
            "passed": passed, "gate_threshold": cfg.gate_threshold, "teacher": tid, "prompt_version": pk,
            "seconds": round(seconds, 2), "completion_tokens": out.completion_tokens}
