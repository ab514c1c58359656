"""The ``clip-text`` conditioner: prompts -> CLIP text states, the cross-attention context of latent UNets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from zoo_core.conditioner import Conditioner
from zoo_latent.text_encoder import CLIPTextModel
from zoo_latent.tokenizer import CLIPTokenizer


class CLIPTextConditioner(Conditioner):
    """``encode(prompts)`` -> ``{"encoder_hidden_states": [B, 77, D]}``; ``null(n)`` encodes n empty prompts, the
    unconditional branch of classifier-free guidance. ``clip_skip=k`` takes the k-th layer from the end."""

    name: ClassVar[str] = "clip-text"

    def __init__(
        self, tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, clip_skip: int | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.clip_skip = clip_skip

    def encode(self, batch: str | Sequence[str]) -> dict[str, torch.Tensor]:
        prompts = [batch] if isinstance(batch, str) else list(batch)
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("clip-text encodes prompts: a string or a list of strings")
        ids = self.tokenizer(prompts)
        limit = self.text_encoder.config.max_position_embeddings
        if ids.shape[1] > limit:
            raise ValueError(f"the tokenizer makes {ids.shape[1]} tokens but the text encoder takes {limit}")
        device = self.text_encoder.token_embedding.weight.device
        states = self.text_encoder(ids.to(device), clip_skip=self.clip_skip).last_hidden_state
        return {"encoder_hidden_states": states}

    def null(self, n: int) -> dict[str, torch.Tensor]:
        return self.encode([""] * n)
