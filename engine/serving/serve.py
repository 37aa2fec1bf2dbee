"""An OpenAI-compatible chat API over a local model: ``ccr serve`` and the ``serve`` job.

Routes: ``POST /v1/chat/completions`` (plain, and ``stream: true`` as server-sent events in
the OpenAI chunk format ending ``data: [DONE]``), ``GET /v1/models``, ``GET /v1/models/{id}``,
``GET /health``. The official ``openai`` client works against it unchanged. The queue and its
thread are in ``engine.serving.batcher``, the parsing and validation of one request in
``engine.serving.requests``; here are the app, its guard and the server's lifecycle.

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
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from engine.serving.batcher import Batcher, Pending, QueueFull
from engine.serving.requests import RequestError, _short, parse_request

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class ServeError(ValueError):
    """A server that must not or cannot start; the message says why."""


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


@dataclass
class Service:
    """What the routes share: the model and the names it answers to, the batcher, the encoding
    thread and the time of the last request (``Server.idle_s`` reads it)."""

    generator: object
    cfg: object
    model_id: str
    names: set
    max_context: int | None
    batcher: Batcher
    # One thread encodes prompts (chat template + tokenizer) off the event loop, one request at a
    # time: a long prompt never blocks the loop, and requests never encode in many threads at once.
    encoder: concurrent.futures.ThreadPoolExecutor
    created: int = field(default_factory=lambda: int(time.time()))
    activity: dict = field(default_factory=lambda: {"last_request": time.time()})

    def encode(self, messages: list[dict], max_tokens: int) -> list[int]:
        """One request's prompt ids, checked against the context; a RequestError for it alone."""
        try:
            ids = list(self.generator.prompt_ids(messages))
        except Exception as exc:  # the chat template or the tokenizer refused these messages
            raise RequestError(400, f"'messages' could not be encoded for this model ({type(exc).__name__}: "
                               f"{_short(exc, 200)})", param="messages", code="invalid_value") from None
        if self.max_context and len(ids) + max_tokens > self.max_context:
            raise RequestError(400, f"This model's maximum context length is {self.max_context} tokens. However, "
                               f"you requested {len(ids) + max_tokens} tokens ({len(ids)} in the messages, "
                               f"{max_tokens} in the completion). Please reduce the length of the messages or "
                               f"completion.", param="messages", code="context_length_exceeded")
        return ids

    def busy(self) -> RequestError:
        return RequestError(429, f"The server is busy: {self.batcher.capacity} requests are already waiting. "
                            "Retry shortly.", "rate_limit_error", code="rate_limit_exceeded",
                            headers={"Retry-After": "1"})

    def model_card(self) -> dict:
        return {"id": self.model_id, "object": "model", "created": self.created, "owned_by": "ccr"}

    def unknown_model(self, name: str) -> RequestError:
        return RequestError(404, f"The model `{name}` does not exist. This server serves `{self.model_id}`.",
                            param="model", code="model_not_found")


def _service(generator, cfg, model_id: str | None, aliases: tuple[str, ...]) -> Service:
    model_id = model_id or getattr(generator, "name", cfg.model)
    names = {model_id, cfg.model, *aliases}
    if model_id.startswith("run:"):
        names.add(model_id[4:])
    max_context = None
    with contextlib.suppress(Exception):
        max_context = int(generator.model.config.max_position_embeddings)
    batcher = Batcher(generator, cfg.max_queue, cfg.max_batch, cfg.batch_wait_ms / 1000.0)
    encoder = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ccr-serve-encode")
    return Service(generator, cfg, model_id, names, max_context, batcher, encoder)


def create_app(generator, cfg, model_id: str | None = None, aliases: tuple[str, ...] = ()):
    """The FastAPI app with its batcher (started and stopped with the app's lifespan)."""
    from fastapi import FastAPI

    service = _service(generator, cfg, model_id, aliases)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        service.batcher.start()
        try:
            yield
        finally:
            service.batcher.stop()
            service.encoder.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="ccr OpenAI-compatible API", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.batcher = service.batcher
    app.state.activity = service.activity
    _add_error_handlers(app)
    _add_routes(app, service)
    return Guard(app, cfg.host, cfg.api_key, cfg.max_body_bytes, cfg.allowed_hosts), app


def _add_error_handlers(app) -> None:
    """Every error, ours or the framework's, answered as an OpenAI error object."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

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


def _add_routes(app, service: Service) -> None:
    from fastapi import Request

    @app.get("/health")
    async def health():
        b = service.batcher
        return {"status": "ok", "model": service.model_id, "queue": b.depth(), "max_queue": b.capacity,
                "busy": b.busy, **b.stats}

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [service.model_card()]}

    @app.get("/v1/models/{name:path}")
    async def get_model(name: str):
        if name not in service.names:
            raise service.unknown_model(name)
        return service.model_card()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await _chat(service, request)


async def _chat(service: Service, request):
    """``POST /v1/chat/completions``: parse and check the request on its own, encode it off the
    event loop, queue it; then wait for its completion or stream it."""
    service.activity["last_request"] = time.time()
    req = parse_request(await request.body(), service.cfg)
    if req["model"] not in service.names:
        raise service.unknown_model(_short(req["model"]))
    batcher = service.batcher
    if batcher.depth() >= batcher.capacity:  # at once, before spending the tokenizer on it
        batcher.stats["rejected"] += 1
        raise service.busy()
    loop = asyncio.get_running_loop()
    try:
        ids = await loop.run_in_executor(service.encoder, service.encode, req["messages"], req["max_tokens"])
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
        raise service.busy() from None
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if not req["stream"]:
        return await _completion(service, item, completion_id)
    return await _streamed(service, item, req, completion_id)


async def _completion(service: Service, item: Pending, completion_id: str):
    """A plain request's reply, once the batcher resolved it."""
    try:
        result = await item.future
    except asyncio.CancelledError:
        item.cancelled.set()
        raise
    if isinstance(result, RequestError):
        raise result
    service.activity["last_request"] = time.time()
    return _json_response(200, {
        "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": service.model_id,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                     "logprobs": None, "finish_reason": result.finish_reason}],
        "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                  "total_tokens": result.prompt_tokens + result.completion_tokens}})


async def _streamed(service: Service, item: Pending, req: dict, completion_id: str):
    """A streamed request's server-sent events, in the OpenAI chunk format ending ``data: [DONE]``."""
    from starlette.responses import StreamingResponse

    # Wait for the batcher to accept the prompt (or refuse it) before the 200 goes out.
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
                "model": service.model_id, "system_fingerprint": None,
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
            service.activity["last_request"] = time.time()
        finally:
            item.cancelled.set()  # a client that went away stops costing anything but the drain

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


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
