"""The KL-regularised autoencoder of latent diffusion (Rombach et al. 2022, sec. 3 and appendix G).

The encoder maps an image in [-1, 1] to the mean and log-variance of a diagonal Gaussian over latents with
``latent_channels`` channels at 1/2^(n-1) the resolution (4 x H/8 x W/8 for Stable Diffusion); the decoder maps
latents back to images. The diffusion model works on ``scaling_factor * z`` (0.18215 for SD v1, the inverse
standard deviation of the latents measured on the training set, sec. 4.3.2), which the caller applies.

Built from the shared blocks of ``zoo_core.nn`` with diffusers' ``AutoencoderKL`` parameter names (``encoder.*``,
``decoder.*``, ``quant_conv``, ``post_quant_conv``) so published ``vae/`` folders load unchanged. Decoding large
latents can run one image at a time (``sliced``) or in overlapping tiles blended linearly (``tiled``), as diffusers
does, to bound memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field
from torch import nn

from zoo_core.config import Config
from zoo_core.nn import DownEncoderBlock2D, UNetMidBlock2D, UpDecoderBlock2D, activation
from zoo_core.seeding import GeneratorLike, randn


class AutoencoderKLConfig(Config):
    """The fields of diffusers' ``AutoencoderKL`` config; ``scaling_factor`` defaults to SD v1's 0.18215."""

    in_channels: int = 3
    out_channels: int = 3
    down_block_types: list[str] = Field(default_factory=lambda: ["DownEncoderBlock2D"])
    up_block_types: list[str] = Field(default_factory=lambda: ["UpDecoderBlock2D"])
    block_out_channels: list[int] = Field(default_factory=lambda: [64])
    layers_per_block: int = Field(1, ge=1)
    act_fn: str = "silu"
    latent_channels: int = Field(4, ge=1)
    norm_num_groups: int = Field(32, ge=1)
    sample_size: int = Field(32, ge=1)
    scaling_factor: float = 0.18215
    shift_factor: float | None = None
    force_upcast: bool = True
    use_quant_conv: bool = True
    use_post_quant_conv: bool = True
    mid_block_add_attention: bool = True

    @classmethod
    def from_diffusers(cls, data: Mapping[str, Any], where: str = "") -> AutoencoderKLConfig:
        """Read a diffusers ``vae/config.json``; bookkeeping keys (``_class_name``, ...) and fields that do not
        change the network (``latents_mean``, ...) are dropped; a null ``scaling_factor`` takes the default."""
        fields = set(cls.model_fields)
        data = {k: v for k, v in data.items() if k in fields}
        if isinstance(data.get("sample_size"), list | tuple):
            data["sample_size"] = data["sample_size"][0]
        if data.get("scaling_factor") is None:
            data.pop("scaling_factor", None)
        return cls.parse(data, where=where)


class DiagonalGaussian:
    """The encoder's posterior N(mean, exp(logvar)) per latent element; ``logvar`` is clamped to [-30, 20]."""

    def __init__(self, moments: torch.Tensor) -> None:
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: GeneratorLike = None) -> torch.Tensor:
        noise = randn(self.mean.shape, generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) summed over each latent: the regulariser the autoencoder was trained with."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).sum(dim=(1, 2, 3))


def _check_blocks(names: list[str], allowed: str, role: str) -> None:
    bad = [n for n in names if n != allowed]
    if bad:
        raise ValueError(f"AutoencoderKL {role} blocks must all be {allowed!r}, got {bad}")


