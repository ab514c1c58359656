"""Prompt adherence on the shapes dataset, read straight off the pixels (we know the generator exactly).

For each image: the background colour is the median of the border pixels (the generator keeps a background
border); foreground pixels are those far from it, and the shape colour is the median of the half of them farthest
from the background (anti-aliased edge pixels are mixtures and are left out). Both colours are named by the
nearest palette entry. The shape is the template that best overlaps the foreground mask: for every candidate
shape, its radius follows from the mask's area and its centre from the mask's centroid (every shape's centroid is
its centre), and the template drawn there is compared with the mask by intersection over union.

``evaluate_shapes_samples(images, captions)`` scores a batch of generated images against the captions they were
prompted with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zoo_core.data.shapes import BACKGROUNDS, COLORS, PALETTE, SHAPES, UNIT_AREA, coverage, parse_caption


@dataclass(frozen=True)
class ShapeReading:
    """What one image shows, as read from its pixels; ``shape_iou`` is the overlap of the best template."""

    shape: str | None
    color: str | None
    background: str
    shape_iou: float

    @property
    def attributes(self) -> dict[str, str | None]:
        return {"shape": self.shape, "color": self.color, "background": self.background}


def _nearest_color(rgb: np.ndarray, names: Sequence[str] = COLORS) -> str:
    table = np.array([PALETTE[c] for c in names], dtype=np.float32) / 255.0
    return names[int(np.argmin(((table - rgb) ** 2).sum(axis=1)))]


def read_image(image: np.ndarray, min_contrast: float = 0.25) -> ShapeReading:
    """Read (shape, colour, background) from one image, float [3, H, W] in [-1, 1].

    ``min_contrast`` is the RGB distance (in [0, 1] units) from the background above which a pixel counts as
    foreground; the palette's closest two colours are ~0.6 apart.
    """
    rgb = (np.clip(np.asarray(image, dtype=np.float32), -1, 1) + 1) / 2
    channels, height, width = rgb.shape
    if channels != 3:
        raise ValueError(f"shapes images have 3 channels, got {channels}")
    border = np.concatenate([rgb[:, 0, :], rgb[:, -1, :], rgb[:, 1:-1, 0], rgb[:, 1:-1, -1]], axis=1)
    bg = np.median(border, axis=1)
    background = _nearest_color(bg, BACKGROUNDS)
    pixels = rgb.reshape(3, -1).T
    distance = np.sqrt(((pixels - bg) ** 2).sum(axis=1))
    far = distance > min_contrast
    if not far.any():
        return ShapeReading(None, None, background, 0.0)
    core = far & (distance >= np.median(distance[far]))
    fg = np.median(pixels[core], axis=0)
    # A pixel belongs to the shape when it is nearer the shape colour than the background colour; one more pass
    # re-estimates the shape colour from that mask (robust to stray noisy background pixels).
    mask = ((pixels - fg) ** 2).sum(axis=1) < ((pixels - bg) ** 2).sum(axis=1)
    if mask.sum() >= 4:
        fg = np.median(pixels[mask], axis=0)
        mask = ((pixels - fg) ** 2).sum(axis=1) < ((pixels - bg) ** 2).sum(axis=1)
    color = _nearest_color(fg)
    mask = mask.reshape(height, width)
    area = float(mask.sum())
    if area < 4:
        return ShapeReading(None, color, background, 0.0)
    ys, xs = np.nonzero(mask)
    cx, cy = xs.mean() + 0.5, ys.mean() + 0.5  # pixel (i, j) is centred at (j + 0.5, i + 0.5)
    best, best_iou = None, -1.0
    for shape in SHAPES:
        radius = np.sqrt(area / UNIT_AREA[shape])
        template = coverage(shape, (height, width), cx, cy, radius, supersample=1) > 0.5
        iou = float((template & mask).sum()) / float((template | mask).sum())
        if iou > best_iou:
            best, best_iou = shape, iou
    return ShapeReading(best, color, background, best_iou)


def read_images(images: torch.Tensor | np.ndarray) -> list[ShapeReading]:
    """``read_image`` over a batch [N, 3, H, W] in [-1, 1]."""
    array = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim != 4:
        raise ValueError(f"expected images [N, 3, H, W], got shape {tuple(array.shape)}")
    return [read_image(a) for a in array]


def evaluate_shapes_samples(
    images: torch.Tensor | np.ndarray, captions: Sequence[str] | Sequence[dict[str, str]]
) -> dict[str, Any]:
    """Share of images whose shape / colour / background / all three match their caption.

    ``captions`` are the prompts ("a red circle on a blue background") or attribute dicts, one per image.
    Also returns the mean IoU of the best shape template (how clean the shapes are) and the attribute
    histograms of what was drawn.
    """
    readings = read_images(images)
    if len(captions) != len(readings):
        raise ValueError(f"{len(readings)} images but {len(captions)} captions: give one caption per image")
    wanted = [c if isinstance(c, dict) else parse_caption(c) for c in captions]
    keys = ("shape", "color", "background")
    hits = {
        k: np.array([r.attributes[k] == w[k] for r, w in zip(readings, wanted, strict=True)]) for k in keys
    }
    all_three = hits["shape"] & hits["color"] & hits["background"]
    histogram = {
        k: {name: sum(r.attributes[k] == name for r in readings) for name in vocab}
        for k, vocab in zip(keys, (SHAPES, COLORS, BACKGROUNDS), strict=True)
    }
    return {
        "n": len(readings),
        "shape_accuracy": float(hits["shape"].mean()),
        "color_accuracy": float(hits["color"].mean()),
        "background_accuracy": float(hits["background"].mean()),
        "all_accuracy": float(all_three.mean()),
        "mean_shape_iou": float(np.mean([r.shape_iou for r in readings])),
        "unreadable": sum(r.shape is None for r in readings),
        "histogram": histogram,
    }
