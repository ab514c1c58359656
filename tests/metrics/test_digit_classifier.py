from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

pytest.importorskip("sklearn")

from zoo_core.data.digits import DigitsDataset  # noqa: E402
from zoo_core.metrics import digit_classifier as dc  # noqa: E402

# measured: 0.9944 (357 of 359) with `python -m zoo_core.metrics.digit_classifier`; margin for other BLAS builds
MIN_TEST_ACCURACY = 0.98


def test_shipped_weights_are_small_and_record_how_they_were_made():
    assert dc.WEIGHTS_PATH.stat().st_size < 1_000_000
    with safe_open(str(dc.WEIGHTS_PATH), "pt") as handle:
        meta = handle.metadata()
    assert meta["command"].startswith("python -m zoo_core.metrics.digit_classifier --train")
    assert float(meta["test_accuracy"]) >= MIN_TEST_ACCURACY and meta["n_test"] == "359"


def test_shipped_classifier_recognises_the_held_out_digits():
    test = DigitsDataset(16, "test")
    proba = dc.predict_proba(test.images)
    assert proba.shape == (359, 10)
    torch.testing.assert_close(proba.sum(dim=1), torch.ones(359))
    assert (proba.argmax(dim=1) == test.labels).float().mean() >= MIN_TEST_ACCURACY


def test_other_sizes_and_rgb_are_resized_to_16_gray():
    test = DigitsDataset(32, "test")
    assert (dc.predict_proba(test.images).argmax(1) == test.labels).float().mean() >= MIN_TEST_ACCURACY
    rgb = test.images[:20].expand(-1, 3, -1, -1)
    torch.testing.assert_close(dc.predict_proba(rgb), dc.predict_proba(test.images[:20]))
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        dc.predict_proba(torch.zeros(2, 2, 16, 16))


def test_features_are_the_penultimate_layer():
    model = dc.load_digit_classifier()
    x = DigitsDataset(16, "test").images[:50]
    f = dc.features(x, model)
    assert f.shape == (50, dc.FEATURE_DIM) and (f >= 0).all()
    torch.testing.assert_close(model.head(f).softmax(1), dc.predict_proba(x, model))
    f2, p2 = dc.features_and_proba(x, batch_size=7)
    torch.testing.assert_close(f2, f)
    torch.testing.assert_close(p2, dc.predict_proba(x))


def test_junk_images_get_low_confidence():
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(200, 1, 16, 16, generator=g) * 2 - 1
    assert dc.predict_proba(noise).max(dim=1).values.max() < 0.9


@pytest.mark.slow
def test_training_is_deterministic():
    a, fa = dc.train(epochs=1, log=False)
    b, fb = dc.train(epochs=1, log=False)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    # one epoch (23 steps) already beats chance (0.1)
    assert fa["test_accuracy"] == fb["test_accuracy"] > 0.15


def test_missing_weights_name_the_training_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="--train"):
        dc.load_digit_classifier(tmp_path / "nope.safetensors")
