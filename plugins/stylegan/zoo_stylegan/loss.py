"""StyleGAN2 training losses as pure functions (the official ``training/loss.py`` StyleGAN2Loss, term by term).

- Non-saturating logistic loss (Goodfellow et al. 2014): G minimises softplus(-D(G(z))); D minimises
  softplus(D(G(z))) + softplus(-D(x)).
- R1 (Mescheder et al. 2018): gamma / 2 * ||grad_x D(x)||^2 on reals. With lazy regularisation (StyleGAN2,
  appendix B) it runs every ``interval`` D steps and is multiplied by ``interval`` so its average weight stays.
  It lives in the core (``zoo_core.training.regularizers``, shared with DDGAN) and is re-exported here.
- Path-length regularisation (StyleGAN2, section 3.2): (||J_w^T y||_2 - a)^2 with y ~ N(0, I) / sqrt(H W) and a
  the running mean of the lengths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo_core.training.regularizers import r1_loss, r1_penalty

__all__ = ["d_logistic", "g_nonsaturating", "path_length", "path_length_penalty", "r1_loss", "r1_penalty"]


def g_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample -log sigmoid(D(G(z)))."""
    return F.softplus(-fake_logits)


def d_logistic(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Mean of softplus(D(fake)) + softplus(-D(real)) (the two halves may come from different batches)."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def path_length(images: torch.Tensor, ws: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Per-sample ||J_w^T y||: y = ``noise`` / sqrt(H W), averaged over the ws (official ``pl_lengths``)."""
    y = noise / (images.shape[2] * images.shape[3]) ** 0.5
    (grad,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
    return grad.square().sum(dim=2).mean(dim=1).sqrt()


def path_length_penalty(
    lengths: torch.Tensor, pl_mean: torch.Tensor, decay: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-sample (length - a)^2, the updated running mean a) with a <- a + decay * (mean length - a)."""
    new_mean = pl_mean.lerp(lengths.mean().detach(), decay)
    return (lengths - new_mean).square(), new_mean
