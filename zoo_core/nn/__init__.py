"""Shared neural-network layers of the zoo's UNets and autoencoders (weight-compatible with diffusers' names)."""

from __future__ import annotations

from zoo_core.nn.activations import activation
from zoo_core.nn.attention import Attention, AttentionHook, rename_legacy_attention_keys
from zoo_core.nn.embeddings import TimestepEmbedding, Timesteps, timestep_embedding
from zoo_core.nn.resampling import Downsample2D, Upsample2D
from zoo_core.nn.resnet import ResnetBlock2D
from zoo_core.nn.unet_blocks import (
    DOWN_BLOCKS,
    UP_BLOCKS,
    AttnDownBlock2D,
    AttnUpBlock2D,
    DownBlock2D,
    DownEncoderBlock2D,
    UNetMidBlock2D,
    UpBlock2D,
    UpDecoderBlock2D,
    block_class,
)

__all__ = [
    "DOWN_BLOCKS",
    "UP_BLOCKS",
    "Attention",
    "AttentionHook",
    "AttnDownBlock2D",
    "AttnUpBlock2D",
    "DownBlock2D",
    "DownEncoderBlock2D",
    "Downsample2D",
    "ResnetBlock2D",
    "TimestepEmbedding",
    "Timesteps",
    "UNetMidBlock2D",
    "UpBlock2D",
    "UpDecoderBlock2D",
    "Upsample2D",
    "activation",
    "block_class",
    "rename_legacy_attention_keys",
    "timestep_embedding",
]
