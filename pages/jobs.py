"""Jobs: the engine's queue, each job's progress, controls and log."""

import pandas as pd
import streamlit as st

import ui
from engine import api

st.title("Jobs")
st.caption("Every phase runs as a job in its own process. Cancel, pause and resume here or with `ccr jobs`.")


@st.fragment(run_every=2)
def job_table() -> None:
    rows = api.list_jobs(limit=100)
    if not rows:
        st.info("No jobs yet.")
        return
    def times(r: dict) -> dict:
        t = ui.job_times(r)  # computed now: elapsed and ETA move between the job's own writes
        return {"elapsed": ui.fmt_duration(t["elapsed_s"]) if t["elapsed_s"] is not None else "",
                "rate": f"{t['rate']:.3g} {t['rate_unit']}" if t["rate"] else "",
                "ETA": ui.fmt_duration(t["eta_s"]) if t["eta_s"] is not None else ""}

    df = pd.DataFrame([{
        "id": r["id"], "kind": r["kind"], "title": r["title"], "status": r["status"],
        "progress": round(100 * (r["progress"] or 0)), **times(r), "created": ui.fmt_time(r["created_at"]),
        "error": (r["error"] or "")[:120],
    } for r in rows])
    st.dataframe(df, hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=100)})
    ui.rerun_on_change("jobs-ids", tuple(r["id"] for r in rows))  # a new job appears in the picker below


job_table()
ids = [r["id"] for r in api.list_jobs(limit=100)]
if ids:
    picked = st.selectbox("Job details", ids, key="jobs-pick")

    @st.fragment(run_every=2)
    def details() -> None:
        job = ui.job_panel(picked, key="jobs")
        if job and job.get("result"):
            with st.expander("Result"):
                ui.show_json(job["result"])
        if job:
            with st.expander("Config"):
                ui.show_json(job["config"])

    details()
