"""The text-conditioned blocks of latent diffusion UNets: resnets interleaved with spatial transformers that
cross-attend to a conditioning sequence (Rombach et al. 2022, sec. 3.3).

Class and parameter names follow diffusers' ``CrossAttnDownBlock2D``, ``UNetMidBlock2DCrossAttn`` and
``CrossAttnUpBlock2D`` so Stable Diffusion UNet checkpoints load unchanged. Each block builds ``Transformer2DModel``
with ``num_attention_heads`` heads of ``out_channels // num_attention_heads`` channels; everything else (resnets,
resamplers, the forward passes) is ``unet_blocks``' with the transformers in the attention slot. The arguments the
three blocks share (diffusers' names) are declared once, by ``CrossAttentionBlock``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from zoo_core.nn.transformer import Transformer2DModel
from zoo_core.nn.unet_blocks import (
    ResnetOptions,
    conv_downsampler,
    conv_upsampler,
    down_forward,
    down_in_channels,
    mid_forward,
    mid_groups,
    up_forward,
    up_in_channels,
)


def _per_layer(value: int | Sequence[int], num_layers: int) -> list[int]:
    values = [value] * num_layers if isinstance(value, int) else list(value)
    if len(values) != num_layers:
        raise ValueError(f"transformer_layers_per_block has {len(values)} entries for {num_layers} layers")
    return values


def _transformers(
    channels: int,
    heads: int,
    num_layers: int,
    depths: int | Sequence[int],
    *,
    cross_attention_dim: int,
    groups: int,
    use_linear_projection: bool,
    only_cross_attention: bool,
) -> nn.ModuleList:
    """One spatial transformer per layer, ``depths`` (one for all, or per layer) transformer blocks deep."""
    depths = _per_layer(depths, num_layers)
    if channels % heads:
        raise ValueError(f"{channels} channels do not split into {heads} attention heads")
    return nn.ModuleList(
        Transformer2DModel(
            heads,
            channels // heads,
            in_channels=channels,
            num_layers=depth,
            cross_attention_dim=cross_attention_dim,
            norm_num_groups=groups,
            use_linear_projection=use_linear_projection,
            only_cross_attention=only_cross_attention,
        )
        for depth in depths
    )


class CrossAttentionBlock(nn.Module):
    """What the three blocks share: their resnets' options and one spatial transformer per layer, built first (the
    order random init draws in, so seeded weights match diffusers'). Subclasses add their resnets and resamplers
    from ``resnet_options`` and ``num_layers``."""

    has_cross_attention = True

    def __init__(
        self,
        channels: int,
        dropout: float = 0.0,
        num_layers: int = 1,
        transformer_layers_per_block: int | Sequence[int] = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "silu",
        resnet_groups: int = 32,
        num_attention_heads: int = 1,
        cross_attention_dim: int = 1280,
        output_scale_factor: float = 1.0,
        use_linear_projection: bool = False,
        only_cross_attention: bool = False,
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.resnet_options = ResnetOptions(
            dropout, resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift, output_scale_factor
        )
        self.attentions = _transformers(
            channels,
            num_attention_heads,
            num_layers,
            transformer_layers_per_block,
            cross_attention_dim=cross_attention_dim,
            groups=resnet_groups,
            use_linear_projection=use_linear_projection,
            only_cross_attention=only_cross_attention,
        )


class CrossAttnDownBlock2D(CrossAttentionBlock):
    """(resnet -> spatial transformer) x ``num_layers``, then a 2x downsampler; returns every output for skips.

    ``shared`` are ``CrossAttentionBlock``'s arguments (dropout, num_layers, resnet_*, num_attention_heads, ...).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        *,
        downsample_padding: int = 1,
        add_downsample: bool = True,
        **shared: Any,
    ) -> None:
        super().__init__(out_channels, **shared)
        self.downsample_type = "conv" if add_downsample else None
        widths = down_in_channels(in_channels, out_channels, self.num_layers)
        self.resnets = self.resnet_options.stack(widths, out_channels, temb_channels)
        self.downsamplers = conv_downsampler(out_channels, downsample_padding) if add_downsample else None

    def forward(
        self,
        hidden_states: torch.Tensor,
        temb: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        return down_forward(
            self, hidden_states, temb, encoder_hidden_states, attention_mask, encoder_attention_mask
        )


class CrossAttnUpBlock2D(CrossAttentionBlock):
    """(concat one skip -> resnet -> spatial transformer) x ``num_layers``, then a 2x upsampler.

    ``in_channels`` is the width of the deepest skip this block consumes, ``prev_output_channel`` that of the
    block below, as in ``UpBlock2D``; ``shared`` are ``CrossAttentionBlock``'s arguments.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        prev_output_channel: int,
        temb_channels: int,
        *,
        add_upsample: bool = True,
        **shared: Any,
    ) -> None:
        super().__init__(out_channels, **shared)
        self.upsample_type = "conv" if add_upsample else None
        widths = up_in_channels(in_channels, prev_output_channel, out_channels, self.num_layers)
        self.resnets = self.resnet_options.stack(widths, out_channels, temb_channels)
        self.upsamplers = conv_upsampler(out_channels) if add_upsample else None

    def forward(
        self,
        hidden_states: torch.Tensor,
        res_hidden_states_tuple: tuple[torch.Tensor, ...],
        temb: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        upsample_size: tuple[int, int] | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return up_forward(
            self,
            hidden_states,
            res_hidden_states_tuple,
            temb,
            upsample_size,
            encoder_hidden_states,
            attention_mask,
            encoder_attention_mask,
        )


class UNetMidBlock2DCrossAttn(CrossAttentionBlock):
    """resnet, then ``num_layers`` x (spatial transformer, resnet), at the lowest resolution.

    ``shared`` are ``CrossAttentionBlock``'s arguments; ``resnet_groups`` None picks diffusers' mid-block default.
    """

    def __init__(
        self, in_channels: int, temb_channels: int, *, resnet_groups: int | None = 32, **shared: Any
    ) -> None:
        super().__init__(in_channels, resnet_groups=mid_groups(resnet_groups, in_channels), **shared)
        widths = [in_channels] * (self.num_layers + 1)
        self.resnets = self.resnet_options.stack(widths, in_channels, temb_channels)

    def forward(
        self,
        hidden_states: torch.Tensor,
        temb: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return mid_forward(
            self, hidden_states, temb, encoder_hidden_states, attention_mask, encoder_attention_mask
        )
