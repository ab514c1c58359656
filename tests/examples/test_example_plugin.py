"""The example third-party plugin, installed as a stranger would (scripts/setup.sh --dev, .ci/run)."""

from __future__ import annotations

import subprocess
import sys

import torch

import zoo


def test_example_plugin_is_discovered_through_its_entry_point():
    plugin = {p.name: p for p in zoo.list_plugins()}["example"]
    assert plugin.ok and plugin.distribution == "zoo-plugin-example"
    assert plugin.registered == {
        "cards": ["example-gaussian-digits"],
        "models": ["example.gaussian"],
        "samplers": ["pc"],
    }
    out = subprocess.run(
        [sys.executable, "-m", "zoo_core.cli", "list"], capture_output=True, text=True, check=True
    )
    assert "example-gaussian-digits" in out.stdout


def test_example_samples_follow_the_gaussian_it_models():
    model = zoo.load("example-gaussian-digits")
    # the sampler itself (Model.sample clips to [-1, 1], which would bias the variances)
    x = zoo.get_sampler("pc")(model, (1000, 1, 16, 16), steps=50, generator=torch.Generator().manual_seed(0))
    assert x.shape == (1000, 1, 16, 16)
    coords = (x.flatten(1).double() - model.mean.double()) @ model.components.double()
    # mean within 4 standard errors on every principal axis; variance along the top axes within 15%
    stderr = (model.variances.double() / len(x)).sqrt()
    assert ((coords.mean(0)).abs() < 4 * stderr + 0.02).all()
    ratio = coords.var(0)[:8] / model.variances.double()[:8]
    assert ((ratio > 0.85) & (ratio < 1.15)).all(), ratio
    residual = x.flatten(1).double() - model.mean.double() - coords @ model.components.double().T
    assert residual.var().item() < 5 * model.config.floor_variance


def test_example_sampling_is_deterministic_and_per_image_seeded():
    model = zoo.load("example-gaussian-digits")
    a = model.sample(3, seed=[1, 2, 3])
    b = model.sample(2, seed=[2, 3])
    assert torch.equal(a[1:], b)
    assert torch.equal(model.sample(2, seed=7), model.sample(2, seed=7))
    assert not torch.equal(model.sample(2, seed=7), model.sample(2, seed=8))


def test_example_model_round_trips_save_pretrained(tmp_path):
    model = zoo.load("example-gaussian-digits")
    model.save_pretrained(tmp_path / "m")
    again = zoo.load_pretrained(tmp_path / "m")
    assert type(again) is type(model)
    assert torch.equal(again.sample(2, seed=0), model.sample(2, seed=0))
