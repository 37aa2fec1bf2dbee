"""``ccr demo``: the whole loop in one command, on CPU with the embedded model.

synth (demo preset) -> gate test -> generate chains (train, and some validation for the loss
curve) -> export ``train_reasoning.jsonl`` -> train a LoRA adapter (``configs/train/smollm2_cpu.yaml``)
-> evaluate base and tuned on the test split -> the base-vs-tuned report.

The examples that get chains, and the chains exported, are balanced across the six tasks and,
within each task, across label values (``selection.balanced_order``): with the first N examples
instead, 8 of the 16 CSAT chains of a 96-chain run were 5/5 and the tuned model answered 5/5 to
most CSAT calls.

Every stage is a real job (``jobs.run_inline``), so the app shows each one live, and every
stage is keyed: running ``ccr demo`` again after a stop continues where it stopped (the dataset
is not recreated, chains already generated are skipped, training resumes from its last
complete checkpoint or is skipped when finished, stored evaluation predictions are reused).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.core import jobs, store
from engine.core.fileio import atomic_write
from engine.core.model_catalog import DEFAULT_MODEL
from engine.core.paths import CONFIGS, Home, resolve_home


# Default sizes: what two idle cores of an AVX2-only CPU (no native bf16, the slowest kind here)
# do in under an hour, measured stage by stage (docs/benchmarks.md, "A demo under an hour").
# The evaluation is fixed by issue 13 (all 60 test examples, 10 per task, for both models), so
# the chains and the training get what is left. The chains are balanced across the six tasks and,
# within each, across label values (``selection.balanced_order``): with the first N examples
# instead, 8 of the 16 CSAT chains of a 96-chain run were 5/5 and the tuned model answered 5/5 to
# most CSAT calls.
# Measured on 2026-12-06 (two idle AVX2 cores): 36 chains took 31.7 min end to end (chains 6.1,
# training 14.1, evaluation 11.5), and a chain costs ~30 s more (8 s to write, 3 x 7 s to train on).
TRAIN_CHAINS = 60          # 10 per task
VALIDATION_CHAINS = 6      # one per task: the eval-loss curve, not a measurement
EVAL_MAX_NEW_TOKENS = 768  # every chain the teacher wrote (max 686 tokens) and every tuned answer so far fit
EVAL_BATCH = 60            # one batch: finished rows leave it, so a batch costs what its live rows cost

# A chain of the embedded teacher is 540-700 tokens after a 320-520-token prompt (measured on
# the demo data), so the preset's max_length 1024 would cut half the examples; at 1280 none is cut.
#
# Training length: the preset (one epoch at lr 2e-4, batch 2 x 8) makes 6 updates on 96 chains.
# Measured here with 28 updates at lr 2e-4 (batch 2 x 2, ~1.2 epochs): the loss fell 2.25 -> 1.61
# and the answers picked up the label vocabulary, but no answer opened with <thinking> (the
# log-prob of "<" as the first answer token only rose from -9.9 to -5.4): the structure was not
# learned. With lr 1e-3 the checkpoint after 80 example passes already opened every answer with the
# structure, so the demo trains three epochs at lr 1e-3 with a batch of 2 x 2 (LoRA on a 135M model
# tolerates that rate; gradients are clipped at norm 1).
# Gradient checkpointing is not in this list: ``checkpointing`` decides it from the dry run.
TRAIN_OVERRIDES = ("max_length=1280", "epochs=3", "learning_rate=1e-3", "gradient_accumulation_steps=2")


def checkpointing(peak_without: int, available: int | None) -> tuple[bool, str]:
    """Whether the demo trains with gradient checkpointing, and why: only when the dry run's peak
    without it would take more than 60% of the memory available now (the app, and the teacher
    of a chain job still closing, run beside it). Checkpointing saves ~4 GiB at 1280 tokens but
    costs 20-35% of the throughput (docs/benchmarks.md); the dry run's peak is pessimistic there
    (12.2 GiB estimated, 8.8 GiB measured).

    >>> checkpointing(12 * 2**30, 20 * 2**30)
    (False, 'no gradient checkpointing: the dry run estimates a peak of 12.0 GiB without it, 20.0 GiB available')
    >>> checkpointing(12 * 2**30, 16 * 2**30)[0], checkpointing(12 * 2**30, None)[0]
    (True, True)
    """
    gib = 2 ** 30
    if available is None:
        return True, "gradient checkpointing: the available memory is unknown here"
    if peak_without <= available * 0.6:
        return False, (f"no gradient checkpointing: the dry run estimates a peak of {peak_without / gib:.1f} GiB "
                       f"without it, {available / gib:.1f} GiB available")
    return True, (f"gradient checkpointing: the dry run estimates a peak of {peak_without / gib:.1f} GiB without it, "
                  f"only {available / gib:.1f} GiB available")


def available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable`` of /proc/meminfo), None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class DemoError(RuntimeError):
    """A stage of the demo did not succeed; the message names it and the job."""


def _run(home: Home, kind: str, config: dict, title: str, echo: bool) -> dict:
    job = jobs.run_inline(home, kind, config, title=title, echo=echo)
    if job["status"] != "succeeded":
        raise DemoError(f"{title}: job {job['id']} {job['status']}" + (f": {job['error']}" if job.get("error") else "")
                        + "; run `ccr demo` again to continue from there")
    return job


def run_demo(home: Home | str | None = None, seed: int = 0, train_limit: int | None = None,
             validation_limit: int = VALIDATION_CHAINS, eval_limit: int = 0, max_new_tokens: int = EVAL_MAX_NEW_TOKENS,
             eval_batch_size: int = EVAL_BATCH, train_overrides: list[str] | tuple = (), run: str | None = None,
             report: str | None = None, echo: bool = True, log=print,
             generate_overrides: list[str] | tuple = ()) -> dict:
    """Run (or continue) the demo loop; returns the stage timings and the headline figures.

    ``train_limit``: train examples that get chains (None: ``TRAIN_CHAINS``; 0: all 300);
    ``validation_limit``: validation chains (0: none); ``eval_limit``: test examples (0: all 60).
    ``generate_overrides`` / ``train_overrides``: ``key=value`` settings of the teacher's preset
    (configs/generate/generate_smollm2_cpu.yaml; the demo keeps its own dataset, split, limit and
    balanced selection) and of the training preset; both are checked before any stage runs."""
    train_limit = TRAIN_CHAINS if train_limit is None else (int(train_limit) or None)
    home = resolve_home(home).ensure()
    db = store.connect(home)
    dataset = f"demo-seed{seed}"
    run = run or f"demo-seed{seed}"
    report = report or str(home.data / "reports" / f"{run}.json")  # one report per run: a second run keeps the first
    check_overrides(generate_overrides, train_overrides)
    stages: dict[str, float] = {}
    t_all = time.time()

    def stage(key: str, name: str, do):
        log(f"== {name}")
        t = time.time()
        out = do()
        stages[key] = round(time.time() - t, 1)
        return out

    stage("synth_s", "synthesize the demo dataset", lambda: _synthesize(home, db, dataset, seed, echo, log))
    gen_cfg = stage("generate_s", "generate reasoning chains",
                    lambda: _generate(home, dataset, train_limit, validation_limit, echo, log, generate_overrides))
    exported = stage("export_s", "export train_reasoning.jsonl", lambda: _export(home, dataset, gen_cfg, log))
    stage("train_s", "train the LoRA adapter", lambda: _train(home, run, exported, train_overrides, echo, log))
    eval_config = {"model": f"run:{run}", "base": DEFAULT_MODEL, "dataset": dataset, "split": "test",
                   "limit": eval_limit, "max_new_tokens": max_new_tokens, "batch_size": eval_batch_size,
                   "report": report}
    result = stage("eval_s", "evaluate base vs tuned on the test split",
                   lambda: _run(home, "eval", eval_config, f"evaluate run:{run} vs {DEFAULT_MODEL}", echo)["result"])
    stages["total_s"] = round(time.time() - t_all, 1)
    summary = {"dataset": dataset, "run": run, "stages": stages, "report": result["report"], "html": result["html"],
               "evaluations": result["evaluations"],
               "n_test_examples": result["n_examples"], "chains": {s: exported[s]["lines"] for s in ("train", "validation")},
               "headline": result["headline"], "comparison": result["comparison"],
               "small_sample_warning": result.get("small_sample_warning"),
               "constant_answer": result.get("constant_answer")}
    with atomic_write(Path(report).with_name(Path(report).stem + "-summary.json")) as fh:
        json.dump(summary, fh, indent=2)
    # The Pipeline page links to the last demo's comparison (the CLI's demo is no job of its own).
    store.set_setting(db, "last_demo", {k: summary[k] for k in ("run", "dataset", "evaluations", "stages",
                                                                "n_test_examples", "chains", "report")})
    return summary


def _synthesize(home: Home, db, dataset: str, seed: int, echo: bool, log) -> None:
    """Stage 1: the demo dataset (kept if it exists), made the current one."""
    if db.execute("SELECT 1 FROM datasets WHERE name = ?", [dataset]).fetchone():
        log(f"dataset {dataset} exists")
    else:
        _run(home, "synth", {"preset": "demo", "seed": seed}, f"synthesize demo (seed {seed})", echo)
    store.set_setting(db, "current_dataset", dataset)


def demo_generate_config(generate_overrides: list[str] | tuple = ()):
    """The teacher's settings of the demo: its preset with ``generate_overrides``; ConfigError (a
    ValueError naming the field) for a bad one."""
    from engine.chains import selection

    return selection.config_from(None, list(generate_overrides), str(CONFIGS / "generate" / "generate_smollm2_cpu.yaml"))


def demo_train_config(train_overrides: list[str] | tuple = ()):
    """The demo's training settings: the CPU preset, the demo's ``TRAIN_OVERRIDES``, then the user's."""
    from engine.core.config import TrainConfig, load_config

    return load_config(TrainConfig, CONFIGS / "train" / "smollm2_cpu.yaml", [*TRAIN_OVERRIDES, *train_overrides])


