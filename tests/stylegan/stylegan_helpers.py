"""Shared helpers of the StyleGAN tests: the official parity fixture (tests/fixtures/stylegan) and tiny models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from zoo_stylegan.config import DiscriminatorConfig
from zoo_stylegan.discriminator import Discriminator
from zoo_stylegan.model import StyleGANModel

from zoo_core.weights import load_safetensors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stylegan"
PICKLE = FIXTURES / "network-snapshot-small.pkl"

#: The official parity model (stylegan_parity/config.json): Generator(z_dim=32, w_dim=32, c_dim=4, 16 px,
#: mapping num_layers=2, channel_base=512, channel_max=64), everything else the class defaults.
PARITY_CONFIG: dict[str, Any] = {
    "z_dim": 32,
    "w_dim": 32,
    "c_dim": 4,
    "img_resolution": 16,
    "img_channels": 3,
    "mapping": {"num_layers": 2},
    "synthesis": {"channel_base": 512, "channel_max": 64},
}
PARITY_D_CONFIG = DiscriminatorConfig(channel_base=512, channel_max=64)


def official_io() -> dict[str, torch.Tensor]:
    return load_safetensors(FIXTURES / "io.safetensors")


def parity_generator() -> StyleGANModel:
    model = StyleGANModel(PARITY_CONFIG)
    model.load_state_dict(load_safetensors(FIXTURES / "model.safetensors"), strict=True)
    return model.eval()


def parity_discriminator() -> Discriminator:
    disc = Discriminator(4, 16, 3, PARITY_D_CONFIG)
    disc.load_state_dict(load_safetensors(FIXTURES / "D_model.safetensors"), strict=True)
    return disc.eval()


def key_list(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, 'param' | 'buffer') in the official state_dict order."""
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return [(key, tuple(shape), kind) for key, shape, kind in data["state_dict"]]


def official_kwargs(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return {**data["kwargs"], **data["common_kwargs"]}


def our_key_list(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...], str]]:
    params = {name for name, _ in module.named_parameters()}
    return [
        (key, tuple(t.shape), "param" if key in params else "buffer")
        for key, t in module.state_dict().items()
    ]


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """A small unconditional 16 px generator for behaviour tests."""
    config: dict[str, Any] = {
        "z_dim": 16,
        "w_dim": 16,
        "c_dim": 0,
        "img_resolution": 16,
        "mapping": {"num_layers": 2},
        "synthesis": {"channel_base": 256, "channel_max": 32},
    }
    config.update(overrides)
    return config


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Randomise every parameter and buffer a little (zero-initialised ones too), so no path is hidden by zeros."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if "resample_filter" in name:
                continue
            tensor.add_(torch.randn(tensor.shape, generator=g) * 0.3)
    return model
