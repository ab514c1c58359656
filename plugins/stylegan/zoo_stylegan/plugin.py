"""Entry point of the zoo_stylegan plugin: registers its models, samplers and cards with zoo (lightweight: no torch import)."""

from __future__ import annotations

from zoo import hookimpl
from zoo_core.hookspecs import Register


@hookimpl
def zoo_register_models(register: Register) -> None:
    register("stylegan2", "zoo_stylegan.model:StyleGANModel")


@hookimpl
def zoo_register_converters(register: Register) -> None:
    register(
        "stylegan2-ada-pkl",
        reads="StyleGAN2-ADA network pickle (network-snapshot-*.pkl, G_ema); opt-in: allow_pickle=true",
        read="zoo_stylegan.convert:read_pickle",
        check="zoo_stylegan.convert:check_pickle_opt_in",
        convert="zoo_stylegan.convert:convert_stylegan2_ada_pkl",
        architecture="stylegan2",
        suffixes=(".pkl",),
    )
    register(
        "stylegan2-ada-safetensors",
        reads="StyleGAN2-ADA G_ema state dict as safetensors (official key names; G_kwargs metadata)",
        read="zoo_stylegan.convert:read_official",
        writes="G_ema.safetensors: the official G_ema keys, constructor arguments in the metadata",
        write="zoo_stylegan.convert:write_official",
        architecture="stylegan2",
        suffixes=(".safetensors",),
        detect="zoo_stylegan.convert:is_official",
    )


@hookimpl
def zoo_register_trainers(register: Register) -> None:
    register("stylegan", "zoo_stylegan.trainer:StyleGANTrainer")
