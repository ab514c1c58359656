"""DPM-Solver++(2M): the multistep second-order solver of the diffusion ODE in data prediction (Lu et al. 2022).

With noise levels sigma_i (sigma = sqrt((1 - a) / a)), alpha_i = 1 / sqrt(1 + sigma_i^2), s_i = sigma_i alpha_i and
lambda_i = log(alpha_i / s_i) (half the log-SNR), the model's x0 prediction D_i = x0_hat(x_i, t_i), h = lambda_{i+1}
- lambda_i and r = (lambda_i - lambda_{i-1}) / h:

    x_{i+1} = (s_{i+1} / s_i) x_i - alpha_{i+1} (exp(-h) - 1) (D_i + (D_i - D_{i-1}) / (2 r))     (2M, "midpoint")

The first step has no history and the last (to sigma = 0) is first order (drop the D_{i-1} term), as in diffusers'
DPMSolverMultistepScheduler (solver_order 2, lower_order_final, final sigma zero). Timesteps follow its spacing
(steps + 1 points, the last dropped), or Karras et al.'s rho = 7 sigmas over the whole training range
(``use_karras_sigmas``), the network then seeing the nearest integer timestep.
"""

from __future__ import annotations

import math

import torch

from zoo_core.errors import SamplerError
from zoo_core.samplers.sigma import SigmaSampler, SigmaStep
from zoo_core.schedule import NoiseSchedule, karras_sigmas, linspace, trailing_timesteps


def dpm_solver_timesteps(
    schedule: NoiseSchedule, steps: int, spacing: str, karras: bool
) -> tuple[list[int], list[float]]:
    """(timesteps, sigmas): ``steps`` integer timesteps and ``steps + 1`` noise levels ending at 0."""
    T = schedule.num_train_timesteps
    table = schedule.sigmas
    if karras:
        sigmas = karras_sigmas(float(table[0]), float(table[-1]), steps)
        t = schedule.timestep_of_sigma(sigmas)
        # diffusers rounds, except for the cosine schedule where the int64 cast truncates
        t = t.floor() if schedule.beta_schedule in ("squaredcos_cap_v2", "cosine") else t.round()
        timesteps = t.long().tolist()
    else:
        if spacing == "linspace":
            t = linspace(T - 1, steps + 1).round().flip(0)[:-1]
        elif spacing == "leading":
            ratio = T // (steps + 1)
            t = (torch.arange(steps + 1, dtype=torch.float64) * ratio).flip(0)[:-1] + schedule.steps_offset
        else:
            t = trailing_timesteps(T, steps)
        timesteps = t.long().tolist()
        if len(set(timesteps)) != steps or not 0 <= min(timesteps) <= max(timesteps) < len(table):
            raise SamplerError(
                f"Sampler 'dpm++2m': {steps} steps with {spacing} spacing give repeated or out-of-range "
                f"timesteps (at most {T - 1} steps fit in {T} training timesteps with this spacing)"
            )
        sigmas = table[timesteps]
    # diffusers stores these noise levels in float32; keep their values so results match to float precision
    return timesteps, [*sigmas.float().tolist(), 0.0]


def dpm_solver_update(
    x: torch.Tensor,
    d0: torch.Tensor,
    d1: torch.Tensor | None,
    sigma_from: float,
    sigma_to: float,
    sigma_before: float | None = None,
) -> torch.Tensor:
    """One DPM-Solver++ step from noise level sigma_from to sigma_to (first order when ``d1`` is None)."""
    if sigma_to == 0:
        return d0
    alpha_t, s_t, lam_t = _alpha_sigma_lambda(sigma_to)
    _, s_s, lam_s = _alpha_sigma_lambda(sigma_from)
    h = lam_t - lam_s
    x_next = (s_t / s_s) * x - (alpha_t * math.expm1(-h)) * d0
    if d1 is not None and sigma_before is not None:
        r = (lam_s - _alpha_sigma_lambda(sigma_before)[2]) / h
        x_next = x_next - (0.5 * alpha_t * math.expm1(-h) / r) * (d0 - d1)
    return x_next


def _alpha_sigma_lambda(sigma: float) -> tuple[float, float, float]:
    alpha = 1 / math.sqrt(1 + sigma**2)
    return alpha, sigma * alpha, -math.log(sigma)


class DPMSolverMultistepSampler(SigmaSampler):
    name = "dpm++2m"
    description = "DPM-Solver++(2M) (Lu et al. 2022), optionally on Karras sigmas; 20-25 steps suffice"
    default_steps = 25
    space = "vp"

    def plan(
        self, schedule: NoiseSchedule, steps: int, spacing: str, karras: bool
    ) -> tuple[list, list, float]:
        return (*dpm_solver_timesteps(schedule, steps, spacing, karras), 1.0)

    def step(self, s: SigmaStep) -> torch.Tensor:
        second_order = s.previous is not None and not s.last
        return dpm_solver_update(
            s.x,
            s.denoised.x0,
            s.previous.x0 if second_order else None,
            s.sigma,
            s.sigma_next,
            s.sigma_prev if second_order else None,
        )
