"""The one bounded queue and the one thread that turns it into batched generate calls.

Every request becomes a ``Pending`` item; when the queue is full ``submit`` raises ``QueueFull``
(the app answers 429). The thread takes the oldest item, waits ``batch_wait_s`` for company, and
generates it with up to ``max_batch - 1`` queued items that share its sampling settings in one
batched ``LocalGenerator`` call; a streamed item is generated alone with ``LocalGenerator.stream``.
The model is only ever touched from this thread. ``engine.serving.serve`` says why.
"""

import asyncio
import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from engine.serving.requests import RequestError, _short


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
