"""The DDPM UNet (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", hojonathanho/diffusion), built from
the core's shared blocks so that diffusers ``UNet2DModel`` weights (``google/ddpm-cifar10-32``, ``-church-256``,
``-celebahq-256``, ...) load unchanged.

Wide-ResNet blocks at each resolution, self-attention at some (16x16 for CIFAR-10), a sinusoidal timestep
embedding through an MLP added inside every block, skip connections from each down stage to the up stage of the
same resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from zoo_core.config import Config
from zoo_core.errors import ConfigError
from zoo_core.nn import (
    AttnDownBlock2D,
    AttnUpBlock2D,
    DownBlock2D,
    TimestepEmbedding,
    Timesteps,
    UNetMidBlock2D,
    UpBlock2D,
)

DownBlockType = Literal["DownBlock2D", "AttnDownBlock2D"]
UpBlockType = Literal["UpBlock2D", "AttnUpBlock2D"]
_DOWN = {"DownBlock2D": DownBlock2D, "AttnDownBlock2D": AttnDownBlock2D}
_UP = {"UpBlock2D": UpBlock2D, "AttnUpBlock2D": AttnUpBlock2D}

# Keys of a diffusers UNet2DModel config.json that carry no architecture: dropped when reading one.
DIFFUSERS_IGNORED_KEYS = ("_class_name", "_diffusers_version", "_name_or_path", "_use_default_values")


class UNet2DConfig(Config):
    """The fields of diffusers' ``UNet2DModel`` config that DDPM-style checkpoints use, with diffusers' defaults
    (so a diffusers ``config.json`` that omits a field means the same thing here).

    Not supported (a clear error if set): ``time_embedding_type`` "fourier"/"learned" (score-SDE / NCSN++
    checkpoints), ``class_embed_type`` other than none, and the FIR "Skip" blocks. ``num_train_timesteps`` is
    accepted and ignored (it only sizes the "learned" embedding).
    """

    sample_size: int | tuple[int, int] = 32
    in_channels: int = Field(3, ge=1)
    out_channels: int = Field(3, ge=1)
    center_input_sample: bool = False
    time_embedding_type: Literal["positional"] = "positional"
    time_embedding_dim: int | None = Field(None, ge=1)
    freq_shift: float = 0
    flip_sin_to_cos: bool = True
    down_block_types: tuple[DownBlockType, ...] = (
        "DownBlock2D",
        "AttnDownBlock2D",
        "AttnDownBlock2D",
        "AttnDownBlock2D",
    )
    mid_block_type: Literal["UNetMidBlock2D"] | None = "UNetMidBlock2D"
    up_block_types: tuple[UpBlockType, ...] = ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D")
    block_out_channels: tuple[int, ...] = (224, 448, 672, 896)
    layers_per_block: int = Field(2, ge=1)
    mid_block_scale_factor: float = 1.0
    downsample_padding: int = Field(1, ge=0, le=1)
    downsample_type: Literal["conv", "resnet"] = "conv"
    upsample_type: Literal["conv", "resnet"] = "conv"
    dropout: float = Field(0.0, ge=0, lt=1)
    act_fn: Literal["silu", "swish", "mish", "gelu", "relu"] = "silu"
    attention_head_dim: int | None = Field(8, ge=1)
    norm_num_groups: int = Field(32, ge=1)
    attn_norm_num_groups: int | None = Field(None, ge=1)
    norm_eps: float = Field(1e-5, gt=0)
    resnet_time_scale_shift: Literal["default", "scale_shift"] = "default"
    add_attention: bool = True
    class_embed_type: None = None
    num_class_embeds: int | None = Field(None, ge=1)
    num_train_timesteps: int | None = None

    @model_validator(mode="after")
    def _consistent(self) -> UNet2DConfig:
        n = len(self.block_out_channels)
        if n == 0 or len(self.down_block_types) != n or len(self.up_block_types) != n:
            raise ValueError(
                f"block_out_channels ({n}), down_block_types ({len(self.down_block_types)}) and up_block_types "
                f"({len(self.up_block_types)}) must have the same, non-zero length"
            )
        bad = [c for c in self.block_out_channels if c % self.norm_num_groups]
        if bad:
            raise ValueError(
                f"block_out_channels {bad} are not divisible by norm_num_groups={self.norm_num_groups}"
            )
        return self

    @property
    def image_size(self) -> tuple[int, int]:
        s = self.sample_size
        return (s, s) if isinstance(s, int) else (int(s[0]), int(s[1]))

    @classmethod
    def from_diffusers(cls, data: Mapping[str, Any], where: str = "a diffusers config") -> UNet2DConfig:
        """Parse a diffusers ``UNet2DModel`` ``config.json`` (dict), dropping ``DIFFUSERS_IGNORED_KEYS``."""
        if data.get("_class_name", "UNet2DModel") != "UNet2DModel":
            raise ConfigError(f"{where} describes a {data['_class_name']}, not a UNet2DModel")
        return cls.parse({k: v for k, v in data.items() if k not in DIFFUSERS_IGNORED_KEYS}, where=where)

    def to_diffusers(self) -> dict[str, Any]:
        """This config as the keyword arguments of diffusers' ``UNet2DModel`` (for tests and export)."""
        return self.model_dump(mode="json")