def check_overrides(generate_overrides: list[str] | tuple = (), train_overrides: list[str] | tuple = ()) -> None:
    """Both presets load with the user's overrides, before the first stage: a misspelt training key
    must not surface after ten minutes of chains. DemoError names the setting."""
    for what, load, overrides in (("teacher", demo_generate_config, generate_overrides),
                                  ("training", demo_train_config, train_overrides)):
        try:
            load(overrides)
        except ValueError as exc:
            raise DemoError(f"{what} setting: {exc}") from None


def _generate(home: Home, dataset: str, train_limit: int | None, validation_limit: int, echo: bool, log,
              generate_overrides: list[str] | tuple = ()):
    """Stage 2: the gate test (an override if it fails: the demo goes on), then the train and validation
    chains; returns the generation config."""
    from engine.chains.gate import gate_status, record_override
    from engine.core.config import to_dict

    gen_cfg = demo_generate_config(generate_overrides)
    gen_cfg.dataset = dataset
    gen_cfg.select = "balanced"
    gate = gate_status(home, gen_cfg)
    if not gate["ok"]:
        job = _run(home, "generate", {**to_dict(gen_cfg), "test": True}, "test generation (demo gate)", echo)
        r = job["result"]
        log(f"gate test on {r['ex_id']}: score {r['score']:.1f} (gate {r['gate_threshold']:g})")
        if not r["passed"]:
            record_override(home, gen_cfg, f"ccr demo: gate test scored {r['score']:.1f}; the demo goes on "
                                     f"and the weak chains are retried, then flagged")
            log("gate not reached: override recorded, the run goes on (weak chains are retried, then flagged)")
    for split, limit in (("train", train_limit), ("validation", validation_limit)):
        if limit == 0:
            continue
        cfg = {**to_dict(gen_cfg), "split": split, "limit": limit}
        job = _run(home, "generate", cfg, f"generate chains ({split}" + (f", balanced {limit}" if limit else "") + ")",
                   echo)
        log(job["result"].get("summary", ""))
    return gen_cfg


