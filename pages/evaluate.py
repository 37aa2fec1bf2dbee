"""Evaluate: run evaluations, compare base against tuned, read where they disagree.

Model text is shown with st.text / st.code or inside dataframes only, never as markdown."""

import json

import pandas as pd
import streamlit as st

import ui
from engine import api

LIMIT_MAX = 100_000  # examples per evaluation: more is days on any machine this runs on

st.title("Evaluate")
st.caption("Structure compliance, quality-score distribution and task accuracy on the test split; "
           "unparseable answers count as wrong. Same engine as `ccr eval`.")

run_tab, results_tab = st.tabs(["Run an evaluation", "Results"])

with run_tab:
    names = api.model_names()
    runs = [n for n in names if n.startswith("run:")]
    c1, c2 = st.columns(2)
    model = c1.selectbox("Model", names, index=names.index(runs[-1]) if runs else 0, key="eval-model",
                         help="A registry model or a trained run's adapter.")
    compare = c2.checkbox("Compare with a base model", value=bool(runs), key="eval-compare")
    base = c2.selectbox("Base model", [n for n in names if not n.startswith("run:")] or names, key="eval-base",
                        disabled=not compare)
    source = st.radio("Data", ["Working dataset", "A ChatML/CSV file"], horizontal=True, key="eval-source")
    data_path = dataset = None
    if source == "A ChatML/CSV file":
        data_path = st.text_input("File path (under the home folder or the checkout)", key="eval-path")
    else:
        sets = [d["name"] for d in api.datasets()]
        current = api.current_dataset()
        dataset = st.selectbox("Dataset", sets, index=sets.index(current) if current in sets else 0,
                               key="eval-dataset") if sets else None
        if not sets:
            st.info("No dataset yet: create one on the Data page.")
    c1, c2, c3, c4 = st.columns(4)
    split = c1.selectbox("Split", ["test", "validation", "train"], key="eval-split",
                         disabled=source != "Working dataset")
    limit = c2.number_input("Limit (0: all)", min_value=0, max_value=LIMIT_MAX, value=12, step=6, key="eval-limit",
                            help=f"Examples to evaluate, 0 for the whole split (at most {LIMIT_MAX:,}). A limit "
                                 "still covers every task (examples are interleaved by task). Config key `limit`.")
    max_new = c3.number_input("Max new tokens", min_value=8, max_value=4096, value=384, step=32, key="eval-max-new",
                              help="Tokens each answer may take, 8 to 4,096 (config key `max_new_tokens`).")
    batch = c4.number_input("Batch size", min_value=1, max_value=64, value=8, key="eval-batch",
                            help="Answers generated together, 1 to 64 (config key `batch_size`).")
    # Guarded launch (as on Generate): every reason the evaluation cannot start, in words, and
    # the estimate before the button; over 30 minutes (or unknown) it must be confirmed.
    reasons = []
    if source == "A ChatML/CSV file" and not (data_path or "").strip():
        reasons.append("give the path of a ChatML JSONL or CSV file")
    if source == "Working dataset" and not dataset:
        reasons.append("no dataset yet: create one on the Data page")
    if compare and base == model:
        reasons.append("the base model is the model itself: pick another base, or untick the comparison")
    settings = dict(model=model, base=base if compare else None, data=(data_path or "").strip() or None,
                    dataset=dataset, split=split, limit=int(limit), max_new_tokens=int(max_new),
                    batch_size=int(batch))
    eval_estimate = None
    if not reasons:
        eval_estimate = api.estimate("eval", **settings)
        if eval_estimate.get("error"):
            st.error(f"The data cannot be read: {ui.md_escape(eval_estimate['error'])}")
            reasons.append("the data above cannot be read")
        elif not ui.confirm_long(eval_estimate, "eval-confirm", "evaluation", settings=sorted(settings.items())):
            reasons.append("confirm the estimated duration above")
    if ui.guarded_button("Start evaluation", reasons, key="eval-start", type="primary"):
        try:
            st.session_state["eval-job"] = api.start_eval(settings["model"], settings["base"], settings["data"],
                                                          dataset, split, int(limit), int(max_new), int(batch))
        except ValueError as exc:
            st.error(str(exc))
    if st.session_state.get("eval-job"):
        @st.fragment(run_every=2)
        def eval_job() -> None:
            job = ui.job_panel(st.session_state["eval-job"], key="eval")
            if job and job["status"] == "succeeded" and job.get("result"):
                st.success(f"Report written: {job['result']['report']}")
            if job:  # the Results tab follows the evaluation: redrawn once when it ends
                ui.rerun_on_change("eval-job-status", (job["id"], job["status"]))

        eval_job()

    with st.expander("The whole loop in one job (the same as `ccr demo`)"):
        defaults = api.demo_defaults()
        st.write("Synthesize the demo dataset, generate reasoning chains, export them, train a LoRA adapter on "
                 "the embedded model and evaluate it against its base on all 60 test examples. The default "
                 "sizes are what two CPU cores do in under an hour; each stage shows on the Jobs page, and a "
                 "stopped run continues where it stopped.")
        c1, c2 = st.columns(2)
        d_train = c1.number_input("Train examples with chains (0: all 300)", min_value=0, max_value=300,
                                  value=defaults["train_chains"], key="demo-train",
                                  help="Of the demo dataset's 300 train examples, balanced across the six tasks and "
                                       "their label values. More chains take longer to generate and to train on.")
        d_eval = c2.number_input("Test examples to evaluate (0: all)", min_value=0, max_value=60, value=0,
                                 key="demo-eval", help="Of its 60 test examples (0: all 60, 10 per task).")
        c1, c2 = st.columns(2)
        d_gen = c1.text_area("Teacher settings (key=value, one a line)", key="demo-gen-overrides", height=80,
                             placeholder="prompt_version=4",
                             help="Overrides of configs/generate/generate_smollm2_cpu.yaml, as `ccr demo "
                                  "--generate-override`. The demo keeps its own dataset, split, size and balanced "
                                  "selection.")
        d_trainset = c2.text_area("Training settings (key=value, one a line)", key="demo-train-overrides", height=80,
                                  placeholder="epochs=2",
                                  help="Overrides of configs/train/smollm2_cpu.yaml after the demo's own, as `ccr "
                                       "demo --train-override`.")
        demo_settings = dict(train_limit=int(d_train), eval_limit=int(d_eval),
                             generate_overrides=api.parse_overrides(d_gen),
                             train_overrides=api.parse_overrides(d_trainset))
        demo_estimate = api.estimate("demo", **demo_settings)
        demo_reasons = []
        if demo_estimate.get("error"):
            st.error(f"No estimate: {ui.md_escape(demo_estimate['error'])}")
            demo_reasons.append("fix the settings above")
        elif not ui.confirm_long(demo_estimate, "demo-confirm", "whole loop", settings=sorted(demo_settings.items())):
            demo_reasons.append("confirm the estimated duration above")
        if ui.guarded_button("Run the whole loop", demo_reasons, key="demo-start"):
            st.session_state["demo-job"] = api.start_demo(**demo_settings)
        if st.session_state.get("demo-job"):
            @st.fragment(run_every=3)
            def demo_job() -> None:
                ui.job_panel(st.session_state["demo-job"], key="demo")

            demo_job()

