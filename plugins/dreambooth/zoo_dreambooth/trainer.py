"""DreamBooth (Ruiz et al. 2023, "DreamBooth: Fine Tuning Text-to-Image Diffusion Models for Subject-Driven
Generation"): teach a latent text-to-image model a subject from 3-10 images captioned with a rare identifier
("a sks star"), on the core training loop.

- The UNet is fine-tuned (and the text encoder with ``train_text_encoder``), either whole or through LoRA adapters
  (Hu et al. 2022) on the attention projections, built with ``peft`` (``lora: true``, ``rank``, ``lora_alpha``,
  ``lora_targets``): the base weights stay frozen and only the adapters and their optimizer moments take memory.
- Class-specific prior preservation (sec. 4.2): with ``class_prompt``, ``num_class_images`` images drawn by the
  frozen base model from the class prompt(s) are cached on disk (``zoo_dreambooth.class_images``) and every step
  adds their denoising loss: ``loss = mse(instance) + prior_loss_weight * mse(class)``. Without a class prompt
  the run trains on the instance images alone.
- Outputs in ``out_dir/model``: the whole fine-tuned model (``zoo.load`` loads it), or for LoRA
  ``pytorch_lora_weights.safetensors`` in the layout diffusers' ``load_lora_weights`` and our ``load_lora`` read,
  with ``dreambooth.json`` naming the base model.

Each instance image may carry its own caption in a sidecar ``<name>.txt`` (the kohya convention), e.g. the
background it shows; otherwise it is captioned with ``instance_prompt``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn
from torch.utils.data import Dataset

from zoo_core.errors import ConfigError
from zoo_core.trainer import Trainer, TrainParts
from zoo_core.training.config import TrainConfig

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
INFO_NAME = "dreambooth.json"


class DreamBoothConfig(TrainConfig):
    """The core options plus the base model, the subject's images and prompts, prior preservation and LoRA."""

    base: str = Field(
        ..., description="the latent text-to-image model to personalise (a name from `zoo list` or a folder)"
    )
    images: str = Field(..., description="folder of 3-10 instance images (optional <name>.txt captions)")
    instance_prompt: str = Field(..., description="caption with the rare identifier, e.g. 'a sks star'")
    class_prompt: str | list[str] | None = Field(
        None, description="prompt(s) of the subject's class for prior preservation; null: none"
    )
    num_class_images: int = Field(100, ge=1, description="class images drawn by the base model")
    class_dir: str | None = Field(None, description="cache of class images; default out_dir/class_images")
    prior_loss_weight: float = Field(1.0, ge=0, description="lambda of mse(class)")
    class_seed: int = Field(0, description="class image j is drawn with seed class_seed + j")
    class_sampler: str = Field("ddim", description="sampler drawing the class images")
    class_steps: int = Field(25, ge=1, description="steps of class_sampler")
    class_guidance: float | None = Field(None, description="default: the base model's guidance_scale")
    class_batch_size: int = Field(
        16, ge=1, description="class images per sampler call (under torchrun the ranks share the calls)"
    )
    resolution: int | None = Field(None, ge=8, description="image side; default the base model's")
    train_text_encoder: bool = Field(False, description="also fine-tune the text encoder")

    lora: bool = Field(False, description="train LoRA adapters (peft) instead of the whole UNet")
    rank: int = Field(4, gt=0, description="LoRA rank r")
    lora_alpha: float | None = Field(None, gt=0, description="LoRA alpha (scale alpha / r); default: rank")
    lora_targets: list[str] = Field(default_factory=lambda: list(LORA_TARGETS), description="UNet modules")
    lora_text_targets: list[str] = Field(
        default_factory=lambda: list(TEXT_LORA_TARGETS),
        description="text encoder modules (train_text_encoder)",
    )
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input")

    validation_prompts: list[str] = Field(
        default_factory=list, description="grid prompts; default instance_prompt"
    )
    sample_guidance: float | None = Field(
        None, description="validation grids; default: the model's guidance_scale"
    )

    # DreamBooth's own defaults for the core fields (paper / diffusers' script): one image per step, no EMA
    lr: float = Field(5e-6, gt=0, description="default 5e-6 for the whole UNet, 1e-4 with lora")
    batch_size: int = Field(1, ge=1, description="instance images per step (as many class images again)")
    max_steps: int = Field(400, ge=1)
    ema_decay: float | None = None
    checkpoint_every: int = Field(200, ge=0)
    sample_n: int = Field(4, ge=1)
    out_dir: str = "runs/dreambooth"

    @model_validator(mode="after")
    def _defaults(self) -> DreamBoothConfig:
        if self.lora and "lr" not in self.model_fields_set:
            self.lr = 1e-4
        if isinstance(self.class_prompt, list) and not self.class_prompt:
            raise ValueError("class_prompt is an empty list: give at least one prompt, or null")
        return self

    @property
    def class_prompts(self) -> list[str]:
        if self.class_prompt is None:
            return []
        return [self.class_prompt] if isinstance(self.class_prompt, str) else list(self.class_prompt)


