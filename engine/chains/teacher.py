"""The teacher: one function, ``teach()``, turns examples into reasoning chains on any backend.

Backends (``cfg.backend``):

- ``local``: HF transformers in this process through ``engine.core.generation.LocalGenerator``
  (the embedded SmolLM2-135M by default, any HF id or folder on CUDA/MPS/CPU).
- ``openai``: any OpenAI-compatible ``/chat/completions`` endpoint (vLLM, SGLang, TGI, Ollama,
  llama.cpp server) with ``cfg.concurrency`` requests in flight, retries with exponential
  backoff on 429/5xx/connection errors, and errors that say what to fix (key, URL, model).

Modes (``cfg.guided``):

- guided (default): the chain's tags and headers are ours; the model writes each of the 13
  parts from a short prompt with a lead-in (see ``engine.chains.prompt``). Locally, every part of every
  example in a batch is decoded together by ``_guided_local``: the shared context (transcript
  and reference) of each example is prefilled once, its KV cache repeated for the 13 parts, and
  a plain decode loop drops finished rows as it goes. That is the throughput trick on CPU:
  decoding one token for 50 rows costs about what it costs for 2, and the expensive prefill of
  the ~450-token context happens once per example instead of once per part.
- free: one prompt, the model writes the whole chain; its final answer becomes the reference.

Why a hand-written decode loop instead of ``model.generate``: generate cannot start from a
cache shared by several rows, stops all rows at one rule, and costs several ms of Python per
step for logits processors we don't need; here a step is one forward and a few tensor ops.

Faithful by construction: each row of the guided decode has a mask of tokens it may not write
(``_ban_ids``): every token with a digit (a 135M model's numbers are invented: "10 minutes",
"2019") and the single-token forms of ``prompt.banned_words`` (channels the transcript never
mentions, praise the QA score rules out, moods the sentiment rules out). Real amounts and scores
reach the chain through the lead-ins, which are ours. One ``masked_fill`` per step.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import threading
import time
import weakref
from dataclasses import dataclass

from engine.chains import prompt as P

# One loaded local model per process (a job loads it once and reuses it for every batch).
_LOCAL: dict[tuple, object] = {}
_LOCAL_LOCK = threading.Lock()
# Token-id lists computed once per tokenizer (newline ids, digit ids, a banned word's ids). Keyed
# by the tokenizer object itself, weakly: an ``id()`` key could be inherited by the next
# tokenizer once the previous model is freed, handing it the wrong ids.
_TOKEN_IDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _ids_cache(tokenizer) -> dict:
    cache = _TOKEN_IDS.get(tokenizer)
    if cache is None:
        cache = _TOKEN_IDS[tokenizer] = {}
    return cache


class TeacherError(RuntimeError):
    """The teacher cannot be used as configured; the message says what to change."""


@dataclass
class TeacherOutput:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    calls: int = 1


def teacher_id(cfg) -> str:
    """The teacher part of a chain's key: the model, and for HTTP the backend too."""
    return cfg.teacher if cfg.backend == "local" else f"{cfg.backend}:{cfg.teacher}"


def prompt_key(cfg) -> str:
    """The prompt-version part of a chain's key: the template version and the mode."""
    return f"{version_of(cfg)}-{'guided' if cfg.guided else 'free'}"


def version_of(cfg) -> str:
    """The prompt version ``cfg`` asks for (``prompt_version``; ``prompt.PROMPT_VERSION`` without one)."""
    return str(getattr(cfg, "prompt_version", None) or P.PROMPT_VERSION)


def teach(examples: list[dict], cfg, temperature: float = 0.0, seed: int = 0, home=None,
          progress=None) -> list[TeacherOutput]:
    """Chains for ``examples`` (dicts with transcript, messages, task, labels) in input order.

    The one entry point for every backend and mode; ``temperature``/``seed`` are the attempt's
    sampling (a retry passes other values). ``progress(event)``, when given, is called as the
    work inside the call advances (a decode step, a finished request), so a job can show motion
    within one batch: ``event`` has ``stage`` (prefill, decode, requests), ``done`` and ``of``
    (rows or requests finished of all in the current chunk), ``tokens`` (new tokens so far in the
    chunk) and for decoding ``step`` of ``budget``.
    """
    if not examples:
        return []
    if cfg.backend == "local":
        gen = local_generator(cfg, home)
        if cfg.guided:
            return _guided_local(gen, examples, cfg, temperature, seed, progress)
        return _free_local(gen, examples, cfg, temperature, seed, progress)
    if cfg.backend == "openai":
        return _http(examples, cfg, temperature, seed, progress)
    raise TeacherError(f"unknown backend {cfg.backend!r} (expected local or openai)")


