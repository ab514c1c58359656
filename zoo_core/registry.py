"""The plugin registry: discovers plugins through the ``zoo`` entry-point group and keeps the tables of names.

Plugins are loaded lazily, on the first call that needs the registry. A plugin that fails to import, raises in a
hook, or registers a name already taken is recorded with its error (``zoo plugins`` shows it) and the rest keep
working. ``ZOO_STRICT_PLUGINS=1`` turns those failures into exceptions; ``ZOO_LOAD_PLUGINS=a,b`` loads only the
named plugins (entry-point or distribution names).
"""

from __future__ import annotations

import importlib
import os
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from zoo_core import hookspecs
from zoo_core.cards import ModelCard, builtin_registry_path, load_cards_file, parse_card, user_registry_paths
from zoo_core.converter import Converter, make_converter
from zoo_core.errors import DuplicateNameError, PluginError, UnknownNameError, ZooError

if TYPE_CHECKING:
    from zoo_core.sampler import Sampler

KINDS = ("models", "samplers", "conditioners", "trainers", "converters")
_SINGULAR = {
    "models": "architecture",
    "samplers": "sampler",
    "conditioners": "conditioner",
    "trainers": "trainer",
    "converters": "converter",
}


@dataclass
class PluginInfo:
    """What ``zoo plugins`` reports about one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "registered": self.registered,
            "errors": self.errors,
        }


@dataclass
class Entry:
    """One registered name: the target (object or ``"module:attr"`` import path) and who registered it."""

    name: str
    target: Any
    plugin: str

    def resolve(self) -> Any:
        if isinstance(self.target, str):
            module_name, _, attr = self.target.partition(":")
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
            self.target = obj
        return self.target


def strict_plugins() -> bool:
    return os.environ.get("ZOO_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}


def allowed_plugins() -> set[str] | None:
    value = os.environ.get("ZOO_LOAD_PLUGINS")
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


class Registry:
    """Tables of models, samplers, conditioners, trainers and cards, filled by plugins."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.tables: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.cards: dict[str, ModelCard] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self._card_owner: dict[str, str] = {}

    # -- discovery ----------------------------------------------------------------------------------------------
    def load_entry_points(self) -> None:
        """Import every plugin in the ``zoo`` entry-point group (subject to the allow-list)."""
        allow = allowed_plugins()
        for ep in sorted(metadata.entry_points(group=hookspecs.PROJECT), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else None
            if allow is not None and ep.name not in allow and (dist or "") not in allow:
                continue
            info = PluginInfo(name=ep.name, distribution=dist, version=ep.dist.version if ep.dist else None)
            self.plugins[ep.name] = info
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                self._fail(info, f"failed to import {ep.value!r}: {type(exc).__name__}: {exc}", exc)
                continue
            self._add_plugin_object(module, info)

    def register_plugin(self, plugin: object, name: str | None = None) -> PluginInfo:
        """Register a plugin object (a module or instance with hookimpls) in-process, e.g. in a test."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        info = PluginInfo(name=name)
        self.plugins[name] = info
        self._add_plugin_object(plugin, info)
        return info

    def unregister_plugin(self, name: str) -> None:
        """Remove a plugin and everything it registered."""
        self.plugins.pop(name, None)
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        for table in self.tables.values():
            for key in [k for k, e in table.items() if e.plugin == name]:
                del table[key]
        for key in [k for k, owner in self._card_owner.items() if owner == name]:
            del self.cards[key], self._card_owner[key]

    def _add_plugin_object(self, plugin: object, info: PluginInfo) -> None:
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:
            self._fail(info, f"could not be registered with pluggy: {exc}", exc)
            return
        for hook_name in sorted(n for n in dir(self.pm.hook) if n.startswith("zoo_register_")):
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                if impl.plugin_name == info.name:
                    info.hooks.append(hook_name)
                    if hook_name != "zoo_register_commands":
                        self._call_hook(hook_name, impl.function, info)

    def _call_hook(self, hook_name: str, function: Callable[..., Any], info: PluginInfo) -> None:
        kind = hook_name.removeprefix("zoo_register_")
        if kind == "cards":
            register = self._card_register(info)
        elif kind == "converters":
            register = self._converter_register(info)
        else:
            register = self._name_register(kind, info)
        try:
            function(register=register)
        except Exception as exc:
            self._fail(info, f"{hook_name} raised {type(exc).__name__}: {exc}", exc)

    def _name_register(self, kind: str, info: PluginInfo) -> Callable[[str, Any], None]:
        def register(name: str, target: Any) -> None:
            if not isinstance(name, str) or not name:
                raise TypeError(f"{kind} names must be non-empty strings, got {name!r}")
            table = self.tables[kind]
            if name in table:
                self._fail(
                    info,
                    f"registers {_SINGULAR[kind]} {name!r}, which plugin {table[name].plugin!r} already registered",
                    DuplicateNameError(name),
                )
                return
            table[name] = Entry(name, target, info.name)
            info.registered.setdefault(kind, []).append(name)

        return register

    def _converter_register(self, info: PluginInfo) -> Callable[..., None]:
        add = self._name_register("converters", info)

        def register(name: str, target: Any = None, **fields: Any) -> None:
            converter = make_converter(name, target, **fields)
            converter.plugin = info.name
            add(name, converter)

        return register

    def _card_register(self, info: PluginInfo) -> Callable[[Any], None]:
        def register(card: Mapping[str, Any] | ModelCard | str | os.PathLike[str]) -> None:
            if isinstance(card, (str, os.PathLike)):
                cards = load_cards_file(card)
            else:
                cards = [parse_card(card, f"plugin {info.name}")]
            for c in cards:
                self._add_card(c, info.name, info)

        return register

    def _add_card(
        self, card: ModelCard, owner: str, info: PluginInfo | None = None, replace: bool = False
    ) -> None:
        if card.name in self.cards and not replace:
            message = (
                f"registers card {card.name!r}, which {self._card_owner[card.name]!r} already registered"
            )
            if info is None:
                raise DuplicateNameError(message)
            self._fail(info, message, DuplicateNameError(card.name))
            return
        self.cards[card.name] = card
        self._card_owner[card.name] = owner
        if info is not None:
            info.registered.setdefault("cards", []).append(card.name)

    def load_card_files(self, builtin: Path | None, user: Iterable[Path]) -> None:
        """Cards from the core's registry.yaml, then the user's files (which may replace a card by name)."""
        if builtin is not None and builtin.exists():
            for card in load_cards_file(builtin):
                self._add_card(card, "registry.yaml")
        for path in user:
            for card in load_cards_file(path):
                self._add_card(card, f"ZOO_REGISTRY:{path}", replace=True)

    def _fail(self, info: PluginInfo, message: str, exc: BaseException) -> None:
        info.errors.append(message)
        if strict_plugins():
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            raise PluginError(
                f"Plugin {info.name!r} {message} (ZOO_STRICT_PLUGINS is set; {detail})"
            ) from exc

    # -- look-ups -----------------------------------------------------------------------------------------------
    def entry(self, kind: str, name: str) -> Entry:
        table = self.tables[kind]
        if name not in table:
            raise UnknownNameError(_SINGULAR[kind], name, table, hint=self._broken_hint())
        return table[name]

    def get(self, kind: str, name: str) -> Any:
        """The registered object (class) of ``kind`` called ``name``, imported on first use."""
        entry = self.entry(kind, name)
        try:
            return entry.resolve()
        except ZooError:
            raise
        except Exception as exc:
            raise PluginError(
                f"Plugin {entry.plugin!r} registered {_SINGULAR[kind]} {name!r} as {entry.target!r}, "
                f"which failed to import: {type(exc).__name__}: {exc}"
            ) from exc

    def converter(self, name: str) -> Converter:
        """The converter registered as ``name``; an unknown name lists every registered one."""
        table = self.tables["converters"]
        if name not in table:
            hint = "`zoo convert --list` says what each reads and writes."
            error = UnknownNameError("converter", name, table, hint=f"{hint} {self._broken_hint()}".strip())
            if error.suggestions:  # "Did you mean" alone would hide the rest
                hint = f"Registered converters: {', '.join(sorted(table))}. {hint}"
                error = UnknownNameError(
                    "converter", name, table, hint=f"{hint} {self._broken_hint()}".strip()
                )
            raise error
        return table[name].target

    def converter_for_card(self, card: ModelCard) -> Converter:
        """The converter a card's ``weights.format`` names; if none is registered, the error names the plugin
        the card says it comes from, or the plugins that are installed."""
        fmt = card.weights.format if card.weights is not None else "auto"
        table = self.tables["converters"]
        if fmt in table:
            return table[fmt].target
        known = ", ".join(sorted(table)) or "none"
        plugin = self.plugins.get(card.plugin)
        start = f"Model {card.name!r} stores its weights as {fmt!r}, which no installed plugin converts"
        if plugin is not None and plugin.ok:
            raise PluginError(
                f"{start}: its plugin {card.plugin!r} is installed but registers no converter {fmt!r} (registered "
                f"converters: {known}). Upgrade the plugin, or correct weights.format in the card ({card.source})."
            )
        if plugin is not None:
            raise PluginError(f"{start}: its plugin {card.plugin!r} failed to load (see `zoo plugins`).")
        installed = ", ".join(sorted(self.plugins)) or "none"
        raise PluginError(
            f"{start}: install plugin {card.plugin!r}, which the card names (installed plugins: {installed}; "
            f"registered converters: {known})."
        )

    def converters(self) -> list[Converter]:
        return [self.tables["converters"][name].target for name in self.names("converters")]

    def names(self, kind: str) -> list[str]:
        return sorted(self.tables[kind])

    def card(self, name: str) -> ModelCard:
        if name not in self.cards:
            raise UnknownNameError("model", name, self.cards, hint="Run `zoo list` to see every model.")
        return self.cards[name]

    def _broken_hint(self) -> str:
        broken = [p.name for p in self.plugins.values() if not p.ok]
        if not broken:
            return ""
        return f"Plugins that failed to load: {', '.join(broken)} (see `zoo plugins`)."


_registry: Registry | None = None
_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                registry = Registry()
                registry.load_card_files(builtin_registry_path(), [])
                registry.load_entry_points()
                registry.load_card_files(None, user_registry_paths())
                _registry = registry
    return _registry


def reset_registry() -> None:
    """Forget the registry so the next call rediscovers plugins (tests, or after changing environment variables)."""
    global _registry
    with _lock:
        _registry = None


def get_sampler(name: str) -> Sampler:
    """A fresh instance of the sampler registered as ``name`` (samplers keep no state, so one per call)."""
    return get_registry().get("samplers", name)()
