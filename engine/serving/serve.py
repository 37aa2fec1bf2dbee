"""An OpenAI-compatible chat API over a local model: ``ccr serve`` and the ``serve`` job.

Routes: ``POST /v1/chat/completions`` (plain, and ``stream: true`` as server-sent events in
the OpenAI chunk format ending ``data: [DONE]``), ``GET /v1/models``, ``GET /v1/models/{id}``,
``GET /health``. The official ``openai`` client works against it unchanged.

Why it is built like this:

- **One bounded queue, one batcher thread.** Every request becomes a ``Pending`` item in one
  queue of at most ``max_queue`` items; when it is full the request is answered 429 at once
  (never a 5xx, never an unbounded backlog). The batcher thread takes the oldest item, waits a
  few milliseconds for company, and generates it together with up to ``max_batch - 1`` queued
  items that share its sampling settings (temperature, top_p, seed, stop, max_tokens) in one
  batched ``LocalGenerator`` call. Streamed requests are generated one at a time with
  ``LocalGenerator.stream``, so their tokens arrive as they are made. The model is only ever
  touched from the batcher thread, so the event loop never blocks on it.
- **One request cannot fail another.** A request is parsed, validated, encoded (chat template
  and tokenizer, in the ``encode`` thread) and length-checked on its own before it is queued, so
  whatever it holds (a lone surrogate, a number out of range, a template the model refuses) is
  answered 4xx to that request alone and never reaches a batch. If a batched generate call still
  fails, each of its requests is retried alone, so only the one that fails alone gets the 5xx.
- **Safe by default.** It binds 127.0.0.1; any other address is refused without an API key.
  With a key, every route but ``/health`` needs ``Authorization: Bearer <key>`` (401). The Host
  header must name the bound address or localhost (403), which stops DNS-rebinding pages from
  reaching a loopback server through the user's browser; no CORS headers are sent. Bodies over
  ``max_body_bytes`` get 413, absurd ``max_tokens`` and malformed JSON get 400, all as OpenAI
  error objects (``{"error": {"message", "type", "param", "code"}}``).
- No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations
  (``request: Request``) at runtime.
- **Lifecycle.** ``Server`` binds the socket itself (clear errors, port 0 picks a free port),
  runs uvicorn in a thread and stops it on request, so the same code serves ``ccr serve`` in the
  foreground, the Deploy page's job, the Compare page's short-lived servers and the tests.
"""

import asyncio
import concurrent.futures
import contextlib
import hmac
import ipaddress
import json
import math
import re
import socket
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class ServeError(ValueError):
    """A server that must not or cannot start; the message says why."""


class RequestError(Exception):
    """An error answered to one request in the OpenAI shape."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse a non-loopback address without an API key.

    >>> check_bind("0.0.0.0", None)
    Traceback (most recent call last):
    ...
    engine.serving.serve.ServeError: refusing to bind 0.0.0.0 without an API key: anyone on the network could use the model. Pass --api-key KEY (or bind 127.0.0.1).
    """
    if not is_loopback(host) and not api_key:
        raise ServeError(f"refusing to bind {host} without an API key: anyone on the network could use the model. "
                         f"Pass --api-key KEY (or bind 127.0.0.1).")


def host_allowed(header: str | None, bound: str, extra: list[str] | tuple[str, ...] = ()) -> bool:
    """Whether a Host header names this server (the DNS-rebinding guard).

    A wildcard bind (0.0.0.0, ::) accepts any host unless ``extra`` lists the accepted ones:
    such a server always has an API key, which is what protects it.

    >>> host_allowed("127.0.0.1:8000", "127.0.0.1"), host_allowed("localhost", "127.0.0.1")
    (True, True)
    >>> host_allowed("evil.example:8000", "127.0.0.1"), host_allowed(None, "127.0.0.1")
    (False, False)
    >>> host_allowed("[::1]:8000", "::1"), host_allowed("anything", "0.0.0.0")
    (True, True)
    """
    if "*" in extra:
        return True
    if bound in ("0.0.0.0", "::", "") and not extra:
        return True
    if not header:
        return False
    header = header.strip().lower()
    if header.startswith("["):
        name = header[1:header.find("]")] if "]" in header else header[1:]
    else:
        name = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    allowed = LOOPBACK_NAMES | {bound.strip("[]").lower()} | {h.lower() for h in extra}
    return name in allowed


