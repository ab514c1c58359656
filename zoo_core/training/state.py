"""TrainState: what a trainer's ``step`` works with, and ``optimize``, the one way a step updates weights.

This module is the bottom of the training layers: ``TrainParts`` (what a trainer trains), ``TrainerProtocol``
(what the loop calls on a trainer) and ``TrainState``. The loop (``zoo_core.training.loop``) runs any
``TrainerProtocol``; ``zoo_core.trainer.Trainer`` is the base class that implements it with defaults and whose
``fit`` calls the loop, so each of the three stands above what it imports.

``state.optimize(batch, loss_fn, "D")`` runs ``loss_fn`` on each micro-batch under autocast, back-propagates the
losses scaled by the micro-batch's share of the batch, averages gradients over processes, clips, sets the
learning rate from the schedule, steps the optimizer and clears gradients. A GAN step calls it twice (D, then G)
and a lazy regulariser a third time on some steps. While one optimizer is updated, the parameters of the others
are frozen (``requires_grad`` off), so a D update never builds G's backward graph and vice versa.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from zoo_core.training import distributed
from zoo_core.training.batches import Batch
from zoo_core.training.config import TrainConfig
from zoo_core.training.ema import EMA
from zoo_core.training.lr import lr_factor, set_lr

if TYPE_CHECKING:
    from torch.utils.data import Dataset

LossOutput = torch.Tensor | tuple[torch.Tensor, dict[str, Any]]
LossFn = Callable[[Batch, "TrainState"], LossOutput]


@dataclass
class TrainParts:
    """What a trainer trains: named modules (``"model"`` is the one being trained), optimizers, EMA'd modules."""

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    ema: list[str] = field(default_factory=lambda: ["model"])

    def __post_init__(self) -> None:
        if "model" not in self.modules:
            raise ValueError("TrainParts.modules must include the trained model under the name 'model'")
        unknown = [n for n in self.ema if n not in self.modules]
        if unknown:
            raise ValueError(
                f"TrainParts.ema names {unknown}, which are not in modules {sorted(self.modules)}"
            )
        if not self.optimizers:
            raise ValueError("TrainParts needs at least one optimizer")


class TrainerProtocol(Protocol):
    """What the training loop calls on a trainer (``zoo_core.trainer.Trainer`` implements it with defaults)."""

    name: str
    config: TrainConfig

    def build_model(self) -> nn.Module: ...

    def build_dataset(self) -> Dataset: ...

    def build(self, model: nn.Module, config: TrainConfig) -> TrainParts: ...

    def step(self, batch: Batch, state: TrainState) -> dict[str, float]: ...

    def sample(self, state: TrainState) -> torch.Tensor | None: ...

    def export(self, state: TrainState, directory: Path) -> Path | None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class TrainState:
    """The run's components and counters. ``step`` counts completed steps (global batches)."""

    config: TrainConfig
    trainer: TrainerProtocol
    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    ema: dict[str, EMA]
    dist: distributed.DistInfo
    out_dir: Path
    num_samples: int = 0
    step: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)
    _phase: int = 0

    # -- conveniences -------------------------------------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        return self.modules["model"]

    @property
    def device(self) -> torch.device:
        return self.dist.device

    @property
    def samples_seen(self) -> int:
        return self.step * self.config.batch_size

    def ema_model(self, name: str = "model") -> nn.Module:
        """The EMA copy of module ``name`` if it has one, else the module itself."""
        return self.ema[name].module if name in self.ema else self.modules[name]

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast to bfloat16 when ``mixed_precision: bf16``; a no-op otherwise."""
        if self.config.mixed_precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def lr_factor(self) -> float:
        c = self.config
        return lr_factor(
            self.step,
            max_steps=c.max_steps,
            warmup_steps=c.warmup_steps,
            schedule=c.lr_schedule,
            min_ratio=c.min_lr_ratio,
        )

    # -- the update ---------------------------------------------------------------------------------------------
    def optimize(
        self, batch: Batch, loss_fn: LossFn, optimizer: str | None = None, *, prefix: str = ""
    ) -> dict[str, float]:
        """One optimizer update from ``loss_fn`` over ``batch`` (split into ``grad_accum`` micro-batches).

        ``loss_fn(micro_batch, state)`` returns the mean loss over the micro-batch, or ``(loss, metrics)``.
        Returns the loss, the extra metrics (batch means) and the gradient norm before clipping, each key
        prefixed with ``prefix``.
        """
        name = self._optimizer_name(optimizer)
        opt = self.optimizers[name]
        params = [p for group in opt.param_groups for p in group["params"]]
        phase_batch = batch.for_phase(self._phase)
        self._phase += 1
        totals: dict[str, torch.Tensor] = {}
        with self._only_trainable(params):
            for micro in phase_batch.split(self.config.grad_accum):
                weight = len(micro) / len(batch)
                with self.autocast():
                    loss, extra = _unpack(loss_fn(micro, self))
                if not torch.isfinite(loss.detach()).all():
                    raise FloatingPointError(
                        f"{prefix}loss is {loss.item()} at step {self.step}: lower the learning rate, enable "
                        "grad_clip, or check the data for NaNs"
                    )
                (loss * weight).backward()
                for key, value in {"loss": loss, **extra}.items():
                    value = torch.as_tensor(value).detach().float().cpu() * weight
                    totals[key] = totals[key] + value if key in totals else value
        trainable = [p for p in params if p.grad is not None]
        distributed.all_reduce_grads(trainable)
        grad_norm = _clip(trainable, self.config.grad_clip)
        set_lr(opt, self.lr_factor())
        opt.step()
        for module in self.modules.values():
            module.zero_grad(set_to_none=True)
        opt.zero_grad(set_to_none=True)
        metrics = {f"{prefix}{k}": float(v) for k, v in totals.items()}
        metrics[f"{prefix}grad_norm"] = grad_norm
        return metrics

    def _optimizer_name(self, optimizer: str | None) -> str:
        if optimizer is not None:
            if optimizer not in self.optimizers:
                raise KeyError(f"no optimizer {optimizer!r}; the trainer built {sorted(self.optimizers)}")
            return optimizer
        if len(self.optimizers) != 1:
            raise ValueError(
                f"the trainer built several optimizers ({', '.join(sorted(self.optimizers))}): name the one "
                "to update, state.optimize(batch, loss_fn, 'name')"
            )
        return next(iter(self.optimizers))

    @contextlib.contextmanager
    def _only_trainable(self, params: list[torch.Tensor]) -> Iterator[None]:
        """Freeze the parameters of every other optimizer while ``params`` are updated."""
        mine = {id(p) for p in params}
        frozen = [
            p
            for opt in self.optimizers.values()
            for group in opt.param_groups
            for p in group["params"]
            if id(p) not in mine and p.requires_grad
        ]
        for p in frozen:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in frozen:
                p.requires_grad_(True)

    def begin_step(self) -> None:
        self._phase = 0


def _unpack(out: LossOutput) -> tuple[torch.Tensor, dict[str, Any]]:
    if isinstance(out, tuple):
        loss, extra = out
        return loss, dict(extra)
    return out, {}


def _clip(params: list[torch.Tensor], max_norm: float | None) -> float:
    """The global gradient norm before clipping (clipping to ``max_norm`` if given)."""
    if not params:
        return 0.0
    grads = [p.grad for p in params]
    norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    if max_norm is not None:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return float(norm)
