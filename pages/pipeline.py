"""Pipeline: every phase, its state and counts, and the next step to take."""

import streamlit as st

import ui
from engine import api

st.title("Pipeline")
st.caption("From labelled transcripts to a small reasoning model: data → generate → review → train → evaluate → deploy.")

current = api.current_dataset()
names = [d["name"] for d in api.datasets()]
if names:
    choice = st.selectbox("Working dataset", names, index=names.index(current) if current in names else 0,
                          key="pipeline-dataset")
    if choice != current:
        api.set_current_dataset(choice)
        st.rerun()


@st.fragment(run_every=3)
def phases() -> None:
    # On a first start the demo dataset is still being made: the picker above appears (and follows
    # renames and deletions) as soon as the list of datasets changes, without a reload.
    ui.rerun_on_change("pipeline-datasets", (tuple(d["name"] for d in api.datasets()), api.current_dataset()))
    rows = api.pipeline_state()
    next_row = next((r for r in rows if r["state"] in ("ready", "running")), None)
    if next_row:
        st.info(f"Next step ({next_row['phase']}): {next_row['next']}")
    for row in rows:
        with st.container(border=True):
            c1, c2, c3 = st.columns([2, 5, 2])
            c1.subheader(f"{ui.STATE_ICONS.get(row['state'], '')} {row['phase'].title()}")
            c1.caption(row["state"])
            c2.text(row["counts"])
            c2.caption(row["next"])
            page = f"pages/{row['page']}.py"
            try:
                c3.page_link(page, label=f"Open {row['phase']}", icon=":material/arrow_forward:")
            except Exception:  # the phase's page is not part of this build's navigation
                c3.caption("")


phases()


demo = api.last_demo()
if demo:
    with st.container(border=True):
        st.subheader("The last demo")
        b, t = demo["base"]["headline"], demo["tuned"]["headline"]
        minutes = (demo.get("stages") or {}).get("total_s")
        st.text(f"run {demo['run']} on {demo['dataset']}: {demo['chains'].get('train', 0)} train chains, "
                f"{demo['n_test_examples']} test examples"
                + (f", {minutes / 60:.0f} min end to end" if minutes else ""))
        parts = [f"{k}: {b[k]:.2f} -> {t[k]:.2f}" for k in ("structure.compliance_rate", "overall.accuracy")
                 if isinstance(b.get(k), (int, float)) and isinstance(t.get(k), (int, float))]
        if parts:
            st.text("base -> tuned, " + "; ".join(parts))
        st.page_link("pages/evaluate.py", label="Open its base-vs-tuned comparison (intervals and paired tests)",
                     icon=":material/analytics:", query_params={"eval": str(demo["tuned"]["id"])})
