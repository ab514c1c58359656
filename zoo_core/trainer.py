"""The Trainer interface: a family supplies the step, the core owns the loop (``zoo_core.training.loop``).

A family's trainer is a small class registered under ``zoo_register_trainers`` (``register("ddpm",
"zoo_ddpm.trainer:DDPMTrainer")``). It says

- ``config_class``: its pydantic config, a ``TrainConfig`` subclass adding its own fields (model size, loss);
- ``build_model()``: the model to train from the config (or ``fit`` is handed one);
- ``build(model, config)``: the ``TrainParts`` — the modules to checkpoint (``"model"`` plus e.g. a GAN's
  ``"D"``), their optimizers (one or several), and which modules keep an EMA (a GAN's G only);
- ``step(batch, state)``: one training step returning scalar metrics. It updates weights only through
  ``state.optimize(batch, loss_fn, "name")``, which handles micro-batches, autocast, the gradient all-reduce,
  clipping and the LR schedule; a GAN step calls it for D and then for G, and for R1 only on some steps.
  Single-optimizer trainers just implement ``loss(batch, state)``.
- ``sample(state)`` / ``export(state, directory)``: validation images and the final saved model.

Everything random in a step should come from ``batch.randn`` / ``rand`` / ``randint`` (see
``zoo_core.training.batches``): that is what makes runs independent of the number of processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from zoo_core.training.config import TrainConfig, load_config
from zoo_core.training.state import TrainParts

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from zoo_core.training.batches import Batch
    from zoo_core.training.state import LossOutput, TrainState

__all__ = ["TrainParts", "Trainer"]


class Trainer:
    """Base class of family trainers. Override ``config_class``, ``build_model`` and ``loss`` (or ``step``).

    It implements ``zoo_core.training.state.TrainerProtocol``, the calls the loop makes.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[TrainConfig]] = TrainConfig

    def __init__(self, config: TrainConfig | Mapping[str, Any] | str | None = None) -> None:
        self.config = load_config(self.config_class, config)

    # -- what to train ------------------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        """The model to train, built from ``self.config`` (called under the run's seed)."""
        raise NotImplementedError(f"{type(self).__name__} does not build a model: pass one to fit(model=...)")

    def build_dataset(self) -> Dataset:
        """The data ``config.dataset`` names (see ``zoo_core.data``), with ``config.dataset_options``."""
        if not self.config.dataset:
            raise ValueError(f"{type(self).__name__}: set `dataset` in the config, or pass fit(dataset=...)")
        from zoo_core.training.datasets import resolve_dataset

        return resolve_dataset(self.config.dataset, **self.config.dataset_options, **self.dataset_options())

    def dataset_options(self) -> dict[str, Any]:
        """``size`` / ``channels`` the model expects, for ``resolve_dataset``."""
        return {}

    def build(self, model: nn.Module, config: TrainConfig) -> TrainParts:
        """Default: one AdamW over the model's trainable parameters, EMA of the model."""
        return TrainParts(modules={"model": model}, optimizers={"model": self.adamw(model.parameters())})

    def adamw(
        self,
        params: Iterable[torch.nn.Parameter],
        *,
        lr: float | None = None,
        betas: tuple[float, float] | None = None,
    ) -> torch.optim.AdamW:
        """AdamW over the parameters that require grad, with the config's settings unless overridden."""
        trainable = [p for p in params if p.requires_grad]
        if not trainable:
            raise ValueError(f"{type(self).__name__}: no trainable parameters to optimize")
        c = self.config
        return torch.optim.AdamW(
            trainable,
            lr=c.lr if lr is None else lr,
            betas=tuple(c.adam_betas if betas is None else betas),
            eps=c.adam_eps,
            weight_decay=c.weight_decay,
        )

    # -- the step -----------------------------------------------------------------------------------------------
    def step(self, batch: Batch, state: TrainState) -> dict[str, float]:
        """One training step; the default updates the single optimizer from ``loss``."""
        return state.optimize(batch, self.loss)

    def loss(self, batch: Batch, state: TrainState) -> LossOutput:
        """The mean loss over a micro-batch, or ``(loss, {metric: value})``."""
        raise NotImplementedError(f"{type(self).__name__} implements neither loss() nor step()")

    # -- extra state a trainer keeps between steps (e.g. ADA's augment probability) ---------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state saved in checkpoints; tensors belong in a module's buffers instead."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state but the checkpoint has {sorted(state)}")

    # -- validation and export ----------------------------------------------------------------------------------
    def sample(self, state: TrainState) -> torch.Tensor | None:
        """Validation images [N, C, H, W] in [-1, 1] from the EMA model (None: nothing to show)."""
        model = state.ema_model()
        sample = getattr(model, "sample", None)
        if sample is None:
            return None
        c = state.config
        return sample(c.sample_n, seed=c.sample_seed, sampler=c.sample_sampler, steps=c.sample_steps)

    def export(self, state: TrainState, directory: Path) -> Path | None:
        """Save the trained (EMA) model for ``zoo.load(directory)``; None if the model cannot be saved."""
        model = state.ema_model()
        if not hasattr(model, "save_pretrained"):
            return None
        return model.save_pretrained(directory)

    # -- running ------------------------------------------------------------------------------------------------
    def fit(
        self,
        model: nn.Module | None = None,
        dataset: Dataset | None = None,
        *,
        resume: bool | str | Path = False,
    ) -> TrainState:
        """Train with the core loop (see ``zoo_core.training.loop.fit``)."""
        from zoo_core.training.loop import fit

        return fit(self, model=model, dataset=dataset, resume=resume)
