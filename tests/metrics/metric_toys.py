"""Toy models with known outputs for the evaluation tests, and an in-process plugin that registers them."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from zoo_core.config import Config
from zoo_core.data.digits import DigitsDataset
from zoo_core.data.shapes import ShapeSpec, parse_caption, render
from zoo_core.hookspecs import hookimpl
from zoo_core.model import Model


class DigitPickerConfig(Config):
    num_classes: int = 0


class DigitPicker(Model):
    """A 'generator' of real test digits: z picks one (of the requested class when conditional)."""

    architecture: ClassVar[str] = "test.digit-picker"
    config_class = DigitPickerConfig
    kind = "gan"
    default_sampler = "gan"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        test = DigitsDataset(16, "test")
        self.register_buffer("bank", test.images.clone(), persistent=False)
        self.register_buffer("bank_labels", test.labels.clone(), persistent=False)
        self.calls = 0

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def latent_shape(self) -> tuple[int]:
        return (4,)

    def prepare_conditioning(self, n: int, labels: Any = None) -> tuple[Any, Any]:
        return (None if labels is None else torch.as_tensor(labels)), self

    def generate(self, z: torch.Tensor, cond: Any = None, **options: Any) -> torch.Tensor:
        self.calls += 1
        u = torch.special.ndtr(z[:, 0])
        if cond is None:
            return self.bank[(u * len(self.bank)).long().clamp(max=len(self.bank) - 1)]
        picks = []
        for ui, label in zip(u, cond.tolist(), strict=True):
            members = torch.nonzero(self.bank_labels == label).flatten()
            picks.append(members[min(int(ui * len(members)), len(members) - 1)])
        return self.bank[torch.stack(picks)]


class ShapesOracleConfig(Config):
    size: int = 32
    ignore: str | None = None  # "shape", "color" or "background": draw that attribute wrong on purpose


class ShapesOracle(Model):
    """A text-to-image 'model' that draws exactly what its prompt says (z places the shape)."""

    architecture: ClassVar[str] = "test.shapes-oracle"
    config_class = ShapesOracleConfig
    kind = "gan"
    default_sampler = "gan"
    WRONG: ClassVar[dict[str, str]] = {"shape": "star", "color": "white", "background": "black"}

    @property
    def latent_shape(self) -> tuple[int]:
        return (2,)

    def prepare_conditioning(self, n: int, prompt: Any = None) -> tuple[Any, Any]:
        prompts = [prompt] * n if isinstance(prompt, str) else list(prompt)
        return [parse_caption(p) for p in prompts], self

    def generate(self, z: torch.Tensor, cond: Any = None, **options: Any) -> torch.Tensor:
        size, images = self.config.size, []
        for zi, attrs in zip(z.tolist(), cond, strict=True):
            attrs = dict(attrs)
            if self.config.ignore:
                attrs[self.config.ignore] = self.WRONG[self.config.ignore]
            if attrs["color"] == attrs["background"]:
                attrs["background"] = "blue" if attrs["color"] != "blue" else "red"
            cx, cy = size / 2 + 1.5 * max(-1.0, min(1.0, zi[0])), size / 2 + 1.5 * max(-1.0, min(1.0, zi[1]))
            spec = ShapeSpec(attrs["shape"], attrs["color"], attrs["background"], cx, cy, 0.25 * size)
            images.append(torch.from_numpy(render(spec, size)))
        return torch.stack(images)


class ToyPlugin:
    """Registers the toys and cards for them, as a third-party plugin would."""

    @hookimpl
    def zoo_register_models(self, register: Any) -> None:
        register(DigitPicker.architecture, DigitPicker)
        register(ShapesOracle.architecture, ShapesOracle)

    @hookimpl
    def zoo_register_cards(self, register: Any) -> None:
        common = {"family": "test", "plugin": "metric-toys", "default_sampler": "gan"}
        register({"name": "toy-digits", "architecture": DigitPicker.architecture, **common})
        register(
            {
                "name": "toy-digits-cond",
                "architecture": DigitPicker.architecture,
                "config": {"num_classes": 10},
                **common,
            }
        )
        register({"name": "toy-shapes", "architecture": ShapesOracle.architecture, **common})
        register(
            {
                "name": "toy-shapes-colorblind",
                "architecture": ShapesOracle.architecture,
                "config": {"ignore": "color"},
                **common,
            }
        )
