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

_TAG_RE = re.compile(r"<\s*(/?)\s*(thinking|analysis|insights)\s*>", re.I)
# Line-start patterns, tried (with ``match``) only on lines that contain their keyword: the
# regex engine would otherwise try every position of the text, which is ten times slower.
_FINAL_RE = re.compile(r"[ \t>#*_]*final[ \t]+answer[ \t*_]*:[ \t*_]*", re.I)
_STEP_RE = re.compile(r"[ \t>#*_\-]*step[ \t]*(\d{1,2})\b[ \t]*[-\u2013\u2014:.)]?[ \t*_]*([^\n]*)", re.I)
_WORDS_RE = re.compile(r"[a-z0-9]+")

# Speed: case-insensitive regexes cost several times more per character than case-sensitive
# ones, and ``str.lower`` costs eight times more on text with any non-ASCII character (curly
# quotes, dashes) than on ASCII. So the parser matches lower-case patterns *without* re.I
# against a lower-cased copy of the text, lowered through UTF-8 bytes (ASCII letters only, the
# copy stays aligned with the text). That is exactly re.I on the text unless the text holds one
# of the four characters whose case folding reaches an ASCII letter; for those (rare) texts the
# case-insensitive patterns run on the text itself, as they always did.
_FOLDS_TO_ASCII = ("\u0130", "\u0131", "\u017f", "\u212a")   # İ ı ſ K (Kelvin)
_FOLDS_TO_ASCII_UTF8 = tuple(c.encode() for c in _FOLDS_TO_ASCII)


def _fold(text: str) -> str | None:
    """``text`` with its ASCII letters lower-cased, same length; ``None`` when a character of
    ``_FOLDS_TO_ASCII`` (or a lone surrogate) makes that differ from case-insensitive matching.

    >>> _fold("Step 3 \u2013 Root CAUSE"), _fold("Kelvin \u212a")
    ('step 3 \u2013 root cause', None)
    """
    if text.isascii():
        return text.lower()
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:   # lone surrogates
        return None
    for c in _FOLDS_TO_ASCII_UTF8:
        if c in raw:
            return None
    return raw.lower().decode("utf-8")


def _lower_pattern(pattern: re.Pattern) -> re.Pattern:
    """The same pattern without re.I, for lower-cased subjects (its literals are lower case)."""
    return re.compile(pattern.pattern, pattern.flags & ~re.I)


_TAG_LOW = _lower_pattern(_TAG_RE)
_FINAL_LOW = _lower_pattern(_FINAL_RE)
_STEP_LOW = _lower_pattern(_STEP_RE)


def _part_regex(names: tuple[str, ...], flags: int = re.I) -> re.Pattern:
    """A line-start header for any of ``names``; group i+1 matches ``names[i]``."""
    alts = []
    for name in names:
        words = [re.escape(w) for w in name.lower().replace("&", " & ").split()]
        alts.append("(" + r"[ \t]+".join(w if w != "\\&" else r"(?:&|and)" for w in words) + ")")
    return re.compile(
        r"[ \t>#*_\-\d.)]*(?:" + "|".join(alts) + r")[ \t*_]*(?::|-|\u2013|\u2014|$)[ \t*_]*", flags | re.M
    )


_PART_RES = {name: _part_regex(parts) for name, parts in SECTION_PARTS.items()}
_PART_LOW = {name: _part_regex(parts, 0) for name, parts in SECTION_PARTS.items()}
_PART_NEEDLES = {name: tuple(p.split()[0].lower() for p in parts) for name, parts in SECTION_PARTS.items()}


