"""The text-conditioned UNet of latent diffusion / Stable Diffusion (Rombach et al. 2022, CompVis/stable-diffusion
``openaimodel.py``), weight-compatible with diffusers' ``UNet2DConditionModel``.

eps(z_t, t, c): a sinusoidal timestep code through an MLP conditions every resnet; down blocks halve the
resolution, the deepest blocks and the middle cross-attend to the text states ``c`` through spatial transformers,
up blocks mirror the way down with skip connections. Built from ``zoo_core.nn`` (resnets, resampling, timestep
embeddings, spatial transformers, cross-attention blocks).

diffusers' ``attention_head_dim`` is, for historical reasons, the number of heads per block (8 for SD v1, per-block
[5, 10, 20, 20] for SD v2): each spatial transformer has ``attention_head_dim`` heads of ``channels / heads``
channels. We follow that reading so published configs mean what they mean there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from zoo_core.config import Config
from zoo_core.errors import ConfigError
from zoo_core.nn import DownBlock2D, TimestepEmbedding, Timesteps, UpBlock2D, activation
from zoo_core.nn.cross_attention_blocks import (
    CrossAttnDownBlock2D,
    CrossAttnUpBlock2D,
    UNetMidBlock2DCrossAttn,
)

IntOrList = int | list[int]

# diffusers options we do not implement, with the value that means "off" (a published config may name them).
_UNSUPPORTED_DEFAULTS: dict[str, Any] = {
    "class_embed_type": None,
    "addition_embed_type": None,
    "addition_time_embed_dim": None,
    "num_class_embeds": None,
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "dual_cross_attention": False,
    "time_embedding_type": "positional",
    "time_embedding_dim": None,
    "time_embedding_act_fn": None,
    "timestep_post_act": None,
    "time_cond_proj_dim": None,
    "projection_class_embeddings_input_dim": None,
    "attention_type": "default",
    "class_embeddings_concat": False,
    "mid_block_only_cross_attention": None,
    "cross_attention_norm": None,
    "resnet_skip_time_act": False,
    "resnet_out_scale_factor": 1.0,
    "reverse_transformer_layers_per_block": None,
}
# Keys that change nothing in the network we build (upcast_attention: our attention softmax runs in float32).
_IGNORED = {
    "_class_name",
    "_diffusers_version",
    "_name_or_path",
    "upcast_attention",
    "addition_embed_type_num_heads",
}


class UNet2DConditionConfig(Config):
    """The fields of diffusers' ``UNet2DConditionModel`` config that Stable Diffusion v1/v2 use."""

    sample_size: int | list[int] | None = None
    in_channels: int = 4
    out_channels: int = 4
    center_input_sample: bool = False
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    down_block_types: list[str] = Field(
        default_factory=lambda: ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
    )
    mid_block_type: Literal["UNetMidBlock2DCrossAttn"] | None = "UNetMidBlock2DCrossAttn"
    up_block_types: list[str] = Field(default_factory=lambda: ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
    only_cross_attention: bool | list[bool] = False
    block_out_channels: list[int] = Field(default_factory=lambda: [320, 640, 1280, 1280])
    layers_per_block: IntOrList = 2
    downsample_padding: int = 1
    mid_block_scale_factor: float = 1.0
    dropout: float = 0.0
    act_fn: str = "silu"
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    cross_attention_dim: IntOrList = 1280
    transformer_layers_per_block: IntOrList = 1
    attention_head_dim: IntOrList = 8
    num_attention_heads: IntOrList | None = None
    use_linear_projection: bool = False
    resnet_time_scale_shift: Literal["default", "scale_shift"] = "default"
    conv_in_kernel: int = 3
    conv_out_kernel: int = 3

    @classmethod
    def from_diffusers(cls, data: Mapping[str, Any], where: str = "") -> UNet2DConditionConfig:
        """Read a diffusers ``unet/config.json``; an option we do not implement set to anything but its "off"
        value is a ConfigError naming it."""
        unsupported = {
            k: v for k, v in data.items() if k in _UNSUPPORTED_DEFAULTS and v != _UNSUPPORTED_DEFAULTS[k]
        }
        if unsupported:
            raise ConfigError(
                f"UNet2DConditionModel config{' in ' + where if where else ''} uses options zoo does not "
                f"implement: {unsupported}"
            )
        kept = {k: v for k, v in data.items() if k not in _UNSUPPORTED_DEFAULTS and k not in _IGNORED}
        return cls.parse(kept, where=where)

    def per_block(self, name: str, value: Any) -> list[Any]:
        n = len(self.down_block_types)
        values = list(value) if isinstance(value, list | tuple) else [value] * n
        if len(values) != n:
            raise ConfigError(f"{name} has {len(values)} entries but there are {n} down blocks")
        return values


class UNet2DConditionModel(nn.Module):
    """``forward(sample, timestep, encoder_hidden_states) -> prediction`` with the layout of the config."""

    def __init__(self, config: UNet2DConditionConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.config = c = UNet2DConditionConfig.parse(config, where="UNet2DConditionModel")
        n = len(c.block_out_channels)
        if len(c.down_block_types) != n or len(c.up_block_types) != n:
            raise ConfigError(
                f"UNet2DConditionModel needs one down and one up block per entry of block_out_channels ({n}), "
                f"got {len(c.down_block_types)} down and {len(c.up_block_types)} up blocks"
            )
        heads = c.per_block("num_attention_heads", c.num_attention_heads or c.attention_head_dim)
        cross_dims = c.per_block("cross_attention_dim", c.cross_attention_dim)
        layers = c.per_block("layers_per_block", c.layers_per_block)
        depths = c.per_block("transformer_layers_per_block", c.transformer_layers_per_block)
        only_cross = c.per_block("only_cross_attention", c.only_cross_attention)
        ch = c.block_out_channels
        time_dim = ch[0] * 4

        self.conv_in = nn.Conv2d(c.in_channels, ch[0], c.conv_in_kernel, padding=(c.conv_in_kernel - 1) // 2)
        self.time_proj = Timesteps(ch[0], c.flip_sin_to_cos, c.freq_shift)
        self.time_embedding = TimestepEmbedding(ch[0], time_dim, act_fn=c.act_fn)

        common = dict(
            temb_channels=time_dim,
            dropout=c.dropout,
            resnet_eps=c.norm_eps,
            resnet_act_fn=c.act_fn,
            resnet_groups=c.norm_num_groups,
            resnet_time_scale_shift=c.resnet_time_scale_shift,
        )
        self.down_blocks = nn.ModuleList()
        for i, kind in enumerate(c.down_block_types):
            args = dict(
                in_channels=ch[max(i - 1, 0)],
                out_channels=ch[i],
                num_layers=layers[i],
                add_downsample=i < n - 1,
                downsample_padding=c.downsample_padding,
                **common,
            )
            if kind == "CrossAttnDownBlock2D":
                block: nn.Module = CrossAttnDownBlock2D(
                    **args,
                    transformer_layers_per_block=depths[i],
                    num_attention_heads=heads[i],
                    cross_attention_dim=cross_dims[i],
                    use_linear_projection=c.use_linear_projection,
                    only_cross_attention=only_cross[i],
                )
            elif kind == "DownBlock2D":
                block = DownBlock2D(**args)
            else:
                raise ConfigError(
                    f"Unsupported down block {kind!r}; expected CrossAttnDownBlock2D or DownBlock2D"
                )
            self.down_blocks.append(block)

        self.mid_block = None
        if c.mid_block_type is not None:
            self.mid_block = UNetMidBlock2DCrossAttn(
                ch[-1],
                transformer_layers_per_block=depths[-1],
                num_attention_heads=heads[-1],
                cross_attention_dim=cross_dims[-1],
                output_scale_factor=c.mid_block_scale_factor,
                use_linear_projection=c.use_linear_projection,
                **common,
            )

        self.num_upsamplers = n - 1
        rev_ch = list(reversed(ch))
        rev_heads, rev_layers = list(reversed(heads)), list(reversed(layers))
        rev_depths, rev_cross = list(reversed(depths)), list(reversed(cross_dims))
        rev_only_cross = list(reversed(only_cross))
        self.up_blocks = nn.ModuleList()
        for i, kind in enumerate(c.up_block_types):
            args = dict(
                in_channels=rev_ch[min(i + 1, n - 1)],
                prev_output_channel=rev_ch[max(i - 1, 0)],
                out_channels=rev_ch[i],
                num_layers=rev_layers[i] + 1,
                add_upsample=i < n - 1,
                **common,
            )
            if kind == "CrossAttnUpBlock2D":
                block = CrossAttnUpBlock2D(
                    **args,
                    transformer_layers_per_block=rev_depths[i],
                    num_attention_heads=rev_heads[i],
                    cross_attention_dim=rev_cross[i],
                    use_linear_projection=c.use_linear_projection,
                    only_cross_attention=rev_only_cross[i],
                )
            elif kind == "UpBlock2D":
                block = UpBlock2D(**args)
            else:
                raise ConfigError(f"Unsupported up block {kind!r}; expected CrossAttnUpBlock2D or UpBlock2D")
            self.up_blocks.append(block)

        self.conv_norm_out = nn.GroupNorm(c.norm_num_groups, ch[0], eps=c.norm_eps)
        self.conv_act = activation(c.act_fn)
        self.conv_out = nn.Conv2d(
            ch[0], c.out_channels, c.conv_out_kernel, padding=(c.conv_out_kernel - 1) // 2
        )

    def time_embed(
        self, timestep: torch.Tensor | float | int, batch: int, dtype: torch.dtype
    ) -> torch.Tensor:
        """The MLP-embedded timestep [batch, 4 * C0]; a scalar or 0-d timestep is shared by the whole batch."""
        device = self.conv_in.weight.device
        t = torch.as_tensor(timestep, device=device)
        if t.ndim == 0:
            t = t[None]
        t = t.to(device).expand(batch)
        return self.time_embedding(self.time_proj(t).to(dtype))

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``sample`` [B, C, H, W] latents, ``timestep`` scalar or [B], ``encoder_hidden_states`` [B, L, D] text
        states, ``encoder_attention_mask`` [B, L] (1 = attend) -> prediction [B, out_channels, H, W]."""
        # Sizes not divisible by the total downsampling need the upsamplers told the skip sizes.
        factor = 2**self.num_upsamplers
        forward_sizes = any(s % factor for s in sample.shape[-2:])
        mask = None
        if encoder_attention_mask is not None:
            mask = ((1 - encoder_attention_mask.to(sample.dtype)) * -10000.0)[:, None, None, :]
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        emb = self.time_embed(timestep, sample.shape[0], sample.dtype)

        x = self.conv_in(sample)
        skips: list[torch.Tensor] = [x]
        for block in self.down_blocks:
            if isinstance(block, CrossAttnDownBlock2D):
                x, outs = block(x, emb, encoder_hidden_states, encoder_attention_mask=mask)
            else:
                x, outs = block(x, emb)
            skips.extend(outs)
        if self.mid_block is not None:
            x = self.mid_block(x, emb, encoder_hidden_states, encoder_attention_mask=mask)
        for i, block in enumerate(self.up_blocks):
            k = len(block.resnets)
            res, skips = tuple(skips[-k:]), skips[:-k]
            size = tuple(skips[-1].shape[2:]) if forward_sizes and i < len(self.up_blocks) - 1 else None
            if isinstance(block, CrossAttnUpBlock2D):
                x = block(x, res, emb, encoder_hidden_states, size, encoder_attention_mask=mask)
            else:
                x = block(x, res, emb, size)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))
