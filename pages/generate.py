"""Generate: configure the teacher, test it on one example (the gate), launch the full run and
watch its progress, ETA and live score distribution; read the latest chains. UI only."""

import pandas as pd
import streamlit as st

import ui
from engine import api

st.title("Generate reasoning chains")

dataset = api.current_dataset()
if not dataset:
    st.info("No dataset yet: create or upload one on the Data page first.")
    st.stop()
st.caption(f"Working dataset: {ui.md_escape(dataset)}. A teacher model rewrites each example's answer into a chain "
           "(thinking, analysis, insights, final answer); each chain is scored, retried below the threshold "
           "and flagged for review when it still fails.")

# --- configuration ---------------------------------------------------------------------------
presets = api.generate_presets()
preset = st.selectbox("Preset", list(presets), key="gen-preset",
                      help="configs/generate/*.yaml; the first is the default (the embedded teacher on CPU)")
base = presets.get(preset, {})
specs = api.generate_fields()
fields = {f["name"]: (f["help"], f["default"]) for f in specs}
CHOICES = {f["name"]: f["choices"] for f in specs if f["choices"]}  # the config's Literal fields
MAIN = ["teacher", "backend", "guided", "split", "limit", "batch_size", "threshold", "attempts", "gate_threshold"]
HTTP = ["base_url", "api_key_env", "concurrency", "timeout_s", "http_retries"]
SKIP = {"test", "dataset"}
JUDGE = [n for n in fields if n.startswith("judge.")]  # the nested judge settings (engine/core/config.py JudgeSettings)
# Words for people; the config key (what `ccr generate key=value` and the YAML presets use) is in the help.
LABELS = {"teacher": "Teacher model", "backend": "Backend", "guided": "Structure-guided (fills each part)", "prompt_version": "Prompt version",
          "split": "Split", "limit": "Examples to generate (empty: all)", "batch_size": "Examples per batch",
          "threshold": "Retry chains scoring below", "attempts": "Attempts per example",
          "gate_threshold": "Test must score at least", "device": "Device", "dtype": "Precision",
          "max_new_tokens": "Free mode: tokens per chain", "part_tokens": "Guided mode: tokens per part",
          "temperatures": "Temperature of attempt 1, 2, 3...", "top_p": "Top-p (retries)",
          "repetition_penalty": "Repetition penalty", "seed": "Seed", "base_url": "Server base URL",
          "api_key_env": "Environment variable with the API key", "concurrency": "Requests in flight",
          "timeout_s": "Timeout per request (s)", "http_retries": "Retries per request",
          "test_example": "Test example (row id; empty: the first)",
          "select": "Which examples (first N, or balanced across tasks and labels)",
          "judge.enabled": "Rate each chain with a judge model", "judge.base_url": "Judge server base URL",
          "judge.model": "Judge model", "judge.api_key_env": "Environment variable with the judge's API key",
          "judge.timeout_s": "Judge timeout per rating (s)", "judge.max_tokens": "Judge answer tokens",
          "judge.threshold": "Unfaithful below rating (1-5)", "judge.concurrency": "Judge requests in flight",
          "judge.http_retries": "Judge retries per rating"}
# Sane bounds for every number (min, max); a value outside them cannot be typed in.
BOUNDS = {"batch_size": (1, 256), "threshold": (0.0, 100.0), "gate_threshold": (0.0, 100.0), "attempts": (1, 10),
          "max_new_tokens": (16, 8192), "part_tokens": (4, 1024), "top_p": (0.01, 1.0),
          "repetition_penalty": (1.0, 3.0), "seed": (0, 2**31 - 1), "concurrency": (1, 256),
          "timeout_s": (1.0, 3600.0), "http_retries": (0, 20), "judge.timeout_s": (1.0, 3600.0),
          "judge.max_tokens": (16, 4096), "judge.threshold": (1, 5), "judge.concurrency": (1, 256),
          "judge.http_retries": (0, 20)}
problems: list[str] = []  # why the test and the launch are refused, in words


def preset_value(name: str, default):
    """The preset's value of a field; a dotted name (``judge.model``) is looked up in its section."""
    node = base
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def widget(name: str, col) -> object:
    help_, default = fields[name]
    value = preset_value(name, default)
    key = f"gen-{preset}-{name}"
    label = LABELS.get(name, name)
    help_ = f"{help_} (config key `{name}`)"
    if name in CHOICES:
        options = CHOICES[name]
        return col.selectbox(label, options, index=options.index(value) if value in options else 0, help=help_,
                             key=key)
    if isinstance(default, bool):
        return col.checkbox(label, value=bool(value), help=help_, key=key)
    if isinstance(default, list):
        text = col.text_input(label, ", ".join(str(v) for v in value), help=help_, key=key)
        try:
            numbers = [float(x) for x in text.split(",") if x.strip()]
        except ValueError:
            numbers = None
        if not numbers or any(not 0.0 <= t <= 2.0 for t in numbers):
            problems.append(f"{label}: numbers from 0 to 2 separated by commas")
            col.error(problems[-1])
            return value
        return numbers
    if isinstance(default, (int, float)):
        lo, hi = BOUNDS.get(name, (0, None))
        kind = int if isinstance(default, int) else float
        value = kind(value)
        value = max(kind(lo), value if hi is None else min(kind(hi), value))
        return kind(col.number_input(label, min_value=kind(lo), max_value=None if hi is None else kind(hi),
                                     value=value, step=1 if kind is int else None, help=help_, key=key))
    text = col.text_input(label, "" if value is None else str(value), help=help_, key=key)
    if default is None or name in ("limit", "test_example"):
        if not text.strip():
            return None
        if name in ("limit", "test_example"):
            try:
                number = int(text.strip().replace(",", "").replace("_", ""))
            except ValueError:
                number = None
            if number is None or number < 1 or number > 10**7:
                problems.append(f"{label}: a whole number from 1 up, or empty for all" if name == "limit"
                                else f"{label}: an example's row id (a whole number), or empty")
                col.error(problems[-1])
                return None
            return number
    return text


