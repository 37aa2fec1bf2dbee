"""Review: the flagged queue, one chain at a time beside its transcript with every criterion's
reason; approve, reject, or edit and re-score; bulk decisions over a filter. Keyboard: A approve,
X reject, J next, K previous (Ctrl+Enter saves an edit). Decisions are stored with their time
and the export follows them; the export button writes the training files (`ccr export reasoning`).
UI only."""

import pandas as pd
import streamlit as st

import ui
from engine import api

st.title("Review chains")

# Who decides: asked once per browser session (kept in the session, not in the shared settings:
# two reviewers on one app must not take each other's name), required for every decision.
reviewer = st.session_state.get("reviewer-name")
if reviewer:
    who = st.columns([5, 1])
    who[0].caption(f"Reviewing as **{ui.md_escape(reviewer)}**: every decision is stored with this name.")
    if who[1].button("Change name", key="rv-change-name"):
        del st.session_state["reviewer-name"]
        st.rerun()
else:
    with st.form("rv-name"):
        typed = st.text_input("Your name (stored with every decision you take here)", key="rv-reviewer",
                              max_chars=80)
        if st.form_submit_button("Save name", key="rv-name-save"):
            try:
                st.session_state["reviewer-name"] = reviewer = api.check_reviewer(typed)
                st.rerun()
            except ValueError as exc:
                st.error(str(exc))
    st.warning("Approve, reject and edit are off until you give your name above (asked once per session).")
NO_NAME = "Give your reviewer name at the top of the page first"

# Above the filters, so it is there even when no chain matches them (`ccr export reasoning`).
with st.container(border=True):
    st.caption("Write the working dataset's passed and approved chains (train and validation splits) as ChatML "
               "JSONL: the Train page's default training data. Same as `ccr export reasoning`.")
    e1, e2 = st.columns([1, 2])
    include_flagged = e1.checkbox("Include flagged chains", key="rv-export-flagged",
                                  help="Also chains still waiting for review (rejected ones never).")
    if e2.button("Export chains for training", key="rv-export"):
        try:
            exported = api.export_reasoning(include_flagged)
        except (ValueError, OSError) as exc:
            st.error("Export failed:")
            st.code(str(exc), language=None)  # may quote a dataset name: plain text
        else:
            t, v = exported["train"], exported["validation"]
            statuses = ", ".join(f"{k} {t['by_status'][k] + v['by_status'].get(k, 0)}" for k in t["by_status"])
            st.success(f"Exported {t['lines']} train and {v['lines']} validation chains ({statuses}) to "
                       f"`{t['path']}` and `{v['path']}`.")

REASONS = {"(any)": None, "contradicts the labels": "contradiction", "invented specifics": "invented",
           "judge model: unfaithful": "judge", "form (structure, content)": "form"}
c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 1.4, 1.4])
status = c1.selectbox("Status", ["flagged", "passed", "approved", "rejected", "(any)"], key="rv-status")
task = c2.selectbox("Task", ["(all)"] + api.chain_tasks(), key="rv-task")
reason = c3.selectbox("Reason", list(REASONS), key="rv-reason",
                      help="Why the chain falls short: a statement that contradicts the labels, a specific "
                           "(amount, name, date, product, channel) the transcript does not support, the optional "
                           "judge model's unfaithful rating, or its form. "
                           "Same as `ccr review list --reason`.")
lo, hi = c4.slider("Score", 0.0, 100.0, (0.0, 100.0), step=1.0, key="rv-range")
search = c5.text_input("Search (example id or chain text)", key="rv-search")
filters = {"status": None if status == "(any)" else status, "task": None if task == "(all)" else task,
           "min_score": lo if lo > 0 else None, "max_score": hi if hi < 100 else None, "search": search or None,
           "reason": REASONS[reason]}
rows, total = api.chains(limit=500, **filters)
st.caption(f"{total} chains match" + (" (first 500 in the queue)" if total > 500 else "") + ", lowest score first.")

with st.expander(f"Bulk decision over all {total} matching chains"):
    with st.form("rv-bulk"):
        decision = st.radio("Decision", ["approve", "reject"], horizontal=True)
        sure = st.checkbox(f"Yes, apply it to all {total} chains matching the filters above")
        if st.form_submit_button("Apply to all matching", disabled=total == 0 or not reviewer,
                                 help=None if reviewer else NO_NAME):
            if sure:
                try:
                    n = api.bulk_review(decision, reviewer, **filters)
                except ValueError as exc:
                    st.error(str(exc))
                else:
                    st.session_state["rv-flash"] = (f"{decision}d {n} chains" if decision == "approve"
                                                    else f"rejected {n} chains")
                    st.rerun()
            else:
                st.warning("Tick the confirmation first.")

