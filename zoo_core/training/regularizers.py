"""Gradient penalties of GAN discriminators, written once for every family that trains one (StyleGAN, DDGAN).

- R1 (Mescheder, Geiger & Nowozin 2018, "Which Training Methods for GANs do actually Converge?"):
  gamma / 2 * E ||grad_x D(x)||^2 over real x. It keeps D flat on the data, which makes training converge.
- Lazy regularisation (Karras et al. 2020, StyleGAN2, appendix B): the penalty is computed only every
  ``interval`` steps, as its own optimizer step, and multiplied by ``interval`` so its average weight is the same.
  Adam then sees ``interval + 1`` updates where there were ``interval``, so its hyperparameters are rescaled by
  c = interval / (interval + 1): lr -> c * lr, beta -> beta ** c (the official ``mb_ratio``).
"""

from __future__ import annotations

import torch


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """Per-sample ||grad_x sum D(x)||^2 [N], summed over every non-batch dimension of the input.

    ``real_inputs`` must require grad and ``real_logits`` be computed from them. The graph is kept
    (``create_graph``) so that the penalty can be back-propagated into D's weights.
    """
    if not real_inputs.requires_grad:
        raise ValueError(
            "r1_penalty: real_inputs must require grad (x.detach().requires_grad_(True)) before D(x)"
        )
    (grad,) = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return grad.reshape(grad.shape[0], -1).square().sum(dim=1)


def r1_loss(
    real_logits: torch.Tensor, real_inputs: torch.Tensor, gamma: float, interval: int = 1
) -> torch.Tensor:
    """gamma / 2 * mean R1, multiplied by the lazy-regularisation ``interval`` (1: every step; 16 in StyleGAN2)."""
    return r1_penalty(real_logits, real_inputs).mean() * (gamma / 2) * interval


def lazy_ratio(interval: int | None) -> float:
    """c = interval / (interval + 1), the share of Adam's updates that are not regularisation steps (1 if never)."""
    if interval is None:
        return 1.0
    if interval < 1:
        raise ValueError(f"a lazy-regularisation interval must be >= 1, got {interval}")
    return interval / (interval + 1)


def lazy_adam(
    lr: float, betas: tuple[float, float], interval: int | None
) -> tuple[float, tuple[float, float]]:
    """Adam's (lr, betas) for a network regularised every ``interval`` steps: (c lr, (b1^c, b2^c)).

    >>> lazy_adam(0.0025, (0.0, 0.99), 16)  # doctest: +ELLIPSIS
    (0.00235..., (0.0, 0.990...))
    """
    c = lazy_ratio(interval)
    return lr * c, (betas[0] ** c, betas[1] ** c)


def is_regularization_step(step: int, interval: int | None) -> bool:
    """Whether a lazy regulariser runs at (0-based) ``step``: every ``interval``-th step, starting with step 0."""
    return interval is not None and step % interval == 0
