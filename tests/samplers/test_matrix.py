"""Every registered diffusion sampler runs every embedded diffusion model (and the example plugin's), whatever the
model predicts; a sampler of the other kind says why in one line.

Parametrised over ``zoo.list_samplers()`` and the registry's embedded cards, so a new sampler or model is in the
matrix the moment a plugin registers it. Quality per cell is measured by ``scripts/sampler_matrix.py`` (README).
"""

from __future__ import annotations

import functools

import pytest
import torch

import zoo
from zoo_core.registry import get_registry, reset_registry

reset_registry()
_cards = get_registry().cards
EMBEDDED = sorted(n for n, c in _cards.items() if c.weights and c.weights.source.startswith("embedded:"))
SAMPLERS = sorted(zoo.list_samplers())
reset_registry()

CONDITIONING = {"t2i": {"prompt": "a red circle on a blue background"}}


@functools.cache
def _load(name: str):
    return zoo.load(name)


def _diffusion_models() -> list[str]:
    """One card per distinct set of embedded weights (``ddim`` is the ``ddpm`` weights with another sampler)."""
    seen, names = set(), []
    for name in sorted(EMBEDDED, key=lambda n: (_cards[n].family != _cards[n].plugin, n)):
        card = _cards[name]
        if card.weights.source in seen or _load(name).kind != "diffusion":
            continue
        seen.add(card.weights.source)
        names.append(name)
    return sorted(names)


DIFFUSION_MODELS = _diffusion_models()
DIFFUSION_SAMPLERS = [s for s in SAMPLERS if "diffusion" in zoo.get_sampler(s).kinds]
GAN_SAMPLERS = [s for s in SAMPLERS if s not in DIFFUSION_SAMPLERS]
GAN_MODELS = [n for n in EMBEDDED if _load(n).kind == "gan"]


def test_the_matrix_covers_the_first_party_and_example_models():
    assert {"ddpm", "ddgan", "t2i", "example-gaussian-digits"} <= set(DIFFUSION_MODELS)
    predicts = {_load(n).prediction_type for n in DIFFUSION_MODELS}
    assert {"epsilon", "sample"} <= predicts  # DDGAN's x0 generator next to epsilon models
    assert {"ddgan", "ddim", "pndm", "pc", "euler"} <= set(DIFFUSION_SAMPLERS) and "gan" in GAN_SAMPLERS


@pytest.mark.parametrize("sampler", DIFFUSION_SAMPLERS)
@pytest.mark.parametrize("name", DIFFUSION_MODELS)
def test_every_diffusion_sampler_runs_every_diffusion_model(name, sampler):
    model = _load(name)
    kwargs = CONDITIONING.get(name, {})
    x = model.sample(2, seed=[3, 4], sampler=sampler, steps=4, **kwargs)
    c = model.config
    assert x.shape[0] == 2 and x.shape[1] == getattr(c, "out_channels", x.shape[1])
    assert torch.isfinite(x).all() and x.abs().max() <= 1
    # not a constant image, and each image from its own seed
    assert x.flatten(1).std(1).min() > 0.05 and (x[0] - x[1]).abs().max() > 0.05
    torch.testing.assert_close(
        model.sample(1, seed=4, sampler=sampler, steps=4, **kwargs), x[1:], atol=2e-4, rtol=0
    )


@pytest.mark.parametrize("sampler", GAN_SAMPLERS)
@pytest.mark.parametrize("name", DIFFUSION_MODELS)
def test_a_gan_sampler_on_a_diffusion_model_says_why(name, sampler):
    with pytest.raises(zoo.SamplerError) as info:
        _load(name).sample(1, seed=0, sampler=sampler)
    message = str(info.value)
    assert "\n" not in message and f"Sampler {sampler!r} cannot run a 'diffusion' model" in message
    assert "GAN generators" in message


@pytest.mark.parametrize("sampler", DIFFUSION_SAMPLERS)
@pytest.mark.parametrize("name", GAN_MODELS)
def test_a_diffusion_sampler_on_a_gan_says_why(name, sampler):
    with pytest.raises(zoo.SamplerError) as info:
        _load(name).sample(1, seed=0, sampler=sampler, steps=2)
    message = str(info.value)
    assert "\n" not in message and f"Sampler {sampler!r} cannot run a 'gan' model" in message
    assert "diffusion models" in message
