"""The down, middle and up blocks of DDPM-family UNets, and of the VAE encoder/decoder of latent models.

Each block is a stack of ``ResnetBlock2D`` (optionally each followed by an ``Attention``) with an optional 2x
resampler at its end. Class and parameter names follow diffusers' ``unet_2d_blocks`` so that a config naming
``"AttnDownBlock2D"`` builds the same modules with the same state-dict keys.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo_core.nn.attention import Attention
from zoo_core.nn.resampling import Downsample2D, Upsample2D
from zoo_core.nn.resnet import ResnetBlock2D


def _resnet(
    in_channels: int,
    out_channels: int,
    temb_channels: int | None,
    *,
    dropout: float,
    eps: float,
    groups: int,
    act_fn: str,
    time_scale_shift: str,
    output_scale_factor: float,
    **kwargs: Any,
) -> ResnetBlock2D:
    return ResnetBlock2D(
        in_channels=in_channels,
        out_channels=out_channels,
        temb_channels=temb_channels,
        eps=eps,
        groups=groups,
        dropout=dropout,
        time_embedding_norm=time_scale_shift,
        non_linearity=act_fn,
        output_scale_factor=output_scale_factor,
        **kwargs,
    )


def _spatial_attention(
    channels: int, head_dim: int | None, *, eps: float, groups: int | None, output_scale_factor: float
) -> Attention:
    """The DDPM self-attention block: group norm, heads of ``head_dim`` channels (one head if None), residual."""
    head_dim = head_dim or channels
    return Attention(
        channels,
        heads=channels // head_dim,
        dim_head=head_dim,
        rescale_output_factor=output_scale_factor,
        eps=eps,
        norm_num_groups=groups,
        residual_connection=True,
        bias=True,
    )


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
        common = dict(
            dropout=dropout,
            eps=resnet_eps,
            groups=resnet_groups,
            act_fn=resnet_act_fn,
            time_scale_shift=resnet_time_scale_shift,
            output_scale_factor=output_scale_factor,
        )
        resnets = [
            _resnet(in_channels if i == 0 else out_channels, out_channels, temb_channels, **common)
            for i in range(num_layers)
        ]
        if self.has_attention:  # registered before the resnets: diffusers' state-dict order
            self.attentions = nn.ModuleList(
                _spatial_attention(
                    out_channels,
                    attention_head_dim,
                    eps=resnet_eps,
                    groups=resnet_groups,
                    output_scale_factor=output_scale_factor,
                )
                for _ in range(num_layers)
            )
        self.resnets = nn.ModuleList(resnets)
        self.downsample_type = downsample_type if add_downsample else None
        if self.downsample_type == "conv":
            self.downsamplers = nn.ModuleList(
                [
                    Downsample2D(
                        out_channels, use_conv=True, out_channels=out_channels, padding=downsample_padding
                    )
                ]
            )
        elif self.downsample_type == "resnet":
            self.downsamplers = nn.ModuleList(
                [_resnet(out_channels, out_channels, temb_channels, down=True, **common)]
            )
        elif self.downsample_type is None:
            self.downsamplers = None
        else:
            raise ValueError(f"downsample_type must be 'conv', 'resnet' or None, got {downsample_type!r}")

    def forward(
        self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        outputs: list[torch.Tensor] = []
        for i, resnet in enumerate(self.resnets):
            hidden_states = resnet(hidden_states, temb)
            if self.has_attention:
                hidden_states = self.attentions[i](hidden_states)
            outputs.append(hidden_states)
        if self.downsamplers is not None:
            down = self.downsamplers[0]
            hidden_states = (
                down(hidden_states, temb) if self.downsample_type == "resnet" else down(hidden_states)
            )
            outputs.append(hidden_states)
        return hidden_states, tuple(outputs)


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
        common = dict(
            dropout=dropout,
            eps=resnet_eps,
            groups=resnet_groups,
            act_fn=resnet_act_fn,
            time_scale_shift=resnet_time_scale_shift,
            output_scale_factor=output_scale_factor,
        )
        resnets = []
        for i in range(num_layers):
            skip = in_channels if i == num_layers - 1 else out_channels
            below = prev_output_channel if i == 0 else out_channels
            resnets.append(_resnet(below + skip, out_channels, temb_channels, **common))
        if self.has_attention:  # registered before the resnets: diffusers' state-dict order
            self.attentions = nn.ModuleList(
                _spatial_attention(
                    out_channels,
                    attention_head_dim,
                    eps=resnet_eps,
                    groups=resnet_groups,
                    output_scale_factor=output_scale_factor,
                )
                for _ in range(num_layers)
            )
        self.resnets = nn.ModuleList(resnets)
        self.upsample_type = upsample_type if add_upsample else None
        if self.upsample_type == "conv":
            self.upsamplers = nn.ModuleList(
                [Upsample2D(out_channels, use_conv=True, out_channels=out_channels)]
            )
        elif self.upsample_type == "resnet":
            self.upsamplers = nn.ModuleList(
                [_resnet(out_channels, out_channels, temb_channels, up=True, **common)]
            )
        elif self.upsample_type is None:
            self.upsamplers = None
        else:
            raise ValueError(f"upsample_type must be 'conv', 'resnet' or None, got {upsample_type!r}")

    def forward(
        self,
        hidden_states: torch.Tensor,
        res_hidden_states_tuple: tuple[torch.Tensor, ...],
        temb: torch.Tensor | None = None,
        upsample_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        skips = list(res_hidden_states_tuple)
        for i, resnet in enumerate(self.resnets):
            hidden_states = resnet(torch.cat([hidden_states, skips.pop()], dim=1), temb)
            if self.has_attention:
                hidden_states = self.attentions[i](hidden_states)
        if self.upsamplers is not None:
            up = self.upsamplers[0]
            hidden_states = (
                up(hidden_states, temb)
                if self.upsample_type == "resnet"
                else up(hidden_states, upsample_size)
            )
        return hidden_states


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
        groups = resnet_groups if resnet_groups is not None else min(in_channels // 4, 32)
        if attn_groups is None and resnet_time_scale_shift == "default":
            attn_groups = groups
        common = dict(
            dropout=dropout,
            eps=resnet_eps,
            groups=groups,
            act_fn=resnet_act_fn,
            time_scale_shift=resnet_time_scale_shift,
            output_scale_factor=output_scale_factor,
        )
        self.add_attention = add_attention
        self.attentions = nn.ModuleList(  # registered before the resnets: diffusers' state-dict order
            _spatial_attention(
                in_channels,
                attention_head_dim,
                eps=resnet_eps,
                groups=attn_groups,
                output_scale_factor=output_scale_factor,
            )
            if add_attention
            else None
            for _ in range(num_layers)
        )
        self.resnets = nn.ModuleList(
            _resnet(in_channels, in_channels, temb_channels, **common) for _ in range(num_layers + 1)
        )

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        hidden_states = self.resnets[0](hidden_states, temb)
        for attn, resnet in zip(self.attentions, self.resnets[1:], strict=True):
            if attn is not None:
                hidden_states = attn(hidden_states)
            hidden_states = resnet(hidden_states, temb)
        return hidden_states


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
        common = dict(
            dropout=dropout,
            eps=resnet_eps,
            groups=resnet_groups,
            act_fn=resnet_act_fn,
            time_scale_shift="default",
            output_scale_factor=output_scale_factor,
        )
        self.resnets = nn.ModuleList(
            _resnet(in_channels if i == 0 else out_channels, out_channels, None, **common)
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

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            hidden_states = resnet(hidden_states)
        if self.downsamplers is not None:
            hidden_states = self.downsamplers[0](hidden_states)
        return hidden_states


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
        common = dict(
            dropout=dropout,
            eps=resnet_eps,
            groups=resnet_groups,
            act_fn=resnet_act_fn,
            time_scale_shift=resnet_time_scale_shift,
            output_scale_factor=output_scale_factor,
        )
        self.resnets = nn.ModuleList(
            _resnet(in_channels if i == 0 else out_channels, out_channels, temb_channels, **common)
            for i in range(num_layers)
        )
        self.upsamplers = (
            nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)])
            if add_upsample
            else None
        )

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
