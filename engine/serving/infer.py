"""Batch inference: a JSONL file in, one JSONL line out per input line, resumable.

``ccr infer --model M --input FILE --output FILE`` and the Deploy page's batch job both run
``run_infer_job``. Input lines may be:

- ChatML: ``{"messages": [...]}`` (a trailing assistant turn is dropped: it is the reference),
  with optional ``meta`` (``id``, ``task``);
- ``{"prompt": "..."}``: one user turn;
- ``{"transcript": "...", "task": "csat"}``: the task's standard instruction is added.

Each output line is ``{"line", "id", "task", "output", "parsed", "finish_reason",
"prompt_tokens", "completion_tokens", "model"}``, or ``{"line", "error"}`` for an input line
that cannot be used (the run goes on).

How a kill never corrupts the output and a restart neither repeats nor loses lines: results are
appended as complete lines after each batch, then flushed and fsynced; on restart the output is
read, a trailing partial line (a kill in the middle of a write) is cut off, and the input lines
whose numbers are already there are skipped. The output file is never rewritten in place.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from engine.data import tasks
from engine.data.example import ChatMLError, read_example, read_meta
from engine.evaluation.evaluate import prompt_messages


class InferInputError(ValueError):
    """The input file as a whole cannot be used; the message names it."""


def parse_line(raw: str) -> tuple[dict | None, str | None]:
    """(request, None) or (None, reason) for one input line.

    >>> parse_line('{"prompt": "hi"}')[0]["messages"]
    [{'role': 'user', 'content': 'hi'}]
    >>> parse_line('{"transcript": "Agent: hi", "task": "churn"}')[0]["task"]
    'churn'
    >>> parse_line('[1, 2]')[1]
    'not a JSON object'
    >>> parse_line('{"transcript": "x", "task": "weather"}')[1]
    "unknown task 'weather' (expected one of csat, quality, churn, sentiment, root_cause, coaching)"
    """
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return None, "invalid JSON (nested too deeply)"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    meta = read_meta(obj)
    task, ex_id = meta.get("task"), meta.get("id")
    if task is not None and task not in tasks.TASKS:
        return None, f"unknown task {task!r} (expected one of {', '.join(tasks.TASKS)})"
    if "messages" in obj:
        try:  # any role name is passed on; the trailing assistant turn (the reference) is dropped
            messages = prompt_messages(read_example(obj, roles=None, need="user").messages)
        except ChatMLError as exc:
            return None, ("messages has no user turn" if exc.rule in ("no_user", "messages_empty")
                          else "messages must be a list of {role, content} objects with text content")
    elif isinstance(obj.get("prompt"), str):
        messages = [{"role": "user", "content": obj["prompt"]}]
    elif isinstance(obj.get("transcript"), str):
        if task is None:
            return None, "a transcript line needs a task (csat, quality, churn, sentiment, root_cause or coaching)"
        messages = [{"role": "system", "content": tasks.SYSTEM_PROMPT},
                    {"role": "user", "content": tasks.user_content(obj["transcript"], task)}]
    else:
        return None, "expected messages, prompt or transcript"
    if not messages[-1]["content"].strip():
        return None, "empty prompt"
    return {"messages": messages, "task": task, "id": ex_id}, None


def recover_output(path: str | os.PathLike) -> set[int]:
    """Line numbers already answered in ``path``; a trailing partial line is cut off first.

    A line that is not valid JSON in the middle of the file (someone edited it) is left alone
    and its input line is simply answered again at the end.
    """
    path = Path(path)
    if not path.exists():
        return set()
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            fh.truncate(cut)  # the partial line of a killed write
            data = data[:cut]
            fh.flush()
            os.fsync(fh.fileno())
    done = set()
    for raw in data.splitlines():
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(obj, dict) and isinstance(obj.get("line"), int):
            done.add(obj["line"])
    return done


def read_input(path: str | os.PathLike):
    """Yield (line number, raw text) of the non-blank input lines."""
    path = Path(path)
    if not path.is_file():
        raise InferInputError(f"{path}: no such file")
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, raw in enumerate(fh, 1):
            if raw.strip():
                yield n, raw


def _append(fh, rows: list[dict]) -> None:
    if not rows:
        return
    fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    fh.flush()
    os.fsync(fh.fileno())


def _plan(cfg) -> tuple[set, list, list, int]:
    """(lines already answered, (line, request) pairs to generate, error rows for unusable lines,
    input lines in all); the output is recovered first (a half-written last line is cut)."""
    if not cfg.input or not cfg.output:
        raise InferInputError("both an input and an output file are needed")
    if Path(cfg.input).resolve() == Path(cfg.output).resolve():
        raise InferInputError(f"{cfg.output}: the output must not be the input file")
    done = recover_output(cfg.output)
    todo, errors, total = [], [], 0
    for n, raw in read_input(cfg.input):
        total += 1
        if n in done:
            continue
        req, reason = parse_line(raw)
        if reason:
            errors.append({"line": n, "error": reason})
        else:
            todo.append((n, req))
    return done, todo, errors, total


def run_infer(cfg, ctx=None, generator=None) -> dict:
    """Answer every input line not yet in the output; returns counts and timings."""
    import inspect

    from engine.evaluation.scoring import parse_prediction

    done, todo, errors, total = _plan(cfg)
    log = ctx.log if ctx else (lambda msg: None)
    log(f"{total} input lines, {len(done)} already answered, {len(todo)} to generate, {len(errors)} unusable")
    Path(cfg.output).parent.mkdir(parents=True, exist_ok=True)
    bar = None
    if cfg.progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=len(done), unit="line", file=sys.stderr, dynamic_ncols=True)
    t0 = time.time()
    generated = tokens = 0
    with open(cfg.output, "a", encoding="utf-8") as out:
        _append(out, errors)
        if bar:
            bar.update(len(errors))
        if todo and generator is None:
            from engine.evaluation.evaluate import load_generator

            generator = load_generator(cfg.model, ctx.home if ctx else None, device=cfg.device, dtype=cfg.dtype)
            log(f"loaded {cfg.model} on {generator.device}; precision "
                f"{generator.info.get('precision_reason') or generator.info.get('dtype')}")
        name = getattr(generator, "name", cfg.model)
        bs = max(1, cfg.batch_size)
        for start in range(0, len(todo), bs):
            if ctx:
                ctx.check()
            chunk = todo[start:start + bs]
            extra = {}
            if ctx and "progress" in inspect.signature(generator.generate).parameters:  # (test doubles: no steps)
                def live(event, finished=len(done) + len(errors) + generated, made=generated, n=len(chunk)):
                    # motion inside a batch: decode steps and rows finished, as a share of the batch
                    part = min(0.99, max(event["done"] / max(1, event["of"]), event["step"] / max(1, event["budget"])))
                    elapsed = time.time() - t0
                    speed = (made + part * n) / elapsed if elapsed > 0 and made + part * n > 0 else None
                    ctx.progress(finished, total, fraction=(finished + part * n) / total,
                                 rate=made / elapsed if made and elapsed else None,
                                 tokens_per_s=(tokens + event["tokens"]) / elapsed if elapsed else None,
                                 eta_s=round((len(todo) - made - part * n) / speed, 1) if speed else None,
                                 batch={**event, "examples": n})

                extra["progress"] = live
            completions = generator.generate([r["messages"] for _, r in chunk], max_new_tokens=cfg.max_new_tokens,
                                             temperature=cfg.temperature, top_p=cfg.top_p,
                                             seed=cfg.seed + start if cfg.temperature else None, batch_size=bs,
                                             **extra)
            rows = []
            for (n, req), c in zip(chunk, completions):
                rows.append({"line": n, "id": req["id"], "task": req["task"], "output": c.text,
                             "parsed": parse_prediction(req["task"], c.text) if req["task"] else None,
                             "finish_reason": c.finish_reason, "prompt_tokens": c.prompt_tokens,
                             "completion_tokens": c.completion_tokens, "model": name})
                tokens += c.completion_tokens
            _append(out, rows)
            generated += len(chunk)
            if bar:
                bar.update(len(chunk))
            if ctx:
                elapsed = time.time() - t0
                finished = len(done) + len(errors) + generated
                rate = generated / elapsed if elapsed else None
                ctx.progress(finished, total, rate=rate, tokens_per_s=tokens / elapsed if elapsed else None,
                             eta_s=round((len(todo) - generated) / rate, 1) if rate else None)
    if bar:
        bar.close()
    return {"input": str(cfg.input), "output": str(cfg.output), "lines": total, "generated": generated,
            "skipped_already_done": len(done), "errors": len(errors), "completion_tokens": tokens,
            "seconds": round(time.time() - t0, 2)}


def run_infer_job(ctx, config: dict) -> dict:
    from engine.core.config import InferConfig, load_config

    cfg = load_config(InferConfig, data=config)
    return run_infer(cfg, ctx=ctx)
