"""Noise schedules: the forward process q(x_t | x_0) = N(sqrt(a_t) x_0, (1 - a_t) I), a_t = prod_{s<=t} (1 - beta_s).

A ``NoiseSchedule`` holds the betas over the training timesteps plus the scheduler defaults a checkpoint was
published with (diffusers' ``scheduler_config.json`` fields), so samplers read them instead of guessing. Everything
is computed in float64 and is a pure function of the fields.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from pydantic import Field, field_validator

from zoo_core.config import Config

BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2", "cosine", "custom"]
TimestepSpacing = Literal["leading", "trailing", "linspace"]


class NoiseSchedule(Config):
    """The training noise schedule and sampling defaults of a diffusion model."""

    num_train_timesteps: int = Field(1000, ge=1)
    beta_schedule: BetaSchedule = "linear"
    beta_start: float = Field(1e-4, gt=0)
    beta_end: float = Field(0.02, gt=0)
    trained_betas: list[float] | None = None
    clip_sample: bool = False
    clip_sample_range: float = 1.0
    #: dynamic thresholding of x0 (Imagen; diffusers' ``thresholding``): pixel models only, overrides clip_sample
    thresholding: bool = False
    dynamic_thresholding_ratio: float = Field(0.995, gt=0, le=1)
    sample_max_value: float = Field(1.0, ge=1)
    variance_type: Literal[
        "fixed_small", "fixed_large", "fixed_small_log", "fixed_large_log", "learned_range"
    ] = "fixed_small"
    timestep_spacing: TimestepSpacing = "leading"
    steps_offset: int = 0
    set_alpha_to_one: bool = True
    use_karras_sigmas: bool = False

    @field_validator("trained_betas")
    @classmethod
    def _betas_in_range(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(not 0 < b < 1 for b in value):
            raise ValueError("every beta must lie in (0, 1)")
        return value

    @classmethod
    def from_diffusers(cls, config: Mapping[str, Any]) -> NoiseSchedule:
        """Read the fields we use from a diffusers ``scheduler_config.json`` and ignore the rest (the fields the
        scheduler has no parameter for are under ``_zoo_schedule`` in the folders zoo exports)."""
        fields = set(cls.model_fields)
        extra = config.get("_zoo_schedule")
        if isinstance(extra, Mapping):
            config = {**extra, **config}
        return cls.parse({k: v for k, v in config.items() if k in fields and v is not None})

    # -- derived tensors (float64) ------------------------------------------------------------------------------
    @property
    def betas(self) -> torch.Tensor:
        T = self.num_train_timesteps
        if self.trained_betas is not None:
            betas = torch.tensor(self.trained_betas, dtype=torch.float64)
            if len(betas) != T:
                raise ValueError(f"trained_betas has {len(betas)} entries but num_train_timesteps is {T}")
            return betas
        if self.beta_schedule == "linear":
            return torch.linspace(self.beta_start, self.beta_end, T, dtype=torch.float64)
        if self.beta_schedule == "scaled_linear":  # Stable Diffusion: linear in sqrt(beta)
            return torch.linspace(self.beta_start**0.5, self.beta_end**0.5, T, dtype=torch.float64) ** 2
        if self.beta_schedule in ("squaredcos_cap_v2", "cosine"):  # Nichol & Dhariwal 2021, eq. 17

            def alpha_bar(t: float) -> float:
                return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

            return torch.tensor(
                [min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), 0.999) for i in range(T)],
                dtype=torch.float64,
            )
        raise ValueError("beta_schedule 'custom' needs trained_betas")

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(1.0 - self.betas, dim=0)

    @property
    def sigmas(self) -> torch.Tensor:
        """The variance-exploding noise levels sigma_t = sqrt((1 - a_t) / a_t) of Karras-style samplers."""
        a = self.alphas_cumprod
        return ((1 - a) / a).sqrt()

    def sigma_at(self, timesteps: torch.Tensor) -> torch.Tensor:
        """sigma at (possibly fractional) timesteps, linearly interpolated in sigma as diffusers' Euler does."""
        table = self.sigmas
        t = torch.as_tensor(timesteps, dtype=torch.float64).clamp(0, len(table) - 1)
        low = t.floor().long().clamp(max=len(table) - 2)
        return torch.lerp(table[low], table[low + 1], t - low)

    def timestep_of_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        """The fractional timestep whose sigma is ``sigma`` (interpolating log sigma), the inverse of ``sigma_at``.

        Karras-sigma samplers pick noise levels first and need the timestep to condition the network on.
        """
        log_table = self.sigmas.log()
        log_sigma = torch.as_tensor(sigma, dtype=torch.float64).clamp_min(1e-10).log()
        low = (torch.searchsorted(log_table, log_sigma, right=True) - 1).clamp(0, len(log_table) - 2)
        lo, hi = log_table[low], log_table[low + 1]
        w = ((lo - log_sigma) / (lo - hi)).clamp(0, 1)
        return (1 - w) * low + w * (low + 1)

    def timesteps(self, steps: int, spacing: TimestepSpacing | None = None) -> torch.Tensor:
        """``steps`` training timesteps to visit, in decreasing order (int64), spaced as diffusers does."""
        T = self.num_train_timesteps
        if not isinstance(steps, int) or steps < 1 or steps > T:
            raise ValueError(
                f"steps must be an integer in 1..{T} (the model's training timesteps), got {steps!r}"
            )
        spacing = spacing or self.timestep_spacing
        if spacing == "linspace":
            ts = linspace(T - 1, steps).round().flip(0)
        elif spacing == "leading":
            ratio = T // steps
            ts = (torch.arange(0, steps, dtype=torch.float64) * ratio).round().flip(0) + self.steps_offset
        elif spacing == "trailing":
            ts = trailing_timesteps(T, steps)
        else:
            raise ValueError(f"timestep spacing must be leading, trailing or linspace, got {spacing!r}")
        return ts.to(torch.int64)

    # -- the forward process ------------------------------------------------------------------------------------
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps, with ``t`` an int tensor [B]."""
        a = _gather(self.alphas_cumprod, t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def velocity(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v = sqrt(a_t) eps - sqrt(1 - a_t) x_0 (Salimans & Ho 2022), the v-prediction target."""
        a = _gather(self.alphas_cumprod, t, x0)
        return a.sqrt() * noise - (1 - a).sqrt() * x0


