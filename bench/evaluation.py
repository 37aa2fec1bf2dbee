"""Evaluation generation cost on CPU: decode time per step against batch size and KV-cache kind,
and how long the base model's answers are.

    python bench/evaluation.py [--runs 16:128:dynamic,60:128:dynamic,...] [--answers 12] [--budget 512]

Why: ``ccr eval`` (and the demo's evaluation) generates ``batch_size`` examples per
``model.generate`` call (``evaluate.evaluate_model`` -> ``LocalGenerator.generate``), and a
batch decodes until its longest row stops or the budget is spent. A base model that never ends
its answer therefore costs budget x (time of one decode step at that batch size) per batch, so
the demo's evaluation time is set by that step time. Measured here, in one process:

- ``--runs B:N:CACHE``: B prompts of the demo test split (greedy, the embedded SmolLM2-135M),
  forced to exactly N new tokens (``min_new_tokens``), with transformers' default dynamic KV
  cache (``torch.cat`` per step) or a static one. Prefill is timed apart (1 new token), so the
  step time is (t(N) - t(1)) / (N - 1), in wall and in CPU seconds of this process.
- ``--answers K``: the product's path (``evaluate.load_generator``, ``LocalGenerator.generate``)
  on K test examples (interleaved tasks) at ``--budget`` new tokens, batch K: how many answers
  stop by themselves and their lengths.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="16:128:dynamic,16:128:static,32:128:dynamic,60:128:dynamic,60:128:static",
                    help="comma-separated BATCH:NEW_TOKENS:dynamic|static|ours")
    ap.add_argument("--answers", type=int, default=12, help="test examples for the answer-length run (0: skip)")
    ap.add_argument("--budget", type=int, default=512, help="new-token budget of the answer-length run")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from engine.data import datasets

    from engine.evaluation import evaluate
    from engine.core.paths import resolve_home

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory(prefix="ccr-bench-eval-")
    home = resolve_home(tmp.name).ensure()
    datasets.synthesize(home, "demo", 0)
    examples = evaluate.load_examples(home, None, None, "test", 0)[0]
    gen = evaluate.load_generator("smollm2-135m-instruct", home)
    model, tok = gen.model, gen.tokenizer
    print(f"torch threads {torch.get_num_threads()}; {gen.info.get('precision_reason')}; "
          f"{len(examples)} test prompts", flush=True)
    results = {"runs": []}
    for spec in args.runs.split(","):
        b, n, cache = spec.split(":")
        b, n = int(b), int(n)
        ids = [gen.prompt_ids(e["messages"]) for e in (examples * (b // len(examples) + 1))[:b]]
        width = max(len(x) for x in ids)
        pad = tok.pad_token_id
        input_ids = torch.full((b, width), pad, dtype=torch.long)
        mask = torch.zeros((b, width), dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, width - len(x):] = torch.tensor(x)
            mask[row, width - len(x):] = 1
        extra = {"cache_implementation": "static"} if cache == "static" else {}

        def run(k: int):
            if cache == "ours":  # the product's loop (engine.core.decoding), with no end token so every row runs k steps
                saved, gen.end_ids = gen.end_ids, []
                try:
                    return gen._generate_batch(ids, k, 0.0, 1.0, None, None)
                finally:
                    gen.end_ids = saved
            with torch.inference_mode():
                return model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=k, min_new_tokens=k,
                                      do_sample=False, pad_token_id=pad, **extra)

        _, w1, c1 = timed(lambda: run(1))
        out, wn, cn = timed(lambda: run(n))
        if cache == "ours":
            assert all(c.completion_tokens == n for c in out)
        else:
            assert out.shape[1] == width + n
        step_w, step_c = (wn - w1) / (n - 1), (cn - c1) / (n - 1)
        r = {"batch": b, "new_tokens": n, "cache": cache, "prompt_width": width, "prefill_s": round(w1, 2),
             "step_s": round(step_w, 4), "step_cpu_s": round(step_c, 4), "tokens_per_s": round(b / step_w, 1)}
        results["runs"].append(r)
        print(f"batch {b:3d} x {n} new tokens, {cache:7s} cache (prompts padded to {width}): prefill {w1:6.1f} s, "
              f"{step_w:.3f} s per step ({step_c:.3f} CPU-s), {b / step_w:6.1f} new tokens/s", flush=True)
    if args.answers:
        chosen = evaluate.load_examples(home, None, None, "test", args.answers)[0]  # tasks interleaved
        outs, w, c = timed(lambda: gen.generate([e["messages"] for e in chosen], max_new_tokens=args.budget,
                                                temperature=0.0, batch_size=len(chosen)))
        stopped = [o.completion_tokens for o in outs if o.finish_reason == "stop"]
        results["answers"] = {"examples": len(chosen), "budget": args.budget, "seconds": round(w, 1),
                              "cpu_seconds": round(c, 1), "stopped": len(stopped),
                              "stopped_lengths": sorted(stopped), "ran_to_budget": len(outs) - len(stopped)}
        print(f"base model answers, {len(chosen)} test examples, budget {args.budget}, one batch: "
              f"{len(stopped)} stopped by themselves ({sorted(stopped)} tokens), {len(outs) - len(stopped)} ran to the "
              f"budget; {w:.0f} s wall, {c:.0f} CPU-s", flush=True)
    print(json.dumps(results))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
