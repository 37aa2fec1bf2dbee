"""One chat-completions request, parsed and validated on its own: ``parse_request``.

Anything a client can send ends here as a valid request or as a ``RequestError`` (400) whose
``param`` names the field, so that what one request holds (a lone surrogate, a number beyond a
double, an absurd ``max_tokens``) never reaches a batch shared with others.
"""

import json
import math
import re
import sys


class RequestError(Exception):
    """An error answered to one request in the OpenAI shape."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# What one request may hold. Each limit stops something a client could otherwise use to make the
# model, the tokenizer or Python itself fail (a 5xx for the whole batch) or hang the batcher.
MAX_STOP_CHARS = 100        # transformers' stop-string matcher costs ~vocabulary x length per new stop string
MIN_TEMPERATURE = 1e-5      # below this, logits / temperature overflows float32 and sampling raises: greedy instead
SEED_RANGE = (-2 ** 63, 2 ** 63 - 1)  # OpenAI's seed is an int64; torch.manual_seed refuses far larger values
_MAX_INT_DIGITS = 400       # longer integer literals are beyond any double (and Python refuses >4300 digits)
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _short(value, limit: int = 80) -> str:
    """A value quoted in an error message, cut to ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


class _BadNumber:
    """A JSON number no field can hold (NaN, Infinity, beyond a double's range), kept as a marker
    while parsing so that the error can name the field it is in."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def _parse_int(text: str):
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        return _BadNumber(f"an integer of {len(text.lstrip('-'))} digits")
    value = int(text)
    return _BadNumber(_short(text, 40)) if abs(value) > sys.float_info.max else value


def _parse_float(text: str):
    value = float(text)
    return value if math.isfinite(value) else _BadNumber(_short(text, 40))


def _path(parent: str, key: str) -> str:
    if _NAME.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{json.dumps(_short(key, 40))}]"  # json.dumps escapes what is not printable


def _first_bad_value(obj) -> tuple[str, str] | None:
    """(path, reason) of the first value in the body that no field may hold: a number that is NaN,
    infinite or beyond a double's range, or a string or key that is not valid Unicode (a lone
    surrogate such as ``"\\ud83d"``, which JSON can spell but no tokenizer can encode). A loop, not
    recursion: the body may be nested as deep as the JSON parser allows."""
    stack = [("", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _BadNumber):
            return path, f"{value.text} is not a number this server accepts (NaN, Infinity and numbers beyond " \
                         f"a double's range are refused)"
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return path, "is not valid Unicode: it contains a lone surrogate (an unpaired \\ud800-\\udfff escape)"
        elif isinstance(value, dict):
            children = []
            for key, child in value.items():
                if _SURROGATE.search(key):
                    return _path(path, key), "the key is not valid Unicode: it contains a lone surrogate"
                children.append((_path(path, key), child))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", value[i]) for i in range(len(value) - 1, -1, -1))
    return None


def _content_text(content, where: str) -> str:
    """OpenAI message content: a string, or a list of parts of which the text ones are used."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RequestError(400, f"{where} must be a string or a list of text parts", param=where,
                           code="invalid_value")
    parts = []
    for j, part in enumerate(content):
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        else:
            raise RequestError(400, f"{where}[{j}]: only text content parts are supported "
                               "({\"type\": \"text\", \"text\": \"...\"})", param=f"{where}[{j}]", code="invalid_value")
    return "".join(parts)


def _bad(param: str, message: str):
    raise RequestError(400, message, param=param, code="invalid_value")


def _load_json(body: bytes) -> dict:
    try:
        obj = json.loads(body, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_BadNumber)
    except RecursionError:
        raise RequestError(400, "We could not parse the JSON body of your request: it is nested too deeply.",
                           code="invalid_json") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise RequestError(400, f"We could not parse the JSON body of your request ({_short(exc, 200)}).",
                           code="invalid_json") from None
    if not isinstance(obj, dict):
        raise RequestError(400, "the request body must be a JSON object", code="invalid_json")
    return obj


