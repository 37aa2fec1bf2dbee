"""Compare: two models answer the same call side by side, streamed, with scores, parsed labels,
latency and token counts, beside the example's reference answer and labels.

How generation runs (and why): each model is served by a ``serve`` job — the same
OpenAI-compatible server as ``ccr serve``. A server of that model already running (started on
Deploy, or here earlier) is reused; otherwise a short-lived one is started, bound to 127.0.0.1 on a
free port with its own random key, stopping itself after 15 idle minutes. The page streams both answers from the two servers
with httpx (``api.stream_pair``). So the page never imports torch, the two models load once and
stay warm across examples, both answers really stream token by token (and in parallel, each in
its own process), and a crash in a model cannot take the UI down. The alternative, a compare
job writing partial text to the database for a polling fragment, would reload both models per
comparison and show the text in 1-2 s jumps.

Model text is shown with st.text only, never as markdown.
"""

import json

import pandas as pd
import streamlit as st

import ui
from engine import api

TASKS = ["csat", "quality", "churn", "sentiment", "root_cause", "coaching"]

present = st.toggle("Presentation view", key="cmp-present", help="Hide the settings for a clean stakeholder view.")
names = api.model_names()
runs = [n for n in names if n.startswith("run:")]
defaults = {"cmp-a": names[0] if names else "smollm2-135m-instruct", "cmp-b": runs[-1] if runs else names[-1],
            "cmp-max-tokens": 384, "cmp-source": "Example from the dataset", "cmp-task": "csat"}
for key, value in defaults.items():
    st.session_state.setdefault(key, value)

if not present:
    st.title("Compare")
    st.caption("Pick two models (usually the base and a trained run), pick an example or paste a transcript, "
               "and both answers stream side by side.")
    c1, c2, c3 = st.columns([2, 2, 1])
    c1.selectbox("Model A (left)", names, key="cmp-a")
    c2.selectbox("Model B (right)", names, key="cmp-b")
    c3.number_input("Max tokens", min_value=16, max_value=2048, step=32, key="cmp-max-tokens")
model_a, model_b = st.session_state["cmp-a"], st.session_state["cmp-b"]
pair = [model_a, model_b]

# -- the two servers ----------------------------------------------------------------------------
# An active server of a model is reused, whoever started it (Deploy, an earlier visit, another
# session): one model process per model, never a new pair per press.


def server_states() -> dict:
    return {m: api.find_server(m) for m in pair}


states = server_states()
missing = [m for m in pair if states[m] is None]
if not present:
    if st.button("Start the models", key="cmp-start", disabled=not missing,
                 help="Starts a local server for each model not served yet (a running server of the same model "
                      "is reused; the ones started here stop by themselves after 15 idle minutes)."
                 if missing else "Both models are served already: their servers are reused."):
        try:
            api.compare_servers(missing)
            st.rerun()
        except ValueError as exc:
            st.error(str(exc))


def server_line(m: str, s: dict | None) -> str:
    if s is None:
        return f"{m}: not started"
    where = "started here" if s["compare"] else "an existing server, reused"
    if s["ready"]:
        return f"{m}: ready (server job #{s['job_id']}, {where})"
    return f"{m}: starting (server job #{s['job_id']}, {s['status']})…"


@st.fragment(run_every=2)
def readiness() -> None:
    now = server_states()
    cols = st.columns(2)
    for col, m in zip(cols, pair):
        col.caption(server_line(m, now[m]))
    for job in api.list_jobs(limit=5, kind="serve"):  # a server that failed to start says why (until replaced)
        if job["status"] == "failed" and job.get("error") and job["config"].get("model") in pair \
                and now[job["config"]["model"]] is None:
            st.caption(f"Server job #{job['id']} ({ui.md_escape(job['config'].get('model'))}) failed:")
            st.text(job["error"])
            break
    # The Run button and the Start button live outside this fragment: redraw when readiness changes.
    ui.rerun_on_change("cmp-ready", tuple((m, bool(s), bool(s and s["ready"])) for m, s in now.items()))


if not present:
    readiness()

# -- the call -----------------------------------------------------------------------------------
source = st.session_state["cmp-source"]
if not present:
    source = st.radio("Call", ["Example from the dataset", "Paste a transcript"], horizontal=True, key="cmp-source")
