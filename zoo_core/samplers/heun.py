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

from zoo_core.samplers.sigma import SigmaSampler, SigmaStep


class HeunSampler(SigmaSampler):
    name = "heun"
    description = "Heun's 2nd-order ODE solver in sigma (Karras et al. 2022); 2 network calls per step"
    default_steps = 25

    def step(self, s: SigmaStep) -> torch.Tensor:
        d = s.derivative()
        x_euler = s.x + d * (s.sigma_next - s.sigma)
        if s.sigma_next == 0:
            return x_euler
        d_next = s.denoise(x_euler, s.i + 1).derivative(x_euler, s.sigma_next)
        return s.x + (d + d_next) / 2 * (s.sigma_next - s.sigma)
