"""The human review of reasoning chains and the Quality page's report.

List and filter chains (``list_chains``: by status, task, score, reason ...), show one with its
example, attempts and the sentences at fault (``chain_detail``), approve or reject
(``review``, ``bulk_review``), edit and re-score (``edit_chain``); every decision is stored with
its time and reviewer. ``quality_report`` is the scores, pass rates and the plan's targets.
"""

from __future__ import annotations

import json

from engine.chains import quality
from engine.chains.acceptance import accepted, chain_reasons, fill_missing_reasons, score_for, structure_faults
from engine.chains.selection import load_examples, resolve_dataset
from engine.core import store
from engine.core.paths import Home
from engine.data.example import reference_of

STATUSES = ("passed", "flagged", "approved", "rejected")
FAITHFUL_TARGET = 0.95   # share of chains with no contradiction and no unsupported specific


_LIST_COLS = ("c.id, c.example_id, e.ex_id, e.split, e.task, c.status, c.score, c.attempts, c.teacher, "
              "c.prompt_version, c.updated_at, c.reasons")


def _filter(dataset_id: int | None, status=None, task=None, min_score=None, max_score=None, search=None,
            teacher=None, prompt_version=None, split=None, ids=None, reason=None) -> tuple[str, list]:
    where, params = [], []
    if reason:
        if reason not in quality.REASONS:
            raise ValueError(f"reason must be one of {', '.join(quality.REASONS)}, got {reason!r}")
        where.append("c.reasons LIKE ?")
        params.append(f"%,{reason},%")
    if dataset_id is not None:
        where.append("e.dataset_id = ?")
        params.append(dataset_id)
    if status:
        statuses = [status] if isinstance(status, str) else list(status)
        where.append(f"c.status IN ({', '.join('?' for _ in statuses)})")
        params.extend(statuses)
    for col, value in (("e.task", task), ("c.teacher", teacher), ("c.prompt_version", prompt_version),
                       ("e.split", split)):
        if value:
            where.append(f"{col} = ?")
            params.append(value)
    if min_score is not None:
        where.append("c.score >= ?")
        params.append(float(min_score))
    if max_score is not None:
        where.append("c.score <= ?")
        params.append(float(max_score))
    if search:
        where.append("(e.ex_id LIKE ? OR c.text LIKE ?)")
        params.extend([f"%{search}%", f"%{search}%"])
    if ids:
        where.append(f"c.id IN ({', '.join('?' for _ in ids)})")
        params.extend(int(i) for i in ids)
    return (" WHERE " + " AND ".join(where)) if where else "", params


def list_chains(home: Home | str | None = None, dataset: str | None = None, limit: int | None = 100,
                offset: int = 0, order: str = "score", **filters) -> tuple[list[dict], int]:
    """A page of chains matching the filters (status, task, min_score, max_score, search,
    teacher, prompt_version, split, reason: contradiction | invented | judge | form) and the total count.
    ``order``: score (lowest first) or recent. Each row's ``reasons`` lists why it falls short."""
    db = store.connect(home)
    fill_missing_reasons(db)
    try:
        ds_id = resolve_dataset(db, dataset)[0]
    except ValueError:
        return [], 0
    where, params = _filter(ds_id, **filters)
    base = f"FROM chains c JOIN examples e ON e.id = c.example_id{where}"
    total = db.execute(f"SELECT COUNT(*) {base}", params).fetchone()[0]
    sort = "c.updated_at DESC, c.id DESC" if order == "recent" else "c.score ASC, c.id ASC"
    sql = f"SELECT {_LIST_COLS} {base} ORDER BY {sort}"
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    rows = list(db.query(sql, params))
    for r in rows:
        r["reasons"] = [x for x in (r["reasons"] or "").split(",") if x]
    return rows, total


def chain_detail(home: Home | str | None, chain_id: int) -> dict | None:
    """A chain with its example (transcript, labels, reference), criteria, why it falls short
    (``reasons``), the sentences at fault (``at_fault``: sentence, reason, kind), attempts and
    reviews."""
    db = store.connect(home)
    fill_missing_reasons(db)
    c = next(db.query("SELECT id, example_id, prompt_version, teacher, text, score, criteria, status, attempts, "
                      "tokens, seconds, job_id, created_at, updated_at, reasons FROM chains WHERE id = ?",
                      [chain_id]), None)
    if not c:
        return None
    c["criteria"] = json.loads(c["criteria"])
    c["reasons"] = [x for x in (c["reasons"] or "").split(",") if x]
    c["at_fault"] = quality.at_fault(c["criteria"])   # the sentences to highlight
    ex = load_examples(db, [c["example_id"]])
    c["example"] = ex[0] if ex else None
    if ex:
        c["reference"] = reference_of(ex[0]["messages"]) or ""
    c["attempt_rows"] = list(db.query("SELECT attempt, score, sampling, tokens, seconds, created_at FROM chain_attempts "
                                      "WHERE example_id = ? AND prompt_version = ? AND teacher = ? ORDER BY attempt",
                                      [c["example_id"], c["prompt_version"], c["teacher"]]))
    for a in c["attempt_rows"]:
        a["sampling"] = json.loads(a["sampling"])
    c["reviews"] = list(db.query("SELECT decision, score_before, score_after, reviewer, created_at FROM reviews "
                                 "WHERE chain_id = ? ORDER BY id", [chain_id]))
    return c


def check_reviewer(name: str | None) -> str:
    """The reviewer's name a decision is stored with, trimmed; ValueError when there is none.

    The Review page and ``ccr review approve/reject/edit`` refuse a decision without a name, so
    every decision in the history says who took it.

    >>> check_reviewer("  Ana ")
    'Ana'
    >>> check_reviewer("   ")
    Traceback (most recent call last):
    ...
    ValueError: a reviewer name is required: decisions are stored with who took them
    """
    name = (name or "").strip()
    if not name:
        raise ValueError("a reviewer name is required: decisions are stored with who took them")
    if len(name) > 80 or any(c in name for c in "\r\n\t"):
        raise ValueError("a reviewer name is one line of at most 80 characters")
    return name


