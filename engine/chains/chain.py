"""The reasoning-chain format: its constants, a tolerant parser and a canonical renderer.

A chain is what the teacher writes for one example (MISSION.md, Phase 1)::

    <thinking>
    Step 1 - Customer Sentiment Analysis
    ...
    Step 5 - Business Impact Analysis
    ...
    </thinking>
    <analysis>
    Quality Metrics: ...
    Key Strengths: ...
    Critical Issues: ...
    Patterns & Trends: ...
    </analysis>
    <insights>
    Immediate Coaching: ...
    Process Improvements: ...
    Business Actions: ...
    Strategic Insights: ...
    </insights>
    Final answer:
    <the reference answer, whose last line is the task's answer line>

This module is the only place that knows those names; the generator renders with
``render_chain``, the scorer and the reviewers' UI read with ``parse_chain``.

How ``parse_chain`` reads messy model output (the choices, in one place):

- Tags are matched case-insensitively and may carry inner spaces (``< Thinking >``).
- Sections are looked for in their canonical order: each section's *first opening tag after
  the end of the previous section* is taken. When there is none, the first opening tag
  anywhere is taken and the chain is marked out of order.
- A section ends at the earliest of: its own closing tag, the opening tag of any *other*
  section, or a ``Final answer:`` header line. Only the first of these counts, so a stray
  ``</thinking>`` written inside ``<analysis>``, ``<insights>`` or the final answer can never
  swallow later text into the thinking section; a section that ends anywhere but at its own
  closer is reported as not closed.
- A second opening tag of a section is reported as a duplicate; its text stays inside
  whichever section or final answer it sits in.
- The final answer is the text after the first ``Final answer:`` header line that follows the
  sections (or, without sections, anywhere). Without a header it is the text after the last
  section, and a problem is reported.
- Step headers are lines like ``Step 1 - Title``, ``Step 1: Title``, ``**Step 1 - Title**``,
  ``### Step 1 – Title``; the title may be followed on the same line by text, which belongs to
  the step's body. Steps are searched in the thinking body (in the whole text before the
  final answer when there is no thinking section).
- Part headers (``Quality Metrics:``, ``**Key Strengths**:``, ``- Patterns and Trends:``) start
  a line inside their own section; text after the header on the same line is part of the body.
"""

from __future__ import annotations

import re

SECTIONS = ("thinking", "analysis", "insights")
STEPS = (
    "Customer Sentiment Analysis",
    "Agent Performance Evaluation",
    "Interaction Quality Assessment",
    "Root Cause Analysis",
    "Business Impact Analysis",
)
ANALYSIS_PARTS = ("Quality Metrics", "Key Strengths", "Critical Issues", "Patterns & Trends")
INSIGHT_PARTS = ("Immediate Coaching", "Process Improvements", "Business Actions", "Strategic Insights")
SECTION_PARTS = {"analysis": ANALYSIS_PARTS, "insights": INSIGHT_PARTS}
FINAL_ANSWER_HEADER = "Final answer:"
_ALL_STEPS = list(range(1, len(STEPS) + 1))

# How the parser finds headers. Every header pattern starts with "\n" and is run with
# ``finditer`` over "\n" + the text it searches: the regex engine then jumps from newline to
# newline at C speed and tries the header only at line starts, so one call finds every header of
# a kind (a header never spans lines). Matching is case-insensitive (re.I) throughout.
_TAG_RE = re.compile(r"<\s*(/?)\s*(thinking|analysis|insights)\s*>", re.I)
_FINAL_RE = re.compile(r"[ \t>#*_]*final[ \t]+answer[ \t*_]*:[ \t*_]*", re.I)
_WORDS_RE = re.compile(r"[a-z0-9]+")


def _title_regex(title: str) -> str:
    """A step title with any non-word run between its words, not crossing a line break."""
    return r"(?:[^\w\n]|_)+".join(re.escape(w) for w in _WORDS_RE.findall(title.lower())) + r"\b"


# Group 1: the step number; group 2: the rest of the header line; groups 3-7: the rest starts
# with the title of step 1-5 (group n + 2 matched means step n carries its own title).
_STEP_NL = re.compile(
    r"\n[ \t>#*_\-]*step[ \t]*(\d{1,2})\b[ \t]*[-\u2013\u2014:.)]?[ \t*_]*((?:"
    + "|".join(f"({_title_regex(t)})" for t in STEPS)
    + r"|)[^\n]*)",
    re.I,
)
_STEP_GROUPS = _STEP_NL.groups + 1   # items per step in _STEP_NL.split(): its groups, then the body