# ---------------------------------------------------------------------------------------------
# The queue and the batcher
# ---------------------------------------------------------------------------------------------


@dataclass
class Pending:
    """One request waiting for, or in, generation."""

    messages: list[dict]
    ids: list[int]                                # the encoded prompt (encoded before the request is queued)
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: tuple[str, ...]
    stream: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future | None = None          # plain requests: resolved with a Completion or RequestError
    events: asyncio.Queue | None = None           # streamed requests: ("start"|"piece"|"end"|"error", payload)
    cancelled: threading.Event = field(default_factory=threading.Event)
    enqueued_at: float = field(default_factory=time.time)

    def group(self) -> tuple | None:
        """Requests with equal groups can share one batched generate call; streams never do."""
        if self.stream:
            return None
        return (self.max_tokens, self.temperature, self.top_p, self.seed, self.stop)

    # Thread-safe delivery to the request's event loop.
    def resolve(self, value) -> None:
        def set_it():
            if self.future is not None and not self.future.done():
                self.future.set_result(value)

        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
            self.loop.call_soon_threadsafe(set_it)

    def emit(self, kind: str, payload=None) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, payload))


class QueueFull(Exception):
    pass


class Batcher:
    """The one bounded queue and the thread that turns it into batched generate calls."""

    def __init__(self, generator, max_queue: int = 64, max_batch: int = 8, batch_wait_s: float = 0.01):
        self.generator = generator
        self.capacity = max(1, max_queue)
        self.max_batch = max(1, max_batch)
        self.batch_wait_s = batch_wait_s
        self.items: deque[Pending] = deque()
        self.cond = threading.Condition()
        self.stopping = False
        self.busy = False
        self.stats = {"served": 0, "rejected": 0, "errors": 0, "batches": 0, "largest_batch": 0, "tokens": 0}
        self.thread = threading.Thread(target=self._loop, name="ccr-serve-batcher", daemon=True)

    def start(self) -> "Batcher":
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.thread.join(timeout=30)

    def submit(self, item: Pending) -> None:
        with self.cond:
            if self.stopping or len(self.items) >= self.capacity:
                self.stats["rejected"] += 1
                raise QueueFull
            self.items.append(item)
            self.cond.notify()

    def depth(self) -> int:
        return len(self.items)

    def _take(self) -> list[Pending] | None:
        with self.cond:
            while not self.items and not self.stopping:
                self.cond.wait(0.5)
            if self.stopping:
                return None
            first = self.items.popleft()
            group = first.group()
            if group is None:
                return [first]
            # Give concurrent requests a moment to arrive, then take every compatible one.
            deadline = time.time() + self.batch_wait_s
            while len([i for i in self.items if i.group() == group]) < self.max_batch - 1 and not self.stopping:
                left = deadline - time.time()
                if left <= 0:
                    break
                self.cond.wait(left)
            batch = [first]
            for item in list(self.items):
                if len(batch) >= self.max_batch:
                    break
                if item.group() == group:
                    self.items.remove(item)
                    batch.append(item)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                break
            batch = [i for i in batch if not i.cancelled.is_set()]
            if not batch:
                continue
            self.busy = True
            try:
                if batch[0].stream:
                    self._stream(batch[0])
                else:
                    self._generate(batch)
            except Exception as exc:  # a failure of the model must answer its requests, not kill the thread
                self.stats["errors"] += len(batch)
                err = RequestError(500, f"generation failed: {type(exc).__name__}: {_short(exc)}", "server_error")
                for item in batch:
                    item.emit("error", err) if item.stream else item.resolve(err)
            finally:
                self.busy = False
        # Answer whatever is still queued so no client waits forever.
        with self.cond:
            left, self.items = list(self.items), deque()
        for item in left:
            err = RequestError(503, "the server is shutting down", "server_error")
            item.emit("error", err) if item.stream else item.resolve(err)

    def _generate(self, batch: list[Pending]) -> None:
        first = batch[0]
        try:
            completions = self.generator.generate_ids(
                [i.ids for i in batch], max_new_tokens=first.max_tokens, temperature=first.temperature,
                top_p=first.top_p, seed=first.seed, stop=list(first.stop) or None, batch_size=len(batch))
        except Exception:
            if len(batch) == 1:
                raise
            # Every request was checked on its own before it was queued, so this should not happen;
            # if it does, generate each alone so that only a request that fails alone fails.
            for item in batch:
                try:
                    self._generate([item])
                except Exception as exc:
                    self.stats["errors"] += 1
                    item.resolve(RequestError(500, f"generation failed: {type(exc).__name__}: {_short(exc)}",
                                              "server_error"))
            return
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(batch))
        for item, c in zip(batch, completions):
            self.stats["served"] += 1
            self.stats["tokens"] += c.completion_tokens
            item.resolve(c)

    def _stream(self, item: Pending) -> None:
        item.emit("start", len(item.ids))
        hold = max((len(s) for s in item.stop), default=1) - 1  # text that may be the start of a stop string
        text, sent, finish = "", 0, None
        # Generation ends at the next token once the client went away or a stop string was seen,
        # so an abandoned stream frees the model for the queue at once.
        for piece in self.generator.stream(item.messages, max_new_tokens=item.max_tokens,
                                           temperature=item.temperature, top_p=item.top_p, seed=item.seed,
                                           should_stop=lambda: finish is not None or item.cancelled.is_set()):
            if finish or item.cancelled.is_set():
                continue
            text += piece
            cut = min((text.find(s) for s in item.stop if s in text), default=-1)
            if cut >= 0:
                text, finish = text[:cut], "stop"
                if cut > sent:
                    item.emit("piece", text[sent:cut])
                sent = len(text)
                continue
            safe = len(text) - hold if item.stop else len(text)
            if safe > sent:
                item.emit("piece", text[sent:safe])
                sent = safe
        if not finish and sent < len(text):
            item.emit("piece", text[sent:])
        tokens = self.generator.count_tokens(text)
        if finish is None:
            finish = "length" if tokens >= item.max_tokens else "stop"
        self.stats["served"] += 1
        self.stats["batches"] += 1
        self.stats["tokens"] += tokens
        item.emit("end", {"finish_reason": finish, "completion_tokens": tokens, "prompt_tokens": len(item.ids)})