def review(home: Home | str | None, chain_ids, decision: str, reviewer: str | None = None) -> int:
    """Approve or reject chains (stored with the time and reviewer); returns how many changed."""
    if decision not in ("approve", "reject"):
        raise ValueError(f"decision must be approve or reject, got {decision!r}")
    return store.review_chains(store.connect(home), [int(i) for i in chain_ids], decision, reviewer)


def edit_chain(home: Home | str | None, chain_id: int, text: str, reviewer: str | None = None,
               threshold: float = quality.THRESHOLD) -> dict:
    """Replace a chain's text, re-score it against its example, and store the decision.

    The chain becomes ``approved`` when the edited text passes (score >= threshold and all
    sections), else it stays ``flagged`` with its new score and reasons."""
    db = store.connect(home)
    c = chain_detail(home, chain_id)
    if c is None:
        raise ValueError(f"no chain {chain_id}")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the edited chain is empty")
    r = score_for(c["example"] or {}, text)
    r["faults"] = structure_faults(text)
    status = "approved" if accepted(r, threshold) else "flagged"
    store.review_chains(db, [chain_id], "edit", reviewer, edited_text=text, new_score=r["score"],
                        new_criteria=r["criteria"], new_status=status, new_reasons=chain_reasons(r, threshold))
    return {"id": chain_id, "score_before": c["score"], "score": r["score"], "criteria": r["criteria"],
            "sections_ok": r["sections_ok"], "status": status}


def bulk_review(home: Home | str | None, decision: str, dataset: str | None = None, reviewer: str | None = None,
                **filters) -> int:
    """Approve or reject every chain matching the filters (e.g. status=flagged, min_score=60)."""
    rows, _ = list_chains(home, dataset, limit=None, **filters)
    return review(home, [r["id"] for r in rows], decision, reviewer) if rows else 0


def quality_report(home: Home | str | None = None, dataset: str | None = None, threshold: float = quality.THRESHOLD,
                   **filters) -> dict:
    """What the Quality page shows: scores, pass rate per criterion and per task, the plan's targets."""
    db = store.connect(home)
    fill_missing_reasons(db)
    try:
        ds_id, ds_name = resolve_dataset(db, dataset)
    except ValueError:
        return {"count": 0}
    where, params = _filter(ds_id, **filters)
    rows = db.execute(f"SELECT c.score, c.criteria, c.status, e.task, c.reasons FROM chains c JOIN examples e "
                      f"ON e.id = c.example_id{where}", params).fetchall()
    n = len(rows)
    if not n:
        return {"count": 0, "dataset": ds_name}
    scores = [r[0] for r in rows]
    crit_ok: dict[str, int] = {}
    sections_all = 0
    per_task: dict[str, list] = {}
    contradicting = inventing = unchecked = faithful = 0
    for score, criteria, status, task, reasons in rows:
        crit = json.loads(criteria)
        for name, c in crit.items():
            if c.get("max"):
                crit_ok[name] = crit_ok.get(name, 0) + (c["points"] >= 0.7 * c["max"])
            else:   # faithfulness (and the judge): a deduction; passing it means none, and a judge that answered
                crit_ok[name] = crit_ok.get(name, 0) + (c.get("points", 0) >= 0 and not c.get("faults")
                                                        and not c.get("unavailable"))
        reasons = reasons or ""
        unchecked += "consistency" not in crit
        contradicting += ",contradiction," in reasons
        inventing += ",invented," in reasons
        faithful += "consistency" in crit and ",contradiction," not in reasons and ",invented," not in reasons
        sec = crit.get("sections")
        sections_all += bool(sec and sec["points"] >= sec["max"] - 1e-6)
        per_task.setdefault(task or "(none)", []).append(score)
    avg = sum(scores) / n
    share = sum(s >= threshold for s in scores) / n
    share_sections = sections_all / n
    share_faithful = faithful / n
    return {
        "count": n, "dataset": ds_name, "scores": scores, "average": round(avg, 2),
        "share_ge_threshold": round(share, 4), "share_all_sections": round(share_sections, 4),
        "threshold": threshold,
        "share_faithful": round(share_faithful, 4), "share_contradiction": round(contradicting / n, 4),
        "share_invented": round(inventing / n, 4), "unchecked": unchecked,
        "criteria_pass": {k: round(v / n, 4) for k, v in crit_ok.items()},
        "per_task": {t: {"count": len(s), "average": round(sum(s) / len(s), 2),
                         "pass_rate": round(sum(x >= threshold for x in s) / len(s), 4)} for t, s in sorted(per_task.items())},
        "status": {s: sum(1 for r in rows if r[2] == s) for s in STATUSES},
        "targets": [
            {"target": "average score >= 75", "value": round(avg, 2), "met": avg >= 75},
            {"target": f"more than 80% of chains >= {threshold:g}", "value": f"{100 * share:.1f}%", "met": share > 0.8},
            {"target": "all sections present", "value": f"{100 * share_sections:.1f}%", "met": sections_all == n},
            # Not the plan's own line: form targets can read "met" over chains that contradict their
            # labels or invent facts, so faithfulness has its own (a chain scored before the checks
            # existed counts as not shown to be faithful).
            {"target": f"at least {100 * FAITHFUL_TARGET:g}% of chains faithful (no contradiction, no invented "
                       f"specific)", "value": f"{100 * share_faithful:.1f}%", "met": share_faithful >= FAITHFUL_TARGET},
        ],
    }
