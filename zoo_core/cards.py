"""Model cards: what a name means (which architecture, which config, which weights) and what was measured on it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from zoo_core.errors import ConfigError


class Metric(BaseModel):
    """One measured figure and the command that measured it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    value: float | int | str
    command: str | None = None
    notes: str | None = None


class WeightsSpec(BaseModel):
    """Where a model's weights live.

    ``source`` is ``hf://org/repo[@revision][/subfolder]``, ``embedded:package/relative/dir`` (files shipped in a
    plugin), or a local directory or file. ``sha256`` maps file names (relative to the source) to checksums; every
    listed file is verified after download.
    """

    model_config = ConfigDict(extra="forbid")

    source: str
    revision: str | None = None
    files: list[str] = Field(default_factory=list, description="allow-patterns to download; empty means all")
    sha256: dict[str, str] = Field(default_factory=dict)
    format: str = Field(
        "auto",
        description="zoo | diffusers | auto, or the converter that reads an official checkpoint (`zoo convert`)",
    )
    notes: str | None = None
    size: int | None = Field(None, ge=0, description="bytes to download, shown by `zoo list` / `zoo info`")

    @field_validator("sha256")
    @classmethod
    def _hex_digests(cls, value: dict[str, str]) -> dict[str, str]:
        for name, digest in value.items():
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise ValueError(f"sha256 of {name!r} must be 64 hex digits, got {digest!r}")
        return {k: v.lower() for k, v in value.items()}


class ModelCard(BaseModel):
    """The registry entry of one named model."""

    model_config = ConfigDict(extra="forbid")

    name: str
    family: str
    plugin: str
    architecture: str
    description: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    weights: WeightsSpec | None = None
    default_sampler: str | None = None
    default_steps: int | None = Field(None, ge=1)
    resolution: int | None = Field(None, ge=1)
    channels: int | None = Field(None, ge=1)
    license: str | None = None
    paper: str | None = None
    dataset: str | None = None
    tags: list[str] = Field(default_factory=list)
    metrics: list[Metric] = Field(default_factory=list)
    training_command: str | None = None
    source: str = Field("", description="where the card came from (filled in by the registry)")

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value) or value.startswith(("hf://", "/", ".")):
            raise ValueError(f"card name must be a short identifier without spaces, got {value!r}")
        return value


def parse_card(data: Mapping[str, Any] | ModelCard, source: str) -> ModelCard:
    """Validate one card, turning pydantic's error into one that names the card, the field and the source."""
    if isinstance(data, ModelCard):
        return data if data.source else data.model_copy(update={"source": source})
    try:
        return ModelCard.model_validate({**data, "source": data.get("source") or source})
    except ValidationError as exc:
        name = data.get("name", "<unnamed>") if isinstance(data, Mapping) else "<not a mapping>"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<card>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"Invalid model card {name!r} in {source}: {problems}") from None


def load_cards_file(path: str | os.PathLike[str]) -> list[ModelCard]:
    """Read a registry YAML file: either a list of cards or a mapping ``{models: [...]}``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Registry file {str(path)!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Registry file {str(path)!r} is not valid YAML: {exc}") from None
    if data is None:
        return []
    if isinstance(data, Mapping):
        data = data.get("models") or []
    if not isinstance(data, list):
        raise ConfigError(f"Registry file {str(path)!r} must hold a list of cards under 'models'")
    return [parse_card(entry, str(path)) for entry in data]


def builtin_registry_path() -> Path:
    """The ``registry.yaml`` shipped inside the core package."""
    return Path(__file__).with_name("registry.yaml")


def user_registry_paths() -> Iterable[Path]:
    """Extra registry files named by ``ZOO_REGISTRY`` (os.pathsep-separated)."""
    for part in os.environ.get("ZOO_REGISTRY", "").split(os.pathsep):
        if part.strip():
            yield Path(part.strip()).expanduser()
