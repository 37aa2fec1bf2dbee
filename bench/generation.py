"""Phase 1 generation throughput on the embedded teacher, sequential vs batched, in one run.

    python bench/generation.py [--examples 8] [--sequential 2] [--batch-size 8] [--bf16] [--free]
                               [--scorer-chains 25790] [--threads N] [--json]

What it measures, side by side in one process (so a busy machine slows both alike):

- sequential: the same guided work done one row at a time with plain ``LocalGenerator.generate``
  (batch 1, every part's prompt prefilled from scratch) on ``--sequential`` examples;
- batched: the product's default path, ``teacher.teach`` in guided mode (all 13 parts of
  ``--batch-size`` examples decoded together, one prefix cache per example) on ``--examples``;
- batched + retries: the default path as the job runs it: chains below the threshold are
  generated again at the next attempt's temperature (up to 3 attempts) and the time counts;
- ``--bf16``: the batched path again with bf16 weights (speed and quality side by side);
- ``--free``: the plan's original shape, one whole chain per example, sequentially (slow);
- the scorer: chains per second of ``quality.score_chain`` with transcript and labels.

Rates are examples/s and generated tokens/s; the ratio is batched over sequential examples/s.
Quality is the average score and pass rate (>= 70 with all sections) of each path's chains.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.data import datasets

from engine.chains import acceptance, prompt, quality, selection, teacher

from engine.core import store  # noqa: E402
from engine.core.config import GenerateConfig, load_config  # noqa: E402


def score_all(examples, texts) -> dict:
    rs = [acceptance.score_for(ex, t) for ex, t in zip(examples, texts)]
    return {"average": round(sum(r["score"] for r in rs) / len(rs), 1),
            "pass_rate": round(sum(quality.passes(r) for r in rs) / len(rs), 3), "results": rs}


def sequential_guided(gen, examples, cfg) -> tuple[list[str], int, float]:
    """The guided work one prompt at a time through plain `LocalGenerator.generate` (batch 1, no cache reuse)."""
    texts, tokens = [], 0
    t0 = time.time()
    for ex in examples:
        bodies = {}
        for spec in prompt.guided_prompts(ex):
            out = gen.generate([spec["messages"]], max_new_tokens=cfg.part_tokens, temperature=0.0, batch_size=1,
                               continuations=[spec["lead"]], stop=["\n"])[0]
            tokens += out.completion_tokens
            bodies[spec["part"]] = prompt.part_body(spec["lead"], out.text)
        texts.append(prompt.assemble_guided(ex, bodies))
    return texts, tokens, time.time() - t0


def batched(examples, cfg, retries: bool) -> tuple[list[str], int, float, int]:
    """The default path; with ``retries``, failing chains are regenerated as the job does."""
    t0 = time.time()
    outs = teacher.teach(examples, cfg, temperature=cfg.temperatures[0], seed=cfg.seed + 1000)
    texts = [o.text for o in outs]
    tokens = sum(o.completion_tokens for o in outs)
    best = [acceptance.score_for(ex, t) for ex, t in zip(examples, texts)]
    n_retries = 0
    if retries:
        for k in range(2, cfg.attempts + 1):
            todo = [i for i, r in enumerate(best) if not quality.passes(r, cfg.threshold)]
            if not todo:
                break
            n_retries += len(todo)
            outs = teacher.teach([examples[i] for i in todo], cfg, temperature=cfg.temperatures[k - 1],
                                 seed=cfg.seed + 1000 * k)
            for i, o in zip(todo, outs):
                tokens += o.completion_tokens
                r = acceptance.score_for(examples[i], o.text)
                if (quality.passes(r), r["score"]) > (quality.passes(best[i]), best[i]["score"]):
                    best[i], texts[i] = r, o.text
    return texts, tokens, time.time() - t0, n_retries


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=8, help="examples for the batched paths (default 8)")
    ap.add_argument("--sequential", type=int, default=2, help="examples for the sequential baseline (default 2)")
    ap.add_argument("--batch-size", type=int, default=None, help="examples per batch (default: the preset's)")
    ap.add_argument("--part-tokens", type=int, default=None, help="token budget per part (default: the preset's)")
    ap.add_argument("--bf16", action="store_true", help="also run the batched path in bf16")
    ap.add_argument("--free", action="store_true", help="also time free mode (whole chain, sequential)")
    ap.add_argument("--no-retries", action="store_true", help="skip the batched + retries run")
    ap.add_argument("--scorer-chains", type=int, default=25790, help="chains to score (default the plan's 25,790)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default torch's choice)")
    ap.add_argument("--home", help="a home with a dataset (default: a temp home with the demo dataset)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object too")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = None
    if args.home:
        home = args.home
    else:
        tmp = tempfile.TemporaryDirectory(prefix="ccr-bench-gen-")
        home = tmp.name
        datasets.synthesize(home, "demo", 0)
    db = store.connect(home)
    ds_id, _ = selection.resolve_dataset(db, None)
    n = max(args.examples, args.sequential)
    examples = selection.load_examples(db, selection.selection_ids(db, ds_id, "train", n))
    cfg = load_config(GenerateConfig, ROOT / "configs" / "generate" / "generate_smollm2_cpu.yaml")
    if args.batch_size:
        cfg.batch_size = args.batch_size
    if args.part_tokens:
        cfg.part_tokens = args.part_tokens
    gen = teacher.local_generator(cfg)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}; "
          f"teacher {cfg.teacher} ({gen.info.get('dtype')}); batch {cfg.batch_size} examples x 13 parts; "
          f"part budget {cfg.part_tokens} tokens", flush=True)
    # warm-up (first-call allocations, tokenizer caches)
    teacher.teach(examples[:1], cfg)
    rows, out = [], {"batch_size": cfg.batch_size, "part_tokens": cfg.part_tokens}

    def done(name, n_ex, secs, tokens, q, n_retries=0):
        rows.append((name, n_ex, secs, tokens, q, n_retries))
        print(f"  {name}: {n_ex} examples in {secs:.1f} s ({tokens / secs:.1f} tokens/s), average score "
              f"{q['average']:.1f}, pass rate {100 * q['pass_rate']:.0f}%", flush=True)

    seq_ex = examples[:args.sequential]
    texts, tokens, secs = sequential_guided(gen, seq_ex, cfg)
    q = score_all(seq_ex, texts)
    seq_rate = len(seq_ex) / secs
    done("sequential (batch 1, LocalGenerator)", len(seq_ex), secs, tokens, q)
    out["sequential"] = {"examples": len(seq_ex), "seconds": round(secs, 2), "examples_per_s": seq_rate,
                         "tokens_per_s": tokens / secs, "average": q["average"], "pass_rate": q["pass_rate"]}

    bat_ex = examples[:args.examples]
    texts, tokens, secs, _ = batched(bat_ex, cfg, retries=False)
    q = score_all(bat_ex, texts)
    done(f"batched (guided, batch {cfg.batch_size}, prefix cache)", len(bat_ex), secs, tokens, q)
    out["batched"] = {"examples": len(bat_ex), "seconds": round(secs, 2), "examples_per_s": len(bat_ex) / secs,
                      "tokens_per_s": tokens / secs, "average": q["average"], "pass_rate": q["pass_rate"]}
    if not args.no_retries:
        texts, tokens, secs, n_retries = batched(bat_ex, cfg, retries=True)
        q = score_all(bat_ex, texts)
        done("batched + retries (the job's path)", len(bat_ex), secs, tokens, q, n_retries)
        out["batched_retries"] = {"examples": len(bat_ex), "seconds": round(secs, 2), "retries": n_retries,
                                  "examples_per_s": len(bat_ex) / secs, "tokens_per_s": tokens / secs,
                                  "average": q["average"], "pass_rate": q["pass_rate"]}
    if args.bf16:
        cfg16 = load_config(GenerateConfig, data={**cfg.__dict__, "dtype": "bf16"})
        teacher.teach(examples[:1], cfg16)  # load + warm-up
        texts, tokens, secs, _ = batched(bat_ex, cfg16, retries=False)
        q = score_all(bat_ex, texts)
        done("batched bf16", len(bat_ex), secs, tokens, q)
        out["batched_bf16"] = {"examples": len(bat_ex), "seconds": round(secs, 2),
                               "examples_per_s": len(bat_ex) / secs, "tokens_per_s": tokens / secs,
                               "average": q["average"], "pass_rate": q["pass_rate"]}
        teacher.local_generator(cfg)  # back to fp32
    if args.free:
        cfg_free = load_config(GenerateConfig, data={**cfg.__dict__, "guided": False, "batch_size": 1})
        t0 = time.time()
        outs = [teacher.teach([ex], cfg_free)[0] for ex in seq_ex]
        secs = time.time() - t0
        q = score_all(seq_ex, [o.text for o in outs])
        done("free mode, sequential", len(seq_ex), secs, sum(o.completion_tokens for o in outs), q)
        out["free_sequential"] = {"examples": len(seq_ex), "seconds": round(secs, 2),
                                  "examples_per_s": len(seq_ex) / secs, "average": q["average"],
                                  "pass_rate": q["pass_rate"]}

    print(f"\n{'path':46} {'ex':>3} {'s':>8} {'ex/s':>8} {'tok/s':>7} {'x seq':>6} {'avg':>5} {'pass':>5} {'retries':>7}")
    for name, n_ex, secs, tokens, q, n_retries in rows:
        rate = n_ex / secs
        print(f"{name:46} {n_ex:3d} {secs:8.1f} {rate:8.4f} {tokens / secs:7.1f} {rate / seq_rate:6.2f} "
              f"{q['average']:5.1f} {100 * q['pass_rate']:4.0f}% {n_retries:7d}")
    for key in ("batched", "batched_retries", "batched_bf16"):
        if key in out:
            out[key]["ratio_vs_sequential"] = round(out[key]["examples_per_s"] / seq_rate, 2)

    # the scorer: chains/s with transcript and labels, over the generated chains cycled
    pool = [(ex, t) for ex, t in zip(bat_ex, texts)]
    t0 = time.process_time()
    for i in range(args.scorer_chains):
        ex, t = pool[i % len(pool)]
        quality.score_chain(t + ("" if i < len(pool) else f"\n{i}"), ex["task"], ex["labels"], ex["transcript"])
    cpu = time.process_time() - t0
    out["scorer_chains_per_s"] = round(args.scorer_chains / cpu)
    print(f"\nscorer: {args.scorer_chains} chains in {cpu:.2f} s CPU = {out['scorer_chains_per_s']:,} chains/s")
    if args.json:
        print(json.dumps(out))
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
