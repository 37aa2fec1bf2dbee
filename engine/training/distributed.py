"""Multi-GPU training: the hand-over of a run to `accelerate launch` (one process per rank) and
what the ranks agree on (who is rank 0, when to stop).

The job process does not train: it writes the run's config.yaml, starts
``accelerate launch -m engine.training.train`` (each rank runs ``train()``), relays a stop as the
run's STOP file, and reports the outcome from the manifest rank 0 writes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from engine.core.config import TrainConfig
from engine.core.paths import REPO, Home
from engine.training.runs import STOP_FILE, read_manifest, run_folder, write_run_config


def dist_rank() -> tuple[int, int, int]:
    """(rank, local rank, world size) from the variables `accelerate launch` / torchrun set."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")),
            int(os.environ.get("WORLD_SIZE", "1")))



def agree_on_stop(how: str | None, args) -> str | None:
    """Under DDP every rank must stop at the same step: the most severe request of any rank wins."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return how
    import torch

    code = {None: 0, "pause": 1, "cancel": 2}.get(how, 1)
    flag = torch.tensor([code], device=args.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return {0: None, 1: "pause", 2: "cancel"}[int(flag.item())]


def stop_file_reader(folder: Path):
    """should_stop for ranks under `accelerate launch`: the job process writes STOP with 'pause' or 'cancel'."""
    path = folder / STOP_FILE

    def should_stop():
        try:
            return path.read_text().strip() or "pause"
        except OSError:
            return None

    return should_stop


def cuda_gpus() -> int:
    with contextlib.suppress(Exception):
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    return 0



def launch_command(home: Home, run: str, cfg: TrainConfig, resume: bool, processes: int,
                   job_id: int | None) -> list[str]:
    """The `accelerate launch` command line that runs this run's ``train()`` on ``processes`` ranks."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if cfg.accelerate_config:
        cmd += ["--config_file", cfg.accelerate_config]
    else:
        # --multi_gpu is accelerate's torchrun launcher: one process per rank. (Its --cpu launcher
        # runs one process, so the CPU check of this path, cpu=True, uses the same launcher with gloo.)
        cmd += ["--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no", "--multi_gpu"]
    cmd += ["-m", "engine.training.train", "--home", str(home.data), "--models", str(home.models), "--run", run]
    if job_id is not None:
        cmd += ["--job-id", str(job_id)]
    if resume:
        cmd.append("--resume")
    return cmd


def launch_distributed(ctx, run: str, cfg: TrainConfig, resume: bool, processes: int, cpu: bool = False) -> dict:
    """Run the training under `accelerate launch` (DDP, or FSDP through ``accelerate_config``) and
    supervise it: relay a stop as the STOP file, report the outcome from the manifest."""
    folder = run_folder(ctx.home, run)
    folder.mkdir(parents=True, exist_ok=True)
    write_run_config(folder, cfg)
    stop_file = folder / STOP_FILE
    stop_file.unlink(missing_ok=True)
    cmd = launch_command(ctx.home, run, cfg, resume, processes, ctx.job_id)
    ctx.log(f"{processes} {'CPU processes' if cpu else 'GPUs'}: " + " ".join(cmd[1:]))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=str(REPO), env=env)
    stopped = None
    try:
        while proc.poll() is None:
            how = ctx.stop_requested()
            if how and not stopped:
                stopped = how
                stop_file.write_text(how)
                ctx.log(f"stop requested ({how}): asked every rank to checkpoint and stop")
            time.sleep(1.0)
    except BaseException:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        raise
    finally:
        stop_file.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"accelerate launch exited with code {proc.returncode} (see the job log)")
    manifest = read_manifest(folder) or {}
    result = {"run": run, "dir": str(folder), "status": manifest.get("status"), "stopped": stopped,
              "world_size": processes, **(manifest.get("final_metrics") or {})}
    return result

