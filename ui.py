"""Small UI helpers shared by the pages (UI only: no torch, no transformers).

Untrusted text (transcripts, model output, file names from uploads) is shown with ``st.text``
or ``st.code``, or inside dataframes, never as markdown. The one HTML path, ``highlight_html``
(the sentences of a chain at fault, marked), escapes every character of the text with
``html.escape`` before adding its own ``<mark>`` tags, and goes through ``st.html``, which
renders no markdown and runs no script.
"""

from __future__ import annotations

import html
import json
import time

import pandas as pd
import streamlit as st

from engine import api

# Material icons ship with Streamlit's own font, so they render everywhere (emoji need a font).
STATE_ICONS = {"done": ":material/check_circle:", "running": ":material/progress_activity:",
               "ready": ":material/play_circle:", "waiting": ":material/pending:", "queued": ":material/schedule:",
               "succeeded": ":material/check_circle:", "failed": ":material/error:", "cancelled": ":material/block:",
               "paused": ":material/pause_circle:", "pausing": ":material/pause_circle:",
               "interrupted": ":material/warning:"}


def fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


def sidebar(worker) -> None:
    with st.sidebar:
        _engine_box(worker)


@st.fragment(run_every=2)
def _engine_box(worker) -> None:
    status = api.engine_status(worker)
    if status["alive"]:
        st.caption(f"Engine: running ({status['name']})")
    elif worker is None:
        st.caption("Engine: off in this process (CCR_ENGINE=0); `ccr worker` runs the jobs")
    else:
        st.caption("Engine: stopped")
    if status.get("last_error"):
        st.caption("Engine error:")
        st.text(status["last_error"])
    active = status["active"]
    if not active:
        st.caption("No job running.")
    for job in active[:3]:
        stats = job["stats"] or {}
        label = f"#{job['id']} {job['kind']} · {job['status']}"
        st.progress(min(1.0, job["progress"] or 0.0), text=label)
        if stats.get("eta_s") is not None:
            st.caption(f"ETA {fmt_duration(stats['eta_s'])}")


def job_panel(job_id: int, key: str, show_log: bool = True) -> dict | None:
    """Live progress, stats, controls and log of one job (call inside a polling fragment)."""
    job = api.job(job_id)
    if not job:
        st.warning(f"Job {job_id} not found.")
        return None
    icon = STATE_ICONS.get(job["status"], "")
    st.write(f"{icon} Job #{job['id']} · {job['kind']} · **{job['status']}**")
    st.progress(min(1.0, job["progress"] or 0.0))
    stats = job["stats"] or {}
    if stats:
        cols = st.columns(4)
        if stats.get("total"):
            cols[0].metric("Done", f"{stats.get('done', 0)} / {stats['total']}")
        if stats.get("rate") is not None:
            cols[1].metric("Rate", f"{stats['rate']:.2f}/s")
        if stats.get("eta_s") is not None:
            cols[2].metric("ETA", fmt_duration(stats["eta_s"]))
        cols[3].metric("Elapsed", fmt_duration(stats.get("elapsed_s")))
    if job.get("error"):
        st.error("Error:")
        st.code(job["error"], language=None)
    c1, c2, c3 = st.columns(3)
    if job["status"] in ("queued", "running", "pausing"):
        if c1.button("Cancel", key=f"{key}-cancel-{job_id}"):
            api.cancel_job(job_id)
            st.rerun()
        if job["status"] == "running" and c2.button("Pause", key=f"{key}-pause-{job_id}"):
            api.pause_job(job_id)
            st.rerun()
    elif job["status"] in ("paused", "interrupted", "failed"):
        if c1.button("Resume", key=f"{key}-resume-{job_id}"):
            api.resume_job(job_id)
            st.rerun()
    if show_log:
        with st.expander("Log"):
            st.code(api.job_log(job_id, 8000) or "(empty)", language=None)
    return job


def show_json(value) -> None:
    st.code(json.dumps(value, indent=2, ensure_ascii=False), language="json")


# Reasoning chains (Generate, Quality and Review pages). The chain is model output, so every
# piece of its text goes through st.text; only our fixed section, step and part names are headings.
SECTION_TITLES = {"thinking": "Thinking", "analysis": "Analysis", "insights": "Insights"}


FAULT_KINDS = {"contradiction": "contradicts the labels", "invented": "unsupported specific"}


