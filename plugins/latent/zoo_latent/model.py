"""Latent text-to-image diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion
Models"; Stable Diffusion v1): a UNet denoises ``scaling_factor * z`` in the latent space of a KL autoencoder,
cross-attending to CLIP text states; samples are decoded by the autoencoder.

``LatentTextToImageModel`` implements the Denoiser protocol on latents, so every registered sampler runs it, and
wraps itself in the core's classifier-free guidance for a prompt (eps = eps_u + w (eps_c - eps_u), one batched
forward). It reads two layouts:

- the zoo format (``config.json`` with ``_zoo_architecture: latent.sd`` + ``model.safetensors`` + ``tokenizer/``);
- a diffusers pipeline folder (``model_index.json`` + ``unet/ vae/ text_encoder/ tokenizer/ scheduler/``), such as
  stable-diffusion-v1-5/stable-diffusion-v1-5: safetensors preferred, ``.bin`` read with weights_only=True, fp16
  variant files (``*.fp16.safetensors``) used when they are the only ones present; tensors load as float32 unless a
  dtype is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from zoo_core import export, weights
from zoo_core.config import Config
from zoo_core.errors import ConfigError, WeightsError
from zoo_core.guidance import ClassifierFreeGuidance
from zoo_core.jsonio import read_json_object
from zoo_core.model import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, Model
from zoo_core.nn import rename_legacy_attention_keys
from zoo_core.nn.transformer import AttentionController, set_attention_controller
from zoo_core.schedule import NoiseSchedule
from zoo_core.seeding import GeneratorLike, Seed, make_generator
from zoo_latent.conditioner import CLIPTextConditioner
from zoo_latent.text_encoder import CLIPTextConfig, CLIPTextModel, convert_state_dict
from zoo_latent.tokenizer import CLIPTokenizer
from zoo_latent.unet import UNet2DConditionConfig, UNet2DConditionModel
from zoo_latent.vae import AutoencoderKL, AutoencoderKLConfig

MODEL_INDEX = "model_index.json"
TOKENIZER_DIR = "tokenizer"
SCHEDULER_CONFIG = "scheduler_config.json"
#: weight files per pipeline component, in order of preference (safetensors first, full precision first)
COMPONENT_WEIGHTS: dict[str, tuple[str, ...]] = {
    "unet": (
        "diffusion_pytorch_model.safetensors",
        "diffusion_pytorch_model.fp16.safetensors",
        "diffusion_pytorch_model.bin",
        "diffusion_pytorch_model.fp16.bin",
    ),
    "vae": (
        "diffusion_pytorch_model.safetensors",
        "diffusion_pytorch_model.fp16.safetensors",
        "diffusion_pytorch_model.bin",
        "diffusion_pytorch_model.fp16.bin",
    ),
    "text_encoder": (
        "model.safetensors",
        "model.fp16.safetensors",
        "pytorch_model.bin",
        "pytorch_model.fp16.bin",
    ),
}

#: Stable Diffusion v1 (stable-diffusion-v1-5/stable-diffusion-v1-5, CompVis/stable-diffusion-v1-4).
SD1_UNET: dict[str, Any] = {
    "sample_size": 64,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
}
SD1_VAE: dict[str, Any] = {
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 2,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
SD1_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


class LatentConfig(Config):
    """The three networks, the noise schedule and what the UNet predicts; defaults are Stable Diffusion v1."""

    unet: UNet2DConditionConfig = Field(default_factory=lambda: UNet2DConditionConfig.parse(SD1_UNET))
    vae: AutoencoderKLConfig = Field(default_factory=lambda: AutoencoderKLConfig.parse(SD1_VAE))
    text_encoder: CLIPTextConfig = Field(default_factory=CLIPTextConfig)
    schedule: NoiseSchedule = Field(default_factory=lambda: NoiseSchedule.parse(SD1_SCHEDULE))
    prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon"
    guidance_scale: float = Field(
        7.5, ge=0, description="sample()'s classifier-free guidance scale by default"
    )


def is_pipeline(directory: Path) -> bool:
    return (directory / MODEL_INDEX).is_file()


def _component_dir(directory: Path, name: str, needs: str = CONFIG_NAME) -> Path:
    """``directory/name``, checked to hold ``needs``: a missing component is an error that names it."""
    sub = directory / name
    if not (sub / needs).is_file():
        raise WeightsError(
            f"The pipeline folder {directory} has no {name!r} component ({name}/{needs} is missing); a Stable "
            "Diffusion pipeline needs unet/, vae/, text_encoder/, tokenizer/ and scheduler/. Download the whole "
            "pipeline (model_index.json and every component folder)."
        )
    return sub


def pipeline_config(directory: Path) -> LatentConfig:
    """A LatentConfig from a diffusers pipeline folder (unet/, vae/, text_encoder/, scheduler/ configs)."""
    unet_path = _component_dir(directory, "unet") / CONFIG_NAME
    vae_path = _component_dir(directory, "vae") / CONFIG_NAME
    text_path = _component_dir(directory, "text_encoder") / CONFIG_NAME
    scheduler_path = _component_dir(directory, "scheduler", SCHEDULER_CONFIG) / SCHEDULER_CONFIG
    if not (directory / TOKENIZER_DIR / "tokenizer.json").is_file():
        _component_dir(directory, TOKENIZER_DIR, "vocab.json")
    scheduler = read_json_object(scheduler_path)
    extra = {}
    guidance = read_json_object(directory / MODEL_INDEX).get("_zoo_guidance_scale")  # written by our export
    if guidance is not None:
        extra["guidance_scale"] = guidance
    try:
        return LatentConfig(
            **extra,
            unet=UNet2DConditionConfig.from_diffusers(read_json_object(unet_path), where=str(unet_path)),
            vae=AutoencoderKLConfig.from_diffusers(read_json_object(vae_path), where=str(vae_path)),
            text_encoder=CLIPTextConfig.from_transformers(read_json_object(text_path), where=str(text_path)),
            schedule=NoiseSchedule.from_diffusers(scheduler),
            prediction_type=scheduler.get("prediction_type") or "epsilon",
        )
    except ConfigError as exc:
        raise WeightsError(f"The pipeline in {directory} cannot be read: {exc}") from None


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        state = weights.load_safetensors(path)
    else:
        state = weights.load_torch_checkpoint(path)
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise WeightsError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    # fp16 variant files load as float32 like full-precision ones; a dtype asked for is applied afterwards
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def component_state_dict(directory: Path, name: str) -> dict[str, torch.Tensor]:
    """The weights of one pipeline component, mapped onto our names."""
    folder = _component_dir(directory, name)
    for filename in COMPONENT_WEIGHTS[name]:
        if (folder / filename).is_file():
            state = _load_tensors(folder / filename)
            break
    else:
        raise WeightsError(
            f"The {name!r} component in {folder} has no weights: expected one of {', '.join(COMPONENT_WEIGHTS[name])}"
        )
    if name == "text_encoder":
        return convert_state_dict(state)
    return rename_legacy_attention_keys(state)


def pipeline_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for name in COMPONENT_WEIGHTS:
        state.update({f"{name}.{k}": v for k, v in component_state_dict(directory, name).items()})
    return state


def _prompts(value: str | Sequence[str] | None, n: int, what: str) -> list[str]:
    """One prompt for all ``n`` images, or one per image."""
    if value is None:
        return [""] * n
    if isinstance(value, str):
        return [value] * n
    values = list(value)
    if not all(isinstance(v, str) for v in values):
        raise TypeError(f"{what} must be a string or a list of strings")
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"{what} has {len(values)} entries for {n} images: give one, or one per image")
    return values


class LatentAtSize:
    """The model seen at one image size: everything is the model's except ``sample_shape``."""

    def __init__(self, model: LatentTextToImageModel, latent_size: tuple[int, int]) -> None:
        self._model = model
        self._latent_size = latent_size

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (self._model.config.unet.in_channels, *self._latent_size)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._model, name)


