"""The base of samplers that step between training timesteps (DDPM, DDIM, PNDM, DDGAN): a sampler is one ``step``.

Everything else is shared here, as ``sigma.py`` does for the sigma-space samplers: the ``timestep_spacing`` option
(defaulting to the model's schedule, or to the sampler's ``default_spacing``), the visited timesteps, the img2img
start (the init diffused to the first kept timestep), the network evaluation with the core's prediction conversion,
the callback and the progress bar. A subclass sets ``name``, ``description``, ``default_steps`` (and ``options`` for
extra ones, checked by ``parse_options``), and implements

    step(s: TimestepStep, **options) -> x at s.t_next

where ``s.denoised`` is the network's prediction at (s.x, s.t) (``.x0``, ``.eps``, ``.output``), ``s.history``
those of the last ``history_size`` steps (for multistep methods) and ``s.denoise(x, t)`` evaluates the network
again.
After the last visited timestep ``t_next`` is -1 and ``a_next`` is 1, or a_0 for a sampler with
``final_alpha_from_schedule`` when the schedule says ``set_alpha_to_one: false`` (DDIM, PNDM: as diffusers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    start_index,
    visited_timesteps,
)
from zoo_core.schedule import NoiseSchedule


def timestep_start(
    sampler: str,
    schedule: NoiseSchedule,
    noise: torch.Tensor,
    steps: int,
    spacing: str | None,
    strength: float | None,
    init: torch.Tensor | None,
) -> tuple[list[int], torch.Tensor]:
    """The timesteps a timestep-space sampler visits (img2img skips the first ones) and its first x: the noise, or
    (img2img) the init diffused to the first visited timestep."""
    timesteps = visited_timesteps(sampler, schedule, steps, spacing)
    timesteps = timesteps[start_index(sampler, steps, strength, init) :]
    if init is None:
        return timesteps, noise
    a = float(schedule.alphas_cumprod[timesteps[0]])
    return timesteps, a**0.5 * check_init(init, noise) + (1 - a) ** 0.5 * noise


@dataclass
class TimestepStep:
    """Step i of a timestep-space run: from training timestep t (where ``denoised`` was evaluated) to t_next."""

    run: Run
    i: int
    t: int
    t_next: int
    a_t: float
    a_next: float
    x: torch.Tensor
    denoised: Prediction
    history: list[Prediction]

    @property
    def last(self) -> bool:
        """The final step, to the data."""
        return self.t_next < 0

    def denoise(self, x: torch.Tensor, t: int) -> Prediction:
        return self.run.denoise_at(x, t)


class TimestepSampler(DiffusionSampler):
    """Base of the timestep-space samplers; subclasses implement ``step`` (``parse_options`` checks extra options)."""

    options: ClassVar[frozenset[str]] = COMMON_OPTIONS | {"timestep_spacing"}
    option_info: ClassVar[Mapping[str, SamplerOption]] = {"timestep_spacing": SPACING_INFO}
    #: the spacing when the call does not say (None: the model's schedule's)
    default_spacing: ClassVar[str | None] = None
    #: step after the last timestep to a_0 when the schedule says ``set_alpha_to_one: false`` (else to a = 1)
    final_alpha_from_schedule: ClassVar[bool] = False
    #: how many earlier predictions ``step`` sees in ``s.history`` (multistep methods)
    history_size: ClassVar[int] = 0

    def final_alpha(self, schedule: NoiseSchedule) -> float:
        """The cumulative alpha the last step lands on: 1 (the data), or a_0 per ``final_alpha_from_schedule``."""
        if self.final_alpha_from_schedule and not schedule.set_alpha_to_one:
            return float(schedule.alphas_cumprod[0])
        return 1.0

    def step(self, s: TimestepStep, **options: Any) -> torch.Tensor:
        raise NotImplementedError

    def sample(
        self,
        run: Run,
        noise: torch.Tensor,
        steps: int,
        *,
        timestep_spacing: str | None = None,
        init: torch.Tensor | None = None,
        strength: float | None = None,
        **options: Any,
    ) -> torch.Tensor:
        options = self.parse_options(**options)
        spacing = timestep_spacing or self.default_spacing
        timesteps, x = timestep_start(self.name, run.schedule, noise, steps, spacing, strength, init)
        alphas = run.alphas_cumprod
        final = self.final_alpha(run.schedule)
        history: list[Prediction] = []
        for i, t in enumerate(run.steps(timesteps)):
            t_next = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            a_next = alphas[t_next] if t_next >= 0 else final
            denoised = run.denoise_at(x, t)
            x = self.step(TimestepStep(run, i, t, t_next, alphas[t], a_next, x, denoised, history), **options)
            history = [*history, denoised][-self.history_size :] if self.history_size else []
            run.step_done(i, t, x)
        return x
