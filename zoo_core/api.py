"""The public functions behind ``import zoo``. Importing this module imports neither torch nor any plugin."""

from __future__ import annotations

import fnmatch
import os
from typing import TYPE_CHECKING

from zoo_core.cards import ModelCard
from zoo_core.errors import PluginError, UnknownNameError
from zoo_core.registry import PluginInfo, get_registry
from zoo_core.registry import get_sampler as get_sampler  # public as zoo.get_sampler; lives with the registry

if TYPE_CHECKING:
    import torch

    from zoo_core.model import Model


def list_models(pattern: str | None = None, family: str | None = None) -> list[str]:
    """Names of the registered models, optionally filtered by an fnmatch ``pattern`` ("ddpm-*") and ``family``."""
    cards = get_registry().cards.values()
    return sorted(
        c.name
        for c in cards
        if (pattern is None or fnmatch.fnmatchcase(c.name, pattern))
        and (family is None or c.family == family)
    )


def info(name: str) -> ModelCard:
    """The model card of ``name``."""
    return get_registry().card(name)


def list_plugins() -> list[PluginInfo]:
    return list(get_registry().plugins.values())


def list_samplers() -> list[str]:
    return get_registry().names("samplers")


def get_model_class(architecture: str) -> type[Model]:
    return get_registry().get("models", architecture)


def load(
    name: str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    revision: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    allow_nonfinite: bool = False,
) -> Model:
    """Load a model by card name, or from ``hf://org/repo`` / a local directory saved by ``save_pretrained``.

    The result is in eval mode on ``device`` with ``dtype``; ``revision`` pins a Hub revision and ``weights``
    replaces the card's weights source (a local copy, or one weights file). Weights holding NaN or inf are refused
    unless ``allow_nonfinite`` (for debugging the run that made them).
    """
    from zoo_core.weights import ALLOW_NONFINITE
    from zoo_core.weights import allow_nonfinite as allowing

    with allowing(allow_nonfinite or ALLOW_NONFINITE.get()):
        return _load(name, device=device, dtype=dtype, revision=revision, weights=weights)


def _load(
    name: str,
    *,
    device: torch.device | str | None,
    dtype: torch.dtype | str | None,
    revision: str | None,
    weights: str | os.PathLike[str] | None,
) -> Model:
    registry = get_registry()
    if name in registry.cards:
        card = registry.card(name)
        try:
            cls = get_model_class(card.architecture)
        except UnknownNameError:
            raise PluginError(
                f"Model {name!r} needs architecture {card.architecture!r} from plugin {card.plugin!r}, which is not "
                f"installed or failed to load (see `zoo plugins`)."
            ) from None
        return cls.from_card(card, device=device, dtype=dtype, revision=revision, weights_source=weights)
    if name.startswith(("hf://", "hf-hub:", "embedded:")) or os.path.exists(name):
        return load_pretrained(name, device=device, dtype=dtype, revision=revision)
    registry.card(name)  # raises UnknownNameError with suggestions
    raise AssertionError("unreachable")


def load_pretrained(
    source: str | os.PathLike[str],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    revision: str | None = None,
) -> Model:
    """Load weights whose architecture is read from their config (zoo format or a layout a plugin recognises)."""
    from zoo_core import weights as weights_lib
    from zoo_core.formats import detect_architecture

    path = weights_lib.resolve(source, revision=revision)
    architecture = detect_architecture(path)
    cls = get_model_class(architecture)
    return cls.from_pretrained(path, device=device, dtype=dtype)
