"""k-NN precision/recall (Kynkäänniemi et al. 2019) against a brute-force loop and on sets with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from zoo_core.metrics.precision_recall import knn_radii, precision_recall


def brute_force(real: torch.Tensor, fake: torch.Tensor, k: int) -> tuple[float, float]:
    def radii(points: list[list[float]]) -> list[float]:
        out = []
        for i, p in enumerate(points):
            d = sorted(math.dist(p, q) for j, q in enumerate(points) if j != i)
            out.append(d[k - 1])
        return out

    def share_inside(points: list[list[float]], centres: list[list[float]], r: list[float]) -> float:
        hits = [any(math.dist(p, c) <= rc for c, rc in zip(centres, r, strict=True)) for p in points]
        return sum(hits) / len(hits)

    re, fa = real.tolist(), fake.tolist()
    return share_inside(fa, re, radii(re)), share_inside(re, fa, radii(fa))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_matches_brute_force(k):
    g = torch.Generator().manual_seed(k)
    real = torch.randn(40, 5, generator=g)
    fake = torch.randn(33, 5, generator=g) * 1.3 + 0.4
    ours = precision_recall(
        real, fake, k=k, chunk=7
    )  # chunks smaller than the sets: the chunking is exercised
    assert ours == pytest.approx(brute_force(real, fake, k), abs=1e-12)
    assert 0 < min(ours) < 1  # a case where the balls matter, not all-in or all-out


def test_known_answers_identical_disjoint_subset():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(50, 8, generator=g)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    # two far-apart modes; a subset drawn from one mode is realistic (precision 1) but misses the other mode
    two_modes = torch.cat([real[:25], real[25:] + 100.0])
    precision, recall = precision_recall(two_modes, two_modes[:15])
    assert precision == 1.0 and 0.25 < recall <= 0.5
    assert recall == pytest.approx(brute_force(two_modes, two_modes[:15], 3)[1])


def test_radii_and_bad_shapes():
    pts = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    assert knn_radii(pts, k=1).tolist() == [1.0, 1.0, 2.0, 3.0]
    assert knn_radii(pts, k=2).tolist() == [3.0, 2.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="k < N"):
        knn_radii(pts, k=4)
    with pytest.raises(ValueError, match="dimensions"):
        precision_recall(torch.zeros(5, 2), torch.zeros(5, 3))