def highlight_html(body: str, faults: list[dict] | None) -> str | None:
    """``body`` as HTML with the at-fault sentences in ``<mark>`` (the reasons in its title), or
    None when no fault's sentence is in it. Every piece of ``body`` and of the reasons is escaped
    first, so the chain's own text can never become markup.

    >>> highlight_html("Fine. <b>Bad</b> claim.", [{"sentence": "<b>Bad</b> claim.", "kind": "invented", "reason": "x"}])
    'Fine. <mark title="unsupported specific: x">&lt;b&gt;Bad&lt;/b&gt; claim.</mark>'
    """
    spans: dict[tuple[int, int], list[str]] = {}
    for f in faults or []:
        sentence = f.get("sentence") or ""
        pos = body.find(sentence) if sentence else -1
        if pos != -1:
            kind = FAULT_KINDS.get(f.get("kind"), str(f.get("kind")))
            spans.setdefault((pos, pos + len(sentence)), []).append(f"{kind}: {f.get('reason', '')}")
    if not spans:
        return None
    out, last = [], 0
    for (start, end), reasons in sorted(spans.items()):
        if start < last:
            continue     # overlaps a sentence already marked
        tip = html.escape("; ".join(reasons), quote=True)
        out.append(html.escape(body[last:start]))
        out.append(f'<mark title="{tip}">{html.escape(body[start:end])}</mark>')
        last = end
    out.append(html.escape(body[last:]))
    return "".join(out)


def _body(body: str, faults: list[dict] | None) -> None:
    """One step's or part's text: plain (``st.text``), or with its faulty sentences marked."""
    marked = highlight_html(body, faults) if faults else None
    if marked is None:
        st.text(body or "(empty)")
    else:
        st.html(f'<div style="white-space: pre-wrap; font-family: monospace; font-size: 0.85rem">{marked}</div>')


def show_chain(text: str, at_fault: list[dict] | None = None) -> None:
    """Sections, steps and parts laid out with headings; the raw text in an expander. With
    ``at_fault`` (``quality.at_fault`` of the breakdown), the sentences at fault are marked in
    place and listed with their reasons."""
    parsed = api.chain_parts(text or "")
    if at_fault:
        show_faults(at_fault)
    if not any(parsed["present"].values()):
        st.caption("No sections found; the raw text:")
        _body(text or "", at_fault)
        return
    for name, title in SECTION_TITLES.items():
        body = parsed["sections"].get(name)
        if body is None:
            st.caption(f"{title}: missing")
            continue
        st.markdown(f"**{title}**")
        if name == "thinking" and parsed["steps"]:
            for step in parsed["steps"]:
                if step["title_ok"]:
                    st.caption(f"Step {int(step['n'])} - {step['title']}")
                else:
                    st.text(f"Step {int(step['n'])} - {step['title']}")
                _body(step["body"], at_fault)
        elif parsed["parts"].get(name):
            for part, part_body in parsed["parts"][name].items():
                st.caption(part)  # a name from our fixed list
                _body(part_body, at_fault)
        else:
            _body(body, at_fault)
    st.markdown("**Final answer**")
    st.text(parsed["final_answer"] or "(none)")
    if parsed["problems"]:
        st.caption("Structure problems:")
        st.text("\n".join(parsed["problems"]))
    with st.expander("Raw chain text"):
        st.code(text or "", language=None)


def show_faults(at_fault: list[dict]) -> None:
    """The sentences at fault with why, in a table (cells are never markup)."""
    st.caption("Sentences at fault (marked in the chain below): a contradiction of the labels or the transcript, "
               "or a specific the transcript does not support.")
    st.dataframe(pd.DataFrame([{"kind": FAULT_KINDS.get(f.get("kind"), f.get("kind")), "sentence": f.get("sentence"),
                                "why": f.get("reason")} for f in at_fault]), hide_index=True, width="stretch")


def show_criteria(criteria: dict) -> None:
    """Points and the reviewer-facing reason of every criterion."""
    if not criteria:
        return
    st.dataframe(pd.DataFrame([{"criterion": k, "points": c.get("points"), "max": c.get("max"),
                                "reason": c.get("reason", "")} for k, c in criteria.items()]),
                 hide_index=True, width="stretch")


def _leave_pages_directory_mode() -> None:
    """Make the app's own navigation win over Streamlit's legacy ``pages/`` folder mode.

    Streamlit starts each server in the legacy mode when a ``pages/`` folder sits beside the main
    script, and leaves it only when ``st.navigation`` runs. If the first request of a fresh
    server is a page URL (``/data``), Streamlit would run that page file alone, without
    ``app.py``: no engine, no sidebar, a bare page list. Every page imports this module, so the
    first run in the process switches the mode off and reruns through ``app.py``.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_pages_directory_mode()
