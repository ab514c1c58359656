"""Step 3: a sampler. Predictor-corrector sampling (Song et al. 2021, "Score-Based Generative Modeling through SDEs").

Built on the core's ``SigmaSampler``, it only says where to step (``plan``) and how (``step``); the core evaluates
the network and converts its output (epsilon, x0 or v), so it runs every diffusion model. In the
variance-exploding view x = x_t / sqrt(a_t), with noise levels sigma_i = sqrt((1 - a_t) / a_t), each step
- corrects with ``corrector_steps`` Langevin updates x <- x + h s + sqrt(2 h) z, where the score is s = -eps / sigma
  and the step size h = 2 (snr ||z|| / ||s||)^2 keeps a fixed signal-to-noise ratio;
- predicts with one Euler step of the probability-flow ODE: x <- x0_hat + sigma_next eps_hat, x0_hat = x - sigma eps_hat.
"""

from __future__ import annotations

import torch

from zoo import SamplerOption
from zoo_core.errors import SamplerError
from zoo_core.samplers.common import COMMON_OPTIONS
from zoo_core.samplers.sigma import SigmaSampler, SigmaStep
from zoo_core.schedule import NoiseSchedule


def _norm(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).reshape(-1, *[1] * (v.ndim - 1))


class PredictorCorrectorSampler(SigmaSampler):
    name = "pc"
    description = "predictor-corrector: probability-flow Euler steps + Langevin corrector (example plugin)"
    options = COMMON_OPTIONS | {"corrector_steps", "snr"}
    option_info = {  # shown by `zoo samplers` and `zoo sample NAME --help`
        "corrector_steps": SamplerOption("Langevin corrector updates per step (0: the predictor alone)", 1),
        "snr": SamplerOption("signal-to-noise ratio that sets the corrector's step size", 0.16),
    }
    default_steps = 50

    def plan(
        self, schedule: NoiseSchedule, steps: int, spacing: str, karras: bool
    ) -> tuple[list, list, float]:
        timesteps = schedule.timesteps(steps, "linspace").tolist()
        sigmas = schedule.sigmas[timesteps].tolist() + [0.0]
        return timesteps, sigmas, sigmas[0]

    def parse_options(self, corrector_steps: int = 1, snr: float = 0.16) -> dict:
        if not isinstance(corrector_steps, int) or corrector_steps < 0 or not snr > 0:
            raise SamplerError(
                f"Sampler 'pc': corrector_steps must be an integer >= 0 and snr > 0, got {corrector_steps!r} "
                f"and {snr!r}"
            )
        return {"corrector_steps": corrector_steps, "snr": snr}

    def step(self, s: SigmaStep, corrector_steps: int, snr: float) -> torch.Tensor:
        x, sigma, denoised = s.x, s.sigma, s.denoised
        for k in range(corrector_steps):
            if k > 0:
                denoised = s.denoise(x, s.i)
            score = -denoised.eps / sigma
            z = s.run.noise_like(x)
            h = 2 * (snr * _norm(z) / _norm(score).clamp_min(1e-12)) ** 2
            x = x + h * score + (2 * h).sqrt() * z
        eps = (s.denoise(x, s.i) if corrector_steps else denoised).eps
        return (x - sigma * eps) + s.sigma_next * eps
