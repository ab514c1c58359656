"""The order in which a run sees its data, and the ``Batch`` a training step works on.

The order is a pure function of (seed, step): the samples form an endless stream of epochs, each a permutation
of the dataset seeded by (seed, epoch), and global batch ``k`` is stream positions ``[k B, (k + 1) B)``. So a
resumed run continues exactly where it stopped, and process ``r`` of ``W`` takes the ``r``-th contiguous share
of every global batch (``B / W`` samples), which it splits further into ``grad_accum`` micro-batches.

Random draws a loss needs (noise, timesteps, latents) come from ``Batch.randn`` / ``rand`` / ``randint``: each
draw is made for the whole global batch from a generator keyed by (seed, step, phase, draw number) and the
batch keeps its own rows. A sample's noise therefore does not depend on how the global batch is split over
processes and micro-batches, which makes a two-process run match a one-process run, and grad accumulation match
a full batch. (Data augmentation belongs in the step for the same reason, not in dataset workers.)
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


def mix_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (numpy's SeedSequence), so nearby keys give unrelated streams."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class SampleOrder:
    """Dataset indices of the endless, seeded stream of epochs."""

    def __init__(self, num_samples: int, seed: int) -> None:
        if num_samples < 1:
            raise ValueError("the dataset is empty")
        self.num_samples = num_samples
        self.seed = seed

    @functools.lru_cache(maxsize=4)  # noqa: B019 - a handful of epochs per order object
    def permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(mix_seed(self.seed, 0x5A3D, epoch))
        return torch.randperm(self.num_samples, generator=generator)

    def indices(self, start: int, stop: int) -> list[int]:
        """Dataset indices at stream positions ``[start, stop)``."""
        out: list[int] = []
        position = start
        while position < stop:
            epoch, offset = divmod(position, self.num_samples)
            take = min(stop - position, self.num_samples - offset)
            out.extend(self.permutation(epoch)[offset : offset + take].tolist())
            position += take
        return out

    def position(self, samples_seen: int) -> dict[str, int]:
        epoch, offset = divmod(samples_seen, self.num_samples)
        return {"epoch": epoch, "offset": offset, "samples_seen": samples_seen}


def local_slice(global_size: int, rank: int, world_size: int) -> slice:
    """The contiguous share of a global batch that process ``rank`` trains on."""
    if global_size % world_size:
        raise ValueError(
            f"batch_size {global_size} is not divisible by the {world_size} processes: choose a multiple"
        )
    share = global_size // world_size
    return slice(rank * share, (rank + 1) * share)


class StepBatches(torch.utils.data.Sampler[list[int]]):
    """Batch sampler yielding this process's dataset indices for steps ``start_step .. max_steps - 1``."""

    def __init__(
        self, order: SampleOrder, batch_size: int, start_step: int, max_steps: int, rank: int, world: int
    ) -> None:
        self.order, self.batch_size = order, batch_size
        self.start_step, self.max_steps = start_step, max_steps
        self.share = local_slice(batch_size, rank, world)

    def __len__(self) -> int:
        return max(0, self.max_steps - self.start_step)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.max_steps):
            start = step * self.batch_size
            yield self.order.indices(start + self.share.start, start + self.share.stop)


