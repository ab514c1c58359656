"""The down, middle and up blocks of DDPM-family UNets, and of the VAE encoder/decoder of latent models.

Each block is a stack of ``ResnetBlock2D`` (optionally each followed by an ``Attention``) with an optional 2x
resampler at its end. The parts every block kind shares (``ResnetOptions``, the channel plans, the resamplers and
the ``down_forward`` / ``up_forward`` / ``mid_forward`` passes) are also what ``cross_attention_blocks`` builds on. Class and parameter names follow diffusers' ``unet_2d_blocks`` so that a config naming
``"AttnDownBlock2D"`` builds the same modules with the same state-dict keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zoo_core.nn.attention import Attention
from zoo_core.nn.resampling import Downsample2D, Upsample2D
from zoo_core.nn.resnet import ResnetBlock2D


@dataclass(frozen=True)
class ResnetOptions:
    """What every resnet of one block shares: diffusers' ``resnet_*`` arguments of the block."""

    dropout: float
    eps: float
    groups: int
    act_fn: str
    time_scale_shift: str
    output_scale_factor: float

    def build(
        self, in_channels: int, out_channels: int, temb_channels: int | None, **kwargs: Any
    ) -> ResnetBlock2D:
        return ResnetBlock2D(
            in_channels=in_channels,
            out_channels=out_channels,
            temb_channels=temb_channels,
            eps=self.eps,
            groups=self.groups,
            dropout=self.dropout,
            time_embedding_norm=self.time_scale_shift,
            non_linearity=self.act_fn,
            output_scale_factor=self.output_scale_factor,
            **kwargs,
        )

    def stack(
        self, in_channels: Sequence[int], out_channels: int, temb_channels: int | None
    ) -> nn.ModuleList:
        """One resnet per entry of ``in_channels``, each to ``out_channels``."""
        return nn.ModuleList(self.build(c, out_channels, temb_channels) for c in in_channels)


def down_in_channels(in_channels: int, out_channels: int, num_layers: int) -> list[int]:
    """The input widths of a down block's resnets: the block's input, then its own width."""
    return [in_channels if i == 0 else out_channels for i in range(num_layers)]


def up_in_channels(
    in_channels: int, prev_output_channel: int, out_channels: int, num_layers: int
) -> list[int]:
    """The input widths of an up block's resnets: the block below's output (first) or the block's own, plus one
    skip, the last (deepest) of which is ``in_channels`` wide."""
    return [
        (prev_output_channel if i == 0 else out_channels)
        + (in_channels if i == num_layers - 1 else out_channels)
        for i in range(num_layers)
    ]


