"""One-shot sampling for generators (GANs): draw z from the seed, one forward pass.

Options are passed through to the model's ``generate`` (e.g. ``truncation_psi`` and ``noise_mode`` for StyleGAN).
"""

from __future__ import annotations

from typing import Any

import torch

from zoo_core.errors import SamplerError
from zoo_core.sampler import Sampler, SamplerOption, StepCallback
from zoo_core.seeding import GeneratorLike, randn


class GANSampler(Sampler):
    name = "gan"
    description = "one forward pass of a generator: z ~ N(0, I) -> G(z, c)"
    kinds = ("gan",)
    options = frozenset({"truncation_psi", "truncation_cutoff", "noise_mode", "mix_seed", "mix_layer"})
    option_info = {
        "truncation_psi": SamplerOption(
            "pull w toward the mean w: 1 none, 0.7 typical, 0 the mean image", 1.0
        ),
        "truncation_cutoff": SamplerOption("truncate only the first this many layers", None, "all layers"),
        "noise_mode": SamplerOption("per-layer noise: const (stored), random or none", "const"),
        "mix_seed": SamplerOption("style mixing: seed of a second latent", None, "no mixing"),
        "mix_layer": SamplerOption(
            "style mixing: ws from this index on come from the second latent", None, "half of the ws"
        ),
    }
    default_steps = 1

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
        if steps not in (None, 1):
            raise SamplerError(
                f"Sampler 'gan' makes one forward pass; steps must be 1 or omitted, got {steps}"
            )
        z = x_T if x_T is not None else randn(shape, generator, device=model.device, dtype=torch.float32)
        if tuple(z.shape) != tuple(shape):
            raise SamplerError(f"x_T has shape {tuple(z.shape)}, expected {tuple(shape)}")
        images = model.generate(z, cond, generator=generator, **options)
        if callback is not None:
            callback(0, None, images)
        return images
