"""The dataset a training config names: ``digits`` (offline, from scikit-learn) or a folder of images.

``digits`` is the training split of ``zoo_core.data.digits`` (the test split stays unseen, for metrics).

When ``zoo_core.data`` provides a dataset registry (``get_dataset``), names resolve through it first; this
module adds only what the loop needs meanwhile, an image-folder dataset and the built-in ``digits``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from zoo_core.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
BUILTIN = ("digits",)


class ImageFolder(Dataset):
    """Every image under ``root`` (recursively, sorted), as [C, size, size] in [-1, 1]; read lazily."""

    def __init__(self, root: str | os.PathLike[str], size: int | None = None, channels: int = 3) -> None:
        self.root = Path(root)
        self.paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise ConfigError(f"No images ({', '.join(IMAGE_SUFFIXES)}) under {os.fspath(root)!r}")
        if channels not in (1, 3):
            raise ConfigError(f"An image folder gives 1 or 3 channels, not {channels}")
        self.size, self.channels = size, channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image

        from zoo_core.images import from_pil

        with Image.open(self.paths[index]) as image:
            image = image.convert("L" if self.channels == 1 else "RGB")
            if self.size is not None:
                image = _center_crop(image).resize((self.size, self.size), Image.BICUBIC)
            return from_pil([image])[0].clamp(-1, 1)


def _center_crop(image: Any) -> Any:
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def resolve_dataset(name: str, *, size: int | None = None, channels: int | None = None) -> Dataset:
    """The dataset ``name``: a registered one, ``digits``, or a directory of images."""
    try:
        from zoo_core.data import get_dataset  # type: ignore[attr-defined]
    except ImportError:
        get_dataset = None
    if get_dataset is not None:
        try:
            return get_dataset(name, size=size)
        except KeyError:
            pass
    if name == "digits":
        from zoo_core.data.digits import DigitsDataset

        if channels not in (None, 1):
            raise ConfigError(f"the digits are grayscale (1 channel); the model expects {channels}")
        return DigitsDataset(size=size or 16, split="train")
    path = Path(name).expanduser()
    if path.is_dir():
        return ImageFolder(path, size=size, channels=channels or 3)
    raise ConfigError(
        f"Unknown dataset {name!r}: give one of {', '.join(BUILTIN)} or an existing folder of images"
    )
