"""The six contact-center tasks: label spaces, instructions, reference-answer lines and their parser.

One place defines what a label is, so the generator, the importer, the quality scorer and the
evaluator agree. Labels are a flat dict (``{"csat": 4, "churn": "low", ...}``); a task owns one
or two of its keys (``TASK_KEYS``). Every reference answer ends with one *answer line* per task
(``CSAT: 4/5``); ``parse_answer`` finds the last such line in free text, so a model's answer is
checked the same way whether it is a bare label or the end of a long reasoning chain.
"""

from __future__ import annotations

import re

TASKS = ("csat", "quality", "churn", "sentiment", "root_cause", "coaching")

TASK_TITLES = {
    "csat": "CSAT prediction",
    "quality": "Call quality (QA) scoring",
    "churn": "Churn prediction",
    "sentiment": "Customer sentiment",
    "root_cause": "Root cause / contact reason",
    "coaching": "Agent coaching",
}

CHURN_LEVELS = ("low", "medium", "high")
SENTIMENTS = ("negative", "neutral", "positive")
TRAJECTORIES = ("worsening", "stable", "improving")
ROOT_CAUSES = (
    "billing_dispute",
    "technical_issue",
    "account_access",
    "service_outage",
    "cancellation_request",
    "delivery_problem",
    "refund_request",
    "plan_change",
    "product_inquiry",
    "fraud_concern",
)
COACHING_BEHAVIOURS = (
    "empathy",
    "active_listening",
    "identity_verification",
    "hold_etiquette",
    "ownership",
    "product_knowledge",
    "de_escalation",
    "call_closing",
    "transfer_handling",
    "compliance",
)

# Which label keys each task predicts.
TASK_KEYS = {
    "csat": ("csat",),
    "quality": ("quality",),
    "churn": ("churn",),
    "sentiment": ("sentiment", "sentiment_trajectory"),
    "root_cause": ("root_cause",),
    "coaching": ("coaching",),
}

SYSTEM_PROMPT = (
    "You are a contact-center quality analyst. You read call transcripts between an agent and a "
    "customer and give precise, evidence-based assessments."
)

INSTRUCTIONS = {
    "csat": "Predict the customer's satisfaction (CSAT) on a 1-5 scale. End with the line `CSAT: <1-5>/5`.",
    "quality": (
        "Score the agent's call quality (QA score, 0-100) against the QA rubric: greeting, verification, "
        "empathy, hold and transfer etiquette, resolution and closing. End with the line `QA score: <0-100>/100`."
    ),
    "churn": "Assess the risk that this customer churns. End with the line `Churn risk: <low|medium|high>`.",
    "sentiment": (
        "Classify the customer's overall sentiment and how it changed during the call. End with the line "
        "`Customer sentiment: <negative|neutral|positive>; trajectory: <worsening|stable|improving>`."
    ),
    "root_cause": (
        "Identify the root cause / contact reason, one of: " + ", ".join(ROOT_CAUSES) + ". End with the line "
        "`Root cause: <reason>`."
    ),
    "coaching": (
        "List the agent behaviours to coach, from: " + ", ".join(COACHING_BEHAVIOURS) + " (or none). End with the "
        "line `Coaching focus: <behaviour, behaviour, ...|none>`."
    ),
}


def humanize(value: str) -> str:
    """``billing_dispute`` -> ``billing dispute``.

    >>> humanize("identity_verification")
    'identity verification'
    """
    return str(value).replace("_", " ")


def answer_line(task: str, labels: dict) -> str:
    """The canonical last line of a reference answer for ``task``.

    >>> answer_line("csat", {"csat": 4})
    'CSAT: 4/5'
    >>> answer_line("sentiment", {"sentiment": "negative", "sentiment_trajectory": "improving"})
    'Customer sentiment: negative; trajectory: improving'
    >>> answer_line("coaching", {"coaching": []})
    'Coaching focus: none'
    """
    if task == "csat":
        return f"CSAT: {int(labels['csat'])}/5"
    if task == "quality":
        return f"QA score: {int(labels['quality'])}/100"
    if task == "churn":
        return f"Churn risk: {labels['churn']}"
    if task == "sentiment":
        return f"Customer sentiment: {labels['sentiment']}; trajectory: {labels['sentiment_trajectory']}"
    if task == "root_cause":
        return f"Root cause: {labels['root_cause']}"
    if task == "coaching":
        items = labels["coaching"]
        return "Coaching focus: " + (", ".join(items) if items else "none")
    raise ValueError(f"unknown task {task!r}")


