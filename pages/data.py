"""Data: create a synthetic dataset or upload your own, browse examples, read transcripts,
see label distributions, export a dataset as ChatML JSONL (`ccr data export`). Transcripts are
shown as plain text, never rendered."""

import pandas as pd
import plotly.express as px
import streamlit as st

import ui
from engine import api

TASKS = ["csat", "quality", "churn", "sentiment", "root_cause", "coaching"]

st.title("Data")

create_tab, upload_tab, browse_tab, labels_tab = st.tabs(["Create synthetic", "Upload", "Browse", "Label distributions"])

with create_tab:
    st.write("Synthetic contact-center calls with ground-truth labels for six tasks, deterministic by seed.")
    c1, c2 = st.columns(2)
    preset = c1.selectbox("Preset", ["demo", "plan"], help="demo: 300/60/60 examples; plan: 25,790 / 3,223 / 3,225",
                          key="synth-preset")
    seed = c2.number_input("Seed", min_value=0, value=0, step=1, key="synth-seed")
    if st.button("Create dataset", type="primary", key="synth-start"):
        st.session_state["data-job"] = api.start_synth(preset, int(seed))

with upload_tab:
    st.write("ChatML JSONL (one `{\"messages\": [...], \"meta\": {...}}` object per line) or CSV with columns "
             "`transcript`, `answer` and optional `id, task, split, system, instruction` and label columns. "
             "Bad lines are reported with their line number; every good line is kept.")
    uploaded = st.file_uploader("File", type=["jsonl", "csv", "json"], key="upload-file")
    c1, c2 = st.columns(2)
    ds_name = c1.text_input("Dataset name (optional)", key="upload-dataset",
                            help="Empty: named after the file. Spaces around the name are trimmed.")
    split = c2.selectbox("Split", ["(from file)", "train", "validation", "test"], key="upload-split")
    name_problem = None
    if ds_name:
        try:
            ds_name = api.clean_dataset_name(ds_name)
        except ValueError as exc:
            name_problem = f"Dataset name: {ui.md_escape(exc)}"
            st.error(name_problem)
    if st.button("Import", type="primary", disabled=uploaded is None or name_problem is not None, key="upload-start",
                 help=name_problem):
        try:
            st.session_state["data-job"] = api.start_import(uploaded.getvalue(), uploaded.name, ds_name or None,
                                                            None if split == "(from file)" else split)
        except ValueError as exc:
            st.error(str(exc))

if st.session_state.get("data-job"):
    @st.fragment(run_every=1)
    def data_job() -> None:
        job = ui.job_panel(st.session_state["data-job"], key="data", show_log=False)
        if job and job["status"] == "succeeded" and job.get("result"):
            result = job["result"]
            if job["kind"] == "import":
                st.success(f"accepted {result['accepted']}, rejected {result['rejected']}")
                if result.get("split_note"):  # held-out data defaulted to train must not go unnoticed
                    st.warning(result["split_note"])
                if result["errors"]:
                    st.code("\n".join(f"{result['file']}:{line}: {reason}" for line, reason in result["errors"]),
                            language=None)
            else:
                counts = result.get("counts") or {}
                st.success(f"Dataset {ui.md_escape(result['dataset'])}: " + " / ".join(
                    f"{counts.get(split, 0):,} {split}" for split in ("train", "validation", "test")) + " examples")

    data_job()

if st.session_state.get("data-notice"):
    st.success(st.session_state.pop("data-notice"))
datasets = api.datasets()
if not datasets:
    st.info("No dataset yet: create a synthetic one or upload a file above.")
    st.stop()

st.divider()
names = [d["name"] for d in datasets]
current = api.current_dataset()
if "data-dataset-next" in st.session_state:  # a rename or delete below chose the next dataset to show
    st.session_state["data-dataset"] = st.session_state.pop("data-dataset-next")
if st.session_state.get("data-dataset") not in names:
    st.session_state["data-dataset"] = current if current in names else names[0]
name = st.selectbox("Dataset", names, key="data-dataset")
if name != current and st.button("Make this the working dataset", key="data-make-current"):
    api.set_current_dataset(name)
    st.rerun()
info = next(d for d in datasets if d["name"] == name)
c = st.columns(4)
c[0].metric("Train", f"{info['train']:,}")
c[1].metric("Validation", f"{info['validation']:,}")
c[2].metric("Test", f"{info['test']:,}")
c[3].metric("Total", f"{info['total']:,}")
st.caption(f"{info['kind']} · source {info['source'] or ''}")

# `ccr data rename` / `ccr data delete`: the dataset picked above, its chains going with it.
with st.expander("Rename or delete this dataset"):
    r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
    new_name = r1.text_input("New name", value=name, key=f"data-rename-{name}",
                             help="Spaces around the name are trimmed; a blank or taken name is refused.")
    if r2.button("Rename", key="data-rename", disabled=new_name.strip() == name):
        try:
            renamed = api.rename_dataset(name, new_name)
        except ValueError as exc:
            st.error(f"Cannot rename: {ui.md_escape(exc)}")
        else:
            st.session_state["data-dataset-next"] = renamed  # (the picker above is already drawn)
            st.session_state["data-notice"] = f"Renamed {ui.md_escape(name)} to {ui.md_escape(renamed)}."
            st.rerun()
    usage = api.dataset_usage(name)
    st.caption(f"Deleting removes {usage['examples']:,} examples, {usage['chains']:,} reasoning chains "
               f"({usage['attempts']:,} attempts) and {usage['reviews']:,} review decisions. Files already "
               "exported (JSONL, trained models, reports) stay.")
    if st.session_state.get("data-delete-ask") != name:
        if st.button("Delete this dataset...", key="data-delete"):
            st.session_state["data-delete-ask"] = name
            st.rerun()
    else:
        st.warning(f"Delete {ui.md_escape(name)} with its {usage['examples']:,} examples and {usage['chains']:,} chains? "
                   "This cannot be undone.")
        d1, d2 = st.columns(2)
        if d1.button("Yes, delete it", type="primary", key="data-delete-confirm"):
            try:
                gone = api.delete_dataset(name)
            except ValueError as exc:
                st.error(f"Cannot delete: {ui.md_escape(exc)}")
            else:
                st.session_state.pop("data-delete-ask", None)
                st.session_state["data-dataset-next"] = None
                st.session_state["data-notice"] = (f"Deleted {ui.md_escape(gone['dataset'])}: {gone['examples']:,} examples, "
                                                   f"{gone['chains']:,} chains.")
                st.rerun()
        if d2.button("Keep it", key="data-delete-cancel"):
            st.session_state.pop("data-delete-ask", None)
            st.rerun()