def _messages(obj: dict) -> list[dict]:
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        _bad("messages", "'messages' must be a non-empty list")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            _bad(f"messages[{i}]", f"messages[{i}] must be an object with a 'role'")
        role = "system" if m["role"] == "developer" else m["role"]
        if role not in ("system", "user", "assistant"):
            _bad(f"messages[{i}].role", f"messages[{i}].role {_short(repr(m['role']))} is not supported "
                 "(system, developer, user, assistant)")
        clean.append({"role": role, "content": _content_text(m.get("content"), f"messages[{i}].content")})
    return clean


def _max_tokens(obj: dict, cfg) -> int:
    name = "max_completion_tokens" if obj.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = obj.get(name)
    if max_tokens is None:
        max_tokens = cfg.default_max_tokens
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        _bad(name, f"'{name}' must be an integer")
    if max_tokens < 1:
        _bad(name, f"{name} must be at least 1, got {_short(max_tokens)}")
    if max_tokens > cfg.max_tokens_limit:
        _bad(name, f"{name} is too large: {_short(max_tokens)}. This server allows at most "
             f"{cfg.max_tokens_limit} completion tokens.")
    return max_tokens


def _number(obj: dict, name: str, default: float, lo: float, hi: float, lo_open: bool = False) -> float:
    value = obj.get(name)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        _bad(name, f"'{name}' must be a number")
    if not (lo < value <= hi if lo_open else lo <= value <= hi):
        _bad(name, f"'{name}' must be {'>' if lo_open else '>='} {lo} and <= {hi}, got {_short(value)}")
    return float(value)


def _seed(obj: dict) -> int | None:
    seed = obj.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            _bad("seed", "'seed' must be an integer")
        if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
            _bad("seed", f"'seed' must be a 64-bit integer ({SEED_RANGE[0]} to {SEED_RANGE[1]}), got {_short(seed)}")
    return seed


def _stop(obj: dict) -> tuple[str, ...]:
    stop = obj.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        _bad("stop", "'stop' must be a string or a list of up to 4 non-empty strings")
    if any(len(s) > MAX_STOP_CHARS for s in stop):
        _bad("stop", f"each stop string may be at most {MAX_STOP_CHARS} characters long")
    return tuple(stop)


def _stream_flags(obj: dict) -> tuple[bool, bool]:
    """``stream`` and ``stream_options.include_usage``."""
    stream = obj.get("stream")
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        _bad("stream", "'stream' must be true or false")
    options = obj.get("stream_options")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        _bad("stream_options", "'stream_options' must be an object")
    include_usage = options.get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        _bad("stream_options.include_usage", "'stream_options.include_usage' must be true or false")
    return stream, bool(include_usage)


def parse_request(body: bytes, cfg) -> dict:
    """Validate a chat-completions body on its own; raises RequestError (400) with a message and
    ``param`` naming the field. Anything a client can send ends here or in a valid request.
    The fields are checked in a fixed order, so the first bad one is the one reported."""
    obj = _load_json(body)
    found = _first_bad_value(obj)
    if found:
        _bad(found[0], f"{found[0]}: {found[1]}")
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        _bad("model", "'model' is required and must be a string")
    messages = _messages(obj)
    max_tokens = _max_tokens(obj, cfg)
    temperature = _number(obj, "temperature", 1.0, 0.0, 2.0)
    if temperature < MIN_TEMPERATURE:
        temperature = 0.0
    top_p = _number(obj, "top_p", 1.0, 0.0, 1.0, lo_open=True)
    n = obj.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n != 1):
        _bad("n", "only n=1 is supported")
    seed = _seed(obj)
    stop = _stop(obj)
    stream, include_usage = _stream_flags(obj)
    return {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature,
            "top_p": top_p, "seed": seed, "stop": stop, "stream": stream, "include_usage": include_usage}
