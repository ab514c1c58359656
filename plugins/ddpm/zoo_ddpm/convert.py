"""Converter for w86763777/pytorch-ddpm checkpoints (``ckpt.pt``): ``zoo convert pytorch-ddpm ckpt.pt out/``.

That repository re-implements DDPM in PyTorch (CIFAR-10: ch 128, ch_mult [1, 2, 2, 2], attention at level 1, two
res blocks per level, dropout 0.1, GroupNorm(32) with eps 1e-5). ``main.py`` saves ``ckpt.pt`` as a dict with
``net_model``, ``ema_model``, ``sched``, ``optim``, ``step`` and ``x_T``; we read it with ``weights_only=True`` and
convert the EMA weights (``ema=False`` takes ``net_model``). Its network maps onto our UNet2D as follows:

- a flat ``downblocks``/``upblocks`` list of ResBlocks (``block1`` = GroupNorm, Swish, conv; ``temb_proj`` =
  Swish, linear; ``block2`` = GroupNorm, Swish, dropout, conv; ``shortcut`` 1x1; ``attn`` after the residual
  sum) and DownSample/UpSample (``main`` conv) -> ``down_blocks.i.{resnets,attentions,downsamplers}`` etc.;
- ``AttnBlock`` uses 1x1 convs ``proj_q/k/v/proj`` -> linear ``to_q/k/v/to_out.0`` (one head);
- the time embedding looks up a frozen table of interleaved ``[sin f0, cos f0, sin f1, ...]`` with frequencies
  ``10000^(-i/(ch/2))``; we compute ``[sin..., cos...]`` instead (shift 0, sin first), so ``linear_1``'s input
  columns are permuted and the table is checked and dropped;
- ``head`` -> ``conv_in``, ``tail.0``/``tail.2`` -> ``conv_norm_out``/``conv_out``.

Their sampler computes the posterior mean from the unclipped x0 (``clip_sample`` false) with ``fixedlarge`` variance.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo_core import weights
from zoo_core.errors import WeightsError
from zoo_ddpm.model import DDPMModel

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class PytorchDDPMConfig:
    """The pytorch-ddpm ``UNet(T, ch, ch_mult, attn, num_res_blocks, dropout)`` arguments (CIFAR-10 defaults)."""

    T: int = 1000
    ch: int = 128
    ch_mult: list[int] = field(default_factory=lambda: [1, 2, 2, 2])
    attn: list[int] = field(default_factory=lambda: [1])
    num_res_blocks: int = 2
    dropout: float = 0.1
    in_channels: int = 3
    out_channels: int = 3
    tdim: int | None = None

    def zoo_unet(self, img_size: int) -> dict[str, Any]:
        levels = range(len(self.ch_mult))
        return {
            "sample_size": img_size,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "block_out_channels": [self.ch * m for m in self.ch_mult],
            "layers_per_block": self.num_res_blocks,
            "down_block_types": ["AttnDownBlock2D" if i in self.attn else "DownBlock2D" for i in levels],
            "up_block_types": ["AttnUpBlock2D" if i in self.attn else "UpBlock2D" for i in reversed(levels)],
            "attention_head_dim": None,
            "norm_num_groups": 32,
            "norm_eps": 1e-5,
            "downsample_padding": 1,
            "flip_sin_to_cos": False,
            "freq_shift": 0,
            "dropout": self.dropout,
            "time_embedding_dim": self.tdim if self.tdim and self.tdim != 4 * self.ch else None,
        }


def sinusoid_table(T: int, dim: int) -> torch.Tensor:
    """pytorch-ddpm's frozen time-embedding table [T, dim]: interleaved sin/cos of t * 10000^(-2i/dim)."""
    freqs = torch.exp(-(torch.arange(0, dim, 2) / dim * math.log(10000)))
    args = torch.arange(T).float()[:, None] * freqs[None, :]
    return torch.stack([args.sin(), args.cos()], dim=-1).reshape(T, dim)


def _interleaved_to_halves(weight: torch.Tensor) -> torch.Tensor:
    """Reorder linear input columns from [sin0, cos0, sin1, cos1, ...] to [sin0, sin1, ..., cos0, cos1, ...]."""
    return torch.cat([weight[:, 0::2], weight[:, 1::2]], dim=1)


def _squeeze_1x1(weight: torch.Tensor) -> torch.Tensor:
    return weight.reshape(weight.shape[0], weight.shape[1])


