"""Heun's second-order method on the probability-flow ODE in sigma (Karras et al. 2022, Algorithm 1, no churn).

With x = x0 + sigma eps and d(x, sigma) = (x - x0_hat(x, sigma)) / sigma:

    x'      = x_i + (sigma_{i+1} - sigma_i) d(x_i, sigma_i)                        (Euler predictor)
    x_{i+1} = x_i + (sigma_{i+1} - sigma_i) (d(x_i, sigma_i) + d(x', sigma_{i+1})) / 2   (trapezoid corrector)

and a plain Euler step for the last step to sigma = 0, so ``steps`` steps cost 2 steps - 1 network calls. Timesteps,
sigmas and the initial noise level are those of diffusers' HeunDiscreteScheduler (``use_karras_sigmas`` for the
rho = 7 ramp). The callback receives the variance-exploding x after each full step.
"""

from __future__ import annotations

import torch

from zoo_core.samplers.common import (
    COMMON_OPTIONS,
    DiffusionSampler,
    Run,
    plan_sigma_sampling,
)


class HeunSampler(DiffusionSampler):
    name = "heun"
    description = "Heun's 2nd-order ODE solver in sigma (Karras et al. 2022); 2 network calls per step"
    options = COMMON_OPTIONS | {"use_karras_sigmas", "timestep_spacing"}
    default_steps = 25

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
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            d = run.denoise_ve(x, timesteps[i], sigma).derivative(x, sigma)
            x_euler = x + d * (sigma_next - sigma)
            if sigma_next == 0:
                x = x_euler
            else:
                d_next = run.denoise_ve(x_euler, timesteps[i + 1], sigma_next).derivative(x_euler, sigma_next)
                x = x + (d + d_next) / 2 * (sigma_next - sigma)
            run.step_done(i - start, timesteps[i], x)
        return x
