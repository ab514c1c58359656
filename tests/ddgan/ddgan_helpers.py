"""Shared helpers of the DDGAN tests: the seeded official fixture (tests/fixtures/ddgan, see its README in
../shared/fixtures) and small configs."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ddgan"
PTH = FIXTURES / "netG_module_prefixed.pth"

#: the fields of the fixture config that differ from the CIFAR-10 preset (the official small_overrides_argv)
SMALL_OVERRIDES: dict[str, Any] = {
    "num_channels_dae": 32,
    "ch_mult": [1, 2, 2],
    "num_res_blocks": 1,
    "nz": 16,
    "z_emb_dim": 32,
    "n_mlp": 2,
    "image_size": 16,
    "num_timesteps": 4,
    "attn_resolutions": [8],
}


@functools.lru_cache(maxsize=1)
def official_args() -> dict[str, Any]:
    """Every official train_ddgan.py argument the fixture was made with."""
    return json.loads((FIXTURES / "config.json").read_text())["config"]


def small_config() -> dict[str, Any]:
    """The fixture's architecture as a DDGANConfig mapping (official argument names, model fields only)."""
    from zoo_ddgan.config import DDGANConfig

    return {k: v for k, v in official_args().items() if k in DDGANConfig.model_fields}


@functools.lru_cache(maxsize=1)
def io() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / "io.safetensors")


def fixture_model() -> Any:
    """A DDGANModel with the official seeded weights (plain keys in model.safetensors), eval mode."""
    from zoo_ddgan.model import DDGANModel

    model = DDGANModel(small_config())
    model.generator.load_state_dict(load_file(FIXTURES / "model.safetensors"))
    return model.eval()


def key_list(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())
