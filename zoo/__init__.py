"""zoo: one interface to every classic family of generative image models.

>>> import zoo
>>> m = zoo.load("ddpm")
>>> images = m.sample(16, seed=0)

``import zoo`` does not import torch; the names below that need it are imported on first use.
"""

from __future__ import annotations

from typing import Any

from zoo_core import __version__
from zoo_core.api import get_sampler, info, list_models, list_plugins, list_samplers, load, load_pretrained
from zoo_core.errors import (
    ChecksumError,
    ConfigError,
    PluginError,
    SamplerError,
    UnknownNameError,
    WeightsError,
    ZooError,
)
from zoo_core.hookspecs import hookimpl

_LAZY = {
    "Model": "zoo_core.model",
    "Sampler": "zoo_core.sampler",
    "SamplerOption": "zoo_core.sampler",
    "Conditioner": "zoo_core.conditioner",
    "Denoiser": "zoo_core.denoiser",
    "NoiseSchedule": "zoo_core.schedule",
    "Config": "zoo_core.config",
    "ModelCard": "zoo_core.cards",
    "train": "zoo_core.training.api",
    "save_grid": "zoo_core.images",
}

__all__ = [
    "__version__",
    "hookimpl",
    "load",
    "load_pretrained",
    "list_models",
    "info",
    "list_plugins",
    "list_samplers",
    "get_sampler",
    "ZooError",
    "UnknownNameError",
    "ConfigError",
    "WeightsError",
    "ChecksumError",
    "PluginError",
    "SamplerError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