# ---------------------------------------------------------------------------------------------
# Local transformers
# ---------------------------------------------------------------------------------------------


def local_generator(cfg, home=None):
    """The process's LocalGenerator for (teacher, device, dtype), loaded on first use."""
    from engine.core.generation import LocalGenerator

    key = (cfg.teacher, cfg.device, cfg.dtype, str(home))
    with _LOCAL_LOCK:
        if key not in _LOCAL:
            _LOCAL.clear()  # one model at a time: free the previous one's memory
            _LOCAL[key] = LocalGenerator(cfg.teacher, home=home, device=None if cfg.device == "auto" else cfg.device,
                                         dtype=None if cfg.dtype == "auto" else cfg.dtype)
        return _LOCAL[key]


def _newline_ids(tokenizer) -> list[int]:
    """Token ids whose text contains a line break (a guided part is one paragraph)."""
    cache = _ids_cache(tokenizer)
    if "newline" not in cache:
        vocab = tokenizer.get_vocab()
        # byte-level BPE writes "\n" as "Ċ"; sentencepiece vocabularies hold "<0x0A>" or "\n"
        cache["newline"] = sorted(i for t, i in vocab.items() if "Ċ" in t or "\n" in t or t == "<0x0A>")
    return cache["newline"]


def _ban_ids(tokenizer, example: dict) -> list[int]:
    """Token ids a guided part of ``example`` may not produce: any token holding a digit, and
    the single-token forms (" word", " Word", "word", "Word") of ``prompt.banned_words``; a word
    that is several tokens is left alone (masking its first piece would ban other words)."""
    cache = _ids_cache(tokenizer)
    if "digit" not in cache:
        cache["digit"] = sorted(i for t, i in tokenizer.get_vocab().items() if any(c.isdigit() for c in t))
    ids = set(cache["digit"])
    for word in P.banned_words(example):
        wkey = ("word", word)
        if wkey not in cache:
            found = set()
            for form in (" " + word, " " + word.capitalize(), word, word.capitalize()):
                t = tokenizer(form, add_special_tokens=False)["input_ids"]
                if len(t) == 1:
                    found.add(t[0])
            cache[wkey] = sorted(found)
        ids.update(cache[wkey])
    return sorted(ids)


def _free_local(gen, examples, cfg, temperature, seed, progress=None) -> list[TeacherOutput]:
    prompts = [P.free_messages(ex, version_of(cfg)) for ex in examples]
    outs = gen.generate(prompts, max_new_tokens=cfg.max_new_tokens, temperature=temperature, top_p=cfg.top_p,
                        seed=seed, batch_size=cfg.batch_size, continuations=[P.FREE_LEAD] * len(prompts),
                        progress=progress)
    return [TeacherOutput(P.finish_free(ex, P.FREE_LEAD + o.text), o.prompt_tokens, o.completion_tokens, o.seconds)
            for ex, o in zip(examples, outs)]


def _part_ids(gen, example: dict, version: str = P.PROMPT_VERSION) -> tuple[list[int], list[list[int]], list[dict]]:
    """(shared prefix ids, per-part suffix ids, part specs) for one example.

    The prompts differ only after the shared context, so the text is split there and the two
    halves tokenized apart: the prefix ids are then identical for every part by construction.
    Each spec carries ``ban_ids``, the tokens its decode masks (``_ban_ids``; one list shared by
    the example's parts).
    """
    tok = gen.tokenizer
    specs = P.guided_prompts(example, version)
    ban = _ban_ids(tok, example)
    for s in specs:
        s["ban_ids"] = ban
    texts = [tok.apply_chat_template(s["messages"], tokenize=False, add_generation_prompt=True) + s["lead"]
             for s in specs]
    shared = P.shared_prefix(example, version)
    cut = texts[0].index(shared) + len(shared)
    prefix = texts[0][:cut]
    prefix_ids = tok(prefix, add_special_tokens=False)["input_ids"]
    suffixes = [tok(t[cut:], add_special_tokens=False)["input_ids"] for t in texts]
    return prefix_ids, suffixes, specs


