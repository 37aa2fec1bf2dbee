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
import re
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


RATE_UNITS = {"generate": "ex/s", "eval": "ex/s", "infer": "lines/s", "train": "steps/s", "demo": "ex/s",
              "synth": "lines/s", "import": "lines/s"}


def job_times(job: dict, now: float | None = None) -> dict:
    """Elapsed, rate and ETA of a job, computed now (not frozen at its last progress write).

    Elapsed runs from the job's ``started_at`` to now (or to ``finished_at``); the ETA the job
    wrote counts down from the time it wrote it (``stats["at"]``); ``stale_s`` says how long ago
    that was, so a job that stopped reporting is not shown as if it were on time.
    """
    now = now or time.time()
    stats = job.get("stats") or {}
    active = job.get("status") in ("running", "pausing")
    started = job.get("started_at")
    end = now if active else (job.get("finished_at") or now)
    elapsed = max(0.0, end - started) if started else None
    eta = stale = None
    if active and stats.get("eta_s") is not None:
        at = stats.get("at")
        stale = max(0.0, now - at) if at else None
        eta = max(0.0, stats["eta_s"] - (stale or 0.0))
    rate = stats.get("rate") if stats.get("rate") is not None else stats.get("steps_per_s")
    return {"elapsed_s": elapsed, "eta_s": eta, "stale_s": stale, "rate": rate,
            "rate_unit": RATE_UNITS.get(job.get("kind"), "/s")}


def progress_line(job: dict, now: float | None = None) -> str:
    """One line a person reads: done of total, what the current batch is doing, rate, elapsed, ETA."""
    stats = job.get("stats") or {}
    t = job_times(job, now)
    parts = []
    if job.get("status") == "queued":
        return "queued: waiting for the engine"
    if stats.get("total"):
        parts.append(f"{fmt_count(stats.get('done', 0))} / {fmt_count(stats['total'])}")
    batch = stats.get("batch")
    if batch and job.get("status") in ("running", "pausing"):
        if batch.get("stage") == "prefill":
            parts.append(f"batch of {batch.get('examples')}: reading the transcripts")
        else:
            unit = batch.get("unit") or ("requests" if batch.get("stage") == "requests" else "parts")
            parts.append(f"batch of {batch.get('examples')}: {batch.get('done', 0)}/{batch.get('of', 0)} {unit} done, "
                         f"{fmt_count(batch.get('tokens', 0))} tokens"
                         + (f", step {batch['step']} of at most {batch['budget']}" if batch.get("unit") == "answers"
                            and batch.get("step") else ""))
    if stats.get("stage") and batch and batch.get("unit") == "answers":
        parts.append(str(stats["stage"]))
    if stats.get("stage") and not batch:
        parts.append(str(stats["stage"]))
    if t["rate"]:
        parts.append(f"{t['rate']:.3g} {t['rate_unit']}")
    if stats.get("tokens_per_s"):
        parts.append(f"{stats['tokens_per_s']:.1f} tokens/s")
    if t["elapsed_s"] is not None:
        parts.append(f"elapsed {fmt_duration(t['elapsed_s'])}")
    if t["eta_s"] is not None:
        parts.append(f"ETA {fmt_duration(t['eta_s'])}" + (
            f" (last update {fmt_duration(t['stale_s'])} ago)" if t["stale_s"] and t["stale_s"] > 30 else ""))
    return " · ".join(parts)


def fmt_count(n) -> str:
    """Whole numbers with a thousands separator (32,238); others as they are."""
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    return f"{n:,}" if isinstance(n, int) else str(n)


def sidebar(worker) -> None:
    with st.sidebar:
        _engine_box(worker)


def engine_line(status: dict, worker) -> str:
    """The sidebar's first line: whether the engine runs and how many jobs run and wait (no host
    or process names: they mean nothing to the people reading it)."""
    active = status["active"]
    queued = sum(j["status"] == "queued" for j in active)
    load = f"{len(active) - queued} running, {queued} queued"
    if status["alive"]:
        return f"Engine: running — {load}"
    if worker is None:
        return f"Engine: off in this process (CCR_ENGINE=0; `ccr worker` runs the jobs) — {load}"
    return f"Engine: stopped — {load}"


@st.fragment(run_every=2)
def _engine_box(worker) -> None:
    status = api.engine_status(worker)
    active = status["active"]
    st.caption(engine_line(status, worker))
    if status.get("last_error"):
        st.caption("Engine error:")
        st.text(status["last_error"])
    if not active:
        st.caption("No job running.")
    for job in active[:3]:
        label = f"#{job['id']} {job['kind']} · {job['status']}"
        st.progress(min(1.0, job["progress"] or 0.0), text=label)
        st.caption(progress_line(job))


