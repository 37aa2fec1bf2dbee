"""Shared fixtures. Tests run offline (HF_HUB_OFFLINE=1) against real SQLite files in temp homes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CCR_AUTODEMO", "0")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh state folder, also exported as CCR_HOME for code (and child processes) that read it."""
    from engine.core.paths import resolve_home

    monkeypatch.setenv("CCR_HOME", str(tmp_path / "home"))
    return resolve_home(tmp_path / "home").ensure()


@pytest.fixture
def demo_home(home):
    """A home with the demo dataset (seed 0) registered."""
    from engine.data import datasets

    datasets.synthesize(home, "demo", 0)
    return home


@pytest.fixture(scope="session")
def embedded_generator():
    """The embedded SmolLM2-135M loaded once per test session (CPU, fp32)."""
    from engine.core.generation import LocalGenerator

    return LocalGenerator()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave screenshots and reports for people to look at (printed by `make test`)."""
    path = Path(os.environ.get("CCR_ARTIFACTS", REPO / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def app_env(demo_home, monkeypatch):
    """The pages under AppTest: the demo dataset, the engine's worker thread off (CCR_ENGINE=0,
    the test runs jobs itself or only looks at what a page queued) and no demo autostart."""
    monkeypatch.setenv("CCR_ENGINE", "0")
    monkeypatch.setenv("CCR_AUTODEMO", "0")
    return demo_home


@pytest.fixture
def open_page(monkeypatch):
    """``open_page(path)``: app.py under AppTest, run, switched to the page ``path`` (None: stay
    on the first page) and run again; with ``check`` (the default) an exception the page raised
    fails the test. The engine's worker thread is off, as in ``app_env``."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CCR_ENGINE", "0")
    monkeypatch.setenv("CCR_AUTODEMO", "0")

    def open_(path: str | None, timeout: float = 120, check: bool = True) -> AppTest:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=timeout)
        at.run()
        if path is not None:
            at.switch_page(path).run()
        if check:
            assert not at.exception, [e.value for e in at.exception]
        return at

    return open_
