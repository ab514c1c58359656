from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo_core.metrics.frechet import (
    feature_statistics,
    frechet_distance,
    frechet_distance_features,
    trace_sqrt_product,
)


def _random_spd(rng: np.random.Generator, d: int, rank: int | None = None) -> np.ndarray:
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / d


def test_diagonal_gaussians_match_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()  # 5 + 1 + 1 + 0
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, abs=1e-10)
    assert expected == 7.0


def test_rotated_covariances_match_the_closed_form():
    # Same spectrum, rotated by 90 degrees: S2 = R S1 R^T with S1 = diag(a, b) -> S2 = diag(b, a); commuting.
    a, b = 9.0, 1.0
    rot = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    s1 = rot @ np.diag([a, b]) @ rot.T
    s2 = rot @ np.diag([b, a]) @ rot.T
    expected = 2 * (np.sqrt(a) - np.sqrt(b)) ** 2
    assert frechet_distance(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx(expected, abs=1e-10)


def test_non_commuting_covariances_match_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    s1, s2 = _random_spd(rng, 6), _random_spd(rng, 6)
    reference = np.trace(scipy_linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(reference, rel=1e-9)


def test_distance_is_zero_for_equal_stats_and_symmetric():
    rng = np.random.default_rng(1)
    mu, s = rng.normal(size=5), _random_spd(rng, 5, rank=3)  # singular covariance
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)
    mu2, s2 = rng.normal(size=5), _random_spd(rng, 5)
    d12, d21 = frechet_distance(mu, s, mu2, s2), frechet_distance(mu2, s2, mu, s)
    assert d12 > 0.1 and d12 == pytest.approx(d21, rel=1e-10)


def test_sample_features_converge_to_the_population_distance():
    gen = torch.Generator().manual_seed(0)
    n, d = 20000, 4
    a = torch.randn(n, d, generator=gen, dtype=torch.float64)
    b = 2.0 * torch.randn(n, d, generator=gen, dtype=torch.float64) + 0.5
    expected = d * 0.25 + d * (1.0 - 2.0) ** 2  # |dmu|^2 + sum (sqrt(1) - sqrt(4))^2 = 1 + 4
    assert frechet_distance_features(a, b) == pytest.approx(expected, rel=0.03)
    stats = feature_statistics(a)
    assert stats.n == n and stats.mu.shape == (d,) and stats.sigma.shape == (d, d)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
