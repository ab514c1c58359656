"""The JSON files that sit next to weights (config.json, model_index.json, card.json, scheduler configs).

One reader for the core and every plugin, so a broken file gives the same one-line error wherever it is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo_core.errors import WeightsError


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``. A file that cannot be read, is not JSON, or holds something other than an
    object (every config is one) is a ``WeightsError`` naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"Could not read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path} must hold a JSON object")
    return data


def read_optional_json_object(path: Path) -> dict[str, Any]:
    """``read_json_object``, with ``{}`` for a file that does not exist (an optional card.json or model_index.json)."""
    return read_json_object(path) if path.is_file() else {}