def _line_matches(text: str, needles: tuple[str, ...], pattern: re.Pattern, low: str | None = None) -> list[re.Match]:
    """Matches of ``pattern`` anchored at the start of each line that contains a needle, in order;
    ``low`` is ``text.lower()`` when the caller has it."""
    if low is None or len(low) != len(text):
        low = text.lower()
    if len(needles) == 1:
        # One needle: its lines come in order already, each line once.
        needle = needles[0]
        out = []
        i = low.find(needle)
        while i != -1:
            m = pattern.match(text, low.rfind("\n", 0, i) + 1)
            if m:
                out.append(m)
            nl = low.find("\n", i)
            if nl == -1:
                break
            i = low.find(needle, nl)
        return out
    found: dict[int, re.Match] = {}
    for needle in needles:
        i = low.find(needle)
        while i != -1:
            start = low.rfind("\n", 0, i) + 1
            if start not in found:
                m = pattern.match(text, start)
                if m:
                    found[start] = m
            nl = low.find("\n", i)
            if nl == -1:
                break
            i = low.find(needle, nl)
    return [found[k] for k in sorted(found)]


_STEP_TITLE_RES = [
    re.compile(r"[ \t*_]*" + r"[\W_]+".join(re.escape(w) for w in _WORDS_RE.findall(t.lower())) + r"\b", re.I)
    for t in STEPS
]
_STEP_TITLE_LOW = [_lower_pattern(r) for r in _STEP_TITLE_RES]


