"""Pixel norm (Karras et al. 2018): scale each vector to unit root-mean-square along one axis.

StyleGAN's mapping network and DDGAN's z-mapping MLP normalise the latent z this way before the first layer, so
the network sees latents on the unit sphere (times sqrt(dim)) whatever their sampled norm.
"""

from __future__ import annotations

import torch
from torch import nn


def pixel_norm(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean(x^2 over ``dim``) + eps)."""
    return x * torch.rsqrt(x.square().mean(dim=dim, keepdim=True) + eps)


class PixelNorm(nn.Module):
    """``pixel_norm`` as a module (no parameters), for use inside ``nn.Sequential``."""

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_norm(x, self.dim, self.eps)
