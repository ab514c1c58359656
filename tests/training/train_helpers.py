"""A tiny denoising trainer on synthetic data, for tests of the core training loop (also run under torchrun)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from zoo_core.trainer import Trainer
from zoo_core.training.config import TrainConfig


class SyntheticImages(Dataset):
    """``n`` smooth random 1 x size x size images in [-1, 1] with labels 0..9 (fixed by ``seed``)."""

    def __init__(self, n: int = 48, size: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        low = torch.rand(n, 1, size // 2, size // 2, generator=g) * 2 - 1
        self.images = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
        self.labels = torch.randint(0, 10, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


class TinyNet(nn.Module):
    """Two convolutions with dropout (exercises the global RNG) and a float buffer (exercises buffer EMA)."""

    def __init__(self, width: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        self.inp = nn.Conv2d(1, width, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Conv2d(width, 1, 3, padding=1)
        self.register_buffer("steps_seen", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.steps_seen += 1
        return self.out(self.drop(F.silu(self.inp(x))))

    @torch.no_grad()
    def sample(self, n: int, *, seed: int = 0, **_: Any) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.tanh(self(torch.randn(n, 1, 8, 8, generator=g)))


class TinyConfig(TrainConfig):
    width: int = 8
    dropout: float = 0.0
    sigma: float = 0.5


class TinyTrainer(Trainer):
    """Denoise x + sigma * noise back to x; the noise comes from the batch's split-independent stream."""

    name = "tiny"
    config_class = TinyConfig
    config: TinyConfig

    def build_model(self) -> nn.Module:
        return TinyNet(self.config.width, self.config.dropout)

    def build_dataset(self) -> Dataset:
        return SyntheticImages()

    def loss(self, batch, state):  # type: ignore[no-untyped-def]
        x = batch.images
        noisy = x + self.config.sigma * batch.randn_like(x)
        pred = state.model(noisy)
        loss = F.mse_loss(pred, x)
        return loss, {"pred_std": pred.detach().std()}


def tiny_config(tmp_path: Any, **fields: Any) -> TinyConfig:
    base: dict[str, Any] = {
        "out_dir": str(tmp_path),
        "max_steps": 6,
        "batch_size": 8,
        "lr": 1e-2,
        "ema_decay": 0.9,
        "checkpoint_every": 2,
        "keep_checkpoints": 10,
        "log_every": 1,
        "progress": False,
        "save_final": False,
    }
    base.update(fields)
    return TinyConfig.parse(base)
