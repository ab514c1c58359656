"""Denoising Diffusion GAN (Xiao, Kreis, Vahdat, ICLR 2022; NVlabs/denoising-diffusion-gan).

A diffusion model with few, large denoising steps (T = 4 on CIFAR-10). Over a large step q(x_{t-1} | x_t) is far
from Gaussian, so DDGAN models it with a conditional GAN: the generator predicts x0' = G(x_t, t, z) from a latent
z ~ N(0, I) and x_{t-1} is drawn from the posterior q(x_{t-1} | x_t, x0'). As a zoo Denoiser it predicts the
``sample`` (x0) and draws z itself from the sampler's generator, so the same seed gives the same images; any
sampler that takes x0 predictions can run it, the ``ddgan`` posterior sampler is the paper's.

The model holds only the generator (keys ``generator.*`` = the official ``netG`` keys); the time-dependent
discriminator lives in ``zoo_ddgan.discriminator`` for training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from zoo_core.model import Model
from zoo_core.schedule import NoiseSchedule
from zoo_core.seeding import GeneratorLike, randn
from zoo_ddgan.config import DDGANConfig
from zoo_ddgan.ncsnpp import NCSNpp
from zoo_ddgan.schedule import noise_schedule


class DDGANModel(Model):
    """The DDGAN generator as a Denoiser: ``predict(x_t, t)`` = G(x_t, t, z) with z drawn from ``generator``."""

    architecture: ClassVar[str] = "ddgan.ncsnpp"
    config_class: ClassVar[type[DDGANConfig]] = DDGANConfig
    kind: ClassVar[str] = "diffusion"
    prediction_type: ClassVar[str] = "sample"
    #: diffusers has no DDGAN pipeline; "official" is NVlabs' netG checkpoint (the ddgan-official converter)
    export_formats: ClassVar[tuple[str, ...]] = ("zoo", "official")
    default_sampler: str | None = "ddgan"
    config: DDGANConfig

    def __init__(self, config: DDGANConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.generator = NCSNpp(self.config)
        self.default_steps = self.config.num_timesteps
        self._schedule = noise_schedule(self.config)

    @property
    def schedule(self) -> NoiseSchedule:
        return self._schedule

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (self.config.num_channels, self.config.image_size, self.config.image_size)

    @property
    def latent_dim(self) -> int:
        return self.config.nz

    def draw_latent(self, batch: int, generator: GeneratorLike = None) -> torch.Tensor:
        """z ~ N(0, I) [batch, nz], drawn on the CPU from ``generator`` (one per image with a list)."""
        return randn((batch, self.config.nz), generator, device=self.device, dtype=self.dtype)

    def predict(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        cond: Any = None,
        generator: GeneratorLike = None,
        *,
        z: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x0' = G(x_t, t, z): ``z`` as given, else drawn from ``generator``. ``cond`` is unused (unconditional)."""
        expected = self.sample_shape
        if tuple(x_t.shape[1:]) != expected:
            raise ValueError(
                f"x_t must have shape [B, {', '.join(map(str, expected))}], got {tuple(x_t.shape)}"
            )
        if z is None:
            z = self.draw_latent(x_t.shape[0], generator)
        t = torch.as_tensor(t, device=x_t.device)
        return self.generator(x_t, t, z.to(device=x_t.device, dtype=x_t.dtype))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """G(x_t, t, z), for training."""
        return self.generator(x_t, t, z)
