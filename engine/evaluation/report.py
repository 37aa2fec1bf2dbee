"""The evaluation report: ``R.json`` and the one self-contained HTML page beside it.

``engine.evaluation.evaluate.build_report`` makes the report dict; ``write_report`` writes it as JSON
and renders it here as HTML.

Why the HTML report has no plotly: an inlined plotly.js is 3-4 MB per report. Tables with
shaded cells and small inline SVG histograms carry the same information, open anywhere, and
every piece of model text in them goes through ``html.escape``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from engine.core.fileio import atomic_write
from engine.data import tasks
from engine.evaluation import formatting, stats
from engine.evaluation.formatting import faithfulness_word


def write_report(report: dict, path: str | Path) -> tuple[str, str]:
    """Write ``path`` (JSON) and the HTML beside it, each atomically; returns both paths."""
    path = Path(path)
    html_path = path.with_suffix(".html")
    with atomic_write(path) as fh:
        json.dump(report, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    with atomic_write(html_path) as fh:
        fh.write(render_html(report))
    return str(path), str(html_path)


# -- HTML -----------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#1f2937;
padding:0 1rem}h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #e5e7eb;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}th,td{border:1px solid #e5e7eb;padding:.3rem .6rem;
text-align:right}th{background:#f3f4f6}td.l,th.l{text-align:left}.better{color:#047857;font-weight:600}
.worse{color:#b91c1c;font-weight:600}.muted{color:#6b7280}pre{white-space:pre-wrap;background:#f9fafb;border:1px solid
#e5e7eb;padding:.6rem;font-size:.8rem;max-height:24rem;overflow:auto}.pair{display:grid;grid-template-columns:1fr 1fr;
gap:1rem}.card{border:1px solid #e5e7eb;border-radius:6px;padding:.8rem;margin-bottom:1rem}.grid{display:flex;
flex-wrap:wrap;gap:1.5rem}.ok{color:#047857}.bad{color:#b91c1c}.warn{background:#fef3c7;border:1px solid #f59e0b;
padding:.6rem;border-radius:6px}
"""
_COLORS = ("#6b7280", "#2563eb", "#059669", "#d97706")


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _figure(m: dict, key: str, value) -> str:
    """A figure's table cell: the value, and under it its 95% interval and n when it has one."""
    entry = ((m.get("metrics") or {}).get("intervals") or {}).get(key)
    if not entry:
        return f"<td>{_e(_fmt(value))}</td>"
    ci = entry.get("ci")
    ci_txt = f"[{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "[n/a]"
    return f"<td>{_e(_fmt(value))}<br><span class=muted>{_e(ci_txt)} n={_e(entry['n'])}</span></td>"


def _headline_table(report: dict) -> str:
    models = report["models"]
    keys = list(dict.fromkeys(k for m in models for k in m["headline"]))
    deltas = (report.get("comparison") or {}).get("deltas", {})
    head = "".join(f"<th>{_e(m['model'])}<br><span class=muted>{_e(m['role'])}</span></th>" for m in models)
    rows = []
    for k in keys:
        cells = "".join(_figure(m, k, m["headline"].get(k)) for m in models)
        if deltas:
            d = deltas.get(k)
            if d:
                # Colour only a significant difference: an insignificant one must not look like a result.
                cls = ("better" if d["better"] else "worse") if d.get("significant") and d["delta"] else "muted"
                cells += (f"<td class={cls}>{d['delta']:+.4g}</td><td>{_e(formatting.format_p(d).lstrip('='))}</td>"
                          f"<td class='l {'' if d.get('significant') else 'muted'}'>{_e(d.get('verdict', ''))}</td>")
            else:
                cells += "<td class=muted>n/a</td><td></td><td></td>"
        rows.append(f"<tr><td class=l>{_e(k)}</td>{cells}</tr>")
    dhead = ("<th>delta (tuned - base)</th><th>p</th><th class=l>paired test at 95%</th>" if deltas else "")
    return f"<table><tr><th class=l>metric</th>{head}{dhead}</tr>{''.join(rows)}</table>"


def _statistics_note(report: dict) -> str:
    warn = report.get("small_sample_warning")
    note = ("<p class=muted>Under each figure: its 95% interval [low, high] and n, the examples it is measured "
            "on. Proportions: Wilson score interval; MAE, mean score and F1: percentile bootstrap "
            f"({stats.BOOTSTRAP_RESAMPLES} resamples, seed {stats.BOOTSTRAP_SEED}). Base vs tuned: exact McNemar test on "
            "the examples one model got right and the other wrong; paired bootstrap for MAE, F1 and means. "
            f"Significant means p &lt; {stats.ALPHA}; only significant deltas are coloured.</p>")
    return (f"<p class=warn>{_e(warn)}</p>" if warn else "") + note


