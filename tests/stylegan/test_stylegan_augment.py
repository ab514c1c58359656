"""DiffAugment ops, the ADA p controller (on synthetic logits and on a discriminator overfitting a tiny dataset),
and the R1 / path-length terms against direct computations."""

from __future__ import annotations

import pytest
import torch
from zoo_stylegan.augment import (
    AdaptiveAugment,
    AugmentPipe,
    color,
    cutout,
    diff_augment,
    torch_rand,
    translation,
)
from zoo_stylegan.config import DiscriminatorConfig
from zoo_stylegan.discriminator import Discriminator
from zoo_stylegan.loss import d_logistic, path_length, path_length_penalty, r1_loss, r1_penalty


def constant_rand(value: float, n: int):
    return lambda *shape: torch.full((n, *shape), value)


# -- the ops -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", [color, translation, cutout])
def test_every_op_is_differentiable_and_changes_the_images(op):
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    y = op(x, torch_rand(4, torch.Generator().manual_seed(0)))
    assert y.shape == x.shape and not torch.equal(y, x)
    (grad,) = torch.autograd.grad((y * torch.randn_like(y)).sum(), x)
    assert grad.abs().sum() > 0


def test_translation_shifts_by_whole_pixels_with_zero_fill():
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    # ratio 1/8 of 8 px: shifts in -1..1; rand 0.99 -> +1 in y and x
    y = translation(x, constant_rand(0.99, 1))
    assert torch.equal(y[0, 0, 1:, 1:], x[0, 0, :-1, :-1])
    assert y[0, 0, 0].abs().sum() == 0 and y[0, 0, :, 0].abs().sum() == 0
    assert torch.equal(translation(x, constant_rand(0.5, 1)), x)  # rand 0.5 -> shift 0


def test_cutout_zeroes_a_square_of_half_the_size():
    x = torch.ones(2, 3, 8, 8)
    y = cutout(x, constant_rand(0.5, 2))  # centred square
    assert (y == 0).all(dim=1).sum(dim=(1, 2)).tolist() == [16, 16]
    assert torch.equal(y[:, :, 2:6, 2:6], torch.zeros(2, 3, 4, 4))


def test_probability_p_applies_each_op_to_that_share_of_images():
    x = torch.randn(2000, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(diff_augment(x, torch_rand(2000, g), "color", p=0.0), x)
    changed = (diff_augment(x, torch_rand(2000, g), "color", p=0.3) != x).flatten(1).any(dim=1).float().mean()
    assert abs(changed.item() - 0.3) < 0.04
    assert (diff_augment(x, torch_rand(2000, g), "color", p=1.0) != x).flatten(1).any(dim=1).all()


def test_the_same_draws_augment_reals_and_fakes_alike():
    pipe = AugmentPipe("color,translation,cutout", p=0.5)
    x = torch.randn(6, 3, 8, 8)
    a = pipe(x, torch_rand(6, torch.Generator().manual_seed(3)))
    b = pipe(x, torch_rand(6, torch.Generator().manual_seed(3)))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        AugmentPipe("color,rotate")


# -- the ADA controller ----------------------------------------------------------------------------------------------
def test_ada_p_moves_by_the_official_step_toward_the_target():
    pipe = AugmentPipe(p=0.0)
    ada = AdaptiveAugment(pipe, target=0.6, interval=4, ada_kimg=500)
    step = 64 * 4 / (500 * 1000)
    for _ in range(8):  # r_t = 1 > 0.6: D is sure about the reals -> p rises once per 4 steps
        ada.accumulate(torch.ones(64))
        ada.step(64)
    assert float(pipe.p) == pytest.approx(2 * step) and ada.last_rt == 1.0
    for _ in range(4):  # r_t = 0.5 < 0.6 -> p falls
        ada.accumulate(torch.tensor([1.0, 1, 1, -1]).repeat(16))
        ada.step(64)
    assert float(pipe.p) == pytest.approx(step) and ada.last_rt == 0.5
    for _ in range(12):  # floored at zero
        ada.accumulate(-torch.ones(64))
        ada.step(64)
    assert float(pipe.p) == 0.0


def _tiny_dataset(n: int) -> torch.Tensor:
    """``n`` fixed smooth 8x8 images in [-1, 1] (blurred noise): a stand-in for a small real dataset."""
    noise = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(42))
    blurred = torch.nn.functional.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False)
    return torch.tanh(2 * blurred)


