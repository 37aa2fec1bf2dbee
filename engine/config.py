"""Configuration: one dataclass per phase, loaded from a YAML preset plus dotted overrides.

A preset in ``configs/`` is a flat YAML mapping of one phase's fields (nested dataclasses as
nested mappings). ``load_config(TrainConfig, "configs/x.yaml", ["max_steps=3", "lora.r=8"])``
reads it with ``yaml.safe_load`` (never ``yaml.load``: a config file must not run code), rejects
unknown keys with the file and key named, applies overrides (values parsed as YAML scalars:
``3`` is an int, ``true`` a bool, ``[q_proj,v_proj]`` a list) and checks every value's type.

Every field carries ``metadata["help"]``; ``describe()`` lists them for ``--help`` output and
the pages, and a test checks that no field lacks help.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file and field."""


def opt(default, help: str, **kwargs):
    """A dataclass field with help text (lists/dicts get a factory so instances don't share them)."""
    if isinstance(default, (list, dict)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _coerce(value, hint, where: str):
    """Check ``value`` against a type hint, converting the harmless cases (int -> float)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(hint, value, where)
    if origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            inner = args[0] if args else typing.Any
            return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: must be one of {', '.join(map(str, args))}, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 2e-5 as a string (YAML 1.1 wants 2.0e-5)
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected text, got {value!r}")
    return value


def _build(cls, data: dict, where: str):
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], object]:
    """``"lora.r=8"`` -> (["lora", "r"], 8).

    >>> parse_override("lora.target_modules=[q_proj, v_proj]")
    (['lora', 'target_modules'], ['q_proj', 'v_proj'])
    >>> parse_override("learning_rate=2e-5")
    (['learning_rate'], '2e-5')
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part.isidentifier() for part in key.split(".")):
        raise ConfigError(f"override {text!r}: bad key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def load_config(cls, path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), data: dict | None = None):
    """Build ``cls`` from a YAML file (or ``data``), then apply ``key=value`` overrides."""
    merged: dict = {}
    where = ""
    if path is not None:
        where = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML ({exc})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of fields at the top level")
        merged = loaded
    if data:
        merged = _deep_merge(merged, data)
    for text in overrides:
        keys, value = parse_override(text)
        target = merged
        for k in keys[:-1]:
            target = target.setdefault(k, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {text!r}: {k} is not a section")
        target[keys[-1]] = value
    _check_nested_keys(cls, merged, where or cls.__name__)
    return _build(cls, merged, where)


def _check_nested_keys(cls, data: dict, where: str) -> None:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown field {key!r} (known: {', '.join(sorted(names))})")
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            _check_nested_keys(hints[key], value, f"{where}: {key}")


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def describe(cls, prefix: str = "") -> list[tuple[str, str, object]]:
    """(dotted name, help, default) for every field, nested ones included."""
    rows = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            rows.extend(describe(hints[f.name], name + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        rows.append((name, f.metadata.get("help", ""), default))
    return rows


# ---------------------------------------------------------------------------------------------
# Phase configs. Each phase owns one dataclass here, so pages can show and edit them without
# importing the heavy phase modules.
# ---------------------------------------------------------------------------------------------


@dataclass
class SynthConfig:
    preset: str = opt("demo", "Size preset: demo (a few hundred examples) or plan (25,790 / 3,223 / 3,225).")
    seed: int = opt(0, "Random seed; the same seed writes byte-identical files.")
    out: str | None = opt(None, "Folder for the three JSONL files; default <home>/synth-<preset>-<seed>.")
    dataset: str | None = opt(None, "Dataset name to register them under; default <preset>-seed<seed>.")


@dataclass
class ImportConfig:
    path: str = opt("", "ChatML JSONL (.jsonl) or CSV (.csv) file to import.")
    dataset: str | None = opt(None, "Dataset to add the examples to; default derived from the file name.")
    split: str | None = opt(None, "Split for every line (train/validation/test); default from meta or the file name.")
