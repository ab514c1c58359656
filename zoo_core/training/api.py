"""``zoo.train(name, ...)`` and ``zoo train NAME --config cfg.yaml``: find the trainer, validate, then fit.

The trainer is looked up in the registry (kind ``trainers``) and the whole config validated before any model or
data is built, so a typo fails in a second. Under ``torchrun`` every process runs the same command; the loop
joins the process group from the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_core.training.config import TrainConfig, apply_overrides, load_config, read_yaml

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.data import Dataset

    from zoo_core.trainer import Trainer
    from zoo_core.training.state import TrainState


def get_trainer_class(name: str) -> type[Trainer]:
    """The trainer class registered as ``name`` (``zoo plugins`` lists them)."""
    from zoo_core.registry import get_registry

    return get_registry().get("trainers", name)


def make_trainer(
    name: str,
    config: str | os.PathLike[str] | Mapping[str, Any] | TrainConfig | None = None,
    *,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    **fields: Any,
) -> Trainer:
    """The trainer ``name`` with its config from ``config`` (YAML path, mapping or instance), then ``fields``,
    then ``overrides`` (``key=value`` strings, dotted keys for nested fields) applied on top."""
    cls = get_trainer_class(name)
    where = ""
    if isinstance(config, (str, os.PathLike)):
        data: Any = read_yaml(config)
        where = os.fspath(config)
    elif isinstance(config, TrainConfig):
        data = config.model_dump(mode="json")
    else:
        data = dict(config or {})
    data = apply_overrides(data, fields)
    parsed = load_config(cls.config_class, data, overrides=overrides, where=where)
    trainer = cls(parsed)
    if not trainer.name:
        trainer.name = name
    return trainer


def train(
    name: str,
    config: str | os.PathLike[str] | Mapping[str, Any] | TrainConfig | None = None,
    *,
    resume: bool | str | Path = False,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    model: nn.Module | None = None,
    dataset: Dataset | None = None,
    **fields: Any,
) -> TrainState:
    """Train with the trainer registered as ``name``; config fields may also be given as keyword arguments.

    >>> state = zoo.train("ddpm", "tiny.yaml", max_steps=100, out_dir="runs/tiny")  # doctest: +SKIP

    ``resume=True`` continues the newest checkpoint in ``out_dir``; a path resumes from that checkpoint.
    Returns the final ``TrainState`` (``state.model``, ``state.ema_model()``, ``state.step``).
    """
    trainer = make_trainer(name, config, overrides=overrides, **fields)
    return trainer.fit(model=model, dataset=dataset, resume=resume)


def train_from_cli(args: argparse.Namespace) -> int:
    """``zoo train NAME [--config cfg.yaml] [--resume] [--out DIR] [--set key=value ...]``."""
    fields = {"out_dir": args.out} if args.out else {}
    trainer = make_trainer(args.name, args.config, overrides=args.set or [], **fields)
    state = trainer.fit(resume=bool(args.resume))
    if state.dist.is_main:
        out = Path(trainer.config.out_dir)
        print(f"trained {args.name} to step {state.step}; checkpoints in {out / 'checkpoints'}")
    return 0
