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
  transcript, for prompt-injection tests); returning None answers as usual. ``judge_answer``
  makes one that answers the judge model's prompts (engine/chains/judge.py) with a verdict.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from engine.chains import quality
from engine.chains.chain import render_chain


def _words(prompt: str) -> list[str]:
    """The transcript's longer words, in order, without the words that would make a sentence a
    claim the scorer checks (moods, churn levels, behaviours, channels...): the chain below uses
    them as neutral topic words only."""
    m = re.search(r"=== BEGIN TRANSCRIPT.*?===\n(.*?)\n=== END TRANSCRIPT", prompt, re.S)
    text = m.group(1) if m else prompt
    seen = []
    for w in re.findall(r"[A-Za-z]{5,}", text):
        w = w.lower()
        if (w not in seen and w not in ("agent", "customer", "thanks", "thank", "hello", "calling")
                and w not in quality.CLAIM_WORDS):
            seen.append(w)
    return seen or ["billing", "account", "service", "request", "details"]


def _facts(prompt: str) -> dict:
    """The labels the prompt states on its ``Known facts:`` line (engine.chains.prompt writes it)."""
    m = re.search(r"^Known facts: (.*)$", prompt, re.M)
    facts = {}
    for part in (m.group(1).rstrip(".").split("; ") if m else []):
        key, _, value = part.partition(" ")
        if part.startswith("CSAT "):
            facts["csat"] = int(value.split("/")[0])
        elif part.startswith("QA score "):
            facts["quality"] = int(part.split()[2].split("/")[0])
        elif part.startswith("churn risk "):
            facts["churn"] = part.split()[2]
        elif part.startswith("sentiment "):
            facts["sentiment"] = part.split()[1]
        elif part.startswith("root cause "):
            facts["root_cause"] = part[len("root cause "):]
        elif part.startswith("coaching "):
            facts["coaching"] = [] if part == "coaching none" else part[len("coaching "):].split(", ")
    return facts


