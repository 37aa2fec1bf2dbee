"""Deploy: start and stop the OpenAI-compatible API server, copy snippets to call it, and run batch
inference over a JSONL file, list the models. Same engine functions as `ccr serve`, `ccr infer` and
`ccr models list`."""

import pandas as pd
import streamlit as st

import ui
from engine import api

st.title("Deploy")
st.caption("Serve a model over an OpenAI-compatible API that other systems can call, or run it over a file.")

names = api.model_names()
runs = [n for n in names if n.startswith("run:")]
api_tab, batch_tab, models_tab = st.tabs(["API server", "Batch inference", "Models"])

with api_tab:
    with st.form("serve-form"):
        c1, c2, c3 = st.columns([2, 1, 1])
        model = c1.selectbox("Model", names, index=names.index(runs[-1]) if runs else 0, key="serve-model")
        host = c2.text_input("Host", value="127.0.0.1", key="serve-host",
                             help="127.0.0.1 keeps it on this machine; any other address requires an API key.")
        port = c3.number_input("Port", min_value=1, max_value=65535, value=8000, key="serve-port",
                               help="A port already in use (by one of these servers or another program) is refused.")
        c1, c2, c3 = st.columns([2, 1, 1])
        use_key = c1.checkbox("Require an API key", value=True, key="serve-use-key")
        max_queue = c2.number_input("Max queue", min_value=1, max_value=4096, value=64, key="serve-queue",
                                    help="Requests waiting at most; more are answered 429 at once.")
        max_batch = c3.number_input("Max batch", min_value=1, max_value=64, value=8, key="serve-batch")
        submitted = st.form_submit_button("Start server", type="primary")
    if submitted:
        try:
            job_id = api.start_server(model, host.strip(), int(port), api.new_api_key() if use_key else None,
                                      int(max_queue), int(max_batch))
            st.session_state["serve-job"] = job_id
        except ValueError as exc:
            st.error(str(exc))

    @st.fragment(run_every=2)
    def server_list() -> None:
        # The server started from this page: if its job failed (its port taken meanwhile, a model
        # that does not load), say so with its error instead of dropping it from the list.
        mine = api.job(st.session_state["serve-job"]) if st.session_state.get("serve-job") else None
        if mine and mine["status"] in ("failed", "interrupted"):
            st.error(f"Server job #{mine['id']} {mine['status']}:")
            st.code(mine.get("error") or "(no message)", language=None)
            with st.expander("Its log"):
                st.code(api.job_log(mine["id"], 4000) or "(empty)", language=None)
        servers = [s for s in api.servers() if not str(s.get("port")) == "0"]  # the Compare page's are private
        if not servers:
            st.info("No API server running.")
            return
        for s in servers:
            with st.container(border=True):
                state = "ready" if s["ready"] else s["status"]
                st.write(f"{ui.STATE_ICONS.get(s['status'], '')} Job #{s['job_id']} · **{s['model']}** · {state}")
                if s["ready"]:
                    c1, c2, c3 = st.columns(3)
                    c1.metric("Requests served", s["served"])
                    c2.metric("Answered 429", s["rejected"])
                    c3.metric("Queued now", s["queue"])
                    st.caption("Endpoint (OpenAI base URL)")
                    st.code(f"{s['url']}/v1", language=None)
                    reveal = False
                    if s["api_key"]:
                        st.caption("API key (the snippets read it from $CCR_API_KEY unless it is shown)")
                        reveal = st.toggle("Show the key", key=f"show-key-{s['job_id']}")
                        st.code(s["api_key"] if reveal else s["api_key"][:6] + "…", language=None)
                    snippets = api.api_snippets(s["url"], s["api_key"], s["model"], reveal=reveal)
                    t1, t2 = st.tabs(["curl", "Python (openai)"])
                    t1.code(snippets["curl"], language="bash")
                    t2.code(snippets["python"], language="python")
                if st.button("Stop server", key=f"stop-serve-{s['job_id']}"):
                    api.cancel_job(s["job_id"])
                    st.rerun()

    server_list()

