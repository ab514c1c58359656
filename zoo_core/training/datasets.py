"""The dataset a training config names, at the size and channels the model expects.

Names resolve through ``zoo_core.data.get_dataset`` (``digits``, ``shapes``, or a folder of images); this module
only fits them to the model: ``digits`` means the training split (the test split stays unseen, for metrics), a
one-channel model reads a folder in grayscale, and a mismatch in channels is a ConfigError before training.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from zoo_core.errors import ConfigError, UnknownNameError


def resolve_dataset(
    name: str, *, size: int | None = None, channels: int | None = None, **options: Any
) -> Dataset:
    """The dataset ``name`` with ``options`` for its constructor (``split``, ``recursive``, ``caption``...)."""
    from zoo_core.data import DATASETS, get_dataset

    if size is not None:
        options.setdefault("size", size)
    if name == "digits":
        options.setdefault("split", "train")
    elif name not in DATASETS and channels == 1:
        options.setdefault("mode", "L")  # an image folder, read in grayscale for a one-channel model
    try:
        dataset = get_dataset(name, **options)
    except UnknownNameError as exc:
        raise ConfigError(str(exc)) from None
    except (FileNotFoundError, ValueError, TypeError) as exc:
        raise ConfigError(f"Dataset {name!r}: {exc}") from None
    found = getattr(dataset, "channels", None)
    if channels is not None and found is not None and found != channels:
        raise ConfigError(
            f"Dataset {name!r} has {found}-channel images but the model expects {channels} channels"
        )
    return dataset
