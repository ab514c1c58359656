"""TrainConfig: the fields every training run shares, and loading them from YAML with ``--set`` overrides.

A family's trainer extends ``TrainConfig`` with its own fields (the model config, loss options). Configs forbid
unknown fields, and ``load_config`` validates the whole config before any work starts, so a typo fails at once
with a ConfigError naming the field (and the closest real field).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, model_validator

from zoo_core.config import Config
from zoo_core.errors import ConfigError

C = TypeVar("C", bound="TrainConfig")


class TrainConfig(Config):
    """Options of the core training loop. ``batch_size`` is global: summed over processes and accumulation."""

    out_dir: str = Field("runs/train", description="checkpoints, metrics.jsonl, samples and the final model")
    seed: int = Field(0, description="seeds the model init, data order, noise and dropout (exact on resume)")
    max_steps: int = Field(1000, ge=1, description="optimizer steps (each sees one global batch)")
    stop_at: int | None = Field(
        None,
        ge=1,
        description="end this session after this step, checkpointed; the lr schedule still spans max_steps, "
        "so a later --resume continues the same run (null: run to max_steps)",
    )
    batch_size: int = Field(64, ge=1, description="global batch: per process x processes x grad_accum")
    grad_accum: int = Field(1, ge=1, description="micro-batches accumulated per optimizer step")
    dataset: str | None = Field(None, description="a dataset name (digits, shapes) or a folder of images")
    dataset_options: dict[str, Any] = Field(
        default_factory=dict, description="for the dataset (split, recursive, caption, ...)"
    )

    # optimizer (AdamW) and learning rate
    lr: float = Field(1e-4, gt=0, description="peak learning rate of AdamW")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up from lr/warmup_steps to lr")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="after warm-up: constant, or cosine decay to lr * min_lr_ratio at max_steps"
    )
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine decays to lr * min_lr_ratio")
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW (beta1, beta2)")
    adam_eps: float = Field(1e-8, gt=0, description="AdamW epsilon")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay")
    grad_clip: float | None = Field(1.0, description="max global grad norm per optimizer; null: no clipping")

    # EMA of the weights (the EMA model is what samples and the exported model use)
    ema_decay: float | None = Field(0.9999, description="null: no EMA")
    ema_warmup: bool = Field(True, description="decay min(ema_decay, (1 + n) / (10 + n)) after n updates")

    mixed_precision: Literal["no", "bf16"] = Field("no", description="bf16: autocast the forward and loss")
    device: str | None = Field(None, description="default: cuda:<local rank> if available, else cpu")

    # bookkeeping
    checkpoint_every: int = Field(1000, ge=0, description="0: only at the end")
    keep_checkpoints: int = Field(3, ge=1, description="newest checkpoints kept; older ones are deleted")
    log_every: int = Field(10, ge=1, description="steps between metrics.jsonl lines")
    sample_every: int = Field(0, ge=0, description="0: no sample grids during training")
    sample_n: int = Field(16, ge=1, description="images per validation grid")
    sample_seed: int = Field(0, description="seed of the validation grids (the same images every time)")
    sample_sampler: str | None = Field(None, description="default: the model's default sampler")
    sample_steps: int | None = Field(None, ge=1, description="default: the sampler's steps for the model")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    progress: bool = Field(True, description="tqdm progress bar on rank 0")
    save_final: bool = Field(True, description="save_pretrained the (EMA) model to out_dir/model at the end")

    @property
    def session_end(self) -> int:
        """The step this session ends at: ``stop_at`` when set (a pause the schedule does not see), else the end."""
        return self.max_steps if self.stop_at is None else self.stop_at

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError("grad_clip must be positive, or null for no clipping")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError("ema_decay must lie in (0, 1), or be null for no EMA")
        if self.stop_at is not None and self.stop_at > self.max_steps:
            raise ValueError(f"stop_at {self.stop_at} is past max_steps {self.max_steps}")
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by grad_accum {self.grad_accum}")
        return self


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"Training config {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"Training config {str(path)!r} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Training config {str(path)!r} must be a mapping of fields, got {type(data).__name__}"
        )
    return data


def parse_value(text: str) -> Any:
    """A ``--set`` value: YAML scalars and lists (``1e-4``, ``true``, ``[1, 2]``), else the raw string."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Apply ``key=value`` (or a mapping); dotted keys reach into nested mappings (``model.channels=32``)."""
    out = _plain(data)
    items = (
        overrides.items() if isinstance(overrides, Mapping) else (_split_override(item) for item in overrides)
    )
    for key, value in items:
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"Override {key!r}: {part!r} is not a mapping in the config")
            node = child
        node[leaf] = value
    return out


def _plain(value: Any) -> Any:
    """A deep copy with configs turned into plain mappings, so overrides can reach into them."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _split_override(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, got {item!r}")
    return key.strip().replace("-", "_"), parse_value(value)


# The names diffusers' training scripts and accelerate use for our fields, so their users get a pointer.
ALIASES = {
    "learning_rate": "lr",
    "output_dir": "out_dir",
    "train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum",
    "max_train_steps": "max_steps",
    "lr_warmup_steps": "warmup_steps",
    "lr_scheduler": "lr_schedule",
    "max_grad_norm": "grad_clip",
    "checkpointing_steps": "checkpoint_every",
    "checkpoints_total_limit": "keep_checkpoints",
    "dataloader_num_workers": "num_workers",
    "use_ema": "ema_decay",
}


def check_fields(cls: type[Config], data: Mapping[str, Any], where: str) -> None:
    """Raise a ConfigError for unknown top-level fields, suggesting the closest real field."""
    known = set(cls.model_fields)
    unknown = [k for k in data if k not in known]
    if not unknown:
        return
    parts = []
    for key in unknown:
        close = [ALIASES[key]] if ALIASES.get(key) in known else []
        close = close or difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ConfigError(
        f"Unknown field{'s' if len(parts) > 1 else ''} {', '.join(parts)} in {cls.__name__}{where}. "
        f"Known fields: {', '.join(sorted(known))}."
    )


def load_config(
    cls: type[C],
    source: str | os.PathLike[str] | Mapping[str, Any] | C | None = None,
    *,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    where: str = "",
) -> C:
    """A validated ``cls`` from a YAML path, a mapping or an instance, with ``overrides`` applied on top.

    ``where`` names the source in error messages (a YAML path names itself).
    """
    if isinstance(source, cls):
        if not overrides:
            return source
        data = source.model_dump(mode="json")
    elif isinstance(source, (str, os.PathLike)):
        data = read_yaml(source)
        where = where or os.fspath(source)
    elif isinstance(source, Config):
        raise ConfigError(f"Expected a {cls.__name__}, got a {type(source).__name__}")
    else:
        data = dict(source or {})
    data = apply_overrides(data, overrides)
    check_fields(cls, data, f" ({where})" if where else "")
    return cls.parse(data, where=where)
