"""Entry point of the zoo_ddgan plugin: registers its model, converter and trainer (its posterior sampler is the core's ``ddgan``) with zoo (lightweight: no torch import)."""

from __future__ import annotations

from zoo import hookimpl


@hookimpl
def zoo_register_models(register):
    register("ddgan.ncsnpp", "zoo_ddgan.model:DDGANModel")


@hookimpl
def zoo_register_converters(register):
    register(
        "ddgan-official",
        reads="NVlabs DDGAN netG_<epoch>.pth (EMA generator state dict, keys prefixed module.)",
        read="zoo_ddgan.convert:official_model",
        writes="netG.pth in the NVlabs layout (module.-prefixed keys) + args.json (the train_ddgan.py arguments)",
        write="zoo_ddgan.convert:write_official",
        convert="zoo_ddgan.convert:convert_official",
        architecture="ddgan.ncsnpp",
        suffixes=(".pth", ".pt"),
        detect="zoo_ddgan.convert:is_official",
    )


@hookimpl
def zoo_register_trainers(register):
    register("ddgan", "zoo_ddgan.trainer:DDGANTrainer")
