"""The Denoiser protocol: what a diffusion-like model exposes so that any sampler can run it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import torch

from zoo_core.seeding import GeneratorLike

if TYPE_CHECKING:
    from zoo_core.schedule import NoiseSchedule

PredictionType = Literal["epsilon", "sample", "v_prediction"]


@runtime_checkable
class Denoiser(Protocol):
    """A model of ``x_0`` given a noisy ``x_t``.

    - ``kind`` is ``"diffusion"``.
    - ``schedule`` holds the training noise schedule (betas over ``num_train_timesteps``) and the scheduler defaults
      (clip_sample, variance_type, timestep_spacing, steps_offset) that a published checkpoint was trained with.
    - ``prediction_type`` says what ``predict`` returns: the noise (``epsilon``), ``x_0`` (``sample``), or ``v``.
    - ``sample_shape`` is the per-image shape in the space samplers work in (latents for latent models).
    - ``predict(x_t, t, cond, generator)``: ``x_t`` [B, *sample_shape], ``t`` a float or int tensor [B] of training
      timesteps (fractional values are allowed, as Karras-sigma samplers need them). ``generator`` feeds
      stochastic denoisers (a DDGAN generator draws its latent z from it); deterministic ones ignore it.
    - ``decode(x)`` maps sampler space to images in [-1, 1] (identity for pixel models, the VAE for latent ones).
    """

    kind: str
    schedule: NoiseSchedule
    prediction_type: PredictionType

    @property
    def sample_shape(self) -> tuple[int, ...]: ...

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: Any = None, generator: GeneratorLike = None
    ) -> torch.Tensor: ...

    def decode(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Generator(Protocol):
    """A one-shot generator (GANs): ``generate(z, cond)`` maps latents [B, *latent_shape] to images in [-1, 1]."""

    kind: str

    @property
    def latent_shape(self) -> tuple[int, ...]: ...

    def generate(self, z: torch.Tensor, cond: Any = None, **options: Any) -> torch.Tensor: ...
