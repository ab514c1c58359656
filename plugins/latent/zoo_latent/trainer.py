"""Training a latent text-to-image model from scratch with the core loop: ``zoo train t2i --config cfg.yaml``.

Two stages, as in latent diffusion (Rombach et al. 2022, sec. 3-4):

- ``stage: vae`` trains the KL autoencoder alone: reconstruction (L1 and/or L2, per pixel) plus a small KL to
  N(0, I) on the posterior (``kl_weight``; SD's 1e-6 relative to the summed reconstruction), decoding a posterior
  sample. No perceptual or GAN loss: at 32x32 on flat-coloured shapes the pixel losses suffice.
- ``stage: unet`` freezes that autoencoder (``vae_from``: the vae stage's exported model) and trains the UNet and
  the text encoder jointly with the epsilon loss (L_simple) on latents ``scaling_factor * z``. ``scaling_factor:
  auto`` is 1 / std of the latents of the first ``scaling_samples`` training images (sec. 4.3.2). Captions are
  replaced by the empty prompt with probability ``caption_dropout`` (~10%), so the same network is the
  unconditional model classifier-free guidance needs.

The tokenizer is a CLIP-format BPE vocabulary learnt from the dataset's caption words (``zoo_latent.vocabulary``),
unless ``tokenizer`` names a folder or the loaded model brings one; the text encoder's ``vocab_size`` and end
token follow it. Both stages export the whole model (``out_dir/model``, loadable with ``zoo.load``); after the
vae stage its UNet is untrained.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn
from torch.utils.data import Dataset

from zoo_core.errors import ConfigError, ZooError
from zoo_core.trainer import Trainer
from zoo_core.training.config import TrainConfig
from zoo_latent.model import LatentConfig, LatentTextToImageModel
from zoo_latent.tokenizer import CLIPTokenizer
from zoo_latent.vae import DiagonalGaussian
from zoo_latent.vocabulary import caption_words, word_tokenizer

#: A small model for 32x32 images: 4 x 8 x 8 latents, a 2-level UNet with cross-attention at both levels,
#: a 2-layer text encoder over 16 tokens.
SMALL_MODEL: dict[str, Any] = {
    "unet": {
        "sample_size": 8,
        "block_out_channels": [64, 128],
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "layers_per_block": 1,
        "attention_head_dim": 4,
        "cross_attention_dim": 64,
        "norm_num_groups": 32,
    },
    "vae": {
        "block_out_channels": [32, 64, 64],
        "down_block_types": ["DownEncoderBlock2D"] * 3,
        "up_block_types": ["UpDecoderBlock2D"] * 3,
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 16,
        "sample_size": 32,
    },
    "text_encoder": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 16,
    },
}


class T2ITrainConfig(TrainConfig):
    """The core options plus the stage, the model and the losses of each stage."""

    stage: Literal["vae", "unet"] = Field(
        "unet", description="vae: the autoencoder; unet: UNet + text encoder"
    )
    model: LatentConfig = Field(
        default_factory=lambda: LatentConfig.parse(SMALL_MODEL),
        description="architecture (the text encoder's vocab_size and eos_token_id follow the tokenizer)",
    )
    vae_from: str | None = Field(
        None, description="stage unet: the model whose autoencoder to use (the vae stage's out_dir/model)"
    )
    init_from: str | None = Field(
        None, description="start from this whole model (a name or directory); model and vae_from are ignored"
    )
    tokenizer: str | None = Field(
        None,
        description="a tokenizer/ folder; default: the loaded model's, else one learnt from the captions",
    )
    dataset: str | None = "shapes"
    cache_dataset: bool = Field(True, description="draw every item once and keep it in memory")

    # stage vae
    recon_loss: Literal["l1", "l2", "l1+l2"] = Field("l1+l2", description="VAE pixel reconstruction loss")
    kl_weight: float = Field(1e-6, ge=0, description="KL (summed over latents) per summed pixel error")
    crop_size: int | None = Field(
        None, ge=8, description="train on random crops of this side (a multiple of the downsampling factor)"
    )

    # stage unet
    caption_dropout: float = Field(0.1, ge=0, le=1, description="share of captions replaced by ''")
    train_text_encoder: bool = Field(True, description="train the text encoder with the UNet")
    scaling_factor: float | Literal["auto"] = Field("auto", description="latent scale; auto: 1 / std")
    scaling_samples: int = Field(
        512, ge=2, description="training images whose latents set scaling_factor auto"
    )

    # validation samples
    sample_prompts: list[str] = Field(default_factory=list, description="default: captions of dataset items")
    sample_guidance: float | None = Field(None, description="default: the model's guidance_scale")

    lr: float = Field(2e-4, gt=0)
    ema_decay: float | None = 0.999

    @model_validator(mode="after")
    def _check_stage(self) -> T2ITrainConfig:
        if self.stage == "unet" and self.vae_from is None and self.init_from is None:
            raise ValueError(
                "stage 'unet' trains on the latents of a trained autoencoder: set vae_from (the vae stage's "
                "out_dir/model) or init_from (a whole model to continue)"
            )
        if isinstance(self.scaling_factor, float) and self.scaling_factor <= 0:
            raise ValueError("scaling_factor must be positive or 'auto'")
        return self


class CachedCaptions(Dataset):
    """Every (image, caption) of a dataset drawn once: procedural images cost more to draw than to train on."""

    def __init__(self, dataset: Dataset) -> None:
        from zoo_core.training.batches import as_item

        self.moments: torch.Tensor | None = None  # the frozen autoencoder's posterior per image, when set

        items = [as_item(dataset[i]) for i in range(len(dataset))]  # type: ignore[arg-type]
        if "caption" not in items[0]:
            raise ConfigError(
                "the dataset has no captions: text-to-image training needs (image, caption) items"
            )
        self.images = torch.stack([it["image"] for it in items])
        self.captions = [it["caption"] for it in items]
        self.source = dataset

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {"image": self.images[index], "caption": self.captions[index]}
        if self.moments is not None:
            item["moments"] = self.moments[index]
        return item

    @torch.no_grad()
    def encode(self, model: LatentTextToImageModel, chunk: int = 128) -> None:
        """Keep the posterior (mean and log-variance) of every image, encoded in fixed chunks (so a resumed
        run computes the same values)."""
        moments = []
        for images in self.images.split(chunk):
            posterior = model.vae.encode(images.to(model.device, model.dtype))
            moments.append(torch.cat([posterior.mean, posterior.logvar], dim=1).cpu())
        self.moments = torch.cat(moments)


def check_base(base: str) -> None:
    """A one-line error for a base model that cannot be found, before anything is loaded (the registry's
    ``UnknownNameError`` lists the closest names)."""
    import os

    from zoo_core.registry import get_registry

    registry = get_registry()
    if base in registry.cards or base.startswith(("hf://", "hf-hub:", "embedded:")) or os.path.exists(base):
        return
    registry.card(base)


def load_base(base: str, purpose: str) -> LatentTextToImageModel:
    """The latent text-to-image model a personalisation trainer (DreamBooth, textual inversion) starts from:
    loaded by name or folder, checked to have a tokenizer, frozen (``requires_grad`` off) and in eval mode; the
    trainer then unfreezes what it trains. Every failure is a ``ConfigError`` naming ``base`` and ``purpose``."""
    from zoo_core.api import load

    try:
        model = load(base)
    except ZooError as exc:
        raise ConfigError(f"base {base!r} cannot be loaded: {exc}") from None
    if not isinstance(model, LatentTextToImageModel):
        raise ConfigError(f"base {base!r} is a {type(model).__name__}, not a latent text-to-image model")
    if model.tokenizer is None:
        raise ConfigError(f"base {base!r} has no tokenizer/ folder: {purpose} needs one for its prompts")
    model.requires_grad_(False)
    return model.eval()


def posterior_sample(
    model: LatentTextToImageModel, images: torch.Tensor, noise_fn: Any, moments: torch.Tensor | None = None
) -> Any:
    """(posterior, z = mean + std * noise) with the noise drawn by ``noise_fn(like)``; ``moments`` (mean and
    log-variance, cached) stand for the encoder's output."""
    posterior = model.vae.encode(images) if moments is None else DiagonalGaussian(moments)
    return posterior, posterior.mean + posterior.std * noise_fn(posterior.mean)


