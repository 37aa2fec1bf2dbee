"""Reading a config file safely: a bounded size, UTF-8, ``yaml.safe_load`` with aliases allowed but
their expansion bounded and deep nesting refused, and error messages that quote input briefly.
Used by ``engine.core.config`` (presets and overrides); any failure is one ``ConfigError`` that
names the file (or override) and what is wrong."""

from __future__ import annotations

import reprlib
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file and field."""


MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: presets are a few KiB; a bigger file is a mistake or an attack
# Nodes plus characters of the document with every alias expanded. A preset weighs a few
# thousand; anchors reused a few times stay far below. A "billion laughs" file (447 bytes of
# nested aliases) weighs billions and would grow to gigabytes when copied or quoted.
MAX_YAML_WEIGHT = 4 * MAX_CONFIG_BYTES
_SHOWN = reprlib.Repr()  # Python 3.11's Repr takes no arguments
_SHOWN.maxlevel, _SHOWN.maxdict, _SHOWN.maxlist, _SHOWN.maxtuple, _SHOWN.maxset = 3, 6, 6, 6, 6
_SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 120, 120, 60


def shorten(text, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, for error messages that quote input.

    >>> shorten("x" * 500, 10)
    'xxxxxxxxx…'
    """
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(value) -> str:
    """A bounded repr: a quoted value never makes a message (or the work of building it) huge."""
    return shorten(_SHOWN.repr(value))


def load_yaml(text: str, where: str):
    """``yaml.safe_load`` with the expanded size bounded and deep nesting refused (ConfigError);
    a syntax error stays a ``yaml.YAMLError``.

    Aliases are allowed (``<<: *defaults`` is ordinary YAML) as long as the document they expand
    to stays under MAX_YAML_WEIGHT; the check walks the parsed node graph once, counting each
    shared node's weight once, so it costs what the file costs.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_weight(node, where)
        return loader.construct_document(node)
    except RecursionError:  # PyYAML's composer and constructor recurse per nesting level
        raise ConfigError(f"{where}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def _check_weight(root, where: str) -> None:
    weight: dict[int, int] = {}  # id(node) -> expanded weight, for nodes done
    open_nodes: set[int] = set()  # nodes on the current path (a node met again there is a loop)
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else (
            node.value if isinstance(node, yaml.SequenceNode) else [])
        if done:
            total = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0)
            total += sum(weight[id(c)] for c in children)
            if total > MAX_YAML_WEIGHT:
                raise ConfigError(f"{where}: the YAML expands to more than {MAX_YAML_WEIGHT:,} nodes and characters "
                                  f"(aliases repeating aliases?); write the values out")
            weight[id(node)] = total
            open_nodes.discard(id(node))
            continue
        if id(node) in weight:
            continue
        if id(node) in open_nodes:
            raise ConfigError(f"{where}: a YAML alias refers to its own anchor (a recursive structure)")
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in weight)


def read_config_text(path: str | Path) -> str:
    """The text of a config file: at most MAX_CONFIG_BYTES, UTF-8, else one ConfigError naming it."""
    try:
        with open(path, "rb") as fh:  # read at most the cap plus one byte: a huge file is never loaded
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: config file over {MAX_CONFIG_BYTES:,} bytes (1 MiB); presets are a few KiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config is not UTF-8 text (byte {exc.start})") from None
