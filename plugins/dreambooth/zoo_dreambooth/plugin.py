"""Entry point of the zoo_dreambooth plugin: registers the ``dreambooth`` trainer (lightweight: no torch import)."""

from __future__ import annotations

from zoo import hookimpl


@hookimpl
def zoo_register_trainers(register):
    register("dreambooth", "zoo_dreambooth.trainer:DreamBoothTrainer")