def scale_latents(model: LatentTextToImageModel, z: torch.Tensor) -> torch.Tensor:
    vae = model.config.vae
    if vae.shift_factor is not None:
        z = z - vae.shift_factor
    return z * vae.scaling_factor


def diffusion_target(model: Any, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    kind = model.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "sample":
        return x0
    if kind == "v_prediction":
        return model.schedule.velocity(x0, noise, t)
    raise ValueError(f"cannot train prediction_type {kind!r}: expected epsilon, sample or v_prediction")


class T2ITrainer(Trainer):
    """Latent text-to-image training in two stages (see the module docstring)."""

    name = "t2i"
    config_class = T2ITrainConfig
    config: T2ITrainConfig
    _model: LatentTextToImageModel | None = None

    # -- model and data -----------------------------------------------------------------------------------------
    def _load(self, field: str, source: str) -> LatentTextToImageModel:
        from zoo_core.api import load

        try:
            model = load(source)
        except ZooError as exc:
            raise ConfigError(f"{field} {source!r} cannot be loaded: {exc}") from None
        if not isinstance(model, LatentTextToImageModel):
            raise ConfigError(
                f"{field} {source!r} is a {type(model).__name__}, not a latent text-to-image model"
            )
        return model

    def _tokenizer(self, loaded: LatentTextToImageModel | None) -> CLIPTokenizer:
        c = self.config
        if c.tokenizer:
            return CLIPTokenizer.from_pretrained(c.tokenizer)
        if loaded is not None and loaded.tokenizer is not None:
            return loaded.tokenizer
        if not c.dataset:
            raise ConfigError(
                "set `tokenizer` (a tokenizer folder) or `dataset` (to learn one from its captions)"
            )
        from zoo_core.training.datasets import resolve_dataset

        options = {**c.dataset_options, **self.dataset_options()}
        if c.dataset == "shapes":
            options["length"] = 1  # its vocabulary is declared, not read from the captions
        dataset = resolve_dataset(c.dataset, **options)
        length = c.model.text_encoder.max_position_embeddings
        return word_tokenizer(caption_words(dataset), max_length=length)

    def build_model(self) -> nn.Module:
        c = self.config
        if c.init_from:
            model = self._load("init_from", c.init_from)
            if c.tokenizer:
                model.tokenizer = self._tokenizer(None)
            if isinstance(c.scaling_factor, float):
                model.config.vae.scaling_factor = c.scaling_factor
        else:
            vae_model = self._load("vae_from", c.vae_from) if c.stage == "unet" else None
            tokenizer = self._tokenizer(vae_model)
            config = c.model.model_copy(deep=True)
            config.text_encoder.vocab_size = tokenizer.vocab_size
            config.text_encoder.eos_token_id = tokenizer.eos_token_id
            if tokenizer.max_length > config.text_encoder.max_position_embeddings:
                raise ConfigError(
                    f"the tokenizer makes {tokenizer.max_length} tokens but the text encoder has "
                    f"{config.text_encoder.max_position_embeddings} positions"
                )
            if vae_model is not None:
                config.vae = vae_model.config.vae.model_copy()
            # the UNet denoises the autoencoder's latents
            config.unet.in_channels = config.unet.out_channels = config.vae.latent_channels
            model = LatentTextToImageModel(config)
            model.tokenizer = tokenizer
            if vae_model is not None:
                model.vae.load_state_dict(vae_model.vae.state_dict())
                self.config.model = model.config  # the image size follows the loaded autoencoder
                model.config.vae.scaling_factor = (
                    self._measure_scaling(model) if c.scaling_factor == "auto" else c.scaling_factor
                )
        self.config.model = model.config  # what is trained is what the checkpoints record
        self._model = model
        model.train()
        vae_stage = c.stage == "vae"
        model.vae.requires_grad_(vae_stage)
        model.unet.requires_grad_(not vae_stage)
        model.text_encoder.requires_grad_(not vae_stage and c.train_text_encoder)
        return model

    @torch.no_grad()
    def _measure_scaling(self, model: LatentTextToImageModel) -> float:
        """1 / std of the posterior samples of the first ``scaling_samples`` training images."""
        dataset = self.build_dataset(cache=False)
        n = min(self.config.scaling_samples, len(dataset))  # type: ignore[arg-type]
        from zoo_core.training.batches import as_item

        images = torch.stack([as_item(dataset[i])["image"] for i in range(n)])
        generator = torch.Generator().manual_seed(self.config.seed)
        latents = []
        for chunk in images.split(128):
            _, z = posterior_sample(model, chunk, lambda like: torch.randn(like.shape, generator=generator))
            latents.append(z)
        return float(1.0 / torch.cat(latents).std())

    def dataset_options(self) -> dict[str, Any]:
        downscale = 2 ** (len(self.config.model.vae.block_out_channels) - 1)
        size = self.config.model.unet.sample_size or 64
        size = size if isinstance(size, int) else size[0]
        return {"size": size * downscale, "channels": self.config.model.vae.in_channels}

    def build_dataset(self, cache: bool | None = None) -> Dataset:
        dataset = super().build_dataset()
        if not (self.config.cache_dataset if cache is None else cache):
            return dataset
        cached = CachedCaptions(dataset)
        if self.config.stage == "unet" and self._model is not None:  # the autoencoder is frozen: encode once
            cached.encode(self._model)
        return cached

    # -- the step -----------------------------------------------------------------------------------------------
    def loss(self, batch, state):  # type: ignore[no-untyped-def]
        if self.config.stage == "vae":
            return self.vae_loss(batch, state.model)
        return self.unet_loss(batch, state.model)

    def vae_loss(self, batch: Any, model: LatentTextToImageModel) -> tuple[torch.Tensor, dict[str, Any]]:
        """Per-pixel reconstruction of a posterior sample + kl_weight * KL (summed over latents) per pixel."""
        x = self.crop(batch, model)
        posterior, z = posterior_sample(model, x, batch.randn_like)
        diff = model.vae.decode(z).float() - x.float()
        kind = self.config.recon_loss
        recon = torch.zeros((), device=x.device)
        if "l1" in kind:
            recon = recon + diff.abs().mean()
        if "l2" in kind:
            recon = recon + diff.pow(2).mean()
        kl = posterior.kl().float().mean()
        loss = recon + self.config.kl_weight * kl / x[0].numel()
        return loss, {"recon": recon.detach(), "kl": kl.detach()}

    def crop(self, batch: Any, model: LatentTextToImageModel) -> torch.Tensor:
        """The batch's images, or random ``crop_size`` crops of them at offsets on the latent grid (the
        autoencoder is convolutional: crops train it as well as whole images, at a fraction of the cost)."""
        x, size = batch.images, self.config.crop_size
        if size is None:
            return x
        step = model.vae.downscale
        if size % step or size > min(x.shape[-2:]):
            raise ConfigError(
                f"crop_size {size} must be a multiple of the autoencoder's downsampling factor {step} and at most "
                f"the image side {min(x.shape[-2:])}"
            )
        top = batch.randint(0, (x.shape[-2] - size) // step + 1) * step
        left = batch.randint(0, (x.shape[-1] - size) // step + 1) * step
        rows = [
            x[i, :, t : t + size, s : s + size]
            for i, (t, s) in enumerate(zip(top.tolist(), left.tolist(), strict=True))
        ]
        return torch.stack(rows)

    def unet_loss(self, batch: Any, model: LatentTextToImageModel) -> tuple[torch.Tensor, dict[str, Any]]:
        """L_simple on scaled latents of the frozen autoencoder, text states from (possibly dropped) captions."""
        captions = batch["caption"]
        with torch.no_grad():
            moments = batch.data.get("moments")
            _, z = posterior_sample(model, batch.images, batch.randn_like, moments)
            latents = scale_latents(model, z)
        drop = batch.rand().flatten() < self.config.caption_dropout
        prompts = ["" if d else caption for d, caption in zip(drop.tolist(), captions, strict=True)]
        ids = model.tokenizer(prompts, warn=False).to(latents.device)
        with torch.set_grad_enabled(self.config.train_text_encoder and torch.is_grad_enabled()):
            states = model.text_encoder(ids).last_hidden_state
        t = batch.randint(0, model.schedule.num_train_timesteps)
        noise = batch.randn_like(latents)
        x_t = model.schedule.add_noise(latents, noise, t)
        prediction = model.unet(x_t, t, states)
        target = diffusion_target(model, latents, noise, t)
        return F.mse_loss(prediction.float(), target.float()), {"dropped": drop.float().mean()}

    # -- validation ---------------------------------------------------------------------------------------------
    def prompts(self, n: int) -> list[str]:
        """The validation prompts: ``sample_prompts`` (cycled), else the captions of the first n shapes."""
        if self.config.sample_prompts:
            return [self.config.sample_prompts[i % len(self.config.sample_prompts)] for i in range(n)]
        from zoo_core.data.shapes import draw_spec

        size = self.dataset_options()["size"]
        return [draw_spec(i, size, seed=self.config.seed + 1).caption for i in range(n)]

    def sample(self, state):  # type: ignore[no-untyped-def]
        model = state.ema_model()
        c = state.config
        if c.stage == "vae":  # originals above their reconstructions
            from zoo_core.data.shapes import ShapesDataset

            half = max(1, c.sample_n // 2)
            images, _, _ = ShapesDataset(half, self.dataset_options()["size"], seed=c.seed + 1).as_tensors()
            images = images.to(state.device)
            return torch.cat([images, model.vae(images)])
        return model.sample(
            c.sample_n,
            prompt=self.prompts(c.sample_n),
            seed=c.sample_seed,
            sampler=c.sample_sampler or "ddim",
            steps=c.sample_steps or 25,
            guidance_scale=c.sample_guidance,
        )
