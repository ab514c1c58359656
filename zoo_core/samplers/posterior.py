"""The diffusion posterior q(x_s | x_t, x_0) over a stride s < t, batched: what DDGAN's sampler and trainer share.

Ho et al. 2020, eq. 6-7, between any two training timesteps (s = -1 meaning the data), in float64 from the schedule;
the log-variance is clipped at LOG_VAR_FLOOR, as the official DDGAN code does, so the last step (variance 0) is
well defined.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoo_core.schedule import NoiseSchedule

LOG_VAR_FLOOR = 1e-20  # the posterior variance at t = 0 is 0; its log is clipped here


@dataclass(frozen=True)
class Posterior:
    """Coefficients of q(x_s | x_t, x_0) = N(coef1 x_0 + coef2 x_t, variance), per batch element."""

    coef1: torch.Tensor
    coef2: torch.Tensor
    variance: torch.Tensor
    log_variance_clipped: torch.Tensor


def posterior(alpha_bar_t: torch.Tensor, alpha_bar_s: torch.Tensor) -> Posterior:
    """q(x_s | x_t, x_0) for s < t from the cumulative alphas (alpha_bar_s = 1 when s is the data, s = -1).

    With a = abar_t / abar_s (the signal kept from s to t) and b = 1 - a (Ho et al. 2020, eq. 6-7, over a stride):
    mean = sqrt(abar_s) b / (1 - abar_t) x_0 + sqrt(a) (1 - abar_s) / (1 - abar_t) x_t,
    variance = b (1 - abar_s) / (1 - abar_t).
    """
    alpha = alpha_bar_t / alpha_bar_s
    beta = 1.0 - alpha
    denom = 1.0 - alpha_bar_t
    variance = beta * (1.0 - alpha_bar_s) / denom
    return Posterior(
        coef1=beta * alpha_bar_s.sqrt() / denom,
        coef2=(1.0 - alpha_bar_s) * alpha.sqrt() / denom,
        variance=variance,
        log_variance_clipped=variance.clamp(min=LOG_VAR_FLOOR).log(),
    )


def step_posterior(schedule: NoiseSchedule, t: torch.Tensor, s: torch.Tensor) -> Posterior:
    """``posterior`` between training timesteps t and s < t (s = -1 means x_0) of ``schedule`` (float64)."""
    alpha_bars = schedule.alphas_cumprod
    t, s = t.long().cpu(), s.long().cpu()
    a_t = alpha_bars[t]
    a_s = torch.where(s >= 0, alpha_bars[s.clamp(min=0)], torch.ones_like(a_t))
    return posterior(a_t, a_s)


def sample_posterior(
    post: Posterior, x0: torch.Tensor, x_t: torch.Tensor, noise: torch.Tensor | None, last: torch.Tensor
) -> torch.Tensor:
    """x_s = mean + exp(log_var / 2) noise, with no noise where ``last`` (bool [B]) marks the final step."""
    shape = (-1,) + (1,) * (x_t.ndim - 1)

    def per_sample(values: torch.Tensor) -> torch.Tensor:
        return values.to(device=x_t.device, dtype=x_t.dtype).reshape(shape)

    mean = per_sample(post.coef1) * x0 + per_sample(post.coef2) * x_t
    if noise is None:
        return mean
    keep = (~last).to(device=x_t.device, dtype=x_t.dtype).reshape(shape)
    return mean + keep * torch.exp(0.5 * per_sample(post.log_variance_clipped)) * noise
