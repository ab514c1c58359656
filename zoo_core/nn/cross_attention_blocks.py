"""The text-conditioned blocks of latent diffusion UNets: resnets interleaved with spatial transformers that
cross-attend to a conditioning sequence (Rombach et al. 2022, sec. 3.3).

Class and parameter names follow diffusers' ``CrossAttnDownBlock2D``, ``UNetMidBlock2DCrossAttn`` and
``CrossAttnUpBlock2D`` so Stable Diffusion UNet checkpoints load unchanged. Each block builds ``Transformer2DModel``
with ``num_attention_heads`` heads of ``out_channels // num_attention_heads`` channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo_core.nn.resampling import Downsample2D, Upsample2D
from zoo_core.nn.resnet import ResnetBlock2D
from zoo_core.nn.transformer import Transformer2DModel


def _per_layer(value: int | Sequence[int], num_layers: int) -> list[int]:
    values = [value] * num_layers if isinstance(value, int) else list(value)
    if len(values) != num_layers:
        raise ValueError(f"transformer_layers_per_block has {len(values)} entries for {num_layers} layers")
    return values


def _transformer(
    channels: int,
    heads: int,
    depth: int,
    *,
    cross_attention_dim: int,
    groups: int,
    use_linear_projection: bool,
    only_cross_attention: bool,
) -> Transformer2DModel:
    if channels % heads:
        raise ValueError(f"{channels} channels do not split into {heads} attention heads")
    return Transformer2DModel(
        heads,
        channels // heads,
        in_channels=channels,
        num_layers=depth,
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=groups,
        use_linear_projection=use_linear_projection,
        only_cross_attention=only_cross_attention,
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
        depths = _per_layer(transformer_layers_per_block, num_layers)
        self.attentions = nn.ModuleList(
            _transformer(
                out_channels,
                num_attention_heads,
                depths[i],
                cross_attention_dim=cross_attention_dim,
                groups=resnet_groups,
                use_linear_projection=use_linear_projection,
                only_cross_attention=only_cross_attention,
            )
            for i in range(num_layers)
        )
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                in_channels=in_channels if i == 0 else out_channels,
                out_channels=out_channels,
                temb_channels=temb_channels,
                eps=resnet_eps,
                groups=resnet_groups,
                dropout=dropout,
                time_embedding_norm=resnet_time_scale_shift,
                non_linearity=resnet_act_fn,
                output_scale_factor=output_scale_factor,
            )
            for i in range(num_layers)
        )
        self.downsamplers = (
            nn.ModuleList(
                [
                    Downsample2D(
                        out_channels, use_conv=True, out_channels=out_channels, padding=downsample_padding
                    )
                ]
            )
            if add_downsample
            else None
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        temb: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        outputs: list[torch.Tensor] = []
        for resnet, attn in zip(self.resnets, self.attentions, strict=True):
            hidden_states = resnet(hidden_states, temb)
            hidden_states = attn(hidden_states, encoder_hidden_states, attention_mask, encoder_attention_mask)
            outputs.append(hidden_states)
        if self.downsamplers is not None:
            hidden_states = self.downsamplers[0](hidden_states)
            outputs.append(hidden_states)
        return hidden_states, tuple(outputs)


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
        depths = _per_layer(transformer_layers_per_block, num_layers)
        self.attentions = nn.ModuleList(
            _transformer(
                out_channels,
                num_attention_heads,
                depths[i],
                cross_attention_dim=cross_attention_dim,
                groups=resnet_groups,
                use_linear_projection=use_linear_projection,
                only_cross_attention=only_cross_attention,
            )
            for i in range(num_layers)
        )
        resnets = []
        for i in range(num_layers):
            skip = in_channels if i == num_layers - 1 else out_channels
            below = prev_output_channel if i == 0 else out_channels
            resnets.append(
                ResnetBlock2D(
                    in_channels=below + skip,
                    out_channels=out_channels,
                    temb_channels=temb_channels,
                    eps=resnet_eps,
                    groups=resnet_groups,
                    dropout=dropout,
                    time_embedding_norm=resnet_time_scale_shift,
                    non_linearity=resnet_act_fn,
                    output_scale_factor=output_scale_factor,
                )
            )
        self.resnets = nn.ModuleList(resnets)
        self.upsamplers = (
            nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)])
            if add_upsample
            else None
        )

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
        skips = list(res_hidden_states_tuple)
        for resnet, attn in zip(self.resnets, self.attentions, strict=True):
            hidden_states = resnet(torch.cat([hidden_states, skips.pop()], dim=1), temb)
            hidden_states = attn(hidden_states, encoder_hidden_states, attention_mask, encoder_attention_mask)
        if self.upsamplers is not None:
            hidden_states = self.upsamplers[0](hidden_states, upsample_size)
        return hidden_states


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
        groups = resnet_groups if resnet_groups is not None else min(in_channels // 4, 32)
        depths = _per_layer(transformer_layers_per_block, num_layers)
        self.attentions = nn.ModuleList(
            _transformer(
                in_channels,
                num_attention_heads,
                depths[i],
                cross_attention_dim=cross_attention_dim,
                groups=groups,
                use_linear_projection=use_linear_projection,
                only_cross_attention=only_cross_attention,
            )
            for i in range(num_layers)
        )
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                in_channels=in_channels,
                out_channels=in_channels,
                temb_channels=temb_channels,
                eps=resnet_eps,
                groups=groups,
                dropout=dropout,
                time_embedding_norm=resnet_time_scale_shift,
                non_linearity=resnet_act_fn,
                output_scale_factor=output_scale_factor,
            )
            for _ in range(num_layers + 1)
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        temb: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden_states = self.resnets[0](hidden_states, temb)
        for attn, resnet in zip(self.attentions, self.resnets[1:], strict=True):
            hidden_states = attn(hidden_states, encoder_hidden_states, attention_mask, encoder_attention_mask)
            hidden_states = resnet(hidden_states, temb)
        return hidden_states