@st.cache_data(max_entries=32, show_spinner="Testing the differences (paired tests)…")
def paired_tests(base_id: int, tuned_id: int, home: str, base_done, tuned_done) -> dict:
    """The paired tests bootstrap 2,000 resamples per figure: once per pair of finished evaluations
    (the home folder and the finish times are in the key, so a rerun evaluation is tested again)."""
    return api.eval_deltas(base_id, tuned_id)


@st.cache_data(max_entries=32, show_spinner="Measuring the faithfulness of older answers…")
def figures_on_read(evaluation_id: int, home: str, finished) -> dict:
    """An evaluation finished before faithfulness was measured: its answers are scored again on
    read (engine/evaluation/evaluate.py), once per evaluation (home and finish time in the key)."""
    return api.eval_figures(evaluation_id)


@st.cache_data(show_spinner=False, max_entries=32)
def constant_answer(ids: tuple, home: str, finished: tuple) -> dict:
    """Cached per evaluations (and home, and their finish times, so a rerun is not served stale)."""
    return api.eval_constant_answer(list(ids))


def better(d: dict) -> str:
    """Direction of a delta, and "unclear" when the paired test does not support it."""
    if d["delta"] == 0:
        return "same"
    direction = "yes" if d["better"] else "no"
    return direction if d.get("significant") else f"unclear ({direction}, not significant)"