def _train_d_with_ada(reals: torch.Tensor, fakes_fn, steps: int, p0: float) -> tuple[float, list[float]]:
    torch.manual_seed(0)
    D = Discriminator(0, 8, 1, DiscriminatorConfig(channel_base=128, channel_max=16))
    opt = torch.optim.Adam(D.parameters(), lr=1e-2, betas=(0.0, 0.99))
    pipe = AugmentPipe("color,translation,cutout", p=p0)
    ada = AdaptiveAugment(pipe, target=0.6, interval=2, ada_kimg=0.16)  # 0.05 per adjustment at batch 8
    g = torch.Generator().manual_seed(1)
    history = []
    for step in range(steps):
        real = reals[torch.randint(len(reals), (8,), generator=g)]
        fake = fakes_fn(step, g)
        real_logits = D(pipe(real, torch_rand(8, g)))
        fake_logits = D(pipe(fake, torch_rand(8, g)))
        loss = d_logistic(real_logits, fake_logits)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ada.accumulate(real_logits)
        history.append(ada.step(8))
    return float(pipe.p), history


@pytest.mark.slow
def test_ada_p_rises_when_the_discriminator_overfits_a_tiny_dataset():
    reals = _tiny_dataset(8)  # eight images: D tells them from the fakes almost at once
    p, history = _train_d_with_ada(
        reals, lambda step, g: torch.rand(8, 1, 8, 8, generator=g) * 2 - 1, 60, 0.0
    )
    assert p > 0.5 and history[-1] > history[len(history) // 2] > 0


@pytest.mark.slow
def test_ada_p_falls_when_reals_and_fakes_cannot_be_told_apart():
    pool = _tiny_dataset(64)
    p, history = _train_d_with_ada(
        pool, lambda step, g: pool[torch.randint(len(pool), (8,), generator=g)], 60, 0.5
    )
    assert p < 0.2 and min(history) == p


# -- R1 and path length ----------------------------------------------------------------------------------------------
def test_r1_of_a_quadratic_discriminator_matches_the_analytic_gradient():
    a = torch.randn(1, 3, 4, 4)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = (a * x.square()).sum(dim=[1, 2, 3])  # dD/dx = 2 a x
    expected = (2 * a * x.detach()).square().sum(dim=[1, 2, 3])
    torch.testing.assert_close(r1_penalty(logits, x), expected)
    logits = (a * x.square()).sum(dim=[1, 2, 3])
    torch.testing.assert_close(r1_loss(logits, x, gamma=10.0, interval=16), expected.mean() * 5.0 * 16)


def test_r1_of_a_discriminator_matches_per_sample_autograd():
    torch.manual_seed(0)
    cfg = DiscriminatorConfig(channel_base=128, channel_max=16, epilogue={"mbstd_num_channels": 0})
    D = Discriminator(3, 8, 3, cfg)
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    c = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()
    penalty = r1_penalty(D(x, c), x)
    direct = []
    for i in range(4):  # no minibatch-std: each logit depends on its own image only
        xi = x[i : i + 1].detach().requires_grad_(True)
        (g,) = torch.autograd.grad(D(xi, c[i : i + 1]).sum(), xi)
        direct.append(g.square().sum())
    torch.testing.assert_close(penalty, torch.stack(direct), rtol=1e-4, atol=1e-6)
    penalty.mean().backward()  # create_graph: the penalty trains D
    assert D.b8.conv0.weight.grad.abs().sum() > 0 and D.b4.fc.weight.grad.abs().sum() > 0


def test_path_length_of_a_linear_generator_is_the_norm_of_a_transposed_jacobian_product():
    A = torch.randn(3 * 4 * 4, 8)
    ws = torch.randn(2, 5, 8, requires_grad=True)
    images = (ws.mean(dim=1) @ A.T).reshape(2, 3, 4, 4)
    noise = torch.randn(2, 3, 4, 4)
    lengths = path_length(images, ws, noise)
    y = noise.reshape(2, -1) / 4.0
    per_w = (y @ A) / 5  # d(images . y)/dw_k for each of the 5 ws
    expected = (
        per_w.square().sum(dim=1)
    ).sqrt()  # all 5 ws have the same gradient, so the mean is one of them
    torch.testing.assert_close(lengths, expected)
    penalty, new_mean = path_length_penalty(lengths, torch.tensor(0.0), decay=0.5)
    torch.testing.assert_close(new_mean, lengths.mean().detach() * 0.5)
    torch.testing.assert_close(penalty, (lengths - new_mean).square())
