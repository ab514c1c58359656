"""Entry point of the zoo_ddgan plugin: registers its model, converter and trainer (its posterior sampler is the core's ``ddgan``) with zoo (lightweight: no torch import)."""

from __future__ import annotations

from zoo import hookimpl


@hookimpl
def zoo_register_models(register):
    register("ddgan.ncsnpp", "zoo_ddgan.model:DDGANModel")


@hookimpl
def zoo_register_converters(register):
    register("ddgan-official", "zoo_ddgan.convert:convert_official")


@hookimpl
def zoo_register_trainers(register):
    register("ddgan", "zoo_ddgan.trainer:DDGANTrainer")