def _guided_local(gen, examples, cfg, temperature, seed, progress=None) -> list[TeacherOutput]:
    """All parts of ``cfg.batch_size`` examples at a time, one shared-prefix cache per example."""
    prepared = [_part_ids(gen, ex, version_of(cfg)) for ex in examples]
    order = sorted(range(len(examples)), key=lambda i: len(prepared[i][0]))  # group similar lengths
    results: list[TeacherOutput | None] = [None] * len(examples)
    step = max(1, int(cfg.batch_size))
    with gen.lock:
        for start in range(0, len(order), step):
            chunk = order[start:start + step]
            t0 = time.time()
            if progress:
                progress({"stage": "prefill", "done": 0, "of": len(chunk) * len(prepared[chunk[0]][1]), "tokens": 0})
            texts, n_prompt, n_new = _decode_parts(gen, [prepared[i] for i in chunk], cfg, temperature,
                                                   seed + start, progress)
            seconds = (time.time() - t0) / len(chunk)
            for j, i in enumerate(chunk):
                specs = prepared[i][2]
                bodies = {s["part"]: P.part_body(s["lead"], texts[j][k]) for k, s in enumerate(specs)}
                results[i] = TeacherOutput(P.assemble_guided(examples[i], bodies), n_prompt[j], n_new[j], seconds,
                                           calls=len(specs))
    return results  # type: ignore[return-value]


def _decode_parts(gen, prepared, cfg, temperature: float, seed: int, progress=None):
    """Decode every part of a few examples together; returns (texts per example per part,
    prompt tokens per example, new tokens per example).

    The cache is a preallocated ``StaticCache`` (rows x heads x (prefix + suffix + budget)):
    a ``DynamicCache`` concatenates every layer's keys and values at each step, copying the whole
    cache (gigabytes per step at 100 rows), which made decoding memory-bound. Rows whose part is
    finished are dropped from the cache in one gather once a quarter of the rows are done.
    """
    import torch

    tok = gen.tokenizer
    n_parts = len(prepared[0][1])
    with torch.inference_mode():
        cache, mask, logits, next_pos = _prefill_parts(gen, prepared, int(cfg.part_tokens))
        ban = _ban_mask(prepared, n_parts, logits)
        generated = _decode_guided(gen, cfg, cache, mask, logits, next_pos, ban, temperature, seed, progress)
    texts, n_prompt, n_new = [], [], []
    for e, (prefix, sfx, _) in enumerate(prepared):
        rows_e = generated[e * n_parts:(e + 1) * n_parts]
        texts.append([tok.decode(r, skip_special_tokens=True) for r in rows_e])
        n_prompt.append(len(prefix) + sum(len(s) for s in sfx))
        n_new.append(sum(len(r) for r in rows_e))
    return texts, n_prompt, n_new


