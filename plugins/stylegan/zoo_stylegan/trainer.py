"""Training StyleGAN2(-ADA) on the core loop: ``zoo train stylegan --config cfg.yaml``.

One step follows the official ``training_loop.py`` / ``StyleGAN2Loss`` (NVlabs/stylegan2-ada-pytorch), phase by
phase, each an optimizer update of its own:

1. G main: non-saturating logistic loss softplus(-D(aug(G(z, c)), c)).
2. G reg (only with ``pl_weight > 0``, every ``pl_interval`` steps): path-length penalty on half the batch,
   (||J_w^T y|| - a)^2 with the running mean a, times ``pl_weight * pl_interval``.
3. D main: softplus(D(aug(G(z, c)), c)) + softplus(-D(aug(x), c_x)); sign(D(aug(x))) feeds the ADA controller.
4. D reg (every ``r1_interval`` steps): R1 = gamma / 2 ||grad_x D(aug(x))||^2 times the interval (lazy
   regularisation); ``zoo_core.training.regularizers`` holds the penalty and the Adam rescaling (lr c, betas^c with
   c = interval / (interval + 1)) for each lazily regularised network.

Style mixing: with probability ``style_mixing_prob`` the ws from a random cutoff on come from a second latent
(per image here; the official code draws one cutoff per batch). Augmentation ("diffaugment": colour, translation
and cutout on every image; "ada": the same ops each with probability p, p moved toward E[sign D(real)] = 0.6) is
applied to real and fake images before D. Fake images take random class labels; reals their dataset labels.

G's EMA follows the official schedule: beta = 0.5 ** (batch / ema_nimg) with ema_nimg = min(ema_kimg * 1000,
images_seen * ema_rampup), set on the core's EMA before its update. Every random draw (latents, labels, mixing,
per-layer noise, augmentation) comes from the batch's split-independent streams, so a resumed run is
bit-identical to an uninterrupted one and a run does not depend on the number of processes.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from zoo_core.trainer import Trainer, TrainParts
from zoo_core.training import distributed
from zoo_core.training.config import TrainConfig
from zoo_core.training.regularizers import is_regularization_step, lazy_adam, r1_loss
from zoo_stylegan.augment import AdaptiveAugment, AugmentPipe, parse_policy
from zoo_stylegan.config import DiscriminatorConfig, MappingConfig, StyleGANConfig, SynthesisConfig
from zoo_stylegan.discriminator import Discriminator
from zoo_stylegan.loss import d_logistic, g_nonsaturating, path_length, path_length_penalty
from zoo_stylegan.model import StyleGANModel


def digits_model_config() -> StyleGANConfig:
    """A small class-conditional generator for the 16x16 one-channel digits (the trainer's default model)."""
    return StyleGANConfig(
        z_dim=64,
        w_dim=64,
        c_dim=10,
        img_resolution=16,
        img_channels=1,
        mapping=MappingConfig(num_layers=2),
        synthesis=SynthesisConfig(channel_base=1024, channel_max=128),
    )


class StyleGANTrainConfig(TrainConfig):
    """The core options, the generator (and discriminator) to train, and the StyleGAN2-ADA loss settings."""

    model: StyleGANConfig = Field(
        default_factory=digits_model_config,
        description="the generator; its `discriminator` section (if any) configures D",
    )
    init_from: str | None = Field(None, description="start G from these weights (a model name or directory)")
    dataset: str | None = "digits"
    # optimisation: Adam, the official rates (lr 0.0025 at 32 px, betas (0, 0.99)), no clipping
    lr: float = Field(0.0025, gt=0, description="generator learning rate (before the lazy-reg rescaling)")
    lr_d: float | None = Field(None, gt=0, description="discriminator learning rate; null: lr")
    adam_betas: tuple[float, float] = (0.0, 0.99)
    grad_clip: float | None = None
    # G EMA in images, as the official code: half-life ema_kimg thousand images, ramped up over training
    ema_decay: float | None = Field(0.999, description="null: no EMA; otherwise ema_kimg sets the decay")
    ema_warmup: bool = False
    ema_kimg: float | None = Field(
        10.0, gt=0, description="EMA half-life in kimg; null: the core's ema_decay"
    )
    ema_rampup: float | None = Field(0.05, gt=0, description="half-life <= images seen * this; null: none")
    # regularisation
    r1_gamma: float | None = Field(
        None, ge=0, description="R1 weight; null: official auto 2e-4 res^2 / batch"
    )
    r1_interval: int | None = Field(16, ge=1, description="lazy R1 every this many steps; null: every step")
    pl_weight: float = Field(0.0, ge=0, description="path-length weight (official 2; off for small data)")
    pl_interval: int | None = Field(4, ge=1, description="lazy path length every this many steps")
    pl_batch_shrink: int = Field(2, ge=1, description="path length on batch / this many images")
    pl_decay: float = Field(0.01, gt=0, le=1, description="EMA rate of the path-length target")
    style_mixing_prob: float = Field(
        0.9, ge=0, le=1, description="share of images mixing two latents' styles"
    )
    # augmentation before D
    augment: Literal["none", "diffaugment", "ada"] = Field(
        "ada", description="D's input augmentation: adaptive p (ada), always on (diffaugment) or none"
    )
    augment_policy: str = Field("color,translation,cutout", description="ops, comma-separated")
    augment_p: float = Field(0.0, ge=0, le=1, description="initial p of ada (diffaugment: always 1)")
    ada_target: float = Field(0.6, gt=0, lt=1, description="target of r_t = E[sign(D(real))]")
    ada_interval: int = Field(4, ge=1, description="adjust p every this many steps")
    ada_kimg: float = Field(500.0, gt=0, description="p can move by 1 in this many kimg")

    @model_validator(mode="after")
    def _check_stylegan(self) -> StyleGANTrainConfig:
        parse_policy(self.augment_policy)
        return self

    def gamma(self) -> float:
        if self.r1_gamma is not None:
            return self.r1_gamma
        return 0.0002 * self.model.img_resolution**2 / self.batch_size


class StyleGANTrainer(Trainer):
    """A StyleGAN2 generator and discriminator, unconditional or class-conditional, on images in [-1, 1]."""

    name = "stylegan"
    config_class = StyleGANTrainConfig
    config: StyleGANTrainConfig

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.ada: AdaptiveAugment | None = None
        self.pl_mean = torch.zeros([])

    # -- what to train ------------------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        if self.config.init_from:
            from zoo_core.api import load

            model = load(self.config.init_from)
            if not isinstance(model, StyleGANModel):
                raise TypeError(
                    f"init_from {self.config.init_from!r} is a {type(model).__name__}, not StyleGAN"
                )
            self.config.model = model.config
            return model.train()
        return StyleGANModel(self.config.model)

    def dataset_options(self) -> dict[str, Any]:
        return {"size": self.config.model.img_resolution, "channels": self.config.model.img_channels}

    def discriminator_config(self) -> DiscriminatorConfig:
        """The model's ``discriminator`` section, else the defaults at the generator's widths."""
        m = self.config.model
        if m.discriminator is not None:
            return m.discriminator
        return DiscriminatorConfig(channel_base=m.synthesis.channel_base, channel_max=m.synthesis.channel_max)

    def build(self, model: nn.Module, config: TrainConfig) -> TrainParts:
        c = self.config
        m = c.model
        D = Discriminator(m.c_dim, m.img_resolution, m.img_channels, self.discriminator_config())
        pl_every = c.pl_interval if c.pl_weight > 0 else None
        r1_every = c.r1_interval if c.gamma() > 0 else None
        g_lr, g_betas = lazy_adam(c.lr, c.adam_betas, pl_every)
        d_lr, d_betas = lazy_adam(c.lr_d or c.lr, c.adam_betas, r1_every)
        modules: dict[str, nn.Module] = {"model": model, "D": D}
        self.ada = None
        if c.augment != "none":
            pipe = AugmentPipe(c.augment_policy, p=1.0 if c.augment == "diffaugment" else c.augment_p)
            modules["augment"] = pipe  # p is a buffer: checkpointed with the weights
            if c.augment == "ada":
                self.ada = AdaptiveAugment(pipe, c.ada_target, c.ada_interval, c.ada_kimg)
        self.pl_mean = torch.zeros([])
        return TrainParts(
            modules=modules,
            optimizers={
                "G": self.adamw(model.parameters(), lr=g_lr, betas=g_betas),
                "D": self.adamw(D.parameters(), lr=d_lr, betas=d_betas),
            },
            ema=["model"],
        )

    # -- pieces of the losses -----------------------------------------------------------------------------------
    def _onehot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels.long(), self.config.model.c_dim).float()

    def _real_c(self, batch: Any) -> torch.Tensor | None:
        if self.config.model.c_dim == 0:
            return None
        if batch.labels is None:
            raise ValueError("the model is class-conditional (c_dim > 0) but the dataset has no labels")
        return self._onehot(batch.labels)

    def _fake_c(self, batch: Any) -> torch.Tensor | None:
        c_dim = self.config.model.c_dim
        return None if c_dim == 0 else self._onehot(batch.randint(0, c_dim))

    def run_g(
        self, batch: Any, G: StyleGANModel, c: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, ws) for fresh latents of ``batch``, with style mixing and per-layer noise from its stream."""
        z = batch.randn(G.config.z_dim)
        ws = G.mapping(z, c)
        if self.config.style_mixing_prob > 0:
            num_ws = ws.shape[1]
            z2 = batch.randn(G.config.z_dim)
            mix = batch.rand() < self.config.style_mixing_prob
            cutoff = torch.where(
                mix, batch.randint(1, num_ws), torch.full_like(mix, num_ws, dtype=torch.long)
            )
            ws2 = G.mapping(z2, c, update_w_avg=False)
            later = torch.arange(num_ws, device=ws.device)[None, :] >= cutoff.to(ws.device)[:, None]
            ws = torch.where(later[:, :, None], ws2, ws)
        noise_seeds = batch.randint(0, 2**62)  # one generator per image: noise independent of the split
        generators = [torch.Generator().manual_seed(int(s)) for s in noise_seeds]
        return G.synthesis(ws, noise_mode="random", generator=generators), ws

    def run_d(self, batch: Any, state: Any, images: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """D's logits [N] on augmented ``images``."""
        pipe = state.modules.get("augment")
        if pipe is not None:
            images = pipe(images, batch.rand)
        return state.modules["D"](images, c).reshape(-1)

    # -- the phases ---------------------------------------------------------------------------------------------
    def g_main(self, batch: Any, state: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        c = self._fake_c(batch)
        images, _ = self.run_g(batch, state.model, c)
        logits = self.run_d(batch, state, images, c)
        return g_nonsaturating(logits).mean(), {"fake_logit": logits.detach().mean()}

    def g_pl(self, batch: Any, state: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        c = self.config
        shrink = c.pl_batch_shrink if len(batch) % c.pl_batch_shrink == 0 else 1
        half = batch.split(shrink)[
            0
        ]  # the first rows of this micro-batch (official: batch // pl_batch_shrink)
        images, ws = self.run_g(half, state.model, self._fake_c(half))
        lengths = path_length(images, ws, half.randn_like(images))
        penalty, self.pl_mean = path_length_penalty(lengths, self.pl_mean.to(lengths.device), c.pl_decay)
        loss = penalty.mean() * c.pl_weight * (c.pl_interval or 1)
        return loss, {"pl_length": lengths.detach().mean(), "pl_mean": self.pl_mean.detach()}

    def d_main(self, batch: Any, state: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        c = self._fake_c(batch)
        with torch.no_grad():
            fake, _ = self.run_g(batch, state.model, c)
        fake_logits = self.run_d(batch, state, fake, c)
        real_logits = self.run_d(batch, state, batch.images, self._real_c(batch))
        if self.ada is not None:
            self.ada.accumulate(real_logits)
        metrics = {
            "real_logit": real_logits.detach().mean(),
            "fake_logit": fake_logits.detach().mean(),
            "real_sign": real_logits.detach().sign().mean(),
        }
        return d_logistic(real_logits, fake_logits), metrics

    def d_r1(self, batch: Any, state: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        real = batch.images.detach().requires_grad_(True)
        logits = self.run_d(batch, state, real, self._real_c(batch))
        c = self.config
        loss = r1_loss(logits, real, c.gamma(), c.r1_interval or 1)
        return loss, {"r1": loss.detach() / ((c.gamma() / 2) * (c.r1_interval or 1))}

    def step(self, batch: Any, state: Any) -> dict[str, float]:
        c = self.config
        if c.ema_kimg is not None and "model" in state.ema:
            state.ema["model"].decay = self.ema_beta(state.step)
        metrics = state.optimize(batch, self.g_main, "G", prefix="G_")
        if c.pl_weight > 0 and is_regularization_step(state.step, c.pl_interval or 1):
            metrics.update(state.optimize(batch, self.g_pl, "G", prefix="Gpl_"))
        metrics.update(state.optimize(batch, self.d_main, "D", prefix="D_"))
        if c.gamma() > 0 and is_regularization_step(state.step, c.r1_interval or 1):
            metrics.update(state.optimize(batch, self.d_r1, "D", prefix="Dr1_"))
        if "augment" in state.modules:
            if self.ada is not None:
                self.ada.step(c.batch_size, reduce=distributed.all_reduce_mean)
            metrics["augment_p"] = float(state.modules["augment"].p)
        return metrics

    def ema_beta(self, step: int) -> float:
        """The official G_ema decay before update ``step``: 0.5 ** (batch / min(ema_kimg 1e3, seen * rampup))."""
        c = self.config
        nimg = c.ema_kimg * 1000
        if c.ema_rampup is not None:
            nimg = min(nimg, step * c.batch_size * c.ema_rampup)
        return 0.5 ** (c.batch_size / max(nimg, 1e-8))

    # -- state between steps, samples ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pl_mean": float(self.pl_mean)}
        if self.ada is not None:
            out["ada"] = self.ada.state_dict()
        return out

    def load_state_dict(self, state: Any) -> None:
        self.pl_mean = torch.tensor(float(state.get("pl_mean", 0.0)))
        if self.ada is not None and "ada" in state:
            self.ada.load_state_dict(state["ada"])

    def sample(self, state: Any) -> torch.Tensor | None:
        """A grid of the EMA generator, classes 0, 1, 2, ... in turn for a conditional model."""
        model = state.ema_model()
        c = state.config
        kwargs: dict[str, Any] = {}
        if model.config.c_dim:
            kwargs["labels"] = [i % model.config.c_dim for i in range(c.sample_n)]
        return model.sample(c.sample_n, seed=c.sample_seed, sampler=c.sample_sampler, **kwargs)
