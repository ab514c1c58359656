"""The CLIP text transformer (Radford et al. 2021), the text tower Stable Diffusion conditions on.

Token + learnt position embeddings, ``num_hidden_layers`` pre-LayerNorm blocks of causal self-attention and an
MLP (quick_gelu for OpenAI's CLIP, gelu for OpenCLIP), and a final LayerNorm. The per-token states of the last
layer are the UNet's cross-attention context; the state at the end token is the pooled text embedding.
``clip_skip=k`` takes the output of the k-th layer from the end instead, through the final LayerNorm, as
diffusers' ``encode_prompt`` does.

Parameter names follow the published ``text_encoder/`` checkpoints of transformers' ``CLIPTextModel``
(``text_model.embeddings.token_embedding.weight``, ``text_model.encoder.layers.0.self_attn.q_proj.weight``, ...)
so they load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from zoo_core.config import Config


class CLIPTextConfig(Config):
    """The fields of transformers' ``CLIPTextConfig`` that shape the network."""

    vocab_size: int = Field(49408, ge=1)
    hidden_size: int = Field(768, ge=1)
    intermediate_size: int = Field(3072, ge=1)
    num_hidden_layers: int = Field(12, ge=1)
    num_attention_heads: int = Field(12, ge=1)
    max_position_embeddings: int = Field(77, ge=1)
    hidden_act: Literal["quick_gelu", "gelu"] = "quick_gelu"
    layer_norm_eps: float = 1e-5
    eos_token_id: int = 2

    @classmethod
    def from_transformers(cls, data: Mapping[str, Any], where: str = "") -> CLIPTextConfig:
        """Read a transformers ``config.json`` (a text config, or a full CLIP config's ``text_config``)."""
        if "text_config" in data and isinstance(data["text_config"], Mapping):
            data = data["text_config"]
        fields = set(cls.model_fields)
        return cls.parse({k: v for k, v in data.items() if k in fields and v is not None}, where=where)


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """OpenAI CLIP's sigmoid approximation of GELU: x * sigmoid(1.702 x)."""
    return x * torch.sigmoid(1.702 * x)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x)


_ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": _gelu}


class CLIPTextEmbeddings(nn.Module):
    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embedding = nn.Embedding(config.max_position_embeddings, config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[-1]
        if length > self.position_embedding.num_embeddings:
            raise ValueError(
                f"{length} tokens do not fit the text encoder's {self.position_embedding.num_embeddings} "
                "positions; tokenize with truncation"
            )
        positions = self.position_embedding.weight[:length]
        return self.token_embedding(input_ids) + positions


class CLIPAttention(nn.Module):
    """Multi-head self-attention with the causal mask of a language model (each token sees its past)."""

    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__()
        dim, heads = config.hidden_size, config.num_attention_heads
        if dim % heads:
            raise ValueError(f"hidden_size {dim} is not a multiple of num_attention_heads {heads}")
        self.heads = heads
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, dim = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, dim // self.heads).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, dim))


class CLIPMLP(nn.Module):
    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__()
        self.act = _ACTIVATIONS[config.hidden_act]
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    """x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__()
        self.self_attn = CLIPAttention(config)
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = CLIPMLP(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CLIPEncoderLayer(config) for _ in range(config.num_hidden_layers))


@dataclass
class TextEncoderOutput:
    """``last_hidden_state`` [B, L, D] (after the final LayerNorm, from the layer ``clip_skip`` picks) and
    ``pooled`` [B, D], the final-layer state at each prompt's end token."""

    last_hidden_state: torch.Tensor
    pooled: torch.Tensor


class CLIPTextTransformer(nn.Module):
    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = CLIPTextEmbeddings(config)
        self.encoder = CLIPEncoder(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def end_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Index of each row's end token. Old configs (eos_token_id 2, e.g. SD v1) take the largest id, which is
        the end token in CLIP's vocabulary; newer ones the first occurrence of ``eos_token_id``."""
        if self.config.eos_token_id == 2:
            return input_ids.to(torch.int).argmax(dim=-1)
        return (input_ids == self.config.eos_token_id).to(torch.int).argmax(dim=-1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        clip_skip: int | None = None,
    ) -> TextEncoderOutput:
        n_layers = len(self.encoder.layers)
        skip = clip_skip or 0
        if not 0 <= skip < n_layers:
            raise ValueError(f"clip_skip must be in 0..{n_layers - 1} for this {n_layers}-layer text encoder")
        x = self.embeddings(input_ids)
        mask = None
        if attention_mask is not None:  # causal AND the key is not padding; True = attend
            n = input_ids.shape[-1]
            causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
            mask = causal[None, None] & attention_mask.to(torch.bool)[:, None, None, :]
        hidden = None
        for i, layer in enumerate(self.encoder.layers):
            x = layer(x, mask)
            if i == n_layers - 1 - skip:
                hidden = x
        final = self.final_layer_norm(x)
        rows = torch.arange(final.shape[0], device=final.device)
        pooled = final[rows, self.end_positions(input_ids).to(final.device)]
        last = final if skip == 0 else self.final_layer_norm(hidden)
        return TextEncoderOutput(last_hidden_state=last, pooled=pooled)


class CLIPTextModel(nn.Module):
    """The text tower under the ``text_model.`` prefix of transformers' checkpoints."""

    def __init__(self, config: CLIPTextConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.config = CLIPTextConfig.parse(config, where="CLIPTextModel")
        self.text_model = CLIPTextTransformer(self.config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        clip_skip: int | None = None,
    ) -> TextEncoderOutput:
        return self.text_model(input_ids, attention_mask=attention_mask, clip_skip=clip_skip)

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.text_model.embeddings.token_embedding


def convert_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers CLIP text checkpoint -> our keys: drops the ``position_ids`` buffer older files carry, adds
    the ``text_model.`` prefix when a file was saved without it, and drops a text projection if present."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith("embeddings.position_ids") or key.startswith("text_projection."):
            continue
        if not key.startswith("text_model."):
            key = "text_model." + key
        out[key] = value
    return out
