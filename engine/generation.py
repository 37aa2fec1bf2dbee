"""Local text generation with transformers: batched, streamed, one place for every phase.

Phase 1 (teacher chains), Phase 3 (evaluation, batch inference, the API server, the Compare
page) all generate through ``LocalGenerator``. Why it looks like this:
- Batches are grouped by prompt length and left-padded, so short prompts don't pay for long
  ones and every row's new tokens start at the same column.
- Rows stop at the chat template's end token (``<|im_end|>`` for ChatML models) or any stop
  string; a finished row stops counting towards the output.
- Greedy decoding in fp32 gives the same text batched or not; sampling takes a seed so a retry
  with another seed gives another sample, reproducibly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from engine.models import DEFAULT_MODEL, load_model


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


class _Progress:
    """A stopping criterion that never stops: it reports each decode step to ``progress``
    (generate() calls its stopping criteria once per new token)."""

    def __init__(self, progress, width: int, budget: int, end_ids: list[int]):
        self.progress, self.width, self.budget, self.end_ids = progress, width, budget, end_ids

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        new = input_ids[:, self.width:]
        ended = torch.isin(new, torch.tensor(self.end_ids, device=new.device)).any(dim=1)
        rows = int(new.shape[0])
        # tokens before each row's end token (or all of them): what the rows have written so far
        first_end = torch.where(ended, torch.isin(new, torch.tensor(self.end_ids, device=new.device)).int().argmax(1),
                                torch.full((rows,), new.shape[1], device=new.device))
        self.progress({"stage": "decode", "done": int(ended.sum()), "of": rows, "tokens": int(first_end.sum()),
                       "step": int(new.shape[1]), "budget": self.budget})
        return torch.zeros((rows,), dtype=torch.bool, device=input_ids.device)


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
                 progress=None) -> list[Completion]:
        """Complete every chat in ``prompts``; results come back in the input order.

        ``progress(event)``, when given, is called after every decode step with ``stage``
        ("decode"), ``done``/``of`` (rows finished of the batch's rows), ``tokens`` (new tokens so
        far in the batch), ``step`` and ``budget`` (max_new_tokens), so a caller can show motion
        inside a long batch."""
        ids = [self.prompt_ids(p, continuations[i] if continuations else "") for i, p in enumerate(prompts)]
        if max_prompt_tokens:
            ids = [x[-max_prompt_tokens:] for x in ids]  # keep the end: the instruction and the assistant cue
        return self.generate_ids(ids, max_new_tokens, temperature, top_p, seed, stop, batch_size, progress)

    def generate_ids(self, ids: list[list[int]], max_new_tokens: int = 256, temperature: float = 0.0,
                     top_p: float = 1.0, seed: int | None = None, stop: list[str] | None = None,
                     batch_size: int = 8, progress=None) -> list[Completion]:
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # group similar lengths
        out: list[Completion | None] = [None] * len(ids)
        with self.lock:
            for start in range(0, len(order), max(1, batch_size)):
                chunk = order[start:start + batch_size]
                results = self._generate_batch([ids[i] for i in chunk], max_new_tokens, temperature, top_p,
                                               None if seed is None else seed + start, stop, progress)
                for i, r in zip(chunk, results):
                    out[i] = r
        return out  # type: ignore[return-value]

    def _generate_batch(self, batch: list[list[int]], max_new_tokens: int, temperature: float, top_p: float,
                        seed: int | None, stop: list[str] | None, progress=None) -> list[Completion]:
        import torch

        t0 = time.time()
        pad = self.tokenizer.pad_token_id
        width = max(len(x) for x in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, x in enumerate(batch):  # left padding
            input_ids[row, width - len(x):] = torch.tensor(x, dtype=torch.long)
            attention[row, width - len(x):] = 1
        device = self.device
        kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=self.end_ids)
        kwargs.update(_sampling(temperature, top_p, seed))
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        if progress:
            kwargs["stopping_criteria"] = [_Progress(progress, width, max_new_tokens, self.end_ids)]
        with torch.inference_mode():
            generated = self.model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                                            **kwargs)
        new = generated[:, width:].tolist()
        seconds = time.time() - t0
        results = []
        for row, x in zip(new, batch):
            n = len(row)
            finish = "length"
            for j, tok in enumerate(row):
                if tok in self.end_ids:
                    n, finish = j, "stop"
                    break
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            if stop:
                cuts = [text.find(s) for s in stop if s in text]
                if cuts:
                    text, finish = text[:min(cuts)], "stop"
            results.append(Completion(text, len(x), n, finish, seconds / len(batch)))
        return results

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
