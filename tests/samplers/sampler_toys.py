"""Toy Denoisers for the sampler tests: small, deterministic, and cheap enough to run every sampler many times.

- ``ToyDenoiser``: a fixed random linear map of x_t, modulated by smooth functions of t, plus an optional class
  embedding; it predicts whatever ``prediction_type`` says (the samplers only see numbers).
- ``GaussianDenoiser``: the exact posterior-mean denoiser of data x0 ~ N(mu, s^2 I), so samples of a correct sampler
  have mean mu and std s, and DDIM inversion is (nearly) exact.
"""

from __future__ import annotations

from typing import Any

import torch

from zoo_core.schedule import NoiseSchedule
from zoo_core.testing import ToyDenoiser, _alpha_bar

__all__ = ["GaussianDenoiser", "StochasticX0Generator", "ToyDenoiser", "ToyGenerator"]


class GaussianDenoiser:
    """E[eps | x_t] (or E[x0 | x_t], or v) for x0 ~ N(mu, s^2 I); fractional timesteps go through sigma_at."""

    kind = "diffusion"

    def __init__(
        self,
        prediction_type: str = "epsilon",
        schedule: NoiseSchedule | None = None,
        shape: tuple[int, ...] = (1, 8, 8),
        mean: float = 0.3,
        std: float = 0.5,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.prediction_type, self.schedule, self._shape = prediction_type, schedule or NoiseSchedule(), shape
        self.mean, self.std = mean, std
        self._sigmas = self.schedule.sigmas
        self.dtype, self.device = dtype, torch.device("cpu")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self._shape

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: Any = None, generator: Any = None
    ) -> torch.Tensor:
        a = _alpha_bar(self._sigmas, t).to(x_t.dtype).reshape(-1, *[1] * (x_t.ndim - 1))
        x0 = self.mean + a.sqrt() * self.std**2 / (a * self.std**2 + 1 - a) * (x_t - a.sqrt() * self.mean)
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        if self.prediction_type == "epsilon":
            return eps
        if self.prediction_type == "sample":
            return x0
        return a.sqrt() * eps - (1 - a).sqrt() * x0

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ToyGenerator:
    """A GAN-kind object: what a diffusion sampler must refuse."""

    kind = "gan"
    latent_shape = (8,)

    def generate(self, z: torch.Tensor, cond: Any = None, **options: Any) -> torch.Tensor:
        return z


class StochasticX0Generator(GaussianDenoiser):
    """A DDGAN-like x0 generator: E[x0 | x_t] plus noise it draws from the sampler's generator (z ~ N(0, I))."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(prediction_type="sample", **kwargs)

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: Any = None, generator: Any = None
    ) -> torch.Tensor:
        from zoo_core.seeding import randn

        z = randn(x_t.shape, generator, dtype=x_t.dtype)
        return super().predict(x_t, t, cond, generator) + 0.1 * z
