"""Project-wide rules, checked by reading the source: every command documented, no unsafe loaders."""

import argparse
import re

from engine.cli import build_parser
from engine.core.paths import REPO

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


# Every `ccr` command has a page (developers' guide: "Every capability is reachable by a user: a
# page in the app AND a `ccr` command, calling the same engine function"). The command side is
# structural: engine/cli reaches the engine only through engine.api (checked by import below), and
# each command's handler calls functions of the same engine.api area module as its page. The page
# side is this table: each leaf command maps to (file, reference): the page, or app.py, and the
# `api.` (or `jobs.`) name it calls. A page may call it through a `ui.` helper: the Jobs page's
# cancel, pause, resume and log buttons are ui.job_panel's. A new command without an entry here
# fails the test below.
PAGE_FOR_COMMAND = {
    "ccr data synth": ("pages/data.py", "api.start_synth"),
    "ccr data import": ("pages/data.py", "api.start_import"),
    "ccr data export": ("pages/data.py", "api.export_dataset"),
    "ccr data list": ("pages/data.py", "api.datasets"),
    "ccr data rename": ("pages/data.py", "api.rename_dataset"),
    "ccr data delete": ("pages/data.py", "api.delete_dataset"),
    "ccr models list": ("pages/deploy.py", "api.models"),
    "ccr worker": ("app.py", "jobs.Worker"),  # the app's engine thread is the same loop
    "ccr jobs list": ("pages/jobs.py", "api.list_jobs"),
    "ccr jobs cancel": ("pages/jobs.py", "api.cancel_job"),
    "ccr jobs pause": ("pages/jobs.py", "api.pause_job"),
    "ccr jobs resume": ("pages/jobs.py", "api.resume_job"),
    "ccr jobs log": ("pages/jobs.py", "api.job_log"),
    "ccr eval": ("pages/evaluate.py", "api.start_eval"),
    "ccr infer": ("pages/deploy.py", "api.start_infer"),
    "ccr demo": ("pages/evaluate.py", "api.start_demo"),
    "ccr serve": ("pages/deploy.py", "api.start_server"),
    "ccr train": ("pages/train.py", "api.start_training"),
    "ccr export model": ("pages/train.py", "api.start_export_model"),
    "ccr export reasoning": ("pages/review.py", "api.export_reasoning"),
    "ccr generate": ("pages/generate.py", "api.start_generate"),
    "ccr review list": ("pages/review.py", "api.chains"),
    "ccr review show": ("pages/review.py", "api.chain"),
    "ccr review approve": ("pages/review.py", "api.review_chains"),
    "ccr review reject": ("pages/review.py", "api.review_chains"),
    "ccr review edit": ("pages/review.py", "api.edit_chain"),
    "ccr score": ("pages/quality.py", "api.score_chatml"),
}
# Options that are capabilities of their own.
PAGE_FOR_OPTION = {
    ("ccr train", "--dry-run"): ("pages/train.py", "api.train_estimate"),
    ("ccr train", "--resume"): ("pages/train.py", "api.resume_training"),
    ("ccr generate", "--test"): ("pages/generate.py", "api.start_generate_test"),
    ("ccr generate", "--dry-run"): ("pages/generate.py", "api.estimate"),
    ("ccr infer", "--dry-run"): ("pages/deploy.py", "api.estimate"),
    ("ccr generate", "--override"): ("pages/generate.py", "api.record_generate_override"),
    ("ccr review approve", "--all"): ("pages/review.py", "api.bulk_review"),
    ("ccr export reasoning", "--include-flagged"): ("pages/review.py", "api.export_reasoning"),
    ("ccr export model", "--merge"): ("pages/train.py", "api.start_export_model"),
}


def _reachable_source(page: str) -> str:
    """The page's source plus that of every ``ui`` helper it calls."""
    import ast

    text = (REPO / page).read_text()
    ui_text = (REPO / "ui.py").read_text()
    helpers = {node.name: ast.get_source_segment(ui_text, node) for node in ast.parse(ui_text).body
               if isinstance(node, ast.FunctionDef)}
    return "\n".join([text] + [helpers[name] for name in sorted(set(re.findall(r"\bui\.(\w+)\(", text)))
                               if name in helpers])


def _check_reference(page: str, ref: str) -> list[str]:
    from engine import api
    from engine.core import jobs

    problems = []
    app_pages = re.findall(r'st\.Page\("([^"]+)"', (REPO / "app.py").read_text())
    if page != "app.py" and page not in app_pages:
        problems.append(f"{page} is not in app.py's navigation")
    module, name = ref.split(".", 1)
    if not callable(getattr({"api": api, "jobs": jobs}[module], name, None)):
        problems.append(f"engine.{ref} does not exist")
    if not (REPO / page).is_file():
        problems.append(f"{page} does not exist")
    elif not re.search(rf"(?<![\w.]){re.escape(ref)}\b", _reachable_source(page)):
        problems.append(f"{page} never calls {ref}")
    return problems


def test_every_command_has_a_page_calling_the_same_api():
    commands = leaf_commands(build_parser())
    assert sorted(PAGE_FOR_COMMAND) == sorted(commands), (
        f"commands without a page: {sorted(set(commands) - set(PAGE_FOR_COMMAND))}; "
        f"stale entries: {sorted(set(PAGE_FOR_COMMAND) - set(commands))}")
    bad = [f"{cmd}: {p}" for cmd, (page, ref) in PAGE_FOR_COMMAND.items() for p in _check_reference(page, ref)]
    assert bad == []