def _constant_section(report: dict) -> str:
    """The constant-answer baseline (``engine.evaluation.baseline``) under the models' table: an
    accuracy is read against it. Absent from reports written before it existed."""
    const = report.get("constant_answer")
    if not const or not const.get("n"):
        return ""
    lines = "".join(f"<li>{_e(m['summary'])}</li>" for m in const["models"])
    return f"<h3>Against answering one thing per task</h3><p>{_e(const['description'])}</p><ul>{lines}</ul>"


def _confusion_table(title: str, conf: dict) -> str:
    peak = max([max(r) for r in conf["matrix"]] + [1])
    head = "".join(f"<th>{_e(c)}</th>" for c in conf["columns"])
    rows = []
    for name, row in zip(conf["rows"], conf["matrix"]):
        cells = "".join(
            f"<td style='background:rgba(37,99,235,{0.08 + 0.6 * v / peak if v else 0:.2f})'>{v}</td>" for v in row)
        rows.append(f"<tr><th class=l>{_e(name)}</th>{cells}</tr>")
    return (f"<div><b>{_e(title)}</b> <span class=muted>(rows: reference, columns: predicted)</span>"
            f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table></div>")


def _histogram_svg(models: list[dict]) -> str:
    width, height, pad = 560, 200, 30
    series = [(m["model"], (m["metrics"] or {}).get("quality_score", {}).get("histogram")) for m in models]
    series = [(name, h) for name, h in series if h]
    if not series:
        return "<p class=muted>no scores</p>"
    bins = len(series[0][1]["counts"])
    peak = max(max(h["counts"]) for _, h in series) or 1
    slot = (width - 2 * pad) / bins
    bar = slot / (len(series) + 1)
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height + 40}' role='img'>"]
    for i, (name, h) in enumerate(series):
        color = _COLORS[i % len(_COLORS)]
        for b, count in enumerate(h["counts"]):
            bh = (height - pad) * count / peak
            x = pad + b * slot + i * bar
            parts.append(f"<rect x='{x:.1f}' y='{height - bh:.1f}' width='{bar:.1f}' height='{bh:.1f}' "
                         f"fill='{color}' opacity='0.8'><title>{_e(name)}: {count}</title></rect>")
        parts.append(f"<rect x='{pad + i * 170}' y='{height + 22}' width='10' height='10' fill='{color}'/>"
                     f"<text x='{pad + i * 170 + 14}' y='{height + 31}' font-size='11'>{_e(name)[:24]}</text>")
    edges = series[0][1]["edges"]
    for b in range(bins + 1):
        parts.append(f"<text x='{pad + b * slot:.1f}' y='{height + 14}' font-size='10' text-anchor='middle'>"
                     f"{edges[b]}</text>")
    parts.append(f"<line x1='{pad}' y1='{height}' x2='{width - pad}' y2='{height}' stroke='#9ca3af'/></svg>")
    return "".join(parts)


def _task_section(models: list[dict]) -> str:
    out = []
    for task in tasks.TASKS:
        present = [(m, (m["metrics"] or {}).get("tasks", {}).get(task)) for m in models]
        present = [(m, t) for m, t in present if t]
        if not present:
            continue
        out.append(f"<h3>{_e(tasks.TASK_TITLES[task])}</h3>")
        scalar_keys = [k for k, v in present[0][1].items() if not isinstance(v, dict)]
        head = "".join(f"<th>{_e(m['model'])}</th>" for m, _ in present)
        rows = "".join(f"<tr><td class=l>{_e(k)}</td>" + "".join(_figure(m, f"{task}.{k}", t.get(k))
                                                                  for m, t in present)
                       + "</tr>" for k in scalar_keys)
        out.append(f"<table><tr><th class=l>metric</th>{head}</tr>{rows}</table>")
        confs = [(m, t.get("confusion")) for m, t in present if t.get("confusion")]
        if confs:
            out.append("<div class=grid>" + "".join(_confusion_table(f"{m['model']}: {task}", c) for m, c in confs)
                       + "</div>")
    return "".join(out)


def _faults_html(faults: list[dict]) -> str:
    if not faults:
        return ""
    items = "".join(f"<li><i>{_e(f.get('kind'))}</i>: <mark>{_e(f.get('sentence'))}</mark> "
                    f"<span class=muted>{_e(f.get('reason'))}</span></li>" for f in faults)
    return f"<div>Sentences at fault:<ul>{items}</ul></div>"


