"""The residual block of the DDPM-family UNets (Ho et al. 2020, after Wide ResNets), conditioned on time.

norm1 -> act -> [up/down] -> conv1 -> (+ time projection | scale-shift after norm2) -> norm2 -> act -> dropout ->
conv2, plus a shortcut (identity, or a conv when the channel count changes), divided by ``output_scale_factor``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from zoo_core.nn.activations import activation

TimeEmbeddingNorm = Literal["default", "scale_shift"]


class ResnetBlock2D(nn.Module):
    """A time-conditioned residual block; parameter names follow diffusers' ``ResnetBlock2D``.

    - ``temb_channels=None`` drops the time input (VAE blocks).
    - ``time_embedding_norm="default"`` adds the projected embedding before ``norm2``; ``"scale_shift"`` projects
      to 2C and applies ``norm2(h) * (1 + scale) + shift`` (improved DDPM / ADM).
    - the shortcut is a conv when ``in_channels != out_channels`` (or ``use_in_shortcut``): 1x1, or 3x3 with
      ``conv_shortcut=True`` (the original DDPM option).
    - ``up``/``down`` resample both branches (nearest / 2x2 average pooling) after the first activation.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int | None = None,
        conv_shortcut: bool = False,
        dropout: float = 0.0,
        temb_channels: int | None = 512,
        groups: int = 32,
        groups_out: int | None = None,
        eps: float = 1e-6,
        non_linearity: str = "silu",
        skip_time_act: bool = False,
        time_embedding_norm: TimeEmbeddingNorm = "default",
        output_scale_factor: float = 1.0,
        use_in_shortcut: bool | None = None,
        up: bool = False,
        down: bool = False,
        conv_shortcut_bias: bool = True,
        conv_2d_out_channels: int | None = None,
    ) -> None:
        super().__init__()
        if time_embedding_norm not in ("default", "scale_shift"):
            raise ValueError(
                f"time_embedding_norm must be 'default' or 'scale_shift', got {time_embedding_norm!r}"
            )
        if up and down:
            raise ValueError("a ResnetBlock2D resamples up or down, not both")
        out_channels = out_channels or in_channels
        conv_out = conv_2d_out_channels or out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.time_embedding_norm = time_embedding_norm
        self.output_scale_factor = output_scale_factor
        self.skip_time_act = skip_time_act
        self.up, self.down = up, down

        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        if temb_channels is None:
            self.time_emb_proj = None
        else:
            width = 2 * out_channels if time_embedding_norm == "scale_shift" else out_channels
            self.time_emb_proj = nn.Linear(temb_channels, width)
        self.norm2 = nn.GroupNorm(groups_out or groups, out_channels, eps=eps, affine=True)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, conv_out, kernel_size=3, padding=1)
        self.nonlinearity = activation(non_linearity)

        self.use_in_shortcut = in_channels != conv_out if use_in_shortcut is None else use_in_shortcut
        self.conv_shortcut = None
        if self.use_in_shortcut:
            kernel = 3 if conv_shortcut else 1
            self.conv_shortcut = nn.Conv2d(
                in_channels, conv_out, kernel_size=kernel, padding=kernel // 2, bias=conv_shortcut_bias
            )

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        return x

    def forward(self, input_tensor: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.nonlinearity(self.norm1(input_tensor))
        if self.up or self.down:
            input_tensor = self._resample(input_tensor)
            hidden = self._resample(hidden)
        hidden = self.conv1(hidden)

        if self.time_emb_proj is not None and temb is not None:
            if not self.skip_time_act:
                temb = self.nonlinearity(temb)
            temb = self.time_emb_proj(temb)[:, :, None, None]
        else:
            temb = None
        if self.time_embedding_norm == "scale_shift":
            if temb is None:
                raise ValueError("a scale_shift ResnetBlock2D needs a time embedding (temb)")
            scale, shift = temb.chunk(2, dim=1)
            hidden = self.norm2(hidden) * (1 + scale) + shift
        else:
            if temb is not None:
                hidden = hidden + temb
            hidden = self.norm2(hidden)

        hidden = self.conv2(self.dropout(self.nonlinearity(hidden)))
        if self.conv_shortcut is not None:
            input_tensor = self.conv_shortcut(input_tensor)
        out = input_tensor + hidden
        if self.output_scale_factor != 1.0:
            out = out / self.output_scale_factor
        return out
