"""StyleGAN2 ``format="official"``: ``G_ema.safetensors`` under the official StyleGAN2-ADA names (with the
Generator's constructor arguments in the metadata), read back through the stylegan2-ada-safetensors converter bit
for bit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from stylegan_helpers import FIXTURES, PICKLE, official_io
from zoo_stylegan.config import StyleGANConfig
from zoo_stylegan.convert import OFFICIAL_NAME, generator_config, official_kwargs, read_official, read_pickle
from zoo_stylegan.model import StyleGANModel

import zoo
from zoo_core.cli import main as zoo_main
from zoo_core.export import ExportError
from zoo_core.weights import load_safetensors

ZOO = [sys.executable, "-m", "zoo_core.cli"]


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for key, value in a.items():
        assert value.dtype == b[key].dtype and torch.equal(value, b[key]), key


def test_cli_export_official_of_the_embedded_stylegan_reads_back_bit_for_bit(tmp_path: Path) -> None:
    out = tmp_path / "official"
    result = subprocess.run(
        [*ZOO, "export", "stylegan", str(out), "--format", "official"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in out.iterdir()] == [OFFICIAL_NAME]
    model = zoo.load("stylegan")
    written = load_safetensors(out / OFFICIAL_NAME)
    assert_same_tensors(model.state_dict(), written)
    with safe_open(str(out / OFFICIAL_NAME), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["network"] == "G_ema" and meta["class_name"] == "training.networks.Generator"
    kwargs = json.loads(meta["G_kwargs"])
    assert (kwargs["z_dim"], kwargs["c_dim"], kwargs["img_resolution"]) == (64, 10, 16)
    back = read_official(out / OFFICIAL_NAME)  # the architecture from the metadata alone
    assert back.config == model.config.model_copy(update={"discriminator": None})
    assert_same_tensors(model.state_dict(), back.state_dict())
    assert (
        zoo_main(["convert", "stylegan2-ada-safetensors", str(out / OFFICIAL_NAME), str(tmp_path / "zoo")])
        == 0
    )
    again = zoo.load(str(tmp_path / "zoo"))
    assert_same_tensors(model.state_dict(), again.state_dict())
    assert torch.equal(model.sample(3, seed=2, labels=[1, 2, 3]), again.sample(3, seed=2, labels=[1, 2, 3]))


def test_official_export_of_an_official_snapshot_is_its_G_ema_state_dict(tmp_path: Path) -> None:
    """The official fixture pickle's G_ema, exported, is the official ``G.state_dict()`` (G_ema is its copy) tensor
    for tensor, and the official constructor arguments come back out."""
    model = read_pickle(PICKLE, allow_pickle=True)
    path = model.save_pretrained(tmp_path / "off", format="official")
    assert_same_tensors(load_safetensors(FIXTURES / "model.safetensors"), load_safetensors(path))
    back = read_official(path)
    data = official_io()
    with torch.no_grad():
        img = back(data["z"], data["c"], truncation_psi=0.7, noise_mode="const")
    torch.testing.assert_close(img, data["img"], atol=1e-5, rtol=0)
    with safe_open(str(path), framework="pt") as handle:
        kwargs = json.loads(handle.metadata()["G_kwargs"])
    g = json.loads((FIXTURES / "parity_config.json").read_text())["G"]
    assert_official_kwargs(kwargs, {**g["kwargs"], **g["common_kwargs"]})


def assert_official_kwargs(ours: dict, official: dict) -> None:
    """Every argument the official construction passed has our value (ours add the defaults they leave out)."""
    for key, value in official.items():
        if isinstance(value, dict):
            assert {k: ours[key][k] for k in value} == value, key
        else:
            assert ours[key] == value, key


@pytest.mark.parametrize("fixture", ["stylegan2ada_cifar_G_keys.json", "stylegan2ada_ffhq1024_G_keys.json"])
def test_official_keys_at_published_configs_are_the_official_G_keys(fixture: str) -> None:
    spec = json.loads((FIXTURES / fixture).read_text())
    config = StyleGANConfig.parse(
        generator_config({**spec["kwargs"], **spec["common_kwargs"]}), where=fixture
    )
    with torch.device("meta"):
        model = StyleGANModel(config)
    state = model.state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(k, list(s)) for k, s, _ in spec["state_dict"]]
    assert_official_kwargs(official_kwargs(config), {**spec["kwargs"], **spec["common_kwargs"]})


def test_diffusers_export_is_a_clear_error_naming_the_formats(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no diffusers equivalent.*exported as: zoo, official"):
        zoo.load("stylegan").save_pretrained(tmp_path / "d", format="diffusers")
    result = subprocess.run(
        [*ZOO, "export", "stylegan", str(tmp_path / "cli"), "--format", "diffusers"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "exported as: zoo, official" in result.stderr and not (tmp_path / "cli").exists()
