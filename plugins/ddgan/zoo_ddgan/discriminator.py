"""The DDGAN discriminator D(x_{t-1}, x_t, t): is x_{t-1} a real denoising step from x_t?

It sees the pair concatenated on channels (2 x image channels) and the timestep through a sinusoidal embedding and
an MLP added as a bias in every block. Residual blocks downsample with the FIR filter [1, 3, 3, 1]; a minibatch
standard-deviation channel (Karras et al. 2018) is appended before the last conv; the spatial sum of the features
goes through a linear layer to one logit. Two sizes, as in the official ``score_sde/models/discriminator.py``:
``small`` (CIFAR-10, 32 px: three downsamplings) and ``large`` (256 px: six). Parameter names are the official ones,
so official ``netD`` weights load unchanged (after stripping ``module.``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from zoo_core.nn.embeddings import timestep_embedding
from zoo_core.nn.fir import downsample2d, setup_filter
from zoo_ddgan.ncsnpp import conv2d, dense

DiscriminatorSize = Literal["small", "large"]


class TimestepEmbedding(nn.Module):
    """Sinusoidal code of t -> dense -> act -> dense (``main``)."""

    def __init__(self, dim: int, act: nn.Module) -> None:
        super().__init__()
        self.dim = dim
        self.main = nn.Sequential(dense(dim, dim), act, dense(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(t, self.dim, flip_sin_to_cos=False, downscale_freq_shift=1.0)
        return self.main(emb.to(self.main[0].weight.dtype))


class DownConvBlock(nn.Module):
    """act -> conv3x3 -> + time bias -> act -> (FIR downsample) -> conv3x3, plus a 1x1 skip; sum / sqrt(2)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        t_emb_dim: int,
        downsample: bool,
        act: nn.Module,
        fir_kernel: Sequence[int] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(conv2d(in_ch, out_ch, 3))
        self.conv2 = nn.Sequential(conv2d(out_ch, out_ch, 3, init_scale=0.0))
        self.dense_t1 = dense(t_emb_dim, out_ch)
        self.skip = nn.Sequential(conv2d(in_ch, out_ch, 1, bias=False))
        self.act = act
        self.downsample = downsample
        self.fir_kernel = tuple(fir_kernel)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(x)) + self.dense_t1(t_emb)[:, :, None, None]
        h = self.act(h)
        if self.downsample:
            f = setup_filter(self.fir_kernel, device=x.device)
            h, x = downsample2d(h, f), downsample2d(x, f)
        return (self.conv2(h) + self.skip(x)) / math.sqrt(2.0)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4, num_features: int = 1) -> torch.Tensor:
    """Append the mean standard deviation across groups of samples as ``num_features`` extra channels.

    Sample i is grouped with samples i + k B/G (the official layout); the batch must divide into groups.
    """
    b, c, h, w = x.shape
    group = min(b, group_size)
    if b % group:
        raise ValueError(
            f"minibatch stddev needs a batch divisible by {group}, got {b}: use drop_last batches"
        )
    y = x.reshape(group, -1, num_features, c // num_features, h, w)
    y = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8)  # [B/G, F, C/F, H, W]
    y = y.mean(dim=(2, 3, 4)).reshape(-1, num_features, 1, 1).repeat(group, 1, h, w)
    return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """D(x_prev, t, x_t) -> logits [B, 1] for x_prev = x_{t-1} given x_t; ``size`` small (32 px) or large (256 px)."""

    def __init__(
        self,
        size: DiscriminatorSize = "small",
        *,
        nc: int = 6,
        ngf: int = 64,
        t_emb_dim: int = 256,
        fir_kernel: Sequence[int] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        if size not in ("small", "large"):
            raise ValueError(f"discriminator size must be 'small' or 'large', got {size!r}")
        self.size = size
        self.act = nn.LeakyReLU(0.2)
        self.t_embed = TimestepEmbedding(t_emb_dim, self.act)
        self.start_conv = conv2d(nc, ngf * 2, 1)
        if size == "small":  # 32 -> 32 -> 16 -> 8 -> 4
            plan = [(2, 2, False), (2, 4, True), (4, 8, True), (8, 8, True)]
        else:  # 256 -> 128 -> 64 -> 32 -> 16 -> 8 -> 4
            plan = [(2, 4, True), (4, 8, True), (8, 8, True), (8, 8, True), (8, 8, True), (8, 8, True)]
        for i, (m_in, m_out, down) in enumerate(plan, start=1):
            block = DownConvBlock(
                ngf * m_in,
                ngf * m_out,
                t_emb_dim=t_emb_dim,
                downsample=down,
                act=self.act,
                fir_kernel=fir_kernel,
            )
            self.add_module(f"conv{i}", block)
        self.num_blocks = len(plan)
        self.final_conv = conv2d(ngf * 8 + 1, ngf * 8, 3, init_scale=0.0 if size == "small" else 1.0)
        self.end_linear = dense(ngf * 8, 1)

    def forward(self, x_prev: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        t_emb = self.act(self.t_embed(t.reshape(-1).expand(x_prev.shape[0]) if t.numel() == 1 else t))
        h = self.start_conv(torch.cat([x_prev, x_t], dim=1))
        for i in range(1, self.num_blocks + 1):
            h = getattr(self, f"conv{i}")(h, t_emb)
        h = self.act(self.final_conv(minibatch_stddev(h)))
        return self.end_linear(h.sum(dim=(2, 3)))