def linspace(stop: float, n: int) -> torch.Tensor:
    """n evenly spaced values from 0 to ``stop`` (float64), computed as numpy's linspace does (i * step, the last
    set to ``stop``), so that timesteps rounded from them agree with diffusers' at the .5 ties."""
    if n == 1:
        return torch.zeros(1, dtype=torch.float64)
    values = torch.arange(n, dtype=torch.float64) * (stop / (n - 1))
    values[-1] = stop
    return values


def trailing_timesteps(num_train_timesteps: int, steps: int) -> torch.Tensor:
    """``steps`` timesteps counted down from T - 1 in strides of T / steps ("trailing" spacing), float64.

    Written as numpy's arange(T, 0, -T / steps) fills its values (start + i * (second - start)), so the rounding
    matches diffusers for every step count; unlike that arange it never yields steps + 1 values (e.g. T = 1000,
    steps = 61, where diffusers' last timestep becomes -1).
    """
    T = float(num_train_timesteps)
    delta = (T - T / steps) - T
    return (T + torch.arange(steps, dtype=torch.float64) * delta).round() - 1


def karras_sigmas(sigma_min: float, sigma_max: float, n: int, rho: float = 7.0) -> torch.Tensor:
    """n noise levels from sigma_max down to sigma_min, uniform in sigma^(1/rho) (Karras et al. 2022, eq. 5).

    rho = 7 is the paper's choice: it spends more steps at low noise, where the image detail is decided.
    """
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def _gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped [B, 1, ..., 1] to broadcast against ``like``, in ``like``'s dtype and device."""
    out = values.to(like.device)[t.to(like.device).long()].to(like.dtype)
    return out.reshape(-1, *([1] * (like.ndim - 1)))


def expand(values: Sequence[float] | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample scalars [B] -> [B, 1, ..., 1] in ``like``'s dtype and device."""
    v = torch.as_tensor(values, dtype=like.dtype, device=like.device)
    return v.reshape(-1, *([1] * (like.ndim - 1)))
