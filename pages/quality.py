"""Quality: the score distribution with the threshold, pass rates per criterion and per task, the
plan's three targets (met or not, with the figure), and the chains of any score range; any ChatML
JSONL file scored line by line (`ccr score`). UI only."""

import pandas as pd
import plotly.express as px
import streamlit as st

import ui
from engine import api

st.title("Chain quality")

# `ccr score FILE`: any ChatML JSONL file (an export, another teacher's output), before the
# chains of the database, so it works with none generated yet.
with st.expander("Score a ChatML JSONL file"):
    st.caption("Scores the last assistant turn of every line with the same scorer as generation (same as "
               "`ccr score FILE`). Unreadable lines are listed with their line number.")
    upload = st.file_uploader("ChatML JSONL file", type=["jsonl", "json"], key="q-score-file")
    if upload is not None:
        upload_id = getattr(upload, "file_id", None) or f"{upload.name}:{upload.size}"
        cached = st.session_state.get("q-score-result")
        if not cached or cached["upload_id"] != upload_id:  # score once per upload, not on every rerun
            with st.spinner("Scoring..."):
                cached = {"upload_id": upload_id, **api.score_chatml(upload.getvalue(), upload.name)}
            st.session_state["q-score-result"] = cached
        s = cached["summary"]
        m = st.columns(6)
        m[0].metric("Chains scored", s["count"])
        m[1].metric("Unreadable lines", s["errors"])
        m[2].metric("Average score", f"{s['average']:.1f}")
        m[3].metric(f"Share >= {cached['threshold']:g}", f"{100 * s['share_ge_70']:.1f}%")
        m[4].metric("All sections present", f"{100 * s['share_all_sections']:.1f}%")
        m[5].metric("Faithful", f"{100 * s['share_faithful']:.1f}%",
                    help=f"No contradiction ({100 * s['share_contradiction']:.1f}% have one) and no unsupported "
                         f"specific ({100 * s['share_invented']:.1f}% have one)")
        st.dataframe(pd.DataFrame([{"criterion": k, "average points": v, "max": cached["weights"].get(k)}
                                   for k, v in s["criteria"].items()]), hide_index=True)
        # Ids and error messages come from the file: dataframe cells only, never markdown.
        st.dataframe(pd.DataFrame([{"line": r["line"], "id": r.get("id"), "score": r.get("score"),
                                    "all sections": r.get("sections_ok"), "error": r.get("error"),
                                    **{k: c.get("points") for k, c in (r.get("criteria") or {}).items()}}
                                   for r in cached["lines"]]),
                     hide_index=True, width="stretch", key="q-score-lines")

c1, c2 = st.columns(2)
statuses = c1.multiselect("Status", ["passed", "flagged", "approved", "rejected"],
                          default=["passed", "flagged", "approved"], key="q-status")
task = c2.selectbox("Task", ["(all)"] + api.chain_tasks(), key="q-task")
filters = {"status": statuses or None, "task": None if task == "(all)" else task}
report = api.quality_report(**filters)
if not report.get("count"):
    st.info("No chains yet: generate some on the Generate page (or `ccr generate --limit 2`).")
    st.stop()

st.subheader("The plan's targets")
cols = st.columns(len(report["targets"]))
for col, t in zip(cols, report["targets"]):
    col.metric(t["target"], t["value"], "met" if t["met"] else "not met",
               delta_color="normal" if t["met"] else "inverse")
st.caption(f"{report['count']:,} chains in {ui.md_escape(report['dataset'])}; status counts: "
           + ", ".join(f"{k} {v}" for k, v in report["status"].items())
           + f". Faithfulness: {100 * report['share_contradiction']:.1f}% contradict their labels, "
             f"{100 * report['share_invented']:.1f}% name a specific the transcript does not support"
           + (f"; {report['unchecked']} chains were scored before these checks existed (not counted as faithful)"
              if report["unchecked"] else "") + ".")

threshold = report["threshold"]
n = report["count"]
# Fixed 10-point bins (as on Generate, Data and Evaluate): a chart compares bin for bin with another.
hist = ui.score_histograms({"chains": ui.score_bins(report["scores"])}, f"Score distribution ({n:,} chains)",
                          threshold=threshold)
st.plotly_chart(hist, width="stretch", key="q-hist")
ui.small_sample_note(n)

left, right = st.columns(2)
with left:
    st.caption(f"Pass rate per criterion over {n:,} chains (share of chains with at least 70% of the criterion's "
               "points; for consistency and grounding, the share with no fault)")
    crit = pd.DataFrame([{"criterion": k, "pass rate": v} for k, v in report["criteria_pass"].items()])
    fig = px.bar(crit, x="criterion", y="pass rate", range_y=[0, 1])
    fig.update_layout(height=280, margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(fig, width="stretch", key="q-crit")
with right:
    st.caption(f"Per task (pass rate: score >= {threshold:g})")
    st.dataframe(pd.DataFrame([{"task": t, **v} for t, v in report["per_task"].items()]), hide_index=True,
                 width="stretch")
    small = {t: v["count"] for t, v in report["per_task"].items() if v["count"] < api.SMALL_SAMPLE}
    if small:
        st.warning(f"Small sample: fewer than {api.SMALL_SAMPLE} chains for "
                   + ", ".join(f"{ui.md_escape(t)} ({c})" for t, c in small.items())
                   + ". A pass rate over so few chains moves in big steps: read it as a hint, not a result.")

st.subheader("Chains in a score range")
lo, hi = st.slider("Score range", 0.0, 100.0, (0.0, float(threshold)), step=1.0, key="q-range")
rows, total = api.chains(limit=200, min_score=lo, max_score=hi, **filters)
st.caption(f"{total} chains scored {lo:g}-{hi:g}" + (" (first 200 shown)" if total > 200 else ""))
if rows:
    st.dataframe(pd.DataFrame([{"chain": r["id"], "example": r["ex_id"], "task": r["task"], "status": r["status"],
                                "score": r["score"], "attempts": r["attempts"],
                                "updated": ui.fmt_time(r["updated_at"])} for r in rows]),
                 hide_index=True, width="stretch")
    pick = st.selectbox("Read a chain", [r["id"] for r in rows], key="q-pick",
                        format_func=lambda i: next(f"#{r['id']} {r['ex_id']} ({r['task']}) {r['score']:.1f}"
                                                   for r in rows if r["id"] == i))
    detail = api.chain(pick)
    if detail:
        a, b = st.columns([3, 2])
        with a:
            ui.show_chain(detail["text"], detail.get("at_fault"))
        with b:
            ui.show_criteria(detail["criteria"])