class PairedImages(Dataset):
    """Item i: instance image i % n with its caption, and (with prior preservation) class image i % m with its
    prompt; as long as the longer list (as in diffusers' DreamBoothDataset). Images are kept as the frozen
    autoencoder's posterior moments, computed once."""

    def __init__(
        self,
        instance: torch.Tensor,
        captions: list[str],
        classes: torch.Tensor | None,
        class_captions: list[str],
    ) -> None:
        self.instance, self.captions = instance, captions
        self.classes, self.class_captions = classes, class_captions
        self.length = max(len(captions), len(class_captions))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = index % len(self.captions)
        item: dict[str, Any] = {"image": self.instance[i], "caption": self.captions[i]}
        if self.classes is not None:
            j = index % len(self.class_captions)
            item["class_image"] = self.classes[j]
            item["class_caption"] = self.class_captions[j]
        return item


class DreamBoothTrainer(Trainer):
    """DreamBooth: fine-tune a latent text-to-image model (whole UNet or LoRA) on a few images of a subject."""

    name = "dreambooth"
    config_class = DreamBoothConfig
    config: DreamBoothConfig

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        from zoo_latent.trainer import check_base

        from zoo_core.data.folder import check_image_folder

        c = self.config
        try:
            self.instance_paths = check_image_folder(c.images)
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigError(f"--images: {exc}") from None
        check_base(c.base)
        self._model: Any = None
        self._trained: nn.Module | None = None

    # -- model ----------------------------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        from zoo_latent.trainer import load_base

        c = self.config
        model = load_base(c.base, "DreamBooth")
        self._model = model
        if c.class_prompts:
            self._draw_class_images(model)  # by the frozen base, before anything trains
        if c.lora:
            self._add_adapters(model)
        else:
            model.unet.requires_grad_(True)
            model.text_encoder.requires_grad_(c.train_text_encoder)
        model.train()
        return model

    def _add_adapters(self, model: Any) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        c = self.config
        alpha = c.lora_alpha or c.rank

        def config(targets: list[str]) -> Any:
            return LoraConfig(r=c.rank, lora_alpha=alpha, lora_dropout=c.lora_dropout, target_modules=targets)

        try:
            inject_adapter_in_model(config(c.lora_targets), model.unet)
            if c.train_text_encoder:
                inject_adapter_in_model(config(c.lora_text_targets), model.text_encoder)
        except ValueError as exc:  # peft: target modules not found
            raise ConfigError(f"LoRA targets: {exc}") from None
        for component in ("unet", "text_encoder"):
            for name, p in getattr(model, component).named_parameters():
                p.requires_grad_("lora_" in name)

    def build(self, model: nn.Module, config: TrainConfig) -> TrainParts:
        """Checkpoints hold only what trains: the UNet (and text encoder), or the LoRA matrices."""
        c = self.config
        if c.lora:
            trained = nn.ModuleDict(
                {
                    f"{component}:{name}".replace(".", "/"): layer
                    for component in ("unet", "text_encoder")
                    for name, layer in getattr(model, component).named_modules()
                    if name.rsplit(".", 1)[-1] in ("lora_A", "lora_B")
                }
            )
        else:
            parts = {"unet": model.unet}
            if c.train_text_encoder:
                parts["text_encoder"] = model.text_encoder
            trained = nn.ModuleDict(parts)
        self._trained = trained
        return TrainParts(
            modules={"model": trained},
            optimizers={"model": self.adamw(trained.parameters())},
            ema=["model"] if c.ema_decay is not None else [],
        )

    # -- data -----------------------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        if self.config.resolution is not None:
            return self.config.resolution
        return self._model.default_size[0]

    def class_dir(self) -> Path:
        c = self.config
        return Path(c.class_dir) if c.class_dir else Path(c.out_dir) / "class_images"

    def class_images(self) -> list[Any]:
        from zoo_dreambooth import class_images

        c = self.config
        return class_images.wanted(
            c.class_prompts,
            c.num_class_images,
            c.class_seed,
            base=c.base,
            sampler=c.class_sampler,
            steps=c.class_steps,
            guidance=c.class_guidance if c.class_guidance is not None else self._model.config.guidance_scale,
            size=self.size,
        )

    def _draw_class_images(self, model: Any) -> None:
        """Draw the missing class images once: under torchrun the ranks share the batches (rank 0 decides
        what is missing, so every rank cuts the same batches), then rank 0 merges their manifests."""
        from zoo_core.training import distributed
        from zoo_core.training.loop import _say_main, preserved_rng
        from zoo_dreambooth import class_images

        directory, specs = self.class_dir(), self.class_images()
        todo = class_images.missing(directory, specs) if distributed.is_main() else None
        todo = distributed.broadcast_object(todo)
        with preserved_rng():
            class_images.generate(
                model,
                directory,
                todo,
                batch=self.config.class_batch_size,
                say=_say_main if distributed.is_main() else lambda m: None,
                rank=distributed.rank(),
                world_size=distributed.world_size(),
            )
        distributed.barrier()
        if distributed.is_main():
            class_images.merge_manifests(directory)
        distributed.barrier()
        absent = class_images.missing(directory, specs)
        if absent:  # another machine's rank drew them into a folder this one cannot see
            raise ConfigError(
                f"rank {distributed.rank()}: {len(absent)} class images are not in {directory} (first: "
                f"{absent[0].filename}): on several machines class_dir must be a folder they all share"
            )

    @torch.no_grad()
    def _moments(self, images: torch.Tensor) -> torch.Tensor:
        model = self._model
        out = []
        for chunk in images.split(64):
            posterior = model.vae.encode(chunk.to(model.device, model.dtype))
            out.append(torch.cat([posterior.mean, posterior.logvar], dim=1).cpu())
        return torch.cat(out)

    def build_dataset(self) -> Dataset:
        from zoo_core.data.folder import ImageFolderDataset, load_image

        c = self.config
        folder = ImageFolderDataset(c.images, self.size, caption=c.instance_prompt)
        images, captions = folder.as_tensors()
        classes, class_captions = None, []
        if c.class_prompts:
            specs = self.class_images()
            directory = self.class_dir()
            classes = self._moments(
                torch.stack([load_image(directory / s.filename, self.size) for s in specs])
            )
            class_captions = [s.prompt for s in specs]
        return PairedImages(self._moments(images), captions, classes, class_captions)

    # -- the step -------------------------------------------------------------------------------------------------
    def loss(self, batch, state):  # type: ignore[no-untyped-def]
        """mse(instance) + prior_loss_weight * mse(class), both in one UNet call."""
        from zoo_latent.trainer import diffusion_target, scale_latents
        from zoo_latent.vae import DiagonalGaussian

        c, model = self.config, self._model
        groups = [(batch.images, batch["caption"])]
        if "class_image" in batch.data:
            groups.append((batch["class_image"], batch["class_caption"]))
        latents, noises, steps, prompts = [], [], [], []
        for moments, captions in groups:
            with torch.no_grad():
                posterior = DiagonalGaussian(moments)
                z = posterior.mean + posterior.std * batch.randn_like(posterior.mean)
                latents.append(scale_latents(model, z))
            noises.append(batch.randn_like(latents[-1]))
            steps.append(batch.randint(0, model.schedule.num_train_timesteps))
            prompts.extend(captions)
        x0, noise, t = torch.cat(latents), torch.cat(noises), torch.cat(steps)
        ids = model.tokenizer(prompts, warn=False).to(x0.device)
        with torch.set_grad_enabled(c.train_text_encoder and torch.is_grad_enabled()):
            states = model.text_encoder(ids).last_hidden_state
        prediction = model.unet(model.schedule.add_noise(x0, noise, t), t, states).float()
        target = diffusion_target(model, x0, noise, t).float()
        n = len(batch)
        instance = F.mse_loss(prediction[:n], target[:n])
        metrics: dict[str, Any] = {"instance_loss": instance.detach()}
        loss = instance
        if len(groups) > 1:
            prior = F.mse_loss(prediction[n:], target[n:])
            loss = instance + c.prior_loss_weight * prior
            metrics["prior_loss"] = prior.detach()
        return loss, metrics

    # -- validation and export ------------------------------------------------------------------------------------
    def sample(self, state):  # type: ignore[no-untyped-def]
        c = self.config
        prompts = c.validation_prompts or [c.instance_prompt]
        return self._model.sample(
            c.sample_n,
            prompt=[prompts[i % len(prompts)] for i in range(c.sample_n)],
            seed=c.sample_seed,
            sampler=c.sample_sampler or "ddim",
            steps=c.sample_steps or 25,
            guidance_scale=c.sample_guidance,
            height=self.size,
            width=self.size,
        )

    def lora_pairs(self) -> dict[str, dict[str, Any]]:
        """The trained adapters as ``{component: {module: LoRAPair}}`` (peft's ``default`` adapter)."""
        from peft.tuners.lora import LoraLayer
        from zoo_latent.lora import LoRAPair

        out: dict[str, dict[str, Any]] = {}
        for component in ("unet", "text_encoder"):
            for name, layer in getattr(self._model, component).named_modules():
                if isinstance(layer, LoraLayer) and "default" in layer.lora_A:
                    down = layer.lora_A["default"].weight
                    up = layer.lora_B["default"].weight
                    scale = layer.scaling["default"]
                    out.setdefault(component, {})[name] = LoRAPair(down, up, alpha=scale * down.shape[0])
        return out

    def export(self, state, directory: Path) -> Path | None:  # type: ignore[no-untyped-def]
        """Write the output (the EMA average with ``ema_decay``). The live weights are left as trained: only
        rank 0 exports, so putting the average into them would leave the ranks holding different models."""
        if self.config.ema_decay is None or "model" not in state.ema:
            return self._write(state, Path(directory))
        trained = state.modules["model"]
        raw = {k: v.detach().clone() for k, v in trained.state_dict().items()}
        state.ema["model"].copy_to(trained)
        try:
            return self._write(state, Path(directory))
        finally:
            trained.load_state_dict(raw)

    def _write(self, state, directory: Path) -> Path:  # type: ignore[no-untyped-def]
        c = self.config
        info = {
            "base": c.base,
            "instance_prompt": c.instance_prompt,
            "class_prompt": c.class_prompt,
            "lora": c.lora,
            "steps": state.step,
        }
        if c.lora:
            from zoo_latent.lora import save_lora_weights

            path = save_lora_weights(directory, self.lora_pairs())
            info.update(rank=c.rank, lora_alpha=c.lora_alpha or c.rank, targets=c.lora_targets)
            (directory / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
            return path.parent
        # A diffusers pipeline folder: StableDiffusionPipeline.from_pretrained and zoo.load both read it.
        self._model.save_pretrained(directory, format="diffusers")
        (directory / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        return directory
