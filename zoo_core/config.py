"""The base of every config a user writes: pydantic with ``extra="forbid"`` so a typo is an error, not a no-op."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from zoo_core.errors import ConfigError

C = TypeVar("C", bound="Config")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_assignment=True)

    @classmethod
    def parse(cls: type[C], data: Mapping[str, Any] | C | None, where: str = "") -> C:
        """Validate ``data``, raising a ConfigError that names each bad field and the expected type."""
        if isinstance(data, cls):
            return data
        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<config>'}: {err['msg']}"
                + (
                    f" (got {err['input']!r})"
                    if err["type"] != "missing" and not isinstance(err["input"], dict)
                    else ""
                )
                for err in exc.errors()
            )
            raise ConfigError(
                f"Invalid {cls.__name__}{' in ' + where if where else ''}: {problems}"
            ) from None
