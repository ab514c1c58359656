"""The NCSN++ generator against the official code: seeded outputs, the CIFAR-10 key list, and the Denoiser API."""

from __future__ import annotations

import pytest
import torch
from ddgan_helpers import fixture_model, io, key_list, small_config
from zoo_ddgan.config import DDGANConfig
from zoo_ddgan.model import DDGANModel
from zoo_ddgan.ncsnpp import NCSNpp


@pytest.fixture(scope="module")
def model() -> DDGANModel:
    return fixture_model()


def test_generator_reproduces_official_x0(model):
    data = io()
    with torch.no_grad():
        x0 = model.predict(data["x_t"], data["t"], z=data["z"])
    assert x0.shape == data["x0"].shape
    assert (x0 - data["x0"]).abs().max().item() < 1e-5
    assert x0.abs().max() <= 1  # tanh output


def test_state_dict_names_are_official_under_generator_prefix(model):
    from ddgan_helpers import FIXTURES
    from safetensors.torch import load_file

    official = load_file(FIXTURES / "model.safetensors")
    ours = model.state_dict()
    assert list(ours) == [f"generator.{k}" for k in model.generator.state_dict()]
    assert set(model.generator.state_dict()) == set(official)
    assert sum(p.numel() for p in model.parameters()) == 1_407_523  # the fixture README's count


def test_cifar10_official_key_list_matches_ours_in_order_and_shape():
    spec = key_list("ddgan_cifar10_netG_keys.json")
    config = DDGANConfig.parse({k: v for k, v in spec["config"].items() if k in DDGANConfig.model_fields})
    assert config == DDGANConfig()  # our defaults are the README's CIFAR-10 model
    with torch.device("meta"):
        net = NCSNpp(config)
    ours = [[k, list(v.shape)] for k, v in net.state_dict().items()]
    assert ours == spec["params"]
    assert sum(p.numel() for p in net.parameters()) == spec["num_params"] == 48_432_515


def test_predict_draws_z_from_the_generator(model):
    data = io()
    x, t = data["x_t"], data["t"]
    with torch.no_grad():
        a = model.predict(x, t, generator=torch.Generator().manual_seed(3))
        b = model.predict(x, t, generator=torch.Generator().manual_seed(3))
        c = model.predict(x, t, generator=torch.Generator().manual_seed(4))
        z = torch.randn(4, 16, generator=torch.Generator().manual_seed(3))
        d = model.predict(x, t, z=z)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3  # z matters: the generator is stochastic
    assert torch.allclose(a, d, atol=1e-6)


def test_predict_rejects_wrong_image_shape(model):
    with pytest.raises(ValueError, match=r"\[B, 3, 16, 16\]"):
        model.predict(torch.zeros(1, 3, 8, 8), torch.zeros(1, dtype=torch.long))


@pytest.mark.parametrize(
    "variant",
    [
        {"embedding_type": "fourier"},
        {"resblock_type": "ddpm"},
        {"resblock_type": "biggan_oneadagn", "progressive": "output_skip"},
        {"progressive": "residual", "progressive_input": "input_skip", "progressive_combine": "cat"},
        {
            "fir": False,
            "progressive_input": "none",
            "centered": False,
            "not_use_tanh": True,
            "conditional": False,
        },
    ],
)
def test_architecture_variants_build_and_keep_shapes(variant):
    cfg = {**small_config(), "num_channels_dae": 8, "nz": 4, "z_emb_dim": 8, **variant}
    net = NCSNpp(DDGANConfig.parse(cfg)).eval()
    x = torch.randn(2, 3, 16, 16)
    t = torch.tensor([0.5, 2.0]) if variant.get("embedding_type") == "fourier" else torch.tensor([0, 3])
    with torch.no_grad():
        out = net(x, t, torch.randn(2, 4))
    assert out.shape == x.shape and torch.isfinite(out).all()
    if not variant.get("not_use_tanh"):
        assert out.abs().max() <= 1


def test_config_errors_name_the_field():
    from zoo_core.errors import ConfigError

    with pytest.raises(ConfigError, match="image_size"):
        DDGANConfig.parse({"image_size": 20, "ch_mult": [1, 2, 2, 2]})
    with pytest.raises(ConfigError, match="resblock_type"):
        DDGANConfig.parse({"resblock_type": "resnet"})