class _Indexed(Dataset):
    """Items as dicts with their dataset index, whatever shape the dataset returns them in."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**as_item(self.dataset[index]), "index": index}


def as_item(item: Any) -> dict[str, Any]:
    """A dataset item as a dict: a tensor is ``image``; a pair is (``image``, ``label``) or, when the second
    element is text, (``image``, ``caption``); a triple adds ``attributes``; dicts pass through."""
    if isinstance(item, Mapping):
        return dict(item)
    if isinstance(item, torch.Tensor):
        return {"image": item}
    if isinstance(item, Sequence) and not isinstance(item, str) and len(item) in (2, 3):
        out = {"image": item[0], "caption" if isinstance(item[1], str) else "label": item[1]}
        if len(item) == 3:
            out["attributes"] = item[2]
        return out
    raise TypeError(
        "dataset items must be an image tensor, an (image, label | caption) pair or a dict with an 'image' key; "
        f"got {type(item).__name__}"
    )


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors and numbers; keep anything else (captions, paths) as lists."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], (bool, int, float, np.integer, np.floating)):
            out[key] = torch.as_tensor(np.asarray(values))
        elif isinstance(values[0], np.ndarray):
            out[key] = torch.as_tensor(np.stack(values))
        else:
            out[key] = values
    return out


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    seed: int,
    start_step: int,
    max_steps: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over this process's share of global batches ``start_step ..``; it never touches global RNG."""
    order = SampleOrder(len(dataset), seed)  # type: ignore[arg-type]
    sampler = StepBatches(order, batch_size, start_step, max_steps, rank, world_size)
    return DataLoader(
        _Indexed(dataset),
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(mix_seed(seed, 0xD47A, start_step)),
        persistent_workers=False,
    )


@dataclass
class Batch:
    """The samples one training step (or one micro-batch of it) sees, on the training device.

    ``data`` holds the collated fields: ``image`` [b, C, H, W] in [-1, 1], ``label`` [b] if the dataset has
    labels, and any other fields it returns. ``positions`` are the samples' places in the global batch.
    """

    data: dict[str, Any]
    positions: torch.Tensor
    global_size: int
    stream: tuple[int, ...]
    _draws: int = field(default=0, repr=False)

    @property
    def images(self) -> torch.Tensor:
        return self.data["image"]

    @property
    def labels(self) -> torch.Tensor | None:
        return self.data.get("label")

    @property
    def index(self) -> torch.Tensor:
        return self.data["index"]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    # -- splitting ----------------------------------------------------------------------------------------------
    def split(self, chunks: int) -> list[Batch]:
        """``chunks`` equal micro-batches (the batch size must divide evenly)."""
        n = len(self)
        if n % chunks:
            raise ValueError(f"a batch of {n} does not split into {chunks} equal micro-batches")
        size = n // chunks
        return [self._rows(slice(i * size, (i + 1) * size)) for i in range(chunks)]

    def _rows(self, rows: slice) -> Batch:
        data = {k: v[rows] for k, v in self.data.items()}
        return replace(self, data=data, positions=self.positions[rows], _draws=0)

    def for_phase(self, phase: int) -> Batch:
        """The same samples with a fresh random stream for optimizer phase ``phase`` of the step."""
        return replace(self, stream=(*self.stream[:2], phase), _draws=0)

    # -- random draws that do not depend on the split ----------------------------------------------------------
    def _generator(self) -> torch.Generator:
        seed = mix_seed(*self.stream, self._draws)
        self._draws += 1
        return torch.Generator().manual_seed(seed)

    def _mine(self, full: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        rows = full[self.positions]
        return rows.to(device=self.device, dtype=dtype or rows.dtype)

    def randn(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Standard normal [b, *shape] (float32 unless ``dtype``)."""
        full = torch.randn((self.global_size, *shape), generator=self._generator())
        return self._mine(full, dtype)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal shaped like ``x`` [b, ...], in ``x``'s dtype."""
        return self.randn(*x.shape[1:], dtype=x.dtype)

    def rand(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Uniform [0, 1) of shape [b, *shape]."""
        full = torch.rand((self.global_size, *shape), generator=self._generator())
        return self._mine(full, dtype)

    def randint(self, low: int, high: int, *shape: int) -> torch.Tensor:
        """Integers in [low, high) of shape [b, *shape] (int64)."""
        full = torch.randint(low, high, (self.global_size, *shape), generator=self._generator())
        return self._mine(full)


def to_batch(
    data: dict[str, Any],
    *,
    step: int,
    seed: int,
    global_size: int,
    offset: int,
    device: torch.device,
) -> Batch:
    """Wrap a collated loader output (this process's share, starting at ``offset`` in the global batch)."""
    moved = {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) and k != "index" else v
        for k, v in data.items()
    }
    n = len(data["index"])
    positions = torch.arange(offset, offset + n)
    return Batch(moved, positions, global_size, (seed, step, 0))
