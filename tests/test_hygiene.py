"""Project-wide rules, checked by reading the source: every command documented, no unsafe loaders."""

import argparse
import re

from engine.cli import build_parser
from engine.paths import REPO

SOURCES = sorted(p for p in list((REPO / "engine").rglob("*.py")) + list((REPO / "pages").glob("*.py"))
                 + [REPO / "app.py", REPO / "ui.py"] + list((REPO / "bench").glob("*.py")))


def leaf_commands(parser: argparse.ArgumentParser, prefix: str = "ccr") -> list[str]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.extend(leaf_commands(sub, f"{prefix} {name}"))
            return out
    return [prefix]


def test_every_command_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    commands = leaf_commands(build_parser())
    assert "ccr data synth" in commands and "ccr jobs cancel" in commands
    missing = [c for c in commands if c not in readme]
    assert missing == [], f"commands missing from README.md: {missing}"


def test_every_command_has_help():
    def walk(parser, prefix="ccr"):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                for name, sub in action.choices.items():
                    assert helps.get(name), f"{prefix} {name} has no help text"
                    walk(sub, f"{prefix} {name}")
    walk(build_parser())


def test_no_unsafe_loaders_anywhere():
    bad = []
    for path in SOURCES:
        text = path.read_text()
        rel = path.relative_to(REPO)
        if re.search(r"trust_remote_code\s*=\s*True", text):
            bad.append(f"{rel}: trust_remote_code=True")
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1):
                bad.append(f"{rel}: torch.load without weights_only=True")
        if re.search(r"yaml\.(load|unsafe_load|full_load)\(", text):
            bad.append(f"{rel}: yaml loader other than safe_load")
        if re.search(r"unsafe_allow_html\s*=\s*True", text):
            bad.append(f"{rel}: unsafe_allow_html=True")
        if re.search(r"\bpickle\.loads?\(", text):
            bad.append(f"{rel}: pickle.load")
    assert bad == []


def test_every_page_imports_ui():
    """ui.py switches Streamlit out of its legacy pages/ mode on the first run of a server."""
    missing = [p.name for p in sorted((REPO / "pages").glob("*.py")) if not re.search(r"^import ui$", p.read_text(), re.M)]
    assert missing == []
