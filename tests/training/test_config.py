"""Training configs: a typo fails at once, naming the field, before any model, data or directory exists."""

from __future__ import annotations

import pytest
from train_helpers import TinyConfig, TinyTrainer

from zoo_core.errors import ConfigError, UnknownNameError
from zoo_core.hookspecs import hookimpl
from zoo_core.training.api import make_trainer, train
from zoo_core.training.config import TrainConfig, apply_overrides, load_config


class WatchedTrainer(TinyTrainer):
    """Records whether any work started."""

    built: list[str] = []

    def build_model(self):  # type: ignore[no-untyped-def]
        WatchedTrainer.built.append("model")
        return super().build_model()

    def build_dataset(self):  # type: ignore[no-untyped-def]
        WatchedTrainer.built.append("dataset")
        return super().build_dataset()


class _Plugin:
    @hookimpl
    def zoo_register_trainers(self, register):  # type: ignore[no-untyped-def]
        register("watched", WatchedTrainer)


@pytest.fixture
def watched(registry):
    WatchedTrainer.built = []
    registry.register_plugin(_Plugin(), name="test-watched")
    yield WatchedTrainer
    registry.unregister_plugin("test-watched")


def test_yaml_typo_fails_before_any_work_naming_the_field(tmp_path, watched):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"out_dir: {tmp_path / 'run'}\nmax_steps: 3\nlearning_rate: 0.001\nprogress: false\n")
    with pytest.raises(ConfigError) as err:
        train("watched", cfg)
    message = str(err.value)
    assert "'learning_rate' (did you mean 'lr'?)" in message and "cfg.yaml" in message
    assert watched.built == [] and not (tmp_path / "run").exists()


def test_typo_suggests_the_closest_field():
    with pytest.raises(ConfigError, match=r"'ema_decya' \(did you mean 'ema_decay'\?\)"):
        load_config(TrainConfig, {"ema_decya": 0.99})


def test_bad_value_names_field_and_value(tmp_path, watched):
    with pytest.raises(ConfigError, match=r"mixed_precision.*'fp8'"):
        train("watched", {"out_dir": str(tmp_path), "mixed_precision": "fp8"})
    with pytest.raises(ConfigError, match="grad_accum"):
        load_config(TrainConfig, {"batch_size": 10, "grad_accum": 4})
    assert watched.built == []


def test_set_overrides_parse_yaml_scalars_and_dotted_keys(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("lr: 0.1\nwidth: 4\n")
    config = load_config(TinyConfig, cfg, overrides=["lr=2e-4", "ema_decay=null", "adam_betas=[0.5, 0.9]"])
    assert config.lr == 2e-4 and config.ema_decay is None and config.adam_betas == (0.5, 0.9)
    assert config.width == 4
    assert apply_overrides({"model": {"a": 1}}, ["model.b=2", "model.c.d=x"]) == {
        "model": {"a": 1, "b": 2, "c": {"d": "x"}}
    }
    with pytest.raises(ConfigError, match="key=value"):
        load_config(TinyConfig, None, overrides=["lr"])


def test_keyword_fields_and_unknown_trainer(tmp_path, watched):
    trainer = make_trainer("watched", {"lr": 0.5}, out_dir=str(tmp_path), width=3)
    assert trainer.config.lr == 0.5 and trainer.config.width == 3 and trainer.name == "tiny"
    with pytest.raises(UnknownNameError, match="Did you mean 'watched'"):
        make_trainer("wathced")


def test_batch_must_split_over_processes_and_micro_batches(tmp_path):
    # 8 samples, 1 process, grad_accum 8 -> micro-batches of 1: fine; 6 with accum 4 is rejected by the config
    with pytest.raises(ConfigError, match="not divisible by grad_accum"):
        TinyConfig.parse({"batch_size": 6, "grad_accum": 4})
