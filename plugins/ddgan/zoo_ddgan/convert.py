"""Converter for the official DDGAN generator checkpoints: ``zoo convert ddgan-official netG_1200.pth out/``.

The official release (NVlabs/denoising-diffusion-gan, Google Drive ``saved_info/dd_gan/...``) ships ``netG_<epoch>.pth``
files: the EMA generator's ``state_dict`` saved from its DistributedDataParallel wrapper, so every key starts with
``module.``. They hold tensors only, so ``torch.load(weights_only=True)`` reads them. Our generator uses the official
parameter names under ``generator.``, so the mapping is ``module.X -> generator.X``, checked key by key with shapes.

The file does not record the architecture: it comes from a preset (the ``ddgan-*`` cards: ``cifar10``,
``celebahq-256``, ``church-256``) plus any config field given as an option (``--set num_timesteps=2``). Without a
preset the converter picks the one preset whose shapes fit and refuses when several do (CelebA-HQ and Church differ
only in T, which the weights cannot tell). Nothing is written unless every key maps with the right shape.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from zoo_core import weights
from zoo_core.errors import ConfigError, WeightsError
from zoo_ddgan.config import DDGANConfig
from zoo_ddgan.model import DDGANModel
from zoo_ddgan.ncsnpp import NCSNpp

PREFIX = "module."
OURS = "generator."
#: what ``format="official"`` writes: the generator as NVlabs' training saves it, and the arguments that built it
OFFICIAL_NAME = "netG.pth"
ARGS_NAME = "args.json"
#: preset name -> card name; the cards in registry.yaml hold the official configs
PRESETS = {
    "cifar10": "ddgan-cifar10",
    "celebahq-256": "ddgan-celebahq-256",
    "church-256": "ddgan-church-256",
}


def preset_config(preset: str) -> dict[str, Any]:
    """The architecture config of a preset (``cifar10``) or card name (``ddgan-cifar10``)."""
    from zoo_core.api import info

    card_name = PRESETS.get(preset, preset)
    if card_name not in PRESETS.values():
        raise ConfigError(
            f"Unknown DDGAN preset {preset!r}; expected one of {', '.join(PRESETS)} (or the card names "
            f"{', '.join(PRESETS.values())})"
        )
    return dict(info(card_name).config)


def read_official(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The generator state dict of an official ``netG_*.pth`` with the ``module.`` prefix removed."""
    state = weights.load_torch_checkpoint(path)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        what = type(state).__name__
        raise WeightsError(
            f"{os.fspath(path)} holds a {what}, not a state dict of tensors: give the official netG_<epoch>.pth "
            "(the EMA generator), not content.pth or another file"
        )
    return {k.removeprefix(PREFIX): v for k, v in state.items()}


