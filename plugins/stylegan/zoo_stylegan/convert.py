"""Converter for StyleGAN2-ADA network pickles: ``zoo convert stylegan2-ada-pkl snapshot.pkl out/ --set allow_pickle=true``.

The pickle is read by ``pickle_loader`` (restricted, nothing imported or executed). The networks' constructor
arguments are recovered from each persistent object's ``_init_kwargs`` (the official ``persistence`` decorator
records them), translated onto ``StyleGANConfig``; the EMA generator ``G_ema`` becomes our model (its state dict
names are ours unchanged) and, by default, ``D`` is kept next to it as ``discriminator.safetensors`` for
fine-tuning. Output: ``config.json`` + ``model.safetensors`` (+ ``discriminator.safetensors``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from zoo_core import weights
from zoo_core.errors import ConfigError, WeightsError
from zoo_stylegan.config import DiscriminatorConfig, StyleGANConfig
from zoo_stylegan.discriminator import Discriminator
from zoo_stylegan.model import DISCRIMINATOR_WEIGHTS, StyleGANModel
from zoo_stylegan.pickle_loader import (
    OPT_IN_ENV,
    OPT_IN_FLAG,
    PersistentObject,
    PickleNotAllowedError,
    env_allows_pickle,
    load_snapshot,
    pickle_opt_in_message,
)

if TYPE_CHECKING:
    from zoo_core.cards import ModelCard

__all__ = ["DISCRIMINATOR_WEIGHTS", "convert_stylegan2_ada_pkl", "models_from_snapshot"]
#: what ``format="official"`` writes: G_ema's state dict under the official names, as safetensors
OFFICIAL_NAME = "G_ema.safetensors"

# Positional order of the official constructors, for snapshots whose networks were built with positional args.
G_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")
D_ARGS = (
    "c_dim",
    "img_resolution",
    "img_channels",
    "architecture",
    "channel_base",
    "channel_max",
    "num_fp16_res",
    "conv_clamp",
    "cmap_dim",
    "block_kwargs",
    "mapping_kwargs",
    "epilogue_kwargs",
)
# Arguments that only choose a code path of a later official version (StyleGAN3's copy of these networks).
IGNORED_KWARGS = frozenset({"fused_modconv_default"})


def constructor_kwargs(obj: PersistentObject, names: Sequence[str]) -> dict[str, Any]:
    """The keyword arguments a persistent network was built with (positional ones named by ``names``)."""
    args = obj.init_args
    if len(args) > len(names):
        raise WeightsError(f"{obj.class_name} in the pickle was built with {len(args)} positional arguments")
    kwargs = dict(zip(names, args, strict=False))
    kwargs.update(obj.init_kwargs)
    return kwargs


def _section(kwargs: dict[str, Any], key: str) -> dict[str, Any]:
    value = kwargs.pop(key, None) or {}
    if not isinstance(value, Mapping):
        raise WeightsError(f"{key} in the pickle is a {type(value).__name__}, expected a dict")
    return {k: v for k, v in value.items() if k not in IGNORED_KWARGS}


def generator_config(g_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Official ``Generator`` kwargs -> our config fields (mapping_kwargs -> mapping, synthesis_kwargs -> synthesis)."""
    kw = {k: v for k, v in g_kwargs.items() if k not in IGNORED_KWARGS}
    mapping, synthesis = _section(kw, "mapping_kwargs"), _section(kw, "synthesis_kwargs")
    return {**kw, "mapping": mapping, "synthesis": synthesis}


