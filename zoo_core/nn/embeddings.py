"""Timestep embeddings: the sinusoidal position code of Transformers (Vaswani et al.) applied to diffusion time.

DDPM (Ho et al. 2020, appendix B) feeds the timestep through a sinusoidal embedding and a two-layer MLP; every
UNet in the zoo does the same. Parameter names follow diffusers (``linear_1``/``linear_2``) so its weights load.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo_core.nn.activations import activation


def timestep_embedding(
    timesteps: torch.Tensor,
    dim: int,
    *,
    flip_sin_to_cos: bool = False,
    downscale_freq_shift: float = 1.0,
    scale: float = 1.0,
    max_period: float = 10000.0,
) -> torch.Tensor:
    """[N] timesteps (fractional allowed) -> [N, dim] float32 embedding.

    Frequencies are ``max_period ** (-i / (dim/2 - downscale_freq_shift))`` for i < dim/2; the output is
    ``[sin, cos]`` (``[cos, sin]`` with ``flip_sin_to_cos``), zero-padded when ``dim`` is odd. The original DDPM
    code uses shift 1 and sin-first; Stable Diffusion uses shift 0 and cos-first.
    """
    if timesteps.ndim != 1:
        raise ValueError(f"timesteps must be a 1-D tensor [N], got shape {tuple(timesteps.shape)}")
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=timesteps.device) * (-math.log(max_period))
    freqs = torch.exp(exponent / (half - downscale_freq_shift))
    args = scale * (timesteps[:, None].float() * freqs[None, :])
    first, second = (
        (torch.cos(args), torch.sin(args)) if flip_sin_to_cos else (torch.sin(args), torch.cos(args))
    )
    emb = torch.cat([first, second], dim=-1)
    if dim % 2 == 1:
        emb = nn.functional.pad(emb, (0, 1))
    return emb


class Timesteps(nn.Module):
    """The parameter-free sinusoidal embedding as a module (diffusers' ``time_proj``)."""

    def __init__(
        self, num_channels: int, flip_sin_to_cos: bool, downscale_freq_shift: float, scale: float = 1.0
    ) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.flip_sin_to_cos = flip_sin_to_cos
        self.downscale_freq_shift = downscale_freq_shift
        self.scale = scale

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        return timestep_embedding(
            timesteps,
            self.num_channels,
            flip_sin_to_cos=self.flip_sin_to_cos,
            downscale_freq_shift=self.downscale_freq_shift,
            scale=self.scale,
        )


class TimestepEmbedding(nn.Module):
    """The MLP after the sinusoidal code: linear -> act -> linear (-> post_act), with an optional ``cond_proj``
    that adds a projected condition to the input (used by some distilled SD variants)."""

    def __init__(
        self,
        in_channels: int,
        time_embed_dim: int,
        act_fn: str = "silu",
        out_dim: int | None = None,
        post_act_fn: str | None = None,
        cond_proj_dim: int | None = None,
        sample_proj_bias: bool = True,
    ) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim, sample_proj_bias)
        self.cond_proj = nn.Linear(cond_proj_dim, in_channels, bias=False) if cond_proj_dim else None
        self.act = activation(act_fn)
        self.linear_2 = nn.Linear(time_embed_dim, out_dim or time_embed_dim, sample_proj_bias)
        self.post_act = activation(post_act_fn) if post_act_fn else None

    def forward(self, sample: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if condition is not None:
            if self.cond_proj is None:
                raise ValueError(
                    "this TimestepEmbedding was built without cond_proj_dim; it takes no condition"
                )
            sample = sample + self.cond_proj(condition)
        sample = self.linear_2(self.act(self.linear_1(sample)))
        return self.post_act(sample) if self.post_act is not None else sample
