"""Train: pick a preset and data, see the dry-run estimate, launch, and watch the run live
(train and eval loss, learning rate, throughput, ETA, checkpoints); stop, resume, compare runs;
export a finished run's adapter or merged model (`ccr export model`, as a job)."""

import shlex

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import ui
from engine import api

st.title("Train")
st.caption("LoRA fine-tuning. Every run writes checkpoints it can resume from after any stop; "
           "the same runs start headless with `ccr train` (see the preset's launch command).")

ACTIVE = api.ACTIVE_JOB_STATES


def _gib(n) -> str:
    return f"{n / 2**30:.1f} GiB" if n is not None else ""


def show_estimate(est: dict) -> None:
    if est.get("error"):
        st.error("Dry run failed:")
        st.code(est["error"], language=None)
        return
    p, m, d, data = est["params"], est["memory"], est["disk"], est.get("data")
    c = st.columns(4)
    c[0].metric("Parameters", f"{p['total'] / 1e6:,.1f} M")
    c[1].metric("Trainable (LoRA)", f"{p['trainable'] / 1e6:,.2f} M", f"{p['percent']:.2f}%", delta_color="off")
    c[2].metric("Peak memory (est.)", _gib(m["peak"]),
                "with gradient checkpointing" if m["gradient_checkpointing"] else "no gradient checkpointing",
                delta_color="off")
    c[3].metric("Disk (est.)", _gib(d["total"]))
    rows = [
        {"item": f"weights ({est['precision']})", "estimate": _gib(m["weights"])},
        {"item": "LoRA weights + gradients + Adam (fp32)", "estimate": _gib(m["lora_states"])},
        {"item": f"activations, batch {m['batch']} x {m['length']}", "estimate": _gib(m["activations"])},
        {"item": "activations with gradient checkpointing", "estimate": _gib(m["activations_checkpointed"])},
        {"item": "logits and loss", "estimate": _gib(m["logits"])},
        {"item": "total without / with gradient checkpointing",
         "estimate": f"{_gib(m['total'])} / {_gib(m['total_checkpointed'])}"},
    ]
    if m.get("typical_total"):
        rows.append({"item": f"typical batch ({m['typical_length']} tokens, dynamic padding)",
                     "estimate": _gib(m["typical_total"])})
    rows += [
        {"item": "disk: base model (16-bit)", "estimate": _gib(d["base_model"])},
        {"item": "disk: adapter", "estimate": _gib(d["adapter"])},
        {"item": f"disk: checkpoints ({d['checkpoints_kept']} kept + 1)", "estimate": _gib(d["checkpoints"])},
        {"item": "disk: merged export", "estimate": _gib(d["merged_export"])},
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(f"{est['base_model']} on {est['device']}, built on the meta device from {est['arch_source']}; "
               f"LoRA r={est['lora']['r']} on {', '.join(p['lora_modules'])}.")
    if data:
        st.caption(f"Data: {data['examples']:,} examples, {data['tokens']:,} tokens per epoch ({data['how']}), "
                   f"{data['steps_per_epoch']:,} steps per epoch, {data['total_steps']:,} steps in all.")


# ---------------------------------------------------------------------------------------------
# Launch
# ---------------------------------------------------------------------------------------------

with st.expander("New run", expanded=not api.train_runs()):
    presets = api.train_presets()
    if not presets:
        st.error("No training presets found in configs/train/.")
    else:
        names = [p["name"] for p in presets]
        preset_name = st.selectbox("Preset", names, key="train-preset",
                                   format_func=lambda n: f"{n} ({next(p for p in presets if p['name'] == n)['base_model']})")
        preset = next(p for p in presets if p["name"] == preset_name)
        # The preset's own "Launch:" comment names the demo file; the command for what is picked here is below.
        st.code("\n".join(line for line in preset["header"].splitlines() if not line.startswith("Launch:")),
                language=None)
        st.caption(api.precision_choice(preset.get("device") or "auto", preset.get("precision") or "auto")["text"])
        files = api.train_data_files()
        options = [f["path"] for f in files]
        labels = {f["path"]: f["name"] + (" (Phase 1 export)" if f["default"] else "") for f in files}
        data = eval_data = None
        if not options:
            st.info("No ChatML JSONL file in the home yet: export the reasoning chains (Review page) or "
                    "create a dataset on the Data page.")
        else:
            data = st.selectbox("Training data", options, key="train-data", format_func=lambda p: labels.get(p, p))
            eval_options = ["(automatic: the validation_* file beside it)", *options]
            eval_pick = st.selectbox("Validation data", eval_options, key="train-eval")
            eval_data = None if eval_pick == eval_options[0] else eval_pick
        c1, c2 = st.columns(2)
        overrides = c1.text_area("Overrides (key=value, one a line)", key="train-overrides",
                                 placeholder="max_steps=20\nlora.r=8", height=100)
        run_name = c2.text_input("Run name (optional)", key="train-run-name")
        if data:
            with st.spinner("Dry run: building the model on the meta device..."):
                estimate = api.train_estimate(preset["path"], data, overrides)
            st.subheader("Estimate")
            show_estimate(estimate)
            duration = api.estimate("train", preset=preset["path"], data=data, overrides=overrides) \
                if not estimate.get("error") else None
            # The command that launches the same run headless: the file picked here and this home.
            command = ["ccr", "--home", str(api.home().data), "train", "--config", preset["path"], "--data", data]
            if eval_data:
                command += ["--eval-data", eval_data]
            if run_name:
                command += ["--run", run_name]
            command += [o.strip() for o in overrides.splitlines() if o.strip() and not o.strip().startswith("#")]
            st.caption("Launch: the same run from a terminal")
            st.code(" ".join(shlex.quote(c) for c in command), language="bash")
            go_ahead = ui.confirm_long(duration, "train-confirm", "training run",
                                       settings=(preset["path"], data, eval_data, overrides))
            if st.button("Launch training", type="primary", key="train-launch", disabled=not go_ahead,
                         help=None if go_ahead else "Confirm the estimated duration above first"):
                try:
                    job_id, run = api.start_training(preset["path"], data, eval_data, overrides, run_name or None)
                except ValueError as exc:
                    st.error(str(exc))
                else:
                    # Show that run below at once: the picker switches to it and follows it live.
                    st.session_state["train-run"] = run
                    st.session_state["train-pick"] = run
                    st.success(f"Queued run {run} (job {job_id}); it is shown below.")

# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------

runs = api.train_runs()
if not runs:
    st.info("No training run yet.")

    @st.fragment(run_every=3)
    def wait_for_runs() -> None:  # a run started elsewhere (`ccr train`, another tab) appears without a reload
        ui.rerun_on_change("train-runs-sig", tuple((r["name"], r["status"]) for r in api.train_runs()))

    wait_for_runs()
    st.stop()

run_names = [r["name"] for r in runs]
status_of = {r["name"]: r["status"] for r in runs}
default = st.session_state.get("train-run")
if default not in run_names:
    active = [r["name"] for r in runs if r["status"] in ACTIVE]
    default = active[0] if active else run_names[0]
if st.session_state.get("train-pick") not in run_names:
    st.session_state["train-pick"] = default
# (the picker's value lives in the session: a launch above sets it to the new run)
picked = st.selectbox("Run", run_names, key="train-pick", format_func=lambda n: f"{n} ({status_of.get(n, '?')})")
others = st.multiselect("Overlay past runs", [n for n in run_names if n != picked], key="train-overlay")
v1, v2, v3 = st.columns([2, 2, 1], vertical_alignment="bottom")
x_axis = v1.radio("x axis", ["step", "epoch", "time"], horizontal=True, key="train-x",
                  help="time: minutes since the run's first logged step")
smoothing = v2.slider("Smoothing", 0.0, 0.95, 0.0, 0.05, key="train-smooth",
                      help="Exponential moving average of the train loss (0: raw); the raw curve stays faint behind")
log_y = v3.checkbox("Log scale", key="train-log")


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start.

    >>> [round(v, 3) for v in smooth([1.0, 0.0, 0.0], 0.5)]
    [1.0, 0.333, 0.143]
    """
    out, last, n = [], 0.0, 0
    for v in values:
        n += 1
        last = weight * last + (1 - weight) * v
        out.append(last / (1 - weight ** n) if weight else v)
    return out


def x_values(points: list[dict], axis: str, t0: float | None) -> list:
    if axis == "epoch":
        return [r["epoch"] for r in points]
    if axis == "time":
        return [round((r["created_at"] - t0) / 60, 2) for r in points]
    return [r["step"] for r in points]


def loss_figure(rows: list[dict], main: str, axis: str = "step", weight: float = 0.0, log_y: bool = False) -> go.Figure:
    """Train and eval loss of every run on one chart; the train curve smoothed when asked."""
    fig = go.Figure()
    for name in dict.fromkeys(r["run_name"] for r in rows):
        width = 3 if name == main else 1.5
        train = [r for r in rows if r["run_name"] == name and r["kind"] == "train" and r["loss"] is not None]
        evals = [r for r in rows if r["run_name"] == name and r["kind"] == "eval" and r["loss"] is not None]
        t0 = min((r["created_at"] for r in train + evals), default=None)
        if train:
            xs, ys = x_values(train, axis, t0), [r["loss"] for r in train]
            if weight:
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{name} train (raw)", opacity=0.25,
                                         line=dict(width=1), showlegend=False))
            fig.add_trace(go.Scatter(x=xs, y=smooth(ys, weight), mode="lines", name=f"{name} train",
                                     line=dict(width=width)))
        if evals:
            fig.add_trace(go.Scatter(x=x_values(evals, axis, t0), y=[r["loss"] for r in evals],
                                     mode="lines+markers", name=f"{name} eval", line=dict(width=width, dash="dash")))
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title={"step": "step", "epoch": "epoch", "time": "minutes"}[axis], yaxis_title="loss",
                      yaxis_type="log" if log_y else "linear",
                      title="Loss (train" + (f", smoothed {weight:g}" if weight else "") + " and eval)",
                      legend=dict(orientation="h"))
    return fig


def small_figure(rows: list[dict], field: str, title: str, axis: str = "step") -> go.Figure:
    fig = go.Figure()
    for name in dict.fromkeys(r["run_name"] for r in rows):
        pts = [r for r in rows if r["run_name"] == name and r["kind"] == "train" and r[field] is not None]
        if pts:
            t0 = min(r["created_at"] for r in pts)
            fig.add_trace(go.Scatter(x=x_values(pts, axis, t0), y=[r[field] for r in pts], mode="lines", name=name))
    fig.update_layout(height=220, margin=dict(l=10, r=10, t=30, b=10), title=title, showlegend=False)
    return fig


@st.fragment(run_every=3)
def live(run_name: str, overlay: list[str]) -> None:
    # Statuses elsewhere on the page (the picker's "(running)", the export box) follow the runs:
    # the page is redrawn once when any run's status changes or a new run appears.
    ui.rerun_on_change("train-runs-sig", tuple((r["name"], r["status"]) for r in api.train_runs()))
    run = api.train_run(run_name)
    if not run:
        st.warning(f"Run {run_name} not found.")
        return
    if run["status"] == "queued" or (run["status"] in ACTIVE and not api.train_metrics([run_name])):
        job = run.get("job") or {}
        st.write(f"{ui.STATE_ICONS.get(run['status'], '')} **{run['status']}** · run {run_name} · job #{run['job_id']}")
        st.info("Waiting for the engine to start this run..." if run["status"] == "queued" else
                "Loading the model and the data; the first metrics appear after the first logged step.")
        if job:
            st.caption(ui.progress_line(job))
        return
    job = run.get("job") or {}
    stats = job.get("stats") or {}
    rows = api.train_metrics([run_name, *overlay])
    mine = [r for r in rows if r["run_name"] == run_name]
    train_rows = [r for r in mine if r["kind"] == "train"]
    eval_rows = [r for r in mine if r["kind"] == "eval"]
    last = train_rows[-1] if train_rows else {}
    st.write(f"{ui.STATE_ICONS.get(run['status'], '')} **{run['status']}** · run {run_name} · base "
             f"{run['base_model']} · job #{run['job_id']}")
    if stats.get("total"):
        st.progress(min(1.0, (stats.get("done") or 0) / stats["total"]),
                    text=f"step {stats.get('done', 0)} of {stats['total']}")
    c = st.columns(6)
    c[0].metric("Step", f"{last.get('step', 0)}" + (f" / {stats['total']}" if stats.get("total") else ""))
    c[1].metric("Train loss", f"{last['loss']:.4f}" if last.get("loss") is not None else "-")
    c[2].metric("Eval loss", f"{eval_rows[-1]['loss']:.4f}" if eval_rows else "-")
    c[3].metric("Learning rate", f"{last['learning_rate']:.2e}" if last.get("learning_rate") is not None else "-")
    c[4].metric("Tokens/s", f"{last['tokens_per_s']:.0f}" if last.get("tokens_per_s") else "-")
    eta = ui.job_times(job)["eta_s"] if job and run["status"] in ACTIVE else None  # counted down to now
    c[5].metric("ETA", ui.fmt_duration(eta) if eta is not None else "-")
    if last.get("memory_mb"):
        st.caption(f"memory {last['memory_mb'] / 1024:.2f} GiB · epoch {last.get('epoch') or 0:.2f} · grad norm "
                   f"{last.get('grad_norm') or 0:.3f}")
    if job and run["status"] in ACTIVE:
        st.caption(ui.progress_line(job))
    if rows:
        st.plotly_chart(loss_figure(rows, run_name, x_axis, smoothing, log_y), width="stretch", key="train-loss-chart")
        l1, l2 = st.columns(2)
        l1.plotly_chart(small_figure(rows, "learning_rate", "Learning rate", x_axis), width="stretch",
                        key="train-lr-chart")
        l2.plotly_chart(small_figure(rows, "tokens_per_s", "Throughput (tokens/s)", x_axis), width="stretch",
                        key="train-tps-chart")
    else:
        st.info("No metrics yet: the first ones appear after the first logged step.")

    b = st.columns(3)
    if run["status"] in ("running",) and run["job_id"]:
        if b[0].button("Stop (saves a checkpoint)", key="train-stop"):
            api.pause_job(run["job_id"])
            st.rerun()
        if b[1].button("Cancel", key="train-cancel"):
            api.cancel_job(run["job_id"])
            st.rerun()
    complete = [ck for ck in run["checkpoints"] if ck["complete"]]
    if run["status"] in ("paused", "interrupted", "failed", "cancelled") and complete:
        if b[0].button(f"Resume from checkpoint-{complete[-1]['step']}", type="primary", key="train-resume"):
            api.resume_training(run_name)
            st.rerun()
    if run["checkpoints"]:
        st.caption("Checkpoints (a checkpoint without its completion marker was cut short and is skipped on resume)")
        st.dataframe(pd.DataFrame([{"step": ck["step"], "complete": ck["complete"], "epoch": ck.get("epoch"),
                                    "loss": ck.get("loss"), "size MiB": round(ck["bytes"] / 2**20, 1),
                                    "written": ui.fmt_time(ck["time"])} for ck in run["checkpoints"]]),
                     hide_index=True, width="stretch")
    if job.get("error"):
        st.error("Error:")
        st.code(job["error"], language=None)


live(picked, others)

detail = api.train_run(picked)
if detail and detail["status"] == "succeeded":
    # `ccr export model`: queued as a job, because a merge loads torch, transformers and peft,
    # which never happens in the app's process.
    with st.container(border=True):
        st.write("**Export the model**")
        st.caption("Writes the adapter (with its manifest and config), or the base model with the adapter merged "
                   "into its weights as safetensors that transformers and vLLM load, under "
                   "`models/exports/`. Same as `ccr export model`.")
        x1, x2 = st.columns([1, 2])
        merge = x1.checkbox("Merge into full weights", key="train-export-merge")
        if x2.button("Export model", key="train-export"):
            try:
                st.session_state[f"train-export-job-{picked}"] = api.start_export_model(picked, merge)
            except ValueError as exc:
                st.error("Cannot export:")
                st.code(str(exc), language=None)
        if st.session_state.get(f"train-export-job-{picked}"):
            @st.fragment(run_every=2)
            def export_job(job_id: int) -> None:
                job = ui.job_panel(job_id, key="train-export")
                if job and job["status"] == "succeeded" and job.get("result"):
                    r = job["result"]
                    st.success(f"Wrote the {'merged model' if r['merged'] else 'adapter'} "
                               f"({r['bytes'] / 2**20:.1f} MiB, {len(r['files'])} files) to:")
                    st.code(r["out"], language=None)

            export_job(st.session_state[f"train-export-job-{picked}"])

with st.expander("Run details: manifest and log"):
    if detail:
        if detail["status"] == "succeeded":
            st.caption(f"Adapter in {detail['dir']}: evaluate or serve it as `run:{picked}`; export it above or "
                       f"with `ccr export model --run {picked} [--merge]`.")
        ui.show_json(detail["manifest"])
        if detail["job_id"]:
            st.code(api.job_log(detail["job_id"], 8000) or "(empty)", language=None)