def discriminator_config(d_kwargs: Mapping[str, Any], g_config: StyleGANConfig) -> DiscriminatorConfig:
    """Official ``Discriminator`` kwargs -> ``DiscriminatorConfig`` (block_kwargs are flattened into it)."""
    kw = {k: v for k, v in d_kwargs.items() if k not in IGNORED_KWARGS}
    for name in ("c_dim", "img_resolution", "img_channels"):
        value = kw.pop(name, getattr(g_config, name))
        if value != getattr(g_config, name):
            raise WeightsError(f"the pickle's D has {name}={value} but its G has {getattr(g_config, name)}")
    block, mapping, epilogue = (
        _section(kw, k) for k in ("block_kwargs", "mapping_kwargs", "epilogue_kwargs")
    )
    return DiscriminatorConfig.parse(
        {**kw, **block, "mapping": mapping, "epilogue": epilogue}, where="the pickle's D"
    )


def _network(snapshot: Mapping[str, Any], key: str, class_name: str) -> PersistentObject:
    obj = snapshot.get(key)
    if not isinstance(obj, PersistentObject):
        found = sorted(k for k, v in snapshot.items() if isinstance(v, PersistentObject))
        raise WeightsError(f"the pickle has no network {key!r} (networks: {', '.join(found) or 'none'})")
    if obj.class_name != class_name:
        raise WeightsError(f"the pickle's {key} is a {obj.class_name!r}, expected a StyleGAN2 {class_name!r}")
    return obj