def _norm_word(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().strip("`*.'\"").lower())


def _choice(text: str, choices: tuple[str, ...]) -> str | None:
    word = _norm_word(text)
    if word in choices:
        return word
    # "Billing dispute", "billing-dispute", "billing dispute (customer disputes a charge)"
    for choice in sorted(choices, key=len, reverse=True):
        if word.startswith(choice):
            return choice
    return None


# Each pattern finds the task's answer line; the last match in the text wins, because a
# reasoning chain may mention a score in passing before it gives its final answer.
_PATTERNS = {
    "csat": re.compile(r"\bCSAT(?:\s+score)?\s*[:=\-]\s*\**\s*([1-5])(?:\s*(?:/|out of)\s*5)?\b", re.I),
    "quality": re.compile(r"\b(?:QA|quality)(?:\s+score)?\s*[:=\-]\s*\**\s*(\d{1,3})(?:\s*(?:/|out of)\s*100)?\b", re.I),
    "churn": re.compile(r"\bchurn(?:\s+risk)?\s*[:=\-]\s*\**\s*(low|medium|high)\b", re.I),
    "sentiment": re.compile(
        r"\b(?:customer\s+)?sentiment\s*[:=\-]\s*\**\s*(negative|neutral|positive)\b"
        r"(?:[^\n]*?\btrajectory\s*[:=\-]?\s*\**\s*(worsening|stable|improving)\b)?",
        re.I,
    ),
    "root_cause": re.compile(r"\b(?:root\s+cause|contact\s+reason)\s*[:=\-]\s*\**\s*([A-Za-z][A-Za-z _\-]*)", re.I),
    "coaching": re.compile(r"\bcoaching(?:\s+focus)?\s*[:=\-]\s*\**\s*([^\n]*)", re.I),
}


# Markup small models put around answer lines; normalise_answer takes it out before parsing.
_BLANKS = re.compile(r"[^\S\n]+")          # a run of blanks other than newlines
_LINE_BREAKS = re.compile(r" ?\n[\s]*")     # (after _BLANKS) a run of blanks holding a newline
_EMPHASIS = re.compile(r"\*\*|__|`")
_SCALE_NOTE = re.compile(r"[ \t]*\(\s*(?:\d+\s*[-\u2013/]\s*\d+|low\s*/\s*medium\s*/\s*high)\s*\)[ \t]*(?=[:=])", re.I)
_COACH_BULLETS = re.compile(
    r"(coaching(?:[ \t]+focus)?[ \t]*[:=\-][ \t]*)\n((?:[ \t]*(?:[-*\u2022]|\d+[.)])[ \t]*[^\n]+(?:\n|$))+)", re.I)
_COACH_NONE = re.compile(r"(coaching(?:[ \t]+focus)?[ \t]*[:=\-][ \t]*)(?:none|no[ \t]+coaching)\b[^\n]*", re.I)
# The instruction's own placeholders echoed back: "CSAT: 1-5", "QA score: <0-100>/100",
# "Churn risk: low|medium|high". They are not answers, so they must not parse as 1, 0 or low.
_RANGE_ECHO = re.compile(
    r"\b((?:CSAT|QA|quality)(?:[ \t]+score)?[ \t]*[:=\-][ \t]*)<?[ \t]*(?:1[ \t]*[-\u2013][ \t]*5|0[ \t]*[-\u2013][ \t]*100)"
    r"[ \t]*>?", re.I)
_CHOICE_ECHO = re.compile(r"([:=][ \t]*)<?[A-Za-z_]+(?:[ \t]*\|[ \t]*[A-Za-z_, ]+)+>?")


