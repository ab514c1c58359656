"""UNet2DConditionModel: parity with diffusers on the same random weights, and the attention-controller hook."""

from __future__ import annotations

import pytest
import torch
from latent_helpers import TINY_UNET as TINY
from latent_helpers import perturb
from zoo_latent.unet import UNet2DConditionConfig, UNet2DConditionModel

from zoo_core.errors import ConfigError
from zoo_core.nn.transformer import set_attention_controller

# SD v2 style: linear projections, per-block head counts, two transformer layers, three levels
TINY_V2 = {
    "attention_head_dim": [2, 4, 4],
    "block_out_channels": [16, 32, 32],
    "cross_attention_dim": 24,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "transformer_layers_per_block": 2,
    "use_linear_projection": True,
    "upcast_attention": True,
    "sample_size": 16,
}


def make_pair(config: dict):
    from diffusers import UNet2DConditionModel as Ref

    torch.manual_seed(0)
    ref = Ref(**{k: v for k, v in config.items() if not k.startswith("_")}).eval()
    perturb(ref)
    ours = UNet2DConditionModel(UNet2DConditionConfig.from_diffusers(config)).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


@pytest.fixture(scope="module")
def tiny_pair():
    return make_pair(TINY)


def inputs(config: dict, batch: int, h: int, w: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    cross = config["cross_attention_dim"]
    x = torch.randn(batch, 4, h, w, generator=g)
    context = torch.randn(batch, 7, cross, generator=g)
    return x, context


def test_tiny_sd_matches_diffusers(tiny_pair):
    ref, ours = tiny_pair
    x, context = inputs(TINY, 2, 16, 16)
    t = torch.tensor([10, 700])
    with torch.no_grad():
        want = ref(x, t, context).sample
        got = ours(x, t, context)
        assert got.shape == want.shape == (2, 4, 16, 16)
        assert (got - want).abs().max() <= 1e-4
        # scalar timesteps, a fractional one, and an encoder attention mask
        mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
        want = ref(x, 321.5, context, encoder_attention_mask=mask).sample
        got = ours(x, 321.5, context, encoder_attention_mask=mask)
        assert (got - want).abs().max() <= 1e-4


def test_odd_sizes_match_diffusers(tiny_pair):
    ref, ours = tiny_pair
    x, context = inputs(TINY, 1, 9, 13)
    with torch.no_grad():
        want = ref(x, 500, context).sample
        got = ours(x, 500, context)
    assert got.shape == (1, 4, 9, 13)
    assert (got - want).abs().max() <= 1e-4


def test_sd2_style_config_matches_diffusers():
    ref, ours = make_pair(TINY_V2)
    x, context = inputs(TINY_V2, 2, 8, 8)
    with torch.no_grad():
        want = ref(x, torch.tensor([3, 999]), context).sample
        got = ours(x, torch.tensor([3, 999]), context)
    assert (got - want).abs().max() <= 1e-4


def test_unsupported_options_are_named():
    with pytest.raises(ConfigError, match="class_embed_type"):
        UNet2DConditionConfig.from_diffusers({**TINY, "class_embed_type": "timestep"})
    with pytest.raises(ConfigError, match="AttnDownBlock2D"):
        UNet2DConditionModel(
            {
                **UNet2DConditionConfig.from_diffusers(TINY).model_dump(),
                "down_block_types": ["AttnDownBlock2D", "CrossAttnDownBlock2D"],
            }
        )


class Recorder:
    """Records every call; optionally edits cross-attention maps or skips self-attention."""

    def __init__(self, edit_cross: bool = False, self_probs: bool = True) -> None:
        self.calls: list[tuple[str, bool, tuple[int, ...] | None]] = []
        self.edit_cross = edit_cross
        self.self_probs = self_probs

    def wants_probs(self, is_cross: bool, layer_name: str) -> bool:
        return is_cross or self.self_probs

    def __call__(self, probs, is_cross, layer_name):
        self.calls.append((layer_name, is_cross, None if probs is None else tuple(probs.shape)))
        if probs is not None:
            assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)
        if self.edit_cross and is_cross:
            edited = torch.zeros_like(probs)
            edited[..., 0] = 1.0  # every query looks only at the first token
            return edited
        return None


def test_attention_controller_sees_every_layer_and_keeps_output(tiny_pair):
    _, ours = tiny_pair
    x, context = inputs(TINY, 2, 8, 8)
    with torch.no_grad():
        plain = ours(x, 50, context)
        recorder = Recorder()
        names = set_attention_controller(ours, recorder)
        try:
            observed = ours(x, 50, context)
        finally:
            set_attention_controller(ours, None)
    # tiny SD: 2 transformers down (level 1, 4x4), 1 mid (4x4), 3 up (level 1, 4x4) -> 6 x (attn1, attn2)
    assert len(names) == 12 and [c[0] for c in recorder.calls] == names
    assert names[0] == "down_blocks.1.attentions.0.transformer_blocks.0.attn1"
    assert names[5] == "mid_block.attentions.0.transformer_blocks.0.attn2"
    for name, is_cross, shape in recorder.calls:
        assert is_cross == name.endswith("attn2")
        assert shape == (2, 8, 16, 7 if is_cross else 16)
    assert (observed - plain).abs().max() <= 1e-5
    with torch.no_grad():
        assert torch.equal(ours(x, 50, context), plain)  # removed again: fused path


def test_attention_controller_edits_and_fast_path(tiny_pair):
    ref, ours = tiny_pair
    x, context = inputs(TINY, 1, 8, 8)
    with torch.no_grad():
        plain = ours(x, 50, context)
        # only-cross controller: self-attention stays on the fused kernel and is reported with None
        recorder = Recorder(self_probs=False)
        set_attention_controller(ours, recorder)
        fast = ours(x, 50, context)
        assert all((shape is None) != is_cross for _, is_cross, shape in recorder.calls)
        assert (fast - plain).abs().max() <= 1e-5
        # an edit that makes every query attend to token 0 equals a context whose tokens all equal token 0
        set_attention_controller(ours, Recorder(edit_cross=True))
        edited = ours(x, 50, context)
        set_attention_controller(ours, None)
        same_tokens = ours(x, 50, context[:, :1].expand_as(context))
    assert (edited - plain).abs().max() > 1e-3
    assert (edited - same_tokens).abs().max() <= 1e-5
