"""Project-wide rules, checked by reading the source: every command documented, no unsafe loaders."""

import argparse
import re

from engine.cli import build_parser
from engine.paths import REPO

# Every Python file of the checkout: engine, pages, app, ui, bench, tests, scripts (not the
# virtualenv, user state, build output or caches).
_SKIP = {".venv", ".git", "data", "models", "test-artifacts", "build", "dist", "__pycache__", ".hypothesis",
         ".pytest_cache", "node_modules"}
SOURCES = sorted(p for p in REPO.rglob("*.py")
                 if not _SKIP & set(p.relative_to(REPO).parts) and not p.relative_to(REPO).parts[0].endswith(".egg-info"))


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


def _call_args(text: str, open_paren: int) -> str:
    """The argument text of a call whose "(" is at ``open_paren`` (nested parentheses included)."""
    depth = 0
    for i in range(open_paren, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_paren + 1:i]
    return text[open_paren + 1:]


def violations(text: str) -> list[str]:
    """Unsafe loaders and rendering in one source file's text."""
    bad = []
    if re.search(r"trust_remote_code\s*=\s*True|[\"']trust_remote_code[\"']\s*:\s*True", text):
        bad.append("trust_remote_code set to True")
    for m in re.finditer(r"\btorch\.load\s*\(", text):
        if not re.search(r"weights_only\s*=\s*True", _call_args(text, m.end() - 1)):
            bad.append("torch.load without weights_only=True")
    if re.search(r"weights_only\s*=\s*False", text):
        bad.append("weights_only set to False")
    if re.search(r"^\s*from\s+torch\s+import\s+[^\n]*\bload\b", text, re.M):
        bad.append("torch's load imported bare (the weights_only check cannot see its calls)")
    if re.search(r"\byaml\.(load|unsafe_load|full_load|load_all|unsafe_load_all|full_load_all)\s*\(", text) or \
            re.search(r"^\s*from\s+yaml\s+import\s+[^\n]*\b(load|unsafe_load|full_load|load_all|Loader|UnsafeLoader|"
                      r"FullLoader)\b", text, re.M) or re.search(r"\byaml\.(Unsafe|Full)?Loader\b", text):
        bad.append("yaml loader other than safe_load")
    if re.search(r"unsafe_allow_html\s*=\s*True", text):
        bad.append("unsafe_allow_html set to True")
    if re.search(r"\b(pickle|cPickle|dill|cloudpickle|joblib)\.loads?\s*\(", text):
        bad.append("pickle-style load")
    return bad


def test_no_unsafe_loaders_anywhere():
    assert REPO / "tests" / "test_hygiene.py" in SOURCES and REPO / "bench" / "generation.py" in SOURCES
    bad = [f"{path.relative_to(REPO)}: {v}" for path in SOURCES for v in violations(path.read_text())]
    assert bad == []


def test_the_loader_check_catches_what_it_must():
    # (each name written apart so that this file does not trip its own check)
    t, y, rc, html, pk, jl = "torch", "yaml", "trust_remote" + "_code", "unsafe_allow" + "_html", "pick" + "le", "job" + "lib"
    wo = "weights" + "_only"
    must_flag = [f"m = AutoModel.from_pretrained(p, {rc}=True)", f"kw = {{'{rc}': True}}",
                 f"sd = {t}.load(path)", f"sd = {t}.load(path, map_location=torch.device('cpu'))",
                 f"sd = {t}.load(\n    path,\n    {wo}=False)", f"from {t} import load",
                 f"cfg = {y}.load(fh)", f"cfg = {y}.load(fh, Loader={y}.FullLoader)", f"from {y} import load",
                 f"docs = list({y}.load_all(fh))", f"cfg = {y}.unsafe_load(fh)", f"st.markdown(x, {html}=True)",
                 f"obj = {pk}.loads(blob)", f"obj = {jl}.load(path)"]
    for snippet in must_flag:
        assert violations(snippet), snippet
    fine = [f"sd = {t}.load(path, map_location=torch.device('cpu'), weights_only=True)",
            f"sd = {t}.load(\n    path,\n    weights_only=True,\n)", f"cfg = {y}.safe_load(fh)",
            f"from {y} import safe_load, SafeLoader", f"m = AutoModel.from_pretrained(p, {rc}=False)"]
    for snippet in fine:
        assert violations(snippet) == [], snippet


def test_every_page_imports_ui():
    """ui.py switches Streamlit out of its legacy pages/ mode on the first run of a server."""
    missing = [p.name for p in sorted((REPO / "pages").glob("*.py")) if not re.search(r"^import ui$", p.read_text(), re.M)]
    assert missing == []
