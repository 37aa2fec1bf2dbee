"""One ChatML example and the one reader of a ChatML object.

A ChatML line is ``{"messages": [{"role", "content"}, ...], "meta": {...}}``; some exporters put
``id``, ``task``, ``labels`` or ``split`` at the top level instead of in ``meta``. Every engine
part that reads such a line (the importer, training, inference, chain scoring) reads it with
``read_example``, so they agree on what a message is, where the meta comes from and which turn is
the reference: the last assistant turn.

The readers differ in what they need, and those differences are the reader's parameters: the
importer is ``strict`` (the turn order, no NUL, no blank transcript or answer, meta must be an
object and agree with the top level), training needs an ``assistant`` turn to learn from,
inference needs a ``user`` turn to answer and takes any role name (``roles=None``). A refused
object raises ``ChatMLError``: its text is the importer's reason, its ``rule`` names the rule
that failed, so a caller that words its messages its own way keeps its wording.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.data import tasks

ROLES = ("system", "user", "assistant")
META_KEYS = ("id", "task", "labels", "split")  # read from meta, else from the top level


class ChatMLError(ValueError):
    """An object that is not usable ChatML. ``str()`` is the reason; ``rule`` is one of
    not_object, messages_not_list, messages_empty, bad_message, turn_order, no_user, no_assistant,
    empty_transcript, empty_answer, bad_meta, meta_disagrees; ``index`` is the message's, for
    bad_message."""

    def __init__(self, reason: str, rule: str, index: int | None = None):
        super().__init__(reason)
        self.rule, self.index = rule, index


@dataclass
class Example:
    """A ChatML example: its messages as given and its meta (top-level keys merged in)."""

    messages: list[dict]
    meta: dict = field(default_factory=dict)

    @property
    def reference(self) -> str | None:
        """The reference answer: the last assistant turn (None without one)."""
        return reference_of(self.messages)

    @property
    def transcript(self) -> str | None:
        """The call transcript of the user turn the first answer replies to (None without one)."""
        user = None
        for m in self.messages:
            if m["role"] == "assistant":
                break
            if m["role"] == "user":
                user = m["content"]
        return tasks.split_user_content(user)[0] if user else None


def reference_of(messages: list[dict]) -> str | None:
    """The last assistant turn's text: the reference answer of a ChatML example.

    >>> reference_of([{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"},
    ...               {"role": "user", "content": "u2"}, {"role": "assistant", "content": "b"}])
    'b'
    """
    answers = [m.get("content") for m in messages if m.get("role") == "assistant"]
    return answers[-1] if answers else None


def read_example(obj, *, roles: tuple | None = ROLES, need: str = "assistant", strict: bool = False) -> Example:
    """Read one decoded JSON value as an ``Example``; raises ``ChatMLError`` with the reason.

    ``roles``: the role names accepted (None: any text). ``need``: the role that must have a turn
    (``assistant`` to learn from or score, ``user`` to answer). ``strict``: the importer's rules
    on top (see the module docstring).

    >>> read_example({"messages": [{"role": "user", "content": "Customer: hi"},
    ...                            {"role": "assistant", "content": "CSAT: 4/5"}], "id": 7}).meta
    {'id': 7}
    >>> read_example({"messages": [{"role": "bot", "content": "x"}]})
    Traceback (most recent call last):
    ...
    engine.data.example.ChatMLError: messages[0]: unknown role 'bot' (expected system, user or assistant)
    >>> read_example({"messages": [{"role": "user", "content": "hi"}]}).messages
    Traceback (most recent call last):
    ...
    engine.data.example.ChatMLError: no assistant turn
    """
    if not isinstance(obj, dict):
        raise ChatMLError(f"not a JSON object ({type(obj).__name__})", "not_object")
    messages = obj.get("messages")
    if not isinstance(messages, list):
        raise ChatMLError("messages is missing or not a non-empty list", "messages_not_list")
    if not messages:
        raise ChatMLError("messages is missing or not a non-empty list", "messages_empty")
    for i, m in enumerate(messages):
        problem = _message_problem(i, m, roles, strict)
        if problem:
            raise ChatMLError(problem, "bad_message", i)
    if strict:
        _check_turns(messages)
    elif not any(m["role"] == need for m in messages):
        raise ChatMLError(f"no {need} turn", f"no_{need}")
    return Example(messages, read_meta(obj, strict))


def _message_problem(i: int, m, roles: tuple | None, strict: bool) -> str | None:
    if not isinstance(m, dict) or "role" not in m or "content" not in m:
        return f"messages[{i}] is not an object with role and content"
    if not isinstance(m["role"], str) or (roles is not None and m["role"] not in roles):
        return f"messages[{i}]: unknown role {quote(m['role'])} (expected system, user or assistant)"
    if not isinstance(m["content"], str):
        return f"messages[{i}].content is not text ({type(m['content']).__name__})"
    if strict and "\x00" in m["content"]:
        return f"messages[{i}].content contains a NUL character"
    return None


def _check_turns(messages: list) -> None:
    """Optional system, then user and assistant alternating, ending with the assistant's answer;
    neither the transcript nor the answer blank."""
    start = 1 if messages[0]["role"] == "system" else 0
    for i in range(start, len(messages)):
        want = "user" if (i - start) % 2 == 0 else "assistant"
        if messages[i]["role"] != want:
            raise ChatMLError(f"messages[{i}]: expected {want}, got {messages[i]['role']} (turn order: optional "
                              "system, then user and assistant alternating, ending with assistant)", "turn_order")
    if len(messages) == start:
        raise ChatMLError("no user turn", "no_user")
    if messages[-1]["role"] != "assistant":
        raise ChatMLError(f"messages[{len(messages) - 1}]: the last turn is {messages[-1]['role']}, "
                          "not the assistant's answer", "turn_order")
    transcript, _ = tasks.split_user_content(messages[start]["content"])
    if not transcript.strip():
        raise ChatMLError("empty transcript", "empty_transcript")
    if not messages[-1]["content"].strip():
        raise ChatMLError(f"messages[{len(messages) - 1}]: empty answer (the assistant turn is blank)", "empty_answer")


def read_meta(obj: dict, strict: bool = False) -> dict:
    """``meta`` with the top-level keys merged in. Lenient: a meta that is not an object counts as
    none and meta wins over the top level. Strict: it is refused, and so is a disagreement."""
    meta = obj.get("meta", {})
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        if strict:
            raise ChatMLError(f"meta is not an object ({type(meta).__name__})", "bad_meta")
        meta = {}
    meta = dict(meta)
    for key in META_KEYS:
        if key in obj and (strict or key not in meta):
            if key in meta and meta[key] != obj[key]:
                raise ChatMLError(f"top-level {key} {quote(obj[key])} and meta.{key} {quote(meta[key])} disagree",
                                  "meta_disagrees")
            meta[key] = obj[key]
    return meta


def quote(value, limit: int = 60) -> str:
    """A value quoted for a reason: repr (so control characters and surrogates are escaped), capped."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
