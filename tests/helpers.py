"""Small helpers several test files share: polling, a free loopback port, reading the URL a
`ccr serve` process prints, and arming a failpoint."""

from __future__ import annotations

import socket
import subprocess
import time


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate()`` until it returns something true (returned), or fail after ``timeout`` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_url(proc: subprocess.Popen, timeout: float) -> str:
    """The base URL (ending in /v1) a `ccr serve` child prints once it listens; fails with its output."""
    seen: list[str] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if "OpenAI-compatible API at " in line:
            return line.split("API at ", 1)[1].split()[0]
    raise AssertionError("".join(seen))


def start_app(home, port: int, log_path, engine: bool = True, new_session: bool = False) -> subprocess.Popen:
    """`streamlit run app.py` on 127.0.0.1:``port`` over ``home`` (no demo on first start), output
    appended to ``log_path``; returns once /_stcore/health answers (fails with the log's end if it dies).
    ``new_session``: its own process group, so a test can stop the app with all its children."""
    import os
    import sys

    import httpx

    from engine.core.paths import REPO

    env = dict(os.environ, CCR_HOME=str(home.data), CCR_AUTODEMO="0", CCR_ENGINE="1" if engine else "0",
               PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=new_session)

    def healthy() -> bool:
        assert proc.poll() is None, open(log_path, errors="replace").read()[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).text == "ok"
        except httpx.HTTPError:
            return False

    wait_for(healthy, 120, 0.2, "the app to answer /_stcore/health")
    return proc


def arm_failpoint(monkeypatch, folder, name: str, n: int):
    """Arm engine/core/failpoints.py's ``name`` at ``n`` for this process and the job processes it
    starts from now on; returns the file whose presence says a process is held there (a test
    kills or stops the process, then deletes the file to release it)."""
    from engine.core import failpoints

    monkeypatch.setenv(failpoints.DIR_ENV, str(folder))
    monkeypatch.setenv(failpoints.ENV, f"{name}={n}")
    return failpoints.held_file(name, n)