def _answer_card(title: str, side: dict) -> str:
    mark = "<span class=ok>right</span>" if side.get("correct") else (
        "<span class=bad>wrong</span>" if side.get("correct") is False else "<span class=muted>no label</span>")
    faith = side.get("faithfulness")
    fcls = "ok" if faith and faith.get("faithful") else ("bad" if faith and faith.get("judged") else "muted")
    return (f"<div class=card><b>{_e(title)}</b> · {mark} · score {_e(_fmt(side.get('score')))} · "
            f"<span class={fcls}>{_e(faithfulness_word(faith))}</span><br>"
            f"parsed: <code>{_e(json.dumps(side.get('parsed'), ensure_ascii=False))}</code>"
            f"{_faults_html(side.get('at_fault') or [])}<pre>{_e(side.get('output'))}</pre></div>")


_FAITH_ROWS = ("faithful_rate", "contradiction_rate", "invented_per_answer", "judged", "not_judged",
               "with_contradiction", "with_invented")


def _faithfulness_section(models: list[dict]) -> str:
    head = "".join(f"<th>{_e(m['model'])}</th>" for m in models)
    rows = "".join(f"<tr><td class=l>faithfulness.{_e(k)}</td>"
                   + "".join(_figure(m, f"faithfulness.{k}", ((m["metrics"] or {}).get("faithfulness") or {}).get(k))
                             for m in models) + "</tr>" for k in _FAITH_ROWS)
    return ("<p class=muted>The quality scorer's faithfulness checks over each answer's reasoning: a contradiction "
            "is a statement that contradicts the example's labels (or transcript), an unsupported specific a "
            "name, number, date, product or channel the transcript and labels do not have. faithful_rate is over "
            "the judged answers only (those with reasoning sentences inside the sections); an answer without "
            "reasoning, such as a bare label line, asserts nothing and is not counted as faithful (not_judged). "
            "contradiction_rate and invented_per_answer are over every answer. Lower is better for both.</p>"
            f"<table><tr><th class=l>metric</th>{head}</tr>{rows}</table>")


def _examples_section(report: dict) -> str:
    items = report.get("examples") or []
    if not items:
        return "<p class=muted>none</p>"
    comp = report.get("comparison")
    out = []
    for it in items:
        head = (f"<p><b>{_e(it['key'])}</b> · {_e(it['task'])} · reference "
                f"<code>{_e(json.dumps(it.get('labels'), ensure_ascii=False))}</code></p>")
        prompt = f"<details><summary>prompt</summary><pre>{_e(it.get('prompt'))}</pre></details>"
        if comp:
            body = ("<div class=pair>" + _answer_card(f"base: {comp['base']}", it["base"])
                    + _answer_card(f"tuned: {comp['tuned']}", it["tuned"]) + "</div>")
        else:
            body = _answer_card(report["models"][0]["model"], it["model"])
        out.append(f"<div class=card>{head}{prompt}{body}</div>")
    return "".join(out)


def render_html(report: dict) -> str:
    """One self-contained HTML page (inline CSS and SVG, no scripts); all text is escaped."""
    models = report["models"]
    comp = report.get("comparison")
    title = (f"Evaluation: {comp['tuned']} vs {comp['base']}" if comp
             else f"Evaluation: {models[0]['model']}" if models else "Evaluation")
    struct_keys = ("all_sections_rate", "all_steps_rate", "compliance_rate")
    qs_keys = ("mean", "median", "p25", "p75", "min", "max", "share_ge_70")
    head = "".join(f"<th>{_e(m['model'])}</th>" for m in models)

    def rows(section: str, keys) -> str:
        return "".join(f"<tr><td class=l>{_e(section)}.{_e(k)}</td>"
                       + "".join(_figure(m, f"{section}.{k}", ((m['metrics'] or {}).get(section) or {}).get(k))
                                 for m in models) + "</tr>" for k in keys)

    examples_title = ("Examples where the models disagree" if comp else "Examples the model got wrong")
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class=muted>{_e(report['n_examples'])} examples from {_e(report['data'])} · "
        f"{_e(report['created_at'])}</p>"
        f"<h2>Models by metric</h2>{_statistics_note(report)}{_headline_table(report)}{_constant_section(report)}"
        f"<h2>Reasoning structure and quality score</h2><table><tr><th class=l>metric</th>{head}</tr>"
        f"{rows('structure', struct_keys)}{rows('quality_score', qs_keys)}</table>"
        f"<h3>Quality-score distribution</h3>{_histogram_svg(models)}"
        f"<h2>Faithfulness of the answers</h2>{_faithfulness_section(models)}"
        f"<h2>Task accuracy</h2><p class=muted>Unparseable answers count as wrong; MAE is over parsed answers "
        f"(mae_n).</p>{_task_section(models)}"
        f"<h2>{_e(examples_title)}</h2>{_examples_section(report)}"
        "</body></html>\n"
    )