class UNet2D(nn.Module):
    """The UNet; ``forward(sample [B, C, H, W], timestep [B] | scalar, class_labels=None) -> [B, C_out, H, W]``.

    Module and parameter names equal diffusers' ``UNet2DModel`` so its state dict loads without renaming.
    """

    def __init__(self, config: UNet2DConfig | Mapping[str, Any]) -> None:
        super().__init__()
        cfg = self.config = UNet2DConfig.parse(config, where="UNet2D")
        channels = cfg.block_out_channels
        time_dim = cfg.time_embedding_dim or channels[0] * 4
        common = dict(
            temb_channels=time_dim,
            dropout=cfg.dropout,
            resnet_eps=cfg.norm_eps,
            resnet_act_fn=cfg.act_fn,
            resnet_groups=cfg.norm_num_groups,
            resnet_time_scale_shift=cfg.resnet_time_scale_shift,
        )

        self.conv_in = nn.Conv2d(cfg.in_channels, channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(channels[0], cfg.flip_sin_to_cos, cfg.freq_shift)
        self.time_embedding = TimestepEmbedding(channels[0], time_dim)
        self.class_embedding = nn.Embedding(cfg.num_class_embeds, time_dim) if cfg.num_class_embeds else None

        self.down_blocks = nn.ModuleList()
        self.up_blocks = nn.ModuleList()  # registered before mid_block, as diffusers' state dicts are ordered
        out_ch = channels[0]
        for i, kind in enumerate(cfg.down_block_types):
            in_ch, out_ch = out_ch, channels[i]
            last = i == len(channels) - 1
            extra: dict[str, Any] = {"downsample_padding": cfg.downsample_padding}
            if kind == "AttnDownBlock2D":  # diffusers gives plain DownBlock2D a conv downsampler always
                extra.update(attention_head_dim=cfg.attention_head_dim, downsample_type=cfg.downsample_type)
            self.down_blocks.append(
                _DOWN[kind](
                    in_channels=in_ch,
                    out_channels=out_ch,
                    num_layers=cfg.layers_per_block,
                    add_downsample=not last,
                    **common,
                    **extra,
                )
            )

        self.mid_block = None
        if cfg.mid_block_type is not None:
            self.mid_block = UNetMidBlock2D(
                in_channels=channels[-1],
                attn_groups=cfg.attn_norm_num_groups,
                add_attention=cfg.add_attention,
                attention_head_dim=cfg.attention_head_dim,
                output_scale_factor=cfg.mid_block_scale_factor,
                **common,
            )

        reversed_channels = list(reversed(channels))
        out_ch = reversed_channels[0]
        for i, kind in enumerate(cfg.up_block_types):
            prev_ch, out_ch = out_ch, reversed_channels[i]
            skip_ch = reversed_channels[min(i + 1, len(channels) - 1)]
            last = i == len(channels) - 1
            extra = {}
            if kind == "AttnUpBlock2D":
                extra.update(attention_head_dim=cfg.attention_head_dim, upsample_type=cfg.upsample_type)
            self.up_blocks.append(
                _UP[kind](
                    in_channels=skip_ch,
                    prev_output_channel=prev_ch,
                    out_channels=out_ch,
                    num_layers=cfg.layers_per_block + 1,
                    add_upsample=not last,
                    **common,
                    **extra,
                )
            )

        self.conv_norm_out = nn.GroupNorm(cfg.norm_num_groups, channels[0], eps=cfg.norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(channels[0], cfg.out_channels, kernel_size=3, padding=1)

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    def check_input(self, sample: torch.Tensor) -> None:
        """Raise a ValueError naming the bad shape: [B, in_channels, H, W] with H, W divisible by the UNet's depth."""
        cfg = self.config
        if sample.ndim != 4 or sample.shape[1] != cfg.in_channels:
            raise ValueError(
                f"UNet2D expects images [B, {cfg.in_channels}, H, W], got shape {tuple(sample.shape)}"
            )
        factor = self.downsampling_factor
        if sample.shape[-2] % factor or sample.shape[-1] % factor:
            raise ValueError(
                f"UNet2D with {len(cfg.block_out_channels)} levels needs H and W divisible by {factor}, "
                f"got {tuple(sample.shape[-2:])}"
            )

    def _time_embedding(
        self,
        timestep: torch.Tensor | float,
        batch: int,
        device: torch.device,
        class_labels: torch.Tensor | None,
    ) -> torch.Tensor:
        t = torch.as_tensor(timestep, device=device)
        if t.ndim == 0:
            t = t.expand(batch)
        elif t.shape != (batch,):
            raise ValueError(f"timestep must be a scalar or a tensor [{batch}], got shape {tuple(t.shape)}")
        weight = self.time_embedding.linear_1.weight
        emb = self.time_embedding(self.time_proj(t).to(weight.dtype))
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError(
                    "this UNet is class-conditional (num_class_embeds is set): pass class_labels"
                )
            emb = emb + self.class_embedding(class_labels).to(emb.dtype)
        elif class_labels is not None:
            raise ValueError(
                "class_labels given to a UNet without a class embedding (num_class_embeds is unset)"
            )
        return emb

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        class_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self.check_input(sample)
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        emb = self._time_embedding(timestep, sample.shape[0], sample.device, class_labels)

        hidden = self.conv_in(sample)
        skips: list[torch.Tensor] = [hidden]
        for block in self.down_blocks:
            hidden, outputs = block(hidden, emb)
            skips.extend(outputs)
        if self.mid_block is not None:
            hidden = self.mid_block(hidden, emb)
        for block in self.up_blocks:
            n = len(block.resnets)
            hidden = block(hidden, tuple(skips[-n:]), emb)
            del skips[-n:]
        return self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
