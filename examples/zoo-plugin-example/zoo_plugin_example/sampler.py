"""Step 3: a sampler. Predictor-corrector sampling (Song et al. 2021, "Score-Based Generative Modeling through SDEs").

Runs any diffusion model: the core's ``run.denoise_ve`` evaluates the network and converts its output (epsilon, x0
or v) to the noise estimate this update needs. In the variance-exploding view x = x_t / sqrt(a_t), with noise levels
sigma_i = sqrt((1 - a_t) / a_t), each step
- corrects with ``corrector_steps`` Langevin updates x <- x + h s + sqrt(2 h) z, where the score is s = -eps / sigma
  and the step size h = 2 (snr ||z|| / ||s||)^2 keeps a fixed signal-to-noise ratio;
- predicts with one Euler step of the probability-flow ODE: x <- x0_hat + sigma_next eps_hat, x0_hat = x - sigma eps_hat.
"""

from __future__ import annotations

import torch

from zoo_core.errors import SamplerError
from zoo_core.samplers.common import COMMON_OPTIONS, DiffusionSampler, Run, start_index, ve_start


def _norm(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).reshape(-1, *[1] * (v.ndim - 1))


class PredictorCorrectorSampler(DiffusionSampler):
    name = "pc"
    description = "predictor-corrector: probability-flow Euler steps + Langevin corrector (example plugin)"
    options = COMMON_OPTIONS | {"corrector_steps", "snr"}
    default_steps = 50

    def sample(
        self,
        run: Run,
        noise: torch.Tensor,
        steps: int,
        *,
        corrector_steps: int = 1,
        snr: float = 0.16,
        init: torch.Tensor | None = None,
        strength: float | None = None,
    ) -> torch.Tensor:
        if not isinstance(corrector_steps, int) or corrector_steps < 0 or not snr > 0:
            raise SamplerError(
                f"Sampler 'pc': corrector_steps must be an integer >= 0 and snr > 0, got {corrector_steps!r} "
                f"and {snr!r}"
            )
        timesteps = run.schedule.timesteps(steps, "linspace").tolist()
        sigmas = run.schedule.sigmas[timesteps].tolist() + [0.0]
        start = start_index(self.name, steps, strength, init)
        x = ve_start(noise, sigmas, sigmas[0], start, init)

        for i in run.steps(range(start, steps), total=steps - start):
            t, sigma, sigma_next = timesteps[i], sigmas[i], sigmas[i + 1]
            for _ in range(corrector_steps):
                score = -run.denoise_ve(x, t, sigma).eps / sigma
                z = run.noise_like(x)
                h = 2 * (snr * _norm(z) / _norm(score).clamp_min(1e-12)) ** 2
                x = x + h * score + (2 * h).sqrt() * z
            eps = run.denoise_ve(x, t, sigma).eps
            x = (x - sigma * eps) + sigma_next * eps
            run.step_done(i - start, t, x)
        return x
