"""Local text generation with transformers: batched, streamed, one place for every phase.

Phase 1 (teacher chains), Phase 3 (evaluation, batch inference, the API server, the Compare
page) all generate through ``LocalGenerator``. Why it looks like this:
- Batches are grouped by prompt length and left-padded, so short prompts don't pay for long
  ones and every row's new tokens start at the same column.
- Rows stop at the chat template's end token (``<|im_end|>`` for ChatML models) or any stop
  string; finished rows leave the batch's KV cache, so a batch costs what its live rows cost
  (``engine.core.decoding``: a preallocated cache, no per-step copy; measured in docs/benchmarks.md).
- Greedy decoding in fp32 gives the same text batched or not; sampling takes a seed so a retry
  with another seed gives another sample, reproducibly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from engine.core.model_catalog import DEFAULT_MODEL, load_model


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end token or stop string) | "length"
    seconds: float = 0.0


def _sampling(temperature: float, top_p: float, seed: int | None) -> dict:
    """generate() arguments for greedy decoding (temperature 0) or seeded sampling."""
    if temperature and temperature > 0:
        if seed is not None:
            import torch

            torch.manual_seed(seed)
        return dict(do_sample=True, temperature=float(temperature), top_p=float(top_p))
    return dict(do_sample=False, temperature=None, top_p=None, top_k=None)


class LocalGenerator:
    """A loaded model and tokenizer plus batched generation over chat messages.

    Not thread-safe: one generation at a time (``lock`` serialises callers such as the API
    server's batcher and the Compare page).
    """

    def __init__(self, model: str = DEFAULT_MODEL, home=None, device: str | None = None, dtype: str | None = None,
                 loaded=None):
        if loaded is not None:
            self.model, self.tokenizer, self.info = loaded
        else:
            self.model, self.tokenizer, self.info = load_model(model, home=home, device=device, dtype=dtype)
        self.name = self.info.get("name", model)
        self.lock = threading.Lock()
        tok = self.tokenizer
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        end_ids = {tok.eos_token_id}
        im_end = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else None
        if im_end is not None:
            end_ids.add(im_end)
        self.end_ids = sorted(i for i in end_ids if i is not None)

    @property
    def device(self) -> str:
        return str(next(self.model.parameters()).device)

    def prompt_ids(self, messages: list[dict], continuation: str = "") -> list[int]:
        """Token ids of the chat prompt, ending where the assistant speaks (plus ``continuation``:
        text the assistant turn already starts with, as the structure-guided mode writes headers)."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text + continuation, add_special_tokens=False)["input_ids"]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, prompts: list[list[dict]], max_new_tokens: int = 256, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int | None = None, stop: list[str] | None = None, batch_size: int = 8,
                 continuations: list[str] | None = None, max_prompt_tokens: int | None = None,
                 progress=None, on_row=None) -> list[Completion]:
        """Complete every chat in ``prompts``; results come back in the input order.

        ``progress(event)``, when given, is called after every decode step with ``stage``
        ("decode"), ``done``/``of`` (rows finished of the batch's rows), ``tokens`` (new tokens so
        far in the batch), ``step`` and ``budget`` (max_new_tokens), so a caller can show motion
        inside a long batch (and stop it: an exception raised there ends the generation).
        ``on_row(index, completion)`` is called as each prompt's completion is done (``index`` into
        ``prompts``), before the rest of its batch ends, so a caller can store it at once."""
        ids = [self.prompt_ids(p, continuations[i] if continuations else "") for i, p in enumerate(prompts)]
        if max_prompt_tokens:
            ids = [x[-max_prompt_tokens:] for x in ids]  # keep the end: the instruction and the assistant cue
        return self.generate_ids(ids, max_new_tokens, temperature, top_p, seed, stop, batch_size, progress, on_row)

    def generate_ids(self, ids: list[list[int]], max_new_tokens: int = 256, temperature: float = 0.0,
                     top_p: float = 1.0, seed: int | None = None, stop: list[str] | None = None,
                     batch_size: int = 8, progress=None, on_row=None) -> list[Completion]:
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # group similar lengths
        out: list[Completion | None] = [None] * len(ids)
        with self.lock:
            for start in range(0, len(order), max(1, batch_size)):
                chunk = order[start:start + batch_size]
                results = self._generate_batch(
                    [ids[i] for i in chunk], max_new_tokens, temperature, top_p, None if seed is None else seed + start,
                    stop, progress, on_row and (lambda j, c, chunk=chunk: on_row(chunk[j], c)))
                for i, r in zip(chunk, results):
                    out[i] = r
        return out  # type: ignore[return-value]

    def _generate_batch(self, batch: list[list[int]], max_new_tokens: int, temperature: float, top_p: float,
                        seed: int | None, stop: list[str] | None, progress=None, on_row=None) -> list[Completion]:
        """Decode one batch on a preallocated cache (``engine.core.decoding``), dropping finished rows.

        ``on_row(index, completion)`` is called as each row finishes (index into ``batch``), so a
        caller can store it before the slowest row of the batch ends. A row's ``seconds`` is its
        share of the batch's wall time: the prefill split over all rows, each decode step split over
        the rows still writing in it, so the shares of a batch add up to its time (estimates sum them)."""
        import torch

        from engine.core import decoding as D

        rows_ = _Rows(self.tokenizer, batch, stop, on_row, t0=time.time())
        budget = max(0, int(max_new_tokens))
        if budget == 0:
            rows_.charge()
            for r in range(len(batch)):
                rows_.finish(r, "length")
            return rows_.out  # type: ignore[return-value]
        ids, pmask = D.left_pad(batch, self.tokenizer.pad_token_id)
        with torch.inference_mode():
            cache, logits = D.prefill(self.model, ids, pmask, ids.shape[1] + budget)
            rng = None
            if temperature and temperature > 0 and seed is not None:
                rng = torch.Generator(device=logits.device).manual_seed(int(seed))
            rows_.charge()  # the prefill, split over every row
            self._decode(rows_, cache, logits, pmask, budget, temperature, top_p, rng, progress)
        for r in range(len(batch)):  # rows still open when the loop ended (none, unless the budget is 0)
            if rows_.out[r] is None:
                rows_.finish(r, "length")
        return rows_.out  # type: ignore[return-value]

    def _decode(self, rows_: "_Rows", cache, logits, pmask, budget: int, temperature: float, top_p: float, rng,
                progress=None) -> None:
        """The decode loop of ``_generate_batch``: sample a token for every row in the cache
        (``decoding.sample``), record it (``_Rows.take``), drop the finished rows
        (``decoding.drop_finished``), and run the next step on the rows left."""
        import torch

        from engine.core import decoding as D

        rows, width = pmask.shape
        device, end = self.device, frozenset(self.end_ids)
        mask = torch.cat([pmask, torch.zeros((rows, budget), dtype=torch.long)], dim=1)
        next_pos = D.positions(pmask)[:, -1] + 1
        present = list(range(rows))  # the batch rows still in the cache
        active = [True] * rows       # per position in ``present``
        n_tokens = 0
        for t in range(budget):
            rows_.charge()  # the step just computed (and this sampling) was for the rows still open
            nxt = D.sample(logits, temperature, top_p, rng)
            n_tokens += rows_.take(nxt.tolist(), present, active, end, budget)
            if progress:
                progress({"stage": "decode", "done": sum(o is not None for o in rows_.out), "of": rows,
                          "tokens": n_tokens, "step": t + 1, "budget": budget})
            if not any(active):
                break
            present, active, (mask, next_pos, nxt) = D.drop_finished(cache, present, active, mask, next_pos, nxt)
            col = width + t
            mask[:, col] = 1
            step = self.model(input_ids=nxt.view(-1, 1).to(device), attention_mask=mask[:, :col + 1].to(device),
                              position_ids=next_pos.view(-1, 1).to(device), cache=cache, use_cache=True)
            logits = step.logits[:, -1, :].float()
            next_pos = next_pos + 1

    def stream(self, messages: list[dict], max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
               seed: int | None = None, should_stop=None) -> Iterator[str]:
        """Yield the completion of one chat piece by piece as it is generated.

        ``should_stop()`` is polled at every token; when it returns true generation ends there,
        so a client that went away (or a stop string already seen) frees the model at once.
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), bool(should_stop and should_stop()), dtype=torch.bool,
                                  device=input_ids.device)

        ids = self.prompt_ids(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(input_ids=torch.tensor([ids], device=self.device), attention_mask=torch.ones(
            (1, len(ids)), dtype=torch.long, device=self.device), max_new_tokens=max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.end_ids, streamer=streamer,
            stopping_criteria=StoppingCriteriaList([_Stop()]))
        kwargs.update(_sampling(temperature, top_p, seed))
        errors: list[BaseException] = []

        def run():
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surface errors to the consumer instead of hanging it
                errors.append(exc)
                streamer.end()

        with self.lock:
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            for piece in streamer:
                if piece:
                    yield piece
            thread.join()
        if errors:
            raise errors[0]


class _Rows:
    """The rows of one batch as ``LocalGenerator`` decodes them: their new tokens, their
    completion once finished (``finish``) and each row's share of the batch's wall time."""

    def __init__(self, tokenizer, batch: list[list[int]], stop: list[str] | None, on_row, t0: float):
        self.tokenizer, self.batch, self.on_row = tokenizer, batch, on_row
        self.stop = [s for s in (stop or []) if s]
        self.tail = max((len(s) for s in self.stop), default=0) + 2  # a stop string of n characters spans <= n tokens
        self.generated: list[list[int]] = [[] for _ in batch]
        self.out: list[Completion | None] = [None] * len(batch)
        self.share = [0.0] * len(batch)  # each row's part of the wall time so far
        self.last = t0

    def charge(self) -> None:
        """Split the wall time since the last charge over the rows still open."""
        now = time.time()
        open_rows = [r for r in range(len(self.batch)) if self.out[r] is None]
        for r in open_rows:
            self.share[r] += (now - self.last) / len(open_rows)
        self.last = now

    def finish(self, r: int, reason: str) -> None:
        text = self.tokenizer.decode(self.generated[r], skip_special_tokens=True)
        cuts = [text.find(s) for s in self.stop if s in text]
        if cuts:
            text, reason = text[:min(cuts)], "stop"
        self.out[r] = Completion(text, len(self.batch[r]), len(self.generated[r]), reason, round(self.share[r], 4))
        if self.on_row:
            self.on_row(r, self.out[r])

    def take(self, tokens: list[int], present: list[int], active: list[bool], end: frozenset, budget: int) -> int:
        """Record a step's sampled ``tokens`` (one per row in the cache: ``present`` maps it to the
        batch row); a row ends at an end token, a stop string or its budget (``active`` turns
        false). Returns how many tokens were kept."""
        kept = 0
        for j, token in enumerate(tokens):
            if not active[j]:
                continue
            r = present[j]
            if token in end:
                active[j] = False
                self.finish(r, "stop")
                continue
            self.generated[r].append(token)
            kept += 1
            if self.stop and any(s in self.tokenizer.decode(self.generated[r][-self.tail:], skip_special_tokens=True)
                                 for s in self.stop):
                active[j] = False
                self.finish(r, "stop")
            elif len(self.generated[r]) >= budget:
                active[j] = False
                self.finish(r, "length")
        return kept
