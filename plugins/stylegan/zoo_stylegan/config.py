"""Configs of the StyleGAN2(-ADA) generator and discriminator.

Field names follow the keyword arguments of the official ``training.networks.Generator`` / ``Discriminator``
(NVlabs/stylegan2-ada-pytorch), grouped the same way (``mapping``, ``synthesis``), so a snapshot's ``init_kwargs``
translate one to one (see ``convert.config_from_init_kwargs``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from zoo_core.config import Config

Activation = Literal["linear", "relu", "lrelu", "tanh", "sigmoid", "elu", "selu", "softplus", "swish"]
Architecture = Literal["orig", "skip", "resnet"]


class MappingConfig(Config):
    """The mapping MLP z (+ class embedding) -> w. ``lr_multiplier`` is the equalized-lr scale of its layers."""

    num_layers: int = Field(8, ge=1)
    embed_features: int | None = Field(None, ge=1, description="class embedding width; None = w_dim")
    layer_features: int | None = Field(None, ge=1, description="hidden width; None = w_dim")
    activation: Activation = "lrelu"
    lr_multiplier: float = Field(0.01, gt=0)
    w_avg_beta: float | None = Field(0.995, ge=0, le=1, description="decay of the tracked mean of w")


class SynthesisConfig(Config):
    """The synthesis network: constant 4x4 input, modulated convs, per-layer noise, toRGB skips."""

    channel_base: int = Field(
        32768, ge=1, description="channels at resolution r: min(channel_base // r, max)"
    )
    channel_max: int = Field(512, ge=1)
    num_fp16_res: int = Field(0, ge=0, description="fp16 in the N highest resolutions (on accelerators only)")
    conv_clamp: float | None = Field(None, ge=0, description="clamp conv outputs to +-X; None = no clamp")
    architecture: Architecture = "skip"
    resample_filter: list[float] = Field(default_factory=lambda: [1.0, 3.0, 3.0, 1.0])
    fp16_channels_last: bool = False
    kernel_size: int = Field(3, ge=1)
    use_noise: bool = True
    activation: Activation = "lrelu"


class EpilogueConfig(Config):
    mbstd_group_size: int | None = Field(4, ge=1, description="minibatch-std group; None = whole batch")
    mbstd_num_channels: int = Field(1, ge=0)
    activation: Activation = "lrelu"


class DiscriminatorConfig(Config):
    """The discriminator (c_dim, resolution and channels come from the model config)."""

    architecture: Architecture = "resnet"
    channel_base: int = Field(32768, ge=1)
    channel_max: int = Field(512, ge=1)
    num_fp16_res: int = Field(0, ge=0)
    conv_clamp: float | None = Field(None, ge=0)
    cmap_dim: int | None = Field(None, ge=1, description="width of the mapped label; None = channels at 4x4")
    activation: Activation = "lrelu"
    resample_filter: list[float] = Field(default_factory=lambda: [1.0, 3.0, 3.0, 1.0])
    fp16_channels_last: bool = False
    freeze_layers: int = Field(
        0, ge=0, description="Freeze-D: the first N layers hold buffers, not parameters"
    )
    mapping: MappingConfig = Field(default_factory=MappingConfig)
    epilogue: EpilogueConfig = Field(default_factory=EpilogueConfig)


class StyleGANConfig(Config):
    """A StyleGAN2 generator (the EMA generator ``G_ema`` of a snapshot) and, optionally, its discriminator."""

    z_dim: int = Field(512, ge=1)
    w_dim: int = Field(512, ge=1)
    c_dim: int = Field(0, ge=0, description="number of classes (one-hot labels); 0 = unconditional")
    img_resolution: int = Field(32, ge=4)
    img_channels: int = Field(3, ge=1)
    mapping: MappingConfig = Field(default_factory=MappingConfig)
    synthesis: SynthesisConfig = Field(default_factory=SynthesisConfig)
    discriminator: DiscriminatorConfig | None = Field(
        None, description="kept with the weights when a snapshot's D is converted too (for fine-tuning)"
    )

    @model_validator(mode="after")
    def _power_of_two(self) -> StyleGANConfig:
        r = self.img_resolution
        if r & (r - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {r}")
        return self

    @property
    def block_resolutions(self) -> list[int]:
        return [2**i for i in range(2, self.img_resolution.bit_length())]
