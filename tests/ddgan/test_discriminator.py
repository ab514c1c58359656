"""The time-conditional DDGAN discriminator: official names and shapes, minibatch std, conditioning."""

from __future__ import annotations

import pytest
import torch
from ddgan_helpers import key_list
from zoo_ddgan.discriminator import Discriminator, minibatch_stddev


def test_cifar10_official_key_list_matches_ours():
    spec = key_list("ddgan_cifar10_netD_keys.json")
    kwargs = spec["discriminator_kwargs"]
    with torch.device("meta"):
        net = Discriminator("small", nc=kwargs["nc"], ngf=kwargs["ngf"], t_emb_dim=kwargs["t_emb_dim"])
    assert [[k, list(v.shape)] for k, v in net.state_dict().items()] == spec["params"]
    assert sum(p.numel() for p in net.parameters()) == spec["num_params"] == 12_741_633


def test_large_variant_has_six_blocks_and_scores_256px():
    torch.manual_seed(0)
    net = Discriminator("large", nc=6, ngf=4, t_emb_dim=16)
    assert [name for name, _ in net.named_children() if name.startswith("conv")] == [
        f"conv{i}" for i in range(1, 7)
    ]
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        out = net(x, torch.tensor([0, 3]), x)
    assert out.shape == (2, 1) and torch.isfinite(out).all()


def test_minibatch_stddev_matches_a_direct_computation():
    x = torch.randn(8, 5, 3, 3, generator=torch.Generator().manual_seed(0))
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 6, 3, 3)
    torch.testing.assert_close(out[:, :5], x)
    for i in range(8):  # sample i is grouped with i + 2k (the official strided grouping, B / G = 2)
        group = x[i % 2 :: 2]
        expected = torch.sqrt(group.var(dim=0, unbiased=False) + 1e-8).mean()
        torch.testing.assert_close(out[i, 5], torch.full((3, 3), expected.item()))
    with pytest.raises(ValueError, match="divisible by 4"):
        minibatch_stddev(torch.randn(6, 2, 2, 2))


def test_output_depends_on_the_pair_and_on_t():
    torch.manual_seed(0)
    net = Discriminator("small", nc=6, ngf=8, t_emb_dim=16)
    for p in net.parameters():  # leave the zero-ish init so every path contributes
        p.data.add_(0.05 * torch.randn_like(p))
    x_prev, x_t = torch.randn(2, 4, 3, 32, 32).unbind(0)
    t = torch.tensor([1, 1, 1, 1])
    with torch.no_grad():
        base = net(x_prev, t, x_t)
        assert (net(x_prev, t + 1, x_t) - base).abs().max() > 1e-4
        assert (net(x_prev, t, torch.randn_like(x_t)) - base).abs().max() > 1e-4
        assert (net(torch.randn_like(x_prev), t, x_t) - base).abs().max() > 1e-4


def test_unknown_size_is_an_error():
    with pytest.raises(ValueError, match="small' or 'large"):
        Discriminator("medium")
