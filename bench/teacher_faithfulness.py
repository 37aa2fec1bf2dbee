"""Does the teacher write faithful chains? The current prompt against an older one, same scorer.

    python bench/teacher_faithfulness.py [--examples 48] [--before REV] [--batch-size 8] [--threads 1] [--json]

Generates attempt 1 (greedy, as the job's first round) for the first ``--examples`` train
examples of the demo data with the embedded teacher, twice: with ``engine/chains/prompt.py`` and
``engine/chains/teacher.py`` as they are at git revision ``--before`` (default: the last commit before
prompt version 4), and as they are now. Both sides are scored by the *current* scorer, so the
comparison is about the prompt and the decode, not the scorer. Batches alternate (before batch
1, after batch 1, before batch 2, ...), so a shared machine's changing load falls on both alike.

Per side: the share of chains with a contradiction and with an unsupported specific (with 95%
Wilson intervals), the faithful share (neither), the average score, the pass rate (>= 70 with
all sections, no retry) and chains per second of generation.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.data import datasets

from engine.chains import acceptance, quality, selection

from engine.core import store  # noqa: E402
from engine.chains import prompt as new_prompt  # noqa: E402
from engine.chains import teacher as new_teacher  # noqa: E402
from engine.core.config import GenerateConfig, load_config  # noqa: E402

BEFORE = "5e914da"   # prompt version 3, the last revision before the faithfulness work


def load_old(rev: str):
    """(prompt, teacher) modules as they were at ``rev``, the old teacher wired to the old prompt."""
    mods = []
    tmp = Path(tempfile.mkdtemp(prefix="ccr-old-prompt-"))
    for name in ("prompt", "teacher"):
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:engine/{name}.py"], check=True,
                             capture_output=True, text=True).stdout
        path = tmp / f"old_{name}.py"
        path.write_text(src, encoding="utf-8")
        spec = importlib.util.spec_from_file_location(f"old_{name}", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod   # dataclasses look their module up there
        spec.loader.exec_module(mod)
        mods.append(mod)
    old_prompt, old_teacher = mods
    old_teacher.P = old_prompt
    return old_prompt, old_teacher


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion k/n."""
    if n == 0:
        return 0.0, 0.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def summarise(rows: list[dict], seconds: float, tokens: int) -> dict:
    n = len(rows)
    out = {"examples": n, "seconds": round(seconds, 1), "chains_per_s": round(n / seconds, 4),
           "tokens_per_s": round(tokens / seconds, 2)}
    for key, test in (("contradiction", lambda r: "contradiction" in r["reasons"]),
                      ("invented", lambda r: "invented" in r["reasons"]),
                      ("faithful", lambda r: not ({"contradiction", "invented"} & set(r["reasons"]))),
                      ("passed", lambda r: r["passed"])):
        k = sum(1 for r in rows if test(r))
        lo, hi = wilson(k, n)
        out[key] = {"count": k, "share": round(k / n, 4), "ci95": [round(lo, 3), round(hi, 3)]}
    out["average_score"] = round(sum(r["score"] for r in rows) / n, 2)
    out["contradictions_per_chain"] = round(sum(r["contradictions"] for r in rows) / n, 3)
    out["invented_per_chain"] = round(sum(r["invented"] for r in rows) / n, 3)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=48)
    ap.add_argument("--before", default=BEFORE, help=f"git revision of the old prompt (default {BEFORE})")
    ap.add_argument("--batch-size", type=int, default=None, help="examples per batch (default: the preset's 8)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", help="also write every chain and its score here (JSON)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object too")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    old_prompt, old_teacher = load_old(args.before)
    tmp = tempfile.TemporaryDirectory(prefix="ccr-bench-faith-")
    datasets.synthesize(tmp.name, "demo", 0)
    db = store.connect(tmp.name)
    ds_id, _ = selection.resolve_dataset(db, None)
    examples = selection.load_examples(db, selection.selection_ids(db, ds_id, "train", args.examples))
    cfg = load_config(GenerateConfig, ROOT / "configs" / "generate" / "generate_smollm2_cpu.yaml")
    if args.batch_size:
        cfg.batch_size = args.batch_size
    sides = {"before": old_teacher, "after": new_teacher}
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}; "
          f"teacher {cfg.teacher}; {len(examples)} examples, batch {cfg.batch_size}; before = prompt "
          f"v{old_prompt.PROMPT_VERSION} at {args.before}, after = prompt v{new_prompt.PROMPT_VERSION} (working tree)",
          flush=True)
    for mod in sides.values():   # load and warm up both (first-call allocations)
        mod.teach(examples[:1], cfg, temperature=0.0, seed=cfg.seed + 1000)
    rows = {k: [] for k in sides}
    secs = dict.fromkeys(sides, 0.0)
    toks = dict.fromkeys(sides, 0)
    step = max(1, cfg.batch_size)
    for start in range(0, len(examples), step):
        batch = examples[start:start + step]
        for name, mod in sides.items():
            t0 = time.perf_counter()
            outs = mod.teach(batch, cfg, temperature=cfg.temperatures[0], seed=cfg.seed + 1000)
            secs[name] += time.perf_counter() - t0
            for ex, o in zip(batch, outs):
                toks[name] += o.completion_tokens
                r = acceptance.score_for(ex, o.text)
                rows[name].append({"id": ex["ex_id"], "task": ex["task"], "text": o.text, "score": r["score"],
                                   "passed": quality.passes(r) and not acceptance.structure_faults(o.text),
                                   "reasons": quality.reasons(r["criteria"]),
                                   "contradictions": r["faithfulness"]["contradictions"],
                                   "invented": r["faithfulness"]["invented"],
                                   "faults": quality.at_fault(r["criteria"])})
        done = start + len(batch)
        print(f"  {done}/{len(examples)}: " + "; ".join(
            f"{k} {secs[k]:.0f} s, avg {sum(r['score'] for r in v) / len(v):.1f}" for k, v in rows.items()),
            flush=True)
    result = {k: summarise(rows[k], secs[k], toks[k]) for k in sides}
    result["speed_ratio_after_over_before"] = round(result["after"]["chains_per_s"] / result["before"]["chains_per_s"], 3)
    print(f"\n{'':8} {'contradiction':>22} {'unsupported specific':>22} {'faithful':>22} {'avg':>6} {'pass':>6} "
          f"{'chains/s':>9}")
    for k in sides:
        s = result[k]
        cells = [f"{100 * s[m]['share']:.1f}% [{100 * s[m]['ci95'][0]:.0f}-{100 * s[m]['ci95'][1]:.0f}]"
                 for m in ("contradiction", "invented", "faithful")]
        print(f"{k:8} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22} {s['average_score']:6.1f} "
              f"{100 * s['passed']['share']:5.1f}% {s['chains_per_s']:9.4f}")
    print(f"after/before generation speed: {result['speed_ratio_after_over_before']:.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"result": result, "rows": rows}, indent=1), encoding="utf-8")
    if args.json:
        print(json.dumps(result))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