def normalise_answer(text: str) -> str:
    """The text with the markup small models add around answer lines taken out.

    >>> normalise_answer("**Churn risk**: high")
    'Churn risk: high'
    >>> normalise_answer("CSAT (1-5): 2")
    'CSAT: 2'
    >>> normalise_answer("Coaching focus:\\n- empathy\\n- hold etiquette\\n")
    'Coaching focus: empathy, hold etiquette\\n'
    >>> normalise_answer("Coaching focus: none needed.")
    'Coaching focus: none'
    >>> normalise_answer("CSAT: 1-5"), normalise_answer("Churn risk: low|medium|high")
    ('CSAT: ?', 'Churn risk: ?')
    """
    # Runs of blanks first become one blank (a newline where the run holds one). Why: the
    # patterns below have neighbouring optional blanks (r"\s*\**\s*"), which backtrack over a
    # long run in quadratic time: "CSAT:" and 20,000 spaces took 15 s, 40,000 took 75 s.
    text = _BLANKS.sub(" ", text)
    text = _LINE_BREAKS.sub("\n", text)
    text = _EMPHASIS.sub("", text)
    text = _SCALE_NOTE.sub("", text)
    text = _RANGE_ECHO.sub(lambda m: m.group(1) + "?", text)
    text = _CHOICE_ECHO.sub(lambda m: m.group(1) + "?", text)

    def bullets(m: re.Match) -> str:
        items = [re.sub(r"^[ \t]*(?:[-*\u2022]|\d+[.)])[ \t]*", "", line).strip()
                 for line in m.group(2).splitlines() if line.strip()]
        return m.group(1).rstrip() + " " + ", ".join(items) + "\n"

    text = _COACH_BULLETS.sub(bullets, text)
    return _COACH_NONE.sub(lambda m: m.group(1) + "none", text)


def parse_answer(task: str, text: str) -> dict | None:
    """Parse the task's labels from free text; ``None`` when no answer can be found.

    >>> parse_answer("csat", "Because of the hold... CSAT: 2/5")
    {'csat': 2}
    >>> parse_answer("quality", "**QA score:** 87/100")
    {'quality': 87}
    >>> parse_answer("churn", "churn risk - HIGH.")
    {'churn': 'high'}
    >>> parse_answer("sentiment", "Customer sentiment: negative; trajectory: improving")
    {'sentiment': 'negative', 'sentiment_trajectory': 'improving'}
    >>> parse_answer("root_cause", "Root cause: Billing dispute")
    {'root_cause': 'billing_dispute'}
    >>> parse_answer("coaching", "Coaching focus: empathy, hold etiquette")
    {'coaching': ['empathy', 'hold_etiquette']}
    >>> parse_answer("coaching", "Coaching focus: none")
    {'coaching': []}
    >>> parse_answer("csat", "the customer seemed happy") is None
    True
    >>> parse_answer("churn", "**Churn risk**: high"), parse_answer("csat", "CSAT (1-5): 2")
    ({'churn': 'high'}, {'csat': 2})
    >>> parse_answer("csat", "CSAT: 1-5") is None  # the instruction's scale echoed back is no answer
    True
    """
    if task not in _PATTERNS or not isinstance(text, str):
        return None
    text = normalise_answer(text)
    matches = list(_PATTERNS[task].finditer(text))
    if task == "quality":
        matches = [m for m in matches if int(m.group(1)) <= 100]
    if task == "root_cause":
        matches = [m for m in matches if _choice(m.group(1), ROOT_CAUSES)]
    if not matches:
        return None
    m = matches[-1]
    if task == "csat":
        return {"csat": int(m.group(1))}
    if task == "quality":
        return {"quality": int(m.group(1))}
    if task == "churn":
        return {"churn": m.group(1).lower()}
    if task == "sentiment":
        out = {"sentiment": m.group(1).lower()}
        if m.group(2):
            out["sentiment_trajectory"] = m.group(2).lower()
        return out
    if task == "root_cause":
        return {"root_cause": _choice(m.group(1), ROOT_CAUSES)}
    if task == "coaching":
        raw = m.group(1).strip().strip("`*. ")
        if _norm_word(raw) in ("none", "nothing", "no_coaching_needed", "n/a"):
            return {"coaching": []}
        items = []
        for part in re.split(r"[,;/]|\band\b", raw):
            choice = _choice(part, COACHING_BEHAVIOURS)
            if choice and choice not in items:
                items.append(choice)
        return {"coaching": items} if items else None
    return None


