"""Errors a user can act on: each names the bad value, what was expected, and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """Base class of every error zoo raises on purpose."""


class UnknownNameError(ZooError, KeyError):
    """A model, sampler, conditioner, trainer or architecture name that nothing registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = "") -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        message = f"Unknown {kind} {name!r}."
        if close:
            message += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif known:
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            message += f" Known: {shown}."
        else:
            message += f" No {kind}s are registered: is a plugin installed?"
        if hint:
            message += " " + hint
        self.kind, self.name, self.suggestions = kind, name, close
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class DuplicateNameError(ZooError):
    """Two plugins registered the same name."""


class PluginError(ZooError):
    """A plugin failed to import or to register (raised only under ZOO_STRICT_PLUGINS=1)."""


class ConfigError(ZooError, ValueError):
    """A card or config that does not validate."""


class WeightsError(ZooError):
    """Weights that cannot be found, downloaded, verified or loaded into the model."""


class ChecksumError(WeightsError):
    """A downloaded or local file whose sha256 differs from the card's."""


class SamplerError(ZooError, ValueError):
    """A sampler asked to run a model it does not support, or with bad arguments."""


class EvalError(ZooError, ValueError):
    """Bad input to ``zoo eval`` or a report: the message names the value and the fix."""


class UnverifiedWeightsWarning(UserWarning):
    """Weights given in place of a card's own (a local copy, a fine-tune) load without the card's checksums."""
