"""One-off CUDA check of the training path (not part of the product): smollm2 architecture with random
weights, bf16 on CUDA; measured peak memory vs the dry-run estimate; stop + resume equality."""
import json, os, subprocess, sys, time
from pathlib import Path
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE / "pydeps"), str(REPO)]
os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE / "pydeps"), str(REPO)])
os.environ["HF_HUB_OFFLINE"] = "1"
OUT = Path(os.environ.get("OUT", "/tmp/out")); OUT.mkdir(parents=True, exist_ok=True)
WORK = Path("/tmp/gpucheck"); WORK.mkdir(exist_ok=True)
home_dir = WORK / "home"

def child(name, overrides):
    from engine import store, train
    from engine.config import TrainConfig, load_config
    cfg = load_config(TrainConfig, None, overrides)
    r = train.train(str(home_dir), name, cfg, log=lambda m: print(m, flush=True))
    rows = store.connect(str(home_dir)).execute("SELECT step, loss, tokens_per_s, memory_mb FROM train_metrics WHERE run_name=? AND kind='train' ORDER BY step", [name]).fetchall()
    print("RESULT " + json.dumps({"name": name, "rows": rows, "result": {k: v for k, v in r.items() if isinstance(v, (int, float, str, type(None)))}}), flush=True)

if len(sys.argv) > 2 and sys.argv[1] == "--child":
    child(sys.argv[2], sys.argv[3:]); sys.exit(0)

import torch
from transformers import AutoTokenizer, AutoConfig, AutoModelForCausalLM
model_dir = WORK / "smolrand"
if not (model_dir / "config.json").exists():
    arch = json.loads((REPO / "configs/arch/smollm2-135m-instruct.json").read_text())
    mt = arch.pop("model_type"); [arch.pop(k, None) for k in ("architectures", "transformers_version", "_model_name_or_path", "dtype")]
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(AutoConfig.for_model(mt, **arch))
    m.save_pretrained(model_dir); AutoTokenizer.from_pretrained(HERE / "smol").save_pretrained(model_dir)
from engine import synth
files = synth.write_synth(WORK / "demo", preset="demo", seed=0)["files"]
data = str(files["train"])
common = [f"base_model={model_dir}", f"data={data}", "device=cuda", "precision=bf16", "batch_size=2", "gradient_accumulation_steps=1",
          "max_length=2048", "logging_steps=1", "eval_steps=0", "save_steps=100000", "learning_rate=2e-4", "seed=0", "loss_logits_only=false"]
variants = {
  "pad_max_full_logits": ["padding=max_length", "loss_logits_only=false", "max_steps=4"],
  "dynamic": ["max_steps=8"],
  "dynamic_gc": ["gradient_checkpointing=true", "max_steps=8"],
  "pad_max_gc": ["padding=max_length", "gradient_checkpointing=true", "max_steps=4"],
}
report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
os.environ["CCR_ALLOWED_PATHS"] = str(WORK)
env = dict(os.environ)
for name, extra in variants.items():
    p = subprocess.run([sys.executable, __file__, "--child", name, *common, *extra], capture_output=True, text=True, env=env, cwd=str(REPO))
    (OUT / f"{name}.log").write_text(p.stdout[-20000:] + p.stderr[-20000:])
    lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    res = json.loads(lines[-1][7:]) if lines else {"error": p.stderr[-3000:]}
    if "rows" in res:
        rows = res["rows"]
        res["peak_memory_mb"] = max(r[3] for r in rows)
        tps = [r[2] for r in rows[1:] if r[2]]
        res["tokens_per_s_median"] = sorted(tps)[len(tps)//2] if tps else None
    # the dry run's estimate for the same config
    from engine import dryrun
    from engine.config import TrainConfig, load_config
    cfg = load_config(TrainConfig, None, common + extra)
    est = dryrun.estimate(cfg, str(home_dir), data)
    res["estimate"] = {k: est["memory"][k] / 2**20 for k in ("weights", "lora_states", "activations", "activations_checkpointed", "logits", "total", "total_checkpointed", "peak")}
    res["estimate"]["typical_total"] = est["memory"].get("typical_total", 0) / 2**20
    report[name] = res
    print(name, res.get("peak_memory_mb"), res.get("tokens_per_s_median"), res["estimate"]["peak"], flush=True)

# stop + resume on CUDA: the same losses as an uninterrupted run
p1 = subprocess.run([sys.executable, __file__, "--child", "straight", *common, "max_steps=6", "save_steps=3"], capture_output=True, text=True, env=env, cwd=str(REPO))
p2 = subprocess.run([sys.executable, "-c", f"""
import sys; sys.path[:0]={[str(HERE / 'pydeps'), str(REPO)]!r}
from engine import train
from engine.config import TrainConfig, load_config
cfg = load_config(TrainConfig, None, {common + ['max_steps=6', 'save_steps=100']!r})
n = {{'c': 0}}
def stop():
    n['c'] += 1
    return 'pause' if n['c'] >= 4 else None
print(train.train({str(home_dir)!r}, 'resumed', cfg, should_stop=stop)['step'])
print(train.train({str(home_dir)!r}, 'resumed', cfg, resume=True)['step'])
"""], capture_output=True, text=True, env=env, cwd=str(REPO))
(OUT / "resume.log").write_text(p1.stdout[-5000:] + p1.stderr[-5000:] + p2.stdout[-5000:] + p2.stderr[-5000:])
import sqlite3
db = sqlite3.connect(home_dir / "ccr.db")
a = dict(db.execute("SELECT step, loss FROM train_metrics WHERE run_name='straight' AND kind='train'").fetchall())
b = dict(db.execute("SELECT step, loss FROM train_metrics WHERE run_name='resumed' AND kind='train'").fetchall())
report["resume"] = {"straight": a, "resumed": b, "max_diff": max((abs(a[k] - b[k]) for k in a if k in b), default=None)}
(OUT / "report.json").write_text(json.dumps(report, indent=1))
print(json.dumps(report["resume"]))
