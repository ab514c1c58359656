"""The DDGAN generator: NCSN++ (Song et al. 2021) with the latent z fed through adaptive group norms.

x0' = G(x_t, t, z). The timestep goes through a sinusoidal (or Gaussian Fourier) embedding and a two-layer MLP
into every residual block as a per-channel bias; z goes through pixel norm and an MLP (``z_transform``) into every
residual block's group norms as a per-channel scale and shift (Xiao, Kreis, Vahdat 2022, section 3.3 and appendix).
The U-Net uses BigGAN-style residual blocks that resample inside the block with the FIR filter [1, 3, 3, 1],
self-attention at the configured resolutions, a residual "input pyramid" that feeds FIR-downsampled copies of the
input to each level (``progressive_input='residual'``), and tanh on the output.

Parameter names match the official code (NVlabs/denoising-diffusion-gan, ``score_sde/models/
ncsnpp_generator_adagn.py``): the network is one flat ``all_modules`` list indexed in build order, plus
``z_transform``. The build order is recorded here as a plan of indices, so ``forward`` reads like the architecture
instead of walking a counter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from zoo_core.nn.embeddings import timestep_embedding
from zoo_core.nn.fir import conv_downsample2d, downsample2d, setup_filter, upsample2d, upsample_conv2d
from zoo_core.nn.pixel_norm import PixelNorm
from zoo_ddgan.config import DDGANConfig

SQRT2 = math.sqrt(2.0)


# -- initialisation (the DDPM / score-SDE "variance scaling, fan_avg, uniform" scheme) -----------------------------
def variance_scaling_(
    tensor: torch.Tensor, scale: float = 1.0, in_axis: int = 1, out_axis: int = 0
) -> torch.Tensor:
    """Fill ``tensor`` from U(-a, a) with variance scale / mean(fan_in, fan_out); scale 0 means 1e-10."""
    scale = 1e-10 if scale == 0 else scale
    shape = tensor.shape
    receptive = math.prod(shape) / shape[in_axis] / shape[out_axis]
    fan_avg = (shape[in_axis] + shape[out_axis]) * receptive / 2
    bound = math.sqrt(3.0 * scale / fan_avg)
    with torch.no_grad():
        return tensor.uniform_(-bound, bound)


def conv2d(
    in_ch: int,
    out_ch: int,
    kernel: int,
    *,
    stride: int = 1,
    padding: int | None = None,
    init_scale: float = 1.0,
    bias: bool = True,
) -> nn.Conv2d:
    """A convolution with variance-scaling weights and zero bias ('same' padding by default)."""
    pad = kernel // 2 if padding is None else padding
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=pad, bias=bias)
    variance_scaling_(conv.weight, init_scale)
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


def dense(in_features: int, out_features: int, init_scale: float = 1.0) -> nn.Linear:
    linear = nn.Linear(in_features, out_features)
    variance_scaling_(linear.weight, init_scale)
    nn.init.zeros_(linear.bias)
    return linear


def group_norm(channels: int, affine: bool = True) -> nn.GroupNorm:
    """The NCSN++ group norm: min(C // 4, 32) groups, eps 1e-6."""
    return nn.GroupNorm(min(channels // 4, 32), channels, eps=1e-6, affine=affine)


# -- layers ---------------------------------------------------------------------------------------------------------
class NIN(nn.Module):
    """A 1x1 convolution stored as a matrix ``W`` [in, out] and bias ``b`` ("network in network")."""

    def __init__(self, in_dim: int, out_dim: int, init_scale: float = 0.1) -> None:
        super().__init__()
        self.W = nn.Parameter(variance_scaling_(torch.empty(in_dim, out_dim), init_scale))
        self.b = nn.Parameter(torch.zeros(out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,co->bohw", x, self.W) + self.b[:, None, None]


class AdaptiveGroupNorm(nn.Module):
    """Group norm whose per-channel scale and shift come from the z embedding: gamma * norm(x) + beta."""

    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        self.norm = group_norm(channels, affine=False)
        self.style = dense(style_dim, 2 * channels)
        with torch.no_grad():  # start as the identity: gamma = 1, beta = 0
            self.style.bias[:channels].fill_(1.0)
            self.style.bias[channels:].zero_()

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.style(style)[:, :, None, None].chunk(2, dim=1)
        return gamma * self.norm(x) + beta


class GaussianFourierProjection(nn.Module):
    """Random Fourier features of log-noise-level (continuous-time score SDE); fixed, not trained."""

    def __init__(self, embedding_size: int, scale: float) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(embedding_size) * scale, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        proj = x[:, None] * self.W[None, :] * (2 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels, residual (divided by sqrt 2 with ``skip_rescale``)."""

    def __init__(self, channels: int, skip_rescale: bool) -> None:
        super().__init__()
        self.GroupNorm_0 = group_norm(channels)
        self.NIN_0 = NIN(channels, channels)
        self.NIN_1 = NIN(channels, channels)
        self.NIN_2 = NIN(channels, channels)
        self.NIN_3 = NIN(channels, channels, init_scale=0.0)
        self.skip_rescale = skip_rescale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.GroupNorm_0(x)
        q, k, v = (m(y).reshape(b, c, h * w).transpose(1, 2) for m in (self.NIN_0, self.NIN_1, self.NIN_2))
        y = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(C)) v
        y = self.NIN_3(y.transpose(1, 2).reshape(b, c, h, w))
        return (x + y) / SQRT2 if self.skip_rescale else x + y


class Combine(nn.Module):
    """Merge a pyramid image into the features: 1x1 conv, then concatenate or add."""

    def __init__(self, dim1: int, dim2: int, method: str) -> None:
        super().__init__()
        self.Conv_0 = conv2d(dim1, dim2, 1)
        self.method = method

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.Conv_0(x)
        return torch.cat([h, y], dim=1) if self.method == "cat" else h + y


class FIRConv2d(nn.Module):
    """A 3x3 convolution with FIR 2x down-sampling fused in (StyleGAN2), or FIR 2x up-sampling before it.

    Only the down path occurs in the published configs (the residual input pyramid). The official fused
    up-sampling convolution cannot run (it slices a tensor with a negative step), so ``up`` uses the plain
    up-sample-then-convolve sequence instead.
    """

    def __init__(self, in_ch: int, out_ch: int, *, up: bool, fir_kernel: Sequence[int]) -> None:
        super().__init__()
        self.weight = nn.Parameter(variance_scaling_(torch.empty(out_ch, in_ch, 3, 3)))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.up = up
        self.fir_kernel = tuple(fir_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = setup_filter(self.fir_kernel, device=x.device)
        resample = upsample_conv2d if self.up else conv_downsample2d
        return resample(x, self.weight, f) + self.bias[:, None, None]


class Resample(nn.Module):
    """2x up- or down-sampling, FIR or nearest / average pooling, optionally with a 3x3 conv (official Up/Downsample)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int | None,
        *,
        up: bool,
        with_conv: bool,
        fir: bool,
        fir_kernel: Sequence[int],
    ) -> None:
        super().__init__()
        out_ch = out_ch or in_ch
        if with_conv and fir:
            self.Conv2d_0 = FIRConv2d(in_ch, out_ch, up=up, fir_kernel=fir_kernel)
        elif with_conv:
            self.Conv_0 = conv2d(in_ch, out_ch, 3, stride=1 if up else 2, padding=1 if up else 0)
        self.up, self.with_conv, self.fir = up, with_conv, fir
        self.fir_kernel = tuple(fir_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_conv and self.fir:
            return self.Conv2d_0(x)
        if self.fir:
            return _fir_resample(x, self.fir_kernel, self.up)
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            return self.Conv_0(x) if self.with_conv else x
        if self.with_conv:  # TensorFlow 'SAME' padding of a stride-2 conv: one pixel right and bottom
            return self.Conv_0(F.pad(x, (0, 1, 0, 1)))
        return F.avg_pool2d(x, 2)


def _fir_resample(x: torch.Tensor, kernel: Sequence[int], up: bool) -> torch.Tensor:
    f = setup_filter(kernel, device=x.device)
    return upsample2d(x, f) if up else downsample2d(x, f)


def _naive_resample(x: torch.Tensor, up: bool) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest") if up else F.avg_pool2d(x, 2)


class ResnetBlockBigGAN(nn.Module):
    """BigGAN-style residual block: norm-act, (resample), conv, + time bias, norm-act, dropout, conv; 1x1 skip.

    Both group norms are adaptive (z-modulated) unless ``one_adagn``, which keeps only the first one adaptive.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int | None,
        *,
        temb_dim: int | None,
        zemb_dim: int,
        up: bool = False,
        down: bool = False,
        dropout: float = 0.0,
        fir: bool = True,
        fir_kernel: Sequence[int] = (1, 3, 3, 1),
        skip_rescale: bool = True,
        one_adagn: bool = False,
    ) -> None:
        super().__init__()
        out_ch = out_ch or in_ch
        self.GroupNorm_0 = AdaptiveGroupNorm(in_ch, zemb_dim)
        self.Conv_0 = conv2d(in_ch, out_ch, 3)
        if temb_dim is not None:
            self.Dense_0 = dense(temb_dim, out_ch)
        self.GroupNorm_1 = group_norm(out_ch) if one_adagn else AdaptiveGroupNorm(out_ch, zemb_dim)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv2d(out_ch, out_ch, 3, init_scale=0.0)
        if in_ch != out_ch or up or down:
            self.Conv_2 = conv2d(in_ch, out_ch, 1)
        self.up, self.down, self.fir = up, down, fir
        self.fir_kernel = tuple(fir_kernel)
        self.skip_rescale = skip_rescale
        self.one_adagn = one_adagn
        self.act = nn.SiLU()

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.up or self.down):
            return x
        return _fir_resample(x, self.fir_kernel, self.up) if self.fir else _naive_resample(x, self.up)

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None, zemb: torch.Tensor) -> torch.Tensor:
        h = self.act(self.GroupNorm_0(x, zemb))
        h, x = self._resample(h), self._resample(x)
        h = self.Conv_0(h)
        if temb is not None:
            h = h + self.Dense_0(self.act(temb))[:, :, None, None]
        h = self.GroupNorm_1(h) if self.one_adagn else self.GroupNorm_1(h, zemb)
        h = self.Conv_1(self.Dropout_0(self.act(h)))
        if hasattr(self, "Conv_2"):
            x = self.Conv_2(x)
        return (x + h) / SQRT2 if self.skip_rescale else x + h


class ResnetBlockDDPM(nn.Module):
    """DDPM-style residual block with adaptive group norms; resampling happens in separate layers."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int | None,
        *,
        temb_dim: int | None,
        zemb_dim: int,
        dropout: float = 0.0,
        skip_rescale: bool = True,
    ) -> None:
        super().__init__()
        out_ch = out_ch or in_ch
        self.GroupNorm_0 = AdaptiveGroupNorm(in_ch, zemb_dim)
        self.Conv_0 = conv2d(in_ch, out_ch, 3)
        if temb_dim is not None:
            self.Dense_0 = dense(temb_dim, out_ch)
        self.GroupNorm_1 = AdaptiveGroupNorm(out_ch, zemb_dim)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv2d(out_ch, out_ch, 3, init_scale=0.0)
        if in_ch != out_ch:
            self.NIN_0 = NIN(in_ch, out_ch)
        self.skip_rescale = skip_rescale
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None, zemb: torch.Tensor) -> torch.Tensor:
        h = self.Conv_0(self.act(self.GroupNorm_0(x, zemb)))
        if temb is not None:
            h = h + self.Dense_0(self.act(temb))[:, :, None, None]
        h = self.Conv_1(self.Dropout_0(self.act(self.GroupNorm_1(h, zemb))))
        if hasattr(self, "NIN_0"):
            x = self.NIN_0(x)
        return (x + h) / SQRT2 if self.skip_rescale else x + h


# -- the network ----------------------------------------------------------------------------------------------------
@dataclass
class _Level:
    """Indices into ``all_modules`` for one resolution level of the down or up path."""

    blocks: list[int] = field(default_factory=list)
    attns: list[int | None] = field(default_factory=list)  # down path: one per block; up path: one per level
    resample: int | None = None  # down/up-sampling block or layer
    pyramid: list[int] = field(default_factory=list)  # progressive (in/out) layers at this level


@dataclass
class _Plan:
    fourier: int | None = None
    temb: tuple[int, int] | None = None
    conv_in: int = 0
    down: list[_Level] = field(default_factory=list)
    mid: tuple[int, int, int] = (0, 0, 0)
    up: list[_Level] = field(default_factory=list)
    conv_out: tuple[int, int] | None = None  # (group norm, conv) unless progressive == "output_skip"


class NCSNpp(nn.Module):
    """The DDGAN generator G(x_t, t, z) -> x0' for images [B, C, H, W] in [-1, 1]."""

    def __init__(self, config: DDGANConfig) -> None:
        super().__init__()
        cfg = self.config = config
        nf = cfg.num_channels_dae
        channels = cfg.num_channels
        modules: list[nn.Module] = []
        plan = _Plan()

        def add(module: nn.Module) -> int:
            modules.append(module)
            return len(modules) - 1

        # timestep embedding: sinusoidal (or Fourier) code -> dense -> act -> dense
        if cfg.embedding_type == "fourier":
            plan.fourier = add(GaussianFourierProjection(nf, cfg.fourier_scale))
        embed_dim = 2 * nf if cfg.embedding_type == "fourier" else nf
        temb_dim = 4 * nf if cfg.conditional else None
        if cfg.conditional:
            plan.temb = (add(dense(embed_dim, 4 * nf)), add(dense(4 * nf, 4 * nf)))

        def resblock(
            in_ch: int, out_ch: int | None = None, *, up: bool = False, down: bool = False
        ) -> nn.Module:
            if cfg.resblock_type == "ddpm":
                return ResnetBlockDDPM(
                    in_ch,
                    out_ch,
                    temb_dim=temb_dim,
                    zemb_dim=cfg.z_emb_dim,
                    dropout=cfg.dropout,
                    skip_rescale=cfg.skip_rescale,
                )
            return ResnetBlockBigGAN(
                in_ch,
                out_ch,
                temb_dim=temb_dim,
                zemb_dim=cfg.z_emb_dim,
                up=up,
                down=down,
                dropout=cfg.dropout,
                fir=cfg.fir,
                fir_kernel=cfg.fir_kernel,
                skip_rescale=cfg.skip_rescale,
                one_adagn=cfg.resblock_type == "biggan_oneadagn",
            )

        def resample(in_ch: int, out_ch: int | None = None, *, up: bool, with_conv: bool) -> Resample:
            return Resample(in_ch, out_ch, up=up, with_conv=with_conv, fir=cfg.fir, fir_kernel=cfg.fir_kernel)

        resolutions = cfg.resolutions
        levels = len(cfg.ch_mult)

        # down path
        plan.conv_in = add(conv2d(channels, nf, 3))
        skips = [nf]  # channels of every feature map the up path will concatenate
        in_ch, pyramid_ch = nf, channels
        for i, mult in enumerate(cfg.ch_mult):
            level = _Level()
            for _ in range(cfg.num_res_blocks):
                level.blocks.append(add(resblock(in_ch, nf * mult)))
                in_ch = nf * mult
                attn = resolutions[i] in cfg.attn_resolutions
                level.attns.append(add(AttnBlock(in_ch, cfg.skip_rescale)) if attn else None)
                skips.append(in_ch)
            if i != levels - 1:
                if cfg.resblock_type == "ddpm":
                    level.resample = add(resample(in_ch, up=False, with_conv=cfg.resamp_with_conv))
                else:
                    level.resample = add(resblock(in_ch, down=True))
                if cfg.progressive_input == "input_skip":
                    level.pyramid.append(add(Combine(pyramid_ch, in_ch, cfg.progressive_combine)))
                    if cfg.progressive_combine == "cat":
                        in_ch *= 2
                elif cfg.progressive_input == "residual":
                    level.pyramid.append(add(resample(pyramid_ch, in_ch, up=False, with_conv=True)))
                    pyramid_ch = in_ch
                skips.append(in_ch)
            plan.down.append(level)

        # middle
        in_ch = skips[-1]
        plan.mid = (add(resblock(in_ch)), add(AttnBlock(in_ch, cfg.skip_rescale)), add(resblock(in_ch)))

        # up path
        pyramid_ch = 0
        for i in reversed(range(levels)):
            level = _Level()
            for _ in range(cfg.num_res_blocks + 1):
                out_ch = nf * cfg.ch_mult[i]
                level.blocks.append(add(resblock(in_ch + skips.pop(), out_ch)))
                in_ch = out_ch
            attn = resolutions[i] in cfg.attn_resolutions
            level.attns.append(add(AttnBlock(in_ch, cfg.skip_rescale)) if attn else None)
            if cfg.progressive != "none":
                if i == levels - 1:  # the coarsest level starts the output pyramid
                    pyramid_ch = channels if cfg.progressive == "output_skip" else in_ch
                    scale = 0.0 if cfg.progressive == "output_skip" else 1.0
                    level.pyramid = [
                        add(group_norm(in_ch)),
                        add(conv2d(in_ch, pyramid_ch, 3, init_scale=scale)),
                    ]
                elif cfg.progressive == "output_skip":
                    level.pyramid = [add(group_norm(in_ch)), add(conv2d(in_ch, channels, 3, init_scale=0.0))]
                    pyramid_ch = channels
                else:  # residual
                    level.pyramid = [add(resample(pyramid_ch, in_ch, up=True, with_conv=True))]
                    pyramid_ch = in_ch
            if i != 0:
                if cfg.resblock_type == "ddpm":
                    level.resample = add(resample(in_ch, up=True, with_conv=cfg.resamp_with_conv))
                else:
                    level.resample = add(resblock(in_ch, up=True))
            plan.up.append(level)
        assert not skips

        if cfg.progressive != "output_skip":
            plan.conv_out = (add(group_norm(in_ch)), add(conv2d(in_ch, channels, 3, init_scale=0.0)))

        self.all_modules = nn.ModuleList(modules)
        mapping: list[nn.Module] = [PixelNorm(), dense(cfg.nz, cfg.z_emb_dim), nn.SiLU()]
        for _ in range(cfg.n_mlp):
            mapping += [dense(cfg.z_emb_dim, cfg.z_emb_dim), nn.SiLU()]
        self.z_transform = nn.Sequential(*mapping)
        self.act = nn.SiLU()
        self._plan = plan

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        cfg, plan, m = self.config, self._plan, self.all_modules
        zemb = self.z_transform(z)
        t = t.reshape(-1)
        if t.numel() == 1:
            t = t.expand(x.shape[0])
        if plan.fourier is not None:
            temb = m[plan.fourier](torch.log(t))
        else:
            temb = timestep_embedding(
                t, cfg.num_channels_dae, flip_sin_to_cos=False, downscale_freq_shift=1.0
            )
        if plan.temb is not None:
            temb = m[plan.temb[1]](self.act(m[plan.temb[0]](temb.to(x.dtype))))
        else:
            temb = None
        if not cfg.centered:
            x = 2 * x - 1.0

        # down path
        pyramid = x if cfg.progressive_input != "none" else None
        hs = [m[plan.conv_in](x)]
        for level in plan.down:
            for block, attn in zip(level.blocks, level.attns, strict=True):
                h = m[block](hs[-1], temb, zemb)
                hs.append(m[attn](h) if attn is not None else h)
            if level.resample is None:
                continue
            resampler = m[level.resample]
            h = resampler(hs[-1]) if isinstance(resampler, Resample) else resampler(hs[-1], temb, zemb)
            if cfg.progressive_input == "input_skip":
                pyramid = (
                    _fir_resample(pyramid, cfg.fir_kernel, up=False) if cfg.fir else F.avg_pool2d(pyramid, 2)
                )
                h = m[level.pyramid[0]](pyramid, h)
            elif cfg.progressive_input == "residual":
                pyramid = m[level.pyramid[0]](pyramid)
                pyramid = (pyramid + h) / SQRT2 if cfg.skip_rescale else pyramid + h
                h = pyramid
            hs.append(h)

        # middle
        h = m[plan.mid[0]](hs[-1], temb, zemb)
        h = m[plan.mid[1]](h)
        h = m[plan.mid[2]](h, temb, zemb)

        # up path
        pyramid = None
        for level in plan.up:
            for block in level.blocks:
                h = m[block](torch.cat([h, hs.pop()], dim=1), temb, zemb)
            if level.attns[0] is not None:
                h = m[level.attns[0]](h)
            if cfg.progressive == "output_skip":
                out = m[level.pyramid[1]](self.act(m[level.pyramid[0]](h)))
                if pyramid is None:
                    pyramid = out
                else:
                    up = (
                        _fir_resample(pyramid, cfg.fir_kernel, up=True)
                        if cfg.fir
                        else _naive_resample(pyramid, True)
                    )
                    pyramid = up + out
            elif cfg.progressive == "residual":
                if pyramid is None:  # the coarsest level: start the pyramid, h goes on unchanged
                    pyramid = m[level.pyramid[1]](self.act(m[level.pyramid[0]](h)))
                else:
                    pyramid = m[level.pyramid[0]](pyramid)
                    pyramid = (pyramid + h) / SQRT2 if cfg.skip_rescale else pyramid + h
                    h = pyramid
            if level.resample is not None:
                resampler = m[level.resample]
                h = resampler(h) if isinstance(resampler, Resample) else resampler(h, temb, zemb)

        if plan.conv_out is None:
            h = pyramid
        else:
            h = m[plan.conv_out[1]](self.act(m[plan.conv_out[0]](h)))
        return h if cfg.not_use_tanh else torch.tanh(h)