def _prefill_parts(gen, prepared, budget: int):
    """(static cache, attention mask, last logits, next positions) for the rows of ``prepared``
    (ex0 part0..n, ex1 part0..n, ...), the cache long enough for ``budget`` new tokens.

    Each example's shared prefix is prefilled once (left padded) and copied into the static cache
    once per part; then the part suffixes run, left padded inside their own block (the padding
    masked out)."""
    import torch
    from transformers import DynamicCache, StaticCache

    model, tok, device = gen.model, gen.tokenizer, gen.device
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    n_parts, n_ex = len(prepared[0][1]), len(prepared)
    suffixes = [s for p in prepared for s in p[1]]
    rows = len(suffixes)
    lp = max(len(p[0]) for p in prepared)
    ls = max(len(s) for s in suffixes)
    total = lp + ls + budget
    # 1. prefill each example's shared prefix once (left padded), keep only the last logits
    ids = torch.full((n_ex, lp), pad, dtype=torch.long)
    pmask = torch.zeros((n_ex, lp), dtype=torch.long)
    for r, (prefix, _, _) in enumerate(prepared):
        ids[r, lp - len(prefix):] = torch.tensor(prefix)
        pmask[r, lp - len(prefix):] = 1
    dyn = DynamicCache(config=model.config)
    pos = (pmask.cumsum(-1) - 1).clamp(min=0)
    model(input_ids=ids.to(device), attention_mask=pmask.to(device), position_ids=pos.to(device), cache=dyn,
          use_cache=True, logits_to_keep=1)
    # 2. a static cache with one copy of the prefix per part (rows: ex0 part0..n, ex1 part0..n, ...)
    cache = StaticCache(config=model.config, max_cache_len=total)
    for layer, src in zip(cache.layers, dyn.layers):
        k = src.keys.repeat_interleave(n_parts, dim=0)
        v = src.values.repeat_interleave(n_parts, dim=0)
        layer.lazy_initialization(k, v)
        layer.keys[:, :, :lp] = k
        layer.values[:, :, :lp] = v
        layer.cumulative_length.fill_(lp)
    del dyn
    mask = torch.zeros((rows, total), dtype=torch.long)
    mask[:, :lp] = pmask.repeat_interleave(n_parts, dim=0)
    # 3. the part suffixes, left padded inside their own block (padding masked out)
    sids = torch.full((rows, ls), pad, dtype=torch.long)
    for r, s in enumerate(suffixes):
        sids[r, ls - len(s):] = torch.tensor(s)
        mask[r, lp + ls - len(s):lp + ls] = 1
    pos = (mask[:, :lp + ls].cumsum(-1) - 1).clamp(min=0)[:, -ls:]
    out = model(input_ids=sids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device),
                cache=cache, use_cache=True, logits_to_keep=1)
    return cache, mask, out.logits[:, -1, :].float(), pos[:, -1] + 1


def _ban_mask(prepared, n_parts: int, logits):
    """rows x vocab, true where a row may not write the token (its example's ``ban_ids``), on the
    logits' device; None when nothing is banned."""
    import torch

    bans = [p[2][0].get("ban_ids") or [] if p[2] else [] for p in prepared]
    if not any(bans):
        return None
    dev, vocab = logits.device, logits.shape[-1]
    ban = torch.zeros((logits.shape[0], vocab), dtype=torch.bool, device=dev)
    for e, ids_e in enumerate(bans):
        ids_e = [i for i in ids_e if i < vocab]
        if ids_e:
            ban[e * n_parts:(e + 1) * n_parts, torch.tensor(ids_e, device=dev)] = True
    return ban


def _decode_guided(gen, cfg, cache, mask, logits, next_pos, ban, temperature: float, seed: int,
                   progress=None) -> list[list[int]]:
    """The guided decode loop: the new tokens of every row. A row stops at a line break, an end
    token or its budget (``cfg.part_tokens``), writes at least a few tokens, never a banned one,
    and repeats itself less (``cfg.repetition_penalty`` on the tokens it already wrote)."""
    import torch

    from engine.core import decoding as D

    budget, rows = int(cfg.part_tokens), logits.shape[0]
    width = mask.shape[1] - budget  # prefix + suffix columns
    device, dev = gen.device, logits.device  # sampling happens where the logits are (a GPU, or the CPU)
    vocab = logits.shape[-1]
    min_tokens = min(6, budget)
    stop_ids = torch.tensor(sorted(set(_newline_ids(gen.tokenizer)) | set(gen.end_ids)), dtype=torch.long)
    stop_ids = stop_ids[stop_ids < vocab]
    stops = (frozenset(gen.end_ids), frozenset(stop_ids.tolist()), min_tokens, budget)
    stop_ids = stop_ids.to(dev)
    generated: list[list[int]] = [[] for _ in range(rows)]
    present = list(range(rows))          # rows still in the cache (original indices)
    active = [True] * rows               # per position in ``present``
    seen = torch.zeros((rows, vocab), dtype=torch.bool, device=dev)
    penalty = float(cfg.repetition_penalty)
    rng = torch.Generator(device=dev).manual_seed(int(seed))
    n_tokens = 0
    for t in range(budget):
        if penalty != 1.0:
            sl = seen[torch.tensor(present, device=dev)]
            logits = torch.where(sl, torch.where(logits > 0, logits / penalty, logits * penalty), logits)
        if ban is not None:
            logits.masked_fill_(ban, float("-inf"))
        if t < min_tokens:
            logits[:, stop_ids] = float("-inf")  # a part is at least a few words
        nxt = D.sample(logits, temperature, float(cfg.top_p), rng)
        marked_rows, marked_tokens = _take_parts(nxt.tolist(), t, present, active, generated, stops)
        if marked_rows:
            seen[torch.tensor(marked_rows, device=dev), torch.tensor(marked_tokens, device=dev)] = True
        n_active = sum(active)
        n_tokens += len(marked_rows)
        if progress:  # every decode step: the job throttles what it writes
            progress({"stage": "decode", "done": rows - n_active, "of": rows, "tokens": n_tokens,
                      "step": t + 1, "budget": budget})
        if not n_active or t == budget - 1:
            break
        present, active, (mask, next_pos, nxt, ban) = D.drop_finished(cache, present, active, mask, next_pos, nxt, ban)
        mask[:, width + t] = 1
        out = gen.model(input_ids=nxt.view(-1, 1).to(device), attention_mask=mask.to(device),
                        position_ids=next_pos.view(-1, 1).to(device), cache=cache, use_cache=True)
        logits = out.logits[:, -1, :].float()
        next_pos = next_pos + 1
    return generated