def infer_config(state: Mapping[str, torch.Tensor]) -> PytorchDDPMConfig:
    """Read the architecture off the state dict; fall back to the CIFAR-10 defaults where keys are missing."""
    default = PytorchDDPMConfig()
    try:
        ch, in_channels = state["head.weight"].shape[:2]
        T = state["time_embedding.timembedding.0.weight"].shape[0]
        tdim = state["time_embedding.timembedding.1.weight"].shape[0]
        out_channels = state["tail.2.weight"].shape[0]
    except (KeyError, ValueError, AttributeError):
        return default
    levels: list[tuple[int, int, bool]] = []  # (channels, res blocks, attention) per level
    count, width, attention, k = 0, ch, False, 0
    while any(key.startswith(f"downblocks.{k}.") for key in state):
        if f"downblocks.{k}.main.weight" in state:
            levels.append((width, count, attention))
            count, attention = 0, False
        elif f"downblocks.{k}.block1.2.weight" in state:
            width = state[f"downblocks.{k}.block1.2.weight"].shape[0]
            count += 1
            attention = attention or f"downblocks.{k}.attn.group_norm.weight" in state
        k += 1
    levels.append((width, count, attention))
    counts = {c for _, c, _ in levels}
    if len(counts) != 1 or 0 in counts or any(w % ch for w, _, _ in levels):
        return default
    return PytorchDDPMConfig(
        T=int(T),
        ch=int(ch),
        ch_mult=[w // ch for w, _, _ in levels],
        attn=[i for i, (_, _, a) in enumerate(levels) if a],
        num_res_blocks=counts.pop(),
        in_channels=int(in_channels),
        out_channels=int(out_channels),
        tdim=int(tdim),
    )


def key_map(cfg: PytorchDDPMConfig) -> dict[str, tuple[str | None, Transform | None]]:
    """pytorch-ddpm key -> (our key or None to drop, transform), for every entry of its state dict."""
    mapping: dict[str, tuple[str | None, Transform | None]] = {}

    def plain(src: str, dst: str) -> None:
        for p in ("weight", "bias"):
            mapping[f"{src}.{p}"] = (f"{dst}.{p}", None)

    def resblock(src: str, dst: str, in_ch: int, out_ch: int) -> None:
        plain(f"{src}.block1.0", f"{dst}.norm1")
        plain(f"{src}.block1.2", f"{dst}.conv1")
        plain(f"{src}.temb_proj.1", f"{dst}.time_emb_proj")
        plain(f"{src}.block2.0", f"{dst}.norm2")
        plain(f"{src}.block2.3", f"{dst}.conv2")
        if in_ch != out_ch:
            plain(f"{src}.shortcut", f"{dst}.conv_shortcut")

    def attention(src: str, dst: str) -> None:
        plain(f"{src}.group_norm", f"{dst}.group_norm")
        for theirs, ours in (
            ("proj_q", "to_q"),
            ("proj_k", "to_k"),
            ("proj_v", "to_v"),
            ("proj", "to_out.0"),
        ):
            mapping[f"{src}.{theirs}.weight"] = (f"{dst}.{ours}.weight", _squeeze_1x1)
            mapping[f"{src}.{theirs}.bias"] = (f"{dst}.{ours}.bias", None)

    mapping["time_embedding.timembedding.0.weight"] = (None, None)
    mapping["time_embedding.timembedding.1.weight"] = (
        "unet.time_embedding.linear_1.weight",
        _interleaved_to_halves,
    )
    mapping["time_embedding.timembedding.1.bias"] = ("unet.time_embedding.linear_1.bias", None)
    plain("time_embedding.timembedding.3", "unet.time_embedding.linear_2")
    plain("head", "unet.conv_in")
    plain("tail.0", "unet.conv_norm_out")
    plain("tail.2", "unet.conv_out")

    widths = [cfg.ch * m for m in cfg.ch_mult]
    n_levels = len(widths)
    k, now, skips = 0, cfg.ch, [cfg.ch]
    for i, width in enumerate(widths):
        for j in range(cfg.num_res_blocks):
            resblock(f"downblocks.{k}", f"unet.down_blocks.{i}.resnets.{j}", now, width)
            if i in cfg.attn:
                attention(f"downblocks.{k}.attn", f"unet.down_blocks.{i}.attentions.{j}")
            now = width
            skips.append(now)
            k += 1
        if i != n_levels - 1:
            plain(f"downblocks.{k}.main", f"unet.down_blocks.{i}.downsamplers.0.conv")
            skips.append(now)
            k += 1

    resblock("middleblocks.0", "unet.mid_block.resnets.0", now, now)
    attention("middleblocks.0.attn", "unet.mid_block.attentions.0")
    resblock("middleblocks.1", "unet.mid_block.resnets.1", now, now)

    k = 0
    for u, i in enumerate(reversed(range(n_levels))):
        for j in range(cfg.num_res_blocks + 1):
            in_ch = skips.pop() + now
            resblock(f"upblocks.{k}", f"unet.up_blocks.{u}.resnets.{j}", in_ch, widths[i])
            if i in cfg.attn:
                attention(f"upblocks.{k}.attn", f"unet.up_blocks.{u}.attentions.{j}")
            now = widths[i]
            k += 1
        if i != 0:
            plain(f"upblocks.{k}.main", f"unet.up_blocks.{u}.upsamplers.0.conv")
            k += 1
    return mapping


def _preview(keys: list[str], limit: int = 8) -> str:
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def convert_state_dict(
    state: Mapping[str, torch.Tensor], source: str = "the checkpoint"
) -> tuple[PytorchDDPMConfig, dict[str, torch.Tensor]]:
    """Map a pytorch-ddpm UNet state dict onto ours; raise a WeightsError listing keys that do not fit."""
    cfg = infer_config(state)
    mapping = key_map(cfg)
    missing = [k for k in mapping if k not in state]
    unexpected = [k for k in state if k not in mapping]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_preview(unexpected)}")
        raise WeightsError(
            f"{source} is not a pytorch-ddpm UNet checkpoint (w86763777/pytorch-ddpm): " + " | ".join(parts)
        )
    table = state["time_embedding.timembedding.0.weight"]
    expected_table = sinusoid_table(cfg.T, cfg.ch)
    if table.shape != expected_table.shape or not torch.allclose(table.float(), expected_table, atol=1e-4):
        raise WeightsError(
            f"{source}: time_embedding.timembedding.0.weight is not pytorch-ddpm's sinusoidal table "
            f"[{cfg.T}, {cfg.ch}], so the time embedding cannot be reproduced"
        )
    out: dict[str, torch.Tensor] = {}
    for key, (target, transform) in mapping.items():
        if target is not None:
            value = state[key]
            out[target] = transform(value) if transform is not None else value
    return cfg, out


