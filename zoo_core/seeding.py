"""Seeds and noise: the same seed gives the same images on the same device and dtype, whatever the batch size.

``seed`` may be an int, a ``torch.Generator``, a list of either (one per image), or None (fresh entropy). Noise is
drawn on the CPU and then moved, so a seed means the same starting noise on every device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Seed = int | torch.Generator | Sequence[int | torch.Generator] | None
GeneratorLike = torch.Generator | list[torch.Generator] | None


def make_generator(seed: Seed, n: int) -> GeneratorLike:
    """Turn a user's ``seed`` into one CPU generator, or a list of ``n`` (one per image)."""
    if seed is None:
        return None
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, int):
        return torch.Generator("cpu").manual_seed(seed)
    seeds = list(seed)
    if len(seeds) != n:
        raise ValueError(
            f"seed is a list of {len(seeds)} entries but {n} images were asked for: give one per image"
        )
    return [
        s if isinstance(s, torch.Generator) else torch.Generator("cpu").manual_seed(int(s)) for s in seeds
    ]


def randn(
    shape: Sequence[int],
    generator: GeneratorLike = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise of ``shape``; with a list of generators, row ``i`` comes from generator ``i``."""
    shape = tuple(shape)
    if isinstance(generator, list):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
        rows = [_draw((1, *shape[1:]), g) for g in generator]
        noise = torch.cat(rows, dim=0)
    else:
        noise = _draw(shape, generator)
    return noise.to(device=device or "cpu", dtype=dtype)


def _draw(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=device, dtype=torch.float32)


def randn_like(x: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:
    return randn(x.shape, generator, device=x.device, dtype=x.dtype)
