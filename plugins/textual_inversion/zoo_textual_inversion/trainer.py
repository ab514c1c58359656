"""Textual inversion (Gal et al. 2023, "An Image is Worth One Word: Personalizing Text-to-Image Generation using
Textual Inversion"; official code rinongal/textual_inversion) on the core loop:

    zoo train textual-inversion --base t2i --images DIR --placeholder-token "<sks>" --initializer-token star \\
        --steps 300 --out runs/ti

A new token (``num_vectors`` of them: ``<sks>, <sks>_1, ...``) is added to the frozen model's vocabulary, its
embedding initialised from ``initializer_token``'s, and only those vectors are learned with the model's own
denoising loss on the instance images, captioned by a random prompt template ("a photo of a {}", or a
``name.txt`` next to an image, e.g. "a red {} on a blue background", so the token does not absorb what the
caption already says). The vectors are the one trained module (so checkpoints are a few numbers and resume is
exact); the text encoder runs with them substituted into its embedding matrix, whose other rows, like every other
weight, are never touched. The result is ``out_dir/learned_embeds.safetensors`` = ``{token: tensor[n, dim]}``,
which ``model.load_textual_inversion`` and diffusers' ``load_textual_inversion`` read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import nn
from torch.func import functional_call
from torch.utils.data import Dataset
from zoo_latent.model import LatentTextToImageModel
from zoo_latent.textual_inversion import (
    LEARNED_EMBEDS,
    save_learned_embeds,
    vector_names,
    vocabulary_conflict,
)
from zoo_latent.trainer import check_base, diffusion_target, load_base, posterior_sample, scale_latents

from zoo_core.errors import ConfigError, ZooError
from zoo_core.trainer import Trainer, TrainParts
from zoo_core.training.config import TrainConfig

#: the official templates (rinongal/textual_inversion ``personalized.py``, also diffusers' example), a subset
OBJECT_TEMPLATES = [
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a good photo of the {}",
    "a photo of one {}",
    "a rendition of the {}",
    "a photo of the small {}",
    "a photo of the large {}",
]
STYLE_TEMPLATES = [
    "a painting in the style of {}",
    "a rendering in the style of {}",
    "a cropped painting in the style of {}",
    "the painting in the style of {}",
    "a clean painting in the style of {}",
    "a picture in the style of {}",
    "a rendition in the style of {}",
    "a good painting in the style of {}",
]
EMBEDDING_KEY = "text_model.embeddings.token_embedding.weight"


class TextualInversionConfig(TrainConfig):
    """The core options plus the base model, the instance images and the new token."""

    base: str = Field("t2i", description="the frozen latent text-to-image model (a name or a directory)")
    images: str = Field(
        ..., description="folder of 3-10 instance images (name.txt next to one: its template)"
    )
    placeholder_token: str = Field("<concept>", description="the new token prompts will use")
    initializer_token: str = Field(..., description="a word of the vocabulary to start the vectors from")
    num_vectors: int = Field(1, ge=1, le=64, description="embedding vectors of the token")
    learnable_property: Literal["object", "style"] = Field("object", description="which templates")
    templates: list[str] = Field(
        default_factory=list, description="prompt templates with {} for the token (default: by property)"
    )
    size: int | None = Field(None, ge=8, description="image side (default: the base model's)")
    force: bool = Field(
        False,
        description="a placeholder already loaded in the base is re-initialised, a vocabulary word is shadowed",
    )
    sample_prompt: str = Field("a photo of a {}", description="validation grids: this prompt with the token")
    sample_guidance: float | None = Field(
        None, description="validation grids; default: the model's guidance_scale"
    )

    lr: float = Field(5e-3, gt=0)  # the official rate (diffusers: 5e-4 scaled by batch size)
    batch_size: int = 4
    max_steps: int = 500
    checkpoint_every: int = 100
    ema_decay: float | None = None
    grad_clip: float | None = None
    out_dir: str = "runs/textual-inversion"

    @field_validator("images")
    @classmethod
    def _check_images(cls, value: str) -> str:
        from zoo_core.data.folder import check_image_folder

        try:  # missing, empty, unreadable or foreign files: fail before any work
            check_image_folder(value)
        except OSError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("placeholder_token", "initializer_token")
    @classmethod
    def _one_word(cls, value: str) -> str:
        if not value or value != value.strip() or len(value.split()) != 1:
            raise ValueError(f"{value!r} must be one word without spaces")
        return value

    @model_validator(mode="after")
    def _check_templates(self) -> TextualInversionConfig:
        bad = [t for t in [*self.templates, self.sample_prompt] if t.count("{}") != 1]
        if bad:
            raise ValueError(f"templates must hold the token's place {{}} exactly once: {bad[0]!r}")
        return self


class InstanceImages(Dataset):
    """The instance images at one size, each with its template ('' when it has no ``name.txt``)."""

    def __init__(self, folder: str, size: int) -> None:
        from zoo_core.data.folder import check_image_folder, load_image

        paths = check_image_folder(folder)
        self.images = torch.stack([load_image(p, size) for p in paths])
        self.templates = []
        for path in paths:
            caption = path.with_suffix(".txt")
            text = caption.read_text(encoding="utf-8").strip() if caption.is_file() else ""
            if text and text.count("{}") != 1:
                raise ConfigError(f"{caption}: a template must hold the token's place {{}} exactly once")
            self.templates.append(text)

    def __len__(self) -> int:
        return len(self.templates)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self.images[index], "template": self.templates[index]}


class LearnedEmbeddings(nn.Module):
    """The only trained weights: ``vectors`` [n, dim], the rows of the new tokens ``names``."""

    def __init__(self, vectors: torch.Tensor, names: list[str]) -> None:
        super().__init__()
        self.vectors = nn.Parameter(vectors.clone())
        self.names = names


class TextualInversionTrainer(Trainer):
    """Textual inversion: learn a new token's embedding from a few images, the model frozen."""

    name = "textual-inversion"
    config_class = TextualInversionConfig
    config: TextualInversionConfig
    base: LatentTextToImageModel

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        check_base(self.config.base)  # an unknown name fails here, before any work

    def build_model(self) -> nn.Module:
        c = self.config
        base = load_base(c.base, "textual inversion")
        tokenizer = base.tokenizer
        pieces = tokenizer.encode(c.initializer_token)[1:-1]
        if len(pieces) != 1:
            split = " + ".join(repr(tokenizer.decode([p], skip_special_tokens=False)) for p in pieces)
            raise ConfigError(
                f"initializer token {c.initializer_token!r} is {len(pieces)} tokens in this vocabulary "
                f"({split}): pick a word that is one token"
            )
        init = base.text_encoder.token_embedding.weight[pieces[0]].detach()
        vectors = init.repeat(c.num_vectors, 1)
        self._check_placeholder(base)
        try:
            base.load_textual_inversion({c.placeholder_token: vectors}, force=c.force)
        except (ValueError, ZooError) as exc:
            raise ConfigError(f"placeholder token: {exc}") from None
        names = vector_names(c.placeholder_token, c.num_vectors)
        self.ids = [base.tokenizer.token_to_id(n) for n in names]  # (force may have replaced the tokenizer)
        self.base = base
        return LearnedEmbeddings(vectors, names)

    def _check_placeholder(self, base: LatentTextToImageModel) -> None:
        """Refuse a placeholder the vocabulary has (a word, or a token the base already has loaded) unless
        ``force``; with it, say what is replaced."""
        from zoo_core.training.loop import _say_main

        c = self.config
        for piece in vector_names(c.placeholder_token, c.num_vectors):
            kind, owner = vocabulary_conflict(base, piece)
            if kind is None or kind == "token":
                continue  # free, or never replaceable (load_textual_inversion names it)
            if not c.force:
                what = (
                    f"the word {owner!r}"
                    if kind == "word"
                    else "a textual-inversion token loaded in the base"
                )
                raise ConfigError(
                    f"placeholder token {piece!r} is already in the model's vocabulary ({what}): pick another "
                    "placeholder, or --force to train over it"
                )
            if kind == "word":
                _say_main(
                    f"--force: placeholder {piece!r} shadows the word {owner!r} in prompts (its own embedding "
                    "is kept)"
                )
            else:
                _say_main(
                    f"--force: placeholder {piece!r} replaces the base's textual-inversion token {owner!r}, "
                    f"re-initialised from {c.initializer_token!r}"
                )

    def build_dataset(self) -> Dataset:
        size = self.config.size or self.base.default_size[0]
        self.base.latent_size(size, size)  # a clear error for sizes the autoencoder cannot take
        return InstanceImages(self.config.images, size)

    def build(self, model: nn.Module, config: TrainConfig) -> TrainParts:
        self.base.to(next(model.parameters()).device)
        return TrainParts(
            modules={"model": model}, optimizers={"model": self.adamw(model.parameters())}, ema=[]
        )

    def templates(self) -> list[str]:
        c = self.config
        return c.templates or (OBJECT_TEMPLATES if c.learnable_property == "object" else STYLE_TEMPLATES)

    def text_states(self, ids: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """The frozen text encoder with ``vectors`` as the new tokens' rows (gradient reaches only them)."""
        encoder = self.base.text_encoder
        frozen = encoder.token_embedding.weight.detach()
        index = torch.tensor(self.ids, device=frozen.device)
        weight = frozen.index_put((index,), vectors.to(frozen.dtype))
        return functional_call(encoder, {EMBEDDING_KEY: weight}, (ids,)).last_hidden_state

    def loss(self, batch, state):  # type: ignore[no-untyped-def]
        model, base = state.model, self.base
        templates = self.templates()
        picks = batch.randint(0, len(templates)).tolist()
        prompts = [
            (own or templates[k]).format(self.config.placeholder_token)
            for own, k in zip(batch["template"], picks, strict=True)
        ]
        with torch.no_grad():
            _, z = posterior_sample(base, batch.images.to(base.dtype), batch.randn_like)
            latents = scale_latents(base, z)
        ids = base.tokenizer(prompts, warn=False).to(latents.device)
        states = self.text_states(ids, model.vectors)
        t = batch.randint(0, base.schedule.num_train_timesteps)
        noise = batch.randn_like(latents)
        prediction = base.unet(base.schedule.add_noise(latents, noise, t), t, states)
        target = diffusion_target(base, latents, noise, t)
        return F.mse_loss(prediction.float(), target.float())

    def _with_learned(self, model: nn.Module) -> LatentTextToImageModel:
        """The base model with the current vectors in its new rows (for validation samples)."""
        with torch.no_grad():
            self.base.text_encoder.token_embedding.weight[self.ids] = model.vectors.detach()
        return self.base

    def sample(self, state):  # type: ignore[no-untyped-def]
        c = state.config
        base = self._with_learned(state.model)
        return base.sample(
            c.sample_n,
            prompt=c.sample_prompt.format(c.placeholder_token),
            seed=c.sample_seed,
            sampler=c.sample_sampler,
            steps=c.sample_steps,
            guidance_scale=c.sample_guidance,
        )

    def export(self, state, directory: Path) -> Path:  # type: ignore[no-untyped-def]
        """``out_dir/learned_embeds.safetensors`` (the diffusers format), not a whole model."""
        vectors = state.model.vectors.detach()
        return save_learned_embeds({self.config.placeholder_token: vectors}, state.out_dir / LEARNED_EMBEDS)
