"""Shared helpers of the DDPM tests: tiny UNet configs in diffusers' terms and seeded diffusers references."""

from __future__ import annotations

from typing import Any

import torch

#: google/ddpm-cifar10-32's layout at 1/8 width (norm groups scaled with it).
CIFAR_SMALL: dict[str, Any] = {
    "sample_size": 16,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [16, 32, 32, 32],
    "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "attention_head_dim": None,
    "norm_eps": 1e-6,
    "norm_num_groups": 8,
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
}

#: google/ddpm-church-256 and google/ddpm-celebahq-256 (six levels, attention at 16x16) at 1/8 width, 32 px.
CHURCH_SMALL: dict[str, Any] = {
    "sample_size": 32,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [16, 16, 32, 32, 64, 64],
    "layers_per_block": 2,
    "down_block_types": [
        "DownBlock2D",
        "DownBlock2D",
        "DownBlock2D",
        "DownBlock2D",
        "AttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
    "attention_head_dim": None,
    "norm_eps": 1e-6,
    "norm_num_groups": 8,
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
}


def randomize_(module: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    """Seeded random values for every parameter (zero-initialised output layers would hide mistakes); norm
    weights around 1 so activations keep their scale through the deep UNet."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            value = torch.randn(p.shape, generator=gen) * std
            if "norm" in name and name.endswith("weight"):
                value += 1.0
            p.copy_(value)
    return module


def diffusers_unet(config: dict[str, Any], seed: int = 0) -> Any:
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return randomize_(UNet2DModel(**config), seed).eval()
