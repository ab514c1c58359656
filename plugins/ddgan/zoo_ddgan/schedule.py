"""DDGAN's noise schedule: the VP-SDE discretised into T large steps, and the posterior q(x_{t-1} | x_t, x_0).

The variance-preserving SDE (Song et al. 2021) with beta(t) = beta_min + t (beta_max - beta_min) has marginal
variance var(t) = 1 - abar(t) = 1 - exp(-t^2 (beta_max - beta_min) / 2 - t beta_min).
DDGAN (Xiao et al. 2022, appendix B) evaluates it on the grid t_i = eps + (1 - eps) i / T, i = 0..T (eps = 1e-3),
and takes the discrete betas from consecutive cumulative alphas: beta_i = 1 - abar(t_i) / abar(t_{i-1}). The
official code also keeps a leading beta_0 = 1e-8 for the training-time forward process.

Indexing, as in the official code: the generator's timestep t = 0..T-1 labels an input whose cumulative alpha is
``alphas_cumprod[t]`` of the T betas beta_1..beta_T (the DDPM convention, so ``NoiseSchedule`` and any generic
sampler see the usual picture); the posterior at t gives x_{t-1}, and at t = 0 it returns the mean (x0') itself
(``zoo_core.samplers.posterior``, shared with the sampler).
The official code computes these tables in float32; the functions here do the same where the values are compared
against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoo_core.samplers.posterior import step_posterior
from zoo_core.schedule import NoiseSchedule
from zoo_ddgan.config import DDGANConfig

EPS_SMALL = 1e-3  # the continuous time grid starts here, not at 0, where the VP variance vanishes
FIRST_BETA = 1e-8  # beta_0 of the official training-time forward process


def time_grid(num_timesteps: int) -> torch.Tensor:
    """The T + 1 continuous times eps + (1 - eps) i / T (float64)."""
    i = torch.arange(num_timesteps + 1, dtype=torch.float64, device="cpu")
    return i / num_timesteps * (1.0 - EPS_SMALL) + EPS_SMALL


def vp_variance(t: torch.Tensor, beta_min: float, beta_max: float) -> torch.Tensor:
    """Marginal variance 1 - abar(t) of the VP-SDE with a linear beta(t)."""
    log_mean = -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min
    return 1.0 - torch.exp(2.0 * log_mean)


def geometric_variance(t: torch.Tensor, beta_min: float, beta_max: float) -> torch.Tensor:
    """The official ``use_geometric`` alternative: variance beta_min (beta_max / beta_min)^t."""
    return beta_min * (beta_max / beta_min) ** t


def discrete_betas(
    num_timesteps: int, beta_min: float, beta_max: float, geometric: bool = False
) -> torch.Tensor:
    """[T + 1] float32 betas: FIRST_BETA, then 1 - abar(t_i) / abar(t_{i-1}) for i = 1..T."""
    t = time_grid(num_timesteps)
    variance = (geometric_variance if geometric else vp_variance)(t, beta_min, beta_max)
    alpha_bars = 1.0 - variance
    betas = 1.0 - alpha_bars[1:] / alpha_bars[:-1]
    return torch.cat([torch.tensor([FIRST_BETA], dtype=torch.float64, device="cpu"), betas]).to(torch.float32)


def noise_schedule(config: DDGANConfig) -> NoiseSchedule:
    """The schedule generic samplers see: the T betas beta_1..beta_T (as float32 values, like the official code)."""
    betas = discrete_betas(config.num_timesteps, config.beta_min, config.beta_max, config.use_geometric)[1:]
    return NoiseSchedule(
        num_train_timesteps=config.num_timesteps,
        beta_schedule="custom",
        trained_betas=[float(b) for b in betas],
        clip_sample=False,
        variance_type="fixed_small",
        timestep_spacing="trailing",  # fewer steps than T still start from pure noise at T - 1
    )


@dataclass(frozen=True)
class PosteriorTable:
    """The official ``Posterior_Coefficients``: the one-step posterior q(x_{t-1} | x_t, x_0) for t = 0..T-1."""

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_mean_coef1: torch.Tensor
    posterior_mean_coef2: torch.Tensor
    posterior_log_variance_clipped: torch.Tensor

    @classmethod
    def from_schedule(cls, schedule: NoiseSchedule, dtype: torch.dtype = torch.float32) -> PosteriorTable:
        t = torch.arange(schedule.num_train_timesteps)
        post = step_posterior(schedule, t, t - 1)
        a = schedule.alphas_cumprod
        tables = {
            "betas": schedule.betas,
            "alphas_cumprod": a,
            "alphas_cumprod_prev": torch.cat([torch.ones(1, dtype=a.dtype), a[:-1]]),
            "posterior_variance": post.variance,
            "posterior_mean_coef1": post.coef1,
            "posterior_mean_coef2": post.coef2,
            "posterior_log_variance_clipped": post.log_variance_clipped,
        }
        return cls(**{k: v.to(dtype) for k, v in tables.items()})


# -- the training-time forward process ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiffusionCoefficients:
    """The official ``Diffusion_Coefficients`` (float32, [T + 1] each) that make training pairs (x_t, x_{t+1}).

    a_s = sqrt(1 - beta_i), sigmas = sqrt(beta_i), a_s_cum / sigmas_cum the cumulative signal / noise scales
    (x_i = a_s_cum[i] x_0 + sigmas_cum[i] eps), a_s_prev = a_s with its last entry set to 1.
    """

    a_s: torch.Tensor
    sigmas: torch.Tensor
    a_s_cum: torch.Tensor
    sigmas_cum: torch.Tensor
    a_s_prev: torch.Tensor

    @classmethod
    def from_config(cls, config: DDGANConfig) -> DiffusionCoefficients:
        betas = discrete_betas(config.num_timesteps, config.beta_min, config.beta_max, config.use_geometric)
        a_s = torch.sqrt(1.0 - betas)
        a_s_cum = torch.cumprod(a_s, dim=0)
        a_s_prev = a_s.clone()
        a_s_prev[-1] = 1.0
        return cls(
            a_s=a_s,
            sigmas=betas.sqrt(),
            a_s_cum=a_s_cum,
            sigmas_cum=torch.sqrt(1.0 - a_s_cum**2),
            a_s_prev=a_s_prev,
        )

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = a_s_cum[t] x_0 + sigmas_cum[t] noise (t = 0 is x_0 up to beta_0 = 1e-8)."""
        return _at(self.a_s_cum, t, x0) * x0 + _at(self.sigmas_cum, t, x0) * noise

    def q_sample_pairs(
        self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, noise_next: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_t, x_{t+1}): the real pair the discriminator sees; the generator gets x_{t+1} with label t."""
        x_t = self.q_sample(x0, t, noise)
        x_next = _at(self.a_s, t + 1, x0) * x_t + _at(self.sigmas, t + 1, x0) * noise_next
        return x_t, x_next


def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    out = values.to(like.device)[t.to(like.device).long()].to(like.dtype)
    return out.reshape(-1, *([1] * (like.ndim - 1)))
