"""Test doubles for Phase 3: a generator with LocalGenerator's interface and no model.

They let resume, reporting and server-plumbing tests run in milliseconds and deterministically;
the real embedded model is exercised by the tests marked slow.
"""

from __future__ import annotations

import threading
import time

from engine.core.generation import Completion


class FakeGenerator:
    """Answers every prompt with ``answer(messages)``; records how many prompts it generated."""

    name = "fake-model"
    device = "cpu"
    info = {"name": "fake-model", "device": "cpu", "dtype": "float32", "precision_reason": "fp32: a fake model"}

    def __init__(self, answer=None, delay: float = 0.0, name: str = "fake-model"):
        self.answer = answer or (lambda messages: "CSAT: 3/5")
        self.delay = delay
        self.name = name
        self.lock = threading.Lock()
        self.prompts: list[list[dict]] = []

    def prompt_ids(self, messages, continuation: str = "") -> list[int]:
        return list(range(sum(len(m["content"].split()) for m in messages) + 1))

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompts, max_new_tokens=256, temperature=0.0, top_p=1.0, seed=None, stop=None, batch_size=8,
                 continuations=None, max_prompt_tokens=None, progress=None, on_row=None):
        with self.lock:
            time.sleep(self.delay)
            self.prompts.extend(prompts)
            out = []
            for i, p in enumerate(prompts):
                text = self.answer(p)
                words = text.split(" ")
                finish = "length" if len(words) > max_new_tokens else "stop"
                text = " ".join(words[:max_new_tokens])
                out.append(Completion(text, len(self.prompt_ids(p)), min(len(words), max_new_tokens), finish, 0.01))
                if on_row:
                    on_row(i, out[-1])
                if progress:
                    progress({"stage": "decode", "done": i + 1, "of": len(prompts), "tokens": 0, "step": i + 1,
                              "budget": max_new_tokens})
            return out

    def generate_ids(self, ids, max_new_tokens=256, temperature=0.0, top_p=1.0, seed=None, stop=None, batch_size=8):
        return self.generate([[{"role": "user", "content": "x " * len(i)}] for i in ids], max_new_tokens)

    def stream(self, messages, max_new_tokens=256, temperature=0.0, top_p=1.0, seed=None, should_stop=None):
        with self.lock:
            for word in self.answer(messages).split(" ")[:max_new_tokens]:
                if should_stop and should_stop():
                    return
                time.sleep(self.delay)
                yield word + " "