prompt = None
if source == "Example from the dataset":
    dataset = api.current_dataset()
    rows, _ = api.examples(dataset, split="test", limit=200) if dataset else ([], 0)
    if not rows and dataset:
        rows, _ = api.examples(dataset, limit=200)
    if not rows:
        st.info("No examples yet: create a dataset on the Data page, or paste a transcript.")
    else:
        ids = [r["id"] for r in rows]
        st.session_state.setdefault("cmp-example", ids[0])
        if st.session_state["cmp-example"] not in ids:
            st.session_state["cmp-example"] = ids[0]
        if not present:
            st.selectbox("Example (test split)", ids, key="cmp-example",
                         format_func=lambda i: next(f"{r['ex_id']} · {r['task']}" for r in rows if r["id"] == i))
        prompt = api.example_prompt(st.session_state["cmp-example"])
else:
    if not present:
        st.text_area("Transcript", height=200, key="cmp-transcript",
                     placeholder="Agent: Thank you for calling...\nCustomer: ...")
        st.selectbox("Task", TASKS, key="cmp-task")
    transcript = st.session_state.get("cmp-transcript", "")
    if transcript.strip():
        task = st.session_state["cmp-task"]
        prompt = {"messages": api.chat_messages(transcript, task), "task": task, "labels": {},
                  "transcript": transcript, "ex_id": "pasted"}

if prompt:
    title = f"{prompt['ex_id']} · {prompt['task'] or 'no task'}"
    if present:
        st.header(f"Base vs tuned: {prompt['task'] or 'call'}")
    with st.expander(f"Call transcript ({title})", expanded=not present):
        st.text(prompt["transcript"])

ready = bool(prompt) and all(s and s["ready"] for s in states.values())
if present and not ready:
    st.caption("Models not ready: leave the presentation view to start them.")
run = st.button("Run both", type="primary", disabled=not ready, key="cmp-run")

left, right, ref = st.columns([2, 2, 1.3])
slots = []
for col, m in zip((left, right), pair):
    col.subheader(m)
    slots.append(col.empty())
if prompt:  # what the answers are measured against, beside them
    ref.subheader("Reference")
    if prompt.get("reference"):
        ref.caption("Reference answer")
        ref.text(prompt["reference"])
    ref.caption("Labels of the example")
    ref.code(json.dumps(prompt["labels"], ensure_ascii=False, indent=1) if prompt["labels"]
             else "(none: a pasted transcript has no labels)", language=None, wrap_lines=True)

if run and ready:
    texts = ["", ""]
    errors: list = [None, None]
    stats: list[dict] = [{}, {}]
    specs = [{"url": states[m]["url"], "api_key": states[m]["api_key"], "model": m, "messages": prompt["messages"],
              "max_tokens": int(st.session_state["cmp-max-tokens"])} for m in pair]
    for i, piece in api.stream_pair(specs, stats):
        if isinstance(piece, Exception):
            errors[i] = str(piece)
        elif piece:
            texts[i] += piece
            slots[i].text(texts[i])
    st.session_state["cmp-result"] = {
        "key": (tuple(pair), prompt["ex_id"], prompt["task"], json.dumps(prompt["messages"])),
        "texts": texts, "errors": errors, "stats": stats,
        "scores": [api.score_answer(t, prompt["task"], prompt["labels"], prompt["transcript"]) for t in texts],
    }


def timing(st_: dict) -> str:
    """Latency and token counts of one answer, as measured on this call."""
    parts = []
    if st_.get("first_token_s") is not None:
        parts.append(f"first token after {st_['first_token_s']:.1f} s")
    if st_.get("completion_tokens") is not None:
        parts.append(f"{ui.fmt_count(st_['completion_tokens'])} tokens generated")
    if st_.get("prompt_tokens") is not None:
        parts.append(f"prompt {ui.fmt_count(st_['prompt_tokens'])} tokens")
    if st_.get("completion_tokens") and st_.get("seconds"):
        parts.append(f"{st_['completion_tokens'] / st_['seconds']:.1f} tokens/s")
    if st_.get("finish_reason") == "length":
        parts.append("cut at the token limit")
    return " · ".join(parts)


