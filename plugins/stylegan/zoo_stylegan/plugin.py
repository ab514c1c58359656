"""Entry point of the zoo_stylegan plugin: registers its models, samplers and cards with zoo (lightweight: no torch import)."""

from __future__ import annotations

from zoo import hookimpl
from zoo_core.hookspecs import Register


@hookimpl
def zoo_register_models(register: Register) -> None:
    register("stylegan2", "zoo_stylegan.model:StyleGANModel")


@hookimpl
def zoo_register_converters(register: Register) -> None:
    register("stylegan2-ada-pkl", "zoo_stylegan.convert:convert_stylegan2_ada_pkl")


@hookimpl
def zoo_register_trainers(register: Register) -> None:
    register("stylegan", "zoo_stylegan.trainer:StyleGANTrainer")
