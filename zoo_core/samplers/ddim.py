"""DDIM sampling (Song, Meng, Ermon, ICLR 2021) and its deterministic inversion; paper eq. 12 and 16.

From t to the previous visited timestep s (a_t = alphas_cumprod[t]; after the last step a_s = 1, or a_0 when the
schedule says ``set_alpha_to_one: false``):

    (x0_hat, eps_hat) = f(model(x_t, t))             (from eps, x0 or v; x0_hat clipped if clip_sample)
    sigma_t = eta sqrt((1 - a_s) / (1 - a_t)) sqrt(1 - a_t / a_s)
    x_s = sqrt(a_s) x0_hat + sqrt(1 - a_s - sigma_t^2) eps_hat + sigma_t z,   z ~ N(0, I)

eta = 0 is the deterministic DDIM ODE sampler, eta = 1 gives DDPM's posterior variance. Because it only needs
(x0_hat, eps_hat), the same update runs epsilon, v and x0 models, including DDGAN's z-conditioned x0 generator.

Timesteps are spaced ``leading`` / ``trailing`` / ``linspace`` as in diffusers. One deliberate difference: diffusers'
DDIMScheduler always steps to t - T // steps, which is not the next visited timestep under ``linspace`` spacing;
here a step always lands on the next visited timestep (identical for ``leading`` and ``trailing``).

Inversion runs the eta = 0 update the other way, from x0 up to x_T, evaluating the model at the target timestep:
x_{t'} = sqrt(a_{t'}) x0_hat + sqrt(1 - a_{t'}) eps, eps = eps_hat(x_t, t'), x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t).
"""

from __future__ import annotations

from typing import Any

import torch

from zoo_core.sampler import SamplerOption, StepCallback
from zoo_core.samplers.common import Run, check_eta, check_steps, visited_timesteps, working_dtype
from zoo_core.samplers.timestep import TimestepSampler, TimestepStep


def ddim_sigma(a_t: float, a_s: float, eta: float) -> float:
    """The std of the noise DDIM adds from t to s: eta times the DDPM posterior std."""
    return eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)) ** 0.5


def ddim_step(
    x0: torch.Tensor, eps: torch.Tensor, a_s: float, sigma: float, z: torch.Tensor | None = None
) -> torch.Tensor:
    """x_s = sqrt(a_s) x0 + sqrt(1 - a_s - sigma^2) eps + sigma z (pure: eq. 12 of the paper)."""
    x = a_s**0.5 * x0 + max(1 - a_s - sigma**2, 0.0) ** 0.5 * eps
    return x if z is None or sigma == 0 else x + sigma * z


class DDIMSampler(TimestepSampler):
    name = "ddim"
    description = (
        "DDIM (Song et al. 2021): eta=0 deterministic, eta=1 DDPM-like; leading/trailing/linspace spacing"
    )
    options = TimestepSampler.options | {"eta"}
    option_info = {
        "eta": SamplerOption("noise scale: 0 deterministic (the DDIM ODE), 1 DDPM's posterior variance", 0.0)
    }
    default_steps = 50
    final_alpha_from_schedule = True

    def parse_options(self, eta: float = 0.0) -> dict[str, Any]:
        return {"eta": check_eta(self.name, eta)}

    def step(self, s: TimestepStep, eta: float) -> torch.Tensor:
        sigma = ddim_sigma(s.a_t, s.a_next, eta)
        z = s.run.noise_like(s.x) if eta > 0 else None
        return ddim_step(s.denoised.x0, s.denoised.eps, s.a_next, sigma, z)

    def invert(
        self,
        model: Any,
        x0: torch.Tensor,
        steps: int | None = None,
        cond: Any = None,
        *,
        timestep_spacing: str | None = None,
        callback: StepCallback | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Deterministic DDIM inversion x0 -> x_T: ``sample(x_T=invert(x0), eta=0)`` reconstructs x0 (for a
        smooth model, with an error that shrinks with the step count). Clipping does not apply here."""
        self.check(model)
        schedule = model.schedule
        steps = check_steps(self.name, steps, self.default_steps, schedule.num_train_timesteps)
        run = Run(self.name, model, cond, None, callback, progress, working_dtype(model, x0))
        timesteps = visited_timesteps(self.name, schedule, steps, timestep_spacing)[::-1]
        alphas = schedule.alphas_cumprod.tolist()
        a_cur = self.final_alpha(schedule)
        x = x0.to(device=run.device, dtype=run.dtype)
        for i, t in enumerate(run.steps(timesteps)):
            a_t = alphas[t]
            eps = run.denoise_at(x, t).eps
            x0_hat = (x - (1 - a_cur) ** 0.5 * eps) / a_cur**0.5
            x = a_t**0.5 * x0_hat + (1 - a_t) ** 0.5 * eps
            a_cur = a_t
            run.step_done(i, t, x)
        return x
