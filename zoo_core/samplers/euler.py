"""Euler and Euler-ancestral sampling of the diffusion ODE / SDE in sigma (Karras et al. 2022, Algorithm 1 with
no churn; the ancestral variant as in k-diffusion), with diffusers' EulerDiscrete / EulerAncestralDiscrete steps.

In the variance-exploding variable x = x_t / sqrt(a_t) = x0 + sigma eps, the probability-flow ODE is
dx / dsigma = (x - x0_hat(x, sigma)) / sigma. Euler takes  x_{i+1} = x_i + (sigma_{i+1} - sigma_i) d_i,
d_i = (x_i - x0_hat) / sigma_i.  Euler-ancestral steps to sigma_down and adds fresh noise of std sigma_up:

    sigma_up = min(sigma_{i+1}, eta sqrt(sigma_{i+1}^2 (sigma_i^2 - sigma_{i+1}^2) / sigma_i^2)),
    sigma_down = sqrt(sigma_{i+1}^2 - sigma_up^2),   x_{i+1} = x_i + (sigma_down - sigma_i) d_i + sigma_up z.

The network sees x / sqrt(1 + sigma^2) and the (fractional) timestep of sigma; ``x_T`` is standard noise, scaled
by the initial sigma. The callback receives the variance-exploding x (diffusers' latents for these schedulers).
"""

from __future__ import annotations

import torch

from zoo_core.samplers.common import (
    COMMON_OPTIONS,
    DiffusionSampler,
    Run,
    ancestral_sigmas,
    check_eta,
    plan_sigma_sampling,
)


class EulerSampler(DiffusionSampler):
    name = "euler"
    description = "Euler steps of the probability-flow ODE in sigma (Karras et al. 2022), deterministic"
    options = COMMON_OPTIONS | {"use_karras_sigmas", "timestep_spacing"}
    default_steps = 50

    def sample(
        self,
        run: Run,
        noise: torch.Tensor,
        steps: int,
        *,
        use_karras_sigmas: bool | None = None,
        timestep_spacing: str | None = None,
        init: torch.Tensor | None = None,
        strength: float | None = None,
    ) -> torch.Tensor:
        timesteps, sigmas, start, x = plan_sigma_sampling(
            self.name, run, noise, steps, use_karras_sigmas, timestep_spacing, init, strength
        )
        for i in run.steps(range(start, steps), total=steps - start):
            d = run.denoise_ve(x, timesteps[i], sigmas[i]).derivative(x, sigmas[i])
            x = x + d * (sigmas[i + 1] - sigmas[i])
            run.step_done(i - start, timesteps[i], x)
        return x


class EulerAncestralSampler(DiffusionSampler):
    name = "euler-a"
    description = (
        "Euler-ancestral: Euler to sigma_down plus fresh noise sigma_up (eta scales it; 1 = default)"
    )
    options = COMMON_OPTIONS | {"eta", "use_karras_sigmas", "timestep_spacing"}
    default_steps = 50

    def sample(
        self,
        run: Run,
        noise: torch.Tensor,
        steps: int,
        *,
        eta: float = 1.0,
        use_karras_sigmas: bool | None = None,
        timestep_spacing: str | None = None,
        init: torch.Tensor | None = None,
        strength: float | None = None,
    ) -> torch.Tensor:
        eta = check_eta(self.name, eta)
        timesteps, sigmas, start, x = plan_sigma_sampling(
            self.name, run, noise, steps, use_karras_sigmas, timestep_spacing, init, strength
        )
        for i in run.steps(range(start, steps), total=steps - start):
            d = run.denoise_ve(x, timesteps[i], sigmas[i]).derivative(x, sigmas[i])
            down, up = ancestral_sigmas(sigmas[i], sigmas[i + 1], eta)
            x = x + d * (down - sigmas[i])
            if up > 0:
                x = x + up * run.noise_like(x)
            run.step_done(i - start, timesteps[i], x)
        return x
