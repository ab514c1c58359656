"""The hooks a zoo plugin implements. Each is handed a ``register`` callback, so one hook can register many things."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "zoo"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# A target is the object itself or an import path "package.module:attribute" resolved on first use,
# so a plugin can register heavy classes without importing torch at discovery time.
Register = Callable[..., None]


@hookspec
def zoo_register_models(register: Register) -> None:
    """Register model architectures: ``register("arch-name", ModelClass | "pkg.mod:ModelClass")``."""


@hookspec
def zoo_register_samplers(register: Register) -> None:
    """Register samplers: ``register("name", SamplerClass | "pkg.mod:SamplerClass")``."""


@hookspec
def zoo_register_conditioners(register: Register) -> None:
    """Register conditioners: ``register("name", ConditionerClass | "pkg.mod:ConditionerClass")``."""


@hookspec
def zoo_register_trainers(register: Register) -> None:
    """Register trainers: ``register("family-or-arch", TrainerClass | "pkg.mod:TrainerClass")``."""


@hookspec
def zoo_register_converters(register: Register) -> None:
    """Register checkpoint formats (a card's ``weights.format``): ``register("name", reads="what it reads",
    read="pkg.mod:fn", writes="what it writes", write="pkg.mod:fn", architecture=..., suffixes=(".pth",))``;
    see ``zoo_core.converter.Converter`` for the fields and the functions' signatures."""


@hookspec
def zoo_register_cards(register: Register) -> None:
    """Register model cards: ``register(card_dict | ModelCard)`` or ``register(path_to_yaml)``."""


@hookspec
def zoo_register_commands(cli: Any) -> None:
    """Add CLI subcommands: ``cli`` is the argparse subparsers object of ``zoo``."""
