"""Exponential moving average of a module's weights: the model that samples best is the EMA, not the last step.

``ema <- decay * ema + (1 - decay) * param`` after every optimizer step (Polyak averaging; DDPM and DDGAN use
0.9999). With warm-up the decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early weights,
which are far from the final ones, are forgotten quickly. Floating-point buffers (BatchNorm statistics,
StyleGAN's w_avg) are averaged the same way; integer buffers (counters) are copied. Frozen parameters are
skipped: they never change, so their copy already equals them.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay(decay: float, num_updates: int, warmup: bool = True) -> float:
    """The decay applied at update ``num_updates`` (0-based)."""
    if not warmup:
        return decay
    return min(decay, (1.0 + num_updates) / (10.0 + num_updates))


class EMA:
    """A frozen copy of ``module`` (``ema.module``) that tracks its weights' moving average."""

    def __init__(self, module: nn.Module, decay: float = 0.9999, warmup: bool = True) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    def current_decay(self) -> float:
        return ema_decay(self.decay, self.num_updates, self.warmup)

    @torch.no_grad()
    def update(self, module: nn.Module) -> float:
        """Move the average toward ``module``'s current weights; returns the decay used."""
        decay = self.current_decay()
        ema_float, src_float = [], []
        for (name, ema_t), src_t in zip(_tensors(self.module), (t for _, t in _tensors(module)), strict=True):
            if isinstance(src_t, nn.Parameter) and not src_t.requires_grad:
                continue  # frozen weights (a fine-tune's text encoder) equal their copy: skip the work
            if ema_t.shape != src_t.shape:
                raise ValueError(
                    f"EMA tensor {name} has shape {tuple(ema_t.shape)}, module {tuple(src_t.shape)}"
                )
            if ema_t.is_floating_point():
                ema_float.append(ema_t)
                src_float.append(src_t.to(ema_t.dtype))
            else:
                ema_t.copy_(src_t)
        if ema_float:
            torch._foreach_lerp_(ema_float, src_float, 1.0 - decay)
        self.num_updates += 1
        return decay

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Write the averaged weights into ``module`` (e.g. to export or evaluate them in place)."""
        for (_, ema_t), (_, dst) in zip(_tensors(self.module), _tensors(module), strict=True):
            dst.copy_(ema_t)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], num_updates: int) -> None:
        self.module.load_state_dict(state, strict=True)
        self.num_updates = num_updates


def _tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Parameters then buffers, in a fixed order shared by a module and its deep copy."""
    return list(module.named_parameters()) + list(module.named_buffers())
