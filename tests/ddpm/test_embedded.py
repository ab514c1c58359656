"""The embedded ``ddpm`` / ``ddim`` models: a small DDPM trained by this project on the real digits and shipped in
the plugin (``zoo_ddpm/weights/ddpm-digits``), so that ``zoo sample ddpm`` works offline.

Checked here: the cards' checksums match the shipped file; the shipped weights are what the shipped training
config describes; sampling is deterministic with a seed; and the samples are legible digits to the digit
classifier (the threshold is the figure measured by ``benchmarks/bench_digits_quality.py`` with a margin).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from zoo_core.weights import embedded_path, sha256_file

#: share of 64 DDIM-50 samples (seed 0) the classifier must call with confidence > 0.9. Measured: 0.846 on 1000
#: samples (benchmarks/bench_digits_quality.py --n 1000), 0.906 on these 64; real digits: 0.986.
MIN_CONFIDENT_SHARE = 0.7


def shipped_config() -> Path:
    return Path(str(resources.files("zoo_ddpm") / "configs" / "ddpm-digits.yaml"))


@pytest.mark.parametrize("name", ["ddpm", "ddim"])
def test_embedded_card_checksum_matches_the_shipped_weights(name):
    card = zoo.info(name)
    assert card.weights is not None and card.weights.source == "embedded:zoo_ddpm/weights/ddpm-digits"
    directory = embedded_path(card.weights.source)
    assert card.weights.sha256, f"{name}: the card records no checksum"
    for filename, digest in card.weights.sha256.items():
        assert sha256_file(directory / filename) == digest, f"{name}: {filename} differs from its card"
    assert (directory / "model.safetensors").stat().st_size < 6 * 2**20


def test_embedded_cards_differ_only_in_their_sampler():
    ddpm, ddim = zoo.info("ddpm"), zoo.info("ddim")
    assert ddpm.weights.source == ddim.weights.source and ddpm.weights.sha256 == ddim.weights.sha256
    assert (ddpm.default_sampler, ddpm.default_steps) == ("ddpm", 1000)
    assert (ddim.default_sampler, ddim.default_steps) == ("ddim", 50)
    assert (ddpm.resolution, ddpm.channels) == (16, 1) == (ddim.resolution, ddim.channels)


def test_shipped_weights_are_what_the_shipped_training_config_describes():
    from zoo_ddpm.model import DDPMConfig

    path = shipped_config()
    assert path.exists(), "the training config must ship inside the package (package-data)"
    for name in ("ddpm", "ddim"):
        command = zoo.info(name).training_command
        assert "zoo train ddpm --config plugins/ddpm/zoo_ddpm/configs/ddpm-digits.yaml" in command
    trained = DDPMConfig.parse(yaml.safe_load(path.read_text(encoding="utf-8"))["model"])
    model = zoo.load("ddpm")
    assert model.config == trained
    schedule = model.schedule
    assert (schedule.num_train_timesteps, schedule.beta_schedule, model.prediction_type) == (
        1000,
        "linear",
        "epsilon",
    )
    assert torch.allclose(schedule.betas[[0, -1]].double(), torch.tensor([1e-4, 0.02], dtype=torch.float64))


def test_ddim20_sampling_is_deterministic_with_a_seed():
    model = zoo.load("ddpm")
    seeds = list(range(10, 18))
    x = model.sample(8, sampler="ddim", steps=20, seed=seeds)
    assert x.shape == (8, 1, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, model.sample(8, sampler="ddim", steps=20, seed=seeds))
    assert (x[1:] - x[:1]).abs().flatten(1).amax(1).min() > 0.5, "different seeds, different digits"
    # per-image seeds: image i of the batch is the image a batch of one seeded seeds[i] gives
    assert torch.allclose(model.sample(1, sampler="ddim", steps=20, seed=[13])[0], x[3], atol=1e-5)


@pytest.mark.slow
def test_ddim50_samples_are_legible_digits():
    from zoo_core.metrics.digit_classifier import predict_proba

    model = zoo.load("ddim")  # its default: 50 DDIM steps, eta = 0
    x = model.sample(64, seed=0)
    confidence, predicted = predict_proba(x).max(dim=1)
    assert float((confidence > 0.9).float().mean()) >= MIN_CONFIDENT_SHARE
    assert len(torch.unique(predicted)) >= 7, (
        f"few classes: {torch.bincount(predicted, minlength=10).tolist()}"
    )
    # and the model is not a blur: most pixels are ink or paper like the data's (0.76 of real pixels, 0.74 here)
    assert float((x.abs() > 0.5).float().mean()) > 0.6
