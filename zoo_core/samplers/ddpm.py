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

import torch

from zoo_core.errors import SamplerError
from zoo_core.sampler import SamplerOption
from zoo_core.samplers.common import (
    COMMON_OPTIONS,
    SPACING_INFO,
    DiffusionSampler,
    Run,
    timestep_start,
)

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


class DDPMSampler(DiffusionSampler):
    name = "ddpm"
    description = "ancestral DDPM sampling (Ho et al. 2020); variance fixed_small or fixed_large"
    options = COMMON_OPTIONS | {"variance_type", "timestep_spacing"}
    option_info = {
        "variance_type": SamplerOption(
            "fixed_small (posterior variance) or fixed_large (beta_t)", None, "the schedule's"
        ),
        "timestep_spacing": SPACING_INFO,
    }
    default_steps = None  # every training timestep

    def sample(
        self,
        run: Run,
        noise: torch.Tensor,
        steps: int,
        *,
        variance_type: str | None = None,
        timestep_spacing: str | None = None,
        init: torch.Tensor | None = None,
        strength: float | None = None,
    ) -> torch.Tensor:
        schedule = run.schedule
        variance = VARIANCES.get(variance_type or schedule.variance_type)
        if variance is None:
            raise SamplerError(
                f"Sampler 'ddpm': variance_type must be fixed_small or fixed_large, got "
                f"{variance_type or schedule.variance_type!r} (learned variances are not supported)"
            )
        timesteps, x = timestep_start(self.name, schedule, noise, steps, timestep_spacing, strength, init)
        alphas_cumprod = schedule.alphas_cumprod.tolist()

        for i, t in enumerate(run.steps(timesteps)):
            s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            a_t, a_s = alphas_cumprod[t], (alphas_cumprod[s] if s >= 0 else 1.0)
            x0 = run.denoise_at(x, t).x0
            mean, var = posterior_step(x, x0, a_t, a_s, variance)
            x = mean + var**0.5 * run.noise_like(x) if t > 0 else mean
            run.step_done(i, t, x)
        return x
