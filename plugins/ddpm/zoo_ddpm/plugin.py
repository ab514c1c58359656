"""Entry point of the zoo_ddpm plugin: registers its models, samplers and cards with zoo (lightweight: no torch import)."""

from __future__ import annotations

from zoo import hookimpl  # noqa: F401
