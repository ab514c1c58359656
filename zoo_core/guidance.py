"""Classifier-free guidance (Ho & Salimans 2022) as one wrapper around any Denoiser, so every sampler gets it.

    out = out_u + w (out_c - out_u)

on the model's own output (eps or v), with out_u and out_c from ONE batched forward over [uncond, cond]. With
``rescale`` = phi > 0 the guided output is pulled back toward the conditional one's standard deviation
(Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed", eq. 15-16; diffusers'
``guidance_rescale``):  out = phi * out * std(out_c) / std(out) + (1 - phi) * out,  std per sample.

A scale w <= 1 means no guidance: one conditional forward (w = 1 is the conditional model itself; diffusers also
switches guidance off for w <= 1).
"""

from __future__ import annotations

from typing import Any

import torch

from zoo_core.conditioner import Conditioning, concat_conditioning
from zoo_core.seeding import GeneratorLike


def guide(out_u: torch.Tensor, out_c: torch.Tensor, scale: float, rescale: float = 0.0) -> torch.Tensor:
    """The guided prediction from the unconditional and conditional ones (pure function)."""
    guided = out_u + scale * (out_c - out_u)
    if rescale > 0:
        dims = list(range(1, out_c.ndim))
        factor = out_c.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True)
        guided = rescale * (guided * factor) + (1 - rescale) * guided
    return guided


class ClassifierFreeGuidance:
    """A Denoiser that answers ``predict`` with the guided prediction of ``model``.

    ``uncond`` is the null conditioning (``Conditioner.null(n)``), batched like the ``cond`` given to ``predict``.
    Everything else (schedule, prediction_type, sample_shape, decode, device, dtype) is the wrapped model's.
    """

    kind = "diffusion"

    def __init__(self, model: Any, uncond: Conditioning, scale: float, rescale: float = 0.0) -> None:
        if not isinstance(scale, (int, float)) or isinstance(scale, bool):
            raise ValueError(f"guidance scale must be a number, got {scale!r}")
        if not 0 <= rescale <= 1:
            raise ValueError(f"guidance rescale must be in [0, 1], got {rescale!r}")
        if getattr(model, "kind", None) != "diffusion":
            raise ValueError(
                f"classifier-free guidance wraps a diffusion model (a Denoiser), got {type(model).__name__}"
            )
        self.model, self.uncond, self.scale, self.rescale = model, uncond, float(scale), float(rescale)

    @property
    def enabled(self) -> bool:
        return self.scale > 1

    @property
    def schedule(self) -> Any:
        return self.model.schedule

    @property
    def prediction_type(self) -> str:
        return self.model.prediction_type

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.model.sample_shape

    @property
    def device(self) -> torch.device:
        return getattr(self.model, "device", torch.device("cpu"))

    @property
    def dtype(self) -> torch.dtype:
        return getattr(self.model, "dtype", torch.float32)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.decode(x)

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: Any = None, generator: GeneratorLike = None
    ) -> torch.Tensor:
        if not self.enabled:
            return self.model.predict(x_t, t, cond, generator)
        both = self.model.predict(
            torch.cat([x_t, x_t]), torch.cat([t, t]), concat_conditioning(self.uncond, cond), generator
        )
        out_u, out_c = both.chunk(2)
        return guide(out_u, out_c, self.scale, self.rescale)

    def __getattr__(self, name: str) -> Any:
        # anything else a sampler or caller asks for (config, card, ...) is the wrapped model's
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    def __repr__(self) -> str:
        return (
            f"ClassifierFreeGuidance({type(self.model).__name__}, scale={self.scale}, rescale={self.rescale})"
        )
