"""Generate: configure the teacher, test it on one example (the gate), launch the full run and
watch its progress, ETA and live score distribution; read the latest chains. UI only."""

import pandas as pd
import plotly.express as px
import streamlit as st

import ui
from engine import api

st.title("Generate reasoning chains")

dataset = api.current_dataset()
if not dataset:
    st.info("No dataset yet: create or upload one on the Data page first.")
    st.stop()
st.caption(f"Working dataset: {dataset}. A teacher model rewrites each example's answer into a chain "
           "(thinking, analysis, insights, final answer); each chain is scored, retried below the threshold "
           "and flagged for review when it still fails.")

# --- configuration ---------------------------------------------------------------------------
presets = api.generate_presets()
preset = st.selectbox("Preset", list(presets), key="gen-preset",
                      help="configs/generate_*.yaml; the first is the default (the embedded teacher on CPU)")
base = presets.get(preset, {})
fields = {name: (help_, default) for name, help_, default in api.generate_fields()}
CHOICES = {"backend": ["local", "openai"], "split": ["train", "validation", "test"],
           "device": ["auto", "cpu", "cuda", "mps"], "dtype": ["auto", "fp32", "bf16", "fp16"]}
MAIN = ["teacher", "backend", "guided", "split", "limit", "batch_size", "threshold", "attempts", "gate_threshold"]
HTTP = ["base_url", "api_key_env", "concurrency", "timeout_s", "http_retries"]
SKIP = {"test", "dataset"}


def widget(name: str, col) -> object:
    help_, default = fields[name]
    value = base.get(name, default)
    key = f"gen-{preset}-{name}"
    if name in CHOICES:
        options = CHOICES[name]
        return col.selectbox(name, options, index=options.index(value) if value in options else 0, help=help_, key=key)
    if isinstance(default, bool):
        return col.checkbox(name, value=bool(value), help=help_, key=key)
    if isinstance(default, list):
        text = col.text_input(name, ", ".join(str(v) for v in value), help=help_, key=key)
        try:
            return [float(x) for x in text.split(",") if x.strip()]
        except ValueError:
            col.error(f"{name}: numbers separated by commas")
            return value
    if isinstance(default, int):
        return int(col.number_input(name, value=int(value), step=1, help=help_, key=key))
    if isinstance(default, float):
        return float(col.number_input(name, value=float(value), help=help_, key=key))
    text = col.text_input(name, "" if value is None else str(value), help=help_, key=key)
    if default is None or name in ("limit", "test_example"):
        if not text.strip():
            return None
        if name in ("limit", "test_example"):
            try:
                return int(text)
            except ValueError:
                col.error(f"{name}: a whole number, or empty")
                return None
    return text


values: dict = {"dataset": dataset}
cols = st.columns(3)
for i, name in enumerate(MAIN):
    values[name] = widget(name, cols[i % 3])
with st.expander("Sampling, batching and device"):
    cols = st.columns(3)
    rest = [n for n in fields if n not in MAIN and n not in HTTP and n not in SKIP]
    for i, name in enumerate(rest):
        values[name] = widget(name, cols[i % 3])
st.caption(api.precision_choice(values.get("device") or "auto", values.get("dtype") or "auto")["text"])
with st.expander("OpenAI-compatible endpoint (backend: openai)"):
    cols = st.columns(3)
    for i, name in enumerate(HTTP):
        values[name] = widget(name, cols[i % 3])

try:
    config = api.generate_config(values)
    config_error = None
except Exception as exc:  # ConfigError: show which field is wrong
    config, config_error = None, str(exc)
    st.error(f"Configuration: {exc}")

# --- test gate --------------------------------------------------------------------------------
st.subheader("1. Test on one example")
c1, c2 = st.columns([1, 3])
if c1.button("Test on one example", type="primary", disabled=config is None, key="gen-test"):
    st.session_state["gen-test-job"] = api.start_generate_test(config)

if st.session_state.get("gen-test-job"):
    @st.fragment(run_every=2)
    def test_result() -> None:
        job = api.job(st.session_state["gen-test-job"])
        if not job:
            return
        if job["status"] in ("queued", "running", "pausing"):
            st.info(f"Test job #{job['id']} {job['status']}: generating one chain...")
            return
        if st.session_state.get("gen-test-shown") != job["id"]:
            # The gate and the Launch button live outside this fragment: redraw the page once.
            st.session_state["gen-test-shown"] = job["id"]
            st.rerun(scope="app")
        if job["status"] != "succeeded" or not job.get("result"):
            st.error(f"Test job #{job['id']} {job['status']}")
            if job.get("error"):
                st.code(job["error"], language=None)
            return
        r = job["result"]
        verdict = "passes the gate" if r["passed"] else "is below the gate"
        (st.success if r["passed"] else st.warning)(
            f"Test score {r['score']:.1f} {verdict} ({r['gate_threshold']:g}) on {r['ex_id']} ({r['task']}), "
            f"{r['seconds']:.0f} s")
        left, right = st.columns([3, 2])
        with left:
            ui.show_chain(r["text"])
        with right:
            st.caption("Score breakdown")
            ui.show_criteria(r["criteria"])

    test_result()