def job_panel(job_id: int, key: str, show_log: bool = True) -> dict | None:
    """Live progress, stats, controls and log of one job (call inside a polling fragment)."""
    job = api.job(job_id)
    if not job:
        st.warning(f"Job {job_id} not found.")
        return None
    icon = STATE_ICONS.get(job["status"], "")
    st.write(f"{icon} Job #{job['id']} · {job['kind']} · **{job['status']}**")
    st.progress(min(1.0, job["progress"] or 0.0), text=progress_line(job))
    stats = job["stats"] or {}
    t = job_times(job)
    cols = st.columns(4)
    if stats.get("total"):
        cols[0].metric("Done", f"{fmt_count(stats.get('done', 0))} / {fmt_count(stats['total'])}")
    cols[1].metric("Rate", f"{t['rate']:.3g} {t['rate_unit']}" if t["rate"] else "-")
    cols[2].metric("ETA", fmt_duration(t["eta_s"]) if t["eta_s"] is not None else "-")
    cols[3].metric("Elapsed", fmt_duration(t["elapsed_s"]) if t["elapsed_s"] is not None else "-")
    if job.get("error"):
        st.error("Error:")
        st.code(job["error"], language=None)
    c1, c2, c3 = st.columns(3)
    if job["status"] in api.ACTIVE_JOB_STATES:
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


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!<>|~$:])")


def md_escape(text) -> str:
    """Text (a dataset or model name, an error quoting one) made literal inside a markdown element
    (st.info, st.caption...): every markdown character backslash-escaped, so a name like
    ``![x](http://...)`` is shown, never fetched or linked.

    >>> md_escape("![x](http://e.invalid/a.png) *b*")
    '\\!\\[x\\]\\(http\\://e\\.invalid/a\\.png\\) \\*b\\*'
    """
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def estimate_duration(estimate: dict) -> str:
    """'about 3 h 10 min', or 'an unknown time' when nothing was measured for this model."""
    from engine.estimate import format_duration

    return format_duration(estimate["seconds"]) if estimate.get("seconds") is not None else "an unknown time"


def confirm_long(estimate: dict | None, key: str, what: str = "job", settings=None) -> bool:
    """Show the estimate before a launch; a job over 30 minutes (or of unknown length) asks for a
    confirmation that names its duration. Returns whether the launch may go ahead.

    ``settings``: what the confirmation is for; when they change, the box is unticked again (a
    confirmed 2-hour run must not carry its tick over to a 3-day one)."""
    if not estimate:
        return True
    if estimate.get("error"):
        st.caption(f"No estimate: {md_escape(estimate['error'])}")
        return True
    (st.warning if estimate["long"] else st.info)(f"Estimate: {md_escape(estimate['text'])}")
    if not estimate["long"]:
        return True
    signature = repr((settings, estimate.get("text")))
    if st.session_state.get(key + "-for") != signature:
        st.session_state[key + "-for"] = signature
        st.session_state[key] = False
    return st.checkbox(f"I know this {what} takes {estimate_duration(estimate)}: launch it anyway", key=key)


def guarded_button(label: str, reasons: list[str], key: str, **kwargs) -> bool:
    """A launch button that is disabled while ``reasons`` (why not, in words) is non-empty, and
    says why below it; returns whether it was pressed."""
    pressed = st.button(label, key=key, disabled=bool(reasons),
                        help=("Disabled: " + "; ".join(reasons)) if reasons else None, **kwargs)
    if reasons:
        st.caption(f"{label} is disabled: " + "; ".join(md_escape(r) for r in reasons) + ".")
    return pressed and not reasons


def rerun_on_change(key: str, value) -> None:
    """Inside a polling fragment: redraw the whole page once when ``value`` changes (a job ended,
    a dataset appeared), so the panels outside the fragment follow the work without a reload."""
    if key not in st.session_state:
        st.session_state[key] = value
    elif st.session_state[key] != value:
        st.session_state[key] = value
        st.rerun(scope="app")


SCORE_BINS = [f"{b}-{b + 9}" for b in range(0, 90, 10)] + ["90-100"]


