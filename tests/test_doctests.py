"""Run the doctests of the engine modules; add a module to MODULES to cover it."""

from __future__ import annotations

import doctest
import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODULES = [
    "engine.data.tasks",
    "engine.data.example",
    "engine.data.datasets",
    "engine.data.importer",
    "engine.data.labels",
    "engine.data.render",
    "engine.data.synth",
    "engine.chains.chain",
    "engine.chains.quality",
    "engine.chains.vocabulary",
    "engine.chains.analysis",
    "engine.chains.criteria",
    "engine.chains.prompt",
    "engine.chains.selection",
    "engine.chains.acceptance",
    "engine.chains.chain_job",
    "engine.chains.review",
    "engine.chains.judge",
    "engine.evaluation.metrics",
    "engine.evaluation.baseline",
    "engine.evaluation.scoring",
    "engine.evaluation.stats",
    "engine.evaluation.figures",
    "engine.evaluation.formatting",
    "engine.evaluation.evaluate",
    "engine.serving.infer",
    "engine.serving.serve",
    "engine.estimate",
    "engine.demo",
    "engine.training.train",
    "engine.core.config",
    "engine.core.safe_yaml",
    "engine.core.model_catalog",
    "engine.core.decoding",
    "engine.core.store",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctests failed in {name}"
    assert result.attempted > 0, f"no doctests in {name}"
