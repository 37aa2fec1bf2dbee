"""The control panel: `make run` (or `streamlit run app.py`).

UI only: pages call ``engine.api`` and never import torch or transformers. One engine thread per
app process (created through ``st.cache_resource``) claims queued jobs and runs each in a
supervised child process, so a crash in a job never takes the UI down.

Environment: ``CCR_HOME`` (state folder), ``CCR_ENGINE=0`` (no engine thread: another process
such as ``ccr worker`` runs the jobs), ``CCR_AUTODEMO=0`` (no demo dataset on first start).
"""

import os
from pathlib import Path

import streamlit as st

import ui
from engine import api
from engine.core import jobs

# A local favicon: a material or emoji page_icon makes every browser fetch it from fonts.gstatic.com,
# and this app must not reach outside the machine (offline sites, customer data on screen).
st.set_page_config(page_title="Contact-center reasoning", page_icon=str(Path(__file__).parent / "assets" / "icon.png"),
                   layout="wide")


@st.cache_resource(show_spinner=False)
def engine_for(data_dir: str):
    """One engine thread per app process and home; Streamlit keeps it across reruns and sessions."""
    if os.environ.get("CCR_ENGINE", "1") == "0":
        return None
    return jobs.Worker(api.home()).start_thread()


@st.cache_resource(show_spinner=False)
def first_start(data_dir: str) -> int | None:
    """On the very first start of a home, queue the demo dataset so the app opens on real data."""
    if os.environ.get("CCR_AUTODEMO", "1") == "0":
        return None
    from engine.core import store

    db = api.db()
    if store.get_setting(db, "first_start_done"):
        return None
    store.set_setting(db, "first_start_done", True)
    if api.datasets():
        return None
    return api.start_synth("demo", 0)


home = api.home()
worker = engine_for(str(home.data))
first_start(str(home.data))
st.session_state["engine"] = worker

pages = {
    "Pipeline": [
        st.Page("pages/pipeline.py", title="Pipeline", icon=":material/account_tree:", default=True),
        st.Page("pages/data.py", title="Data", icon=":material/dataset:"),
        st.Page("pages/generate.py", title="Generate", icon=":material/psychology:"),
        st.Page("pages/quality.py", title="Quality", icon=":material/insights:"),
        st.Page("pages/review.py", title="Review", icon=":material/rule:"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
        st.Page("pages/deploy.py", title="Deploy", icon=":material/rocket_launch:"),
    ],
    "Engine": [
        st.Page("pages/jobs.py", title="Jobs", icon=":material/settings:"),
    ],
}
nav = st.navigation(pages)
ui.sidebar(worker)
nav.run()
