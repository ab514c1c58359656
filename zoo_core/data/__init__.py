"""Datasets available offline: real handwritten digits, procedural captioned shapes, and image folders.

``get_dataset("digits", size=16, split="train")``, ``get_dataset("shapes", size=32)`` or
``get_dataset("path/to/images", size=64)``. Importing this package imports nothing heavy.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from zoo_core.errors import UnknownNameError

#: dataset name -> "module:Class"
DATASETS: dict[str, str] = {
    "digits": "zoo_core.data.digits:DigitsDataset",
    "shapes": "zoo_core.data.shapes:ShapesDataset",
}


def get_dataset(name_or_path: str | os.PathLike[str], **options: Any) -> Any:
    """The dataset registered as ``name_or_path``, or an image folder when it is a directory.

    ``options`` go to the dataset's constructor (``size``, ``split``, ``seed``, ``length``, ``caption``...).
    """
    name = os.fspath(name_or_path)
    if name in DATASETS:
        module, _, cls = DATASETS[name].partition(":")
        return getattr(importlib.import_module(module), cls)(**options)
    if os.path.isdir(name):
        from zoo_core.data.folder import ImageFolderDataset

        return ImageFolderDataset(name, **options)
    raise UnknownNameError("dataset", name, DATASETS, hint="Or give the path of a directory of images.")


__all__ = ["DATASETS", "get_dataset"]
