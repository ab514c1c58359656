"""Our UNet2D against diffusers' UNet2DModel on the same random weights, loaded unchanged."""

from __future__ import annotations

import pytest
import torch
from ddpm_helpers import CHURCH_SMALL, CIFAR_SMALL, diffusers_unet
from zoo_ddpm.model import CIFAR10_UNET
from zoo_ddpm.unet import UNet2D, UNet2DConfig

TIMESTEPS = [
    torch.tensor([0, 999]),
    torch.tensor([10, 500]),
    torch.tensor([3.25, 741.5]),  # fractional timesteps (Karras-sigma samplers)
]


def _ours_from(reference) -> UNet2D:
    ours = UNet2D(UNet2DConfig.from_diffusers(dict(reference.config))).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)  # unchanged names and shapes
    return ours


@pytest.mark.parametrize("config", [CIFAR_SMALL, CHURCH_SMALL], ids=["cifar10-32", "church-256-layout"])
def test_unet_matches_diffusers_unet2dmodel(config):
    reference = diffusers_unet(config, seed=1)
    ours = _ours_from(reference)
    size = config["sample_size"]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for t in TIMESTEPS:
            expected = reference(x, t).sample
            got = ours(x, t)
            assert got.shape == expected.shape
            assert expected.abs().mean() > 0.05  # a live network, not a near-zero output
            assert (got - expected).abs().max().item() <= 1e-4, f"t={t.tolist()}"


@pytest.mark.parametrize(
    "changes",
    [
        {"resnet_time_scale_shift": "scale_shift", "attention_head_dim": 8},
        {"flip_sin_to_cos": True, "freq_shift": 0, "downsample_padding": 1, "mid_block_scale_factor": 2.0},
        {"add_attention": False, "center_input_sample": True, "num_class_embeds": 4},
    ],
    ids=["scale-shift-multihead", "sd-style-embedding", "no-mid-attention-class-cond"],
)
def test_unet_config_variants_match_diffusers(changes):
    config = {**CIFAR_SMALL, "block_out_channels": [16, 32], "sample_size": 8, **changes}
    config["down_block_types"] = ["DownBlock2D", "AttnDownBlock2D"]
    config["up_block_types"] = ["AttnUpBlock2D", "UpBlock2D"]
    reference = diffusers_unet(config, seed=3)
    ours = _ours_from(reference)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    t = torch.tensor([7.0, 420.0])
    labels = torch.tensor([1, 3]) if "num_class_embeds" in changes else None
    with torch.no_grad():
        expected = reference(x, t, class_labels=labels).sample
        got = ours(x, t, class_labels=labels)
    assert (got - expected).abs().max().item() <= 1e-4


def test_scalar_timestep_broadcasts_over_the_batch():
    ours = UNet2D(UNet2DConfig.parse(CIFAR_SMALL)).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(ours(x, 17), ours(x, torch.tensor([17, 17, 17])))


def test_full_size_cifar10_keys_and_shapes_equal_diffusers():
    from diffusers import UNet2DModel

    with torch.device("meta"):
        reference = UNet2DModel(**CIFAR10_UNET)
        ours = UNet2D(UNet2DConfig.parse(CIFAR10_UNET))
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert list(got) == list(expected)  # same keys, same order
    assert got == expected
    n_params = sum(p.numel() for p in ours.parameters())
    assert n_params == sum(p.numel() for p in reference.parameters())
    assert 35.7e6 < n_params < 35.8e6