def score_bins(scores) -> dict[str, int]:
    """Counts of 0-100 scores in the ten fixed bins (0-9 ... 90-100), every bin present."""
    out = {b: 0 for b in SCORE_BINS}
    for s in scores:
        out[SCORE_BINS[min(9, max(0, int(float(s) // 10)))]] += 1
    return out


def score_histogram(counts: dict[str, int], title: str, y_title: str = "chains"):
    """A bar chart of scores in the fixed 10-point bins, every bin drawn even when empty, so two
    charts (or two moments of one run) compare bin for bin."""
    return score_histograms({"": counts}, title, y_title)


def score_histograms(series: dict[str, dict[str, int]], title: str, y_title: str = "chains", threshold=None):
    """Several score distributions (name -> ``score_bins`` counts) as grouped bars in the same
    fixed 10-point bins; ``threshold`` draws the pass line between its bins."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, counts in series.items():
        y = [int(counts.get(b, 0)) for b in SCORE_BINS]
        fig.add_trace(go.Bar(x=SCORE_BINS, y=y, name=html.escape(name, quote=False),
                             text=[str(v) if v else "" for v in y], textposition="outside", cliponaxis=False))
    fig.update_layout(height=280, margin=dict(l=10, r=10, t=50, b=10), title=html.escape(title, quote=False),
                      xaxis_title="score", yaxis_title=y_title, barmode="group", showlegend=len(series) > 1,
                      xaxis=dict(type="category", categoryorder="array", categoryarray=SCORE_BINS))
    peak = max([int(v) for counts in series.values() for v in counts.values()] + [0])
    fig.update_yaxes(rangemode="tozero", tickformat=",d", dtick=1 if peak <= 8 else None)  # counts: whole numbers
    if threshold is not None:  # bins are categories: the line sits at the threshold's place between them
        fig.add_vline(x=float(threshold) / 10 - 0.5, line_dash="dash", line_color="red",
                      annotation_text=f"threshold {float(threshold):g}")
    return fig


def small_sample_note(n: int, what: str = "chains") -> None:
    """Under ``api.SMALL_SAMPLE`` (10) items a share or a histogram says little: say so beside it."""
    if 0 < n < api.SMALL_SAMPLE:
        st.caption(f":material/warning: Small sample: {n} {what}. Percentages and shapes can change a lot with "
                   "a few more.")


def confusion_figure(view: dict, subtitle: str = ""):
    """One confusion matrix (an ``api.confusion_views`` entry) as a heatmap people can read.

    Every class of the label space on both axes plus the ``unparsed`` column; every cell's count
    written on it in a colour that contrasts with the cell; colour follows the count from white
    (0) up, so an all-zero matrix is blank, never a dark "right" diagonal; the cells where the
    reference equals the prediction are framed; the title carries the sample size."""
    import plotly.graph_objects as go

    rows, cols, z = view["rows"], view["columns"], view["matrix"]
    peak = max([max(line) for line in z] + [0])
    fig = go.Figure(go.Heatmap(
        z=z, x=cols, y=rows, zmin=0, zmax=max(peak, 1), colorscale="Blues", showscale=False, xgap=1, ygap=1,
        hovertemplate="reference %{y}<br>predicted %{x}<br>%{z} examples<extra></extra>"))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            v = z[i][j]
            color = "#ffffff" if peak and v / peak > 0.5 else ("#1f1f1f" if v else "#6b6b6b")
            # Positions, not names: on a category axis plotly reads a name like "4" as position 4.
            fig.add_annotation(x=j, y=i, text=str(v), showarrow=False, font=dict(color=color, size=13))
            if r == c:  # a right answer: framed, so an empty diagonal is seen as empty
                fig.add_shape(type="rect", x0=j - 0.46, x1=j + 0.46, y0=i - 0.44, y1=i + 0.44, xref="x", yref="y",
                              line=dict(color="#2b8a3e", width=2))
    longest_row = max(len(str(r)) for r in rows)
    longest_col = max(len(str(c)) for c in cols)
    tilt = longest_col > 6
    angle = -60 if longest_col > 10 else -40
    title = f"{view['title']}: {view['n']} example{'' if view['n'] == 1 else 's'}, {view['parsed']} parsed"
    fig.update_layout(
        title=dict(text=html.escape(title, quote=False)
                   + (f"<br><sup>{html.escape(subtitle, quote=False)}</sup>" if subtitle else "")),
        height=130 + 30 * len(rows) + (7 * longest_col if tilt else 20),
        margin=dict(l=20 + 7 * longest_row, r=10, t=70, b=20 + (7 * longest_col if tilt else 0)),
        xaxis=dict(type="category", title="predicted", tickangle=angle if tilt else 0, automargin=True,
                   categoryorder="array", categoryarray=cols, side="bottom"),
        yaxis=dict(type="category", title=dict(text="reference", standoff=12), autorange="reversed", automargin=True,
                   categoryorder="array", categoryarray=rows),
        plot_bgcolor="#ffffff")
    return fig


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
