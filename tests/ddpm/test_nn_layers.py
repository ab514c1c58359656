"""The shared layers in zoo_core.nn against diffusers' modules on the same weights (names load unchanged)."""

from __future__ import annotations

import pytest
import torch
from ddpm_helpers import randomize_

from zoo_core.nn import (
    Attention,
    DownEncoderBlock2D,
    ResnetBlock2D,
    UNetMidBlock2D,
    UpDecoderBlock2D,
    rename_legacy_attention_keys,
    timestep_embedding,
)


def _load_same(ours: torch.nn.Module, reference: torch.nn.Module, seed: int = 0) -> None:
    randomize_(reference, seed)
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    reference.eval()


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize(("dim", "shift"), [(32, 1.0), (33, 0.0), (320, 0.0)])
def test_timestep_embedding_matches_diffusers(flip, dim, shift):
    from diffusers.models.embeddings import get_timestep_embedding

    t = torch.tensor([0.0, 1.0, 3.5, 999.0])
    expected = get_timestep_embedding(t, dim, flip_sin_to_cos=flip, downscale_freq_shift=shift)
    got = timestep_embedding(t, dim, flip_sin_to_cos=flip, downscale_freq_shift=shift)
    assert got.shape == (4, dim) and torch.equal(got, expected)


@pytest.mark.parametrize("norm", ["default", "scale_shift"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_channels": 16, "out_channels": 16},
        {"in_channels": 16, "out_channels": 32, "output_scale_factor": 2.0},
        {"in_channels": 16, "out_channels": 16, "up": True},
        {"in_channels": 16, "out_channels": 32, "down": True, "dropout": 0.3},
    ],
    ids=["same", "wider-scaled", "up", "down"],
)
def test_resnet_block_matches_diffusers(norm, kwargs):
    from diffusers.models.resnet import ResnetBlock2D as Reference

    common = {"temb_channels": 24, "groups": 8, "eps": 1e-6, "time_embedding_norm": norm}
    reference, ours = Reference(**common, **kwargs), ResnetBlock2D(**common, **kwargs)
    _load_same(ours, reference)
    x, temb = torch.randn(2, 16, 8, 8), torch.randn(2, 24)
    with torch.no_grad():
        assert (ours(x, temb) - reference(x, temb)).abs().max().item() <= 1e-5


def test_time_free_resnet_block_matches_diffusers():
    from diffusers.models.resnet import ResnetBlock2D as Reference

    reference = Reference(in_channels=16, out_channels=32, temb_channels=None, groups=8)
    ours = ResnetBlock2D(in_channels=16, out_channels=32, temb_channels=None, groups=8)
    _load_same(ours, reference)
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert (ours(x) - reference(x, None)).abs().max().item() <= 1e-5


def test_spatial_self_attention_matches_diffusers():
    from diffusers.models.attention_processor import Attention as Reference

    kwargs = dict(heads=4, dim_head=8, norm_num_groups=8, residual_connection=True, bias=True, eps=1e-6)
    reference, ours = (
        Reference(32, rescale_output_factor=2.0, **kwargs),
        Attention(32, rescale_output_factor=2.0, **kwargs),
    )
    _load_same(ours, reference)
    x = torch.randn(2, 32, 6, 5)
    with torch.no_grad():
        assert (ours(x) - reference(x)).abs().max().item() <= 1e-5


def test_cross_attention_matches_diffusers_and_the_hook_sees_the_maps():
    from diffusers.models.attention_processor import Attention as Reference

    reference = Reference(32, cross_attention_dim=24, heads=4, dim_head=8)
    ours = Attention(32, cross_attention_dim=24, heads=4, dim_head=8)
    _load_same(ours, reference)
    x, context = torch.randn(2, 10, 32), torch.randn(2, 7, 24)
    with torch.no_grad():
        expected = reference(x, context)
        assert (ours(x, context) - expected).abs().max().item() <= 1e-5

        seen = []
        ours.hook = lambda probs, attn: seen.append(probs) or probs
        assert (ours(x, context) - expected).abs().max().item() <= 1e-5  # an identity hook changes nothing
        assert seen[0].shape == (2, 4, 10, 7)
        assert torch.allclose(seen[0].sum(-1), torch.ones(2, 4, 10))

        ours.hook = lambda probs, attn: torch.zeros_like(
            probs
        )  # attend to nothing: only the output bias is left
        assert torch.allclose(ours(x, context), ours.to_out[0].bias.expand(2, 10, 32))


def test_vae_style_blocks_match_diffusers():
    from diffusers.models.unets.unet_2d_blocks import DownEncoderBlock2D as RefDown
    from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D as RefMid
    from diffusers.models.unets.unet_2d_blocks import UpDecoderBlock2D as RefUp

    x = torch.randn(1, 16, 8, 8)
    pairs = [
        (
            RefDown(in_channels=16, out_channels=32, num_layers=2, resnet_groups=8, downsample_padding=0),
            DownEncoderBlock2D(
                in_channels=16, out_channels=32, num_layers=2, resnet_groups=8, downsample_padding=0
            ),
        ),
        (
            RefUp(in_channels=16, out_channels=32, num_layers=2, resnet_groups=8, temb_channels=None),
            UpDecoderBlock2D(in_channels=16, out_channels=32, num_layers=2, resnet_groups=8),
        ),
        (
            RefMid(in_channels=16, temb_channels=None, resnet_groups=8, attention_head_dim=16),
            UNetMidBlock2D(in_channels=16, temb_channels=None, resnet_groups=8, attention_head_dim=16),
        ),
    ]
    with torch.no_grad():
        for reference, ours in pairs:
            _load_same(ours, reference)
            expected = reference(x) if not isinstance(ours, UNetMidBlock2D) else reference(x, None)
            assert (ours(x) - expected).abs().max().item() <= 1e-5, type(ours).__name__


def test_legacy_attention_names_are_renamed_and_other_keys_kept():
    state = {
        "mid_block.attentions.0.query.weight": torch.zeros(1),
        "mid_block.attentions.0.proj_attn.bias": torch.ones(1),
        "mid_block.attentions.0.group_norm.weight": torch.ones(2),
        "down_blocks.0.resnets.0.conv1.weight": torch.ones(3),
        "encoder.key.weight": torch.ones(4),  # not inside an attention block: left alone
    }
    renamed = rename_legacy_attention_keys(state)
    assert set(renamed) == {
        "mid_block.attentions.0.to_q.weight",
        "mid_block.attentions.0.to_out.0.bias",
        "mid_block.attentions.0.group_norm.weight",
        "down_blocks.0.resnets.0.conv1.weight",
        "encoder.key.weight",
    }