def is_pytorch_ddpm(path: Path) -> bool:
    """``detect`` of the converter: ``ckpt.pt`` of pytorch-ddpm (``ema_model`` / ``net_model`` entries) or a bare
    UNet state dict in its names; read memory-mapped where the format allows."""
    try:
        ckpt = weights.peek_torch_checkpoint(path)
    except Exception:
        return False
    if not isinstance(ckpt, Mapping):
        return False
    return bool({"ema_model", "net_model"} & set(ckpt)) or "time_embedding.timembedding.0.weight" in ckpt


def read_checkpoint(path: Path, ema: bool = True) -> dict[str, torch.Tensor]:
    """The UNet state dict in ``ckpt.pt`` (``ema_model``, or ``net_model`` with ``ema=False``), or the file itself
    when it is a bare state dict."""
    ckpt = weights.load_torch_checkpoint(path)
    if not isinstance(ckpt, Mapping):
        raise WeightsError(f"{path} holds a {type(ckpt).__name__}, not a pytorch-ddpm checkpoint dict")
    wanted = "ema_model" if ema else "net_model"
    if wanted in ckpt:
        state = ckpt[wanted]
    elif {"ema_model", "net_model"} & set(ckpt):
        raise WeightsError(f"{path} has no {wanted!r} entry; its entries are {sorted(ckpt)}")
    else:
        state = ckpt
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: {wanted!r} is not a state dict (a mapping of names to tensors)")
    return dict(state)


def pytorch_ddpm_model(
    source: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | None = None,
    ema: bool = True,
    img_size: int = 32,
    beta_1: float = 1e-4,
    beta_T: float = 0.02,
) -> DDPMModel:
    """A pytorch-ddpm ``ckpt.pt`` as a ``DDPMModel`` (CPU, eval mode), every key and shape checked.

    ``img_size``, ``beta_1`` and ``beta_T`` are training flags the checkpoint does not store (CIFAR-10 values by
    default); the number of timesteps is read from the embedding table. ``config`` (a card's) is not needed: the
    architecture is read from the checkpoint's shapes.
    """
    source = Path(source)
    state = read_checkpoint(source, ema=ema)
    cfg, converted = convert_state_dict(state, str(source))
    config = {
        "unet": cfg.zoo_unet(img_size),
        "schedule": {
            "num_train_timesteps": cfg.T,
            "beta_schedule": "linear",
            "beta_start": beta_1,
            "beta_end": beta_T,
            "clip_sample": False,
            "variance_type": "fixed_large",
        },
        "prediction_type": "epsilon",
    }
    with torch.device("meta"):
        model = DDPMModel(config)
    weights.check_state_dict(model, converted, str(source))
    model.load_state_dict(converted, strict=True, assign=True)
    return model.eval()


def convert_pytorch_ddpm(
    source: str | os.PathLike[str], out_dir: str | os.PathLike[str], **options: Any
) -> Path:
    """Convert a pytorch-ddpm ``ckpt.pt`` into a zoo ``ddpm.unet`` model directory (nothing is written on error);
    ``options`` as for ``pytorch_ddpm_model``."""
    return pytorch_ddpm_model(source, **options).save_pretrained(out_dir)
