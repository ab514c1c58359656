"""Entry point of the zoo_latent plugin: registers its models, samplers and cards with zoo (lightweight: no torch import)."""

from __future__ import annotations

from zoo import hookimpl

MODEL = "zoo_latent.model:LatentTextToImageModel"


@hookimpl
def zoo_register_models(register):
    register("latent.sd", MODEL)
    # diffusers pipeline folders name their class in model_index.json (see zoo_core.formats)
    for name in ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline"):
        register(f"diffusers:{name}", MODEL)


@hookimpl
def zoo_register_conditioners(register):
    register("clip-text", "zoo_latent.conditioner:CLIPTextConditioner")


@hookimpl
def zoo_register_trainers(register):
    register("t2i", "zoo_latent.trainer:T2ITrainer")
