"""Real handwritten digits, offline: ``sklearn.datasets.load_digits`` upsampled for the embedded models.

The UCI optical-recognition digits ship inside scikit-learn (1797 images, 8x8, 17 gray levels 0..16, 10 classes),
so they need no download. They are upsampled with bicubic interpolation, clamped: at 8x8 there is no detail
to preserve, and bicubic gives crisper, more pen-like strokes than bilinear (which looks blurred at 16 px and
more so at 32); its overshoot is clipped to the valid range. Pixels are scaled to [-1, 1], one channel.

The train/test split is stratified by class and seeded, so it is the same on every machine: the digit
classifier (``zoo_core.metrics.digit_classifier``) is trained on ``split="train"`` and measured on ``"test"``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

NUM_CLASSES = 10
SOURCE_SIZE = 8
Split = Literal["train", "test", "all"]
Interpolation = Literal["bicubic", "bilinear", "nearest"]


@lru_cache(maxsize=1)
def _load_raw() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [1797, 8, 8] in 0..16, labels int64 [1797]) from scikit-learn, read once per process."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "The digits dataset comes from scikit-learn, an optional dependency of zoo: "
            "pip install scikit-learn"
        ) from None
    bunch = load_digits()
    images = bunch.images.astype(np.uint8)
    images.setflags(write=False)
    labels = bunch.target.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def split_indices(labels: np.ndarray, split: Split, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Indices of ``split`` in a class-stratified, seeded split: each class gives ``test_fraction`` to test."""
    if split == "all":
        return np.arange(len(labels))
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(members) * test_fraction))
        chosen.append(members[:n_test] if split == "test" else members[n_test:])
    return np.sort(np.concatenate(chosen))


def upsample(images: torch.Tensor, size: int, interpolation: Interpolation = "bicubic") -> torch.Tensor:
    """[N, 1, h, w] in [0, 1] -> [N, 1, size, size] in [0, 1] (bicubic overshoot clamped)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    kwargs = {} if interpolation == "nearest" else {"align_corners": False}
    antialias = interpolation != "nearest" and size < images.shape[-1]
    if antialias:
        kwargs["antialias"] = True
    return F.interpolate(images, size=(size, size), mode=interpolation, **kwargs).clamp(0.0, 1.0)


class DigitsDataset(Dataset):
    """The sklearn digits as (image [1, size, size] in [-1, 1], label) pairs, held in memory.

    ``split`` is "train", "test" or "all"; ``test_fraction`` and ``seed`` fix the stratified split.
    """

    num_classes = NUM_CLASSES
    channels = 1

    def __init__(
        self,
        size: int = 16,
        split: Split = "all",
        *,
        test_fraction: float = 0.2,
        seed: int = 0,
        interpolation: Interpolation = "bicubic",
    ) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        raw_images, raw_labels = _load_raw()
        self.indices = split_indices(raw_labels, split, test_fraction, seed)
        self.size, self.split, self.seed, self.test_fraction = size, split, seed, test_fraction
        x = torch.from_numpy(raw_images[self.indices].astype(np.float32) / 16.0)[:, None]
        self.images = upsample(x, size, interpolation) * 2.0 - 1.0
        self.labels = torch.from_numpy(raw_labels[self.indices].copy())

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def as_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images float32 [N, 1, size, size] in [-1, 1], labels int64 [N]) for fast in-memory training."""
        return self.images, self.labels

    def __repr__(self) -> str:
        return f"DigitsDataset(size={self.size}, split={self.split!r}, n={len(self)}, seed={self.seed})"
