"""Toy Denoisers for the sampler tests: small, deterministic, and cheap enough to run every sampler many times.

- ``ToyDenoiser``: a fixed random linear map of x_t, modulated by smooth functions of t, plus an optional class
  embedding; it predicts whatever ``prediction_type`` says (the samplers only see numbers).
- ``GaussianDenoiser``: the exact posterior-mean denoiser of data x0 ~ N(mu, s^2 I), so samples of a correct sampler
  have mean mu and std s, and DDIM inversion is (nearly) exact.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zoo_core.schedule import NoiseSchedule


def _alpha_bar(sigmas: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """a = 1 / (1 + sigma^2) at (fractional) timesteps, sigma interpolated linearly as NoiseSchedule.sigma_at does
    (re-implemented on a cached table: the toys are called thousands of times)."""
    t = t.double().clamp(0, len(sigmas) - 1)
    low = t.floor().long().clamp(max=len(sigmas) - 2)
    sigma = torch.lerp(sigmas[low], sigmas[low + 1], t - low)
    return 1 / (1 + sigma**2)


class ToyDenoiser:
    kind = "diffusion"

    def __init__(
        self,
        prediction_type: str = "epsilon",
        schedule: NoiseSchedule | None = None,
        shape: tuple[int, ...] = (2, 4, 4),
        dtype: torch.dtype = torch.float32,
        num_classes: int = 0,
        seed: int = 0,
    ) -> None:
        self.prediction_type = prediction_type
        self.schedule = schedule or NoiseSchedule()
        self._shape = tuple(shape)
        self.dtype, self.device = dtype, torch.device("cpu")
        g = torch.Generator().manual_seed(seed)
        dim = math.prod(shape)
        self.weight = (torch.randn(dim, dim, generator=g, dtype=torch.float64) * 0.5 / dim**0.5).to(dtype)
        self.bias = (torch.randn(dim, generator=g, dtype=torch.float64) * 0.3).to(dtype)
        self.embedding = (torch.randn(num_classes + 1, dim, generator=g, dtype=torch.float64) * 0.5).to(dtype)
        self.calls: list[int] = []  # batch size of every forward, to count them
        self._sigmas = self.schedule.sigmas

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self._shape

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: Any = None, generator: Any = None
    ) -> torch.Tensor:
        assert x_t.dtype == self.dtype and t.shape == (x_t.shape[0],)
        self.calls.append(x_t.shape[0])
        # near the exact denoiser of N(0, I) data (eps = sqrt(1 - a) x_t), plus a t-modulated linear perturbation
        # scaled by sqrt(a) so that x0_hat stays O(1) at every noise level
        a = _alpha_bar(self._sigmas, t).to(self.dtype)[:, None]
        s = t.to(self.dtype)[:, None] / self.schedule.num_train_timesteps
        x = x_t.flatten(1)
        wiggle = (x @ self.weight.T) * (1 + 0.5 * torch.cos(math.pi * s)) + self.bias * torch.sin(3 * s)
        if cond is not None:
            wiggle = wiggle + self.embedding[cond] * (0.5 + s)
        return ((1 - a).sqrt() * x + a.sqrt() * wiggle).reshape(x_t.shape)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x


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
