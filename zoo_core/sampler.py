"""The Sampler interface: one uniform call signature, no state kept between calls.

A sampler turns a model (a Denoiser for diffusion-like models, a Generator for GANs) plus noise into samples in the
model's sampling space. Samplers are plugins: any registered sampler runs any model of a kind it supports; for
diffusion models the core converts between epsilon, x0 and v (``zoo_core.prediction``), so every diffusion sampler
runs every diffusion model: DDIM runs a DDPM model, DDGAN's x0 generator, a latent text-to-image model, or a third
party's model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from zoo_core.errors import SamplerError
from zoo_core.prediction import check_prediction_type
from zoo_core.seeding import GeneratorLike

KIND_NAMES = {
    "diffusion": "diffusion models (Denoisers, any prediction type)",
    "gan": "GAN generators (one forward pass)",
}

# Called after every step with (step_index, timestep, current x); return value ignored.
StepCallback = Callable[[int, Any, torch.Tensor], None]


@dataclass(frozen=True)
class SamplerOption:
    """What ``zoo samplers`` and ``zoo sample NAME --help`` say about one sampler option.

    ``default`` is the value the sampler uses when the option is not given; ``default_text`` says it in words when
    it comes from elsewhere (None: "the schedule's", the model's config).
    """

    help: str
    default: Any = None
    default_text: str | None = None

    def shown_default(self) -> str:
        return self.default_text if self.default_text is not None else repr(self.default)


class Sampler(ABC):
    """Base class of samplers. Subclasses set the class attributes and implement ``__call__``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: model kinds this sampler runs: "diffusion" (the Denoiser protocol) and/or "gan" (the Generator protocol)
    kinds: ClassVar[tuple[str, ...]] = ("diffusion",)
    #: extra keyword options ``__call__`` accepts (e.g. ``eta``); ``Model.sample`` routes these to the sampler
    options: ClassVar[frozenset[str]] = frozenset()
    #: default and help of the options (a subclass's entries add to its bases'); see ``describe_options``
    option_info: ClassVar[Mapping[str, SamplerOption]] = {}
    #: steps when neither the call nor the card says
    default_steps: ClassVar[int | None] = 50

    @classmethod
    def describe_options(cls) -> dict[str, SamplerOption]:
        """Every name in ``options`` with its default and help, from ``option_info`` along the class hierarchy; an
        option a (third-party) sampler left undocumented gets an empty help."""
        info: dict[str, SamplerOption] = {}
        for klass in reversed(cls.__mro__):
            info.update(vars(klass).get("option_info", {}))
        return {name: info.get(name, SamplerOption("", default_text="?")) for name in sorted(cls.options)}

    def supports(self, model: Any) -> bool:
        """Whether this sampler runs ``model``: its kind is one of ``kinds`` (for a diffusion model the core
        converts between epsilon, x0 and v, so the prediction type never matters)."""
        return getattr(model, "kind", None) in self.kinds

    def check(self, model: Any) -> None:
        """Raise a one-line SamplerError saying why this sampler cannot run ``model``."""
        kind = getattr(model, "kind", None)
        if not self.supports(model):
            raise SamplerError(
                f"Sampler {self.name!r} cannot run a {kind!r} model ({type(model).__name__}): it runs "
                f"{' and '.join(KIND_NAMES.get(k, repr(k)) for k in self.kinds)}; run `zoo samplers` to see which "
                "sampler fits."
            )
        if kind == "diffusion":
            try:
                check_prediction_type(model.prediction_type)
            except SamplerError as exc:
                raise SamplerError(
                    f"Sampler {self.name!r} cannot run {type(model).__name__}: {exc}"
                ) from None

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
