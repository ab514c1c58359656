"""The Frechet distance between two Gaussians fitted to feature sets (the distance behind FID).

    d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2})

The trace of the matrix square root is computed without a non-symmetric ``sqrtm``: S_1 S_2 is similar to the
symmetric positive semi-definite M = S_1^{1/2} S_2 S_1^{1/2}, so tr((S_1 S_2)^{1/2}) = sum_i sqrt(lambda_i(M)),
with S_1^{1/2} and the eigenvalues of M from symmetric eigendecompositions (float64, tiny negative eigenvalues
from round-off clipped to zero). This avoids the complex parts and ``eps`` offsets that ``scipy.linalg.sqrtm``
needs on near-singular covariances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class GaussianStats:
    """Mean [D] and covariance [D, D] of a feature set (float64), and how many samples they came from."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int


def _as_float64(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def feature_statistics(features: ArrayLike) -> GaussianStats:
    """Mean and unbiased covariance of features [N, D] (N >= 2)."""
    f = _as_float64(features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [N, D] with N >= 2, got shape {f.shape}")
    return GaussianStats(f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False)), f.shape[0])


def _sym_sqrt(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh((a + a.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(sigma1: ArrayLike, sigma2: ArrayLike) -> float:
    """tr((S_1 S_2)^{1/2}) for symmetric PSD S_1, S_2."""
    s1, s2 = _as_float64(sigma1), _as_float64(sigma2)
    root = _sym_sqrt(s1)
    m = root @ s2 @ root
    values = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(values, 0.0, None)).sum())


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (what FID reports), >= 0."""
    m1, m2 = _as_float64(mu1).reshape(-1), _as_float64(mu2).reshape(-1)
    s1, s2 = np.atleast_2d(_as_float64(sigma1)), np.atleast_2d(_as_float64(sigma2))
    if m1.shape != m2.shape or s1.shape != s2.shape or s1.shape != (m1.size, m1.size):
        raise ValueError(
            f"mismatched statistics: means {m1.shape} and {m2.shape}, covariances {s1.shape} and {s2.shape}"
        )
    diff = m1 - m2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2)
    return max(float(value), 0.0)


def frechet_distance_stats(a: GaussianStats, b: GaussianStats) -> float:
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


def frechet_distance_features(features1: ArrayLike, features2: ArrayLike) -> float:
    """Frechet distance between the Gaussians fitted to two feature sets [N1, D] and [N2, D]."""
    return frechet_distance_stats(feature_statistics(features1), feature_statistics(features2))
