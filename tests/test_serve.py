"""The OpenAI-compatible server: the official client (plain and streamed), the guard rails
(401/403/413/400/404), the bounded queue (429, never a 5xx), batching, and `ccr serve` itself."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import openai
import pytest
from helpers import serve_url
from phase3_fakes import FakeGenerator

from engine.serving import serve
from engine.core.config import ServeConfig
from engine.core.paths import REPO

KEY = "test-key-123"
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def real_server(embedded_generator):
    """The real uvicorn server on a free loopback port, with the embedded model and an API key."""
    cfg = ServeConfig(model=MODEL, port=0, api_key=KEY, max_queue=16, max_batch=4, default_max_tokens=8,
                      max_tokens_limit=64, max_body_bytes=64 * 1024)
    server = serve.Server(cfg, generator=embedded_generator).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fake_server():
    """The same server over a fake model: plumbing tests that do not need real text."""
    cfg = ServeConfig(model="fake-model", port=0, max_queue=64, max_batch=8, batch_wait_ms=20)
    server = serve.Server(cfg, generator=FakeGenerator(lambda m: "CSAT: 4/5 because it went well",
                                                       delay=0.02)).start()
    yield server
    server.stop()


def client(server, key=KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=300)


def _post(server, body, key=KEY, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(kw.pop("headers", {}))
    if body is not None:
        kw["json"] = body
    return httpx.post(f"{server.url}/v1/chat/completions", headers=headers, timeout=300, **kw)


@pytest.mark.slow
def test_openai_client_plain_and_streamed(real_server, embedded_generator):
    c = client(real_server)
    messages = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Say hello."}]
    reply = c.chat.completions.create(model=MODEL, messages=messages, max_tokens=6, temperature=0)
    text = reply.choices[0].message.content
    assert text and reply.choices[0].finish_reason in ("stop", "length")
    assert reply.model == MODEL and reply.object == "chat.completion"
    assert 0 < reply.usage.completion_tokens <= 6 and reply.usage.prompt_tokens > 5
    # Greedy through the server is the same text as greedy through the generator directly.
    assert text == embedded_generator.generate([messages], max_new_tokens=6)[0].text

    chunks = list(c.chat.completions.create(model=MODEL, messages=messages, max_tokens=6, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert streamed == text
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].usage.completion_tokens > 0 and not chunks[-1].choices
    assert [m.id for m in c.models.list().data] == [MODEL]


@pytest.mark.slow
def test_raw_sse_ends_with_done(real_server):
    with httpx.stream("POST", f"{real_server.url}/v1/chat/completions", timeout=300,
                      headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3,
                            "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [x for x in r.iter_lines() if x]
    assert lines[-1] == "data: [DONE]"
    assert all(x.startswith("data: ") for x in lines)
    assert json.loads(lines[0][6:])["object"] == "chat.completion.chunk"


def test_key_is_required_everywhere_but_health(real_server):
    with pytest.raises(openai.AuthenticationError):
        client(real_server, key="wrong").chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": "Basic x"}):
        r = httpx.get(f"{real_server.url}/v1/models", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert _post(real_server, {}, key=None).status_code == 401
    assert httpx.get(f"{real_server.url}/nope").status_code == 401  # unknown routes too
    assert httpx.get(f"{real_server.url}/health").status_code == 200


def test_host_header_must_name_this_server(real_server):
    ok = httpx.get(f"{real_server.url}/health", headers={"Host": f"localhost:{real_server.port}"})
    assert ok.status_code == 200
    for host in ("evil.example", f"evil.example:{real_server.port}", "127.0.0.1.evil.example"):
        r = httpx.get(f"{real_server.url}/v1/models", headers={"Host": host, "Authorization": f"Bearer {KEY}"})
        assert r.status_code == 403 and "Host" in r.json()["error"]["message"]


def test_oversized_bodies_get_413(real_server):
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 100_000}]}
    r = _post(real_server, big)
    assert r.status_code == 413 and "at most 65536 bytes" in r.json()["error"]["message"]

    def chunks():  # no Content-Length: cut off while receiving
        for _ in range(20):
            yield b"x" * 8192

    r = httpx.post(f"{real_server.url}/v1/chat/completions", content=chunks(),
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("body,param", [
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10 ** 9}, "max_tokens"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": "lots"}, "max_tokens"),
    ({"model": MODEL, "messages": []}, "messages"),
    ({"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 9}, "temperature"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 3}, "n"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
])
def test_bad_requests_get_400_with_the_field_named(real_server, body, param):
    r = _post(real_server, body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == param and err["message"] and err["type"] == "invalid_request_error"


HI = '"messages": [{"role": "user", "content": "hi"}]'


@pytest.mark.parametrize("raw,param", [
    # Each of these was a 500 (for its whole batch, in the first two cases) or a 200 before.
    ('{"model": "%s", "messages": [{"role": "user", "content": "hi \\ud83d"}]}' % MODEL, "messages[0].content"),
    ('{"model": "%s", "messages": [{"role": "user", "content": [{"type": "text", "text": "\\udfff"}]}]}' % MODEL,
     "messages[0].content[0].text"),
    ('{"model": "%s", %s, "seed": %d}' % (MODEL, HI, 2 ** 70), "seed"),
    ('{"model": "%s", %s, "seed": %d}' % (MODEL, HI, -2 ** 63 - 1), "seed"),
    ('{"model": "%s", %s, "user": %s}' % (MODEL, HI, "9" * 5000), "user"),
    ('{"model": "%s", %s, "max_tokens": %s}' % (MODEL, HI, "9" * 5000), "max_tokens"),
    ('{"model": "%s", %s, "temperature": NaN}' % (MODEL, HI), "temperature"),
    ('{"model": "%s", %s, "temperature": Infinity}' % (MODEL, HI), "temperature"),
    ('{"model": "%s", %s, "top_p": NaN}' % (MODEL, HI), "top_p"),
    ('{"model": "%s", %s, "top_p": -Infinity}' % (MODEL, HI), "top_p"),
    ('{"model": "%s", %s, "temperature": 1e400}' % (MODEL, HI), "temperature"),
    ('{"model": "%s", %s, "metadata": {"x": [1, 1e999]}}' % (MODEL, HI), "metadata.x[1]"),
    ('{"model": "%s", %s, "\\ud800": 1}' % (MODEL, HI), '["\\ud800"]'),
    ('{"model": "\\ud83d", %s}' % HI, "model"),
    ('{"model": "%s", "messages": "hi"}' % MODEL, "messages"),
    ('{"model": "%s", "messages": [1]}' % MODEL, "messages[0]"),
    ('{"model": "%s", "messages": [{"role": "user", "content": 5}]}' % MODEL, "messages[0].content"),
    ('{"model": "%s", "messages": [{"role": "user", "content": {"text": "hi"}}]}' % MODEL, "messages[0].content"),
    ('{"model": "%s", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}' % MODEL,
     "messages[0].content[0]"),
    ('{"model": "%s", "messages": [{"role": ["user"], "content": "hi"}]}' % MODEL, "messages[0]"),
    ('{"model": "%s", %s, "max_completion_tokens": %d}' % (MODEL, HI, 10 ** 30), "max_completion_tokens"),
    ('{"model": "%s", %s, "max_tokens": 4.0}' % (MODEL, HI), "max_tokens"),
    ('{"model": "%s", %s, "n": true}' % (MODEL, HI), "n"),
    ('{"model": "%s", %s, "n": "1"}' % (MODEL, HI), "n"),
    ('{"model": "%s", %s, "seed": 1.5}' % (MODEL, HI), "seed"),
    ('{"model": "%s", %s, "stop": [1]}' % (MODEL, HI), "stop"),
    ('{"model": "%s", %s, "stop": ["a", "b", "c", "d", "e"]}' % (MODEL, HI), "stop"),
    ('{"model": "%s", %s, "stop": "%s"}' % (MODEL, HI, "x" * 101), "stop"),
    ('{"model": "%s", %s, "stop": ["\\ud800"]}' % (MODEL, HI), "stop[0]"),
    ('{"model": "%s", %s, "stream": "yes"}' % (MODEL, HI), "stream"),
    ('{"model": "%s", %s, "stream_options": 3}' % (MODEL, HI), "stream_options"),
    ('{"model": "%s", %s, "stream_options": {"include_usage": "yes"}}' % (MODEL, HI), "stream_options.include_usage"),
    ('{"model": "%s", %s, "top_p": 0}' % (MODEL, HI), "top_p"),
])
def test_hostile_values_get_400_naming_the_field(real_server, raw, param):
    """Surrogates, numbers out of range, NaN, Infinity and wrong types, each named by its field,
    against the real tokenizer and model."""
    r = _post(real_server, None, content=raw.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["message"] and err["code"] == "invalid_value", err


@pytest.mark.parametrize("raw", [
    b"[]", b'"hi"', b"null", b"1", b"NaN", b"9" * 5000, b"\xff\xfe{}", b"", b"{" * 50_000, b"[" * 50_000,
    b'{"model": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
])
def test_bodies_that_are_no_request_get_400(real_server, raw):
    r = _post(real_server, None, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] in ("invalid_json", "invalid_value"), r.text


def test_malformed_json_and_unknown_model(real_server):
    r = httpx.post(f"{real_server.url}/v1/chat/completions", content=b'{"model": ',
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client(real_server).chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])


def test_refuses_a_public_address_without_a_key():
    with pytest.raises(serve.ServeError, match="without an API key"):
        serve.Server(ServeConfig(host="0.0.0.0"))
    from engine import cli

    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2


def test_fifty_concurrent_requests_are_batched_without_a_5xx(fake_server):
    def one(i: int) -> int:
        return _post(fake_server, {"model": "fake-model", "messages": [{"role": "user", "content": f"call {i}"}],
                                   "max_tokens": 8, "temperature": 0}, key=None).status_code

    with cf.ThreadPoolExecutor(50) as pool:
        codes = Counter(pool.map(one, range(50)))
    assert codes == {200: 50}
    health = httpx.get(f"{fake_server.url}/health").json()
    assert health["largest_batch"] > 1  # concurrent compatible requests shared one generate call
    assert health["served"] >= 50


@pytest.mark.slow
def test_full_queue_answers_429_at_once_and_never_5xx(embedded_generator):
    """A tiny queue (2) and the model held busy make 429 deterministic: 1 in generation + 2 queued
    are served, the other 47 of 50 concurrent requests are refused at once, none get a 5xx."""
    cfg = ServeConfig(model=MODEL, port=0, max_queue=2, max_batch=1, default_max_tokens=2)
    server = serve.Server(cfg, generator=embedded_generator).start()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0}
    codes: list[int] = []
    lock = threading.Lock()

    def one(_=None) -> None:
        code = _post(server, body, key=None).status_code
        with lock:
            codes.append(code)

    try:
        embedded_generator.lock.acquire()  # the batcher blocks in generate: nothing leaves the queue
        first = threading.Thread(target=one)
        first.start()
        deadline = time.time() + 30
        while not httpx.get(f"{server.url}/health").json()["busy"]:
            assert time.time() < deadline
            time.sleep(0.02)
        pool = cf.ThreadPoolExecutor(49)
        futures = [pool.submit(one) for _ in range(49)]
        while len(codes) < 47:  # the refusals come back while the model is still held
            assert time.time() < deadline
            time.sleep(0.02)
        assert Counter(codes) == {429: 47}
        r = _post(server, body, key=None)
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
    finally:
        embedded_generator.lock.release()
    first.join(120)
    cf.wait(futures, 120)
    pool.shutdown()
    server.stop()
    assert Counter(codes) == {429: 47, 200: 3}


def test_streamed_stop_strings_are_honoured(fake_server):
    c = openai.OpenAI(base_url=f"{fake_server.url}/v1", api_key="none", max_retries=0)
    stream = c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x"}],
                                       max_tokens=20, stream=True, stop=["because"])
    text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    assert text == "CSAT: 4/5 "


@pytest.mark.slow
def test_ccr_serve_in_the_foreground(tmp_path):
    """The real command: loads the embedded model, answers the openai client, refuses a request
    without the key, stops cleanly on Ctrl-C and records a succeeded serve job."""
    env = dict(os.environ, CCR_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", "0", "--api-key", KEY,
                             "--default-max-tokens", "4"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        url = serve_url(proc, 180)
        c = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=120)
        reply = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
        assert reply.choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url, api_key="nope", max_retries=0).models.list()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "requests served" in out
    from engine.core import store

    db = store.connect(tmp_path / "home")
    assert db.execute("SELECT kind, status FROM jobs").fetchall() == [("serve", "succeeded")]


def _teacher_example() -> dict:
    from engine.data import synth, tasks

    ex = synth.make_example("demo", "test", 0)
    user = next(m["content"] for m in ex["messages"] if m["role"] == "user")
    return {"transcript": tasks.split_user_content(user)[0], "messages": ex["messages"], "task": ex["meta"]["task"],
            "labels": ex["meta"]["labels"], "id": ex["meta"]["id"]}


@pytest.mark.slow
def test_round_trip_phase1_openai_teacher_generates_through_ccr_serve(real_server, monkeypatch):
    """Phase 1's OpenAI-compatible teacher backend, pointed at our server, gets a chain back."""
    from engine.chains import teacher
    from engine.chains.chain import parse_chain
    from engine.core.config import GenerateConfig

    monkeypatch.setenv("CCR_TEST_SERVE_KEY", KEY)
    before = httpx.get(f"{real_server.url}/health").json()["served"]
    cfg = GenerateConfig(backend="openai", base_url=f"{real_server.url}/v1", teacher=MODEL,
                         api_key_env="CCR_TEST_SERVE_KEY", guided=False, max_new_tokens=12, http_retries=0)
    out = teacher.teach([_teacher_example()], cfg, temperature=0.0, seed=1)
    assert len(out) == 1 and out[0].completion_tokens > 0
    assert parse_chain(out[0].text)["final_answer"]  # the teacher put the reference answer at the end
    assert httpx.get(f"{real_server.url}/health").json()["served"] == before + 1
    monkeypatch.setenv("CCR_TEST_SERVE_KEY", "wrong")
    with pytest.raises(teacher.TeacherError, match="API key"):
        teacher.teach([_teacher_example()], cfg)


