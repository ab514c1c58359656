"""DDGAN posterior sampling (Xiao et al. 2022, section 3.2): x0' from a z-conditioned generator, then the posterior.

From x_T ~ N(0, I), for each visited timestep t (decreasing) with s the next one (s = -1 after the last):

    z ~ N(0, I)                 (drawn by the model's ``predict`` from the call's generator)
    x0' = G(x_t, t, z)
    x_s ~ q(x_s | x_t, x0') = N(coef1 x0' + coef2 x_t, sigma^2),   no noise on the last step (x_{-1} = mean = x0')

with the coefficients of ``zoo_core.samplers.posterior``. With steps = T (the default) this is the official
``sample_from_model``: one step per training timestep. Fewer steps jump over timesteps with the exact posterior
q(x_s | x_t, x0) of the stride (trailing spacing, so the first step is always at T - 1, where x_T is pure noise).
The generator was trained only on single steps, so expect quality to drop; more steps than T are impossible.
"""

from __future__ import annotations

import torch

from zoo_core.sampler import SamplerOption
from zoo_core.samplers.common import (
    COMMON_OPTIONS,
    SPACING_INFO,
    DiffusionSampler,
    Run,
    timestep_start,
)
from zoo_core.samplers.posterior import sample_posterior, step_posterior


class DDGANSampler(DiffusionSampler):
    name = "ddgan"
    description = (
        "DDGAN posterior sampling: x_{t-1} ~ q(x_{t-1} | x_t, x0' = G(x_t, t, z)) (Xiao et al. 2022)"
    )
    options = COMMON_OPTIONS | {"timestep_spacing"}
    option_info = {"timestep_spacing": SamplerOption(SPACING_INFO.help, None, "trailing")}
    default_steps = None  # every training timestep: T

    def sample(
        self,
        run: Run,
        noise: torch.Tensor,
        steps: int,
        *,
        timestep_spacing: str | None = None,
        init: torch.Tensor | None = None,
        strength: float | None = None,
    ) -> torch.Tensor:
        schedule = run.schedule
        timesteps, x = timestep_start(
            self.name, schedule, noise, steps, timestep_spacing or "trailing", strength, init
        )
        batch = noise.shape[0]

        for i, t in enumerate(run.steps(timesteps)):
            s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            x0 = run.denoise_at(x, t).x0
            post = step_posterior(schedule, torch.full((batch,), t), torch.full((batch,), s))
            last = torch.full((batch,), s < 0)
            x = sample_posterior(post, x0, x, None if s < 0 else run.noise_like(x), last)
            run.step_done(i, t, x)
        return x