class Encoder(nn.Module):
    """conv_in -> down blocks (stride-2 convs padded right/bottom) -> mid block (resnet, attention, resnet) ->
    GroupNorm, SiLU, conv_out to 2 x latent channels (mean and log-variance)."""

    def __init__(self, config: AutoencoderKLConfig) -> None:
        super().__init__()
        ch = config.block_out_channels
        _check_blocks(config.down_block_types, "DownEncoderBlock2D", "down")
        self.conv_in = nn.Conv2d(config.in_channels, ch[0], kernel_size=3, padding=1)
        self.down_blocks = nn.ModuleList(
            DownEncoderBlock2D(
                ch[max(i - 1, 0)],
                ch[i],
                num_layers=config.layers_per_block,
                resnet_eps=1e-6,
                resnet_act_fn=config.act_fn,
                resnet_groups=config.norm_num_groups,
                add_downsample=i < len(ch) - 1,
                downsample_padding=0,
            )
            for i in range(len(config.down_block_types))
        )
        self.mid_block = _mid_block(config)
        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, ch[-1], eps=1e-6)
        self.conv_act = activation("silu")
        self.conv_out = nn.Conv2d(ch[-1], 2 * config.latent_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        x = self.mid_block(x)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


class Decoder(nn.Module):
    """conv_in -> mid block -> up blocks (layers_per_block + 1 resnets each, nearest 2x + conv) -> GroupNorm,
    SiLU, conv_out to image channels."""

    def __init__(self, config: AutoencoderKLConfig) -> None:
        super().__init__()
        ch = list(reversed(config.block_out_channels))
        _check_blocks(config.up_block_types, "UpDecoderBlock2D", "up")
        self.conv_in = nn.Conv2d(config.latent_channels, ch[0], kernel_size=3, padding=1)
        self.mid_block = _mid_block(config)
        self.up_blocks = nn.ModuleList(
            UpDecoderBlock2D(
                ch[max(i - 1, 0)],
                ch[i],
                num_layers=config.layers_per_block + 1,
                resnet_eps=1e-6,
                resnet_act_fn=config.act_fn,
                resnet_groups=config.norm_num_groups,
                add_upsample=i < len(ch) - 1,
            )
            for i in range(len(config.up_block_types))
        )
        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, ch[-1], eps=1e-6)
        self.conv_act = activation("silu")
        self.conv_out = nn.Conv2d(ch[-1], config.out_channels, kernel_size=3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


def _mid_block(config: AutoencoderKLConfig) -> UNetMidBlock2D:
    width = config.block_out_channels[-1]
    return UNetMidBlock2D(
        width,
        temb_channels=None,
        resnet_eps=1e-6,
        resnet_act_fn=config.act_fn,
        resnet_groups=config.norm_num_groups,
        attention_head_dim=width,  # one head over all channels
        add_attention=config.mid_block_add_attention,
    )


def _blend(prev: torch.Tensor, tile: torch.Tensor, extent: int, dim: int) -> None:
    """Cross-fade the first ``extent`` rows (dim 2) or columns (dim 3) of ``tile`` from ``prev``'s last ones,
    in place: weight i/extent on the tile, 1 - i/extent on its neighbour."""
    extent = min(prev.shape[dim], tile.shape[dim], extent)
    if extent <= 0:
        return
    ramp = torch.arange(extent, device=tile.device, dtype=torch.float32) / extent
    shape = [1, 1, 1, 1]
    shape[dim] = extent
    w = ramp.view(shape).to(tile.dtype)
    head = tile.narrow(dim, 0, extent)
    head.copy_(prev.narrow(dim, prev.shape[dim] - extent, extent) * (1 - w) + head * w)


def _tiled(
    x: torch.Tensor, fn: Any, in_tile: int, out_tile: int, overlap: float, scale: float
) -> torch.Tensor:
    """Apply ``fn`` to overlapping ``in_tile`` squares of ``x`` (stride in_tile * (1 - overlap)), blend each output
    tile into its upper and left neighbours over out_tile * overlap pixels, and stitch the kept parts."""
    stride = int(in_tile * (1 - overlap))
    extent = int(out_tile * overlap)
    keep = out_tile - extent
    rows = [
        [fn(x[:, :, i : i + in_tile, j : j + in_tile]) for j in range(0, x.shape[3], stride)]
        for i in range(0, x.shape[2], stride)
    ]
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            if i > 0:
                _blend(rows[i - 1][j], tile, extent, dim=2)
            if j > 0:
                _blend(row[j - 1], tile, extent, dim=3)
    out = torch.cat([torch.cat([t[:, :, :keep, :keep] for t in row], dim=3) for row in rows], dim=2)
    height, width = round(x.shape[2] * scale), round(x.shape[3] * scale)
    return out[:, :, :height, :width]


class AutoencoderKL(nn.Module):
    """``encode(images) -> DiagonalGaussian`` over latents; ``decode(latents) -> images`` (unscaled latents)."""

    def __init__(self, config: AutoencoderKLConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.config = AutoencoderKLConfig.parse(config, where="AutoencoderKL")
        c = self.config
        if len(c.down_block_types) != len(c.block_out_channels) or len(c.up_block_types) != len(
            c.block_out_channels
        ):
            raise ValueError(
                f"AutoencoderKL needs one down and one up block per entry of block_out_channels "
                f"({len(c.block_out_channels)}), got {len(c.down_block_types)} and {len(c.up_block_types)}"
            )
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        lat = c.latent_channels
        self.quant_conv = nn.Conv2d(2 * lat, 2 * lat, 1) if c.use_quant_conv else None
        self.post_quant_conv = nn.Conv2d(lat, lat, 1) if c.use_post_quant_conv else None
        # Memory savers for large images (off by default, like diffusers' enable_slicing / enable_tiling).
        self.use_slicing = False
        self.use_tiling = False
        self.tile_sample_min_size = c.sample_size
        self.tile_overlap_factor = 0.25

    @property
    def downscale(self) -> int:
        """Image pixels per latent pixel along each axis (8 for Stable Diffusion)."""
        return 2 ** (len(self.config.block_out_channels) - 1)

    @property
    def tile_latent_min_size(self) -> int:
        return int(self.tile_sample_min_size / self.downscale)

    def enable_tiling(self, tile_sample_size: int | None = None, overlap: float = 0.25) -> None:
        """Encode and decode in overlapping tiles of ``tile_sample_size`` pixels (default: the config's
        ``sample_size``) when the input is larger than one tile."""
        self.use_tiling = True
        self.tile_sample_min_size = tile_sample_size or self.config.sample_size
        self.tile_overlap_factor = overlap

    # -- encoding ------------------------------------------------------------------------------------------------
    def _moments(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        return self.quant_conv(h) if self.quant_conv is not None else h

    def encode(
        self, x: torch.Tensor, *, sliced: bool | None = None, tiled: bool | None = None
    ) -> DiagonalGaussian:
        """Images [B, C, H, W] in [-1, 1] -> the posterior over (unscaled) latents."""
        sliced = self.use_slicing if sliced is None else sliced
        tiled = self.use_tiling if tiled is None else tiled

        def run(batch: torch.Tensor) -> torch.Tensor:
            size = self.tile_sample_min_size
            if tiled and (batch.shape[-1] > size or batch.shape[-2] > size):
                return _tiled(
                    batch,
                    self._moments,
                    size,
                    self.tile_latent_min_size,
                    self.tile_overlap_factor,
                    1 / self.downscale,
                )
            return self._moments(batch)

        moments = torch.cat([run(s) for s in x.split(1)]) if sliced and x.shape[0] > 1 else run(x)
        return DiagonalGaussian(moments)

    # -- decoding ------------------------------------------------------------------------------------------------
    def _decode_tile(self, z: torch.Tensor) -> torch.Tensor:
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)

    def decode(
        self, z: torch.Tensor, *, sliced: bool | None = None, tiled: bool | None = None
    ) -> torch.Tensor:
        """Unscaled latents [B, latent_channels, h, w] -> images [B, C, h * 2^(n-1), w * 2^(n-1)]."""
        sliced = self.use_slicing if sliced is None else sliced
        tiled = self.use_tiling if tiled is None else tiled

        def run(batch: torch.Tensor) -> torch.Tensor:
            size = self.tile_latent_min_size
            if tiled and (batch.shape[-1] > size or batch.shape[-2] > size):
                return _tiled(
                    batch,
                    self._decode_tile,
                    size,
                    self.tile_sample_min_size,
                    self.tile_overlap_factor,
                    self.downscale,
                )
            return self._decode_tile(batch)

        return torch.cat([run(s) for s in z.split(1)]) if sliced and z.shape[0] > 1 else run(z)

    def forward(
        self, x: torch.Tensor, sample_posterior: bool = False, generator: GeneratorLike = None
    ) -> torch.Tensor:
        """Reconstruct ``x`` through the posterior mode (or a sample)."""
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(z)
