"""DDGAN's discretised VP-SDE schedule and posterior against the official coefficient tables and the paper's formulas."""

from __future__ import annotations

import math

import pytest
import torch
from ddgan_helpers import io, small_config
from zoo_ddgan.config import DDGANConfig
from zoo_ddgan.schedule import (
    DiffusionCoefficients,
    PosteriorTable,
    discrete_betas,
    noise_schedule,
    time_grid,
)

from zoo_core.samplers.posterior import posterior, sample_posterior, step_posterior

POSTERIOR_FIELDS = [
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "posterior_variance",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "posterior_log_variance_clipped",
]
DIFFUSION_FIELDS = ["a_s", "sigmas", "a_s_cum", "sigmas_cum", "a_s_prev"]


@pytest.fixture(scope="module")
def config() -> DDGANConfig:
    return DDGANConfig.parse(small_config())


@pytest.mark.parametrize("field", POSTERIOR_FIELDS)
def test_posterior_table_matches_official(config, field):
    ours = getattr(PosteriorTable.from_schedule(noise_schedule(config)), field)
    theirs = io()[f"pos_{field}"]
    assert ours.dtype == theirs.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, atol=2e-7, rtol=1e-6)


@pytest.mark.parametrize("field", DIFFUSION_FIELDS)
def test_training_coefficients_match_official(config, field):
    ours = getattr(DiffusionCoefficients.from_config(config), field)
    torch.testing.assert_close(ours, io()[f"diff_{field}"], atol=1e-7, rtol=1e-6)


def test_time_grid_matches_official():
    torch.testing.assert_close(time_grid(4), io()["time_schedule"], atol=0, rtol=0)


def test_betas_follow_the_vp_sde_marginals():
    """abar(t_i) = exp(-t_i^2 (b_max - b_min) / 2 - t_i b_min), and prod (1 - beta_i) telescopes to abar(t_T)/abar(t_0)."""
    T, b0, b1 = 4, 0.1, 20.0
    t = time_grid(T)
    alpha_bar = torch.exp(-(t**2) * (b1 - b0) / 2 - t * b0)
    betas = discrete_betas(T, b0, b1).double()
    assert betas[0] == pytest.approx(1e-8)
    torch.testing.assert_close(torch.prod(1 - betas[1:]), alpha_bar[-1] / alpha_bar[0], rtol=1e-5, atol=0)
    torch.testing.assert_close(1 - betas[1:], alpha_bar[1:] / alpha_bar[:-1], rtol=1e-6, atol=1e-7)


def test_geometric_option_uses_the_geometric_variance():
    betas = discrete_betas(3, 0.01, 0.5, geometric=True).double()
    t = time_grid(3)
    alpha_bar = 1 - 0.01 * (0.5 / 0.01) ** t
    torch.testing.assert_close(betas[1:], 1 - alpha_bar[1:] / alpha_bar[:-1], rtol=1e-6, atol=1e-7)


def test_noise_schedule_is_custom_betas_for_generic_samplers(config):
    schedule = noise_schedule(config)
    assert schedule.beta_schedule == "custom" and schedule.num_train_timesteps == 4
    torch.testing.assert_close(
        schedule.alphas_cumprod.float(), io()["pos_alphas_cumprod"], rtol=1e-6, atol=1e-9
    )
    assert schedule.timesteps(4, "trailing").tolist() == [3, 2, 1, 0]


def test_posterior_matches_the_paper_formulas_on_random_inputs():
    """q(x_s | x_t, x_0) from Bayes' rule on the two Gaussians q(x_t | x_s) and q(x_s | x_0)."""
    gen = torch.Generator().manual_seed(0)
    a_t = torch.rand(64, generator=gen, dtype=torch.float64) * 0.9 + 0.01
    a_s = a_t + (1 - a_t) * torch.rand(64, generator=gen, dtype=torch.float64)  # a_t < a_s < 1
    post = posterior(a_t, a_s)
    # x_t | x_s ~ N(sqrt(a) x_s, (1 - a)), x_s | x_0 ~ N(sqrt(a_s) x_0, 1 - a_s): precision-weighted combination
    a = a_t / a_s
    precision = a / (1 - a) + 1 / (1 - a_s)
    variance = 1 / precision
    coef_xt = variance * a.sqrt() / (1 - a)
    coef_x0 = variance * a_s.sqrt() / (1 - a_s)
    torch.testing.assert_close(post.variance, variance)
    torch.testing.assert_close(post.coef1, coef_x0)
    torch.testing.assert_close(post.coef2, coef_xt)
    torch.testing.assert_close(post.log_variance_clipped, variance.log())


def test_last_step_posterior_is_x0_and_noise_is_masked(config):
    schedule = noise_schedule(config)
    post = step_posterior(schedule, torch.tensor([0, 2]), torch.tensor([-1, 1]))
    assert post.coef1[0] == pytest.approx(1.0) and post.coef2[0] == 0 and post.variance[0] == 0
    assert post.log_variance_clipped[0] == pytest.approx(math.log(1e-20))
    x0, x_t, noise = torch.randn(3, 2, 3, 4, 4).unbind(0)
    out = sample_posterior(post, x0, x_t, noise, last=torch.tensor([True, False]))
    torch.testing.assert_close(out[0], x0[0])
    expected = post.coef1[1] * x0[1] + post.coef2[1] * x_t[1] + post.variance[1].sqrt() * noise[1]
    torch.testing.assert_close(out[1], expected.float())


def test_q_sample_pairs_are_consistent_with_the_marginals(config):
    """x_{t+1} = a_{t+1} x_t + s_{t+1} n has the marginal of q(x_{t+1} | x_0): a_cum[t+1] x0 + s_cum[t+1] eps."""
    c = DiffusionCoefficients.from_config(config)
    torch.testing.assert_close(c.a_s[1:] * c.a_s_cum[:-1], c.a_s_cum[1:])
    torch.testing.assert_close(
        c.a_s[1:] ** 2 * c.sigmas_cum[:-1] ** 2 + c.sigmas[1:] ** 2, c.sigmas_cum[1:] ** 2
    )
    x0, n1, n2 = torch.randn(3, 4, 3, 2, 2).unbind(0)
    t = torch.tensor([0, 1, 2, 3])
    x_t, x_next = c.q_sample_pairs(x0, t, n1, n2)
    torch.testing.assert_close(
        x_t, c.a_s_cum[t, None, None, None] * x0 + c.sigmas_cum[t, None, None, None] * n1
    )
    torch.testing.assert_close(
        x_next, c.a_s[t + 1, None, None, None] * x_t + c.sigmas[t + 1, None, None, None] * n2
    )
