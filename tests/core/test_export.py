"""zoo_core.export: atomic export folders, diffusers file naming and scheduler configs."""

from __future__ import annotations

import json

import pytest

from zoo_core.export import ExportError, scheduler_config, variant_name, write_folder
from zoo_core.schedule import NoiseSchedule


def test_write_folder_refuses_a_non_empty_target_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="exists and is not empty.*--overwrite"):
        write_folder(out, lambda d: (d / "a.json").write_text("{}"))
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    write_folder(out, lambda d: (d / "a.json").write_text("{}"), overwrite=True)
    assert [p.name for p in out.iterdir()] == ["a.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary or old folder left behind


def test_write_folder_leaves_nothing_when_writing_fails(tmp_path):
    def fail(directory):
        (directory / "half.safetensors").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_folder(tmp_path / "out", fail)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "model.safetensors").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        write_folder(tmp_path / "old", fail, overwrite=True)
    assert (tmp_path / "old" / "model.safetensors").read_bytes() == b"old"  # the previous export intact
    assert [p.name for p in tmp_path.iterdir()] == ["old"]


def test_variant_names_follow_diffusers():
    assert (
        variant_name("diffusion_pytorch_model.safetensors", "fp16")
        == "diffusion_pytorch_model.fp16.safetensors"
    )
    assert variant_name("model.safetensors", None) == "model.safetensors"


def test_scheduler_config_keeps_only_the_schedulers_parameters_and_round_trips():
    schedule = NoiseSchedule(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, set_alpha_to_one=False
    )
    config = scheduler_config(schedule, "v_prediction", "euler-a")
    assert (
        config["_class_name"] == "EulerAncestralDiscreteScheduler"
        and config["prediction_type"] == "v_prediction"
    )
    assert "set_alpha_to_one" not in config and "clip_sample" not in config
    assert NoiseSchedule.from_diffusers(json.loads(json.dumps(config))) == schedule
    cosine = NoiseSchedule(beta_schedule="cosine", num_train_timesteps=10)
    written = scheduler_config(cosine, "epsilon", "ddpm")
    assert written["_class_name"] == "DDPMScheduler" and len(written["trained_betas"]) == 10
    assert NoiseSchedule.from_diffusers(written).betas.tolist() == cosine.betas.tolist()