gate = api.generate_gate(config) if config else None
if gate:
    if gate["passing_test"]:
        st.success(f"Gate passed: test #{gate['passing_test']['id']} scored {gate['passing_test']['score']:.1f} "
                   f"for {gate['teacher']} / prompt {gate['prompt_version']}.")
    elif gate["override"]:
        st.warning(f"Gate overridden (recorded {ui.fmt_time(gate['override']['created_at'])}): "
                   f"{gate['override']['reason'] or ''}")
    else:
        latest = gate["latest_test"]
        st.info(f"No test for {gate['teacher']} / prompt {gate['prompt_version']} has scored >= "
                f"{gate['threshold']:g} yet" + (f" (latest: {latest['score']:.1f})." if latest else "."))
        with st.form("gen-override"):
            reason = st.text_input("Reason for launching without a passing test (recorded)")
            if st.form_submit_button("Record override"):
                api.record_generate_override(config, reason or "override from the Generate page")
                st.rerun()

# --- launch and progress ------------------------------------------------------------------------
st.subheader("2. Full run")
launch_ok = bool(gate and gate["ok"])
if st.button("Launch full run", type="primary", disabled=not launch_ok, key="gen-launch",
             help=None if launch_ok else "Enabled once a test scores >= the gate, or with a recorded override"):
    try:
        st.session_state["gen-job"] = api.start_generate(config)
    except ValueError as exc:
        st.error(str(exc))

run_jobs = [j for j in api.generate_jobs(20) if not (j["title"] or "").startswith("test generation")]
job_id = st.session_state.get("gen-job") or (run_jobs[0]["id"] if run_jobs else None)


@st.fragment(run_every=2)
def progress_panel() -> None:
    if not job_id:
        st.caption("No run yet.")
        return
    job = ui.job_panel(job_id, key="gen")
    if not job:
        return
    stats = job.get("stats") or {}
    c = st.columns(5)
    c[0].metric("Examples/s", f"{stats['examples_per_s']:.3f}" if stats.get("examples_per_s") else "-")
    c[1].metric("Tokens/s", f"{stats['tokens_per_s']:.1f}" if stats.get("tokens_per_s") else "-")
    c[2].metric("Passed", stats.get("passed", 0))
    c[3].metric("Flagged", stats.get("flagged", 0))
    c[4].metric("Average score", f"{stats['average']:.1f}" if stats.get("average") is not None else "-")
    dist = stats.get("distribution") or {}
    if any(dist.values()):
        fig = px.bar(x=list(dist), y=list(dist.values()), labels={"x": "score", "y": "chains"},
                     title="Live score distribution")
        fig.update_layout(height=260, margin=dict(l=10, r=10, t=40, b=10))
        st.plotly_chart(fig, width="stretch", key="gen-dist")
    if job.get("result") and job["result"].get("summary"):
        st.text(job["result"]["summary"])


progress_panel()

# --- latest chains ------------------------------------------------------------------------------
st.subheader("Latest chains")
rows, total = api.chains(limit=20, order="recent")
if not rows:
    st.caption("No chains yet.")
else:
    st.dataframe(pd.DataFrame([{"chain": r["id"], "example": r["ex_id"], "task": r["task"], "status": r["status"],
                                "score": r["score"], "attempts": r["attempts"], "teacher": r["teacher"],
                                "updated": ui.fmt_time(r["updated_at"])} for r in rows]),
                 hide_index=True, width="stretch")
    pick = st.selectbox("Read a chain", [r["id"] for r in rows], key="gen-pick",
                        format_func=lambda i: next(f"#{r['id']} {r['ex_id']} ({r['task']}) {r['score']:.1f} {r['status']}"
                                                   for r in rows if r["id"] == i))
    detail = api.chain(pick)
    if detail:
        left, right = st.columns([3, 2])
        with left:
            ui.show_chain(detail["text"])
        with right:
            st.caption("Score breakdown")
            ui.show_criteria(detail["criteria"])
