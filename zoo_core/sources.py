"""Weight sources as strings (``hf://...``, ``embedded:...``, a path), parsed without importing torch, so listing
commands (``zoo list``, ``zoo info``) can say where weights are. ``zoo_core.weights`` resolves and loads them."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from zoo_core.errors import WeightsError


@dataclass(frozen=True)
class HubSource:
    repo_id: str
    revision: str | None = None
    subfolder: str | None = None


def parse_hf_source(source: str) -> HubSource:
    """``hf://org/repo[@revision][/subfolder]`` (also ``hf-hub:``) -> its parts."""
    for prefix in ("hf://", "hf-hub:"):
        if source.startswith(prefix):
            rest = source[len(prefix) :].strip("/")
            break
    else:
        raise WeightsError(f"{source!r} is not a Hub source; expected hf://org/repo[@revision][/subfolder]")
    parts = rest.split("/")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise WeightsError(f"Hub source {source!r} must name org/repo, e.g. hf://google/ddpm-cifar10-32")
    name, _, revision = parts[1].partition("@")
    subfolder = "/".join(parts[2:]) or None
    return HubSource(f"{parts[0]}/{name}", revision or None, subfolder)


def is_hub_source(source: str) -> bool:
    return source.startswith(("hf://", "hf-hub:"))


def embedded_path(source: str) -> Path:
    """``embedded:zoo_ddpm/weights/ddpm-digits`` -> the directory inside the installed ``zoo_ddpm`` package."""
    rest = source.removeprefix("embedded:").strip("/")
    package, _, relative = rest.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"Embedded weights {source!r} live in package {package!r}, which is not installed. "
            f"Install the plugin that ships them (pip install -e plugins/...)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise WeightsError(
            f"Embedded weights {source!r}: {path} does not exist (a broken install of {package!r}?)"
        )
    return path
