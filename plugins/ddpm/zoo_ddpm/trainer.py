"""Training DDPM (Ho et al. 2020, Algorithm 1) with the core loop: ``zoo train ddpm --config cfg.yaml``.

L_simple: draw t ~ U{0, ..., T-1} and eps ~ N(0, I), form x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps with the model's
own schedule, and regress the network output on eps (or on x_0 / v = sqrt(a_t) eps - sqrt(1 - a_t) x_0 when the
model's ``prediction_type`` is ``sample`` / ``v_prediction``) with an unweighted MSE. The model config (UNet size,
schedule, prediction type) is part of the training config, so one YAML file describes the whole run; a
class-conditional UNet (``num_class_embeds``) is trained on the dataset's labels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from zoo_core.trainer import Trainer
from zoo_core.training.config import TrainConfig
from zoo_ddpm.model import DDPMConfig, DDPMModel


class DDPMTrainConfig(TrainConfig):
    """The core options plus the model to train (or to start from)."""

    model: DDPMConfig = Field(default_factory=DDPMConfig, description="UNet, noise schedule, prediction type")
    init_from: str | None = Field(
        None,
        description="start from these weights (a model name, hf://org/repo or a directory); `model` is ignored",
    )
    dataset: str | None = "digits"
    lr: float = Field(2e-4, gt=0)  # the paper's CIFAR-10 rate
    warmup_steps: int = Field(5000, ge=0)
    ema_decay: float | None = 0.9999


def ddpm_loss(
    model: Any, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, cond: Any = None
) -> torch.Tensor:
    """L_simple for any Denoiser: MSE between the prediction at x_t and its target (eps, x_0 or v)."""
    schedule = model.schedule
    x_t = schedule.add_noise(x0, noise, t)
    prediction = model.predict(x_t, t, cond)
    kind = model.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "sample":
        target = x0
    elif kind == "v_prediction":
        target = schedule.velocity(x0, noise, t)
    else:
        raise ValueError(f"cannot train prediction_type {kind!r}: expected epsilon, sample or v_prediction")
    return F.mse_loss(prediction.float(), target.float())


class DDPMTrainer(Trainer):
    """Unconditional or class-conditional DDPM on a dataset of images in [-1, 1]."""

    name = "ddpm"
    config_class = DDPMTrainConfig
    config: DDPMTrainConfig

    def build_model(self) -> nn.Module:
        if self.config.init_from:
            from zoo_core.api import load

            model = load(self.config.init_from)
            if not isinstance(model, DDPMModel):
                raise TypeError(
                    f"init_from {self.config.init_from!r} is a {type(model).__name__}, not a DDPM model"
                )
            self.config.model = model.config  # what is trained is what the checkpoints record
            return model.train()
        return DDPMModel(self.config.model)

    def dataset_options(self) -> dict[str, Any]:
        unet = self.config.model.unet
        return {"size": unet.image_size[0], "channels": unet.in_channels}

    def loss(self, batch, state):  # type: ignore[no-untyped-def]
        model = state.model
        x0 = batch.images
        t = batch.randint(0, model.schedule.num_train_timesteps)
        noise = batch.randn_like(x0)
        cond = batch.labels if getattr(model, "num_classes", None) else None
        if cond is None and getattr(model, "num_classes", None):
            raise ValueError("the model is class-conditional but the dataset has no labels")
        return ddpm_loss(model, x0, t, noise, cond)

    def sample(self, state):  # type: ignore[no-untyped-def]
        model = state.ema_model()
        c = state.config
        kwargs: dict[str, Any] = {}
        classes = getattr(model, "num_classes", None)
        if classes:
            kwargs["class_labels"] = [i % classes for i in range(c.sample_n)]
        return model.sample(
            c.sample_n, seed=c.sample_seed, sampler=c.sample_sampler, steps=c.sample_steps, **kwargs
        )