def _part_regex(names: tuple[str, ...]) -> re.Pattern:
    """A header line for any of ``names`` ("\\n" first); group i+1 matches ``names[i]``."""
    alts = []
    for name in names:
        words = [re.escape(w) for w in name.lower().replace("&", " & ").split()]
        alts.append("(" + r"[ \t]+".join(w if w != "\\&" else r"(?:&|and)" for w in words) + ")")
    return re.compile(
        r"\n[ \t>#*_\-\d.)]*(?:" + "|".join(alts) + r")[ \t*_]*(?::|-|\u2013|\u2014|$)[ \t*_]*", re.I | re.M
    )


_PART_RES = {name: _part_regex(parts) for name, parts in SECTION_PARTS.items()}


def parse_chain(text: str) -> dict:
    """Read a reasoning chain into its parts; never raises.

    Returns a dict with:

    - ``sections``: ``{name: body or None}``; ``present``/``closed``: ``{name: bool}``;
      ``in_order``: the sections that are present come in canonical order, none opened twice;
    - ``steps``: the step headers found, in order of appearance, each
      ``{"n", "title", "title_ok", "body"}``;
    - ``parts``: ``{"analysis": {part: body}, "insights": {part: body}}`` (first occurrence of
      each part) and ``part_order``: ``{section: [part, ...]}`` as found;
    - ``final_answer``: the text after ``Final answer:`` (stripped; ``""`` when there is none);
      ``has_final_header``;
    - ``problems``: short sentences for every structural fault.

    >>> chain = render_chain(
    ...     {1: "Calm.", 2: "Polite.", 3: "Smooth.", 4: "Billing.", 5: "Low cost."},
    ...     {"Quality Metrics": "QA 90."}, {"Immediate Coaching": "None."}, "CSAT: 5/5")
    >>> p = parse_chain("junk before\\n" + chain + "\\ntrailing junk")
    >>> [p["present"][s] and p["closed"][s] for s in SECTIONS], p["in_order"]
    ([True, True, True], True)
    >>> [(s["n"], s["title_ok"], s["body"]) for s in p["steps"]][:2]
    [(1, True, 'Calm.'), (2, True, 'Polite.')]
    >>> p["parts"]["analysis"]["Quality Metrics"], p["final_answer"]
    ('QA 90.', 'CSAT: 5/5\\ntrailing junk')

    A missing closer ends the section at the next section; a fake closer later on is ignored:

    >>> messy = ("<thinking>\\n**Step 1: Customer Sentiment Analysis** - angry at first\\n"
    ...          "<analysis>\\nKey Strengths: calm tone\\n</analysis>\\n"
    ...          "Final answer:\\nShe said </thinking> twice. CSAT: 2/5")
    >>> p = parse_chain(messy)
    >>> p["sections"]["thinking"], p["closed"]["thinking"], p["present"]["insights"]
    ('**Step 1: Customer Sentiment Analysis** - angry at first', False, False)
    >>> p["steps"][0]["body"], p["final_answer"]
    ('angry at first', 'She said </thinking> twice. CSAT: 2/5')
    >>> p["problems"][:2]
    ['<thinking> is not closed', '<insights> is missing']

    A step title may be followed by text on its line, which starts the body:

    >>> p = parse_chain("<thinking>\\nStep 1 - Customer  sentiment analysis** - angry\\nStep 2 - Mood\\n</thinking>")
    >>> [(s["n"], s["title_ok"], s["title"], s["body"]) for s in p["steps"]]
    [(1, True, 'Customer Sentiment Analysis', 'angry'), (2, False, 'Mood', 'Mood')]
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    problems: list[str] = []
    tags = [(m.start(), m.end(), m[2].lower(), m[1] == "/") for m in _TAG_RE.finditer(text)]
    finals = _final_headers(text)
    sections, present, closed, in_order, last_end = _sections(text, tags, finals, problems)
    final_answer, after = _final_answer(text, finals, last_end, any(present.values()), problems)
    steps = _steps(text, sections["thinking"], after, problems)
    parts, part_order = _parts(sections, problems)
    return {
        "sections": sections,
        "present": present,
        "closed": closed,
        "in_order": in_order,
        "steps": steps,
        "parts": parts,
        "part_order": part_order,
        "final_answer": final_answer,
        "has_final_header": after is not None,
        "problems": problems,
    }


def _final_headers(text: str) -> list[tuple[int, int]]:
    """(line start, end of the header) of every ``Final answer:`` header line, in order."""
    # Found with bytes.find in an ASCII copy of the text, lower-cased, with one byte per
    # character (offsets are the text's), then matched at their line start.
    low = text.encode("ascii", "replace").lower()
    finals = []
    i = low.find(b"final")
    while i != -1:
        start = low.rfind(b"\n", 0, i) + 1
        m = _FINAL_RE.match(text, start)
        if m:
            finals.append((start, m.end()))
        i = low.find(b"\n", i)
        if i == -1:
            break
        i = low.find(b"final", i)
    return finals


def _sections(text: str, tags: list[tuple], finals: list[tuple[int, int]], problems: list[str]) -> tuple:
    """(sections, present, closed, in_order, last_end): each section's body as the module
    docstring describes, and the end of the last one (0 when there is none)."""
    size = len(text)
    sections: dict[str, str | None] = {}
    present: dict[str, bool] = {}
    closed: dict[str, bool] = {}
    in_order = True
    cursor = 0
    last_end = 0
    for name in SECTIONS:
        opens = []
        for t in tags:
            if t[2] == name and not t[3]:
                opens.append(t)
        if not opens:
            sections[name], present[name], closed[name] = None, False, False
            problems.append(f"<{name}> is missing")
            continue
        if len(opens) > 1:
            problems.append(f"<{name}> is opened {len(opens)} times")
            in_order = False
        for start in opens:
            if start[0] >= cursor:
                break
        else:
            start = opens[0]
            in_order = False
            problems.append(f"<{name}> is out of order")
        body_start = start[1]
        end = end_after = size
        is_closed = False
        for t in tags:
            if t[0] < body_start:
                continue
            if t[2] == name:
                if t[3]:
                    end, end_after, is_closed = t[0], t[1], True
                    break
            elif not t[3]:
                end = end_after = t[0]
                break
        for f in finals:
            if body_start <= f[0] < end:
                end = end_after = f[0]
                is_closed = False
                break
        if not is_closed:
            problems.append(f"<{name}> is not closed")
        sections[name] = text[body_start:end].strip()
        present[name], closed[name] = True, is_closed
        if start[0] >= cursor:
            cursor = end_after
        if end_after > last_end:
            last_end = end_after
    return sections, present, closed, in_order, last_end


def _final_answer(text: str, finals: list[tuple[int, int]], last_end: int, any_section: bool,
                  problems: list[str]) -> tuple[str, tuple[int, int] | None]:
    """(final answer, its header or None): the first header after the sections; else any
    header; else the trailing text."""
    after = None
    for f in finals:
        if f[0] >= last_end:
            after = f
            break
    if after is None and not any_section and finals:
        after = finals[0]
    if after is not None:
        return text[after[1]:].strip(), after
    if finals:
        problems.append(f"'{FINAL_ANSWER_HEADER}' appears only inside a section")
    else:
        problems.append(f"no '{FINAL_ANSWER_HEADER}' header")
    return (text[last_end:].strip() if any_section else ""), None


def _steps(text: str, thinking: str | None, after: tuple[int, int] | None, problems: list[str]) -> list[dict]:
    """The step headers and bodies: in the thinking body, else in the text before the final
    answer."""
    # Splitting "\n" + that text at the step headers gives, per step, its number, the rest of the
    # header line, the title groups and the body up to the next header (_STEP_GROUPS items each).
    if thinking is not None:
        pieces = _STEP_NL.split("\n" + thinking)
    else:
        pieces = _STEP_NL.split("\n" + (text[: after[0]] if after is not None else text))
    steps = []
    found = []
    title_problems = []
    for k in range(1, len(pieces), _STEP_GROUPS):
        n = int(pieces[k])
        rest_line = pieces[k + 1]
        rest = pieces[k + _STEP_GROUPS - 1].strip()
        if 1 <= n <= len(STEPS) and pieces[k + n + 1] is not None:
            # The title starts the rest of the line; text after it starts the body.
            title_ok, title = True, STEPS[n - 1]
            tail = rest_line[len(pieces[k + n + 1]):]
            if tail:
                tail = tail.lstrip(" \t*_:-\u2013\u2014.").rstrip(" \t*_")
        else:
            title_ok = False
            title = tail = rest_line.strip(" \t*_")
            if 1 <= n <= len(STEPS):
                title_problems.append(f"Step {n} title is not '{STEPS[n - 1]}'")
        steps.append({"n": n, "title": title, "title_ok": title_ok, "body": (tail + "\n" + rest).strip() if tail else rest})
        found.append(n)
    if found != _ALL_STEPS:
        missing = [n for n in _ALL_STEPS if n not in found]
        if missing:
            problems.append("missing " + ", ".join(f"Step {n}" for n in missing))
        firsts = [n for n in dict.fromkeys(found) if 1 <= n <= len(STEPS)]
        if firsts != sorted(firsts):
            problems.append("steps out of order")
    problems.extend(title_problems)
    return steps


def _parts(sections: dict, problems: list[str]) -> tuple[dict, dict]:
    """(parts, part_order): each part's body (its first occurrence) and the parts as found, per
    section."""
    parts: dict[str, dict[str, str]] = {}
    part_order: dict[str, list[str]] = {}
    for name, names in SECTION_PARTS.items():
        body = sections[name]
        parts[name] = got = {}
        part_order[name] = order = []
        if body is None:
            continue
        nl = "\n" + body
        m = None
        for nxt in _PART_RES[name].finditer(nl):
            if m is not None:
                key = names[m.lastindex - 1]
                order.append(key)
                if key not in got:
                    got[key] = nl[m.end():nxt.start()].strip()
            m = nxt
        if m is not None:
            key = names[m.lastindex - 1]
            order.append(key)
            if key not in got:
                got[key] = nl[m.end():].strip()
        if len(got) != len(names):
            problems.append(f"<{name}> lacks " + ", ".join([p for p in names if p not in got]))
    return parts, part_order


def _step_text(steps: dict, n: int) -> str:
    for key in (n, str(n), STEPS[n - 1]):
        if key in steps:
            return str(steps[key] or "").strip()
    return ""


def render_chain(steps: dict, analysis: dict, insights: dict, final_answer: str) -> str:
    """The canonical chain text from its parts.

    ``steps`` is keyed by step number (1-5, int or str) or by step title; ``analysis`` and
    ``insights`` by part name. A part left out is rendered as an empty header, so the structure
    stays whole and the scorer reports the gap; an unknown key raises ``ValueError``.

    >>> print(render_chain({1: "Frustrated.", "Root Cause Analysis": "Billing."},
    ...                    {"Key Strengths": "Calm."}, {}, "CSAT: 2/5"))
    <thinking>
    Step 1 - Customer Sentiment Analysis
    Frustrated.
    Step 2 - Agent Performance Evaluation
    <BLANKLINE>
    Step 3 - Interaction Quality Assessment
    <BLANKLINE>
    Step 4 - Root Cause Analysis
    Billing.
    Step 5 - Business Impact Analysis
    <BLANKLINE>
    </thinking>
    <analysis>
    Quality Metrics:
    Key Strengths: Calm.
    Critical Issues:
    Patterns & Trends:
    </analysis>
    <insights>
    Immediate Coaching:
    Process Improvements:
    Business Actions:
    Strategic Insights:
    </insights>
    Final answer:
    CSAT: 2/5
    """
    valid_steps = set(range(1, len(STEPS) + 1)) | {str(n) for n in range(1, len(STEPS) + 1)} | set(STEPS)
    for key in steps:
        if key not in valid_steps:
            raise ValueError(f"unknown step {key!r}")
    for given, names in ((analysis, ANALYSIS_PARTS), (insights, INSIGHT_PARTS)):
        for key in given:
            if key not in names:
                raise ValueError(f"unknown part {key!r}; expected one of {names}")
    lines = ["<thinking>"]
    for n, title in enumerate(STEPS, 1):
        lines.append(f"Step {n} - {title}")
        lines.append(_step_text(steps, n))
    lines.append("</thinking>")
    for name, given, names in (("analysis", analysis, ANALYSIS_PARTS), ("insights", insights, INSIGHT_PARTS)):
        lines.append(f"<{name}>")
        for part in names:
            body = str(given.get(part) or "").strip()
            lines.append(f"{part}: {body}" if body else f"{part}:")
        lines.append(f"</{name}>")
    lines.append(FINAL_ANSWER_HEADER)
    lines.append(str(final_answer or "").strip())
    return "\n".join(lines)
