"""Conversions between model tensors in [-1, 1] and images people look at."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from PIL import Image


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C]."""
    if x.ndim != 4:
        raise ValueError(f"expected images [N, C, H, W], got shape {tuple(x.shape)}")
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def to_pil(x: torch.Tensor) -> list[Image.Image]:
    from PIL import Image

    arrays = to_uint8(x)
    return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arrays]


def from_pil(images: list[Image.Image], size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """PIL images -> [N, C, H, W] float in [-1, 1] (RGB unless every image is grayscale)."""
    mode = "L" if all(im.mode == "L" for im in images) else "RGB"
    arrays = []
    for im in images:
        im = im.convert(mode)
        if size is not None:
            im = im.resize((size, size) if isinstance(size, int) else size[::-1])
        a = np.asarray(im, dtype=np.float32)
        arrays.append(a[..., None] if a.ndim == 2 else a)
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return x / 127.5 - 1


def make_grid(x: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile N images into one uint8 [H, W, C] array, ``nrow`` per row (default: a near-square grid)."""
    return tile(to_uint8(x), nrow, padding)


def tile(images: np.ndarray, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile uint8 images [N, H, W, C] into one [H', W', C] array on a white background."""
    n, h, w, c = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top : top + h, left : left + w] = image
    return grid


def save_grid(x: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Write a PNG grid of ``x``; ``scale`` enlarges small images with nearest-neighbour so pixels stay sharp."""
    from PIL import Image

    grid = make_grid(x, nrow)
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
