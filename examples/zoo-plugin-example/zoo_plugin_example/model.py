"""Step 2: a model. A diffusion model whose denoiser is exact because its data model is a Gaussian.

The data are modelled as x0 ~ N(mu, U diag(lam) U^T + s2 I) (a PCA fit). Under the forward process
x_t = sqrt(a) x0 + sqrt(1 - a) eps, x_t is Gaussian too, so the optimal noise prediction is closed-form:
E[eps | x_t] = sqrt(1 - a) C^-1 (x_t - sqrt(a) mu), C = a U diag(lam) U^T + (a s2 + 1 - a) I,
inverted cheaply with the Woodbury identity. Implementing ``predict`` (the Denoiser protocol) is all it takes
for every zoo sampler to run it.
"""

from __future__ import annotations

import torch

from zoo_core.config import Config
from zoo_core.model import Model
from zoo_core.schedule import NoiseSchedule


class GaussianDiffusionConfig(Config):
    image_size: int = 16
    channels: int = 1
    rank: int = 32
    floor_variance: float = 1e-3
    schedule: NoiseSchedule = NoiseSchedule()


class GaussianDiffusionModel(Model):
    architecture = "example.gaussian"
    config_class = GaussianDiffusionConfig
    kind = "diffusion"
    prediction_type = "epsilon"
    default_sampler = "pc"
    default_steps = 50

    def __init__(self, config: GaussianDiffusionConfig | dict | None = None) -> None:
        super().__init__(config)
        c = self.config
        dim = c.channels * c.image_size**2
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("components", torch.zeros(dim, c.rank))  # orthonormal columns
        self.register_buffer("variances", torch.zeros(c.rank))
        self.schedule = c.schedule

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.config.channels, self.config.image_size, self.config.image_size)

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """a(t), interpolated linearly for fractional timesteps."""
        table = self.schedule.alphas_cumprod.to(t.device)
        t = t.double().clamp(0, len(table) - 1)
        low = t.floor().long()
        high = (low + 1).clamp(max=len(table) - 1)
        return torch.lerp(table[low], table[high], t - low)

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond=None, generator=None) -> torch.Tensor:
        if tuple(x_t.shape[1:]) != self.sample_shape:
            raise ValueError(
                f"expected x_t of shape [B, {', '.join(map(str, self.sample_shape))}], got {tuple(x_t.shape)}"
            )
        a = self.alpha_bar(t.expand(x_t.shape[0])).to(x_t.dtype)[:, None]
        r = x_t.flatten(1) - a.sqrt() * self.mean
        c = a * self.config.floor_variance + 1 - a
        shrink = (
            a * self.variances / (c + a * self.variances)
        )  # Woodbury: C^-1 = (I - U diag(shrink) U^T) / c
        r_inv = (r - (r @ self.components * shrink) @ self.components.T) / c
        return ((1 - a).sqrt() * r_inv).reshape(x_t.shape)
