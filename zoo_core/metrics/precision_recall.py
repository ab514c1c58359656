"""Improved precision and recall of a generative model (Kynkäänniemi et al., NeurIPS 2019), on feature sets.

Each set approximates its manifold by the union of balls around its points, a ball's radius being the distance
to the point's k-th nearest neighbour in the same set (k = 3 in the paper). Then

    precision = share of generated points inside the real manifold      (are the samples realistic?)
    recall    = share of real points inside the generated manifold      (are the real modes covered?)

torchmetrics has no generative precision/recall (its precision/recall are classification metrics), and
torch-fidelity's needs its Inception extractor, so this is the paper's definition written out, with distances
computed in chunks (memory O(chunk * N)). ``tests/metrics/test_precision_recall.py`` checks it against a
brute-force loop over every pair.
"""

from __future__ import annotations

import torch

DEFAULT_K = 3


def _as_float64(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x).detach().cpu().double()
    if x.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(x.shape)}")
    return x


def knn_radii(features: torch.Tensor, k: int = DEFAULT_K, chunk: int = 1024) -> torch.Tensor:
    """Distance from each point [N, D] to its k-th nearest other point of the same set: [N]."""
    f = _as_float64(features)
    if not 1 <= k < len(f):
        raise ValueError(f"k-NN radii need 1 <= k < N, got k={k} with N={len(f)} points")
    radii = []
    for start in range(0, len(f), chunk):
        d = torch.cdist(f[start : start + chunk], f)
        # the k+1 smallest include the point itself at distance 0
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def manifold_coverage(
    points: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, chunk: int = 1024
) -> float:
    """Share of ``points`` inside at least one ball (centre ``manifold[j]``, radius ``radii[j]``)."""
    p, m = _as_float64(points), _as_float64(manifold)
    inside = []
    for start in range(0, len(p), chunk):
        d = torch.cdist(p[start : start + chunk], m)
        inside.append((d <= radii.double().unsqueeze(0)).any(dim=1))
    return float(torch.cat(inside).double().mean())


def precision_recall(
    real: torch.Tensor, fake: torch.Tensor, k: int = DEFAULT_K, chunk: int = 1024
) -> tuple[float, float]:
    """(precision, recall) of generated features ``fake`` [M, D] against real features ``real`` [N, D]."""
    real, fake = _as_float64(real), _as_float64(fake)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real features have {real.shape[1]} dimensions, generated ones {fake.shape[1]}")
    precision = manifold_coverage(fake, real, knn_radii(real, k, chunk), chunk)
    recall = manifold_coverage(real, fake, knn_radii(fake, k, chunk), chunk)
    return precision, recall
