"""The Sampler interface: one uniform call signature, no state kept between calls.

A sampler turns a model (a Denoiser for diffusion-like models, a Generator for GANs) plus noise into samples in the
model's sampling space. Samplers are plugins: any registered sampler can run any model whose kind and prediction
type it supports, so the DDIM sampler runs a DDPM model, a latent text-to-image model, or a third party's model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from zoo_core.errors import SamplerError
from zoo_core.seeding import GeneratorLike

# Called after every step with (step_index, timestep, current x); return value ignored.
StepCallback = Callable[[int, Any, torch.Tensor], None]


class Sampler(ABC):
    """Base class of samplers. Subclasses set the class attributes and implement ``__call__``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: model kinds this sampler runs: "diffusion" (the Denoiser protocol) and/or "gan" (the Generator protocol)
    kinds: ClassVar[tuple[str, ...]] = ("diffusion",)
    #: for diffusion models, the prediction types it understands
    prediction_types: ClassVar[tuple[str, ...]] = ("epsilon", "sample", "v_prediction")
    #: extra keyword options ``__call__`` accepts (e.g. ``eta``); ``Model.sample`` routes these to the sampler
    options: ClassVar[frozenset[str]] = frozenset()
    #: steps when neither the call nor the card says
    default_steps: ClassVar[int | None] = 50

    def supports(self, model: Any) -> bool:
        kind = getattr(model, "kind", None)
        if kind not in self.kinds:
            return False
        return kind != "diffusion" or getattr(model, "prediction_type", None) in self.prediction_types

    def check(self, model: Any) -> None:
        """Raise a SamplerError that names what this sampler supports when it cannot run ``model``."""
        if self.supports(model):
            return
        kind = getattr(model, "kind", None)
        what = (
            f"a {kind!r} model"
            if kind != "diffusion"
            else f"a diffusion model predicting {model.prediction_type!r}"
        )
        supported = ", ".join(self.kinds)
        if "diffusion" in self.kinds:
            supported += f" (prediction types: {', '.join(self.prediction_types)})"
        raise SamplerError(
            f"Sampler {self.name!r} cannot run {what} ({type(model).__name__}); it supports: {supported}. "
            "Run `zoo samplers` to see which sampler fits."
        )

    @abstractmethod
    def __call__(
        self,
        model: Any,
        shape: tuple[int, ...],
        *,
        steps: int | None = None,
        generator: GeneratorLike = None,
        cond: Any = None,
        x_T: torch.Tensor | None = None,
        callback: StepCallback | None = None,
        progress: bool = False,
        **options: Any,
    ) -> torch.Tensor:
        """Draw ``shape[0]`` samples of ``shape`` in the model's sampling space (latents for latent models).

        ``x_T`` replaces the initial noise (its shape must equal ``shape``); ``generator`` seeds every random draw.
        """
