"""The core GAN regularisers: R1 against analytic gradients, lazy-regularisation scaling of Adam."""

from __future__ import annotations

import math

import pytest
import torch

from zoo_core.training.regularizers import (
    is_regularization_step,
    lazy_adam,
    lazy_ratio,
    r1_loss,
    r1_penalty,
)


def test_r1_of_a_quadratic_critic_matches_the_analytic_gradient_for_any_input_shape():
    g = torch.Generator().manual_seed(0)
    for shape in [(5, 7), (5, 2, 3, 4), (5, 2, 3)]:
        a = torch.randn(1, *shape[1:], generator=g)
        x = torch.randn(*shape, generator=g, requires_grad=True)
        dims = list(range(1, len(shape)))
        logits = (a * x.square()).sum(dim=dims)  # dD/dx = 2 a x
        expected = (2 * a * x.detach()).square().sum(dim=dims)
        torch.testing.assert_close(r1_penalty(logits, x), expected)
        logits = (a * x.square()).sum(dim=dims)
        torch.testing.assert_close(r1_loss(logits, x, gamma=0.5, interval=16), expected.mean() * 0.25 * 16)


def test_r1_keeps_the_graph_so_the_penalty_trains_the_critic():
    w = torch.tensor([3.0, -4.0], requires_grad=True)  # D(x) = w . x: ||grad_x||^2 = ||w||^2 = 25
    x = torch.randn(4, 2, requires_grad=True)
    penalty = r1_penalty(x @ w, x)
    torch.testing.assert_close(penalty, torch.full((4,), 25.0))
    penalty.mean().backward()
    torch.testing.assert_close(w.grad, 2 * w.detach())  # d||w||^2/dw


def test_r1_refuses_inputs_without_grad():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(x.sum(dim=1), x)


def test_lazy_adam_scales_lr_and_betas_by_interval_over_interval_plus_one():
    assert lazy_ratio(16) == 16 / 17 and lazy_ratio(None) == 1.0
    lr, (b1, b2) = lazy_adam(0.0025, (0.0, 0.99), 16)
    assert lr == pytest.approx(0.0025 * 16 / 17)
    assert b1 == 0.0 and b2 == pytest.approx(math.exp(16 / 17 * math.log(0.99)))
    assert lazy_adam(0.002, (0.5, 0.9), None) == (0.002, (0.5, 0.9))
    with pytest.raises(ValueError, match="interval"):
        lazy_ratio(0)


def test_regularization_steps_are_every_interval_th_step_from_zero():
    assert [s for s in range(40) if is_regularization_step(s, 16)] == [0, 16, 32]
    assert not any(is_regularization_step(s, None) for s in range(5))
