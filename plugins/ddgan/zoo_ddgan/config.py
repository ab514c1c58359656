"""The DDGAN model config: the official ``train_ddgan.py`` arguments that shape the generator and the schedule.

Field names are the official argument names, so an official command line translates field for field; the
defaults are the README's CIFAR-10 model (the one the paper's FID 3.75 was measured on).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from zoo_core.config import Config


class DDGANConfig(Config):
    """The NCSN++ generator x0' = G(x_t, t, z) and the discretised VP-SDE schedule it was trained with."""

    # data
    image_size: int = Field(32, ge=4, description="resolution (square images)")
    num_channels: int = Field(3, ge=1, description="image channels")
    centered: bool = Field(True, description="inputs in [-1, 1]; False maps [0, 1] inputs to [-1, 1] first")
    # generator width and depth
    num_channels_dae: int = Field(128, ge=4, description="base width nf of the NCSN++ U-Net")
    ch_mult: list[int] = Field(default_factory=lambda: [1, 2, 2, 2], min_length=1)
    num_res_blocks: int = Field(2, ge=1)
    attn_resolutions: list[int] = Field(default_factory=lambda: [16])
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    resamp_with_conv: bool = True
    conditional: bool = Field(True, description="condition on the timestep")
    fir: bool = Field(True, description="FIR up/down-sampling (else nearest / average pooling)")
    fir_kernel: list[int] = Field(default_factory=lambda: [1, 3, 3, 1], min_length=1)
    skip_rescale: bool = Field(True, description="divide residual sums by sqrt(2)")
    resblock_type: Literal["biggan", "ddpm", "biggan_oneadagn"] = "biggan"
    progressive: Literal["none", "output_skip", "residual"] = "none"
    progressive_input: Literal["none", "input_skip", "residual"] = "residual"
    progressive_combine: Literal["sum", "cat"] = "sum"
    embedding_type: Literal["positional", "fourier"] = "positional"
    fourier_scale: float = 16.0
    not_use_tanh: bool = Field(False, description="False: tanh keeps x0' in [-1, 1]")
    # latent z and its mapping network
    nz: int = Field(100, ge=1, description="dimension of the latent z")
    z_emb_dim: int = Field(
        256, ge=1, description="width of the z-mapping MLP (the adaptive group norms' style)"
    )
    n_mlp: int = Field(4, ge=0, description="hidden layers of the z-mapping MLP after the first")
    # diffusion
    num_timesteps: int = Field(4, ge=1, description="T: denoising steps")
    beta_min: float = Field(0.1, gt=0)
    beta_max: float = Field(20.0, gt=0)
    use_geometric: bool = Field(False, description="geometric variance schedule instead of the VP-SDE one")

    @model_validator(mode="after")
    def _check_shapes(self) -> DDGANConfig:
        factor = 2 ** (len(self.ch_mult) - 1)
        if self.image_size % factor:
            raise ValueError(
                f"image_size {self.image_size} must be divisible by 2**(len(ch_mult)-1) = {factor}"
            )
        for width in {self.num_channels_dae * m for m in self.ch_mult}:
            if width < 4 or width % min(width // 4, 32):
                raise ValueError(
                    f"channel width {width} (num_channels_dae x ch_mult) must be divisible by its "
                    f"group-norm groups min(width // 4, 32)"
                )
        return self

    @property
    def resolutions(self) -> list[int]:
        """The feature-map size at each level of the U-Net, from the top."""
        return [self.image_size // 2**i for i in range(len(self.ch_mult))]
