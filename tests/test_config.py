"""Config dataclasses and the shipped YAML presets."""

import dataclasses
from pathlib import Path

import pytest

from engine.core import config
from engine.core.config import ConfigError, load_config
from engine.core.paths import CONFIGS


def phase_classes():
    return [obj for obj in vars(config).values()
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == config.__name__]


def test_every_field_has_help():
    missing = [f"{cls.__name__}.{name}" for cls in phase_classes() for name, help_, _ in config.describe(cls)
               if not help_.strip()]
    assert missing == []


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/*.yaml")), ids=lambda p: p.name)
def test_every_shipped_yaml_loads(path):
    loaded = []
    for cls in phase_classes():
        try:
            loaded.append(load_config(cls, path))
        except ConfigError:
            continue
    assert loaded, f"{path.name} loads into none of the phase configs"
    header = Path(path).read_text().splitlines()[0]
    assert header.startswith("#"), f"{path.name} must start with a comment giving its launch command"


@dataclasses.dataclass
class Inner:
    r: int = config.opt(16, "rank")
    modules: list[str] = config.opt(["q_proj"], "targets")


@dataclasses.dataclass
class Outer:
    lr: float = config.opt(1e-4, "learning rate")
    steps: int = config.opt(-1, "max steps")
    device: str | None = config.opt(None, "device")
    fp16: bool = config.opt(False, "half precision")
    inner: Inner = dataclasses.field(default_factory=Inner, metadata={"help": "nested"})


def test_yaml_and_dotted_overrides(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("lr: 2e-5\ninner:\n  r: 8\n")
    cfg = load_config(Outer, path, ["steps=3", "inner.modules=[q_proj, v_proj]", "fp16=true", "device=mps"])
    assert cfg.lr == 2e-5 and cfg.steps == 3 and cfg.fp16 is True and cfg.device == "mps"
    assert cfg.inner == Inner(r=8, modules=["q_proj", "v_proj"])


@pytest.mark.parametrize("text, overrides, message", [
    ("lr: 1\nbogus: 2\n", [], "x.yaml: unknown field 'bogus'"),
    ("inner:\n  rank: 8\n", [], "unknown field 'rank'"),
    ("", ["steps=many"], "x.yaml.steps: expected an integer, got 'many'"),
    ("", ["fp16=maybe"], "expected true or false"),
    ("", ["novalue"], "expected key=value"),
    ("- a\n- b\n", [], "expected a mapping of fields"),
    ("lr: [1\n", [], "invalid YAML"),
])
def test_bad_config_names_file_and_field(tmp_path, text, overrides, message):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(Outer, path, overrides)


def test_yaml_tags_are_not_executed(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("lr: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(Outer, path)


def test_the_demo_training_settings_load_on_the_cpu_preset():
    # `ccr demo` applies these to configs/train/smollm2_cpu.yaml; a renamed field or a bad value would
    # only surface an hour into the demo, after the chains are generated.
    from engine import demo

    cfg = load_config(config.TrainConfig, CONFIGS / "train" / "smollm2_cpu.yaml", list(demo.TRAIN_OVERRIDES))
    # gradient checkpointing is decided at launch from the dry run and the free memory (demo.checkpointing)
    assert (cfg.max_length, cfg.gradient_checkpointing, cfg.epochs) == (1280, False, 3)
    assert (cfg.learning_rate, cfg.batch_size * cfg.gradient_accumulation_steps) == (1e-3, 4)


def test_precision_is_one_vocabulary_and_old_values_still_load():
    # auto everywhere; the old None ("best for the device") and torch's names load as before
    for cls, name in ((config.TrainConfig, "precision"), (config.GenerateConfig, "dtype"), (config.EvalConfig, "dtype"),
                      (config.InferConfig, "dtype"), (config.ServeConfig, "dtype")):
        assert getattr(load_config(cls), name) == "auto"
        assert getattr(load_config(cls, data={name: None}), name) == "auto"
        assert getattr(load_config(cls, None, [f"{name}=bfloat16"]), name) == "bf16"
        assert getattr(load_config(cls, None, [f"{name}=fp32"]), name) == "fp32"
        with pytest.raises(ConfigError, match=f"{name}: must be one of auto, fp32, bf16, fp16, got 'int8'"):
            load_config(cls, None, [f"{name}=int8"])
        assert "AMX-BF16" in dict((n, h) for n, h, _ in config.describe(cls))[name]


def test_judge_settings_nested_in_the_generate_config():
    from engine.core.config import GenerateConfig, JudgeSettings

    default = load_config(GenerateConfig, CONFIGS / "generate" / "generate_smollm2_cpu.yaml")
    assert default.judge == JudgeSettings() and default.judge.enabled is False  # off by default
    cfg = load_config(GenerateConfig, None, ["judge.enabled=true", "judge.base_url=http://10.0.0.5:8000/v1",
                                             "judge.model=Qwen/Qwen2.5-7B-Instruct", "judge.threshold=4"])
    assert (cfg.judge.enabled, cfg.judge.base_url, cfg.judge.threshold) == (True, "http://10.0.0.5:8000/v1", 4)
    names = {name for name, help_, _ in config.describe(GenerateConfig) if name.startswith("judge.") and help_}
    assert names == {f"judge.{f.name}" for f in dataclasses.fields(JudgeSettings)}
    for overrides, message in ((["judge.threshold=0"], "judge.threshold: must be from 1 to 5, got 0"),
                               (["judge.concurrency=0"], "judge.concurrency: must be at least 1"),
                               (["judge.enabled=true", "judge.model="], "enabled needs judge.base_url and judge.model"),
                               (["judge.rating=3"], "unknown field 'rating'"),
                               (["judge.enabled=maybe"], "judge.enabled: expected true or false")):
        with pytest.raises(ConfigError, match=message):
            load_config(GenerateConfig, None, overrides)


def test_old_preset_path_loads_the_moved_file_with_a_warning():
    # presets moved into configs/train/ and configs/generate/; the old paths keep working
    old, new = CONFIGS / "smollm2_cpu.yaml", CONFIGS / "train" / "smollm2_cpu.yaml"
    assert not old.exists() and new.is_file()
    with pytest.warns(FutureWarning, match=str(new)):
        cfg = load_config(config.TrainConfig, old)
    assert cfg == load_config(config.TrainConfig, new)
    with pytest.warns(FutureWarning, match="configs/generate/generate_vllm.yaml"):
        load_config(config.GenerateConfig, str(CONFIGS / "generate_vllm.yaml"))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(config.TrainConfig, CONFIGS / "no_such_preset.yaml")
