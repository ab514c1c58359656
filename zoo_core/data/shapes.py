"""Coloured shapes on coloured backgrounds with their captions: offline data for text-to-image models.

Every image is a pure function of (seed, index): one shape of one colour on a flat background of another colour,
with a little jitter of position and size, drawn with 4x4 supersampled anti-aliasing. The caption names all three
attributes ("a red circle on a blue background"), so a program can check whether a generated image shows what
its prompt asked for (``zoo_core.metrics.shapes_eval``, which knows this generator exactly).

Geometry, in units of the shape's radius ``r`` around its centre (``y`` grows downwards):
circle of radius 1; square of half-side 0.85; equilateral triangle pointing up with circumradius 1.15 around its
centroid; five-pointed star pointing up, outer radius 1.2, inner 0.5; plus-shaped cross, arms of half-length 1.0
and half-width 0.33. Every shape's centroid is its centre, which the evaluator relies on.

``NEW_SHAPES`` (a heart: the curve (x^2 + y^2 - 1)^3 = x^2 y^3 scaled by 0.9, shifted so its centroid is the
centre) can be drawn (``ShapesDataset(shapes=["heart"])``) but are not in ``SHAPES``, the default vocabulary the
embedded ``t2i`` model was trained on: concepts it has never seen, for DreamBooth and textual inversion.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
#: drawable and recognisable, but never in the default captions (see the module docstring)
NEW_SHAPES: tuple[str, ...] = ("heart",)
ALL_SHAPES: tuple[str, ...] = SHAPES + NEW_SHAPES
#: RGB in 0..255; far apart from each other so a blurry sample still names its colours unambiguously.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "white": (240, 240, 240),
    "black": (20, 20, 20),
}
COLORS: tuple[str, ...] = tuple(PALETTE)
BACKGROUNDS: tuple[str, ...] = COLORS

SUPERSAMPLE = 4
#: shape radius as a fraction of the image side, drawn uniformly from this range
RADIUS_RANGE = (0.22, 0.30)
#: largest centre offset from the image centre, as a fraction of the side (less if the shape would touch the border)
MAX_SHIFT = 0.12
#: how far each shape reaches from its centre, in radii (keeps a background border of at least one pixel)
EXTENT = {
    "circle": 1.0,
    "square": 0.85 * math.sqrt(2),
    "triangle": 1.15,
    "star": 1.2,
    "cross": math.hypot(1.0, 0.33),
    "heart": 1.17,
}

CAPTION_TEMPLATE = "a {color} {shape} on a {background} background"
_CAPTION_RE = re.compile(
    r"^\s*an?\s+(?P<color>[a-z]+)\s+(?P<shape>[a-z]+)\s+on\s+an?\s+(?P<background>[a-z]+)\s+background\s*\.?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ShapeSpec:
    """Everything that determines one image: attributes and placement (pixels, in the final image)."""

    shape: str
    color: str
    background: str
    cx: float
    cy: float
    radius: float

    @property
    def caption(self) -> str:
        return make_caption(self.shape, self.color, self.background)

    @property
    def attributes(self) -> dict[str, str]:
        return {"shape": self.shape, "color": self.color, "background": self.background}


def make_caption(shape: str, color: str, background: str) -> str:
    return CAPTION_TEMPLATE.format(shape=shape, color=color, background=background)


def parse_caption(caption: str) -> dict[str, str]:
    """ "a red circle on a blue background" -> {"shape": "circle", "color": "red", "background": "blue"}."""
    match = _CAPTION_RE.match(caption)
    if match is None:
        raise ValueError(
            f"Caption {caption!r} does not read 'a <color> <shape> on a <color> background' "
            f"(shapes: {', '.join(ALL_SHAPES)}; colours: {', '.join(COLORS)})"
        )
    parts = {k: v.lower() for k, v in match.groupdict().items()}
    for key, vocab in (("shape", ALL_SHAPES), ("color", COLORS), ("background", BACKGROUNDS)):
        if parts[key] not in vocab:
            raise ValueError(f"Caption {caption!r}: unknown {key} {parts[key]!r}; known: {', '.join(vocab)}")
    return {"shape": parts["shape"], "color": parts["color"], "background": parts["background"]}


# -- geometry (pure functions of pixel coordinates in radius units) ------------------------------------------------
def _regular_polygon(n_points: int, radii: Sequence[float]) -> np.ndarray:
    """Vertices of a polygon pointing up, alternating through ``radii`` (one radius: a regular polygon)."""
    count = n_points * len(radii)
    angles = -math.pi / 2 + 2 * math.pi * np.arange(count) / count
    r = np.array([radii[i % len(radii)] for i in range(count)])
    return np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)


TRIANGLE = _regular_polygon(3, [1.15])
STAR = _regular_polygon(5, [1.2, 0.5])
#: area of each shape at radius 1 (closed forms of the definitions above)
UNIT_AREA: dict[str, float] = {
    "circle": math.pi,
    "square": (2 * 0.85) ** 2,
    "triangle": 3 * math.sqrt(3) / 4 * 1.15**2,
    "star": 5 * 1.2 * 0.5 * math.sin(math.pi / 5),
    "cross": 2 * (2 * 1.0 * 2 * 0.33) - (2 * 0.33) ** 2,
    "heart": 3.66199 * 0.9**2,  # the unit curve's area (numerical), times the scale squared
}
HEART_SCALE = 0.9
#: height of the unit heart curve's centroid above its origin (numerical; checked by the tests)
HEART_CENTROID = 0.29348


def _inside_polygon(u: np.ndarray, v: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd ray casting, vectorised over points."""
    inside = np.zeros(u.shape, dtype=bool)
    x0, y0 = vertices[-1]
    for x1, y1 in vertices:
        crosses = (y1 > v) != (y0 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (v - y1) * (x0 - x1) / (y0 - y1)
        inside ^= crosses & (u < x_at)
        x0, y0 = x1, y1
    return inside


def inside_shape(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points (``u``, ``v``), in radius units around the centre, fall inside ``shape``."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85)
    if shape == "triangle":
        return _inside_polygon(u, v, TRIANGLE)
    if shape == "star":
        return _inside_polygon(u, v, STAR)
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 1.0) & (av <= 0.33)) | ((au <= 0.33) & (av <= 1.0))
    if shape == "heart":
        x, y = u / HEART_SCALE, -v / HEART_SCALE + HEART_CENTROID  # y up, origin moved to the centroid
        return (x * x + y * y - 1.0) ** 3 - x * x * y**3 <= 0.0
    raise ValueError(f"Unknown shape {shape!r}; known: {', '.join(ALL_SHAPES)}")


