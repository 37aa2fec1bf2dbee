"""Phase 1's entry points (pages/generate.py, quality.py, review.py): reasoning-chain generation
behind its test gate, review, quality, export and scoring (``ccr generate``, ``review``,
``export reasoning``, ``score``)."""

from __future__ import annotations

from engine.api.common import db, enqueue, home, refuse_model_path, run_job
from engine.api.data import current_dataset
from engine.api.pipeline import list_jobs
from engine.data import uploads


def generate_fields() -> list[dict]:
    """Every generation setting (name, help, default, type, choices), for the Generate page's form."""
    from engine.core.config import GenerateConfig, field_specs

    return field_specs(GenerateConfig)


def generate_presets() -> dict[str, dict]:
    """The ``configs/generate/*.yaml`` presets by file name, as dicts (default preset first)."""
    import yaml

    from engine.core.paths import CONFIGS

    files = sorted((CONFIGS / "generate").glob("generate_*.yaml"),
                   key=lambda p: (p.name != "generate_smollm2_cpu.yaml", p.name))
    return {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) or {} for p in files}


def generate_config(values: dict) -> dict:
    """Validate a Generate-page configuration; returns the full config dict (raises ConfigError)."""
    from engine.core.config import to_dict

    config = to_dict(_settings(values))
    if config["backend"] == "local":
        refuse_model_path(config["teacher"])
    return config


def _settings(values):
    """A GenerateConfig of the page's settings (a dict, copied) or ``ccr generate``'s resolved one."""
    from engine.chains import selection

    return selection.config_from(dict(values) if isinstance(values, dict) else values)


def generate_gate(values: dict) -> dict:
    from engine.chains import gate

    return gate.gate_status(home(), _settings(values))


def start_generate_test(values: dict) -> int:
    """Queue a test generation on one example (the gate)."""
    config = {**generate_config(values), "test": True}
    return enqueue("generate", config, generate_title(config), dedupe_key="generate-test")


def record_generate_override(values: dict, reason: str) -> int:
    from engine.chains import gate

    return gate.record_override(home(), _settings(values), reason)


def start_generate(values: dict) -> int:
    """Queue the full run; refused (ValueError) unless a test passed the gate or an override is recorded."""
    from engine.chains.gate import gate_status

    config = {**generate_config(values), "test": False}
    gate = gate_status(home(), _settings(config))
    if not gate["ok"]:
        raise ValueError(f"run a test that scores >= {gate['threshold']:g} first, or record an override")
    key = f"generate:{config.get('dataset') or current_dataset()}:{config['split']}:{gate['teacher']}:{gate['prompt_version']}"
    return enqueue("generate", config, generate_title(config), dedupe_key=key)


def generate_title(config: dict) -> str:
    """A generation job's title: the test on one example, or the full run with its split and size."""
    if config.get("test"):
        return f"test generation ({config['teacher']})"
    limit = f", {config.get('select', 'first')} {config['limit']}" if config.get("limit") is not None else ""
    return f"generate chains ({config['split']}{limit})"


def generate_jobs(limit: int = 20) -> list[dict]:
    return list_jobs(limit=limit, kind="generate")


def chains(dataset: str | None = None, limit: int | None = 100, offset: int = 0, order: str = "score",
           **filters) -> tuple[list[dict], int]:
    from engine.chains import review

    return review.list_chains(home(), dataset, limit=limit, offset=offset, order=order, **filters)


def chain(chain_id: int) -> dict | None:
    from engine.chains import review

    return review.chain_detail(home(), chain_id)


def chain_parts(text: str) -> dict:
    """The chain split into its sections, steps and parts, for a readable layout."""
    from engine.chains.chain import parse_chain

    return parse_chain(text)


def at_fault(criteria: dict | None) -> list[dict]:
    """The sentences a score breakdown names as contradicting the labels or inventing specifics."""
    from engine.chains import quality

    return quality.at_fault(criteria)