class HeldStream:
    """A streamed model that makes one piece, then waits for the server to say stop (bounded, so a
    broken server fails the test instead of hanging it). A prompt of "free" streams without waiting."""

    name = "held"
    device = "cpu"

    def __init__(self):
        self.lock = threading.Lock()
        self.pieces = 0
        self.stopped = threading.Event()

    def prompt_ids(self, messages, continuation=""):
        return [1, 2, 3]

    def count_tokens(self, text):
        return len(text.split())

    def stream(self, messages, max_new_tokens=256, temperature=0.0, top_p=1.0, seed=None, should_stop=None):
        with self.lock:
            for i in range(max_new_tokens):
                if should_stop():
                    self.stopped.set()
                    return
                self.pieces += 1
                yield f"w{i} "
                deadline = time.monotonic() + 60
                while messages[-1]["content"] != "free" and not should_stop() and time.monotonic() < deadline:
                    time.sleep(0.005)


def test_a_dropped_stream_stops_generation_at_once():
    """The client reads the first piece and hangs up: the model's should_stop() turns true and
    generation ends there (1 piece of a possible 4000), and the next request is served."""
    gen = HeldStream()
    server = serve.Server(ServeConfig(model="held", port=0), generator=gen).start()
    try:
        body = {"model": "held", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4000, "stream": True}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=120) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: ") and '"w0 "' in line:
                    break  # leaving the block closes the connection mid-stream
        assert gen.stopped.wait(120)
        assert gen.pieces == 1
        free = {"model": "held", "messages": [{"role": "user", "content": "free"}], "max_tokens": 3, "stream": True}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=free, timeout=120) as r:
            lines = [x for x in r.iter_lines() if x]
        chunks = [json.loads(x[6:]) for x in lines[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert (r.status_code, text, lines[-1]) == (200, "w0 w1 w2 ", "data: [DONE]")
        assert gen.pieces == 4
    finally:
        server.stop()


@pytest.mark.slow
def test_a_tiny_temperature_is_greedy_not_a_5xx(real_server, embedded_generator):
    """temperature 1e-300 divided the logits into inf and the sampler raised (a 500 for the whole
    batch); below 1e-5 the server now decodes greedily."""
    messages = [{"role": "user", "content": "Say hello."}]
    r = _post(real_server, {"model": MODEL, "messages": messages, "max_tokens": 4, "temperature": 1e-300, "seed": 1})
    assert r.status_code == 200, r.text
    greedy = embedded_generator.generate([messages], max_new_tokens=4)[0].text
    assert r.json()["choices"][0]["message"]["content"] == greedy