def validate_labels(labels: dict) -> list[str]:
    """Problems with known label keys (unknown keys are the user's own and are kept).

    >>> validate_labels({"csat": 6})
    ['label csat=6 out of range 1-5']
    >>> validate_labels({"churn": "low", "coaching": ["empathy"], "my_tag": "x"})
    []
    """
    errors = []

    def bad(key, value, allowed):
        errors.append(f"label {key}={value!r} out of range {allowed}" if not isinstance(value, int) or isinstance(value, bool)
                      else f"label {key}={value} out of range {allowed}")

    for key, value in labels.items():
        if key == "csat":
            if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5):
                bad(key, value, "1-5")
        elif key == "quality":
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 100):
                bad(key, value, "0-100")
        elif key == "churn":
            if value not in CHURN_LEVELS:
                bad(key, value, "/".join(CHURN_LEVELS))
        elif key == "sentiment":
            if value not in SENTIMENTS:
                bad(key, value, "/".join(SENTIMENTS))
        elif key == "sentiment_trajectory":
            if value not in TRAJECTORIES:
                bad(key, value, "/".join(TRAJECTORIES))
        elif key == "root_cause":
            if value not in ROOT_CAUSES:
                bad(key, value, "the root-cause list")
        elif key == "coaching":
            if not (isinstance(value, list) and all(v in COACHING_BEHAVIOURS for v in value)):
                bad(key, value, "the coaching list")
    return errors


def agrees(task: str, predicted: dict | None, labels: dict) -> bool | None:
    """Whether a parsed answer matches the reference labels; ``None`` when there is no reference.

    QA scores agree within 10 points; coaching agrees when the sets are equal.

    >>> agrees("csat", {"csat": 4}, {"csat": 4})
    True
    >>> agrees("quality", {"quality": 75}, {"quality": 82})
    True
    >>> agrees("churn", None, {"churn": "low"})
    False
    >>> agrees("csat", {"csat": 4}, {}) is None
    True
    """
    keys = TASK_KEYS.get(task)
    if not keys or any(k not in labels for k in keys):
        return None
    if not predicted:
        return False
    for key in keys:
        if key not in predicted:
            return False
        want, got = labels[key], predicted[key]
        if key == "quality":
            if abs(float(want) - float(got)) > 10:
                return False
        elif key == "coaching":
            if set(want) != set(got):
                return False
        elif want != got:
            return False
    return True


TRANSCRIPT_HEADER = "Call transcript:"
TASK_HEADER = "Task:"


def user_content(transcript: str, task: str) -> str:
    """The user turn of an example: the transcript, then the task's instruction.

    >>> print(user_content("Agent: Hello.\\nCustomer: Hi.", "churn"))
    Call transcript:
    <BLANKLINE>
    Agent: Hello.
    Customer: Hi.
    <BLANKLINE>
    Task: Assess the risk that this customer churns. End with the line `Churn risk: <low|medium|high>`.
    """
    return f"{TRANSCRIPT_HEADER}\n\n{transcript}\n\n{TASK_HEADER} {INSTRUCTIONS[task]}"


def split_user_content(content: str) -> tuple[str, str]:
    """(transcript, instruction) from a user turn; imported data in another layout is all transcript.

    >>> split_user_content(user_content("Agent: Hi.", "csat"))[0]
    'Agent: Hi.'
    >>> split_user_content("Customer: my bill is wrong")
    ('Customer: my bill is wrong', '')
    """
    if content.startswith(TRANSCRIPT_HEADER):
        body = content[len(TRANSCRIPT_HEADER):]
        cut = body.rfind("\n\n" + TASK_HEADER + " ")
        if cut != -1:
            return body[:cut].strip("\n"), body[cut + len(TASK_HEADER) + 3:].strip()
        return body.strip("\n"), ""
    return content, ""