def _load(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    weights.check_state_dict(module, state, source)
    module.load_state_dict(
        {k: v.detach().to(torch.float32) for k, v in state.items()}, strict=True, assign=True
    )


def models_from_snapshot(
    snapshot: Mapping[str, Any],
    *,
    network: str = "G_ema",
    include_discriminator: bool = True,
    source: str = "the pickle",
) -> tuple[StyleGANModel, Discriminator | None]:
    """Our generator (from ``network``, normally ``G_ema``) and, if asked and present, the discriminator."""
    g = _network(snapshot, network, "Generator")
    try:
        fields = generator_config(constructor_kwargs(g, G_ARGS))
        d_obj = (
            _network(snapshot, "D", "Discriminator") if include_discriminator and "D" in snapshot else None
        )
        config = StyleGANConfig.parse(fields, where=f"the {network} of {source}")
        if d_obj is not None:
            d_cfg = discriminator_config(constructor_kwargs(d_obj, D_ARGS), config)
            config = config.model_copy(update={"discriminator": d_cfg})
    except ConfigError as exc:
        raise WeightsError(f"{exc}. The pickle was made with options zoo does not implement.") from None
    with torch.device("meta"):
        model = StyleGANModel(config)
    _load(model, g.state_dict(), f"{source} ({network})")
    model.eval()
    disc = None
    if d_obj is not None:
        with torch.device("meta"):
            disc = Discriminator(
                config.c_dim, config.img_resolution, config.img_channels, config.discriminator
            )
        _load(disc, d_obj.state_dict(), f"{source} (D)")
        disc.eval()
    return model, disc


def convert_stylegan2_ada_pkl(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    allow_pickle: bool = False,
    network: str = "G_ema",
    include_discriminator: bool = True,
) -> Path:
    """Convert an official StyleGAN2-ADA ``.pkl`` into a zoo ``stylegan2`` model directory.

    ``allow_pickle=True`` is required (the file is a pickle; it is read with a restricted unpickler that never runs
    code from it). ``network`` picks ``G_ema`` (default, what the paper evaluates) or ``G``.
    """
    source = Path(source)
    snapshot = load_snapshot(source, allow_pickle=bool(allow_pickle))
    model, disc = models_from_snapshot(
        snapshot, network=network, include_discriminator=bool(include_discriminator), source=str(source)
    )
    out = Path(out_dir)
    model.save_pretrained(out)
    if disc is not None:
        weights.save_safetensors(
            disc.state_dict(), out / DISCRIMINATOR_WEIGHTS, metadata={"format": "pt", "network": "D"}
        )
    return out


# -- the converter functions the core calls (zoo_core.converter) ------------------------------------------------
def _allowed(allow_pickle: bool | None) -> bool:
    return bool(allow_pickle) if allow_pickle is not None else env_allows_pickle()


def check_pickle_opt_in(
    source: str, *, card: ModelCard | None = None, allow_pickle: bool | None = None, **_: Any
) -> None:
    """Refuse a pickle the user did not opt into, before it is downloaded, naming the risk and the opt-ins."""
    if _allowed(allow_pickle):
        return
    spec = card.weights if card is not None else None
    how = f"{OPT_IN_FLAG}=True (StyleGANModel.from_card / from_pretrained) or the environment {OPT_IN_ENV}=1"
    shown = (
        f"{source.rstrip('/')}/{spec.files[0]}"
        if spec is not None and len(spec.files) == 1 and not source.endswith(".pkl")
        else source
    )
    download = f"zoo download {card.name}" if weights.is_hub_source(source) and card is not None else None
    raise PickleNotAllowedError(pickle_opt_in_message(shown, how, download))


def read_pickle(
    path: Path,
    *,
    config: Mapping[str, Any] | None = None,
    allow_pickle: bool | None = None,
    network: str = "G_ema",
) -> StyleGANModel:
    """An official ``.pkl``'s ``network`` (``G_ema``) as our model; its real constructor arguments are read from
    the pickle, so a card's ``config`` (the paper's) is not needed."""
    check_pickle_opt_in(str(path), allow_pickle=allow_pickle)
    snapshot = load_snapshot(path, allow_pickle=True)
    model, _ = models_from_snapshot(snapshot, network=network, include_discriminator=False, source=str(path))
    return model


def official_kwargs(config: StyleGANConfig) -> dict[str, Any]:
    """Our config as the official ``training.networks.Generator`` keyword arguments (the inverse of
    ``generator_config``): ``Generator(**kwargs).load_state_dict(state)`` rebuilds the network in their code."""
    fields = config.model_dump(mode="json", exclude={"discriminator"})
    mapping, synthesis = fields.pop("mapping"), fields.pop("synthesis")
    return {**fields, "mapping_kwargs": mapping, "synthesis_kwargs": synthesis}


def write_official(model: StyleGANModel, directory: Path) -> Path:
    """``G_ema.safetensors``: the generator's state dict under the official StyleGAN2-ADA names (parameters and
    buffers, as ``G_ema.state_dict()`` holds them), the constructor arguments in the metadata (``G_kwargs``)."""
    if not isinstance(model, StyleGANModel):
        raise TypeError(f"stylegan2-ada-safetensors writes StyleGAN2 models, not {type(model).__name__}")
    metadata = {
        "format": "pt",
        "network": "G_ema",
        "class_name": "training.networks.Generator",
        "G_kwargs": json.dumps(official_kwargs(model.config)),
    }
    return weights.save_safetensors(model.state_dict(), Path(directory) / OFFICIAL_NAME, metadata=metadata)


def is_official(path: Path) -> bool:
    """``detect`` of the safetensors converter: the file says it is the official ``G_ema`` (what
    ``write_official`` records in the metadata), so a zoo ``model.safetensors`` is not taken for one."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return "G_kwargs" in metadata or metadata.get("network") == "G_ema"


def read_official(path: Path, *, config: Mapping[str, Any] | None = None) -> StyleGANModel:
    """A ``G_ema`` safetensors file (official names) as our model: the architecture from its ``G_kwargs``
    metadata, else from ``config``."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:
        raise WeightsError(f"Could not read safetensors file {str(path)!r}: {exc}") from None
    if "G_kwargs" in metadata:
        fields = generator_config(json.loads(metadata["G_kwargs"]))
    elif config is not None:
        fields = dict(config)
    else:
        raise WeightsError(
            f"{path} records no G_kwargs (the Generator's constructor arguments): give the config "
            "(a card's config, or --set z_dim=... on `zoo convert`)"
        )
    parsed = StyleGANConfig.parse(fields, where=f"the G_kwargs of {path}")
    with torch.device("meta"):
        model = StyleGANModel(parsed)
    _load(model, weights.load_safetensors(path), str(path))
    return model.eval()
