"""Hostile model paths, config files and scored lines (issue 10, points 5 to 7).

- A trained run is only ``run:NAME`` (NAME a valid run name, a folder of HOME/models); every
  other path meets the allowed-folder check first, whatever it holds (a manifest.json included).
- Config YAML: aliases may not expand past a bound ("billion laughs"), files are capped at 1 MiB,
  deep nesting is refused, and error messages quote at most ~200 characters of a value.
- ``ccr score`` reports a line nested too deeply as FILE:LINE and scores the lines after it.
- A failure that is the input's or the machine's fault prints one ``error:`` line (exit 2) and
  no traceback; a bug keeps its traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc

import pytest

from engine import cli

from engine.core import config, model_catalog, safe_yaml, store

from engine.chains import quality
from engine.core.config import ConfigError, TrainConfig, load_config
from engine.core.model_catalog import ModelNotAvailable, PathNotAllowed
from engine.core.paths import CONFIGS, REPO


def billion_laughs(levels: int = 9, flow: bool = False) -> str:
    """The classic, as the value of a real field: each anchor lists the previous one 9 times, so
    the last stands for 9**levels strings. (Before the bound, quoting that value in "expected
    text, got ..." built a repr of gigabytes.)"""
    entries = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    entries += [f"&{name} [" + ",".join([f"*{previous}"] * 9) + "]"
                for previous, name in zip("abcdefghij"[:levels - 1], "bcdefghij"[:levels - 1])]
    return "[" + ", ".join(entries) + "]" if flow else "data:\n" + "".join(f"  - {e}\n" for e in entries)


def _one_error_line(err: str) -> str:
    """The stderr of a failed command: no traceback and exactly one line, the ``error:`` one."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """A finished trained run (manifest, adapter config, adapter weights) outside every allowed folder."""
    monkeypatch.delenv("CCR_ALLOWED_PATHS", raising=False)
    run = tmp_path / "elsewhere" / "run"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"run": "run", "base_model": "smollm2-135m-instruct"}))
    (run / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (run / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    return run


# ---------------------------------------------------------------------------------------------
# Model paths
# ---------------------------------------------------------------------------------------------


def test_a_run_outside_the_allowed_folders_is_refused_whatever_it_holds(home, outside, monkeypatch, capsys):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(model_catalog, "load_model", no_loading)
    for name in (str(outside), f"run:{outside}", "run:../../elsewhere/run", "run:../elsewhere/run"):
        with pytest.raises(PathNotAllowed):
            model_catalog.resolve_model(name, home)
        ok, why = model_catalog.availability(name, home)
        assert ok is False
        # the real command: exit status 2 and one line, before any job exists or anything loads
        assert cli.main(["serve", "--home", str(home.data), "--model", name, "--port", "0"]) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert "outside the allowed folders" in line or "a run is run:NAME" in line, line
    assert store.connect(home).execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0


@pytest.mark.parametrize("name", ["run:../x", "run:../../x", "run:/abs/run", "run:a/b", "run:.hidden", "run:",
                                  "run:a\nb", "run:" + "x" * 101, "run:a\\b", "run:run:x"])
def test_run_names_follow_the_run_name_rule(home, name):
    with pytest.raises(PathNotAllowed, match="a run is run:NAME") as err:
        model_catalog.resolve_model(name, home)
    assert len(str(err.value)) < 600  # a long name is quoted shortened
    with pytest.raises(PathNotAllowed):
        model_catalog.run_dir(home, name[4:])
    with pytest.raises(PathNotAllowed):  # RUN_NAME ends in $, which matches before a final newline
        model_catalog.run_dir(home, "ok\n")


def test_a_run_folder_linked_outside_is_refused(home, outside):
    (home.models / "linked").symlink_to(outside)
    for name in ("run:linked", "linked", str(home.models / "linked")):
        with pytest.raises(PathNotAllowed, match="outside the allowed folders"):
            model_catalog.resolve_model(name, home)


def test_runs_inside_the_home_and_adapters_in_allowed_folders_still_resolve(home, outside, monkeypatch):
    mine = home.models / "mine"
    mine.mkdir()
    (mine / "manifest.json").write_text(json.dumps({"base_model": "smollm2-135m-instruct"}))
    for name in ("run:mine", "mine", str(mine)):
        spec = model_catalog.resolve_model(name, home)
        assert (spec.name, spec.kind, spec.adapter, spec.base) == ("run:mine", "run", str(mine), "smollm2-135m-instruct")
    with pytest.raises(ModelNotAvailable, match="trained run 'nope' not found"):
        model_catalog.resolve_model("run:nope", home)
    # once the user allows its folder, an adapter outside the home is known by its path (not as a run)
    monkeypatch.setenv("CCR_ALLOWED_PATHS", str(outside.parent))
    spec = model_catalog.resolve_model(str(outside), home)
    assert (spec.name, spec.kind, spec.adapter, spec.base) == (str(outside.resolve()), "run", str(outside.resolve()),
                                                               "smollm2-135m-instruct")
    assert model_catalog.availability(str(outside), home)[0] is True
    # still never as run:ABSOLUTE-PATH
    with pytest.raises(PathNotAllowed):
        model_catalog.resolve_model(f"run:{outside}", home)


def test_a_manifest_naming_itself_is_an_error_not_endless_recursion(home):
    for name, base in (("loop", "run:loop"), ("loop2", "loop2")):
        folder = home.models / name
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps({"base_model": base}))
        with pytest.raises(ModelNotAvailable, match="loops"):
            model_catalog.resolve_model(f"run:{name}", home)
    (home.models / "junk").mkdir()
    (home.models / "junk" / "manifest.json").write_text("[1, 2")
    with pytest.raises(ModelNotAvailable, match="unreadable manifest.json"):
        model_catalog.resolve_model("run:junk", home)


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------


def test_billion_laughs_is_refused_without_expanding(home, tmp_path, capsys):
    path = home.data / "laughs.yaml"
    path.write_text(billion_laughs())
    assert path.stat().st_size < 500
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="expands to more than"):
            load_config(TrainConfig, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak  # the old loader grew this file to over a gigabyte
    assert cli.main(["train", "--home", str(home.data), "--config", str(path), "--dry-run"]) == 2
    assert "expands to more than" in _one_error_line(capsys.readouterr().err)
    # the same in an override
    with pytest.raises(ConfigError, match="expands to more than"):
        load_config(TrainConfig, None, ["data=" + billion_laughs(flow=True)])


def test_aliases_within_the_bound_load_and_loops_do_not(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text("base_model: smollm2-135m-instruct\ndefaults: &d {r: 4, alpha: 8}\n")
    with pytest.raises(ConfigError, match="unknown field 'defaults'"):  # anchors parse; the field is checked
        load_config(TrainConfig, path)
    assert safe_yaml.load_yaml("x: &d {r: 4, alpha: 8}\nlora:\n  <<: *d\n  r: 2\n", "t")["lora"] == {"r": 2, "alpha": 8}
    for text in ("a: &a [*a]", "a: &a {b: *a}"):
        with pytest.raises(ConfigError, match="refers to its own anchor"):
            safe_yaml.load_yaml(text, "t")


def test_config_files_are_capped_at_one_mebibyte(tmp_path):
    at_cap = tmp_path / "at-cap.yaml"
    at_cap.write_bytes(b"#" + b" " * (safe_yaml.MAX_CONFIG_BYTES - 2) + b"\n")
    assert at_cap.stat().st_size == safe_yaml.MAX_CONFIG_BYTES
    assert load_config(TrainConfig, at_cap) == TrainConfig()
    over = tmp_path / "over.yaml"
    over.write_bytes(b"#" + b" " * (safe_yaml.MAX_CONFIG_BYTES - 1) + b"\n")
    with pytest.raises(ConfigError, match="over.yaml: config file over 1,048,576 bytes"):
        load_config(TrainConfig, over)
    with pytest.raises(ConfigError, match="value over"):
        load_config(TrainConfig, None, ["data=" + "x" * (safe_yaml.MAX_CONFIG_BYTES + 1)])


def test_deep_yaml_and_non_utf8_files_are_one_clear_error(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("lora: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ConfigError, match="deep.yaml: YAML nested too deeply"):
        load_config(TrainConfig, deep)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(TrainConfig, None, ["lora.target_modules=" + "[" * 50_000])
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"lora: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"binary.yaml: config is not UTF-8 text \(byte 6\)"):
        load_config(TrainConfig, binary)
    broken = tmp_path / "broken.yaml"
    broken.write_text("lora: [\n")
    with pytest.raises(ConfigError) as err:
        load_config(TrainConfig, broken)
    assert "\n" not in str(err.value) and "line 2, column 1" in str(err.value)


@pytest.mark.parametrize("override", [
    "max_steps=" + "x" * 100_000,                      # a long bad scalar
    "max_steps=[" + ", ".join(["y" * 1000] * 1000) + "]",  # a long bad list
    "lora=" + "z" * 100_000,                           # a long bad section
    "x" * 100_000,                                     # no '='
    "a" * 100_000 + "=1",                              # a long bad key
])
def test_error_messages_quote_a_long_value_shortened(override):
    with pytest.raises(ConfigError) as err:
        load_config(TrainConfig, CONFIGS / "train" / "smollm2_cpu.yaml", [override])
    message = str(err.value)
    assert len(message) < 500 + len(str(CONFIGS)), len(message)
    assert "…" in message or "..." in message, message


@pytest.mark.parametrize("text, message", [
    ("epochs: " + "e" * 500_000 + "\n", "expected a number"),
    ("k" * 1000 + ": 1\n", "unknown field"),  # PyYAML allows keys up to 1,024 characters
    ("lora:\n  " + "r" * 1000 + ": 1\n", "unknown field"),
    ("lora: [" + ", ".join(["x" * 5000] * 200) + "]\n", "expected a mapping"),
])
def test_a_long_value_in_a_config_file_is_quoted_shortened(tmp_path, text, message):
    path = tmp_path / "long.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(TrainConfig, path)
    message = str(err.value)
    # the quoted value is cut (reprlib's "..." inside, "…" at the end); an unknown field's message
    # also lists the known fields (about 400 characters)
    assert len(message) < 1000 + len(str(path)) and ("…" in message or "..." in message), message


# ---------------------------------------------------------------------------------------------
# ccr score
# ---------------------------------------------------------------------------------------------


def _chatml(answer: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": "Transcript:\nAgent: hello\nCustomer: hi"},
                                    {"role": "assistant", "content": answer}], "meta": {"task": "csat"}})


def test_score_reports_a_deep_line_and_scores_the_rest(tmp_path, capsys):
    good = _chatml("<thinking>Step 1: the customer says hi.</thinking>\nFinal answer: CSAT: 4")
    deep_in_strings = _chatml("[" * 5000 + "{" * 5000)  # brackets in a string are not nesting
    path = tmp_path / "chains.jsonl"
    lines = [good,
             '{"messages": [], "meta": ' + "[" * 1500 + "]" * 1500 + "}",  # line 2: too deep
             good,
             "[" * 200_000,                                                 # line 4: too deep, not even JSON
             deep_in_strings,
             good]
    path.write_text("\n".join(lines) + "\n")
    results = list(quality.score_file(path))
    assert [r["line"] for r in results] == [1, 2, 3, 4, 5, 6]
    assert [r["line"] for r in results if "error" in r] == [2, 4]
    assert results[1]["error"] == f"JSON nested more than {quality.MAX_JSON_DEPTH} levels deep"

    assert cli.main(["score", str(path), "--json"]) == 1  # some lines unreadable
    out, err = capsys.readouterr()
    assert [json.loads(line)["line"] for line in out.splitlines()] == [1, 3, 5, 6]
    assert err.splitlines() == [f"{path}:2: JSON nested more than 100 levels deep",
                                f"{path}:4: JSON nested more than 100 levels deep"]
    assert "Traceback" not in err
    assert cli.main(["score", str(path)]) == 1
    assert "scored 4 chains (2 unreadable lines)" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# One error line, no traceback
# ---------------------------------------------------------------------------------------------


def test_failures_of_the_input_print_one_error_line_and_exit_2(home, tmp_path, capsys):
    h = ["--home", str(home.data)]
    (home.data / "binary.yaml").write_bytes(b"\xff\xfe")
    (home.data / "laughs.yaml").write_text(billion_laughs())
    (home.data / "a-file").write_text("x")
    broken_model = home.models / "broken-model"
    broken_model.mkdir()
    (broken_model / "config.json").write_text('{"model_type": "llama"}')
    good_input = tmp_path / "in.jsonl"
    good_input.write_text('{"prompt": "hello"}\n')
    cases = [
        (["train", *h, "--dry-run", "--config", str(home.data / "binary.yaml")], "not UTF-8"),
        (["generate", *h, "--config", str(home.data / "binary.yaml")], "not UTF-8"),
        (["train", *h, "--dry-run", "--config", str(home.data / "laughs.yaml")], "expands to more than"),
        (["train", *h, "--dry-run", "--config", str(home.data / "missing.yaml")], "cannot read config"),
        (["train", *h, "--dry-run", "max_steps=" + "9x" * 50_000], "expected an integer"),
        (["serve", *h, "--model", "run:../x", "--port", "0"], "a run is run:NAME"),
        (["eval", *h, "--model", "/etc"], "outside the allowed folders"),
        (["score", *h, str(tmp_path)], "is a directory"),
        (["infer", *h, "--input", str(good_input), "--output", str(home.data / "a-file" / "out.jsonl"),
          "--no-progress"], "File exists"),
        (["infer", *h, "--model", str(broken_model), "--input", str(good_input), "--output",
          str(tmp_path / "out.jsonl"), "--no-progress"], "cannot load model from"),
    ]
    for argv, expected in cases:
        rc = cli.main(argv)
        line = _one_error_line(capsys.readouterr().err)
        assert rc == 2 and expected in line and len(line) < 1200, (argv[:3], rc, line[:300])


def test_a_bug_keeps_its_traceback(home, tmp_path, monkeypatch, capsys):
    from engine.serving import infer

    def broken_job(ctx, config):
        return {}["no such key"]

    monkeypatch.setattr(infer, "run_infer_job", broken_job)
    good_input = tmp_path / "in.jsonl"
    good_input.write_text('{"prompt": "hello"}\n')
    assert cli.main(["infer", "--home", str(home.data), "--input", str(good_input), "--output",
                     str(tmp_path / "out.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "error: KeyError: 'no such key'" in err


def test_the_real_command_prints_no_traceback(home):
    """The same through a real `ccr` process (stdin, stderr and exit status as a user sees them)."""
    (home.data / "binary.yaml").write_bytes(b"lr: \xff\n")
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "train", "--home", str(home.data), "--dry-run",
                           "--config", str(home.data / "binary.yaml")], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 2
    assert "binary.yaml: config is not UTF-8 text (byte 4)" in _one_error_line(proc.stderr)
