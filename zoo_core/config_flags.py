"""Command-line flags from a pydantic config: each top-level field ``some_field`` becomes ``--some-field``.

This is how ``zoo train NAME`` takes every field of that trainer's config without hand-written options: the flag's
help is the field's description, type and default, booleans get ``--flag/--no-flag``, ``Literal`` fields list their
choices, and values are read as YAML (``1e-4``, ``null``, ``[1, 2]``, ``{channels: 32}``) so that pydantic, not
argparse, validates them — the same rules as the YAML file and ``--set``.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def describe_type(annotation: Any) -> str:
    """A short human name for a field's type: ``float``, ``int or null``, ``one of: l1, l2``, ``DDPMConfig``."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of: " + ", ".join(str(v) for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(
            "null" if a is type(None) else describe_type(a) for a in typing.get_args(annotation)
        )
    if origin is not None:
        args = ", ".join(describe_type(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(annotation, "__name__", str(annotation))


def describe_default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return repr(info.default_factory())
    if info.default is PydanticUndefined:
        return "required"
    return "null" if info.default is None else repr(info.default)


def field_description(config_class: type[BaseModel], name: str) -> str:
    """The field's description, or a base class's when a subclass only changed its default (``lr: float = 5e-6``)."""
    for klass in config_class.__mro__:
        fields = getattr(klass, "__pydantic_fields__", None)
        if isinstance(fields, dict) and name in fields and fields[name].description:
            return fields[name].description.strip()
    return ""


def field_help(info: FieldInfo, description: str | None = None) -> str:
    """``description (type; default X)``: what ``--help`` shows for a field."""
    text = (info.description if description is None else description or "").strip()
    details = f"{describe_type(info.annotation)}; default {describe_default(info)}"
    return f"{text} ({details})" if text else details


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _literal_choices(annotation: Any) -> list[str] | None:
    if typing.get_origin(annotation) is Literal:
        values = typing.get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return list(values)
    return None


def _is_text(annotation: Any) -> bool:
    """``str`` or ``str | None``: taken as typed (YAML would turn a prompt such as ``yes`` into a boolean)."""
    args = (
        set(typing.get_args(annotation))
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else set()
    )
    return annotation is str or args == {str, type(None)}


def _text_or_null(text: str) -> str | None:
    return None if text in ("null", "~") else text


def _is_config(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _metavar(annotation: Any) -> str:
    """N for integers, X for numbers, TEXT for strings, YAML for mappings and lists (``null`` where optional)."""
    if _is_config(annotation):
        return "YAML"
    names = {a for a in describe_type(annotation).split(" or ") if a != "null"}
    for kind, metavar in (("int", "N"), ("float", "X"), ("str", "TEXT")):
        if names == {kind}:
            return metavar
    return "VALUE"


class FlagParser(argparse.ArgumentParser):
    """An ArgumentParser whose mistakes are one-line ConfigErrors naming the closest option, not a usage dump."""

    def error(self, message: str) -> typing.NoReturn:
        import difflib

        from zoo_core.errors import ConfigError

        known = [flag for action in self._actions for flag in action.option_strings]
        unknown = [word for word in message.split() if word.startswith("--")]
        close = difflib.get_close_matches(unknown[0], known, n=1) if unknown else []
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"{self.prog}: {message}{hint}; `{self.prog} --help` lists the options")


def add_config_flags(
    parser: argparse.ArgumentParser,
    config_class: type[BaseModel],
    *,
    aliases: Mapping[str, Iterable[str]] | None = None,
    title: str | None = None,
) -> argparse._ArgumentGroup:
    """Add one flag per field of ``config_class`` (``aliases`` maps a field to extra flags, e.g. ``--out``).

    Flags default to "not given" (argparse.SUPPRESS), so only what the user typed overrides the config file.
    """
    from zoo_core.training.config import parse_value

    group = parser.add_argument_group(title or f"{config_class.__name__} fields")
    for name, info in config_class.model_fields.items():
        flags = [flag_name(name), *(aliases or {}).get(name, ())]
        help_text = field_help(info, field_description(config_class, name))
        common: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
        if _is_bool(info.annotation):
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        elif (choices := _literal_choices(info.annotation)) is not None:
            group.add_argument(*flags, choices=choices, metavar="{" + ",".join(choices) + "}", **common)
        else:
            metavar = _metavar(info.annotation)
            if _is_config(info.annotation):
                common["help"] += "; a YAML mapping, or reach into it with --set " + name + ".FIELD=VALUE"
            value_type: Any = parse_value
            if _is_text(info.annotation):
                value_type = str if info.annotation is str else _text_or_null
            group.add_argument(*flags, type=value_type, metavar=metavar, **common)
    return group


def given_fields(namespace: argparse.Namespace, config_class: type[BaseModel]) -> dict[str, Any]:
    """The config fields the user gave as flags (those not given are absent, not defaults)."""
    values = vars(namespace)
    return {name: values[name] for name in config_class.model_fields if name in values}
