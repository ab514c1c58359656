"""The training loop: data order, steps, EMA, logging, sample grids, checkpoints and exact resume.

``fit(trainer)`` runs ``trainer.step`` on global batches ``state.step .. max_steps - 1``. Everything a step
depends on is either saved in the checkpoint (weights, EMA, optimizer moments, the RNG states of every process)
or a pure function of (seed, step) (the data order, ``Batch`` random draws, the learning rate), so a run stopped
after step ``k`` and resumed is bit-identical to one that never stopped. Validation sampling runs with the RNG
states saved and restored, so showing samples never changes training.

Outputs under ``out_dir``: ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one JSON object per logged
step: step, epoch, samples, lr, the step's metrics averaged over the last ``log_every`` steps and over processes,
steps_per_s, elapsed), ``samples/step-*.png``, ``checkpoints/step-*/`` + ``checkpoints/latest``, and ``model/``
(the exported EMA model, loadable with ``zoo.load``).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from zoo_core.errors import ConfigError
from zoo_core.training import checkpoint, distributed
from zoo_core.training.batches import SampleOrder, local_slice, make_loader, mix_seed, to_batch
from zoo_core.training.ema import EMA
from zoo_core.training.state import TrainerProtocol, TrainState

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.data import Dataset

METRICS_NAME = "metrics.jsonl"
# Config fields whose change makes a resumed run differ from the original one (the rest are bookkeeping).
_TRAJECTORY_FIELDS = ("seed", "batch_size", "grad_accum", "lr", "warmup_steps", "lr_schedule", "adam_betas")


def fit(
    trainer: TrainerProtocol,
    model: nn.Module | None = None,
    dataset: Dataset | None = None,
    *,
    resume: bool | str | Path = False,
) -> TrainState:
    """Train ``model`` (default: ``trainer.build_model()``) on ``dataset`` (default: ``trainer.build_dataset()``).

    ``resume=True`` continues from the newest checkpoint in ``out_dir`` (starting fresh if there is none);
    a path resumes from that checkpoint or run directory. Without ``resume`` an ``out_dir`` that already holds
    checkpoints is an error, so a finished run is never overwritten by accident.
    """
    config = trainer.config
    owns_group = not distributed.is_distributed()
    info = distributed.setup(config.device)
    try:
        return _fit(trainer, model, dataset, resume, info)
    finally:
        if owns_group:
            distributed.teardown()


def _fit(
    trainer: TrainerProtocol,
    model: nn.Module | None,
    dataset: Dataset | None,
    resume: bool | str | Path,
    info: Any,
) -> TrainState:
    config = trainer.config
    out_dir = Path(config.out_dir)
    ckpt_root = out_dir / "checkpoints"
    local = local_slice(config.batch_size, info.rank, info.world_size)
    if (local.stop - local.start) % config.grad_accum:
        raise ConfigError(
            f"batch_size {config.batch_size} over {info.world_size} processes gives {local.stop - local.start} "
            f"samples each, which do not split into grad_accum={config.grad_accum} equal micro-batches"
        )
    resume_from = _resume_source(resume, ckpt_root)

    _seed_all(config.seed)  # the same initial weights on every process
    if model is None:
        model = trainer.build_model()
    if dataset is None:
        dataset = trainer.build_dataset()
    model.to(info.device)
    parts = trainer.build(model, config)
    for module in parts.modules.values():
        module.to(info.device)
        distributed.broadcast_module(module)
        module.train()
    ema = (
        {n: EMA(parts.modules[n], config.ema_decay, config.ema_warmup) for n in parts.ema}
        if config.ema_decay is not None
        else {}
    )
    state = TrainState(
        config=config,
        trainer=trainer,
        modules=parts.modules,
        optimizers=parts.optimizers,
        ema=ema,
        dist=info,
        out_dir=out_dir,
        num_samples=len(dataset),  # type: ignore[arg-type]
    )
    document = None
    if resume_from is not None:
        document = checkpoint.load(resume_from, modules=parts.modules, ema=ema, optimizers=parts.optimizers)
        state.step = document["step"]
        trainer.load_state_dict(document.get("trainer_state", {}))
        _warn_changed(document.get("config", {}), config.model_dump(mode="json"), info.is_main)
        _say(info, f"resuming from {resume_from} at step {state.step}")

    loader = make_loader(
        dataset,
        batch_size=config.batch_size,
        seed=config.seed,
        start_step=state.step,
        max_steps=config.session_end,
        rank=info.rank,
        world_size=info.world_size,
        num_workers=config.num_workers,
    )
    batches = iter(loader)
    if document is not None:
        _restore_rng(document, info, config.seed)
    else:
        _seed_all(mix_seed(config.seed, 0x7261, info.rank))  # per-process streams (dropout etc.)

    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_config(out_dir, config)
        _truncate_metrics(out_dir / METRICS_NAME, state.step)
    _run(trainer, state, batches, local.start, ckpt_root)
    return state


def _run(
    trainer: TrainerProtocol, state: TrainState, batches: Iterator[Any], offset: int, ckpt_root: Path
) -> None:
    config, info = state.config, state.dist
    from tqdm.auto import tqdm

    bar = tqdm(
        total=config.max_steps,
        initial=state.step,
        disable=not (info.is_main and config.progress),
        desc=f"train {trainer.name or type(trainer).__name__}",
        dynamic_ncols=True,
        file=sys.stderr,
    )
    window = _Window()
    started = time.perf_counter()
    try:
        for data in batches:
            batch = to_batch(
                data,
                step=state.step,
                seed=config.seed,
                global_size=config.batch_size,
                offset=offset,
                device=info.device,
            )
            state.begin_step()
            metrics = trainer.step(batch, state)
            state.step += 1
            for name, tracker in state.ema.items():
                tracker.update(state.modules[name])
            window.add({k: float(v) for k, v in metrics.items()})
            bar.update(1)
            last = state.step == config.session_end
            if state.step % config.log_every == 0 or last:
                record = _log(state, window, started)
                bar.set_postfix(
                    {k: f"{v:.4g}" for k, v in record.items() if k.endswith("loss")}, refresh=False
                )
            if config.sample_every and (state.step % config.sample_every == 0 or last):
                _save_samples(trainer, state)
            if (config.checkpoint_every and state.step % config.checkpoint_every == 0) or last:
                save_checkpoint(state, ckpt_root)
    finally:
        bar.close()
    if config.save_final and info.is_main:
        path = trainer.export(state, state.out_dir / "model")
        if path is not None:
            _say(info, f"saved the trained model to {path}")
    distributed.barrier()


# -- logging ---------------------------------------------------------------------------------------------------
class _Window:
    """Metrics summed since the last log line. Each metric is averaged over the steps that reported it, so one
    logged on some steps only (a lazy regulariser every 16 steps) is not diluted by the others."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.steps = 0
        self.since = time.perf_counter()

    def add(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1
        self.steps += 1

    def flush(self) -> tuple[dict[str, float], int, float]:
        means = {k: v / self.counts[k] for k, v in self.sums.items()}
        steps, seconds = self.steps, time.perf_counter() - self.since
        self.sums, self.counts, self.steps, self.since = {}, {}, 0, time.perf_counter()
        return means, steps, seconds


def _log(state: TrainState, window: _Window, started: float) -> dict[str, float]:
    means, steps, seconds = window.flush()
    means = distributed.all_reduce_mean(means, device=state.device)
    state.last_metrics = means
    if not state.dist.is_main:
        return means
    record: dict[str, Any] = {
        "step": state.step,
        "epoch": round(state.samples_seen / max(1, state.num_samples), 6),
        "samples": state.samples_seen,
    }
    for name, opt in state.optimizers.items():  # the lr of the last update (set just before it)
        record["lr" if len(state.optimizers) == 1 else f"lr_{name}"] = float(opt.param_groups[0]["lr"])
    record.update(means)
    record["steps_per_s"] = steps / seconds if seconds > 0 else None
    record["elapsed_s"] = round(time.perf_counter() - started, 3)
    with open(state.out_dir / METRICS_NAME, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return means


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop lines logged after ``step`` by a run that crashed later (they are about to be logged again)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue  # a line cut off by a crash
    path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")


def _say(info: Any, message: str) -> None:
    if info.is_main:
        _say_main(message)


def _say_main(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(f"zoo train: {message}", file=sys.stderr)


def _write_config(out_dir: Path, config: Any) -> None:
    import yaml

    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    (out_dir / "config.yaml").write_text(text, encoding="utf-8")


# -- samples ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without disturbing any global RNG (torch, CUDA, numpy, python)."""
    saved = checkpoint.rng_state()
    try:
        yield
    finally:
        checkpoint.set_rng_state(saved)


def _save_samples(trainer: TrainerProtocol, state: TrainState) -> None:
    if not state.dist.is_main:
        return
    from zoo_core.images import save_grid

    model = state.ema_model()
    was_training = model.training
    model.eval()
    try:
        with preserved_rng(), torch.no_grad():
            images = trainer.sample(state)
    except Exception as exc:  # a broken validation sampler must not end a long run; say so every time
        warnings.warn(
            f"step {state.step}: sampling validation images failed: {type(exc).__name__}: {exc}", stacklevel=2
        )
        return
    finally:
        model.train(was_training)
    if images is not None:
        save_grid(images, state.out_dir / "samples" / f"step-{state.step:07d}.png")


# -- checkpoints -----------------------------------------------------------------------------------------------
def save_checkpoint(state: TrainState, root: Path) -> Path | None:
    """Write a checkpoint of ``state`` (rank 0 writes; every process contributes its RNG state)."""
    rngs = distributed.all_gather_object(checkpoint.rng_state())
    path = None
    if state.dist.is_main:
        order = SampleOrder(state.num_samples, state.config.seed)
        path = checkpoint.save(
            root,
            state.step,
            modules=state.modules,
            ema=state.ema,
            optimizers=state.optimizers,
            state={
                "trainer": state.trainer.name or type(state.trainer).__qualname__,
                "config": state.config.model_dump(mode="json"),
                "world_size": state.dist.world_size,
                "data": order.position(state.samples_seen),
                "lr_factor": state.lr_factor(),
                "trainer_state": state.trainer.state_dict(),
                "metrics": state.last_metrics,
                "rng": rngs,
            },
            keep=state.config.keep_checkpoints,
        )
    distributed.barrier()
    return path


def _resume_source(resume: bool | str | Path, ckpt_root: Path) -> Path | None:
    if resume is False or resume is None:
        existing = checkpoint.resolve_latest(ckpt_root) if ckpt_root.is_dir() else None
        if existing is not None:
            raise ConfigError(
                f"{ckpt_root.parent} already holds checkpoints (latest: {existing.name}): pass resume=True "
                "(zoo train --resume) to continue that run, or choose another out_dir (--out)"
            )
        return None
    if resume is True:
        found = checkpoint.resolve_latest(ckpt_root) if ckpt_root.is_dir() else None
        if found is None and distributed.is_main():
            _say_main(f"no checkpoint in {ckpt_root}: starting from step 0")
        return found
    return checkpoint.resolve(resume)


def _restore_rng(document: dict[str, Any], info: Any, seed: int) -> None:
    rngs = document.get("rng") or []
    if info.rank < len(rngs) and document.get("world_size") == info.world_size:
        checkpoint.set_rng_state(rngs[info.rank])
        return
    warnings.warn(
        f"the checkpoint was written by {document.get('world_size')} processes and this run has "
        f"{info.world_size}: RNG states are re-seeded, so the run will not match the original exactly",
        stacklevel=3,
    )
    _seed_all(mix_seed(seed, 0x7261, info.rank, document["step"]))


def _warn_changed(saved: dict[str, Any], current: dict[str, Any], main: bool) -> None:
    changed = [k for k in _TRAJECTORY_FIELDS if k in saved and saved[k] != current.get(k)]
    if changed and main:
        details = ", ".join(f"{k}: {saved[k]!r} -> {current.get(k)!r}" for k in changed)
        warnings.warn(
            f"resuming with a changed config ({details}): the run will differ from the original", stacklevel=3
        )


def _seed_all(seed: int) -> None:
    import random

    import numpy as np

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