def coverage(
    shape: str,
    size: int | tuple[int, int],
    cx: float,
    cy: float,
    radius: float,
    supersample: int = SUPERSAMPLE,
) -> np.ndarray:
    """Share of each pixel covered by the shape: float32 [H, W] in [0, 1] for ``size`` = side or (H, W).

    Pixel ``(i, j)`` spans [j, j+1) x [i, i+1); it is sampled at ``supersample``^2 evenly spaced points.
    """
    height, width = (size, size) if isinstance(size, int) else size
    offsets = (np.arange(supersample) + 0.5) / supersample
    ys = (np.arange(height)[:, None] + offsets[None, :]).reshape(-1)
    xs = (np.arange(width)[:, None] + offsets[None, :]).reshape(-1)
    v, u = np.meshgrid((ys - cy) / radius, (xs - cx) / radius, indexing="ij")
    hits = inside_shape(shape, u, v).astype(np.float32)
    return hits.reshape(height, supersample, width, supersample).mean(axis=(1, 3))


def render(spec: ShapeSpec, size: int) -> np.ndarray:
    """The image of ``spec``: float32 [3, size, size] in [-1, 1]."""
    alpha = coverage(spec.shape, size, spec.cx, spec.cy, spec.radius)[None]
    fg = np.asarray(PALETTE[spec.color], dtype=np.float32)[:, None, None] / 127.5 - 1.0
    bg = np.asarray(PALETTE[spec.background], dtype=np.float32)[:, None, None] / 127.5 - 1.0
    return (bg * (1.0 - alpha) + fg * alpha).astype(np.float32)


