"""The text-conditioned blocks of latent diffusion UNets: resnets interleaved with spatial transformers that
cross-attend to a conditioning sequence (Rombach et al. 2022, sec. 3.3).

Class and parameter names follow diffusers' ``CrossAttnDownBlock2D``, ``UNetMidBlock2DCrossAttn`` and
``CrossAttnUpBlock2D`` so Stable Diffusion UNet checkpoints load unchanged. Each block builds ``Transformer2DModel``
with ``num_attention_heads`` heads of ``out_channels // num_attention_heads`` channels; everything else (resnets,
resamplers, the forward passes) is ``unet_blocks``' with the transformers in the attention slot.
"""

from __future__ import annotations

from collections.abc import Sequence

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


class CrossAttnDownBlock2D(nn.Module):
    """(resnet -> spatial transformer) x ``num_layers``, then a 2x downsampler; returns every output for skips."""

    has_cross_attention = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
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
        downsample_padding: int = 1,
        add_downsample: bool = True,
        use_linear_projection: bool = False,
        only_cross_attention: bool = False,
    ) -> None:
        super().__init__()
        opts = ResnetOptions(
            dropout, resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift, output_scale_factor
        )
        self.downsample_type = "conv" if add_downsample else None
        self.attentions = _transformers(
            out_channels,
            num_attention_heads,
            num_layers,
            transformer_layers_per_block,
            cross_attention_dim=cross_attention_dim,
            groups=resnet_groups,
            use_linear_projection=use_linear_projection,
            only_cross_attention=only_cross_attention,
        )
        self.resnets = opts.stack(
            down_in_channels(in_channels, out_channels, num_layers), out_channels, temb_channels
        )
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


class CrossAttnUpBlock2D(nn.Module):
    """(concat one skip -> resnet -> spatial transformer) x ``num_layers``, then a 2x upsampler.

    ``in_channels`` is the width of the deepest skip this block consumes, ``prev_output_channel`` that of the
    block below, as in ``UpBlock2D``.
    """

    has_cross_attention = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        prev_output_channel: int,
        temb_channels: int,
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
        add_upsample: bool = True,
        use_linear_projection: bool = False,
        only_cross_attention: bool = False,
    ) -> None:
        super().__init__()
        opts = ResnetOptions(
            dropout, resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift, output_scale_factor
        )
        self.upsample_type = "conv" if add_upsample else None
        self.attentions = _transformers(
            out_channels,
            num_attention_heads,
            num_layers,
            transformer_layers_per_block,
            cross_attention_dim=cross_attention_dim,
            groups=resnet_groups,
            use_linear_projection=use_linear_projection,
            only_cross_attention=only_cross_attention,
        )
        widths = up_in_channels(in_channels, prev_output_channel, out_channels, num_layers)
        self.resnets = opts.stack(widths, out_channels, temb_channels)
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


class UNetMidBlock2DCrossAttn(nn.Module):
    """resnet, then ``num_layers`` x (spatial transformer, resnet), at the lowest resolution."""

    has_cross_attention = True

    def __init__(
        self,
        in_channels: int,
        temb_channels: int,
        dropout: float = 0.0,
        num_layers: int = 1,
        transformer_layers_per_block: int | Sequence[int] = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "silu",
        resnet_groups: int | None = 32,
        num_attention_heads: int = 1,
        output_scale_factor: float = 1.0,
        cross_attention_dim: int = 1280,
        use_linear_projection: bool = False,
        only_cross_attention: bool = False,
    ) -> None:
        super().__init__()
        groups = mid_groups(resnet_groups, in_channels)
        opts = ResnetOptions(
            dropout, resnet_eps, groups, resnet_act_fn, resnet_time_scale_shift, output_scale_factor
        )
        self.attentions = _transformers(
            in_channels,
            num_attention_heads,
            num_layers,
            transformer_layers_per_block,
            cross_attention_dim=cross_attention_dim,
            groups=groups,
            use_linear_projection=use_linear_projection,
            only_cross_attention=only_cross_attention,
        )
        self.resnets = opts.stack([in_channels] * (num_layers + 1), in_channels, temb_channels)

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