values: dict = {"dataset": dataset}
cols = st.columns(3)
for i, name in enumerate(MAIN):
    values[name] = widget(name, cols[i % 3])
with st.expander("Sampling, batching and device"):
    cols = st.columns(3)
    rest = [n for n in fields if n not in MAIN and n not in HTTP and n not in SKIP and n not in JUDGE]
    for i, name in enumerate(rest):
        values[name] = widget(name, cols[i % 3])
st.caption(api.precision_choice(values.get("device") or "auto", values.get("dtype") or "auto")["text"])
with st.expander("OpenAI-compatible endpoint (backend: openai)"):
    cols = st.columns(3)
    for i, name in enumerate(HTTP):
        values[name] = widget(name, cols[i % 3])
with st.expander("Judge model (optional)"):
    st.caption("A capable model on any OpenAI-compatible server (e.g. Qwen2.5-7B-Instruct on vLLM) rates each "
               "chain the scorer accepts from 1 to 5 for faithfulness to its transcript and labels. A rating below "
               "the threshold keeps the chain from passing: it is retried, then flagged for review with the reason "
               "`judge`. If the judge fails, the chain is kept and \"judge unavailable\" is recorded. Same as "
               "`ccr generate judge.enabled=true judge.base_url=... judge.model=...`.")
    cols = st.columns(3)
    judge_values: dict = {}
    for i, name in enumerate(JUDGE):
        judge_values[name.split(".", 1)[1]] = widget(name, cols[i % 3])
    values["judge"] = judge_values

try:
    config = api.generate_config(values)
    config_error = None
except Exception as exc:  # ConfigError: show which field is wrong
    config, config_error = None, str(exc)
    st.error(f"Configuration: {exc}")
if problems:  # a field that could not be read never becomes a job: not even as its default
    config = None
    st.warning("Fix the fields marked above: the test and the full run stay disabled until then.")

# --- test gate --------------------------------------------------------------------------------
st.subheader("1. Test on one example")
c1, c2 = st.columns([1, 3])
if c1.button("Test on one example", type="primary", disabled=config is None, key="gen-test"):
    st.session_state["gen-test-job"] = {"dataset": dataset, "job": api.start_generate_test(config)}

# Every panel below belongs to the working dataset: a test or a run started on another one is not shown.
test_job = (st.session_state.get("gen-test-job") or {})
if test_job.get("dataset") == dataset:
    @st.fragment(run_every=2)
    def test_result() -> None:
        job = api.job(test_job["job"])
        if not job:
            return
        if job["status"] in api.ACTIVE_JOB_STATES:
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
            ui.show_chain(r["text"], api.at_fault(r["criteria"]))
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
estimate = api.estimate("generate", values=config) if config else None
if estimate and estimate.get("error"):
    st.error(f"Estimate: {ui.md_escape(estimate['error'])}")
    confirmed = True
else:  # a run over 30 minutes is confirmed first; changed settings must be confirmed again
    confirmed = ui.confirm_long(estimate, "gen-confirm", "run", settings=sorted((config or {}).items()))
reasons = []
if config is None:
    reasons.append("the settings above have errors")
elif not (gate and gate["ok"]):
    reasons.append("no test has passed the gate yet (or record an override)")
elif not confirmed:
    reasons.append("confirm the estimated duration above")
elif estimate and estimate.get("units") == 0:
    reasons.append("every example of this selection already has a chain")
launch_ok = not reasons
if st.button("Launch full run", type="primary", disabled=not launch_ok, key="gen-launch",
             help=None if launch_ok else "Disabled: " + "; ".join(reasons)):
    try:
        st.session_state["gen-job"] = {"dataset": dataset, "job": api.start_generate(config)}
    except ValueError as exc:
        st.error(str(exc))
if reasons:
    st.caption("Launch is disabled: " + "; ".join(reasons) + ".")

run_jobs = [j for j in api.generate_jobs(50) if not j["config"].get("test")
            and (j["config"].get("dataset") or dataset) == dataset]
mine = st.session_state.get("gen-job") or {}
job_id = mine["job"] if mine.get("dataset") == dataset else (run_jobs[0]["id"] if run_jobs else None)


@st.fragment(run_every=1)
def progress_panel() -> None:
    if not job_id:
        st.caption(f"No run on {ui.md_escape(dataset)} yet.")
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
        n = sum(dist.values())
        st.plotly_chart(ui.score_histogram(dist, f"Live score distribution ({n} chains)"), width="stretch",
                        key="gen-dist")
        ui.small_sample_note(n)
    if job.get("result") and job["result"].get("summary"):
        st.text(job["result"]["summary"])
    # The chains below and the gate above follow the run: redraw the page once when it ends.
    ui.rerun_on_change("gen-run-status", (job["id"], job["status"]))


progress_panel()


# --- latest chains ------------------------------------------------------------------------------
@st.fragment(run_every=5)
def latest_chains() -> None:
    st.subheader("Latest chains")
    rows, total = api.chains(dataset=dataset, limit=20, order="recent")
    if not rows:
        st.caption(f"No chains on {ui.md_escape(dataset)} yet.")
        return
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
            ui.show_chain(detail["text"], detail.get("at_fault"))
        with right:
            st.caption("Score breakdown")
            ui.show_criteria(detail["criteria"])


latest_chains()
