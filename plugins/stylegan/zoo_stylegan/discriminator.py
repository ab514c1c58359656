"""The StyleGAN2 discriminator: residual (or skip / plain) downsampling blocks, minibatch standard deviation, and a
projection onto the mapped class label for conditional models (Miyato & Koyama 2018).

Names follow the official ``training/networks.py`` ``Discriminator`` (``b32.fromrgb``, ``b4.conv``, ``b4.fc``,
``b4.out``, ``mapping.embed`` ...), so a snapshot's ``D.state_dict()`` loads unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from zoo_core.nn.fir import downsample2d, setup_filter
from zoo_stylegan.config import DiscriminatorConfig
from zoo_stylegan.generator import MappingNetwork, channels_at, use_fp16_on
from zoo_stylegan.layers import Conv2dLayer, FullyConnectedLayer


class DiscriminatorBlock(nn.Module):
    """fromRGB (first block, or every block in 'skip'), two 3x3 convs (the second halves the resolution), and in
    'resnet' a 1x1 down-sampling shortcut; the two paths are summed with gain sqrt(1/2)."""

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        first_layer_idx: int,
        architecture: str = "resnet",
        activation: str = "lrelu",
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        freeze_layers: int = 0,
    ) -> None:
        if in_channels not in (0, tmp_channels):
            raise ValueError(f"in_channels must be 0 or tmp_channels ({tmp_channels}), got {in_channels}")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(list(resample_filter), device="cpu"))
        self.num_layers = 0

        def next_trainable() -> bool:
            trainable = first_layer_idx + self.num_layers >= freeze_layers
            self.num_layers += 1
            return trainable

        common = dict(activation=activation, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(
                img_channels, tmp_channels, kernel_size=1, trainable=next_trainable(), **common
            )
        self.conv0 = Conv2dLayer(
            tmp_channels, tmp_channels, kernel_size=3, trainable=next_trainable(), **common
        )
        self.conv1 = Conv2dLayer(
            tmp_channels,
            out_channels,
            kernel_size=3,
            down=2,
            resample_filter=resample_filter,
            trainable=next_trainable(),
            **common,
        )
        if architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels,
                out_channels,
                kernel_size=1,
                bias=False,
                down=2,
                resample_filter=resample_filter,
                trainable=next_trainable(),
                channels_last=self.channels_last,
            )

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        device = (x if x is not None else img).device
        fp16 = self.use_fp16 and not force_fp32 and use_fp16_on(device)
        dtype = torch.float16 if fp16 else self.conv0.weight.dtype
        memory_format = torch.channels_last if self.channels_last and fp16 else torch.contiguous_format
        if x is not None:
            x = x.to(dtype=dtype, memory_format=memory_format)
        if self.in_channels == 0 or self.architecture == "skip":
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class MinibatchStdLayer(nn.Module):
    """Appends the standard deviation of features across groups of ``group_size`` images as extra channels, so D
    can see a lack of variety in a batch (Karras et al. 2018)."""

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g:
            raise ValueError(f"minibatch-std needs a batch divisible by its group size {g}, got {n} images")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # [G, n, F, c, H, W]: image i is in group i % (N / G)
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [n, F, c, H, W]
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)  # [n, F, 1, 1]
        y = y.repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(nn.Module):
    """At 4x4: minibatch std, conv, fully connected, and the output (a logit, or a cmap_dim vector that is
    projected onto the mapped label)."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        activation: str = "lrelu",
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = (
            MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        )
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels,
            in_channels,
            kernel_size=3,
            activation=activation,
            conv_clamp=conv_clamp,
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None) -> torch.Tensor:
        dtype = self.conv.weight.dtype
        x = x.to(dtype=dtype, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            x = x + self.fromrgb(img.to(dtype=dtype, memory_format=torch.contiguous_format))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """Image [N, C, R, R] (+ one-hot labels [N, c_dim]) -> realness logits [N, 1]."""

    def __init__(
        self, c_dim: int, img_resolution: int, img_channels: int, config: DiscriminatorConfig | None = None
    ) -> None:
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        super().__init__()
        cfg = config or DiscriminatorConfig()
        self.config = cfg
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        log2 = img_resolution.bit_length() - 1
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        fp16_resolution = max(2 ** (log2 + 1 - cfg.num_fp16_res), 8)
        cmap_dim = 0 if c_dim == 0 else (cfg.cmap_dim or channels_at(4, cfg.channel_base, cfg.channel_max))
        common = dict(img_channels=img_channels, architecture=cfg.architecture, conv_clamp=cfg.conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            tmp = channels_at(res, cfg.channel_base, cfg.channel_max)
            block = DiscriminatorBlock(
                tmp if res < img_resolution else 0,
                tmp,
                channels_at(res // 2, cfg.channel_base, cfg.channel_max),
                resolution=res,
                first_layer_idx=layer_idx,
                use_fp16=res >= fp16_resolution,
                activation=cfg.activation,
                resample_filter=cfg.resample_filter,
                fp16_channels_last=cfg.fp16_channels_last,
                freeze_layers=cfg.freeze_layers,
                **common,
            )
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            m = cfg.mapping
            self.mapping = MappingNetwork(
                z_dim=0,
                c_dim=c_dim,
                w_dim=cmap_dim,
                num_ws=None,
                w_avg_beta=None,
                num_layers=m.num_layers,
                embed_features=m.embed_features,
                layer_features=m.layer_features,
                activation=m.activation,
                lr_multiplier=m.lr_multiplier,
            )
        e = cfg.epilogue
        self.b4 = DiscriminatorEpilogue(
            channels_at(4, cfg.channel_base, cfg.channel_max),
            cmap_dim=cmap_dim,
            resolution=4,
            mbstd_group_size=e.mbstd_group_size,
            mbstd_num_channels=e.mbstd_num_channels,
            activation=e.activation,
            **common,
        )

    def forward(
        self, img: torch.Tensor, c: torch.Tensor | None = None, force_fp32: bool = False
    ) -> torch.Tensor:
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(
                f"images must have shape [N, {', '.join(map(str, expected))}], got {tuple(img.shape)}"
            )
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)
