"""One network evaluation, read in whichever parameterisation a sampler's update needs.

A diffusion model predicts one of epsilon (the noise), sample (x0) or v_prediction (v = alpha eps - sigma x0), where
x_t = alpha x0 + sigma eps with alpha^2 + sigma^2 = 1. The conversions between them, given x_t and (alpha, sigma), are
exact, so a sampler never needs to know what the model predicts: it asks a ``Prediction`` for ``x0``, ``eps``, ``v``
or the probability-flow derivative, and the conversion happens here, once per network evaluation.

Clipping is the same for every sampler (diffusers' rule): ``x0`` is clamped to the schedule's ``clip_sample_range``
or dynamically thresholded (Saharia et al. 2022) when the schedule or the call says so; ``eps`` and ``v`` stay those
of the network's output (diffusers' ``use_clipped_model_output=False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from zoo_core.errors import SamplerError

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


@dataclass(frozen=True)
class Clipping:
    """How x0 is bounded: a clamp to [-range, range], or dynamic thresholding at a quantile of |x0| per sample."""

    clip: bool = False
    clip_range: float = 1.0
    thresholding: bool = False
    threshold_ratio: float = 0.995
    sample_max_value: float = 1.0

    def __call__(self, x0: torch.Tensor) -> torch.Tensor:
        if self.thresholding:
            return dynamic_threshold(x0, self.threshold_ratio, self.sample_max_value)
        return x0.clamp(-self.clip_range, self.clip_range) if self.clip else x0


NO_CLIPPING = Clipping()


def dynamic_threshold(x0: torch.Tensor, ratio: float, max_value: float) -> torch.Tensor:
    """Imagen's dynamic thresholding as diffusers does it: s = the ``ratio`` quantile of |x0| per sample, clamped
    to [1, max_value]; x0 is clamped to [-s, s] and divided by s."""
    flat = x0.reshape(x0.shape[0], -1)
    work = flat.float() if flat.dtype not in (torch.float32, torch.float64) else flat
    s = torch.quantile(work.abs(), ratio, dim=1).clamp(min=1, max=max_value).unsqueeze(1)
    return (torch.clamp(work, -s, s) / s).reshape(x0.shape).to(x0.dtype)


def check_prediction_type(prediction_type: str) -> str:
    if prediction_type not in PREDICTION_TYPES:
        raise SamplerError(
            f"the model predicts {prediction_type!r}, which the core cannot convert; a Denoiser's prediction_type "
            f"must be one of the prediction types {', '.join(PREDICTION_TYPES)}"
        )
    return prediction_type


class Prediction:
    """The network output ``output`` at ``x_t`` (noise level: x_t = alpha x0 + sigma eps), in every form.

    Each form is computed on first use and kept; the formulas are those of ``to_x0_eps``.
    """

    def __init__(
        self,
        output: torch.Tensor,
        x_t: torch.Tensor,
        alpha: float,
        sigma: float,
        prediction_type: str,
        clipping: Clipping = NO_CLIPPING,
    ) -> None:
        self.output, self.x_t, self.alpha, self.sigma = output, x_t, alpha, sigma
        self.prediction_type, self.clipping = check_prediction_type(prediction_type), clipping

    @cached_property
    def raw_x0(self) -> torch.Tensor:
        """x0 before clipping."""
        out, x_t, alpha, sigma = self.output, self.x_t, self.alpha, self.sigma
        if self.prediction_type == "epsilon":
            return (x_t - sigma * out) / alpha
        if self.prediction_type == "sample":
            return out
        return alpha * x_t - sigma * out

    @cached_property
    def x0(self) -> torch.Tensor:
        """x0_hat, clipped or thresholded per the clipping rule."""
        return self.clipping(self.raw_x0)

    @cached_property
    def eps(self) -> torch.Tensor:
        """eps_hat of the network's (unclipped) output."""
        out, x_t, alpha, sigma = self.output, self.x_t, self.alpha, self.sigma
        if self.prediction_type == "epsilon":
            return out
        if self.prediction_type == "sample":
            return (x_t - alpha * out) / sigma
        return alpha * out + sigma * x_t

    @cached_property
    def v(self) -> torch.Tensor:
        """v = alpha eps - sigma x0 of the network's (unclipped) output."""
        if self.prediction_type == "v_prediction":
            return self.output
        return self.alpha * self.eps - self.sigma * self.raw_x0

    def derivative(self, x: torch.Tensor, sigma_ve: float) -> torch.Tensor:
        """dx/dsigma of the probability-flow ODE in the variance-exploding variable x = x_t / alpha = x0 + sigma_ve
        eps: (x - x0_hat) / sigma_ve (Karras et al. 2022, eq. 3 with x0 clipped)."""
        return (x - self.x0) / sigma_ve

    def recombined(self, output: torch.Tensor) -> Prediction:
        """A Prediction of the same parameterisation at the same x_t for another output, e.g. a linear-multistep
        combination of several evaluations' raw outputs (PNDM combines raw outputs, as diffusers does)."""
        return Prediction(output, self.x_t, self.alpha, self.sigma, self.prediction_type, self.clipping)


def to_x0_eps(
    output: torch.Tensor, x_t: torch.Tensor, alpha: float, sigma: float, prediction_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0_hat, eps_hat) from a network output, where x_t = alpha x0 + sigma eps (alpha^2 + sigma^2 = 1), unclipped.

    epsilon: eps = out, x0 = (x_t - sigma eps) / alpha;  sample: x0 = out, eps = (x_t - alpha x0) / sigma;
    v_prediction (v = alpha eps - sigma x0): x0 = alpha x_t - sigma v, eps = alpha v + sigma x_t.
    """
    p = Prediction(output, x_t, alpha, sigma, prediction_type)
    return p.raw_x0, p.eps