# `ccr data export`: the dataset (or one split) as ChatML JSONL in the home folder, and a download.
x1, x2, x3 = st.columns([1, 1, 2], vertical_alignment="bottom")
export_split = x1.selectbox("Split to export", ["(all)", "train", "validation", "test"], key="data-export-split")
export_task = x2.selectbox("Task to export", ["(all)"] + TASKS, key="data-export-task")
if x3.button("Export as ChatML JSONL", key="data-export"):
    try:
        st.session_state["data-export-result"] = api.export_dataset(
            name, None if export_split == "(all)" else export_split, None if export_task == "(all)" else export_task)
    except (ValueError, OSError) as exc:
        st.error("Export failed:")
        st.code(str(exc), language=None)
exported = st.session_state.get("data-export-result")
if exported and exported["dataset"] == name:
    st.success(f"Wrote {exported['lines']} lines ({exported['bytes'] / 2**20:.1f} MiB) to:")
    st.code(exported["out"], language=None)
    out_path = exported["out"]
    # A callable: the bytes are read when the button is clicked, not kept in memory per session.
    st.download_button("Download the JSONL", lambda: api.read_report(out_path) or b"",
                       file_name=out_path.rsplit("/", 1)[-1], mime="application/jsonl", key="data-export-download",
                       on_click="ignore")

with browse_tab:
    c1, c2, c3 = st.columns(3)
    b_split = c1.selectbox("Split", ["(all)", "train", "validation", "test"], key="browse-split")
    b_task = c2.selectbox("Task", ["(all)"] + TASKS, key="browse-task")
    b_search = c3.text_input("Search transcripts or ids", key="browse-search")
    page_size = 50
    rows, total = api.examples(name, None if b_split == "(all)" else b_split, None if b_task == "(all)" else b_task,
                               b_search or None, limit=page_size,
                               offset=page_size * (st.session_state.get("browse-page", 1) - 1))
    pages = max(1, -(-total // page_size))
    st.number_input(f"Page (of {pages}, {total} examples)", min_value=1, max_value=pages, step=1, key="browse-page")
    if rows:
        st.dataframe(pd.DataFrame([{"row": r["id"], "id": r["ex_id"], "split": r["split"], "task": r["task"],
                                    "labels": ", ".join(f"{k}={v}" for k, v in r["labels"].items()),
                                    "preview": r["preview"]} for r in rows]),
                     hide_index=True, width="stretch")
        pick = st.selectbox("Read an example", [r["id"] for r in rows],
                            format_func=lambda i: next(f"{r['ex_id']} ({r['task']})" for r in rows if r["id"] == i),
                            key="browse-pick")
        ex = api.example(pick)
        if ex:
            left, right = st.columns(2)
            with left:
                st.subheader("Transcript")
                st.text(ex["transcript"])
            with right:
                st.subheader("Reference answer")
                answer = [m["content"] for m in ex["messages"] if m["role"] == "assistant"]
                st.text(answer[-1] if answer else "(no assistant turn)")
                st.subheader("Labels")
                ui.show_json(ex["labels"])
                if ex.get("source_file"):
                    st.caption("Source")
                    st.text(f"{ex['source_file']}:{ex['source_line']}")
                with st.expander("Full ChatML messages and meta"):
                    ui.show_json({"messages": ex["messages"], "meta": ex["meta"]})
    else:
        st.info("No examples match.")

with labels_tab:
    l_split = st.selectbox("Split", ["(all)", "train", "validation", "test"], key="labels-split")
    dist = api.label_distribution(name, None if l_split == "(all)" else l_split)
    if not dist:
        st.info("No labels in this dataset.")
    cols = st.columns(2)
    for i, (key, counts) in enumerate(sorted(dist.items())):
        n = sum(counts.values())
        if key == "quality":  # the 0-100 QA score in the fixed 10-point bins used everywhere
            bins = dict.fromkeys(ui.SCORE_BINS, 0)
            for v, k in counts.items():
                bins[ui.SCORE_BINS[min(9, max(0, int(float(v)) // 10))]] += k
            fig = ui.score_histogram(bins, f"{key} ({n:,} examples)", "examples")
            fig.update_layout(height=300)
        else:
            values = sorted(counts, key=lambda v: (len(v), v)) if key == "csat" else sorted(counts)
            fig = px.bar(x=values, y=[counts[v] for v in values], labels={"x": key, "y": "examples"},
                         title=f"{key} ({n:,} examples)")
            fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10))
        with cols[i % 2]:
            st.plotly_chart(fig, width="stretch", key=f"dist-{key}")
            ui.small_sample_note(n, "examples")
    st.dataframe(pd.DataFrame(api.task_counts(name)), hide_index=True)
