"""The job engine: a queue in SQLite, a worker loop that supervises one child process per job.

Why a child process per job: a crash, an out-of-memory kill or a cancel of a heavy phase
(generate, train, evaluate, serve) must never take the UI down, and the GPU memory a job held
is only reliably returned when its process exits.

Life of a job: ``enqueue`` (status queued) -> a worker ``claim``s it (running) and starts
``python -m engine.core.jobs run JOB_ID`` -> the child runs the job's function with a ``JobContext``
(progress, stop requests, logging) and closes the row (succeeded / failed / cancelled / paused)
-> the worker reaps the process; if the child died without closing its row, the worker marks
it failed with the tail of its log.

Every job kind's function is named in ``JOB_KINDS`` as ``module:function`` so that this module
imports nothing heavy. The function has the signature ``fn(ctx: JobContext, config: dict) ->
dict`` (the result stored on the job row) and calls ``ctx.check()`` at safe points, which raises
``JobStopped`` when a cancel or pause was asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from engine.core import store
from engine.core.paths import REPO, Home, resolve_home

# kind -> "module:function". A plain dict: adding a phase is one line here.
JOB_KINDS = {
    "synth": "engine.data.datasets:run_synth_job",
    "import": "engine.data.datasets:run_import_job",
    "generate": "engine.chains.chain_job:run_generate_job",
    "eval": "engine.evaluation.evaluate:run_eval_job",
    "infer": "engine.serving.infer:run_infer_job",
    "serve": "engine.serving.serve:run_serve_job",
    "demo": "engine.demo:run_demo_job",
    "train": "engine.training.train:run_train_job",
    "export_model": "engine.training.export:run_export_model_job",  # the Train page's Export (a merge loads torch)
}
# Kinds whose work is keyed in the database, so re-running them after a stop continues
# where they were instead of starting over.
RESUMABLE = {"generate", "train", "eval", "infer", "demo"}
# Long-running services do not take the batch slot (a served model must not block training).
SERVICES = {"serve"}
# How long a cooperative stop may take before the child is killed (training saves a checkpoint).
STOP_GRACE_S = {"train": 300.0, "demo": 330.0}
DEFAULT_STOP_GRACE_S = 20.0
HEARTBEAT_S = 2.0
STALE_AFTER_S = 30.0
LOG_TAIL_BYTES = 6000


class JobStopped(Exception):
    """Raised by ``JobContext.check()`` when the job was asked to cancel or pause."""

    def __init__(self, how: str):
        super().__init__(how)
        self.how = how  # "cancel" | "pause"


def job_function(kind: str):
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r} (known: {', '.join(sorted(JOB_KINDS))})")
    module, func = JOB_KINDS[kind].split(":")
    return getattr(importlib.import_module(module), func)


def enqueue(home: Home | str | None, kind: str, config: dict, title: str | None = None,
            dedupe_key: str | None = None) -> int:
    """Queue a job for a worker (the app's engine thread or ``ccr worker``)."""
    job_function(kind)  # fail early on an unknown kind
    db = store.connect(home)
    return store.enqueue_job(db, kind, config, title=title, dedupe_key=dedupe_key)


def tail_file(path: str | os.PathLike | None, nbytes: int = LOG_TAIL_BYTES) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - nbytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > nbytes and "\n" in text:
        text = text.split("\n", 1)[1]
    return text


# ---------------------------------------------------------------------------------------------
# Inside a job
# ---------------------------------------------------------------------------------------------


class JobContext:
    """What a job function gets: its id, home, config and the means to report and to stop.

    Progress writes are throttled (at most every ``min_interval`` seconds unless forced), so a
    job may call ``progress`` per example without hammering the database.
    """

    def __init__(self, home: Home, job_id: int, echo: bool = False, min_interval: float = 0.5):
        self.home = home
        self.job_id = job_id
        self.echo = echo
        self.min_interval = min_interval
        self._db = store.connect(home)
        self._last_progress = 0.0
        self._stop: str | None = None
        self._stop_local = threading.Event()
        self._log_lines: list[str] = []
        self.started = time.time()

    @property
    def db(self):
        """A connection for the job's own thread (the job function's thread)."""
        return self._db

    def log(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        if self.echo:
            print(line, flush=True)
        self._log_lines = (self._log_lines + [line])[-60:]

    def log_tail(self) -> str:
        return "\n".join(self._log_lines)

    def progress(self, done: int | float, total: int | float | None = None, force: bool = False,
                 fraction: float | None = None, **stats) -> None:
        """Report ``done`` of ``total`` plus any stats (rates, eta, quality...) to the job row.

        ``fraction`` (0..1) overrides ``done / total`` for the progress bar when the work inside
        a unit is known (a generation batch half decoded). The payload carries ``at``, the time
        it was written, so a reader can count an ETA down (``eta_s - (now - at)``) and compute
        the elapsed time from the job's ``started_at`` at read time instead of showing this
        write's figure frozen."""
        t = time.time()
        if not force and t - self._last_progress < self.min_interval and not (total and done >= total):
            return
        self._last_progress = t
        frac = min(1.0, done / total) if total else None
        if fraction is not None:
            frac = min(1.0, max(0.0, fraction))
        payload = {"done": done, "total": total, "elapsed_s": round(t - self.started, 1), "at": round(t, 3), **stats}
        store.update_job_progress(self._db, self.job_id, frac, payload)

    def stop_requested(self) -> str | None:
        """'cancel' or 'pause' when someone asked this job to stop, 'local' when this process was
        told to stop (a signal, or its supervisor went away), else None.

        Every call reads the job row (a primary-key read, microseconds; callers ask once per
        round, step or batch), so a stop lands at the next safe point whatever the machine's
        speed: a throttled read let a fast run finish steps it had been asked not to take."""
        if self._stop:
            return self._stop
        if self._stop_local.is_set():
            self._stop = "local"
            return self._stop
        row = self._db.execute("SELECT cancel_requested, pause_requested FROM jobs WHERE id = ?",
                               [self.job_id]).fetchone()
        if row and row[0]:
            self._stop = "cancel"
        elif row and row[1]:
            self._stop = "pause"
        return self._stop

    def check(self) -> None:
        """Raise JobStopped if a stop was requested; call at points where stopping loses nothing."""
        how = self.stop_requested()
        if how:
            raise JobStopped(how)

    def request_local_stop(self) -> None:
        """Ask the job to stop from inside this process (SIGTERM, Ctrl-C): it ends interrupted."""
        self._stop_local.set()


def _heartbeat_loop(home: Home, job_id: int, stop: threading.Event, ctx: JobContext, parent_pid: int | None,
                    grace_s: float = DEFAULT_STOP_GRACE_S) -> None:
    db = store.connect(home)  # this thread's own connection
    while not stop.wait(HEARTBEAT_S):
        with contextlib.suppress(Exception):
            store.heartbeat_job(db, job_id)
        if parent_pid is not None and os.getppid() != parent_pid:
            # Our supervisor died. Finish the current unit of work and stop, so the job can be
            # resumed by the next worker instead of running twice.
            ctx.request_local_stop()
            # As long as the worker would have waited (training saves a checkpoint first).
            if stop.wait(max(60.0, grace_s)):
                return
            os._exit(3)


# Failures of the input or of the machine rather than of the code (a bad config, a model that
# cannot load, a port in use, a file that cannot be written): the one-line message says it all,
# so they print no traceback, and `ccr` exits 2 with that line. A genuine bug keeps its
# traceback. By class name, so this module imports none of the modules that define them.
EXPECTED_ERRORS = frozenset({"ConfigError", "PathNotAllowed", "ModelNotAvailable", "RunError", "DataError",
                             "ServeError", "ImportFileError", "EvalDataError", "InferInputError", "TeacherError"})


def expected_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or any(c.__name__ in EXPECTED_ERRORS for c in type(exc).__mro__)


def execute(home: Home, job: dict, echo: bool = False, parent_pid: int | None = None,
            handle_signals: bool = False, requeue_on_local_stop: bool = False) -> str:
    """Run a claimed job in this process and close its row; returns the final status.

    With ``handle_signals`` (main thread only), a SIGTERM or Ctrl-C asks the job to stop at its
    next safe point and a second Ctrl-C aborts at once. A job stopped that way from outside
    ends ``interrupted``; with ``requeue_on_local_stop`` a resumable one goes back in the queue,
    so the next worker continues it.
    """
    ctx = JobContext(home, job["id"], echo=echo)
    stop = threading.Event()
    grace = STOP_GRACE_S.get(job["kind"], DEFAULT_STOP_GRACE_S)
    beat = threading.Thread(target=_heartbeat_loop, args=(home, job["id"], stop, ctx, parent_pid, grace), daemon=True)
    beat.start()
    previous = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        def on_signal(signum, frame):
            # Only a repeated Ctrl-C aborts. A repeated SIGTERM just asks again: when the worker
            # (the app) is killed, the kernel sends PR_SET_PDEATHSIG's SIGTERM each time it
            # reparents this process, once per exiting thread of the dead supervisor, and that
            # must not abort a job mid-step (the worker itself escalates with SIGKILL).
            if ctx._stop_local.is_set():
                if signum == signal.SIGINT:
                    raise KeyboardInterrupt
                return
            ctx.log("stop requested: finishing the current unit of work (Ctrl-C again to abort)")
            ctx.request_local_stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    status, error, result = "failed", None, None
    try:
        fn = job_function(job["kind"])
        result = fn(ctx, job["config"])
        status = "succeeded"
    except JobStopped as exc:
        status = {"cancel": "cancelled", "pause": "paused"}.get(exc.how, "interrupted")
        if status == "interrupted":
            error = "stopped by a signal or because its supervisor went away"
        ctx.log(f"job {job['id']} {status}")
    except KeyboardInterrupt:
        status, error = "interrupted", "aborted by a signal"
    except Exception as exc:  # the job's own failure: record it, never crash the worker
        error = f"{type(exc).__name__}: {exc}"
        if not expected_error(exc):
            traceback.print_exc()  # a bug: its traceback goes to the terminal or the job's log
        elif parent_pid is not None:
            print(f"error: {error}", file=sys.stderr)  # the job's log (ccr prints it itself when inline)
        sys.stderr.flush()
    finally:
        stop.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if status == "succeeded" and isinstance(result, dict) and result.get("error"):
        status, error = "failed", str(result["error"])
    # A fresh connection: the job's own may be mid-transaction after an exception.
    db = store.connect(home)
    log_path = store.get_job(db, job["id"]).get("log_path")
    store.finish_job(db, job["id"], status, error=error,
                     log_tail=tail_file(log_path) if log_path else ctx.log_tail(),
                     result=result if isinstance(result, dict) else None)
    if status == "interrupted" and requeue_on_local_stop and job["kind"] in RESUMABLE:
        store.requeue_job(db, job["id"])
        return "queued"
    return status


def run_inline(home: Home | str | None, kind: str, config: dict, title: str | None = None, echo: bool = True) -> dict:
    """Create a job and run it in this process (the headless ``ccr`` commands); returns the row.

    It is a real job row, so the app shows it live and can cancel or pause it; Ctrl-C stops it
    at its next safe point (twice: at once). Re-running the command resumes keyed work.
    """
    home = resolve_home(home).ensure()
    db = store.connect(home)
    # A command killed earlier (kill -9, a reboot) left its job 'running'; with no app open,
    # nothing else would ever say it stopped.
    store.recover_stale_jobs(db, STALE_AFTER_S, RESUMABLE)
    job_id = store.enqueue_job(db, kind, config, title=title)
    job = store.claim_job(db, worker=f"{socket.gethostname()}:{os.getpid()}:inline", job_id=job_id)
    store.set_job_pid(db, job_id, os.getpid())
    execute(home, job, echo=echo, handle_signals=True)
    return store.get_job(store.connect(home), job_id)


# ---------------------------------------------------------------------------------------------
# The worker: claims jobs and supervises their processes
# ---------------------------------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM when the engine thread that started it dies."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Supervised:
    def __init__(self, job: dict, proc: subprocess.Popen, log_path: Path):
        self.job = job
        self.proc = proc
        self.log_path = log_path
        self.stop_sent_at: float | None = None


class Worker:
    """Claims queued jobs and runs each in a supervised child process.

    ``slots`` batch jobs run at once (default 1: two CPU cores or one GPU are best used by one
    heavy job); services such as ``serve`` run beside them.
    """

    def __init__(self, home: Home | str | None = None, slots: int = 1, poll_s: float = 1.0, name: str | None = None):
        self.home = resolve_home(home).ensure()
        self.slots = slots
        self.poll_s = poll_s
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.running: dict[int, Supervised] = {}
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.started_at = time.time()
        self.passes = 0  # completed passes of the loop (tests wait on it instead of sleeping)

    # -- lifecycle --------------------------------------------------------------------------
    def start_thread(self) -> "Worker":
        self.thread = threading.Thread(target=self.loop, name="ccr-engine", daemon=True)
        self.thread.start()
        return self

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        if self.thread:
            self.thread.join(timeout)

    def loop(self) -> None:
        db = store.connect(self.home)  # owned by this thread
        store.recover_stale_jobs(db, STALE_AFTER_S, RESUMABLE)
        last_recover = time.time()
        try:
            while not self.stop_event.is_set():
                try:
                    self.tick(db)
                    if time.time() - last_recover > 10:
                        store.recover_stale_jobs(db, STALE_AFTER_S, RESUMABLE)
                        last_recover = time.time()
                    self.last_error = None
                    self.passes += 1
                except Exception as exc:  # keep the engine alive; show the error in the sidebar
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    traceback.print_exc()
                self.stop_event.wait(self.poll_s)
        finally:
            self.shutdown(db)

    # -- one pass -----------------------------------------------------------------------------
    def tick(self, db) -> None:
        for job_id, sup in list(self.running.items()):
            self._supervise(db, sup)
        batch = [s for s in self.running.values() if s.job["kind"] not in SERVICES]
        while len(batch) < self.slots:
            job = store.claim_job(db, self.name, kinds=[k for k in JOB_KINDS if k not in SERVICES])
            if not job:
                break
            batch.append(self._start(db, job))
        while True:
            job = store.claim_job(db, self.name, kinds=[k for k in JOB_KINDS if k in SERVICES])
            if not job:
                break
            self._start(db, job)

    def _start(self, db, job: dict) -> Supervised:
        log_path = self.home.logs / f"job-{job['id']}.log"
        log = open(log_path, "ab")
        log.write(f"--- run {job['runs']} of job {job['id']} ({job['kind']}) by {self.name} at "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        env = dict(os.environ, CCR_HOME=str(self.home.data), PYTHONUNBUFFERED="1")
        if self.home.models != self.home.data / "models":
            env["CCR_MODELS"] = str(self.home.models)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "engine.core.jobs", "run", str(job["id"]), "--parent", str(os.getpid())],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                cwd=str(REPO),
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            store.finish_job(db, job["id"], "failed", error=f"could not start the job process: {exc}")
            raise
        finally:
            log.close()
        store.set_job_pid(db, job["id"], proc.pid, str(log_path))
        sup = Supervised(job, proc, log_path)
        self.running[job["id"]] = sup
        return sup

    def _supervise(self, db, sup: Supervised) -> None:
        job_id = sup.job["id"]
        code = sup.proc.poll()
        tail = tail_file(sup.log_path)
        if code is None:
            row = store.get_job(db, job_id)
            store.heartbeat_job(db, job_id, log_tail=tail)
            if row and (row["cancel_requested"] or row["status"] == "pausing"):
                grace = STOP_GRACE_S.get(sup.job["kind"], DEFAULT_STOP_GRACE_S)
                if sup.stop_sent_at is None:
                    sup.stop_sent_at = time.time()
                elif time.time() - sup.stop_sent_at > grace:
                    self._kill(sup)
                    store.finish_job(db, job_id, "cancelled" if row["cancel_requested"] else "paused",
                                     error=f"did not stop within {grace:.0f} s; killed", log_tail=tail)
            return
        del self.running[job_id]
        row = store.get_job(db, job_id)
        if row and row["status"] in ("running", "pausing"):
            # The child died without closing its row: a crash, a kill, an out-of-memory kill.
            why = f"process exited with code {code}" if code >= 0 else f"process killed by signal {-code}"
            store.finish_job(db, job_id, "failed", error=f"{why}; see the log tail", log_tail=tail)
        else:
            store.heartbeat_job(db, job_id, log_tail=tail)

    def _kill(self, sup: Supervised) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(sup.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            sup.proc.wait(5)

    def shutdown(self, db) -> None:
        """Stop children on the way out: SIGTERM asks each to stop at a safe point (resumable
        jobs requeue themselves); one still running after the grace period is killed."""
        for sup in self.running.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(sup.proc.pid, signal.SIGTERM)
        deadline = time.time() + DEFAULT_STOP_GRACE_S
        for sup in self.running.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                sup.proc.wait(max(0.1, deadline - time.time()))
            if sup.proc.poll() is None:
                self._kill(sup)
            row = store.get_job(db, sup.job["id"])
            if row and row["status"] in ("running", "pausing"):
                store.finish_job(db, sup.job["id"], "interrupted", error="engine stopped",
                                 log_tail=tail_file(sup.log_path))
                if sup.job["kind"] in RESUMABLE and not row["cancel_requested"]:
                    store.requeue_job(db, sup.job["id"])
        self.running.clear()

    def status(self) -> dict:
        return {"alive": self.alive(), "name": self.name, "running": sorted(self.running),
                "last_error": self.last_error, "since": self.started_at}


# ---------------------------------------------------------------------------------------------
# Child entry point: python -m engine.core.jobs run JOB_ID
# ---------------------------------------------------------------------------------------------


def _child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.core.jobs")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("job_id", type=int)
    run.add_argument("--parent", type=int, default=None)
    args = parser.parse_args(argv)
    home = resolve_home(os.environ.get("CCR_HOME"))
    if os.environ.get("CCR_MODELS"):
        home = Home(home.data, Path(os.environ["CCR_MODELS"]))
    job = store.get_job(store.connect(home), args.job_id)
    if job is None:
        print(f"job {args.job_id} not found", file=sys.stderr)
        return 2

    print(f"job {job['id']} ({job['kind']}) pid {os.getpid()} config {json.dumps(job['config'])}", flush=True)
    execute(home, job, echo=True, parent_pid=args.parent, handle_signals=True, requeue_on_local_stop=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
