"""Ancestral DDPM sampling (Ho, Jain, Abbeel 2020, Algorithm 2), on the full chain or a subsequence of it.

From t to the previous visited timestep s (s = -1 after the last, with a_{-1} = 1), with a_t = alphas_cumprod[t],
alpha = a_t / a_s and beta = 1 - alpha (the one-step quantities of the subsequence):

    x0_hat = f(model(x_t, t))                       (from eps, x0 or v; clipped to [-1, 1] if clip_sample)
    mu     = sqrt(a_s) beta / (1 - a_t) x0_hat + sqrt(alpha) (1 - a_s) / (1 - a_t) x_t      (posterior mean)
    x_s    = mu + sigma_t z,   z ~ N(0, I), no noise at t = 0

with sigma_t^2 = beta (1 - a_s) / (1 - a_t) (``fixed_small``, the posterior variance) or beta (``fixed_large``, the
paper's choice for CIFAR-10). Fewer steps than training timesteps use the schedule's spacing (diffusers' leading
spacing by default), exactly as diffusers' DDPMScheduler does.
"""

from __future__ import annotations

from typing import Any

import torch

from zoo_core.errors import SamplerError
from zoo_core.sampler import SamplerOption
from zoo_core.samplers.common import Run
from zoo_core.samplers.timestep import TimestepSampler, TimestepStep

VARIANCES = {"fixed_small": "fixed_small", "fixed_small_log": "fixed_small", "fixed_large": "fixed_large"}
VARIANCES["fixed_large_log"] = "fixed_large"


def posterior_step(
    x_t: torch.Tensor, x0: torch.Tensor, a_t: float, a_s: float, variance_type: str
) -> tuple[torch.Tensor, float]:
    """(mean, variance) of q(x_s | x_t, x0_hat), the variance per ``variance_type``: a pure function for tests."""
    alpha = a_t / a_s
    beta = 1 - alpha
    mean = (a_s**0.5 * beta / (1 - a_t)) * x0 + (alpha**0.5 * (1 - a_s) / (1 - a_t)) * x_t
    small = max((1 - a_s) / (1 - a_t) * beta, 1e-20)
    return mean, (small if variance_type == "fixed_small" else beta)


class DDPMSampler(TimestepSampler):
    name = "ddpm"
    description = "ancestral DDPM sampling (Ho et al. 2020); variance fixed_small or fixed_large"
    options = TimestepSampler.options | {"variance_type"}
    option_info = {
        "variance_type": SamplerOption(
            "fixed_small (posterior variance) or fixed_large (beta_t)", None, "the schedule's"
        )
    }
    default_steps = None  # every training timestep

    def sample(
        self, run: Run, noise: torch.Tensor, steps: int, variance_type: str | None = None, **options: Any
    ) -> torch.Tensor:
        """Resolve the variance (the schedule's by default) before any network call, then run the base."""
        variance_type = variance_type or run.schedule.variance_type
        variance = VARIANCES.get(variance_type)
        if variance is None:
            raise SamplerError(
                f"Sampler 'ddpm': variance_type must be fixed_small or fixed_large, got {variance_type!r} "
                "(learned variances are not supported)"
            )
        return super().sample(run, noise, steps, variance=variance, **options)

    def step(self, s: TimestepStep, variance: str) -> torch.Tensor:
        mean, var = posterior_step(s.x, s.denoised.x0, s.a_t, s.a_next, variance)
        return mean + var**0.5 * s.run.noise_like(s.x) if s.t > 0 else mean
