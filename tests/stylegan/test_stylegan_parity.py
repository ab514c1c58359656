"""Parity with the official StyleGAN2-ADA code on its seeded fixture (NVlabs/stylegan2-ada-pytorch @ d72cc7d):
the same weights give the same ws, images and discriminator logits, and the converter reproduces them from the
official network pickle."""

from __future__ import annotations

import pytest
import torch
from stylegan_helpers import (
    PICKLE,
    key_list,
    official_io,
    official_kwargs,
    our_key_list,
    parity_discriminator,
    parity_generator,
)
from zoo_stylegan.config import StyleGANConfig
from zoo_stylegan.convert import (
    DISCRIMINATOR_WEIGHTS,
    convert_stylegan2_ada_pkl,
    discriminator_config,
    generator_config,
)
from zoo_stylegan.discriminator import Discriminator
from zoo_stylegan.model import StyleGANModel
from zoo_stylegan.pickle_loader import PickleNotAllowedError

from zoo_core.cli import main as zoo_main
from zoo_core.errors import ConfigError

ATOL = 1e-5


@pytest.fixture(scope="module")
def io():
    return official_io()


@pytest.fixture(scope="module")
def G():
    return parity_generator()


def test_mapping_reproduces_official_ws_with_and_without_truncation(G, io):
    with torch.no_grad():
        ws = G.mapping(io["z"], io["c"], truncation_psi=0.7)
        ws1 = G.mapping(io["z"], io["c"])
    assert ws.shape == (4, G.num_ws, 32) == (4, 6, 32)
    torch.testing.assert_close(ws, io["ws"], atol=ATOL, rtol=0)
    torch.testing.assert_close(ws1, io["ws_psi1"], atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("key", "psi", "noise_mode"),
    [("img", 0.7, "const"), ("img_psi1_const", 1.0, "const"), ("img_psi1_none", 1.0, "none")],
)
def test_generator_reproduces_official_images(G, io, key, psi, noise_mode):
    with torch.no_grad():
        img = G(io["z"], io["c"], truncation_psi=psi, noise_mode=noise_mode)
    assert img.dtype == torch.float32 and img.shape == (4, 3, 16, 16)
    torch.testing.assert_close(img, io[key], atol=ATOL, rtol=0)


def test_noise_modes_differ_so_the_noise_path_is_exercised(io):
    # The fixture's const and none images differ: a generator that ignored noise would fail one of them.
    assert (io["img_psi1_const"] - io["img_psi1_none"]).abs().max() > 1e-2


def test_unfused_modulation_used_in_training_equals_the_fused_path(G, io):
    with torch.no_grad():
        ws = G.mapping(io["z"], io["c"])
        unfused = G.synthesis(ws, noise_mode="const", fused_modconv=False)
    torch.testing.assert_close(unfused, io["img_psi1_const"], atol=ATOL, rtol=0)


def test_discriminator_reproduces_official_logits(io):
    D = parity_discriminator()
    with torch.no_grad():
        logits = D(io["img"], io["c"])
    assert logits.shape == (4, 1)
    torch.testing.assert_close(logits, io["d_logits"], atol=ATOL, rtol=0)


def test_converter_on_the_official_pickle_reproduces_images_and_logits(tmp_path, io):
    out = convert_stylegan2_ada_pkl(PICKLE, tmp_path / "out", allow_pickle=True)
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", DISCRIMINATOR_WEIGHTS}
    model = StyleGANModel.from_pretrained(out)
    assert model.config.c_dim == 4 and model.config.mapping.num_layers == 2
    assert model.config.discriminator.architecture == "resnet"
    D = StyleGANModel.load_discriminator(out)
    with torch.no_grad():
        img = model(io["z"], io["c"], truncation_psi=0.7, noise_mode="const")
        logits = D(img, io["c"])
    torch.testing.assert_close(img, io["img"], atol=ATOL, rtol=0)
    torch.testing.assert_close(logits, io["d_logits"], atol=ATOL, rtol=0)


def test_converter_refuses_the_pickle_without_opt_in(tmp_path):
    with pytest.raises(PickleNotAllowedError, match="allow_pickle") as err:
        convert_stylegan2_ada_pkl(PICKLE, tmp_path / "out")
    assert "arbitrary code" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_zoo_convert_cli_needs_the_flag_and_then_writes_a_loadable_model(tmp_path, io, capsys):
    assert zoo_main(["convert", "stylegan2-ada-pkl", str(PICKLE), str(tmp_path / "no")]) == 2
    assert "allow_pickle" in capsys.readouterr().err
    out = tmp_path / "yes"
    args = ["convert", "stylegan2-ada-pkl", str(PICKLE), str(out), "--set", "allow_pickle=true"]
    assert zoo_main([*args, "--set", "include_discriminator=false"]) == 0
    assert not (out / DISCRIMINATOR_WEIGHTS).exists()
    import zoo

    model = zoo.load(str(out))
    with torch.no_grad():
        img = model(io["z"], io["c"], truncation_psi=0.7, noise_mode="const")
    torch.testing.assert_close(img, io["img"], atol=ATOL, rtol=0)


# -- full-size configurations: our names and shapes equal the official state dicts key for key ------------------
def _meta_generator(kwargs):
    config = StyleGANConfig.parse(generator_config(kwargs))
    with torch.device("meta"):
        return StyleGANModel(config), config


@pytest.mark.parametrize("fixture", ["stylegan2ada_cifar_G_keys.json", "stylegan2ada_ffhq1024_G_keys.json"])
def test_full_size_generator_state_dict_equals_official_keys_and_shapes(fixture):
    model, _ = _meta_generator(official_kwargs(fixture))
    assert our_key_list(model) == key_list(fixture)


def test_full_size_cifar_discriminator_state_dict_equals_official_keys_and_shapes():
    d_kwargs = official_kwargs("stylegan2ada_cifar_D_keys.json")
    _, g_config = _meta_generator(official_kwargs("stylegan2ada_cifar_G_keys.json"))
    d_config = discriminator_config(d_kwargs, g_config)
    assert d_config.architecture == "orig" and d_config.epilogue.mbstd_group_size == 32
    with torch.device("meta"):
        D = Discriminator(10, 32, 3, d_config)
    assert our_key_list(D) == key_list("stylegan2ada_cifar_D_keys.json")


def test_cifar_card_config_builds_the_official_cifar_networks():
    import zoo

    card = zoo.info("stylegan2-ada-cifar10")
    with torch.device("meta"):
        model = StyleGANModel(card.config)
        D = model.build_discriminator()
    assert our_key_list(model) == key_list("stylegan2ada_cifar_G_keys.json")
    assert our_key_list(D) == key_list("stylegan2ada_cifar_D_keys.json")


def test_unknown_official_options_are_named_in_the_error():
    kwargs = official_kwargs("stylegan2ada_cifar_G_keys.json")
    kwargs["synthesis_kwargs"] = {**kwargs["synthesis_kwargs"], "magnitude_ema_beta": 0.999}
    with pytest.raises(ConfigError, match="magnitude_ema_beta"):
        StyleGANConfig.parse(generator_config(kwargs))