def _preview(keys: list[str], limit: int = 5) -> str:
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def mismatch(state: Mapping[str, torch.Tensor], config: DDGANConfig) -> tuple[int, list[str]]:
    """(number of bad keys, descriptions) keeping ``state`` (official names) from a generator of ``config``."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in NCSNpp(config).state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {shape}"
        for k, shape in expected.items()
        if k in state and tuple(state[k].shape) != shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_preview(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_preview(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {_preview(shapes, 3)}")
    return len(missing) + len(unexpected) + len(shapes), problems


def resolve_config(
    state: Mapping[str, torch.Tensor],
    source: str,
    preset: str | None,
    overrides: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
) -> DDGANConfig:
    """The config the weights are converted with: ``config`` if given, else the preset's (or the single preset
    that fits), updated with ``overrides``; raises naming the keys that do not fit."""
    if config is not None:
        candidates = {"the config given for it (a card's, or its args.json)": dict(config)}
    elif preset is not None:
        candidates = {preset: preset_config(preset)}
    else:
        candidates = {name: preset_config(name) for name in PRESETS}
    fits: list[tuple[str, DDGANConfig]] = []
    misfits: list[tuple[int, str, list[str]]] = []
    for name, base in candidates.items():
        parsed = DDGANConfig.parse({**base, **overrides}, where=f"DDGAN config of {name}")
        count, problems = mismatch(state, parsed)
        if count:
            misfits.append((count, name, problems))
        else:
            fits.append((name, parsed))
    if len(fits) == 1:
        return fits[0][1]
    if fits:
        choices = ", ".join(f"{name} (T={parsed.num_timesteps})" for name, parsed in fits)
        raise ConfigError(
            f"The weights in {source} fit several DDGAN presets: {choices}. The file does not record T; choose "
            "one with --set preset=NAME (Python: preset=...)."
        )
    _, name, problems = min(misfits)
    if len(candidates) > 1:
        where = f"any preset ({', '.join(PRESETS)}); against the closest, {name!r}"
    else:
        where = name if config is not None else f"preset {name!r}"
    fix = (
        f"Is it another architecture? Convert it with its config fields: `zoo convert ddgan-official {source} "
        "OUT --set preset=cifar10 --set num_channels_dae=64 ...`, then load OUT"
        if config is not None
        else "Is it another model's file, or a custom architecture (pass its config fields as options, e.g. "
        "--set num_channels_dae=64, with the nearest preset)?"
    )
    raise WeightsError(
        f"{source} is not an official DDGAN generator checkpoint of {where}: " + " | ".join(problems) + ". " + fix
    )


def is_official(path: str | os.PathLike[str]) -> bool:
    """``detect`` of the converter: a torch file holding a generator state dict under the official names
    (``module.all_modules.*`` and ``module.z_transform.*``, or without the DDP prefix); read memory-mapped where the format allows."""
    try:
        state = weights.peek_torch_checkpoint(path)
    except Exception:
        return False
    return isinstance(state, Mapping) and bool(state) and all(
        isinstance(k, str) and k.removeprefix(PREFIX).startswith(("all_modules.", "z_transform.")) for k in state
    )


def load_official(
    source: str | os.PathLike[str],
    *,
    preset: str | None = None,
    config: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> tuple[DDGANConfig, dict[str, torch.Tensor]]:
    """(config, our state dict) for an official ``netG_*.pth``: read, mapped and checked, nothing written."""
    state = read_official(source)
    resolved = resolve_config(state, os.fspath(source), preset, overrides, config)
    return resolved, {OURS + k: v for k, v in state.items()}


def official_model(
    source: str | os.PathLike[str],
    *,
    preset: str | None = None,
    config: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> Any:
    """A ``DDGANModel`` (CPU, eval mode) with the weights of an official ``netG_*.pth``, converted in memory.

    Without ``preset``, an ``args.json`` beside the file (what ``format="official"`` writes: the file's own record)
    gives the architecture, else ``config`` (the card's), else the one preset whose shapes fit."""
    if preset is None:
        args = Path(source).with_name(ARGS_NAME)
        if args.is_file():
            config = json.loads(args.read_text(encoding="utf-8"))
    config, state = load_official(source, preset=preset, config=config, **overrides)
    with torch.device("meta"):
        model = DDGANModel(config)
    weights.check_state_dict(model, state, os.fspath(source))
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def convert_official(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    preset: str | None = None,
    **overrides: Any,
) -> Path:
    """Convert an official DDGAN ``netG_*.pth`` into a zoo ``ddgan.ncsnpp`` model directory (``save_pretrained``).

    ``preset`` is ``cifar10``, ``celebahq-256`` or ``church-256`` (inferred when only one fits); other keyword
    options override config fields. Every key and shape is checked before anything is written.
    """
    model = official_model(source, preset=preset, **overrides)
    return model.save_pretrained(out_dir)


def official_state(model: DDGANModel) -> dict[str, torch.Tensor]:
    """Our state dict under the official checkpoint's names: ``generator.X`` -> ``module.X``, in our order (the
    official ``state_dict`` order)."""
    return {PREFIX + k.removeprefix(OURS): v for k, v in model.state_dict().items() if k.startswith(OURS)}


def write_official(model: DDGANModel, directory: Path) -> Path:
    """``netG.pth``: the generator's state dict as NVlabs' DistributedDataParallel training saves it (every key
    ``module.``-prefixed; their ``test_ddgan.py`` strips the prefix and calls ``load_state_dict``), a plain
    ``torch.save`` of tensors, so ``torch.load(weights_only=True)`` reads it. ``args.json`` beside it holds the
    ``train_ddgan.py`` arguments of the architecture (our config's field names are theirs). The inverse of
    ``read_official``: read back, the tensors are bit-identical."""
    if not isinstance(model, DDGANModel):
        raise TypeError(f"ddgan-official writes DDGAN models, not {type(model).__name__}")
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in official_state(model).items()}
    path = Path(directory) / OFFICIAL_NAME
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:  # written beside the target and renamed over it: never a half-written netG.pth
        torch.save(state, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> what a plain open() gives
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    weights.write_json_atomic(model.config.model_dump(mode="json"), Path(directory) / ARGS_NAME)
    return path