def _title_split(n: int, rest: str, low_rest: str | None = None) -> tuple[bool, str]:
    """Whether ``rest`` (the header line after ``Step n -``) starts with step n's title, and the
    text after the title on that line; ``low_rest`` is ``_fold(rest)`` when the caller has it.

    >>> _title_split(1, "Customer  sentiment analysis** - angry")
    (True, 'angry')
    >>> _title_split(2, "Mood")
    (False, 'Mood')
    """
    if not 1 <= n <= len(STEPS):
        m = None
    elif low_rest is not None:
        m = _STEP_TITLE_LOW[n - 1].match(low_rest)
    else:
        m = _STEP_TITLE_RES[n - 1].match(rest)
    if not m:
        return False, rest.strip(" \t*_")
    return True, rest[m.end():].lstrip(" \t*_:-\u2013\u2014.").rstrip(" \t*_")


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
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    problems: list[str] = []
    low = _fold(text)
    fast = low is not None
    if fast:
        # Patterns without re.I run on ``low``; spans are the same in ``text``.
        subj, tag_re, final_re, step_re, part_res = low, _TAG_LOW, _FINAL_LOW, _STEP_LOW, _PART_LOW
    else:
        low = text.lower()   # may differ in length ("İ"): then only slices of it are not used
        subj, tag_re, final_re, step_re, part_res = text, _TAG_RE, _FINAL_RE, _STEP_RE, _PART_RES
    aligned = len(low) == len(text)
    # Every tag starts with "<": try the tag pattern there only (str.find runs at C speed, a
    # regex scan of the whole text tries the pattern at each character).
    tags = []
    i = subj.find("<")
    while i != -1:
        m = tag_re.match(subj, i)
        if m:
            tags.append((i, m.end(), m.group(2).lower(), bool(m.group(1))))
            i = subj.find("<", m.end())
        else:
            i = subj.find("<", i + 1)
    finals = [(m.start(), m.end()) for m in _line_matches(subj, ("final",), final_re, low)]
    low_sections: dict[str, str] = {}

    sections: dict[str, str | None] = {}
    present: dict[str, bool] = {}
    closed: dict[str, bool] = {}
    spans: dict[str, tuple[int, int]] = {}
    in_order = True
    cursor = 0
    last_end = 0
    for name in SECTIONS:
        opens = [t for t in tags if t[2] == name and not t[3]]
        if len(opens) > 1:
            problems.append(f"<{name}> is opened {len(opens)} times")
            in_order = False
        start = next((t for t in opens if t[0] >= cursor), None)
        if start is None and opens:
            start = opens[0]
            in_order = False
            problems.append(f"<{name}> is out of order")
        if start is None:
            sections[name], present[name], closed[name] = None, False, False
            problems.append(f"<{name}> is missing")
            continue
        body_start = start[1]
        end, end_after, is_closed = len(text), len(text), False
        for t in tags:
            if t[0] < body_start:
                continue
            if t[2] == name and t[3]:
                end, end_after, is_closed = t[0], t[1], True
                break
            if t[2] != name and not t[3]:
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
        if aligned:
            low_sections[name] = low[body_start:end].strip()
        present[name], closed[name] = True, is_closed
        spans[name] = (start[0], end_after)
        if start[0] >= cursor:
            cursor = end_after
        last_end = max(last_end, end_after)

    # Final answer: first header after the sections; else any header; else the trailing text.
    final_answer, has_final = "", False
    after = next((f for f in finals if f[0] >= last_end), None)
    if after is None and not spans and finals:
        after = finals[0]
    if after is not None:
        has_final = True
        final_answer = text[after[1]:].strip()
    else:
        if finals:
            problems.append(f"'{FINAL_ANSWER_HEADER}' appears only inside a section")
        else:
            problems.append(f"no '{FINAL_ANSWER_HEADER}' header")
        final_answer = text[last_end:].strip() if spans else ""

    # Steps: in the thinking body, else in the text before the final answer.
    if sections.get("thinking") is not None:
        step_text, step_low = sections["thinking"], low_sections.get("thinking")
    else:
        step_text = text[: after[0]] if after is not None else text
        step_low = low[: len(step_text)] if aligned else None
    steps = []
    if fast:
        step_subj = step_low
        matches = _line_matches(step_low, ("step",), step_re, step_low)
    else:
        step_subj = step_text
        matches = _line_matches(step_text, ("step",), step_re, step_low)
    for i, m in enumerate(matches):
        n = int(m.group(1))
        s2, e2 = m.span(2)
        rest_line = step_text[s2:e2]
        title_ok, tail = _title_split(n, rest_line, step_subj[s2:e2] if fast else None)
        body_end = matches[i + 1].start() if i + 1 < len(matches) else len(step_text)
        rest = step_text[m.end():body_end].strip()
        body = (tail + "\n" + rest).strip() if tail else rest
        title = STEPS[n - 1] if title_ok else rest_line.strip(" \t*_")
        steps.append({"n": n, "title": title, "title_ok": title_ok, "body": body})
    found = [s["n"] for s in steps]
    missing = [n for n in range(1, len(STEPS) + 1) if n not in found]
    if missing:
        problems.append("missing " + ", ".join(f"Step {n}" for n in missing))
    firsts = [n for n in dict.fromkeys(found) if 1 <= n <= len(STEPS)]
    if firsts != sorted(firsts):
        problems.append("steps out of order")
    for s in steps:
        if not s["title_ok"] and 1 <= s["n"] <= len(STEPS):
            problems.append(f"Step {s['n']} title is not '{STEPS[s['n'] - 1]}'")

    parts: dict[str, dict[str, str]] = {}
    part_order: dict[str, list[str]] = {}
    for name, names in SECTION_PARTS.items():
        body = sections.get(name)
        parts[name], part_order[name] = {}, []
        if body is None:
            continue
        body_low = low_sections.get(name)
        pm = _line_matches(body_low if fast else body, _PART_NEEDLES[name], part_res[name], body_low)
        for i, m in enumerate(pm):
            key = names[m.lastindex - 1]
            end = pm[i + 1].start() if i + 1 < len(pm) else len(body)
            part_order[name].append(key)
            if key not in parts[name]:
                parts[name][key] = body[m.end():end].strip()
        lost = [p for p in names if p not in parts[name]]
        if lost:
            problems.append(f"<{name}> lacks " + ", ".join(lost))

    return {
        "sections": sections,
        "present": present,
        "closed": closed,
        "in_order": in_order,
        "steps": steps,
        "parts": parts,
        "part_order": part_order,
        "final_answer": final_answer,
        "has_final_header": has_final,
        "problems": problems,
    }


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