with batch_tab:
    st.write("One JSONL line per call: a ChatML line (`{\"messages\": [...]}`), `{\"prompt\": ...}` or "
             "`{\"transcript\": ..., \"task\": \"csat\"}`. The output has one line per input line; a stopped "
             "run continues where it stopped.")
    c1, c2, c3 = st.columns([2, 1, 1])
    b_model = c1.selectbox("Model", names, index=names.index(runs[-1]) if runs else 0, key="infer-model")
    b_batch = c2.number_input("Batch size", min_value=1, max_value=64, value=8, key="infer-batch")
    b_max = c3.number_input("Max new tokens", min_value=8, max_value=4096, value=384, step=32, key="infer-max-new")
    source = st.radio("Input", ["Upload a file", "A file on the server"], horizontal=True, key="infer-source")
    upload = path = None
    if source == "Upload a file":
        upload = st.file_uploader("JSONL file", type=["jsonl", "json"], key="infer-upload")
    else:
        path = st.text_input("Path (under the home folder or the checkout)", key="infer-path")
    infer_estimate = None
    if upload or path:
        try:
            lines = api.count_lines(upload.getvalue() if upload else None, None if upload else path)
        except (ValueError, OSError) as exc:
            st.error(f"Input: {exc}")
        else:
            infer_estimate = api.estimate("infer", model=b_model, lines=lines, batch_size=int(b_batch),
                                          max_new_tokens=int(b_max))
    go_ahead = ui.confirm_long(infer_estimate, "infer-confirm", "batch job",
                               settings=(b_model, b_batch, b_max, upload.name if upload else None, path))
    if st.button("Start batch inference", type="primary", disabled=not (upload or path) or not go_ahead,
                 key="infer-start", help=None if go_ahead else "Confirm the estimated duration above first"):
        try:
            st.session_state["infer-job"] = api.start_infer(
                b_model, content=upload.getvalue() if upload else None, filename=upload.name if upload else None,
                path=path or None, batch_size=int(b_batch), max_new_tokens=int(b_max))
        except ValueError as exc:
            st.error(str(exc))

    if st.session_state.get("infer-job"):
        @st.fragment(run_every=2)
        def infer_job() -> None:
            job = ui.job_panel(st.session_state["infer-job"], key="infer")
            if job and job["status"] == "succeeded" and job.get("result"):
                r = job["result"]
                st.success(f"{r['generated']} lines generated, {r['errors']} unusable lines")
                data = api.read_report(r["output"])
                if data:
                    st.download_button("Download the output", data, file_name=r["output"].rsplit("/", 1)[-1],
                                       mime="application/json", key="infer-download")
            if job:
                ui.rerun_on_change("infer-status", (job["id"], job["status"]))  # the table below follows

        infer_job()

    past = api.list_jobs(limit=20, kind="infer")
    if past:
        st.caption("Recent batch jobs")
        st.dataframe(pd.DataFrame([{"id": j["id"], "title": j["title"], "status": j["status"],
                                    "progress": round(100 * (j["progress"] or 0)),
                                    "created": ui.fmt_time(j["created_at"])} for j in past]),
                     hide_index=True, width="stretch",
                     column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0,
                                                                                max_value=100)})

with models_tab:
    # `ccr models list`: the registry's named models and this home's trained runs.
    st.caption("Named models and trained runs (`run:NAME`), and whether each can be loaded here; one that "
               "cannot says how to provide it. Same list as `ccr models list`.")
    st.dataframe(pd.DataFrame([{"name": m["name"], "kind": m["kind"], "source": m["source"], "params": m["params"],
                                "available here": bool(m["available"]), "notes": m["detail"], "about": m["about"]}
                               for m in api.models()]),
                 hide_index=True, width="stretch", key="models-table")