def _take_parts(tokens: list[int], t: int, present: list[int], active: list[bool], generated: list[list[int]],
                stops: tuple) -> tuple[list[int], list[int]]:
    """Record step ``t``'s sampled ``tokens`` (one per row in the cache; ``present`` maps it to the
    row) in ``generated``; a row ends (``active`` false) at an end token, a stop token once it has
    ``min_tokens``, or its budget. ``stops``: (end ids, stop ids, min_tokens, budget). Returns the
    (rows, tokens) written, for the repetition penalty."""
    end_set, stop_set, min_tokens, budget = stops
    marked_rows, marked_tokens = [], []
    for j, token in enumerate(tokens):
        if not active[j]:
            continue
        row = present[j]
        if token in end_set or (t >= min_tokens and token in stop_set):
            active[j] = False
            continue
        generated[row].append(token)
        marked_rows.append(row)
        marked_tokens.append(token)
        if len(generated[row]) >= budget:
            active[j] = False
    return marked_rows, marked_tokens


# ---------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP endpoint
# ---------------------------------------------------------------------------------------------


def _api_key(cfg) -> str | None:
    return os.environ.get(cfg.api_key_env) if cfg.api_key_env else None


def chat_completion(client, cfg, messages: list[dict], temperature: float, seed: int, max_tokens: int) -> dict:
    """One ``/chat/completions`` call with retries; returns {text, prompt_tokens, completion_tokens}."""
    import httpx

    url = cfg.base_url.rstrip("/") + "/chat/completions"
    body = {"model": cfg.teacher, "messages": messages, "temperature": float(temperature), "top_p": float(cfg.top_p),
            "max_tokens": int(max_tokens), "seed": int(seed)}
    headers = {"Content-Type": "application/json"}
    key = _api_key(cfg)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    delay = 0.5
    last = ""
    for attempt in range(int(cfg.http_retries) + 1):
        try:
            resp = client.post(url, json=body, headers=headers, timeout=cfg.timeout_s)
        except httpx.HTTPError as exc:  # connection refused, timeout, reset: worth retrying
            last = f"{type(exc).__name__}: {exc}"
        else:
            if resp.status_code == 200:
                try:
                    data = resp.json()
                    text = data["choices"][0]["message"]["content"] or ""
                except (ValueError, KeyError, IndexError, TypeError):
                    raise TeacherError(f"{url} answered 200 but not with an OpenAI chat completion: "
                                       f"{resp.text[:200]!r}") from None
                usage = data.get("usage") or {}
                return {"text": text, "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                        "completion_tokens": int(usage.get("completion_tokens") or 0)}
            if resp.status_code in (401, 403):
                raise TeacherError(f"{url} refused the request ({resp.status_code}): check the API key in the "
                                   f"environment variable {cfg.api_key_env or '(api_key_env is empty)'}")
            if resp.status_code == 404:
                raise TeacherError(f"{url} answered 404: check base_url (it usually ends in /v1) and that the "
                                   f"server serves the model {cfg.teacher!r}: {resp.text[:200]}")
            if resp.status_code != 429 and resp.status_code < 500:
                raise TeacherError(f"{url} rejected the request ({resp.status_code}): {resp.text[:300]}")
            last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            retry_after = resp.headers.get("retry-after")
            if retry_after:
                try:
                    delay = max(delay, min(60.0, float(retry_after)))
                except ValueError:
                    pass
        if attempt < int(cfg.http_retries):
            time.sleep(delay * (1 + 0.25 * random.random()))
            delay = min(30.0, delay * 2)
    raise TeacherError(f"{url} failed after {int(cfg.http_retries) + 1} tries; last error: {last}")


def send_requests(cfg, requests: list[tuple[list[dict], float, int, int]], progress=None) -> list:
    """Send chat requests ``(messages, temperature, seed, max_tokens)`` to ``cfg``'s endpoint
    (``base_url``, model ``teacher``, ``api_key_env``, ``timeout_s``, ``http_retries``, ``top_p``)
    with ``cfg.concurrency`` in flight, each through ``chat_completion`` (its retries and clear
    errors). Returns, in request order, each answer dict or the exception its call raised: the
    caller decides whether one failure fails them all (the teacher) or only its own item (the
    judge). ``progress(event)`` is called as each request finishes."""
    import httpx

    limits = httpx.Limits(max_connections=max(1, cfg.concurrency), max_keepalive_connections=max(1, cfg.concurrency))
    with httpx.Client(limits=limits) as client, \
            concurrent.futures.ThreadPoolExecutor(max_workers=max(1, cfg.concurrency)) as pool:
        futures = [pool.submit(chat_completion, client, cfg, msgs, temperature, seed, max_tokens)
                   for msgs, temperature, seed, max_tokens in requests]
        if progress:  # one event per finished request, in the order they finish
            tokens = 0
            for k, f in enumerate(concurrent.futures.as_completed(futures), 1):
                if f.exception() is None:
                    tokens += f.result()["completion_tokens"]
                progress({"stage": "requests", "done": k, "of": len(futures), "tokens": tokens})
        concurrent.futures.wait(futures)
    return [f.exception() or f.result() for f in futures]


def _http(examples, cfg, temperature, seed, progress=None) -> list[TeacherOutput]:
    jobs = []  # (example index, part spec or None, messages, max tokens)
    for i, ex in enumerate(examples):
        if cfg.guided:
            for s in P.guided_prompts(ex, version_of(cfg)):
                msgs = [s["messages"][0], {"role": "user", "content": s["messages"][1]["content"]
                                           + f" Write only this part's text, starting with: {s['lead']}"}]
                jobs.append((i, s, msgs, cfg.part_tokens))
        else:
            jobs.append((i, None, P.free_messages(ex, version_of(cfg)), cfg.max_new_tokens))
    t0 = time.time()
    answers = send_requests(cfg, [(msgs, temperature, seed + n, max_tokens)
                                  for n, (_, _, msgs, max_tokens) in enumerate(jobs)], progress)
    for a in answers:  # a chain needs every one of its parts: one failed request fails the call
        if isinstance(a, BaseException):
            raise a
    seconds = (time.time() - t0) / len(examples)
    outs = []
    for i, ex in enumerate(examples):
        mine = [(spec, a) for (j, spec, _, _), a in zip(jobs, answers) if j == i]
        ptok = sum(a["prompt_tokens"] for _, a in mine)
        ctok = sum(a["completion_tokens"] for _, a in mine)
        if cfg.guided:
            bodies = {}
            for spec, a in mine:
                text = a["text"].strip()
                lead = spec["lead"]
                # the model was asked to start with the lead-in; don't write it twice
                body = P.clean_part(text) if text.lower().startswith(lead.lower()[:20]) else P.part_body(lead, text)
                bodies[spec["part"]] = body
            chain = P.assemble_guided(ex, bodies)
        else:
            chain = P.finish_free(ex, mine[0][1]["text"])
        outs.append(TeacherOutput(chain, ptok, ctok, seconds, calls=len(mine)))
    return outs
