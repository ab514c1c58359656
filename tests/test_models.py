"""Every registered model card, tested the moment it is registered (the timm pattern).

Cards with weights shipped inside a plugin (``embedded:``) load, sample a tiny batch deterministically, and round-
trip ``save_pretrained``/``from_pretrained``. Cards whose weights live on the Hub (unreachable in CI) build their
architecture from the card's config on the meta device, so a wrong config or a missing plugin fails here.
"""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo_core.registry import get_registry, reset_registry

reset_registry()
CARDS = sorted(get_registry().cards)
EMBEDDED = [n for n in CARDS if (w := get_registry().cards[n].weights) and w.source.startswith("embedded:")]
REMOTE = [n for n in CARDS if n not in EMBEDDED]


def test_every_card_names_a_registered_architecture_and_sampler():
    registry = get_registry()
    for name in CARDS:
        card = registry.card(name)
        assert card.architecture in registry.names("models"), (
            f"{name}: architecture {card.architecture!r} unregistered"
        )
        if card.default_sampler:
            assert card.default_sampler in registry.names("samplers"), (
                f"{name}: sampler {card.default_sampler!r}"
            )


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_model_samples_and_round_trips(name, tmp_path):
    model = zoo.load(name)
    assert not model.training
    steps = None if (model.default_steps or 0) <= 20 else 10
    x = model.sample(2, seed=0, steps=steps)
    assert x.ndim == 4 and x.shape[0] == 2 and torch.isfinite(x).all()
    assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, model.sample(2, seed=0, steps=steps))
    model.save_pretrained(tmp_path)
    again = type(model).from_pretrained(tmp_path)
    assert torch.equal(again.sample(2, seed=0, steps=steps), x)


@pytest.mark.parametrize("name", REMOTE)
def test_remote_card_config_builds_its_architecture(name):
    card = zoo.info(name)
    cls = get_registry().get("models", card.architecture)
    if not card.config:
        pytest.skip(f"{name}: its config comes with the weights")
    with torch.device("meta"):
        model = cls(card.config)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", EMBEDDED)
def test_loading_does_not_pull_in_torch_dynamo(name):
    """Arithmetic on meta tensors while building imports torch._dynamo (seconds); loading must avoid it."""
    import subprocess
    import sys

    code = f"import sys, zoo; zoo.load({name!r}); print('torch._dynamo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