def review_chains(chain_ids: list[int], decision: str, reviewer: str | None = None) -> int:
    """Approve or reject chains as ``reviewer`` (required: ValueError without a name)."""
    from engine.chains import review

    return review.review(home(), chain_ids, decision, review.check_reviewer(reviewer))


def bulk_review(decision: str, reviewer: str | None = None, dataset: str | None = None, **filters) -> int:
    """Approve or reject every chain of ``dataset`` (default: the working one) matching the filters."""
    from engine.chains import review

    return review.bulk_review(home(), decision, dataset, review.check_reviewer(reviewer), **filters)


def edit_chain(chain_id: int, text: str, reviewer: str | None = None) -> dict:
    """Replace a chain's text and re-score it; approved when it passes (the Review page's *Save
    edit and approve*). ``reviewer`` is required, as for a decision."""
    from engine.chains import review

    return review.edit_chain(home(), chain_id, text, review.check_reviewer(reviewer))


def check_reviewer(name: str | None) -> str:
    from engine.chains import review

    return review.check_reviewer(name)


def quality_report(**filters) -> dict:
    from engine.chains import review

    return review.quality_report(home(), **filters)


def export_reasoning(include_flagged: bool = False, balanced: bool = False, limit: int | None = None,
                     out: str | None = None, dataset: str | None = None, seed: int = 0) -> dict:
    """``ccr export reasoning [--include-flagged] [--balanced] [--limit N]``: the report has each
    file's lines, ``left_out`` and ``by_label`` ({task: {label value: lines}})."""
    from engine.chains import export

    return export.export_reasoning(home(), out, include_flagged, dataset, balanced=balanced, limit=limit,
                                      seed=seed)


def score_chatml(content: bytes, filename: str = "upload.jsonl") -> dict:
    """Score the last assistant turn of every line of an uploaded ChatML JSONL file with
    ``quality.score_file`` and ``quality.summarize`` (``ccr score FILE``).

    The bytes go to a temp file (removed afterwards) because ``score_file`` reads a path, as the
    command does. Returns the summary, the per-line results (``error`` for unreadable lines), the
    threshold and the criteria's maximum points."""
    from engine.chains import quality

    with uploads.temp_copy(content, prefix="ccr-score-") as tmp:
        results = list(quality.score_file(tmp))
    return {"file": filename, "summary": quality.summarize(results), "lines": results,
            "threshold": quality.THRESHOLD, "weights": dict(quality.WEIGHTS)}


# -- what `ccr generate` and `ccr score` run in their own process ------------------------------


def generate_setup(config_path: str | None, overrides: list[str]):
    """``ccr generate``'s configuration: the preset (refused outside the config folders before it
    is read) with ``overrides``, on a dataset that exists; ConfigError or ValueError saying why not."""
    from engine.chains import selection
    from engine.core.model_catalog import check_config_path
    from engine.core.paths import CONFIGS

    if config_path:  # README: "Allowed folders"; PathNotAllowed is a ValueError
        check_config_path(config_path, home(), cli=True)
    cfg = selection.config_from(None, overrides, config_path or (CONFIGS / "generate" / "generate_smollm2_cpu.yaml"))
    selection.resolve_dataset(db(), cfg.dataset)
    return cfg


def run_generate(cfg, test: bool = False) -> dict:
    """Generate in this process: the test on one example (the gate: ``echo`` off, ``ccr generate``
    prints the chain), or the full run; the job row. ``generate_gate`` and
    ``record_generate_override`` decide whether the full run may start, as for ``start_generate``."""
    from engine.core.config import to_dict

    config = {**to_dict(cfg), "test": True} if test else to_dict(cfg)
    return run_job("generate", config, generate_title(config), echo=not test)


def score_lines(path: str):
    """``quality.score_file``: each line's score, or its ``error``, as it is read (``ccr score``)."""
    from engine.chains import quality

    return quality.score_file(path)


def score_summary(results: list[dict]) -> dict:
    """The summary of ``score_lines``'s results, with the threshold and each criterion's maximum."""
    from engine.chains import quality

    return {"summary": quality.summarize(results), "threshold": quality.THRESHOLD, "weights": dict(quality.WEIGHTS)}
