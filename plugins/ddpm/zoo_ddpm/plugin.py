"""Entry point of the zoo_ddpm plugin: registers its models, converter and cards with zoo (lightweight: no torch import)."""

from __future__ import annotations

from zoo import hookimpl

MODEL = "zoo_ddpm.model:DDPMModel"


@hookimpl
def zoo_register_models(register):
    register("ddpm.unet", MODEL)
    # diffusers folders name their class in config.json / model_index.json (see zoo_core.formats)
    for name in ("UNet2DModel", "DDPMPipeline", "DDIMPipeline"):
        register(f"diffusers:{name}", MODEL)


@hookimpl
def zoo_register_converters(register):
    register(
        "pytorch-ddpm",
        reads="w86763777/pytorch-ddpm ckpt.pt (ema_model, or net_model with --set ema=false)",
        read="zoo_ddpm.convert:pytorch_ddpm_model",
        architecture="ddpm.unet",
        suffixes=(".pt", ".pth", ".ckpt"),
        detect="zoo_ddpm.convert:is_pytorch_ddpm",
    )


@hookimpl
def zoo_register_trainers(register):
    register("ddpm", "zoo_ddpm.trainer:DDPMTrainer")
