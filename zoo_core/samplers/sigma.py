"""The base of samplers that step in noise level sigma (the k-diffusion shape): a sampler is one short ``step``.

Everything else is shared here: option parsing (``use_karras_sigmas`` and ``timestep_spacing`` defaulting to the
model's schedule), the timesteps and sigmas, the initial noise scale, the img2img start, the network evaluation
with the core's prediction conversion, the callback and the progress bar. A subclass sets ``name``,
``description``, ``default_steps`` (and ``options`` for extra ones), and implements

    step(s: SigmaStep, **options) -> x at s.sigma_next

where ``s.denoised`` is the network's prediction at (s.x, s.sigma) (``.x0``, ``.eps``, ``.derivative(x, sigma)``),
``s.previous`` the one of the step before (for multistep methods), and ``s.denoise(x, j)`` evaluates the network
again at the j-th sigma (for Heun-like correctors).

Two spaces: ``space = "ve"`` (Euler, Heun: x = x0 + sigma eps, the network sees x / sqrt(1 + sigma^2) at the
fractional timestep of sigma, as diffusers' discrete Karras schedulers) or ``"vp"`` (DPM-Solver: x = alpha x0 +
alpha sigma eps, integer timesteps).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from zoo_core.prediction import Prediction
from zoo_core.sampler import SamplerOption
from zoo_core.samplers.common import (
    COMMON_OPTIONS,
    SPACING_INFO,
    DiffusionSampler,
    Run,
    check_init,
    check_spacing,
    karras_ve_schedule,
    start_index,
)
from zoo_core.schedule import NoiseSchedule


def vp_alpha_sigma(sigma: float) -> tuple[float, float]:
    """(alpha, alpha sigma): the variance-preserving scales of noise level sigma."""
    alpha = 1 / math.sqrt(1 + sigma**2)
    return alpha, sigma * alpha


@dataclass
class SigmaStep:
    """Step i of a sigma-space run: from sigmas[i] (where ``denoised`` was evaluated) to sigmas[i + 1]."""

    run: Run
    space: str
    i: int
    timesteps: list[float]
    sigmas: list[float]
    x: torch.Tensor
    denoised: Prediction
    previous: Prediction | None = field(default=None)

    @property
    def sigma(self) -> float:
        return self.sigmas[self.i]

    @property
    def sigma_next(self) -> float:
        return self.sigmas[self.i + 1]

    @property
    def sigma_prev(self) -> float | None:
        return self.sigmas[self.i - 1] if self.previous is not None else None

    @property
    def last(self) -> bool:
        """The final step (to sigma = 0), which multistep methods take at first order."""
        return self.i == len(self.timesteps) - 1

    def derivative(self) -> torch.Tensor:
        return self.denoised.derivative(self.x, self.sigma)

    def denoise(self, x: torch.Tensor, j: int) -> Prediction:
        return evaluate(self.run, self.space, x, self.timesteps[j], self.sigmas[j])


def evaluate(run: Run, space: str, x: torch.Tensor, t: float, sigma: float) -> Prediction:
    if space == "ve":
        return run.denoise_ve(x, t, sigma)
    alpha, s = vp_alpha_sigma(sigma)
    return run.denoise(x, t, alpha, s)


class SigmaSampler(DiffusionSampler):
    """Base of the sigma-space samplers; subclasses implement ``step`` (``parse_options`` checks extra options)."""

    options: ClassVar[frozenset[str]] = COMMON_OPTIONS | {"use_karras_sigmas", "timestep_spacing"}
    option_info: ClassVar[Mapping[str, SamplerOption]] = {
        "use_karras_sigmas": SamplerOption(
            "step on Karras et al.'s sigma spacing (rho 7)", None, "the schedule's"
        ),
        "timestep_spacing": SPACING_INFO,
    }
    space: ClassVar[str] = "ve"

    def plan(
        self, schedule: NoiseSchedule, steps: int, spacing: str, karras: bool
    ) -> tuple[list, list, float]:
        """(timesteps, steps + 1 sigmas ending at 0, initial noise std): diffusers' discrete Karras schedulers."""
        return karras_ve_schedule(schedule, steps, spacing, karras)

    def step(self, s: SigmaStep, **options: Any) -> torch.Tensor:
        raise NotImplementedError

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
        **options: Any,
    ) -> torch.Tensor:
        options = self.parse_options(**options)
        schedule = run.schedule
        spacing = check_spacing(self.name, timestep_spacing or schedule.timestep_spacing)
        karras = schedule.use_karras_sigmas if use_karras_sigmas is None else bool(use_karras_sigmas)
        timesteps, sigmas, init_sigma = self.plan(schedule, steps, spacing, karras)
        start = start_index(self.name, steps, strength, init)
        x = self.start(noise, sigmas[start], init_sigma, init)
        previous: Prediction | None = None
        for i in run.steps(range(start, steps), total=steps - start):
            denoised = evaluate(run, self.space, x, timesteps[i], sigmas[i])
            s = SigmaStep(run, self.space, i, timesteps, sigmas, x, denoised, previous)
            x = self.step(s, **options)
            previous = denoised
            run.step_done(i - start, timesteps[i], x)
        return x

    def start(
        self, noise: torch.Tensor, sigma: float, init_sigma: float, init: torch.Tensor | None
    ) -> torch.Tensor:
        """The first x: noise at the initial std, or (img2img) the init noised to ``sigma``, in this space."""
        if init is None:
            return noise * init_sigma if self.space == "ve" else noise
        init = check_init(init, noise)
        if self.space == "ve":
            return init + noise * sigma
        alpha, s = vp_alpha_sigma(sigma)
        return alpha * init + s * noise
