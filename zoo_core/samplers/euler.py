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

from typing import Any

import torch

from zoo_core.sampler import SamplerOption
from zoo_core.samplers.common import ancestral_sigmas, check_eta
from zoo_core.samplers.sigma import SigmaSampler, SigmaStep


class EulerSampler(SigmaSampler):
    name = "euler"
    description = "Euler steps of the probability-flow ODE in sigma (Karras et al. 2022), deterministic"
    default_steps = 50

    def step(self, s: SigmaStep) -> torch.Tensor:
        return s.x + s.derivative() * (s.sigma_next - s.sigma)


class EulerAncestralSampler(SigmaSampler):
    name = "euler-a"
    description = (
        "Euler-ancestral: Euler to sigma_down plus fresh noise sigma_up (eta scales it; 1 = default)"
    )
    options = SigmaSampler.options | {"eta"}
    option_info = {"eta": SamplerOption("scale of the fresh noise: 0 is plain Euler, 1 full ancestral", 1.0)}
    default_steps = 50

    def parse_options(self, eta: float = 1.0) -> dict[str, Any]:
        return {"eta": check_eta(self.name, eta)}

    def step(self, s: SigmaStep, eta: float) -> torch.Tensor:
        down, up = ancestral_sigmas(s.sigma, s.sigma_next, eta)
        x = s.x + s.derivative() * (down - s.sigma)
        return x + up * s.run.noise_like(x) if up > 0 else x