def good_chain(prompt: str) -> str:
    """A chain with real-looking content (it passes the scorer) that is faithful to the example:
    its claims follow the labels on the prompt's ``Known facts:`` line (a label the prompt lacks
    is not claimed), and its topic words come from the transcript, so it names nothing the call
    does not have."""
    w = _words(prompt)
    f = _facts(prompt)
    transcript = (re.search(r"=== BEGIN TRANSCRIPT.*?===\n(.*?)\n=== END TRANSCRIPT", prompt, re.S)
                  or re.search(r"(.*)", prompt, re.S)).group(1).lower()

    def g(i: int) -> str:
        return w[i % len(w)]

    mood = f.get("sentiment") or ({1: "negative", 2: "negative", 4: "positive", 5: "positive"}.get(f.get("csat"))
                                  if f.get("csat") else None) or "neutral"
    step1 = {
        "negative": f"The customer sounded frustrated about the {g(0)} because the {g(1)} problem had already cost "
                    f"them time, and the conversation about the {g(2)} did not win them back.",
        "positive": f"The customer ended the conversation satisfied because the agent explained the {g(2)} fix "
                    f"plainly, after some early concern about the {g(0)} and the {g(1)} problem.",
        "neutral": f"The customer stayed matter-of-fact about the {g(0)} because the {g(1)} question was practical, "
                   f"and the tone around the {g(2)} stayed even to the end.",
    }[mood]
    qa = f.get("quality")
    if qa is not None and qa < 60:
        step2 = (f"The agent fell short on the QA rubric because the {g(3)} was handled without clear ownership, "
                 f"since the customer needed reassurance that never came.")
        strength = f"The agent kept the {g(10)} details on record for the next contact with this customer."
        band = "poor"
    elif qa is not None and qa < 85:
        step2 = (f"The agent handled parts of the conversation and missed others, since the customer needed a "
                 f"fuller explanation of the {g(3)} than the one given.")
        strength = f"A plain explanation of the {g(10)} and a steady tone through most of the conversation."
        band = "mixed"
    else:
        step2 = (f"The agent stayed polite and explained the {g(3)} plainly, since the customer needed "
                 f"reassurance about the next steps.")
        strength = f"A plain explanation of the {g(10)} and a warm tone throughout the conversation."
        band = "high" if qa is not None else "as expected"
    coaching = f.get("coaching")
    if coaching is not None:
        if "identity verification" in coaching:
            step2 += " The identity check was skipped before the account was discussed, a compliance gap."
        else:
            step2 += " The account was checked before any details were discussed, as compliance requires."
    step3 = (f"Interaction quality was {band} because the {g(4)} discussion set the pace of the conversation, and "
             f"the closing summarised the {g(5)} outcome for the customer.")
    if "hold" in transcript:
        step3 += f" The wait while the agent checked the {g(4)} added time to the conversation."
    cause = f.get("root_cause")
    step4 = (f"The root cause was {cause}. " if cause else f"The root cause was the {g(6)} error in the account. ") + (
        f"The {g(7)} complaint followed from it, because the problem was not caught before this contact.")
    churn = f.get("churn")
    step5 = (f"Business impact: churn risk is {churn} because the {g(8)} outcome shapes whether the customer stays, "
             if churn else f"Business impact: the {g(8)} outcome drives retention because it shapes whether the "
                           f"customer stays, ") + "and every repeat call adds handle time and cost to serve."
    steps = {1: step1, 2: step2, 3: step3, 4: step4, 5: step5}
    issue = (f"The gaps in {', '.join(coaching)} hurt the conversation, especially around the {g(11)}."
             if coaching else f"No major gap beyond a slow start on the {g(11)} question.")
    analysis = {
        "Quality Metrics": f"Resolution handling, the {g(9)} explanation and the closing were reviewed against the rubric.",
        "Key Strengths": strength,
        "Critical Issues": issue,
        "Patterns & Trends": f"Long waits appear whenever agents look up {g(12)} records manually.",
    }
    insights = {
        "Immediate Coaching": (f"Coach the agent on {' and '.join(coaching[:2])} before the next {g(13)} conversation."
                               if coaching else f"Coach the agent to keep this standard on {g(13)} conversations."),
        "Process Improvements": f"Add a lookup shortcut for {g(14)} history to cut handling time.",
        "Business Actions": f"Send a follow-up email confirming the {g(15)} outcome to protect retention and reduce churn risk.",
        "Strategic Insights": f"Track repeat contacts about {g(16)} issues to find system defects early.",
    }
    return render_chain(steps, analysis, insights, "See the reference answer.")


BAD_CHAIN = render_chain({n: "N/A" for n in range(1, 6)}, {}, {}, "n/a")


def judge_answer(unfaithful=lambda prompt: False, reason: str = "The analysis names a refund the call never had.",
                 sentences=lambda prompt: [], raw=None):
    """An ``answer`` callable for a FakeTeacher serving as the judge model: a judge prompt (it
    ends with engine.chains.judge's instruction) gets a verdict JSON, rating 2 when
    ``unfaithful(prompt)`` and 5 otherwise, with ``reason`` and ``sentences(prompt)`` (sentences
    of the chain to name); any other prompt is answered as usual (None). ``raw``: answer judge
    prompts with this text instead (a judge that does not answer with a verdict)."""
    from engine.chains import judge

    def answer(prompt: str, body: dict):
        if judge.INSTRUCTION not in prompt:
            return None
        if raw is not None:
            return raw
        bad = unfaithful(prompt)
        verdict = {"rating": 2 if bad else 5, "reason": reason if bad else "Every statement is supported.",
                   "sentences": sentences(prompt) if bad else []}
        return "Here is my verdict:\n```json\n" + json.dumps(verdict) + "\n```"

    return answer


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
                text = fake.answer(prompt, body) if fake.answer is not None else None
                if text is not None:
                    pass
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