# ---------------------------------------------------------------------------------------------
# The ASGI app
# ---------------------------------------------------------------------------------------------


def _dumps(body) -> str:
    """JSON text for a reply. Readable UTF-8 normally; a value that cannot be encoded as UTF-8 (a
    lone surrogate) is escaped instead, so rendering a reply can never fail it."""
    try:
        text = json.dumps(body, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return json.dumps(body, allow_nan=False)


def _json_response(status: int, body: dict, headers: dict | None = None):
    from starlette.responses import Response

    return Response(_dumps(body).encode("utf-8"), status_code=status, headers=headers, media_type="application/json")


class Guard:
    """Raw ASGI middleware in front of everything: Host check (403), API key (401), body size
    (413). Raw ASGI so that an oversized body is refused before the app reads any of it."""

    def __init__(self, app, bound_host: str, api_key: str | None, max_body: int, allowed_hosts=()):
        self.app, self.bound_host, self.api_key, self.max_body = app, bound_host, api_key, max_body
        self.allowed_hosts = tuple(allowed_hosts)

    async def _send_error(self, send, status: int, message: str, code: str, headers: dict | None = None) -> None:
        body = json.dumps(RequestError(status, message, code=code).body()).encode()
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not host_allowed(headers.get("host"), self.bound_host, self.allowed_hosts):
            return await self._send_error(send, 403, "Host header not allowed: this server answers only requests "
                                          "addressed to its own address or localhost", "host_not_allowed")
        if self.api_key and scope.get("path") != "/health":
            auth = headers.get("authorization", "")
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(token.encode(), self.api_key.encode()):
                return await self._send_error(send, 401, "Incorrect or missing API key: send the header "
                                              "'Authorization: Bearer <key>'", "invalid_api_key",
                                              {"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length")
        too_large = (f"Request body too large: this server accepts at most {self.max_body} bytes")
        if length is not None:
            try:
                if int(length) > self.max_body:
                    return await self._send_error(send, 413, too_large, "request_too_large")
            except ValueError:
                return await self._send_error(send, 400, "invalid Content-Length header", "invalid_request")
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        # Read the (bounded) body here, so a chunked upload is cut off as soon as it passes the limit.
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return await self._send_error(send, 413, too_large, "request_too_large")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as Starlette expects

        await self.app(scope, replay, send)


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


def parse_request(body: bytes, cfg) -> dict:
    """Validate a chat-completions body on its own; raises RequestError (400) with a message and
    ``param`` naming the field. Anything a client can send ends here or in a valid request."""
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

    def bad(param: str, message: str):
        raise RequestError(400, message, param=param, code="invalid_value")

    found = _first_bad_value(obj)
    if found:
        bad(found[0], f"{found[0]}: {found[1]}")
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        bad("model", "'model' is required and must be a string")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        bad("messages", "'messages' must be a non-empty list")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            bad(f"messages[{i}]", f"messages[{i}] must be an object with a 'role'")
        role = "system" if m["role"] == "developer" else m["role"]
        if role not in ("system", "user", "assistant"):
            bad(f"messages[{i}].role", f"messages[{i}].role {_short(repr(m['role']))} is not supported "
                "(system, developer, user, assistant)")
        clean.append({"role": role, "content": _content_text(m.get("content"), f"messages[{i}].content")})
    name = "max_completion_tokens" if obj.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = obj.get(name)
    if max_tokens is None:
        max_tokens = cfg.default_max_tokens
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        bad(name, f"'{name}' must be an integer")
    if max_tokens < 1:
        bad(name, f"{name} must be at least 1, got {_short(max_tokens)}")
    if max_tokens > cfg.max_tokens_limit:
        bad(name, f"{name} is too large: {_short(max_tokens)}. This server allows at most "
            f"{cfg.max_tokens_limit} completion tokens.")

    def number(name: str, default: float, lo: float, hi: float, lo_open: bool = False) -> float:
        value = obj.get(name)
        if value is None:
            return default
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            bad(name, f"'{name}' must be a number")
        if not (lo < value <= hi if lo_open else lo <= value <= hi):
            bad(name, f"'{name}' must be {'>' if lo_open else '>='} {lo} and <= {hi}, got {_short(value)}")
        return float(value)

    temperature = number("temperature", 1.0, 0.0, 2.0)
    if temperature < MIN_TEMPERATURE:
        temperature = 0.0
    top_p = number("top_p", 1.0, 0.0, 1.0, lo_open=True)
    n = obj.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n != 1):
        bad("n", "only n=1 is supported")
    seed = obj.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            bad("seed", "'seed' must be an integer")
        if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
            bad("seed", f"'seed' must be a 64-bit integer ({SEED_RANGE[0]} to {SEED_RANGE[1]}), got {_short(seed)}")
    stop = obj.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        bad("stop", "'stop' must be a string or a list of up to 4 non-empty strings")
    if any(len(s) > MAX_STOP_CHARS for s in stop):
        bad("stop", f"each stop string may be at most {MAX_STOP_CHARS} characters long")
    stream = obj.get("stream")
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        bad("stream", "'stream' must be true or false")
    options = obj.get("stream_options")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        bad("stream_options", "'stream_options' must be an object")
    include_usage = options.get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        bad("stream_options.include_usage", "'stream_options.include_usage' must be true or false")
    return {"model": model, "messages": clean, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
            "seed": seed, "stop": tuple(stop), "stream": stream, "include_usage": bool(include_usage)}


def create_app(generator, cfg, model_id: str | None = None, aliases: tuple[str, ...] = ()):
    """The FastAPI app with its batcher (started and stopped with the app's lifespan)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import StreamingResponse

    model_id = model_id or getattr(generator, "name", cfg.model)
    names = {model_id, cfg.model, *aliases}
    if model_id.startswith("run:"):
        names.add(model_id[4:])
    max_context = None
    with contextlib.suppress(Exception):
        max_context = int(generator.model.config.max_position_embeddings)
    batcher = Batcher(generator, cfg.max_queue, cfg.max_batch, cfg.batch_wait_ms / 1000.0)
    # One thread encodes prompts (chat template + tokenizer) off the event loop, one request at a
    # time: a long prompt never blocks the loop, and requests never encode in many threads at once.
    encoder = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ccr-serve-encode")
    created = int(time.time())
    state = {"last_request": time.time()}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()
            encoder.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="ccr OpenAI-compatible API", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.batcher = batcher
    app.state.activity = state

    @app.exception_handler(RequestError)
    async def request_error(request, exc: RequestError):
        return _json_response(exc.status, exc.body(), exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return _json_response(exc.status_code, RequestError(exc.status_code, str(exc.detail), code=code).body())

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        return _json_response(400, RequestError(400, str(exc.errors()[:1]), code="invalid_value").body())

    @app.exception_handler(Exception)
    async def internal_error(request, exc):
        return _json_response(500, RequestError(500, f"internal error: {type(exc).__name__}", "server_error").body())

    def encode(messages: list[dict], max_tokens: int) -> list[int]:
        """One request's prompt ids, checked against the context; a RequestError for it alone."""
        try:
            ids = list(generator.prompt_ids(messages))
        except Exception as exc:  # the chat template or the tokenizer refused these messages
            raise RequestError(400, f"'messages' could not be encoded for this model ({type(exc).__name__}: "
                               f"{_short(exc, 200)})", param="messages", code="invalid_value") from None
        if max_context and len(ids) + max_tokens > max_context:
            raise RequestError(400, f"This model's maximum context length is {max_context} tokens. However, you "
                               f"requested {len(ids) + max_tokens} tokens ({len(ids)} in the messages, {max_tokens} "
                               f"in the completion). Please reduce the length of the messages or completion.",
                               param="messages", code="context_length_exceeded")
        return ids

    def busy() -> RequestError:
        return RequestError(429, f"The server is busy: {batcher.capacity} requests are already waiting. "
                            "Retry shortly.", "rate_limit_error", code="rate_limit_exceeded",
                            headers={"Retry-After": "1"})

    def model_card() -> dict:
        return {"id": model_id, "object": "model", "created": created, "owned_by": "ccr"}

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_id, "queue": batcher.depth(), "max_queue": batcher.capacity,
                "busy": batcher.busy, **batcher.stats}

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    async def get_model(name: str):
        if name not in names:
            raise RequestError(404, f"The model `{name}` does not exist. This server serves `{model_id}`.",
                               param="model", code="model_not_found")
        return model_card()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        state["last_request"] = time.time()
        req = parse_request(await request.body(), cfg)
        if req["model"] not in names:
            raise RequestError(404, f"The model `{_short(req['model'])}` does not exist. This server serves "
                               f"`{model_id}`.", param="model", code="model_not_found")
        if batcher.depth() >= batcher.capacity:  # at once, before spending the tokenizer on it
            batcher.stats["rejected"] += 1
            raise busy()
        loop = asyncio.get_running_loop()
        try:
            ids = await loop.run_in_executor(encoder, encode, req["messages"], req["max_tokens"])
        except RuntimeError as exc:  # the executor is shut down: the server is stopping
            if "shutdown" not in str(exc):
                raise
            raise RequestError(503, "the server is shutting down", "server_error") from None
        item = Pending(req["messages"], ids, req["max_tokens"], req["temperature"], req["top_p"], req["seed"],
                       req["stop"], req["stream"], loop)
        if req["stream"]:
            item.events = asyncio.Queue()
        else:
            item.future = loop.create_future()
        try:
            batcher.submit(item)
        except QueueFull:
            raise busy() from None
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if not req["stream"]:
            try:
                result = await item.future
            except asyncio.CancelledError:
                item.cancelled.set()
                raise
            if isinstance(result, RequestError):
                raise result
            state["last_request"] = time.time()
            return _json_response(200, {
                "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model_id,
                "system_fingerprint": None,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                             "logprobs": None, "finish_reason": result.finish_reason}],
                "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                          "total_tokens": result.prompt_tokens + result.completion_tokens}})
        # Streamed: wait for the batcher to accept the prompt (or refuse it) before the 200 goes out.
        try:
            kind, payload = await item.events.get()
        except asyncio.CancelledError:
            item.cancelled.set()
            raise
        if kind == "error":
            raise payload
        prompt_tokens = payload

        def chunk(delta: dict, finish=None, usage=None, choices=True) -> str:
            body = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model_id, "system_fingerprint": None,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                    if choices else []}
            if usage is not None or (req["include_usage"] and choices):
                body["usage"] = usage
            return f"data: {_dumps(body)}\n\n"

        async def events():
            try:
                yield chunk({"role": "assistant", "content": ""})
                while True:
                    kind, payload = await item.events.get()
                    if kind == "piece":
                        yield chunk({"content": payload})
                    elif kind == "end":
                        yield chunk({}, finish=payload["finish_reason"])
                        if req["include_usage"]:
                            yield chunk({}, usage={"prompt_tokens": prompt_tokens,
                                                   "completion_tokens": payload["completion_tokens"],
                                                   "total_tokens": prompt_tokens + payload["completion_tokens"]},
                                        choices=False)
                        break
                    else:  # an error after the stream started: OpenAI sends it as an event
                        yield f"data: {json.dumps(payload.body())}\n\n"
                        break
                yield "data: [DONE]\n\n"
                state["last_request"] = time.time()
            finally:
                item.cancelled.set()  # a client that went away stops costing anything but the drain

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return Guard(app, cfg.host, cfg.api_key, cfg.max_body_bytes, cfg.allowed_hosts), app