def draw_spec(
    index: int,
    size: int,
    seed: int = 0,
    shapes: Sequence[str] = SHAPES,
    colors: Sequence[str] = COLORS,
    backgrounds: Sequence[str] = BACKGROUNDS,
) -> ShapeSpec:
    """The attributes and placement of image ``index``: a pure function of (seed, index) and the vocabularies."""
    rng = np.random.default_rng([seed, index])
    shape = shapes[int(rng.integers(len(shapes)))]
    color = colors[int(rng.integers(len(colors)))]
    others = [b for b in backgrounds if b != color]
    background = others[int(rng.integers(len(others)))]
    radius = float(rng.uniform(*RADIUS_RANGE)) * size
    room = size / 2 - EXTENT[shape] * radius - 1.0
    shift = max(0.0, min(MAX_SHIFT * size, room))
    cx, cy = (size / 2 + rng.uniform(-shift, shift, size=2)).tolist()
    return ShapeSpec(shape, color, background, cx, cy, radius)


def _check_vocab(name: str, chosen: Sequence[str], vocab: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(chosen)
    unknown = [c for c in chosen if c not in vocab]
    if unknown or not chosen:
        raise ValueError(f"{name} must be a non-empty subset of {', '.join(vocab)}; got {list(chosen)}")
    return chosen


class ShapesDataset(Dataset):
    """``length`` procedural images: item ``i`` is (image [3, size, size] in [-1, 1], caption, attributes).

    ``shapes``, ``colors`` and ``backgrounds`` restrict the vocabularies (a smaller task for a tiny model); the
    shape's colour always differs from the background. Items are computed on demand and identical on every run.
    """

    def __init__(
        self,
        length: int = 10_000,
        size: int = 32,
        *,
        seed: int = 0,
        shapes: Sequence[str] = SHAPES,
        colors: Sequence[str] = COLORS,
        backgrounds: Sequence[str] = BACKGROUNDS,
    ) -> None:
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        if not isinstance(size, int) or size < 16:
            raise ValueError(f"size must be an integer >= 16 (32 to 64 works best), got {size!r}")
        self.length, self.size, self.seed = length, size, seed
        self.shapes = _check_vocab("shapes", shapes, ALL_SHAPES)
        self.colors = _check_vocab("colors", colors, COLORS)
        self.backgrounds = _check_vocab("backgrounds", backgrounds, BACKGROUNDS)
        if len(self.backgrounds) == 1 and self.backgrounds[0] in self.colors:
            raise ValueError(
                f"the only background, {self.backgrounds[0]!r}, is also a shape colour: a {self.backgrounds[0]} "
                "shape would be invisible; give another background or drop that colour"
            )

    def __len__(self) -> int:
        return self.length

    def spec(self, index: int) -> ShapeSpec:
        return draw_spec(index, self.size, self.seed, self.shapes, self.colors, self.backgrounds)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str, dict[str, str]]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} images")
        spec = self.spec(index % self.length)
        return torch.from_numpy(render(spec, self.size)), spec.caption, spec.attributes

    def as_tensors(self, n: int | None = None) -> tuple[torch.Tensor, list[str], list[dict[str, str]]]:
        """The first ``n`` items (default all) as (images [n, 3, size, size], captions, attributes)."""
        n = self.length if n is None else min(n, self.length)
        items = [self[i] for i in range(n)]
        return torch.stack([x for x, _, _ in items]), [c for _, c, _ in items], [a for _, _, a in items]

    def __repr__(self) -> str:
        return f"ShapesDataset(length={self.length}, size={self.size}, seed={self.seed})"


class ShapesStream(IterableDataset):
    """The same images without end: index 0, 1, 2, ... (split across DataLoader workers without overlap)."""

    def __init__(self, size: int = 32, *, seed: int = 0, start: int = 0, **vocab: Sequence[str]) -> None:
        self.dataset = ShapesDataset(1, size, seed=seed, **vocab)
        self.start = start

    def __iter__(self) -> Iterator[tuple[torch.Tensor, str, dict[str, str]]]:
        info = get_worker_info()
        step, index = (1, self.start) if info is None else (info.num_workers, self.start + info.id)
        d = self.dataset
        while True:
            spec = draw_spec(index, d.size, d.seed, d.shapes, d.colors, d.backgrounds)
            yield torch.from_numpy(render(spec, d.size)), spec.caption, spec.attributes
            index += step
