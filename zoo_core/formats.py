"""Recognise which architecture a weights directory holds, from its config files.

Our format stores ``_zoo_architecture`` in ``config.json``. Diffusers folders store ``_class_name`` in
``config.json`` (one model) or ``model_index.json`` (a pipeline); a plugin that reads such a layout registers its
model class under ``"diffusers:<ClassName>"`` too (e.g. ``diffusers:UNet2DModel``).
"""

from __future__ import annotations

import json
from pathlib import Path

from zoo_core.errors import WeightsError


def detect_architecture(path: Path) -> str:
    """The registered architecture name for the weights at ``path``."""
    directory = path if path.is_dir() else path.parent
    for name in ("model_index.json", "config.json"):
        config = directory / name
        if config.exists():
            try:
                data = json.loads(config.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise WeightsError(f"{config} is not valid JSON: {exc}") from None
            if "_zoo_architecture" in data:
                return data["_zoo_architecture"]
            if "_class_name" in data:
                return f"diffusers:{data['_class_name']}"
    raise WeightsError(
        f"Cannot tell which model {path} holds: no config.json with _zoo_architecture (zoo format) or _class_name "
        "(diffusers format). Load it through a card (`zoo.load(name, weights=path)`) or convert it (`zoo convert`)."
    )
