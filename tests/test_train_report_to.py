"""`report_to:` in the train config sends the run's metrics to the HF Trainer's own integrations;
tested with the local TensorBoard writer (the `tensorboard` package is a dev dependency that
`make test` installs) on a tiny model, reading the event files back."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_train import tiny_config, tiny_home, tiny_model  # noqa: E402,F401  (fixtures)

from engine.core import store  # noqa: E402


def _event_accumulator():
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError as exc:  # a dev dependency: `pip install -e .[dev]` (make test) installs it
        raise AssertionError(f"tensorboard is not installed ({exc}): run `make install` or pip install -e '.[dev]'")
    return EventAccumulator


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    EventAccumulator = _event_accumulator()
    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def test_report_to_tensorboard_writes_the_runs_losses(tiny_home, tiny_model):
    from engine.training import train

    _event_accumulator()
    cfg = tiny_config(tiny_home, tiny_model, "max_steps=3", "eval_steps=3", "report_to=tensorboard")
    assert train.report_trackers(cfg) == ["tensorboard"]
    result = train.train(tiny_home, "tb", cfg, log=lambda m: None)
    assert result["status"] == "succeeded"
    folder = tiny_home.models / "tb" / "tensorboard"
    scalars = _scalars(folder)
    assert "train/loss" in scalars and "eval/loss" in scalars, sorted(scalars)
    # the same figures the app stores (and the Train page draws)
    db = store.connect(tiny_home)
    ours = dict(db.execute("SELECT step, loss FROM train_metrics WHERE run_name = 'tb' AND kind = 'train'"))
    for step, value in scalars["train/loss"]:
        assert abs(ours[step] - value) < 1e-4, (step, ours[step], value)
    assert sorted(s for s, _ in scalars["train/loss"]) == sorted(ours)
    evals = dict(db.execute("SELECT step, loss FROM train_metrics WHERE run_name = 'tb' AND kind = 'eval'"))
    assert {s for s, _ in scalars["eval/loss"]} <= set(evals)


def test_no_report_to_writes_no_tracker_files(tiny_home, tiny_model):
    from engine.training import train

    cfg = tiny_config(tiny_home, tiny_model, "max_steps=1", "eval_steps=0")
    assert cfg.report_to == [] and train.report_trackers(cfg) == []
    assert train.train(tiny_home, "plain", cfg, log=lambda m: None)["status"] == "succeeded"
    assert not list((tiny_home.models / "plain").rglob("events.out.tfevents.*"))