def test_every_capability_option_has_a_page():
    def subparser(path: str) -> argparse.ArgumentParser:
        parser = build_parser()
        for word in path.split()[1:]:
            action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = action.choices[word]
        return parser

    bad = []
    for (cmd, option), (page, ref) in PAGE_FOR_OPTION.items():
        if option not in subparser(cmd)._option_string_actions:
            bad.append(f"{cmd} has no option {option}")
        bad += [f"{cmd} {option}: {p}" for p in _check_reference(page, ref)]
    assert bad == []


def test_the_page_check_catches_what_it_must():
    assert _check_reference("pages/review.py", "api.chain") == []
    assert _check_reference("pages/quality.py", "api.edit_chain") == ["pages/quality.py never calls api.edit_chain"]
    # api.chain_tasks is not api.chain: a prefix does not count
    assert _check_reference("pages/pipeline.py", "api.chain") == ["pages/pipeline.py never calls api.chain"]
    assert _check_reference("pages/jobs.py", "api.no_such_function") == [
        "engine.api.no_such_function does not exist", "pages/jobs.py never calls api.no_such_function"]
    assert _check_reference("pages/nowhere.py", "api.chain")[0] == "pages/nowhere.py is not in app.py's navigation"


# What engine/cli may import from the engine besides engine.api: error classes it catches to pick
# an exit status (checked to be exceptions) and these printing helpers and constants.
CLI_PRESENTATION = {"format_summary", "format_estimate", "format_balance", "DEFAULT_MODEL"}


def _cli_sources() -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted((REPO / "engine" / "cli").glob("*.py"))}


def _cli_engine_imports() -> list[tuple[str, str, list[str]]]:
    """(cli module, engine module, names) of every ``import``/``from`` of the engine in engine/cli."""
    import ast

    out = []
    for stem, text in _cli_sources().items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "engine":
                out.append((stem, node.module, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                out += [(stem, a.name, []) for a in node.names if a.name.split(".")[0] == "engine"]
    return out


def _cli_import_problems(imports) -> list[str]:
    import importlib

    bad = []
    for stem, module, names in imports:
        if module == "engine" and names == ["api"] or module.startswith("engine.cli"):
            continue
        if not names:
            bad.append(f"engine/cli/{stem}.py imports {module}")
            continue
        for name in names:
            obj = getattr(importlib.import_module(module), name, None)
            if not (name in CLI_PRESENTATION or isinstance(obj, type) and issubclass(obj, BaseException)):
                bad.append(f"engine/cli/{stem}.py imports {module}.{name}")
    return bad


def test_the_command_line_reaches_the_engine_only_through_api():
    imports = _cli_engine_imports()
    assert ("__init__", "engine", ["api"]) in imports
    assert _cli_import_problems(imports) == []


def _command_handlers() -> dict[str, object]:
    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{prefix} {name}")
                return
        yield prefix, parser.get_default("func")

    return dict(walk(build_parser(), "ccr"))


def _api_calls(func) -> set[str]:
    """The ``api.NAME`` a command handler uses, itself or through the engine/cli helpers it calls."""
    import inspect

    seen, names, todo = set(), set(), [func]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        text = inspect.getsource(f)
        names |= set(re.findall(r"(?<![\w.])api\.(\w+)", text))
        for called in set(re.findall(r"(?<![\w.])(\w+)\(", text)):
            g = f.__globals__.get(called)
            if inspect.isfunction(g) and g.__module__.startswith("engine.cli"):
                todo.append(g)
    return names


def test_every_command_calls_the_api_area_its_page_calls():
    from engine import api

    bad = []
    for cmd, handler in _command_handlers().items():
        used = _api_calls(handler)
        missing = [n for n in used if not hasattr(api, n)]
        if missing:
            bad.append(f"{cmd} calls api.{', api.'.join(sorted(missing))}, which do not exist")
        areas = {getattr(api, n).__module__ for n in used if callable(getattr(api, n, None))}
        page, ref = PAGE_FOR_COMMAND.get(cmd, (None, ""))
        if not ref.startswith("api."):
            if not areas:
                bad.append(f"{cmd} calls no api function")
            continue
        page_area = getattr(api, ref.split(".", 1)[1]).__module__
        if page_area not in areas:
            bad.append(f"{cmd} calls {sorted(areas)}, not {page_area} as {page} does")
    assert bad == []


def test_the_import_check_catches_what_it_must():
    assert _cli_import_problems([("data", "engine.core", ["store"])]) == ["engine/cli/data.py imports engine.core.store"]
    assert _cli_import_problems([("runs", "engine.training.train", ["prepare_launch", "RunError"])]) == [
        "engine/cli/runs.py imports engine.training.train.prepare_launch"]
    assert _cli_import_problems([("x", "engine.core.store", [])]) == ["engine/cli/x.py imports engine.core.store"]
    assert _cli_import_problems([("x", "engine.demo", ["format_summary", "DemoError"])]) == []
    # a handler's helpers count: `ccr generate` checks its teacher through output.check_model
    from engine.cli.chains import cmd_generate

    assert {"generate_gate", "record_generate_override", "run_generate", "model_availability"} <= _api_calls(cmd_generate)