if st.session_state.get("rv-flash"):
    st.success(st.session_state.pop("rv-flash"))

if not rows:
    st.info("Nothing in this queue." if status == "flagged" else "No chains match.")
    st.stop()

st.dataframe(pd.DataFrame([{"chain": r["id"], "example": r["ex_id"], "task": r["task"], "status": r["status"],
                            "score": r["score"], "reasons": ", ".join(r["reasons"]) or "-",
                            "attempts": r["attempts"]} for r in rows]),
             hide_index=True, width="stretch", height=180)

idx = min(st.session_state.get("rv-idx", 0), len(rows) - 1)
nav = st.columns([1, 1, 4])
if nav[0].button("Previous", key="rv-prev", shortcut="k", disabled=idx == 0):
    st.session_state["rv-idx"] = max(0, idx - 1)
    st.rerun()
if nav[1].button("Next", key="rv-next", shortcut="j", disabled=idx >= len(rows) - 1):
    st.session_state["rv-idx"] = idx + 1
    st.rerun()
nav[2].caption(f"Chain {idx + 1} of {len(rows)} in the queue")

current = rows[idx]
detail = api.chain(current["id"])
if not detail:
    st.warning("This chain no longer exists.")
    st.stop()
ex = detail.get("example") or {}
st.subheader(f"#{detail['id']} · {ex.get('ex_id')} · {ex.get('task')} · {detail['status']} · "
             f"score {detail['score']:.1f}")
if detail.get("reasons"):
    st.caption("Falls short for: " + ", ".join(detail["reasons"]))  # from our fixed list

def decide(decision: str) -> None:
    try:
        api.review_chains([detail["id"]], decision, reviewer)
    except ValueError as exc:  # no reviewer name: refused, and said why
        st.error(str(exc))
        return
    st.session_state["rv-flash"] = f"{decision}d chain {detail['id']}" if decision == "approve" \
        else f"rejected chain {detail['id']}"
    st.rerun()


act = st.columns([1, 1, 4])
if act[0].button("Approve", type="primary", key="rv-approve", shortcut="a", disabled=not reviewer,
                 help=None if reviewer else NO_NAME):
    decide("approve")
if act[1].button("Reject", key="rv-reject", shortcut="x", disabled=not reviewer, help=None if reviewer else NO_NAME):
    decide("reject")
act[2].caption("Keys: A approve · X reject · J next · K previous" + ("" if reviewer else f" · {NO_NAME}."))

left, right = st.columns(2)
with left:
    st.markdown("**Transcript**")
    st.text(ex.get("transcript", ""))
    st.markdown("**Reference answer**")
    st.text(detail.get("reference", ""))
    st.markdown("**Labels**")
    ui.show_json(ex.get("labels", {}))
with right:
    st.markdown("**Why it scored this way**")
    ui.show_criteria(detail["criteria"])
    ui.show_chain(detail["text"], detail.get("at_fault"))

st.markdown("**Edit, re-score and approve**")
st.caption("Saving re-scores the edited chain and approves it when it passes (score >= 70 with every section, "
           "no contradiction or invented specific); otherwise it stays flagged with its new score.")
with st.form(f"rv-edit-{detail['id']}"):
    edited = st.text_area("Chain text", detail["text"], height=400)
    if st.form_submit_button("Save edit and approve", shortcut="ctrl+enter", disabled=not reviewer,
                             help="Re-scores the edit; approved when it passes, else still flagged"
                             if reviewer else NO_NAME):
        try:
            r = api.edit_chain(detail["id"], edited, reviewer)
            outcome = "approved" if r["status"] == "approved" else f"still {r['status']}: the edit does not pass"
            st.session_state["rv-flash"] = (f"chain {detail['id']}: score {r['score_before']:.1f} -> "
                                            f"{r['score']:.1f}, {outcome}")
            st.rerun()
        except ValueError as exc:
            st.error(str(exc))

if detail["attempt_rows"] or detail["reviews"]:
    with st.expander("Attempts and review history"):
        if detail["attempt_rows"]:
            st.dataframe(pd.DataFrame([{"attempt": a["attempt"], "score": a["score"],
                                        "temperature": a["sampling"].get("temperature"),
                                        "seed": a["sampling"].get("seed"), "tokens": a["tokens"]}
                                       for a in detail["attempt_rows"]]), hide_index=True)
        if detail["reviews"]:
            st.dataframe(pd.DataFrame([{"decision": r["decision"], "reviewer": r["reviewer"],
                                        "score before": r["score_before"], "score after": r["score_after"],
                                        "at": ui.fmt_time(r["created_at"])} for r in detail["reviews"]]),
                         hide_index=True)
