"""2x down- and up-sampling layers of the DDPM-family UNets (names as in diffusers: ``conv``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Downsample2D(nn.Module):
    """Halve H and W: a stride-2 3x3 conv (``use_conv``) or 2x2 average pooling.

    ``padding=0`` pads only right and bottom by one pixel before the conv, as the original DDPM TensorFlow code
    did (``google/ddpm-*`` checkpoints use it); ``padding=1`` is the symmetric variant of Stable Diffusion.
    """

    def __init__(
        self,
        channels: int,
        use_conv: bool = False,
        out_channels: int | None = None,
        padding: int = 1,
        kernel_size: int = 3,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.use_conv = use_conv
        self.padding = padding
        if use_conv:
            self.conv: nn.Module = nn.Conv2d(
                channels, self.out_channels, kernel_size, stride=2, padding=padding, bias=bias
            )
        else:
            if self.out_channels != channels:
                raise ValueError("Downsample2D without a conv cannot change the number of channels")
            self.conv = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.use_conv and self.padding == 0:
            hidden_states = F.pad(hidden_states, (0, 1, 0, 1))
        return self.conv(hidden_states)


class Upsample2D(nn.Module):
    """Double H and W: nearest-neighbour interpolation then an optional 3x3 conv, or a transposed conv.

    ``output_size`` forces the interpolated size (a UNet on odd resolutions passes its skip's size).
    """

    def __init__(
        self,
        channels: int,
        use_conv: bool = False,
        use_conv_transpose: bool = False,
        out_channels: int | None = None,
        kernel_size: int | None = None,
        padding: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.use_conv = use_conv
        self.use_conv_transpose = use_conv_transpose
        self.conv: nn.Module | None = None
        if use_conv_transpose:
            self.conv = nn.ConvTranspose2d(
                channels, self.out_channels, kernel_size or 4, stride=2, padding=padding, bias=bias
            )
        elif use_conv:
            self.conv = nn.Conv2d(channels, self.out_channels, kernel_size or 3, padding=padding, bias=bias)

    def forward(
        self, hidden_states: torch.Tensor, output_size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        if self.use_conv_transpose:
            return self.conv(hidden_states)
        if output_size is None:
            hidden_states = F.interpolate(hidden_states, scale_factor=2.0, mode="nearest")
        else:
            hidden_states = F.interpolate(hidden_states, size=tuple(output_size), mode="nearest")
        return self.conv(hidden_states) if self.conv is not None else hidden_states
