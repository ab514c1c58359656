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
from zoo_core.samplers.common import SPACING_INFO
from zoo_core.samplers.posterior import sample_posterior, step_posterior
from zoo_core.samplers.timestep import TimestepSampler, TimestepStep


class DDGANSampler(TimestepSampler):
    name = "ddgan"
    description = (
        "DDGAN posterior sampling: x_{t-1} ~ q(x_{t-1} | x_t, x0' = G(x_t, t, z)) (Xiao et al. 2022)"
    )
    option_info = {"timestep_spacing": SamplerOption(SPACING_INFO.help, None, "trailing")}
    default_steps = None  # every training timestep: T
    default_spacing = "trailing"

    def step(self, s: TimestepStep) -> torch.Tensor:
        batch = s.x.shape[0]
        post = step_posterior(s.run.schedule, torch.full((batch,), s.t), torch.full((batch,), s.t_next))
        noise = None if s.last else s.run.noise_like(s.x)
        return sample_posterior(post, s.denoised.x0, s.x, noise, torch.full((batch,), s.last))
