from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

from zoo_core.data import digits  # noqa: E402
from zoo_core.data.digits import DigitsDataset  # noqa: E402


def test_all_digits_at_16px_are_one_channel_in_range():
    ds = DigitsDataset()
    images, labels = ds.as_tensors()
    assert len(ds) == 1797
    assert images.shape == (1797, 1, 16, 16) and images.dtype == torch.float32
    assert images.min() == -1.0 and images.max() == 1.0
    assert sorted(labels.unique().tolist()) == list(range(10))
    image, label = ds[5]
    assert image.shape == (1, 16, 16) and isinstance(label, int)


def test_native_size_is_the_sklearn_images_scaled_exactly():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = DigitsDataset(size=8).as_tensors()
    expected = torch.from_numpy(bunch.images.astype(np.float32)) / 8.0 - 1.0
    torch.testing.assert_close(images[:, 0], expected, rtol=0, atol=1e-6)
    assert labels.tolist() == bunch.target.tolist()


def test_upsampling_keeps_the_digit_image():
    small, _ = DigitsDataset(size=8).as_tensors()
    big, _ = DigitsDataset(size=32).as_tensors()
    pooled = torch.nn.functional.avg_pool2d(big, 4)
    # average-pooling the bicubic upsample back to 8x8 stays close to the source pixels
    assert (pooled - small).abs().mean() < 0.1
    assert big.shape == (1797, 1, 32, 32)


def test_split_is_stratified_disjoint_and_seeded():
    train, test = DigitsDataset(split="train"), DigitsDataset(split="test")
    assert len(train) + len(test) == 1797
    assert set(train.indices).isdisjoint(test.indices)
    assert 350 <= len(test) <= 370
    counts = torch.bincount(test.labels, minlength=10)
    totals = torch.bincount(DigitsDataset(size=8).labels, minlength=10)
    assert ((counts.float() / totals.float() - 0.2).abs() < 0.01).all()
    again = DigitsDataset(split="test")
    assert np.array_equal(again.indices, test.indices)
    assert torch.equal(again.images, test.images)
    other = DigitsDataset(split="test", seed=1)
    assert not np.array_equal(other.indices, test.indices)
    assert len(DigitsDataset(split="test", test_fraction=0.5)) in range(890, 910)


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="split"):
        DigitsDataset(split="validation")
    with pytest.raises(ValueError, match="size"):
        DigitsDataset(size=0)


def test_missing_sklearn_names_the_install_command(monkeypatch):
    digits._load_raw.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    try:
        with pytest.raises(ImportError, match="pip install scikit-learn"):
            DigitsDataset()
    finally:
        digits._load_raw.cache_clear()