def mid_groups(resnet_groups: int | None, channels: int) -> int:
    """diffusers' default group count of a middle block's resnets when ``resnet_groups`` is None."""
    return resnet_groups if resnet_groups is not None else min(channels // 4, 32)


def conv_downsampler(channels: int, padding: int) -> nn.ModuleList:
    return nn.ModuleList([Downsample2D(channels, use_conv=True, out_channels=channels, padding=padding)])


def conv_upsampler(channels: int) -> nn.ModuleList:
    return nn.ModuleList([Upsample2D(channels, use_conv=True, out_channels=channels)])


def down_forward(
    block: nn.Module, hidden_states: torch.Tensor, temb: torch.Tensor | None, *attention_args: Any
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Resnet (then ``block.attentions[i]`` with ``attention_args``, if the block has attention) per layer, then
    the downsampler; returns the output and every intermediate for the skips. Shared by all down blocks."""
    outputs: list[torch.Tensor] = []
    for i, resnet in enumerate(block.resnets):
        hidden_states = resnet(hidden_states, temb)
        if block.attentions is not None:
            hidden_states = block.attentions[i](hidden_states, *attention_args)
        outputs.append(hidden_states)
    if block.downsamplers is not None:
        down = block.downsamplers[0]
        hidden_states = (
            down(hidden_states, temb) if block.downsample_type == "resnet" else down(hidden_states)
        )
        outputs.append(hidden_states)
    return hidden_states, tuple(outputs)


def up_forward(
    block: nn.Module,
    hidden_states: torch.Tensor,
    skips: tuple[torch.Tensor, ...],
    temb: torch.Tensor | None,
    upsample_size: tuple[int, int] | None,
    *attention_args: Any,
) -> torch.Tensor:
    """Per layer: concatenate the last remaining skip, resnet, then ``block.attentions[i]`` (if any); then the
    upsampler. Shared by all up blocks."""
    remaining = list(skips)
    for i, resnet in enumerate(block.resnets):
        hidden_states = resnet(torch.cat([hidden_states, remaining.pop()], dim=1), temb)
        if block.attentions is not None:
            hidden_states = block.attentions[i](hidden_states, *attention_args)
    if block.upsamplers is not None:
        up = block.upsamplers[0]
        hidden_states = (
            up(hidden_states, temb) if block.upsample_type == "resnet" else up(hidden_states, upsample_size)
        )
    return hidden_states


def mid_forward(
    block: nn.Module, hidden_states: torch.Tensor, temb: torch.Tensor | None, *attention_args: Any
) -> torch.Tensor:
    """resnet, then (attention, resnet) per layer (an attention entry may be None). Shared by the middle blocks."""
    hidden_states = block.resnets[0](hidden_states, temb)
    for attn, resnet in zip(block.attentions, block.resnets[1:], strict=True):
        if attn is not None:
            hidden_states = attn(hidden_states, *attention_args)
        hidden_states = resnet(hidden_states, temb)
    return hidden_states


def _spatial_attentions(
    channels: int, head_dim: int | None, num_layers: int, opts: ResnetOptions, groups: int | None
) -> nn.ModuleList:
    """DDPM self-attention blocks, one per layer: group norm (``groups``; None: none), heads of ``head_dim``
    channels (one head if None), residual; eps and output scale as the block's resnets."""
    head_dim = head_dim or channels
    return nn.ModuleList(
        Attention(
            channels,
            heads=channels // head_dim,
            dim_head=head_dim,
            rescale_output_factor=opts.output_scale_factor,
            eps=opts.eps,
            norm_num_groups=groups,
            residual_connection=True,
            bias=True,
        )
        for _ in range(num_layers)
    )


def _resampler_type(kind: str | None, add: bool, what: str) -> str | None:
    kind = kind if add else None
    if kind not in ("conv", "resnet", None):
        raise ValueError(f"{what}_type must be 'conv', 'resnet' or None, got {kind!r}")
    return kind


class DownBlock2D(nn.Module):
    """``num_layers`` resnets then a 2x downsampler; returns the output and every intermediate for the skips."""

    has_attention = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int | None,
        dropout: float = 0.0,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "silu",
        resnet_groups: int = 32,
        output_scale_factor: float = 1.0,
        add_downsample: bool = True,
        downsample_padding: int = 1,
        downsample_type: str | None = "conv",
        attention_head_dim: int | None = None,
    ) -> None:
        super().__init__()
        opts = ResnetOptions(
            dropout, resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift, output_scale_factor
        )
        self.downsample_type = _resampler_type(downsample_type, add_downsample, "downsample")
        # the resnets are built first (the order random init draws in) but registered after the attentions,
        # which is diffusers' state-dict order
        resnets = opts.stack(
            down_in_channels(in_channels, out_channels, num_layers), out_channels, temb_channels
        )
        self.attentions = (
            _spatial_attentions(out_channels, attention_head_dim, num_layers, opts, resnet_groups)
            if self.has_attention
            else None
        )
        self.resnets = resnets
        if self.downsample_type == "conv":
            self.downsamplers = conv_downsampler(out_channels, downsample_padding)
        elif self.downsample_type == "resnet":
            self.downsamplers = nn.ModuleList(
                [opts.build(out_channels, out_channels, temb_channels, down=True)]
            )
        else:
            self.downsamplers = None

    def forward(
        self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        return down_forward(self, hidden_states, temb)


class AttnDownBlock2D(DownBlock2D):
    """``DownBlock2D`` with a self-attention block after every resnet."""

    has_attention = True


class UpBlock2D(nn.Module):
    """``num_layers`` resnets, each fed the previous output concatenated with one skip, then a 2x upsampler.

    ``in_channels`` is the width of the deepest skip this block consumes (the last one), ``prev_output_channel``
    the width of the block below.
    """

    has_attention = False

    def __init__(
        self,
        in_channels: int,
        prev_output_channel: int,
        out_channels: int,
        temb_channels: int | None,
        dropout: float = 0.0,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "silu",
        resnet_groups: int = 32,
        output_scale_factor: float = 1.0,
        add_upsample: bool = True,
        upsample_type: str | None = "conv",
        attention_head_dim: int | None = None,
    ) -> None:
        super().__init__()
        opts = ResnetOptions(
            dropout, resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift, output_scale_factor
        )
        self.upsample_type = _resampler_type(upsample_type, add_upsample, "upsample")
        # the resnets are built first (the order random init draws in) but registered after the attentions,
        # which is diffusers' state-dict order
        widths = up_in_channels(in_channels, prev_output_channel, out_channels, num_layers)
        resnets = opts.stack(widths, out_channels, temb_channels)
        self.attentions = (
            _spatial_attentions(out_channels, attention_head_dim, num_layers, opts, resnet_groups)
            if self.has_attention
            else None
        )
        self.resnets = resnets
        if self.upsample_type == "conv":
            self.upsamplers = conv_upsampler(out_channels)
        elif self.upsample_type == "resnet":
            self.upsamplers = nn.ModuleList([opts.build(out_channels, out_channels, temb_channels, up=True)])
        else:
            self.upsamplers = None

    def forward(
        self,
        hidden_states: torch.Tensor,
        res_hidden_states_tuple: tuple[torch.Tensor, ...],
        temb: torch.Tensor | None = None,
        upsample_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        return up_forward(self, hidden_states, res_hidden_states_tuple, temb, upsample_size)


class AttnUpBlock2D(UpBlock2D):
    """``UpBlock2D`` with a self-attention block after every resnet."""

    has_attention = True


class UNetMidBlock2D(nn.Module):
    """resnet, then ``num_layers`` x (attention, resnet) at the lowest resolution.

    As in diffusers, the attention blocks lose their group norm when ``resnet_time_scale_shift`` is not
    "default" and ``attn_groups`` is not given (the ADM-style checkpoints rely on that).
    """

    def __init__(
        self,
        in_channels: int,
        temb_channels: int | None,
        dropout: float = 0.0,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "silu",
        resnet_groups: int | None = 32,
        attn_groups: int | None = None,
        add_attention: bool = True,
        attention_head_dim: int | None = None,
        output_scale_factor: float = 1.0,
    ) -> None:
        super().__init__()
        groups = mid_groups(resnet_groups, in_channels)
        if attn_groups is None and resnet_time_scale_shift == "default":
            attn_groups = groups
        opts = ResnetOptions(
            dropout, resnet_eps, groups, resnet_act_fn, resnet_time_scale_shift, output_scale_factor
        )
        self.add_attention = add_attention
        self.attentions = (  # registered before the resnets: diffusers' state-dict order
            _spatial_attentions(in_channels, attention_head_dim, num_layers, opts, attn_groups)
            if add_attention
            else nn.ModuleList(None for _ in range(num_layers))
        )
        self.resnets = opts.stack([in_channels] * (num_layers + 1), in_channels, temb_channels)

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        return mid_forward(self, hidden_states, temb)


class DownEncoderBlock2D(nn.Module):
    """The VAE encoder's block: time-free resnets then a 2x downsampler, no skip outputs."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dropout: float = 0.0,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_act_fn: str = "silu",
        resnet_groups: int = 32,
        output_scale_factor: float = 1.0,
        add_downsample: bool = True,
        downsample_padding: int = 1,
    ) -> None:
        super().__init__()
        opts = ResnetOptions(
            dropout, resnet_eps, resnet_groups, resnet_act_fn, "default", output_scale_factor
        )
        self.downsample_type = "conv" if add_downsample else None
        self.attentions = None
        self.resnets = opts.stack(down_in_channels(in_channels, out_channels, num_layers), out_channels, None)
        self.downsamplers = conv_downsampler(out_channels, downsample_padding) if add_downsample else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return down_forward(self, hidden_states, None)[0]


class UpDecoderBlock2D(nn.Module):
    """The VAE decoder's block: resnets (optionally time-conditioned) then a 2x upsampler, no skips."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dropout: float = 0.0,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "silu",
        resnet_groups: int = 32,
        output_scale_factor: float = 1.0,
        add_upsample: bool = True,
        temb_channels: int | None = None,
    ) -> None:
        super().__init__()
        opts = ResnetOptions(
            dropout, resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift, output_scale_factor
        )
        widths = down_in_channels(in_channels, out_channels, num_layers)  # no skips: input, then own width
        self.resnets = opts.stack(widths, out_channels, temb_channels)
        self.upsamplers = conv_upsampler(out_channels) if add_upsample else None

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        for resnet in self.resnets:
            hidden_states = resnet(hidden_states, temb)
        if self.upsamplers is not None:
            hidden_states = self.upsamplers[0](hidden_states)
        return hidden_states


DOWN_BLOCKS: dict[str, type[nn.Module]] = {
    "DownBlock2D": DownBlock2D,
    "AttnDownBlock2D": AttnDownBlock2D,
    "DownEncoderBlock2D": DownEncoderBlock2D,
}
UP_BLOCKS: dict[str, type[nn.Module]] = {
    "UpBlock2D": UpBlock2D,
    "AttnUpBlock2D": AttnUpBlock2D,
    "UpDecoderBlock2D": UpDecoderBlock2D,
}


def block_class(name: str, table: dict[str, type[nn.Module]]) -> type[nn.Module]:
    """The block class for a diffusers block-type name (``UNetRes`` prefixes are accepted and dropped)."""
    key = name.removeprefix("UNetRes")
    if key not in table:
        raise ValueError(f"Unsupported block type {name!r}; supported: {', '.join(table)}")
    return table[key]
