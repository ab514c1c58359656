"""Training DDGAN (Xiao et al. 2022, Algorithm 1) on the core loop: ``zoo train ddgan --config cfg.yaml``.

Each step, as the official ``train_ddgan.py`` does it:

1. D update. Draw t ~ U{0..T-1} and a real pair (x_t, x_{t+1}) from the forward process
   (``DiffusionCoefficients.q_sample_pairs``). The real logit is D(x_t, t, x_{t+1}); the fake x_t is drawn from the
   posterior q(x_t | x_{t+1}, x0') with x0' = G(x_{t+1}, t, z). Loss: softplus(-D(real)) + softplus(D(fake))
   (the non-saturating GAN loss), plus R1 = gamma / 2 * E ||grad_{x_t} D(real)||^2 on the real x_t. With
   ``lazy_reg = k`` the R1 term is added only every k-th step (the official code does not rescale it).
2. G update on a fresh t and pair: softplus(-D(fake)), plus ``rec_weight`` * ||x0' - x0||^2 when set (optionally
   weighted per sample by min(SNR, ``rec_snr_gamma``) of the generator's input).

The reconstruction term is not in the paper (its default, 0, trains exactly Algorithm 1). Later denoising-GAN work
adds it (UFOGen, Xu et al. 2023; SIDDMs, Xu et al. 2023): it anchors x0' to the data the pair came from, so a short
run on a CPU gets digits before the adversarial game has settled, and the adversarial term keeps the samples sharp
and varied where a pure regression would average them.

Both networks use Adam with betas (0.5, 0.9) and a cosine learning-rate decay; the generator keeps an EMA, which is
what samples and what is exported (the official ``netG_*.pth`` is the EMA too). Every random draw comes from the
batch's stream, so a run does not depend on the number of processes. The cosine floor is a ratio of each base rate
(the official code decays both to 1e-5; ``min_lr_ratio`` 0.0625 is that for lr 1.6e-4).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from zoo_core.samplers.posterior import sample_posterior, step_posterior
from zoo_core.trainer import Trainer, TrainParts
from zoo_core.training.config import TrainConfig
from zoo_core.training.regularizers import r1_penalty
from zoo_ddgan.config import DDGANConfig
from zoo_ddgan.discriminator import Discriminator
from zoo_ddgan.model import DDGANModel
from zoo_ddgan.schedule import DiffusionCoefficients


class DDGANTrainConfig(TrainConfig):
    """The core options, the generator to train, the discriminator, and the official GAN settings (CIFAR-10)."""

    model: DDGANConfig = Field(default_factory=DDGANConfig, description="generator and diffusion schedule")
    init_from: str | None = Field(
        None, description="start G from these weights (a model name or a directory)"
    )
    dataset: str | None = "digits"
    # discriminator
    disc_size: Literal["auto", "small", "large"] = Field(
        "auto", description="small (32 px, 3 downsamplings) or large (256 px, 6); auto: small below 128 px"
    )
    ngf: int = Field(64, ge=1, description="discriminator base width")
    t_emb_dim: int = Field(256, ge=2, description="discriminator timestep-embedding width")
    # optimisation (official CIFAR-10 values)
    lr: float = Field(1.6e-4, gt=0, description="generator learning rate (lr_g)")
    lr_d: float = Field(1.25e-4, gt=0, description="discriminator learning rate")
    adam_betas: tuple[float, float] = (0.5, 0.9)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    min_lr_ratio: float = Field(0.0625, ge=0, le=1)
    grad_clip: float | None = None
    r1_gamma: float = Field(0.02, ge=0, description="R1 weight gamma (the penalty is gamma / 2 * ||grad||^2)")
    lazy_reg: int | None = Field(15, ge=1, description="add R1 every this many steps; null: every step")
    rec_weight: float = Field(
        0.0, ge=0, description="weight of ||x0' - x0||^2 in the generator loss (0: the paper's loss)"
    )
    rec_snr_gamma: float | None = Field(
        None,
        gt=0,
        description="weight each sample's reconstruction error by min(SNR(x_{t+1}), gamma) (Min-SNR, Hang et al. "
        "2023); null: the same weight at every t",
    )
    ema_decay: float | None = 0.9999
    ema_warmup: bool = False


class DDGANTrainer(Trainer):
    """A DDGAN generator and its time-conditional discriminator on a dataset of images in [-1, 1]."""

    name = "ddgan"
    config_class = DDGANTrainConfig
    config: DDGANTrainConfig

    def build_model(self) -> nn.Module:
        if self.config.init_from:
            from zoo_core.api import load

            model = load(self.config.init_from)
            if not isinstance(model, DDGANModel):
                raise TypeError(f"init_from {self.config.init_from!r} is a {type(model).__name__}, not DDGAN")
            self.config.model = model.config
            return model.train()
        return DDGANModel(self.config.model)

    def dataset_options(self) -> dict[str, Any]:
        return {"size": self.config.model.image_size, "channels": self.config.model.num_channels}

    def build(self, model: nn.Module, config: TrainConfig) -> TrainParts:
        c = self.config
        size = c.disc_size
        if size == "auto":
            size = "small" if c.model.image_size < 128 else "large"
        D = Discriminator(size, nc=2 * c.model.num_channels, ngf=c.ngf, t_emb_dim=c.t_emb_dim)
        return TrainParts(
            modules={"model": model, "D": D},
            optimizers={"G": self.adamw(model.parameters()), "D": self.adamw(D.parameters(), lr=c.lr_d)},
            ema=["model"],
        )

    # -- the losses -----------------------------------------------------------------------------------------------
    def _pair(self, batch: Any, model: DDGANModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(t, x_t, x_{t+1}): a timestep and a real pair from the forward process."""
        x0 = batch.images
        coefficients = DiffusionCoefficients.from_config(model.config)
        t = batch.randint(0, model.config.num_timesteps)
        x_t, x_next = coefficients.q_sample_pairs(x0, t, batch.randn_like(x0), batch.randn_like(x0))
        return t, x_t, x_next

    def _fake(
        self, batch: Any, model: DDGANModel, t: torch.Tensor, x_next: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_t, x0'): x_t ~ q(x_t | x_{t+1}, x0' = G(x_{t+1}, t, z)), the generator's proposal for the real x_t."""
        z = batch.randn(model.config.nz, dtype=x_next.dtype)
        x0 = model(x_next, t, z)
        post = step_posterior(model.schedule, t, t - 1)
        return sample_posterior(post, x0, x_next, batch.randn_like(x_next), last=(t == 0).cpu()), x0

    def d_loss(self, batch: Any, state: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        model, D = state.model, state.modules["D"]
        t, x_t, x_next = self._pair(batch, model)
        with_r1 = self.config.r1_gamma > 0 and (
            self.config.lazy_reg is None or state.step % self.config.lazy_reg == 0
        )
        real = x_t.detach().requires_grad_(with_r1)
        d_real = D(real, t, x_next).reshape(-1)
        loss_real = F.softplus(-d_real).mean()
        with torch.no_grad():
            fake, _ = self._fake(batch, model, t, x_next)
        d_fake = D(fake, t, x_next).reshape(-1)
        loss = loss_real + F.softplus(d_fake).mean()
        metrics: dict[str, Any] = {"real_logit": d_real.detach().mean(), "fake_logit": d_fake.detach().mean()}
        if with_r1:
            r1 = r1_penalty(d_real, real).mean()
            loss = loss + self.config.r1_gamma / 2 * r1
            metrics["r1"] = r1.detach()
        return loss, metrics

    def g_loss(self, batch: Any, state: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        model, D = state.model, state.modules["D"]
        t, _, x_next = self._pair(batch, model)
        fake, x0_pred = self._fake(batch, model, t, x_next)
        adversarial = F.softplus(-D(fake, t, x_next).reshape(-1)).mean()
        if not self.config.rec_weight:
            return adversarial, {}
        reconstruction = self.reconstruction(model, t, x0_pred, batch.images)
        loss = adversarial + self.config.rec_weight * reconstruction
        return loss, {"adversarial": adversarial.detach(), "rec": reconstruction.detach()}

    def reconstruction(
        self, model: DDGANModel, t: torch.Tensor, x0_pred: torch.Tensor, x0: torch.Tensor
    ) -> torch.Tensor:
        """Mean ||x0' - x0||^2, each sample weighted by min(SNR, gamma) of the x_{t+1} it was predicted from when
        ``rec_snr_gamma`` is set: at high noise x0 is barely determined by x_{t+1}, and a full-weight regression
        there pulls every proposal towards the data mean. (On the digits, resuming the embedded run with it moved the
        Frechet distance by a few points only; the runs are in the header of configs/ddgan-digits.yaml.)"""
        error = (x0_pred - x0).pow(2).flatten(1).mean(1)
        gamma = self.config.rec_snr_gamma
        if gamma is None:
            return error.mean()
        alpha_bar = model.schedule.alphas_cumprod.to(error.device, error.dtype)[t]
        return (error * (alpha_bar / (1 - alpha_bar)).clamp(max=gamma)).mean()

    def step(self, batch: Any, state: Any) -> dict[str, float]:
        metrics = state.optimize(batch, self.d_loss, "D", prefix="D_")
        metrics.update(state.optimize(batch, self.g_loss, "G", prefix="G_"))
        return metrics