# ---------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot bind {host}:{port}: {exc.strerror or exc}"
                         + (" (another server is using the port; pick another with --port)"
                            if getattr(exc, "errno", None) == 98 else "")) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class Server:
    """A running API server: ``start()`` binds and serves in a thread, ``stop()`` ends it."""

    def __init__(self, cfg, generator=None, home=None):
        check_bind(cfg.host, cfg.api_key)
        self.cfg, self.home, self.generator = cfg, home, generator
        self.thread: threading.Thread | None = None
        self.uvicorn = None
        self.app = None
        self.port = None

    @property
    def url(self) -> str:
        host = self.cfg.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
        if ":" in shown and not shown.startswith("["):
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}"

    def start(self, timeout: float = 60.0) -> "Server":
        import uvicorn

        sock = _bind(self.cfg.host, self.cfg.port)  # before loading the model: a busy port fails fast
        self.port = sock.getsockname()[1]
        if self.generator is None:
            from engine.evaluation.evaluate import load_generator

            self.generator = load_generator(self.cfg.model, self.home, device=self.cfg.device, dtype=self.cfg.dtype)
        asgi, self.app = create_app(self.generator, self.cfg)
        config = uvicorn.Config(asgi, log_level="warning", server_header=False, lifespan="on",
                                timeout_graceful_shutdown=5, access_log=False)
        self.uvicorn = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [sock]}, name="ccr-serve",
                                       daemon=True)
        self.thread.start()
        deadline = time.time() + timeout
        while not self.uvicorn.started:
            if not self.thread.is_alive() or time.time() > deadline:
                raise ServeError(f"the server did not start on {self.cfg.host}:{self.port}")
            time.sleep(0.02)
        return self

    def alive(self) -> bool:
        return bool(self.thread and self.thread.is_alive())

    def stats(self) -> dict:
        b = self.app.state.batcher if self.app else None
        return {"url": self.url, "model": getattr(self.generator, "name", self.cfg.model),
                "queue": b.depth() if b else 0, **(b.stats if b else {})}

    def idle_s(self) -> float:
        if not self.app:
            return 0.0
        b = self.app.state.batcher
        if b.busy or b.depth():
            return 0.0
        return time.time() - self.app.state.activity["last_request"]

    def stop(self) -> None:
        if self.uvicorn:
            self.uvicorn.should_exit = True
        if self.thread:
            self.thread.join(timeout=30)


