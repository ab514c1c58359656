"""Step 3: a sampler. Predictor-corrector sampling (Song et al. 2021, "Score-Based Generative Modeling through SDEs").

Works on any epsilon-predicting Denoiser. In the variance-exploding view x = x_t / sqrt(a_t), with noise levels
sigma_i = sqrt((1 - a_t) / a_t), each step
- corrects with ``corrector_steps`` Langevin updates x <- x + h s + sqrt(2 h) z, where the score is s = -eps / sigma
  and the step size h = 2 (snr ||z|| / ||s||)^2 keeps a fixed signal-to-noise ratio;
- predicts with one Euler step of the probability-flow ODE: x <- x0_hat + sigma_next eps_hat, x0_hat = x - sigma eps_hat.
"""

from __future__ import annotations

from typing import Any

import torch

from zoo_core.sampler import Sampler
from zoo_core.seeding import randn


def _norm(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).reshape(-1, *[1] * (v.ndim - 1))


class PredictorCorrectorSampler(Sampler):
    name = "pc"
    description = "predictor-corrector: probability-flow Euler steps + Langevin corrector (example plugin)"
    kinds = ("diffusion",)
    prediction_types = ("epsilon",)
    options = frozenset({"corrector_steps", "snr"})
    default_steps = 50

    def __call__(
        self,
        model: Any,
        shape: tuple[int, ...],
        *,
        steps=None,
        generator=None,
        cond=None,
        x_T=None,
        callback=None,
        progress=False,
        corrector_steps: int = 1,
        snr: float = 0.16,
    ) -> torch.Tensor:
        self.check(model)  # a clear SamplerError for a model it cannot run (the shared sampler suite checks it)
        steps = self.default_steps if steps is None else steps  # steps=0 is an error, not the default
        if corrector_steps < 0 or snr <= 0:
            raise ValueError(f"corrector_steps must be >= 0 and snr > 0, got {corrector_steps} and {snr}")
        timesteps = model.schedule.timesteps(steps, "linspace").tolist()
        sigmas = model.schedule.sigmas[timesteps].tolist() + [0.0]
        device, dtype = model.device, model.dtype
        x = x_T if x_T is not None else randn(shape, generator, device=device, dtype=dtype) * sigmas[0]

        def eps(x: torch.Tensor, t: int, sigma: float) -> torch.Tensor:
            t_batch = torch.full((shape[0],), t, device=device, dtype=torch.float32)
            return model.predict(
                x / (1 + sigma**2) ** 0.5, t_batch, cond, generator
            )  # back to x_t = sqrt(a) x

        for i, t in enumerate(timesteps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            for _ in range(corrector_steps):
                score = -eps(x, t, sigma) / sigma
                z = randn(shape, generator, device=device, dtype=dtype)
                h = 2 * (snr * _norm(z) / _norm(score).clamp_min(1e-12)) ** 2
                x = x + h * score + (2 * h).sqrt() * z
            e = eps(x, t, sigma)
            x = (x - sigma * e) + sigma_next * e
            if callback is not None:
                callback(i, t, x)
        return x
