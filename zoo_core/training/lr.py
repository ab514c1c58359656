"""Learning-rate schedules as pure functions of the step, so a resumed run needs no scheduler state but the step."""

from __future__ import annotations

import math
from typing import Literal

import torch


def lr_factor(
    step: int,
    *,
    max_steps: int,
    warmup_steps: int = 0,
    schedule: Literal["constant", "cosine"] = "constant",
    min_ratio: float = 0.0,
) -> float:
    """The multiplier of the base learning rate for update ``step`` (0-based).

    Warm-up is linear: update ``s < warmup_steps`` uses ``(s + 1) / warmup_steps`` (never a wasted update at
    lr 0). Cosine then decays from 1 at the end of warm-up to ``min_ratio`` at ``max_steps``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(1, max_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"lr schedule must be 'constant' or 'cosine', got {schedule!r}")


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    """Set every param group's lr to its ``initial_lr`` times ``factor``; returns the first group's lr."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"] * factor
    return optimizer.param_groups[0]["lr"]
