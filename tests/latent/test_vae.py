"""AutoencoderKL: parity with diffusers on the same random weights (encode, decode, sliced, tiled)."""

from __future__ import annotations

import pytest
import torch
from latent_helpers import TINY_VAE as TINY
from latent_helpers import perturb
from zoo_latent.vae import AutoencoderKL, AutoencoderKLConfig

from zoo_core.nn import rename_legacy_attention_keys


@pytest.fixture(scope="module")
def pair():
    from diffusers import AutoencoderKL as Ref

    torch.manual_seed(0)
    ref = Ref(**{k: v for k, v in TINY.items() if not k.startswith("_")}).eval()
    perturb(ref)
    ours = AutoencoderKL(AutoencoderKLConfig.from_diffusers(TINY)).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def images(n: int, size: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_config_defaults_and_state_dict_keys(pair):
    ref, ours = pair
    assert ours.config.scaling_factor == 0.18215  # the tiny config names none
    assert AutoencoderKLConfig.from_diffusers({**TINY, "scaling_factor": 0.13025}).scaling_factor == 0.13025
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in ref.state_dict().items()
    }


def test_encode_decode_match_diffusers(pair):
    ref, ours = pair
    x = images(2, 32)
    with torch.no_grad():
        want = ref.encode(x).latent_dist
        got = ours.encode(x)
        assert (got.mean - want.mean).abs().max() <= 1e-4
        assert (got.logvar - want.logvar).abs().max() <= 1e-4
        z = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(2))
        assert (ours.decode(z) - ref.decode(z).sample).abs().max() <= 1e-4
        assert (ours(x) - ref(x).sample).abs().max() <= 1e-4


def test_posterior_sample_matches_diffusers_with_same_generator(pair):
    ref, ours = pair
    x = images(2, 32)
    with torch.no_grad():
        want = ref.encode(x).latent_dist.sample(generator=torch.Generator().manual_seed(5))
        got = ours.encode(x).sample(torch.Generator().manual_seed(5))
    assert (got - want).abs().max() <= 1e-4
    assert not torch.allclose(got, ours.encode(x).mode())


def test_sliced_equals_batched(pair):
    _, ours = pair
    z = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(ours.decode(z, sliced=True), ours.decode(z), atol=1e-5)
        x = images(3, 16)
        assert torch.allclose(ours.encode(x, sliced=True).mean, ours.encode(x).mean, atol=1e-5)


def test_tiled_decode_and_encode_match_diffusers(pair):
    ref, ours = pair
    ref.enable_tiling()
    ours.enable_tiling()
    try:
        z = torch.randn(1, 4, 40, 24, generator=torch.Generator().manual_seed(4))  # tile = 16 latent pixels
        x = images(1, 56)
        with torch.no_grad():
            want = ref.decode(z).sample
            got = ours.decode(z)
            assert got.shape == (1, 3, 80, 48)
            assert (got - want).abs().max() <= 1e-4
            assert (ours.decode(z, tiled=False) - want).abs().max() > 1e-3  # tiling really ran
            enc_want = ref.encode(x).latent_dist
            enc_got = ours.encode(x)
            assert (enc_got.mean - enc_want.mean).abs().max() <= 1e-4
    finally:
        ref.disable_tiling()
        ours.use_tiling = False


def test_legacy_attention_names_load(pair):
    ref, ours = pair
    legacy = {}
    for k, v in ref.state_dict().items():
        for new, old in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn")):
            k = k.replace(f"attentions.0.{new}.", f"attentions.0.{old}.")
        legacy[k] = v
    assert "encoder.mid_block.attentions.0.query.weight" in legacy
    fresh = AutoencoderKL(TINY_CONFIG := AutoencoderKLConfig.from_diffusers(TINY))
    fresh.load_state_dict(rename_legacy_attention_keys(legacy), strict=True)
    assert fresh.config == TINY_CONFIG


def test_bad_block_type_is_named():
    with pytest.raises(ValueError, match="AttnDownBlock2D"):
        AutoencoderKL(
            {
                **AutoencoderKLConfig.from_diffusers(TINY).model_dump(),
                "down_block_types": ["AttnDownBlock2D", "DownEncoderBlock2D"],
            }
        )
