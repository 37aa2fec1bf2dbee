"""A tiny OpenAI-compatible chat server for Phase 1 tests: a real HTTP teacher on 127.0.0.1.

It counts the requests it answers, and its behaviour is set per test:

- ``quality``: "good" (a chain that passes), "bad" (structure without content), or
  "bad-greedy" (bad when temperature == 0, good otherwise: exercises the retry);
- ``fail_first``: answer the first N requests with these HTTP statuses (e.g. [429, 500]);
- ``require_key``: answer 401 without ``Authorization: Bearer <key>``;
- ``delay``: seconds to sleep before answering;
- ``hold(after=k)``: hold every completion request from the (k+1)-th next one on, unanswered,
  until ``release()`` (answered as usual) or ``drop()`` (closed unanswered and not counted: its
  client was killed). ``wait_held()`` returns once a request is held. Fault tests kill a child
  while it waits on a held request, so the kill lands mid-run on a machine of any speed;
- ``answer``: ``answer(prompt, body) -> text`` replaces the answer (e.g. one that echoes the
  transcript, for prompt-injection tests).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from engine.chain import render_chain


def _words(prompt: str) -> list[str]:
    m = re.search(r"=== BEGIN TRANSCRIPT.*?===\n(.*?)\n=== END TRANSCRIPT", prompt, re.S)
    text = m.group(1) if m else prompt
    seen = []
    for w in re.findall(r"[A-Za-z]{5,}", text):
        w = w.lower()
        if w not in seen and w not in ("agent", "customer", "thanks", "thank", "hello", "calling"):
            seen.append(w)
    return seen or ["billing", "refund", "transfer", "account", "service"]


def good_chain(prompt: str) -> str:
    """A chain with real-looking content grounded in the transcript's words (passes the scorer)."""
    w = _words(prompt)

    def g(i: int) -> str:
        return w[i % len(w)]

    steps = {
        1: f"The customer sounded frustrated about the {g(0)} because the {g(1)} problem had already cost her time, "
           f"and she relaxed once the agent explained the {g(2)} fix.",
        2: f"The agent stayed polite and explained the {g(3)} clearly, since the customer needed reassurance; "
           f"the verification step was skipped, which matters for compliance.",
        3: f"Interaction quality was mixed because the hold around the {g(4)} lasted several minutes, "
           f"although the closing summarised the {g(5)} outcome well.",
        4: f"The root cause was the {g(6)} error in the account, which led to the {g(7)} complaint in the first place.",
        5: f"Business impact: churn risk drops because the {g(8)} was resolved on first contact, saving a repeat call "
           f"and lowering handle time and cost, while CSAT should rise.",
    }
    analysis = {
        "Quality Metrics": f"Resolution on first contact, one hold of several minutes, and clear wording about the {g(9)}.",
        "Key Strengths": f"Clear explanation of the {g(10)} and a warm tone throughout the conversation.",
        "Critical Issues": f"Identity verification was skipped before discussing the {g(11)}, a compliance gap.",
        "Patterns & Trends": f"Long holds appear whenever agents look up {g(12)} records manually.",
    }
    insights = {
        "Immediate Coaching": f"Coach the agent to verify identity before opening the {g(13)} record.",
        "Process Improvements": f"Add a lookup shortcut for {g(14)} history to cut hold times.",
        "Business Actions": f"Send a follow-up email confirming the {g(15)} fix to protect retention and reduce churn risk.",
        "Strategic Insights": f"Track repeat contacts about {g(16)} issues to find billing system defects early.",
    }
    return render_chain(steps, analysis, insights, "See the reference answer.")


BAD_CHAIN = render_chain({n: "N/A" for n in range(1, 6)}, {}, {}, "n/a")


class FakeTeacher:
    def __init__(self, quality: str = "good", fail_first=(), require_key: str | None = None, delay: float = 0.0,
                 answer=None):
        self.quality = quality
        self.answer = answer
        self.fail_first = list(fail_first)
        self.require_key = require_key
        self.delay = delay
        self.calls = 0          # requests answered with a completion
        self.requests = 0       # every request, failures included
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        self.arrived = 0        # completion requests that reached the answering stage
        self.held = 0           # requests waiting on the hold now
        self._hold_from: int | None = None
        self._gate: dict | None = None  # {"event": Event, "action": "release"|"drop"} of the current hold
        self._changed = threading.Condition(self.lock)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> "FakeTeacher":
        self.thread.start()
        return self

    def hold(self, after: int = 0) -> None:
        """Hold every completion request from the (after+1)-th next one on, until release() or drop()."""
        with self.lock:
            self._hold_from = self.arrived + after + 1
            self._gate = {"event": threading.Event(), "action": None}

    def wait_held(self, timeout: float = 120.0) -> None:
        """Return once at least one request is held (fails after ``timeout`` s: a test bug, not speed)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.held > 0, timeout):
                raise AssertionError(f"no request was held within {timeout:.0f} s (arrived {self.arrived})")

    def _open(self, action: str) -> None:
        with self.lock:
            gate, self._gate, self._hold_from = self._gate, None, None
        if gate:
            gate["action"] = action
            gate["event"].set()

    def release(self) -> None:
        """Stop holding; held requests are answered as usual."""
        self._open("release")

    def drop(self) -> None:
        """Stop holding; held requests are closed unanswered and not counted (their client is gone)."""
        self._open("drop")

    def stop(self) -> None:
        self.drop()
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake.lock:
                    fake.requests += 1
                    fail = fake.fail_first.pop(0) if fake.fail_first else None
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if fake.require_key and self.headers.get("Authorization") != f"Bearer {fake.require_key}":
                    return self._send(401, {"error": {"message": "invalid api key"}})
                if fail:
                    return self._send(fail, {"error": {"message": f"injected {fail}"}})
                with fake.lock:
                    fake.arrived += 1
                    gate = fake._gate if fake._hold_from is not None and fake.arrived >= fake._hold_from else None
                    if gate:
                        fake.held += 1
                        fake._changed.notify_all()
                if gate:
                    gate["event"].wait()
                    with fake.lock:
                        fake.held -= 1
                    if gate["action"] == "drop":
                        self.close_connection = True
                        return
                if fake.delay:
                    time.sleep(fake.delay)
                prompt = body["messages"][-1]["content"]
                bad = fake.quality == "bad" or (fake.quality == "bad-greedy" and not body.get("temperature"))
                if fake.answer is not None:
                    text = fake.answer(prompt, body)
                elif "Write only this part" in prompt:  # guided mode: one part per request
                    text = "N/A" if bad else (
                        "the customer was upset because the refund for the order was late twice, "
                        "so the agent apologised and credited the account.")
                else:
                    text = BAD_CHAIN if bad else good_chain(prompt)
                with fake.lock:
                    fake.calls += 1
                    fake.bodies.append(body)
                self._send(200, {"id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model"),
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4}})

        return Handler


if __name__ == "__main__":  # run standalone: python tests/fake_teacher_server.py
    t = FakeTeacher().start()
    print(t.base_url, flush=True)
    t.thread.join()