with results_tab:
    evals = api.evaluations()
    if not evals:
        st.info("No evaluations yet. Start one in the first tab, or run `ccr eval`.")
        st.stop()
    def fig(e: dict, key: str) -> str:
        """A figure as "0.40 [0.17, 0.69], n=10": never a bare number that hides its sample size."""
        entry = ((e.get("metrics") or {}).get("intervals") or {}).get(key)
        return api.format_figure(entry, e["headline"].get(key))

    table = pd.DataFrame([{
        "id": e["id"], "model": e["model"], "data": e["data_path"], "examples": e["n"], "done": e["done"],
        "status": e["status"], "compared with": e["compare_to"],
        "compliance": fig(e, "structure.compliance_rate"),
        "quality mean": fig(e, "quality_score.mean"),
        "CSAT within 1": fig(e, "csat.within_one_accuracy"),
        "churn acc.": fig(e, "churn.accuracy"),
        "overall acc.": fig(e, "overall.accuracy"),
        "faithful": fig(e, "faithfulness.faithful_rate"),
        "finished": ui.fmt_time(e["finished_at"]),
    } for e in evals])
    st.dataframe(table, hide_index=True, width="stretch")

    finished = [e for e in evals if e["metrics"]]
    if not finished:
        st.info("No finished evaluation yet.")
        st.stop()
    by_id = {e["id"]: e for e in finished}
    paired = next((e for e in finished if e["compare_to"] in by_id), None)
    ids = list(by_id)

    def label(i: int) -> str:
        return f"#{i} {by_id[i]['model']} ({by_id[i]['n']} ex.)"

    c1, c2 = st.columns(2)
    first = paired["id"] if paired else ids[0]
    asked = st.query_params.get("eval")  # a link (the Pipeline page's last demo) names the evaluation to show
    if asked and asked.isdigit() and int(asked) in by_id:
        first = int(asked)
        if st.session_state.get("res-asked") != asked:  # a new link wins over the last choice, once
            st.session_state["res-asked"] = asked
            st.session_state.pop("res-tuned", None)
            st.session_state.pop("res-base", None)
    tuned_id = c1.selectbox("Tuned (or only) evaluation", ids, format_func=label, key="res-tuned",
                            index=ids.index(first))
    base_options = [None] + [i for i in ids if i != tuned_id]
    default_base = by_id[tuned_id]["compare_to"] if by_id[tuned_id]["compare_to"] in base_options else None
    base_id = c2.selectbox("Base evaluation to compare with", base_options, key="res-base",
                           index=base_options.index(default_base),
                           format_func=lambda i: "(none)" if i is None else label(i))
    shown = ([base_id] if base_id else []) + [tuned_id]
    shown_evals = [by_id[i] for i in shown]
    for e in shown_evals:  # finished before faithfulness was measured: computed from its stored answers
        if "faithfulness" not in e["metrics"]:
            e.update(figures_on_read(e["id"], str(api.home().data), e["finished_at"]))
    if base_id and by_id[base_id]["data_path"] != by_id[tuned_id]["data_path"]:
        st.warning("These two evaluations ran on different data; the comparison is not like for like.")

    st.subheader("Models by metric")
    st.caption("Each figure: value [95% interval], n (the examples it is measured on). Rates: Wilson interval; "
               "MAE, mean score, F1: bootstrap. A delta is tested on the examples both models answered: exact "
               "McNemar test for rates, paired bootstrap otherwise; significant means p < 0.05. "
               "See docs/evaluation.md.")
    warnings = [w for w in (api.small_sample_warning(e["metrics"]) for e in shown_evals) if w]
    if warnings:
        st.warning(warnings[-1])
    intervals = {e["id"]: e["metrics"].get("intervals") or api.eval_intervals(e["id"]) for e in shown_evals}
    keys = list(dict.fromkeys(k for e in shown_evals for k in e["headline"]))
    rows = []
    deltas = paired_tests(base_id, tuned_id, str(api.home().data), by_id[base_id]["finished_at"],
                          by_id[tuned_id]["finished_at"]) if base_id else {}
    for k in keys:
        row = {"metric": k}
        for e in shown_evals:
            row[label(e["id"])] = api.format_figure(intervals[e["id"]].get(k), e["headline"].get(k))
        if deltas:
            d = deltas.get(k)
            row["delta (tuned - base)"] = d["delta"] if d else None
            row["better"] = better(d) if d else ""
            row["p-value"] = api.format_p(d) if d else ""
            row["significant (95%)"] = ("yes" if d.get("significant") else "NOT significant") if d else ""
            row["paired test"] = d.get("verdict", "") if d else ""
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if deltas:
        shown_sig = sum(1 for d in deltas.values() if d.get("significant"))
        st.caption(f"{shown_sig} of {len(deltas)} differences are significant at 95%. \"better\" reads "
                   "\"unclear\" where the difference is not significant: its direction could be chance.")
    const = constant_answer(tuple(shown), str(api.home().data), tuple(e["finished_at"] for e in shown_evals))
    if const.get("n"):
        st.markdown("**Against answering one thing per task**")
        st.caption("An accuracy is only as good as the bar it clears: on data where most calls are alike, one fixed "
                   "answer per task already scores well. Each model's overall accuracy is tested against that "
                   "answer on the same examples (exact McNemar test).")
        st.text("\n".join([const["description"]] + [m["summary"] for m in const["models"]]))
    for e in shown_evals:
        if e.get("report_path"):
            c1, c2 = st.columns(2)
            data = api.read_report(e["report_path"])
            html_data = api.read_report(str(e["report_path"])[:-5] + ".html") if e["report_path"].endswith(
                ".json") else None
            if data:
                c1.download_button(f"Report JSON (#{e['id']})", data, file_name=f"eval-{e['id']}.json",
                                   mime="application/json", key=f"dl-json-{e['id']}")
            if html_data:
                c2.download_button(f"Report HTML (#{e['id']})", html_data, file_name=f"eval-{e['id']}.html",
                                   mime="text/html", key=f"dl-html-{e['id']}")

    st.subheader("Faithfulness of the answers")
    st.caption("The quality scorer's checks over each answer's reasoning: a contradiction says something the "
               "labels (or the transcript) contradict; an unsupported specific is a name, number, date, product or "
               "channel the transcript and labels lack. The faithful rate counts only the answers with reasoning "
               "to judge: an answer without the reasoning sections (a bare label line) asserts nothing and is "
               "\"not judged\", not faithful. Contradiction rate and specifics per answer are over every answer; "
               "lower is better. Their deltas and paired tests are in the table above.")
    faith_rows = []
    for e in shown_evals:
        f = e["metrics"].get("faithfulness") or {}
        iv = intervals[e["id"]]
        faith_rows.append({"evaluation": label(e["id"]), "answers": f.get("n"), "judged": f.get("judged"),
                           "not judged": f.get("not_judged"),
                           **{k.replace("_", " "): api.format_figure(iv.get(f"faithfulness.{k}"), f.get(k))
                              for k in ("faithful_rate", "contradiction_rate", "invented_per_answer")},
                           "with a contradiction": f.get("with_contradiction"),
                           "with an invented specific": f.get("with_invented")})
    st.dataframe(pd.DataFrame(faith_rows), hide_index=True, width="stretch", key="faith-table")

    st.subheader("Quality-score distribution")
    series = {}
    for e in shown_evals:
        scores = [p["score"] for p in api.eval_predictions(e["id"]) if p["score"] is not None]
        series[label(e["id"])] = ui.score_bins(scores)
    sizes = ", ".join(f"n={sum(c.values())}" for c in series.values())
    st.plotly_chart(ui.score_histograms(series, f"Answers per 10-point score bin ({sizes})", "answers",
                                        threshold=70), width="stretch", key="score-hist")
    for e, counts in zip(shown_evals, series.values()):
        ui.small_sample_note(sum(counts.values()), f"answers scored for {label(e['id'])}")

    st.subheader("Confusion matrices")
    views = {e["id"]: {v["key"]: v for v in api.confusion_views(e["metrics"])} for e in shown_evals}
    titles = {k: v["title"] for by_key in views.values() for k, v in by_key.items()}
    if not titles:
        st.caption("No classification task in these evaluations.")
    else:
        task = st.selectbox("Task", list(titles), format_func=titles.get, key="conf-task")
        st.caption("Rows: the reference label; columns: the model's answer, and unparsed when no answer could be "
                   "read. Every class of the task is drawn, with its count; framed cells are right answers. "
                   "Colour follows the count (white: none).")
        # Side by side when they fit; a wide label space (ten root causes) gets the page's width each.
        wide = max(len(v[task]["columns"]) for v in views.values() if task in v) > 7
        cols = [st.container() for _ in shown_evals] if wide else st.columns(len(shown_evals))
        for col, e in zip(cols, shown_evals):
            view = views[e["id"]].get(task)
            if not view:
                col.caption(f"{label(e['id'])}: no {titles[task]} examples")
                continue
            col.plotly_chart(ui.confusion_figure(view, label(e["id"])), width="stretch", key=f"conf-{task}-{e['id']}")
            if view["n"] < api.SMALL_SAMPLE:
                col.warning(f"Small sample: {view['n']} {titles[task]} example{'' if view['n'] == 1 else 's'} "
                            f"(fewer than {api.SMALL_SAMPLE}). One answer moves a cell, and a rate, a lot.")

    st.subheader("Per-task figures")
    task_rows = []
    for e in shown_evals:
        for t, m in (e["metrics"].get("tasks") or {}).items():
            task_rows.append({"evaluation": label(e["id"]), "task": t, **{
                k: (api.format_figure(intervals[e["id"]][f"{t}.{k}"]) if f"{t}.{k}" in intervals[e["id"]] else v)
                for k, v in m.items() if not isinstance(v, (dict, list))}})
    if task_rows:
        st.dataframe(pd.DataFrame(task_rows), hide_index=True, width="stretch")

    if base_id:
        st.subheader("Where the two models disagree")
        items = api.eval_disagreements(base_id, tuned_id)
        st.caption(f"{len(items)} examples (answers right for one model and wrong for the other first).")
        for it in items[:30]:
            b, t = it["base"], it["tuned"]
            mark = lambda s: "right" if s["correct"] else ("wrong" if s["correct"] is False else "no label")  # noqa: E731
            with st.expander(f"{it['key']} · {it['task']} · base {mark(b)}, tuned {mark(t)}"):
                st.caption("Reference labels")
                st.code(json.dumps(it["labels"], ensure_ascii=False), language=None)
                c1, c2 = st.columns(2)
                for col, side, name in ((c1, b, "Base"), (c2, t, "Tuned")):
                    col.caption(f"{name} · {mark(side)} · score {side['score']} · "
                                f"{api.faithfulness_word(side.get('faithfulness'))}")
                    col.code(json.dumps(side["parsed"], ensure_ascii=False), language=None)
                    col.text(side["output"])
                    if side.get("at_fault"):
                        with col:
                            ui.show_faults(side["at_fault"])
                st.caption("Prompt")
                st.text(it.get("prompt") or "")
    else:
        st.subheader("Answers")
        preds = api.eval_predictions(tuned_id)
        st.dataframe(pd.DataFrame([{"example": p["example_key"], "task": p["task"], "correct": p["correct"],
                                    "score": p["score"], "faithfulness": api.faithfulness_word(p.get("faithfulness")),
                                    "parsed": json.dumps(p["parsed"]),
                                    "answer": (p["output"] or "")[:300]} for p in preds]),
                     hide_index=True, width="stretch")