def _export(home: Home, dataset: str, gen_cfg, log) -> dict:
    """Stage 3: train_reasoning.jsonl (balanced by task); an export with no train chain ends the demo."""
    from engine.chains import export, selection

    exported = export.export_reasoning(home, None, False, dataset, balanced=True, seed=gen_cfg.seed)
    log(f"exported {exported['train']['lines']} train and {exported['validation']['lines']} validation chains to "
        f"{exported['train']['path']}"
        + (f" ({exported['train']['left_out']} train chains left out to keep the tasks even)"
           if exported["train"]["left_out"] else ""))
    log("train chains by task and label value: " + selection.format_balance(exported["train"]["by_label"]))
    if not exported["train"]["lines"]:
        raise DemoError("no chain passed the quality gate; nothing to train on (review the flagged chains on the "
                        "Review page, or export with flagged chains)")
    return exported


def _train(home: Home, run: str, exported: dict, train_overrides: list[str] | tuple, echo: bool, log) -> None:
    """Stage 4: train ``run`` (a finished run is kept, a started one resumed); gradient checkpointing is
    decided from the dry run's memory estimate unless the overrides set it."""
    from engine.training import runs

    folder = runs.run_folder(home, run)
    manifest = runs.read_manifest(folder)
    if manifest and manifest.get("status") == "succeeded" and (folder / "adapter_model.safetensors").exists():
        log(f"run {run} already trained")
        return
    eval_data = exported["validation"]["path"] if exported["validation"]["lines"] else None
    if manifest or (folder / "config.yaml").exists():
        launch = runs.prepare_launch(home, overrides=[*TRAIN_OVERRIDES, *train_overrides], resume=run)
    else:
        overrides = [*TRAIN_OVERRIDES, *train_overrides]
        if not any(o.startswith("gradient_checkpointing=") for o in train_overrides):
            from engine.training import dryrun
            from engine.core.config import TrainConfig, load_config

            plan = dryrun.estimate(load_config(TrainConfig, CONFIGS / "train" / "smollm2_cpu.yaml", overrides), home,
                                   exported["train"]["path"])
            use_gc, why = checkpointing(plan["memory"]["total"], available_memory())
            log(why)
            overrides.append(f"gradient_checkpointing={str(use_gc).lower()}")
        launch = runs.prepare_launch(home, config_path=str(CONFIGS / "train" / "smollm2_cpu.yaml"), overrides=overrides,
                                     data=exported["train"]["path"], eval_data=eval_data, run=run)
    job = _run(home, "train", launch, f"train {run}", echo)
    log(f"run {run}: step {job['result'].get('step')}, train loss {job['result'].get('train_loss')}")


