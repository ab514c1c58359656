"""The ddgan-official converter: official netG_*.pth (keys prefixed ``module.``) -> our format, checked first."""

from __future__ import annotations

import pytest
import torch
from ddgan_helpers import PTH, SMALL_OVERRIDES, io, key_list
from zoo_ddgan.convert import (
    PRESETS,
    convert_official,
    mismatch,
    preset_config,
    read_official,
    resolve_config,
)
from zoo_ddgan.model import DDGANModel

import zoo
from zoo_core.cli import main as cli_main
from zoo_core.errors import ConfigError, WeightsError


def assert_reproduces_x0(model: DDGANModel) -> None:
    data = io()
    with torch.no_grad():
        x0 = model.predict(data["x_t"], data["t"], z=data["z"])
    assert (x0 - data["x0"]).abs().max().item() < 1e-5


def test_read_official_strips_the_ddp_prefix():
    raw = torch.load(PTH, weights_only=True)
    assert all(k.startswith("module.") for k in raw)
    state = read_official(PTH)
    assert list(state) == [k.removeprefix("module.") for k in raw]


def test_convert_then_load_reproduces_official_x0(tmp_path):
    out = convert_official(PTH, tmp_path / "out", preset="cifar10", **SMALL_OVERRIDES)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    model = zoo.load(str(out))
    assert isinstance(model, DDGANModel) and model.config.num_channels_dae == 32
    assert_reproduces_x0(model)


def test_cli_convert(tmp_path, capsys):
    args = ["convert", "ddgan-official", str(PTH), str(tmp_path / "cli"), "--set", "preset=cifar10"]
    for key, value in SMALL_OVERRIDES.items():
        args += ["--set", f"{key}={value}".replace(" ", "")]
    assert cli_main(args) == 0
    assert "wrote" in capsys.readouterr().out
    assert_reproduces_x0(zoo.load(str(tmp_path / "cli")))


def test_every_cifar10_official_key_maps_with_matching_shape():
    spec = key_list("ddgan_cifar10_netG_keys.json")
    state = {k: torch.empty(shape, device="meta") for k, shape in spec["params"]}
    count, problems = mismatch(state, resolve_config(state, "cifar10 keys", "cifar10", {}))
    assert count == 0 and problems == []
    # without a preset, the shapes single out the CIFAR-10 one
    assert resolve_config(state, "cifar10 keys", None, {}).num_channels_dae == 128
    with torch.device("meta"):
        ours = DDGANModel(preset_config("cifar10")).state_dict()
    assert {f"generator.{k}" for k in state} == set(ours)
    assert all(tuple(ours[f"generator.{k}"].shape) == tuple(shape) for k, shape in spec["params"])


def test_presets_that_fit_equally_ask_for_a_choice(tmp_path):
    # with the small overrides the three presets differ only in T, which the file cannot tell
    overrides = {k: v for k, v in SMALL_OVERRIDES.items() if k != "num_timesteps"}
    with pytest.raises(ConfigError, match="several DDGAN presets.*celebahq-256 \\(T=2\\)"):
        convert_official(PTH, tmp_path / "out", **overrides)
    assert not (tmp_path / "out").exists()


def test_wrong_preset_lists_missing_and_unexpected_keys_and_writes_nothing(tmp_path):
    with pytest.raises(WeightsError) as info:
        convert_official(PTH, tmp_path / "out", preset="celebahq-256")
    message = str(info.value)
    assert "missing keys: all_modules." in message and "unexpected keys: all_modules." in message
    assert "shape mismatches" in message
    assert not (tmp_path / "out").exists()


def test_another_models_file_is_rejected_and_nothing_written(tmp_path):
    other = tmp_path / "ckpt.pth"
    torch.save({"module.head.weight": torch.zeros(8, 3, 3, 3), "module.tail.2.bias": torch.zeros(3)}, other)
    with pytest.raises(WeightsError, match="not an official DDGAN generator checkpoint") as info:
        convert_official(other, tmp_path / "out")
    assert "unexpected keys: head.weight, tail.2.bias" in str(info.value)
    assert "missing keys: all_modules.0.weight" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_non_state_dict_files_are_rejected(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(WeightsError, match="not a state dict"):
        convert_official(path, tmp_path / "out")
    with pytest.raises(ConfigError, match="Unknown DDGAN preset 'cifar100'"):
        convert_official(PTH, tmp_path / "out", preset="cifar100")
    assert not (tmp_path / "out").exists()


def test_cards_carry_the_official_configs():
    expected = {
        "ddgan-cifar10": (32, 128, [1, 2, 2, 2], 4, 4, 48_432_515),
        "ddgan-celebahq-256": (256, 64, [1, 1, 2, 2, 4, 4], 3, 2, None),
        "ddgan-church-256": (256, 64, [1, 1, 2, 2, 4, 4], 3, 4, None),
    }
    assert set(expected) == set(PRESETS.values())
    for name, (size, nf, mult, n_mlp, T, params) in expected.items():
        card = zoo.info(name)
        assert (card.architecture, card.default_sampler, card.default_steps) == ("ddgan.ncsnpp", "ddgan", T)
        assert card.weights.format == "ddgan-official" and "zoo convert ddgan-official" in card.weights.notes
        with torch.device("meta"):
            model = DDGANModel(card.config)
        cfg = model.config
        assert (cfg.image_size, cfg.num_channels_dae, cfg.ch_mult, cfg.n_mlp, cfg.num_timesteps) == (
            size, nf, mult, n_mlp, T
        )  # fmt: skip
        assert (cfg.nz, cfg.z_emb_dim, cfg.beta_min, cfg.beta_max) == (100, 256, 0.1, 20.0)
        if params is not None:
            assert sum(p.numel() for p in model.parameters()) == params
    fid = next(m for m in zoo.info("ddgan-cifar10").metrics if m.name == "fid")
    assert fid.value == 3.75 and "paper" in fid.notes


def test_card_without_weights_says_where_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="netG_1200.pth.*zoo convert ddgan-official"):
        zoo.load("ddgan-cifar10")


def test_load_card_with_an_official_pth_converts_in_memory(monkeypatch, tmp_path):
    registry = tmp_path / "cards.yaml"
    config = ", ".join(f"{k}: {v}" for k, v in SMALL_OVERRIDES.items())
    registry.write_text(
        "models:\n- name: ddgan-tiny\n  family: ddgan\n  plugin: ddgan\n  architecture: ddgan.ncsnpp\n"
        f"  config: {{{config}}}\n"
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    model = zoo.load("ddgan-tiny", weights=str(PTH))
    assert isinstance(model, DDGANModel) and model.card.name == "ddgan-tiny"
    assert_reproduces_x0(model)
