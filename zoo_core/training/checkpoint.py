"""Checkpoints: one directory per saved step, written whole or not at all, enough to resume bit for bit.

Layout of ``<out_dir>/checkpoints/step-0001000/``:

- ``<module>.safetensors`` for every trained module (``model``, a GAN's ``D``, ...), ``<module>.ema.safetensors``
  for its EMA copy, and ``optimizers.safetensors`` with the optimizer tensors flattened to
  ``<optimizer>/<param index>/<name>`` (AdamW's ``exp_avg``, ``exp_avg_sq``, ``step``);
- ``state.json``: the step, the config, the LR schedule, optimizer param groups, EMA counters, the trainer's own
  state, the data position and the RNG states (torch CPU/CUDA, numpy, python ``random``) of every process.

A checkpoint is written into a hidden ``.tmp-*`` directory and renamed into place, then ``latest`` (a small text
file naming it) is replaced atomically; a crash at any point leaves the previous checkpoint and ``latest``
intact. Only ``keep`` checkpoints are kept.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo_core import weights
from zoo_core.errors import WeightsError

FORMAT = "zoo-train-checkpoint"
VERSION = 1
STATE_NAME = "state.json"
OPTIMIZERS_NAME = "optimizers.safetensors"
LATEST = "latest"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def step_dir_name(step: int) -> str:
    return f"step-{step:07d}"


# -- RNG states ------------------------------------------------------------------------------------------------
def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone()


def rng_state() -> dict[str, Any]:
    """This process's RNG states as JSON-able data."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": _b64(torch.get_rng_state()),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(_unb64(state["torch"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_unb64(s) for s in state["cuda"]])