def format_summary(summary: dict) -> str:
    """The lines ``ccr demo`` prints at the end: the key figures, base vs tuned."""
    comp = summary.get("comparison") or {}
    deltas = comp.get("deltas", {})
    keys = ("structure.compliance_rate", "structure.all_sections_rate", "quality_score.mean",
            "csat.within_one_accuracy", "csat.exact_accuracy", "churn.accuracy", "overall.accuracy",
            "overall.parse_rate")
    lines = [f"{'metric':30s} {'base':>8s} {'tuned':>8s} {'delta':>8s}  paired test at 95%"]
    for k in keys:
        d = deltas.get(k)
        if d:
            lines.append(f"{k:30s} {d['base']:8.3f} {d['tuned']:8.3f} {d['delta']:+8.3f}  {d.get('verdict', '')}")
    const = summary.get("constant_answer") or {}
    if const.get("n"):  # an accuracy is read against what one fixed answer per task scores
        lines.append(const["description"])
        lines += [f"  {m['summary']}" for m in const["models"]]
    if summary.get("small_sample_warning"):
        lines.append(f"warning: {summary['small_sample_warning']}")
    s = summary["stages"]
    lines.append("time: " + ", ".join(f"{k[:-2]} {v / 60:.1f} min" for k, v in s.items()))
    lines.append(f"report: {summary['report']} and {summary['html']}")
    return "\n".join(lines)


def run_demo_job(ctx, config: dict) -> dict:
    """Job kind ``demo`` (the page's "run the whole loop"): ``run_demo`` inside one job process.

    Each stage is still its own job row (the app shows them). A stop asked of this job is passed
    on to the stage running at that moment, which stops at its own safe point (training saves a
    checkpoint); this job then ends paused or cancelled, and resuming it continues the loop.
    """
    import os
    import threading

    from engine.core.jobs import JobStopped

    done = threading.Event()

    def forward_stop() -> None:
        db = store.connect(ctx.home)  # this thread's own connection
        while not done.wait(1.0):
            how = ctx.stop_requested()
            if not how:
                continue
            for (job_id,) in db.execute("SELECT id FROM jobs WHERE pid = ? AND id != ? AND status = 'running'",
                                        [os.getpid(), ctx.job_id]).fetchall():
                (store.request_cancel if how == "cancel" else store.request_pause)(db, job_id)

    watcher = threading.Thread(target=forward_stop, daemon=True)
    watcher.start()
    try:
        return run_demo(ctx.home, seed=int(config.get("seed", 0)), train_limit=config.get("train_limit"),
                        validation_limit=int(config.get("validation_limit", VALIDATION_CHAINS)),
                        eval_limit=int(config.get("eval_limit", 0)),
                        max_new_tokens=int(config.get("max_new_tokens", EVAL_MAX_NEW_TOKENS)),
                        train_overrides=list(config.get("train_overrides") or []), echo=True, log=ctx.log,
                        generate_overrides=list(config.get("generate_overrides") or []))
    except DemoError:
        how = ctx.stop_requested()
        if how:
            raise JobStopped(how) from None
        raise
    finally:
        done.set()