def run_serve_job(ctx, config: dict) -> dict:
    """The ``serve`` job: serve until cancelled (or idle for ``idle_shutdown_s``)."""
    from engine.core.config import ServeConfig, load_config
    from engine.core.jobs import JobStopped

    cfg = load_config(ServeConfig, data=config)
    check_bind(cfg.host, cfg.api_key)
    ctx.progress(0, None, force=True, state="loading", model=cfg.model)
    server = Server(cfg, home=ctx.home).start()
    ctx.log(f"serving {server.stats()['model']} at {server.url}/v1 (key {'required' if cfg.api_key else 'not set'})")
    print(f"OpenAI-compatible API at {server.url}/v1 — Ctrl-C to stop", flush=True)
    ended = "stopped"
    try:
        while server.alive():
            ctx.progress(0, None, state="ready", **server.stats())
            ctx.check()
            if cfg.idle_shutdown_s and server.idle_s() > cfg.idle_shutdown_s:
                ended = f"idle for {cfg.idle_shutdown_s:.0f} s"
                break
            time.sleep(0.5)
        else:
            ended = "the server thread ended"
    except JobStopped:
        ended = "stopped on request"
    finally:
        stats = server.stats()
        server.stop()
    ctx.log(f"server stopped ({ended}): {stats.get('served', 0)} requests served, {stats.get('rejected', 0)} "
            f"rejected with 429")
    return {"ended": ended, **stats}