result = st.session_state.get("cmp-result")
if result and prompt and result["key"] == (tuple(pair), prompt["ex_id"], prompt["task"], json.dumps(prompt["messages"])):
    for i, col in enumerate((left, right)):
        s = result["scores"][i]
        # The answer with its at-fault sentences marked: ui.highlight_html escapes every piece first.
        marked = ui.highlight_html(result["texts"][i], s.get("at_fault")) if s.get("at_fault") else None
        if marked:
            slots[i].html(f'<div style="white-space: pre-wrap; font-family: monospace; font-size: 0.85rem">'
                          f'{marked}</div>')
        else:
            slots[i].text(result["texts"][i] or "(empty answer)")
        if result["errors"][i]:
            col.error("The server failed:")
            col.text(result["errors"][i])
        c1, c2, c3 = col.columns(3)
        c1.metric("Quality score", f"{s['score']:.0f}")
        c2.metric("Structure", "full" if s["structure"]["compliant"] else "partial",
                  help="full: every section and step of the reasoning chain, in order")
        c3.metric("Answer", "right" if s["correct"] else ("wrong" if s["correct"] is False else "n/a"))
        col.caption(f"Faithfulness: {api.faithfulness_word(s.get('faithfulness'))}")
        if s.get("at_fault"):
            with col:
                ui.show_faults(s["at_fault"])
        took = (result.get("stats") or [{}, {}])[i]
        c1, c2 = col.columns(2)
        c1.metric("Latency", f"{took['seconds']:.1f} s" if took.get("seconds") is not None else "-",
                  help="From the request to the last token, on this call")
        c2.metric("Tokens", ui.fmt_count(took["completion_tokens"]) if took.get("completion_tokens") is not None
                  else "-", help="Tokens the model generated (the server's count)")
        if timing(took):
            col.caption(timing(took))
        col.caption("Parsed labels")
        col.code(json.dumps(s["parsed"], ensure_ascii=False) if s["parsed"] else "(no answer line found)",
                 language=None)
        if not present:
            col.dataframe(pd.DataFrame([{"criterion": k, "points": v.get("points"), "max": v.get("max")}
                                        for k, v in s["criteria"].items()]), hide_index=True, width="stretch")

# -- what the evaluation says: one call is an anecdote, not a result ------------------------------
EVIDENCE_KEYS = ["overall.accuracy", "structure.compliance_rate"]
st.divider()
evidence = api.eval_pair(model_a, model_b)
if evidence is None:
    st.caption("One call shows how two models answer, not which one is better. No base-vs-tuned evaluation of "
               "these two models yet: run one on the Evaluate page before drawing a conclusion.")
else:
    ev_base, ev_tuned = evidence
    st.caption(f"One call shows how two models answer, not which one is better. Evaluation #{ev_tuned['id']} "
               f"({ev_tuned['model']}) against #{ev_base['id']} ({ev_base['model']}) on {ev_tuned['n']} examples, "
               "95% intervals and the paired test of each difference:")
    tests = api.eval_deltas(ev_base["id"], ev_tuned["id"], EVIDENCE_KEYS)  # McNemar only: cheap on every rerun
    st.dataframe(pd.DataFrame([{
        "metric": k,
        f"base: {ev_base['model']}": api.format_figure((ev_base["metrics"].get("intervals") or {}).get(k),
                                                       ev_base["headline"].get(k)),
        f"tuned: {ev_tuned['model']}": api.format_figure((ev_tuned["metrics"].get("intervals") or {}).get(k),
                                                         ev_tuned["headline"].get(k)),
        "significant (95%)": "yes" if tests[k].get("significant") else "NOT significant",
        "paired test": tests[k].get("verdict", ""),
    } for k in EVIDENCE_KEYS if k in tests]), hide_index=True, width="stretch", key="cmp-evidence")
    warning = api.small_sample_warning(ev_tuned["metrics"])
    if warning:
        st.warning(warning)

if not present and any(states.values()):
    with st.expander("Servers"):
        mine = []
        for m, s in states.items():
            if s:
                st.text(f"{m}: job #{s['job_id']} {s['status']} {s['url'] or ''} served {s['served']}"
                        + ("" if s["compare"] else " (started elsewhere: left running)"))
                if s["compare"] and s["job_id"] not in mine:
                    mine.append(s["job_id"])
        if st.button("Stop the servers started here", key="cmp-stop", disabled=not mine,
                     help="Servers started on Deploy keep running: stop them there."):
            for job_id in mine:
                api.cancel_job(job_id)
            st.rerun()
