"""Entry point of the zoo_ddgan plugin: registers its model, sampler and converter with zoo (lightweight: no torch import)."""

from __future__ import annotations

from zoo import hookimpl


@hookimpl
def zoo_register_models(register):
    register("ddgan.ncsnpp", "zoo_ddgan.model:DDGANModel")


@hookimpl
def zoo_register_samplers(register):
    register("ddgan", "zoo_ddgan.sampler:DDGANSampler")


@hookimpl
def zoo_register_converters(register):
    register("ddgan-official", "zoo_ddgan.convert:convert_official")


@hookimpl
def zoo_register_trainers(register):
    register("ddgan", "zoo_ddgan.trainer:DDGANTrainer")
