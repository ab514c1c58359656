"""The embedded ``stylegan`` model: a small class-conditional StyleGAN2-ADA trained by this project on the real
digits and shipped in the plugin (``zoo_stylegan/weights/stylegan-digits``), so ``zoo sample stylegan`` works
offline.

Checked here: the card's checksums match the shipped files; the shipped weights are what the shipped training
config describes; sampling with labels is deterministic with a seed (and per-image seeds do not depend on the
batch); and the digit classifier reads most samples asked for digit k as k (thresholds: the figures measured by
``benchmarks/bench_stylegan_digits.py``, with a margin).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
import yaml

import zoo
from zoo_core.weights import embedded_path, sha256_file

#: share of 64 samples asked for digit k (seed 0, psi 1) the classifier reads as k, per class and on average.
#: Measured: 1.00 for every class here; 0.999 on 1000 samples (worst class 0.99) by
#: benchmarks/bench_stylegan_digits.py. The margins leave room for a retrained model that is a little weaker.
MIN_CLASS_ACCURACY = 0.85
MIN_MEAN_ACCURACY = 0.95


def shipped_config() -> Path:
    return Path(str(resources.files("zoo_stylegan") / "configs" / "stylegan-digits.yaml"))


def test_embedded_card_checksum_matches_the_shipped_weights():
    card = zoo.info("stylegan")
    assert card.weights is not None and card.weights.source == "embedded:zoo_stylegan/weights/stylegan-digits"
    directory = embedded_path(card.weights.source)
    assert set(card.weights.sha256) == {"config.json", "model.safetensors"}
    for filename, digest in card.weights.sha256.items():
        assert sha256_file(directory / filename) == digest, f"{filename} differs from its card"
    assert (directory / "model.safetensors").stat().st_size < 6 * 2**20
    assert (card.default_sampler, card.resolution, card.channels) == ("gan", 16, 1)
    names = {m.name for m in card.metrics}
    assert {"frechet_distance", "confident_share", "class_coverage", "conditional_accuracy"} <= names
    assert all(m.command for m in card.metrics)


def test_shipped_weights_are_what_the_shipped_training_config_describes():
    from zoo_stylegan.config import StyleGANConfig

    path = shipped_config()
    assert path.exists(), "the training config must ship inside the package (package-data)"
    command = zoo.info("stylegan").training_command
    assert f"zoo train stylegan --config {path.relative_to(path.parents[4]).as_posix()} --out " in command
    trained = StyleGANConfig.parse(yaml.safe_load(path.read_text(encoding="utf-8"))["model"])
    model = zoo.load("stylegan")
    assert model.config == trained
    assert (model.num_classes, model.config.img_resolution, model.config.img_channels) == (10, 16, 1)


def test_sampling_with_labels_is_deterministic_with_a_seed():
    model = zoo.load("stylegan")
    labels = [0, 1, 2, 3, 4, 5, 6, 7]
    x = model.sample(8, seed=0, labels=labels)
    assert x.shape == (8, 1, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, model.sample(8, seed=0, labels=labels))
    assert not torch.allclose(x, model.sample(8, seed=1, labels=labels))
    assert not torch.allclose(x, model.sample(8, seed=0, labels=[9] * 8))  # the label matters
    # per-image seeds: image i of a batch seeded [10..17] is the image a batch of one seeded 10 + i gives
    batch = model.sample(8, seed=list(range(10, 18)), labels=labels)
    torch.testing.assert_close(model.sample(1, seed=[13], labels=[3])[0], batch[3], atol=1e-5, rtol=0)


def test_samples_asked_for_digit_k_are_read_as_k():
    from zoo_core.metrics.digit_classifier import predict_proba

    model = zoo.load("stylegan")
    accuracies = []
    for k in range(10):
        images = model.sample(64, seed=list(range(64 * k, 64 * (k + 1))), labels=k)
        accuracies.append(float((predict_proba(images).argmax(dim=1) == k).float().mean()))
    assert min(accuracies) >= MIN_CLASS_ACCURACY, accuracies
    assert sum(accuracies) / 10 >= MIN_MEAN_ACCURACY, accuracies


def test_truncation_trades_diversity_for_the_average_w():
    model = zoo.load("stylegan")
    seeds = list(range(32))
    spread = [
        float(model.sample(32, seed=seeds, labels=4, truncation_psi=psi).std(dim=0).mean())
        for psi in (1.0, 0.5)
    ]
    assert spread[0] > spread[1] > 0.02, spread
    # psi = 0 maps every latent (and, w_avg being unconditional, every label) to w_avg: one image
    same = model.sample(4, seed=seeds[:4], labels=[1, 2, 3, 4], truncation_psi=0.0)
    assert all(torch.equal(same[0], image) for image in same)
