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


#: extra spellings of core fields on the command line (``--out`` is the historical name of ``--out-dir``)
CLI_ALIASES: dict[str, tuple[str, ...]] = {"out_dir": ("--out",), "max_steps": ("--steps",)}


def list_trainers() -> list[str]:
    from zoo_core.registry import get_registry

    return get_registry().names("trainers")


def trainer_parser(name: str, trainer_class: type[Trainer]) -> argparse.ArgumentParser:
    """The options of ``zoo train NAME``: the run's own (config file, resume, --set) and one per config field."""
    from zoo_core.config_flags import FlagParser, add_config_flags

    config_class = trainer_class.config_class
    summary = (trainer_class.__doc__ or "").strip().splitlines()
    parser = FlagParser(
        prog=f"zoo train {name}",
        usage=f"zoo train {name} [--config cfg.yaml] [--resume] [--FIELD VALUE ...] [--set KEY=VALUE ...]",
        description=(summary[0] if summary else f"Train with the {name!r} trainer.")
        + " Precedence: config file < field flags < --set.",
    )
    parser.add_argument("--config", help="YAML file of config fields (the flags below override it)")
    parser.add_argument(
        "--resume", action="store_true", help="resume from the newest checkpoint in the output directory"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any field, dotted keys reach into nested ones (model.unet.layers_per_block=2)",
    )
    aliases = {
        field: flags for field, flags in CLI_ALIASES.items() if flags[0][2:] not in config_class.model_fields
    }
    add_config_flags(parser, config_class, aliases=aliases, title=f"{config_class.__name__} fields")
    return parser


def trainers_help() -> str:
    lines = [
        "usage: zoo train NAME [--config cfg.yaml] [--resume] [--FIELD VALUE ...] [--set KEY=VALUE ...]",
        "",
    ]
    lines.append("Trainers (`zoo train NAME --help` lists a trainer's options):")
    for name in list_trainers():
        try:
            doc = (get_trainer_class(name).__doc__ or "").strip().splitlines()
            lines.append(f"  {name:<20} {doc[0] if doc else ''}")
        except Exception as exc:  # a broken plugin's trainer is listed with its error, the rest still show
            lines.append(f"  {name:<20} (failed to import: {exc})")
    return "\n".join(lines)


def trainer_from_cli(name: str, options: list[str]) -> tuple[Trainer, bool]:
    """The trainer ``zoo train NAME OPTIONS...`` asks for (config validated, nothing built yet) and whether to resume."""
    from zoo_core.config_flags import given_fields

    trainer_class = get_trainer_class(name)
    parsed = trainer_parser(name, trainer_class).parse_args(options)
    fields = given_fields(parsed, trainer_class.config_class)
    return make_trainer(name, parsed.config, overrides=parsed.set, **fields), bool(parsed.resume)


def train_from_cli(args: argparse.Namespace) -> int:
    """``zoo train NAME [--config cfg.yaml] [--resume] [--FIELD VALUE ...] [--set key=value ...]``."""
    if args.name is None:
        print(trainers_help())
        return 0
    if args.help or {"-h", "--help"} & set(args.options):
        trainer_parser(args.name, get_trainer_class(args.name)).print_help()
        return 0
    trainer, resume = trainer_from_cli(args.name, args.options)
    state = trainer.fit(resume=resume)
    if state.dist.is_main:
        out = Path(trainer.config.out_dir)
        print(f"trained {args.name} to step {state.step}; checkpoints in {out / 'checkpoints'}")
    return 0