class LatentTextToImageModel(Model):
    """Stable Diffusion v1 style text-to-image: ``sample(n, prompt=..., negative_prompt=..., guidance_scale=7.5)``."""

    architecture: ClassVar[str] = "latent.sd"
    config_class: ClassVar[type[Config]] = LatentConfig
    kind: ClassVar[str] = "diffusion"
    default_sampler = "pndm"  # the PNDMScheduler of the published SD pipelines
    default_steps = 50
    export_formats: ClassVar[tuple[str, ...]] = ("zoo", "diffusers")
    native_formats: ClassVar[tuple[str, ...]] = (
        *Model.native_formats,
        "diffusers (a StableDiffusionPipeline folder: model_index.json, unet/, vae/, text_encoder/, tokenizer/)",
    )
    config: LatentConfig

    def __init__(self, config: LatentConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.unet = UNet2DConditionModel(self.config.unet)
        self.vae = AutoencoderKL(self.config.vae)
        self.text_encoder = CLIPTextModel(self.config.text_encoder)
        self.tokenizer: CLIPTokenizer | None = None

    # -- sizes --------------------------------------------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (8 for SD: one latent pixel per 8x8 image pixels)."""
        return max(8, self.vae.downscale)

    @property
    def default_size(self) -> tuple[int, int]:
        size = self.config.unet.sample_size or 64
        h, w = (size, size) if isinstance(size, int) else size
        return h * self.vae.downscale, w * self.vae.downscale

    def latent_size(self, height: int | None = None, width: int | None = None) -> tuple[int, int]:
        """The latent height and width for an image size, which must be a multiple of ``size_multiple``."""
        default_h, default_w = self.default_size
        sizes = {
            "height": default_h if height is None else height,
            "width": default_w if width is None else width,
        }
        m = self.size_multiple
        for side, value in sizes.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < m or value % m:
                if isinstance(value, int) and not isinstance(value, bool):
                    nearest = max(m, int(value / m + 0.5) * m)
                    hint = f"; the nearest valid {side} is {nearest}"
                else:
                    hint = ""
                raise ValueError(f"{side} must be a positive multiple of {m} pixels, got {value!r}{hint}")
        return sizes["height"] // self.vae.downscale, sizes["width"] // self.vae.downscale

    # -- the Denoiser protocol ----------------------------------------------------------------------------------
    @property
    def schedule(self) -> NoiseSchedule:
        return self.config.schedule

    @property
    def prediction_type(self) -> str:
        return self.config.prediction_type

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (self.config.unet.in_channels, *self.latent_size())

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: Any = None, generator: GeneratorLike = None
    ) -> torch.Tensor:
        """The UNet's output for scaled latents ``x_t`` [B, 4, h, w] at timesteps ``t`` given text states
        ``cond["encoder_hidden_states"]`` [B, 77, D] (from ``encode_prompt``)."""
        if not isinstance(cond, Mapping) or "encoder_hidden_states" not in cond:
            raise ValueError(
                f"{type(self).__name__}.predict needs cond={{'encoder_hidden_states': text states [B, L, D]}} "
                "(see encode_prompt / prepare_conditioning)"
            )
        return self.unet(x_t, t, cond["encoder_hidden_states"], cond.get("encoder_attention_mask"))

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images in [-1, 1] (not clipped) through the autoencoder."""
        vae = self.vae.config
        z = x.to(self.dtype) / vae.scaling_factor
        if vae.shift_factor is not None:
            z = z + vae.shift_factor
        return self.vae.decode(z)

    def encode(
        self, images: torch.Tensor, generator: GeneratorLike = None, sample: bool = True
    ) -> torch.Tensor:
        """Images in [-1, 1] -> scaled latents (a posterior sample, or its mean with ``sample=False``): the start of
        img2img and the target of training."""
        posterior = self.vae.encode(images.to(device=self.device, dtype=self.dtype))
        z = posterior.sample(generator) if sample else posterior.mode()
        vae = self.vae.config
        if vae.shift_factor is not None:
            z = z - vae.shift_factor
        return z * vae.scaling_factor

    def img2img(
        self, images: torch.Tensor, *, strength: float = 0.8, seed: Seed = None, **kwargs: Any
    ) -> Any:
        """Edit ``images`` [B, 3, H, W] in [-1, 1] toward a prompt (SDEdit, Meng et al. 2022): encode them (a
        posterior sample drawn from ``seed``), noise the latents to the level ``strength`` in (0, 1] sets, and
        run the last ``int(steps * strength)`` steps of the sampler. Other arguments are ``sample``'s."""
        if images.ndim != 4:
            raise ValueError(
                f"images must be a batch [B, C, H, W] in [-1, 1], got shape {tuple(images.shape)}"
            )
        n, _, height, width = images.shape
        self.latent_size(height, width)  # a clear error for sizes the autoencoder cannot take
        generator = make_generator(seed, n)
        with torch.no_grad():
            init = self.encode(images, generator)
        return self.sample(
            n, seed=generator, init=init, strength=strength, height=height, width=width, **kwargs
        )

    def sample(self, n: int = 1, *, edit: Any = None, batch_size: int | None = None, **kwargs: Any) -> Any:
        """``Model.sample`` with text: ``prompt=``, ``negative_prompt=``, ``guidance_scale=``, ``height``/``width``.

        ``edit`` (a ``PromptEdit`` or a dict of its fields, see ``zoo_latent.prompt_to_prompt``) runs a
        Prompt-to-Prompt edit instead: 2n images, the source prompt's n then the edited prompt's n, pair i from the
        same noise: ``sample(1, edit={"type": "replace", "source": "a red circle on a blue background",
        "target": "a red square on a blue background"}, seed=0)``. With ``batch_size`` the pairs are drawn
        ``batch_size`` pairs at a time (``2 * batch_size`` images per UNet batch, pair i seeded ``seed + i``, so
        the images do not depend on the batch size) and returned in the same layout; ``sample_iter(n,
        batch_size=B, edit=...)`` streams them, each batch as its b source images then their b edited twins.
        """
        if edit is None:
            return super().sample(n, batch_size=batch_size, **kwargs)
        if batch_size is not None:
            return self._sample_edit_batched(n, edit, batch_size, kwargs)
        from zoo_latent.prompt_to_prompt import prepare_edit

        plan = prepare_edit(self, n, edit, **kwargs)
        with plan.controlling(self):
            return super().sample(2 * n, **plan.sample_kwargs)

    def _sample_edit_batched(self, n: int, edit: Any, batch_size: int, kwargs: dict[str, Any]) -> Any:
        """``sample(n, edit=..., batch_size=B)``: the batches of ``sample_iter`` (b sources, then b targets each)
        put back in the one-call layout (all n sources, then all n targets)."""
        output = kwargs.get("output", "tensor")
        sources: list[Any] = []
        targets: list[Any] = []
        for batch in self.sample_iter(n, batch_size=batch_size, edit=edit, **kwargs):
            half = len(batch) // 2
            sources.append(batch[:half])
            targets.append(batch[half:])
        if output == "pil":
            return [image for part in (*sources, *targets) for image in part]
        if output == "numpy":
            import numpy as np

            return np.concatenate([*sources, *targets])
        return torch.cat([*sources, *targets])

    def set_attention_controller(self, controller: AttentionController | None) -> list[str]:
        """Route the UNet's self- and cross-attention maps through ``controller`` (Prompt-to-Prompt editing,
        attention visualisation; see ``zoo_core.nn.transformer.AttentionController``); None restores the fused
        kernel. Returns the controlled layer names in the order they run within one UNet call."""
        return set_attention_controller(self.unet, controller)

    # -- LoRA adapters (zoo_latent.lora) -------------------------------------------------------------------------
    def load_lora(
        self,
        path_or_repo: Any,
        scale: float = 1.0,
        *,
        adapter_name: str | None = None,
        weight_name: str | None = None,
    ) -> str:
        """Load a diffusers-format LoRA (``pytorch_lora_weights.safetensors``: ours, diffusers' training scripts',
        the older ``unet.``/processor layouts) as an adapter active with weight ``scale``; returns its name."""
        from zoo_latent import lora

        return lora.load_lora(
            self, path_or_repo, scale=scale, adapter_name=adapter_name, weight_name=weight_name
        )

    def set_lora_adapters(
        self, names: str | Sequence[str], weights: float | Sequence[float] | None = None
    ) -> None:
        """Choose the active adapters and their weights (several at once: their deltas add up)."""
        from zoo_latent import lora

        lora.set_adapters(self, names, weights)

    def fuse_lora(self) -> None:
        """Fold the active adapters into the weights (``unfuse_lora`` undoes it)."""
        from zoo_latent import lora

        lora.fuse(self)

    def unfuse_lora(self) -> None:
        from zoo_latent import lora

        lora.unfuse(self)

    def unload_lora(self, adapter_name: str | None = None) -> None:
        """Remove one adapter, or all of them: the model computes exactly what it did before loading."""
        from zoo_latent import lora

        lora.unload(self, adapter_name)

    @property
    def lora_adapters(self) -> dict[str, float]:
        from zoo_latent import lora

        return lora.adapters(self)

    # -- text ---------------------------------------------------------------------------------------------------
    def conditioner(self, clip_skip: int | None = None) -> CLIPTextConditioner:
        """The ``clip-text`` conditioner of this model's tokenizer and text encoder."""
        if self.tokenizer is None:
            raise WeightsError(
                f"{type(self).__name__} has no tokenizer: load it with from_pretrained from a folder that has "
                "tokenizer/ (vocab.json + merges.txt, or tokenizer.json), or set "
                "model.tokenizer = CLIPTokenizer.from_pretrained(...)"
            )
        return CLIPTextConditioner(self.tokenizer, self.text_encoder, clip_skip)

    def encode_prompt(self, prompts: str | Sequence[str], clip_skip: int | None = None) -> torch.Tensor:
        """Prompts -> CLIP text states [B, 77, D] (the last layer's, or ``clip_skip`` layers earlier)."""
        return self.conditioner(clip_skip).encode(prompts)["encoder_hidden_states"]

    @classmethod
    def sample_options(cls, config: Config, card: Any = None) -> dict[str, Any]:
        from zoo_core.sampler import SamplerOption

        side = getattr(card, "resolution", None)
        if side is None:
            size = config.unet.sample_size or 64
            side = (size if isinstance(size, int) else size[0]) * 2 ** (
                len(config.vae.block_out_channels) - 1
            )
        return {
            "prompt": SamplerOption("text prompt: one for all images, or one per image", "", "''"),
            "negative_prompt": SamplerOption("what to steer away from (the unguided branch)", "", "''"),
            "guidance_scale": SamplerOption(
                "classifier-free guidance weight w; <= 1 runs the prompt alone", config.guidance_scale
            ),
            "guidance_rescale": SamplerOption(
                "pull the guided output toward the conditional one's std (Lin et al. 2023); 0: off", 0.0
            ),
            "height": SamplerOption("image height in pixels, a multiple of 8", side),
            "width": SamplerOption("image width in pixels, a multiple of 8", side),
            "clip_skip": SamplerOption("take the text states this many layers before the last", None, "none"),
            "edit": SamplerOption(
                "a Prompt-to-Prompt edit (dict: type, source, target, ...): 2n images", None, "none"
            ),
        }

    def prepare_conditioning(
        self,
        n: int,
        prompt: str | Sequence[str] | None = None,
        negative_prompt: str | Sequence[str] | None = None,
        guidance_scale: float | None = None,
        guidance_rescale: float = 0.0,
        height: int | None = None,
        width: int | None = None,
        clip_skip: int | None = None,
    ) -> tuple[Any, Any]:
        """Text states for ``n`` images and the model to sample: this model at ``height`` x ``width`` inside
        classifier-free guidance (the negative prompt, "" by default, is the unconditional branch; a scale <= 1
        runs the prompt alone; None: the config's ``guidance_scale``). ``clip_skip`` applies to both prompts."""
        if guidance_scale is None:
            guidance_scale = self.config.guidance_scale
        view = LatentAtSize(self, self.latent_size(height, width))
        prompts = _prompts(prompt, n, "prompt")
        if guidance_scale <= 1:  # no guidance: the prompt alone, one forward per step
            cond = {"encoder_hidden_states": self.encode_prompt(prompts, clip_skip)}
            return cond, ClassifierFreeGuidance(view, None, guidance_scale, guidance_rescale)
        negatives = _prompts(negative_prompt, n, "negative_prompt")
        states = self.encode_prompt(negatives + prompts, clip_skip)  # one text-encoder pass for both
        uncond = {"encoder_hidden_states": states[:n]}
        return {"encoder_hidden_states": states[n:]}, ClassifierFreeGuidance(
            view, uncond, guidance_scale, guidance_rescale
        )

    def load_textual_inversion(
        self, source: Any, token: str | Sequence[str | None] | None = None, *, force: bool = False
    ) -> list[str]:
        """Add textual-inversion embeddings (diffusers ``learned_embeds.safetensors``, an AUTOMATIC1111 ``.pt``, an
        ``emb_params`` file, a folder or Hub repo holding one, or a list of these); returns the new tokens.
        ``force`` replaces a loaded token of the same name or shadows a vocabulary word. See
        ``zoo_latent.textual_inversion``."""
        from zoo_latent.textual_inversion import load_textual_inversion

        return load_textual_inversion(self, source, token, force=force)

    def unload_textual_inversion(self, tokens: str | Sequence[str] | None = None) -> list[str]:
        """Remove loaded textual-inversion tokens (default: all), restoring the vocabulary the model came with."""
        from zoo_latent.textual_inversion import unload_textual_inversion

        return unload_textual_inversion(self, tokens)

    # -- weights in two layouts ---------------------------------------------------------------------------------
    @classmethod
    def read_config(cls, directory: Path, overrides: Mapping[str, Any] | None = None) -> Config:
        directory = directory if directory.is_dir() else directory.parent
        if is_pipeline(directory):
            return pipeline_config(directory)
        return super().read_config(directory, overrides)

    @classmethod
    def read_state_dict(cls, directory: Path) -> dict[str, torch.Tensor]:
        if directory.is_file():  # the file given: a whole model in our names (a pipeline is a folder)
            return super().read_state_dict(directory)
        folder = directory
        if is_pipeline(folder) and not (folder / WEIGHTS_NAME).is_file():
            return pipeline_state_dict(folder)
        return super().read_state_dict(directory)

    def load_extras(self, directory: Path) -> None:
        folder = directory if directory.is_dir() else directory.parent
        if (folder / TOKENIZER_DIR).is_dir():
            from zoo_latent.textual_inversion import restore_tokens

            self.tokenizer = CLIPTokenizer.from_pretrained(folder / TOKENIZER_DIR)
            restore_tokens(self, folder / TOKENIZER_DIR)  # loaded embeddings and multi-vector expansion

    def save_pretrained(self, directory: Any, format: str = "zoo", variant: str | None = None) -> Path:
        """The zoo format plus ``tokenizer/`` (vocab.json, merges.txt) so the folder is self-contained, or a
        diffusers ``StableDiffusionPipeline`` folder with ``format="diffusers"`` (see ``export``)."""
        path = super().save_pretrained(directory, format=format, variant=variant)
        if format == "zoo" and self.tokenizer is not None:
            from zoo_latent.textual_inversion import save_tokens

            self.tokenizer.save_pretrained(path / TOKENIZER_DIR)
            save_tokens(self, path / TOKENIZER_DIR)
        return path

    def export(self, directory: Path, format: str, variant: str | None) -> Path:
        """A ``StableDiffusionPipeline`` folder: unet/, vae/ (diffusers), text_encoder/ (a transformers
        ``CLIPTextModel``), tokenizer/, scheduler/ (the diffusers scheduler of the default sampler) and
        model_index.json. What diffusers has no field for (the default guidance scale) rides in
        ``model_index.json`` under ``_zoo_`` keys, which diffusers skips, and the card beside it."""
        if self.tokenizer is None:
            raise WeightsError(
                f"{type(self).__name__} has no tokenizer to export: a StableDiffusionPipeline needs tokenizer/ "
                "(set model.tokenizer, or load the model from a folder that has one)"
            )
        state = self.state_dict()

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}

        dtype = "float16" if variant == "fp16" else "bfloat16" if variant == "bf16" else "float32"
        export.write_component(
            directory / "unet",
            export.diffusers_config("UNet2DConditionModel", self.config.unet.model_dump(mode="json")),
            part("unet"),
            variant=variant,
        )
        export.write_component(
            directory / "vae",
            export.diffusers_config("AutoencoderKL", self.config.vae.model_dump(mode="json")),
            part("vae"),
            variant=variant,
        )
        text_config = {
            "architectures": ["CLIPTextModel"],
            "model_type": "clip_text_model",
            **self.config.text_encoder.model_dump(mode="json"),
            "bos_token_id": self.tokenizer.bos_token_id,
            "pad_token_id": self.tokenizer.pad_token_id,
            "dtype": dtype,
        }
        export.write_component(
            directory / "text_encoder",
            text_config,
            part("text_encoder"),
            weights_name=export.TRANSFORMERS_WEIGHTS,
            variant=variant,
        )
        from zoo_latent.textual_inversion import save_tokens

        # added tokens in tokenizer/added_tokens.json: diffusers' maybe_convert_prompt expands token, token_1, ...
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        save_tokens(self, directory / TOKENIZER_DIR)
        sampler = self.default_sampler
        export.write_scheduler(directory / "scheduler", self.schedule, self.prediction_type, sampler)
        scheduler_class = export.SCHEDULERS.get(sampler or "ddpm", export.SCHEDULERS["ddpm"])[0]
        export.write_model_index(
            directory,
            "StableDiffusionPipeline",
            {
                "unet": ("diffusers", "UNet2DConditionModel"),
                "vae": ("diffusers", "AutoencoderKL"),
                "text_encoder": ("transformers", "CLIPTextModel"),
                "tokenizer": ("transformers", "CLIPTokenizer"),
                "scheduler": ("diffusers", scheduler_class),
                "safety_checker": (None, None),
                "feature_extractor": (None, None),
                "image_encoder": (None, None),
            },
            requires_safety_checker=False,
            _zoo_guidance_scale=self.config.guidance_scale,
        )
        if self.card is not None:
            weights.write_json_atomic(self.card.model_dump(mode="json"), directory / CARD_NAME)
        return directory
