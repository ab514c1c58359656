"""DDGAN ``format="official"``: NVlabs' ``netG`` layout (``module.``-prefixed keys, what their DDP training saves),
read back through the ddgan-official converter bit for bit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddgan_helpers import PTH, SMALL_OVERRIDES, io, key_list
from zoo_ddgan.convert import ARGS_NAME, OFFICIAL_NAME, official_model, official_state, preset_config
from zoo_ddgan.model import DDGANModel
from zoo_ddgan.ncsnpp import NCSNpp

import zoo
from zoo_core.cli import main as zoo_main
from zoo_core.export import ExportError

ZOO = [sys.executable, "-m", "zoo_core.cli"]


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    for key, value in a.items():
        assert value.dtype == b[key].dtype and torch.equal(value, b[key]), key


def test_cli_export_official_of_the_embedded_ddgan_reads_back_bit_for_bit(tmp_path: Path) -> None:
    out = tmp_path / "official"
    result = subprocess.run(
        [*ZOO, "export", "ddgan", str(out), "--format", "official"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [ARGS_NAME, OFFICIAL_NAME]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left over
    model = zoo.load("ddgan")
    raw = torch.load(out / OFFICIAL_NAME, weights_only=True)
    assert list(raw) == ["module." + k.removeprefix("generator.") for k in model.state_dict()]
    # through the converter (the architecture from args.json), and through `zoo convert` into the zoo format
    back = official_model(out / OFFICIAL_NAME)
    assert_same_tensors(model.state_dict(), back.state_dict())
    assert zoo_main(["convert", "ddgan-official", str(out / OFFICIAL_NAME), str(tmp_path / "zoo")]) == 0
    again = zoo.load(str(tmp_path / "zoo"))
    assert_same_tensors(model.state_dict(), again.state_dict())
    x = torch.randn(2, *model.sample_shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.sample(2, seed=5, x_T=x), again.sample(2, seed=5, x_T=x))


def test_official_export_is_what_nvlabs_saves_and_loads(tmp_path: Path) -> None:
    """The official fixture's generator, exported, equals the official checkpoint key for key and tensor for tensor,
    and loads the way test_ddgan.py loads a checkpoint (strip ``key[7:]``, strict ``load_state_dict``)."""
    model = official_model(PTH, preset="cifar10", **SMALL_OVERRIDES)
    path = model.save_pretrained(tmp_path / "off", format="official")
    assert path == tmp_path / "off" / OFFICIAL_NAME
    ours = torch.load(path, weights_only=True)
    theirs = torch.load(PTH, weights_only=True)
    assert_same_tensors(dict(theirs), ours)
    ckpt = torch.load(path, weights_only=True)
    for key in list(ckpt.keys()):
        ckpt[key[7:]] = ckpt.pop(key)
    net = NCSNpp(model.config)
    net.load_state_dict(ckpt, strict=True)
    data = io()
    with torch.no_grad():
        x0 = net.eval()(data["x_t"], data["t"], data["z"])
    assert (x0 - data["x0"]).abs().max().item() < 1e-5


def test_official_keys_at_the_cifar10_config_are_the_official_netG_keys() -> None:
    with torch.device("meta"):
        model = DDGANModel(preset_config("cifar10"))
    state = official_state(model)
    spec = key_list("ddgan_cifar10_netG_keys.json")
    assert list(state) == ["module." + k for k, _ in spec["params"]]
    assert [list(v.shape) for v in state.values()] == [list(shape) for _, shape in spec["params"]]


def test_diffusers_and_variants_are_clear_errors(tmp_path: Path) -> None:
    model = zoo.load("ddgan")
    with pytest.raises(ExportError, match="no diffusers equivalent.*exported as: zoo, official"):
        model.save_pretrained(tmp_path / "d", format="diffusers")
    with pytest.raises(ExportError, match="variant='fp16'.*official checkpoint"):
        model.save_pretrained(tmp_path / "v", format="official", variant="fp16")
    result = subprocess.run(
        [*ZOO, "export", "ddgan", str(tmp_path / "cli"), "--format", "diffusers"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "exported as: zoo, official" in result.stderr and not (tmp_path / "cli").exists()
