"""The Conditioner interface: turns what a user asks for (labels, prompts) into what a model is conditioned on."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

#: a tensor, a dict of tensors (batched along dim 0), or None
Conditioning = Any


class Conditioner(ABC):
    """``encode(batch)`` gives the conditioning of a batch; ``null(n)`` the unconditional one, for guidance."""

    name: ClassVar[str]

    @abstractmethod
    def encode(self, batch: Any) -> Conditioning: ...

    @abstractmethod
    def null(self, n: int) -> Conditioning: ...


class NoConditioner(Conditioner):
    """For unconditional models: every batch encodes to None."""

    name = "none"

    def encode(self, batch: Any) -> None:
        return None

    def null(self, n: int) -> None:
        return None


class ClassLabelConditioner(Conditioner):
    """Integer class labels; the null label is ``num_classes`` (an extra embedding row for guidance)."""

    name = "class-label"

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes

    def encode(self, batch: Any) -> torch.Tensor:
        labels = torch.as_tensor(batch, dtype=torch.long).reshape(-1)
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.numel():
            raise ValueError(
                f"class label {int(bad[0])} is out of range: this model has {self.num_classes} classes "
                f"(labels 0..{self.num_classes - 1})"
            )
        return labels

    def null(self, n: int) -> torch.Tensor:
        return torch.full((n,), self.num_classes, dtype=torch.long)


def concat_conditioning(a: Conditioning, b: Conditioning) -> Conditioning:
    """Stack two conditionings along the batch (for one forward pass over conditional and unconditional)."""
    if a is None and b is None:
        return None
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b], dim=0)
    if isinstance(a, dict):
        return {k: concat_conditioning(a[k], b[k]) for k in a}
    raise TypeError(f"cannot batch conditioning of type {type(a).__name__}")


def pop_labels(kwargs: dict[str, Any]) -> Any:
    """Take the class labels out of ``sample()`` keyword arguments: ``labels`` (alias ``class_labels``, diffusers'
    name)."""
    labels, alias = kwargs.pop("labels", None), kwargs.pop("class_labels", None)
    if labels is not None and alias is not None:
        raise TypeError("pass either labels or class_labels, not both")
    return alias if labels is None else labels


def labels_for_batch(labels: Any, n: int, num_classes: int) -> torch.Tensor:
    """One int for all ``n`` images, or ``n`` ints, each in 0..num_classes-1 -> a long tensor [n]."""
    encoded = ClassLabelConditioner(num_classes).encode(labels)
    if encoded.numel() == 1:
        encoded = encoded.expand(n)
    if encoded.numel() != n:
        raise ValueError(f"labels must be one int or {n} ints (one per image), got {encoded.numel()}")
    return encoded
