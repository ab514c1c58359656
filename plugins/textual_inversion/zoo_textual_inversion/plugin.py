"""Entry point of the zoo_textual_inversion plugin: registers its trainer (lightweight: no torch import)."""

from __future__ import annotations

from zoo import hookimpl


@hookimpl
def zoo_register_trainers(register):
    register("textual-inversion", "zoo_textual_inversion.trainer:TextualInversionTrainer")
