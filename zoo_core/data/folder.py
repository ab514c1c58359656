"""A directory of images (PNG/JPG/...), optionally captioned: the user's own data, DreamBooth instance images.

Each image ``name.png`` may have a caption in a sidecar ``name.txt`` next to it (the kohya / DreamBooth
convention). Images are resized so the shorter side is ``size`` (bicubic, anti-aliased) and centre-cropped to a
square, then scaled to [-1, 1]. Files are listed in sorted order, so indices are stable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def list_images(root: Path, recursive: bool = False) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def check_image_folder(root: str | os.PathLike[str], *, min_images: int = 1) -> list[Path]:
    """The images of a small instance folder (DreamBooth, textual inversion), every file checked to decode, so a
    bad folder fails before any work with one message naming the files: missing or empty folders, files that
    are neither images nor ``.txt`` captions, and images that do not open."""
    from PIL import Image

    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"Image folder {str(folder)!r} does not exist or is not a directory")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    others = [p.name for p in files if p.suffix.lower() not in (*IMAGE_EXTENSIONS, ".txt")]
    if others:
        raise ValueError(
            f"Image folder {str(folder)!r} holds files that are not images ({', '.join(IMAGE_EXTENSIONS)}) or "
            f".txt captions: {', '.join(others[:5])}; move them out"
        )
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    broken = []
    for path in images:
        try:
            with Image.open(path) as image:
                image.load()
        except Exception:  # PIL raises many types for a corrupt file
            broken.append(path.name)
    if broken:
        raise ValueError(f"Image folder {str(folder)!r}: cannot read {', '.join(broken[:5])} as images")
    if len(images) < min_images:
        raise ValueError(
            f"Image folder {str(folder)!r} has {len(images)} images ({', '.join(IMAGE_EXTENSIONS)}); "
            f"at least {min_images} needed"
        )
    return images


def load_image(path: Path, size: int, mode: Literal["RGB", "L"] = "RGB") -> torch.Tensor:
    """One image file -> float32 [C, size, size] in [-1, 1]: shorter side resized to ``size``, centre crop."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert(mode)
        scale = size / min(image.size)
        new_size = (max(size, round(image.width * scale)), max(size, round(image.height * scale)))
        image = image.resize(new_size, Image.BICUBIC, reducing_gap=None)
        left, top = (new_size[0] - size) // 2, (new_size[1] - size) // 2
        image = image.crop((left, top, left + size, top + size))
        array = np.asarray(image, dtype=np.float32)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy()) / 127.5 - 1.0


class ImageFolderDataset(Dataset):
    """Images in ``root`` as (image [C, size, size] in [-1, 1], caption) pairs.

    The caption is the stripped text of the sidecar ``<stem>.txt`` if there is one, else ``caption``
    (e.g. a DreamBooth instance prompt). ``mode`` "RGB" gives 3 channels, "L" gives 1.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        size: int = 64,
        *,
        caption: str = "",
        mode: Literal["RGB", "L"] = "RGB",
        recursive: bool = False,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"Image folder {str(self.root)!r} does not exist or is not a directory")
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        if mode not in ("RGB", "L"):
            raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
        self.paths = list_images(self.root, recursive)
        if not self.paths:
            raise FileNotFoundError(
                f"No images in {str(self.root)!r} (looked for {', '.join(IMAGE_EXTENSIONS)}"
                f"{'' if recursive else ', not in subdirectories: pass recursive=True'})"
            )
        self.size, self.mode, self.default_caption = size, mode, caption
        self.channels = 1 if mode == "L" else 3

    def __len__(self) -> int:
        return len(self.paths)

    def caption(self, index: int) -> str:
        sidecar = self.paths[index].with_suffix(".txt")
        if sidecar.is_file():
            return sidecar.read_text(encoding="utf-8").strip()
        return self.default_caption

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        return load_image(self.paths[index], self.size, self.mode), self.caption(index)

    def as_tensors(self) -> tuple[torch.Tensor, list[str]]:
        """Every image in one tensor [N, C, size, size] and the captions."""
        items = [self[i] for i in range(len(self))]
        return torch.stack([x for x, _ in items]), [c for _, c in items]

    def __repr__(self) -> str:
        return f"ImageFolderDataset({str(self.root)!r}, size={self.size}, n={len(self)})"
