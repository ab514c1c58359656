"""Data-parallel training under ``torchrun``: the process group, rank helpers and the collectives the loop needs.

``torchrun --nproc_per_node=N`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; ``setup`` reads
them and joins the group (gloo on the CPU, nccl on CUDA). Without them the run is a single process and every
helper here is a no-op.

Gradients are averaged with one all-reduce per optimizer update (``all_reduce_grads``) rather than by wrapping
modules in ``DistributedDataParallel``: GAN trainers need double backward (R1) and run several modules in one
forward, which DDP's hooks do not support, and an explicit reduce keeps grad accumulation obvious (no
``no_sync``). Every process starts from the same seed and ``broadcast_module`` makes the weights identical anyway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def pick_device(requested: str | None, local_rank: int) -> torch.device:
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(device: str | None = None) -> DistInfo:
    """Join the torchrun process group if the environment names one; returns this process's rank and device."""
    world_size = env_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world_size <= 1:
        return DistInfo(0, 1, 0, dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, init_method="env://")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@torch.no_grad()
def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every process."""
    if not is_distributed():
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=src)


@torch.no_grad()
def all_reduce_grads(params: list[torch.Tensor]) -> None:
    """Average the gradients of ``params`` over processes (one flat all-reduce per dtype)."""
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for g in grads:
        by_dtype.setdefault(g.dtype, []).append(g)
    n = dist.get_world_size()
    for group in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in group])
        dist.all_reduce(flat)
        flat /= n
        offset = 0
        for g in group:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def all_reduce_mean(values: dict[str, float], device: torch.device | None = None) -> dict[str, float]:
    """The mean over processes of each scalar (every process must pass the same keys)."""
    if not is_distributed() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    reduced = dict(zip(keys, t.tolist(), strict=True))
    return {k: reduced[k] for k in values}  # the caller's order


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (a one-element list when not distributed)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
