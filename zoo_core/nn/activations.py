"""Activation functions by the names diffusers configs use (``act_fn: silu``)."""

from __future__ import annotations

from torch import nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "mish": nn.Mish,
    "gelu": nn.GELU,
    "relu": nn.ReLU,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (silu/swish, mish, gelu, relu)."""
    try:
        return _ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ValueError(f"Unknown activation {name!r}; expected one of {', '.join(_ACTIVATIONS)}") from None
