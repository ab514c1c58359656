"""`zoo train NAME --FIELD VALUE`: every field of a trainer's config is a flag, from its pydantic schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo_core.cli import main
from zoo_core.errors import ConfigError
from zoo_core.training.api import trainer_from_cli

TINY_YAML = Path(__file__).resolve().parents[1] / "fixtures" / "training" / "ddpm_tiny.yaml"


def test_flags_override_the_config_file_and_set_overrides_flags(tmp_path):
    trainer, resume = trainer_from_cli(
        "ddpm",
        [
            "--config",
            str(TINY_YAML),
            "--lr",
            "3e-4",
            "--max-steps",
            "7",
            "--out",
            str(tmp_path / "run"),
            "--set",
            "lr=5e-4",
            "--lr-schedule",
            "cosine",
            "--no-ema-warmup",
            "--grad-clip",
            "null",
        ],
    )
    config = trainer.config
    assert config.lr == 5e-4  # --set wins over the flag
    assert config.max_steps == 7 and config.out_dir == str(tmp_path / "run")
    assert config.lr_schedule == "cosine" and config.ema_warmup is False and config.grad_clip is None
    assert config.batch_size == 8  # not given: the config file's value, not the schema default
    assert resume is False


def test_steps_is_an_alias_of_max_steps_and_text_fields_are_taken_as_typed():
    trainer, _ = trainer_from_cli(
        "ddpm", ["--config", str(TINY_YAML), "--steps", "3", "--dataset", "yes", "--resume"]
    )
    assert trainer.config.max_steps == 3
    assert trainer.config.dataset == "yes"  # YAML would have read a boolean
    assert trainer_from_cli("ddpm", ["--config", str(TINY_YAML), "--resume"])[1] is True


def test_nested_config_flags_take_yaml_mappings():
    trainer, _ = trainer_from_cli(
        "ddpm", ["--config", str(TINY_YAML), "--set", "model.unet.layers_per_block=2"]
    )
    assert trainer.config.model.unet.layers_per_block == 2


def test_unknown_flag_is_one_line_naming_the_closest(capsys):
    with pytest.raises(ConfigError, match=r"--max-stps 3 \(did you mean --max-steps\?\)"):
        trainer_from_cli("ddpm", ["--max-stps", "3"])
    assert main(["train", "ddpm", "--max-stps", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean --max-steps?" in err[0]


def test_bad_value_is_a_config_error_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ddpm", "--config", str(TINY_YAML), "--max-steps", "0", "--out", str(out)]) == 2
    assert "max_steps" in capsys.readouterr().err
    assert not out.exists()


def test_help_lists_trainers_and_each_trainers_fields(capsys):
    assert main(["train", "--help"]) == 0
    listing = capsys.readouterr().out
    for name in ("ddpm", "ddgan", "stylegan", "t2i"):
        assert f"  {name} " in listing
    assert main(["train", "ddpm", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal width
    # name, type, default and description, all from the pydantic schema
    assert "--grad-accum N micro-batches accumulated per optimizer step (int; default 1)" in help_text
    assert "--init-from TEXT" in help_text and "(str or null; default null)" in help_text
    assert "--ema-warmup, --no-ema-warmup" in help_text and "--max-steps N, --steps N" in help_text
    assert "--lr-schedule {constant,cosine}" in help_text


def test_unknown_trainer_suggests_close_names(capsys):
    assert main(["train", "ddpn"]) == 2
    assert "ddpm" in capsys.readouterr().err