# -- optimizers ------------------------------------------------------------------------------------------------
def flatten_optimizer(
    name: str, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state dict as (tensors for safetensors, the rest for JSON)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in sd["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}/{index}/{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer(
    name: str, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"{name}/"
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, _, field = key[len(prefix) :].partition("/")
            state.setdefault(int(index), {})[field] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    groups = [
        {k: tuple(v) if k == "betas" and isinstance(v, list) else v for k, v in g.items()}
        for g in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


# -- writing ---------------------------------------------------------------------------------------------------
def _unshared(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors for safetensors, cloning any that share storage with an earlier one (tied weights)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, t in state.items():
        t = t.detach().cpu().contiguous()
        if t.numel():
            ptr = t.untyped_storage().data_ptr()
            if ptr in seen:
                t = t.clone()
            else:
                seen.add(ptr)
        out[key] = t
    return out


def _write_tensors(state: Mapping[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file(_unshared(state), os.fspath(path), metadata={"format": "pt"})


def save(
    root: str | os.PathLike[str],
    step: int,
    *,
    modules: Mapping[str, torch.nn.Module],
    ema: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
    state: Mapping[str, Any],
    keep: int | None = None,
) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically, point ``latest`` at it, prune to ``keep``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        for name, module in modules.items():
            _write_tensors(module.state_dict(), tmp / f"{name}.safetensors")
        for name, tracker in ema.items():
            _write_tensors(tracker.state_dict(), tmp / f"{name}.ema.safetensors")
        opt_tensors: dict[str, torch.Tensor] = {}
        opt_meta: dict[str, Any] = {}
        for name, optimizer in optimizers.items():
            tensors, meta = flatten_optimizer(name, optimizer)
            opt_tensors.update(tensors)
            opt_meta[name] = meta
        _write_tensors(opt_tensors, tmp / OPTIMIZERS_NAME)
        document = {
            "format": FORMAT,
            "version": VERSION,
            "step": step,
            "modules": sorted(modules),
            "ema": {name: {"num_updates": t.num_updates, "decay": t.decay} for name, t in ema.items()},
            "optimizers": opt_meta,
            **state,
        }
        with open(tmp / STATE_NAME, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(tmp)
        if final.exists():  # re-saving a step (after a resume): move the old one aside first
            old = root / f".old-{final.name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_latest(root, final.name)
    _remove_stale(root)
    if keep is not None:
        prune(root, keep)
    return final


def _write_latest(root: Path, name: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".latest.", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(name + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, root / LATEST)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root`` as (step, path), oldest first."""
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / STATE_NAME).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def prune(root: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (never the one ``latest`` names)."""
    latest = resolve_latest(root)
    for _, path in list_checkpoints(root)[:-keep]:
        if path != latest:
            shutil.rmtree(path, ignore_errors=True)


def _remove_stale(root: Path) -> None:
    """Remove what a killed writer left: hidden temp directories (only rank 0 writes, one save at a time)."""
    for child in root.iterdir():
        if child.name.startswith((".tmp-", ".old-")) and child.is_dir():  # left by a crashed write
            shutil.rmtree(child, ignore_errors=True)


# -- reading ---------------------------------------------------------------------------------------------------
def resolve_latest(root: Path) -> Path | None:
    """The checkpoint ``latest`` names, or the newest complete one if ``latest`` is missing or stale."""
    pointer = root / LATEST
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        candidate = root / name
        if _STEP_DIR.match(name) and (candidate / STATE_NAME).is_file():
            return candidate
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def resolve(path: str | os.PathLike[str]) -> Path:
    """A checkpoint directory from itself, a ``checkpoints`` directory, or a run's output directory."""
    path = Path(path)
    if (path / STATE_NAME).is_file():
        return path
    for root in (path / "checkpoints", path):
        found = resolve_latest(root) if root.is_dir() else None
        if found is not None:
            return found
    raise WeightsError(
        f"No checkpoint found at {os.fspath(path)!r} (expected a run directory with checkpoints/)"
    )


def read_state(path: Path) -> dict[str, Any]:
    document = json.loads((path / STATE_NAME).read_text(encoding="utf-8"))
    if document.get("format") != FORMAT:
        raise WeightsError(f"{path / STATE_NAME} is not a zoo training checkpoint")
    if document.get("version", 0) > VERSION:
        raise WeightsError(f"{path} was written by a newer zoo (checkpoint version {document['version']})")
    return document


def load(
    path: Path,
    *,
    modules: Mapping[str, torch.nn.Module],
    ema: Mapping[str, Any],
    optimizers: Mapping[str, torch.optim.Optimizer],
) -> dict[str, Any]:
    """Load weights, EMA and optimizer state from checkpoint ``path`` in place; returns its ``state.json``.

    The optimizers keep the hyperparameters they were built with (the config's lr, betas, weight decay): only the
    per-parameter state (moments, step counts) comes from the checkpoint, so a resume with a changed config runs
    with the new values. Unchanged, they equal the saved ones and the resume stays exact."""
    document = read_state(path)
    missing = sorted(set(modules) ^ set(document["modules"]))
    if missing:
        raise WeightsError(
            f"Checkpoint {path} holds modules {document['modules']}, the trainer has {sorted(modules)}"
        )
    for name, module in modules.items():
        state = weights.load_safetensors(path / f"{name}.safetensors")
        weights.load_state_dict_checked(module, state, str(path / f"{name}.safetensors"))
    for name, tracker in ema.items():
        if name not in document["ema"]:
            raise WeightsError(f"Checkpoint {path} has no EMA of {name!r}")
        state = weights.load_safetensors(path / f"{name}.ema.safetensors")
        tracker.load_state_dict(state, document["ema"][name]["num_updates"])
    opt_tensors = weights.load_safetensors(path / OPTIMIZERS_NAME)
    for name, optimizer in optimizers.items():
        if name not in document["optimizers"]:
            raise WeightsError(f"Checkpoint {path} has no optimizer {name!r}")
        built = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
        optimizer.load_state_dict(unflatten_optimizer(name, opt_tensors, document["optimizers"][name]))
        for group, hyperparameters in zip(optimizer.param_groups, built, strict=True):
            # the schedule's base rate: the built lr, which set_lr takes up again
            group.pop("initial_lr", None)
            group.update(hyperparameters)
    return document
