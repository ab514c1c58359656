"""The plugin registry: discovery through entry points, failure isolation, duplicates, allow-list, cards."""

from __future__ import annotations

import types

import pytest
import yaml
from fakedist import activate, make_plugin_dist

import zoo
from zoo_core.cards import ModelCard
from zoo_core.errors import ConfigError, PluginError, UnknownNameError
from zoo_core.hookspecs import hookimpl
from zoo_core.registry import get_registry

CARD = {
    "name": "toy-model",
    "family": "toy",
    "plugin": "toy",
    "architecture": "toy.arch",
    "config": {"width": 4},
}


def plugin_module(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, hookimpl(fn))
    return module


def test_builtin_plugin_registers_core_samplers(registry):
    assert {"ddpm", "euler", "gan"} <= set(registry.names("samplers"))
    assert registry.entry("samplers", "gan").plugin == "builtin"
    assert {"none", "class-label"} <= set(registry.names("conditioners"))


def test_shipped_registry_yaml_validates():
    from zoo_core.cards import builtin_registry_path, load_cards_file

    cards = load_cards_file(builtin_registry_path())
    assert len({c.name for c in cards}) == len(cards), "duplicate card names in registry.yaml"


def test_plugin_cards_and_names_are_registered_and_attributed(registry):
    def zoo_register_cards(register):
        register(CARD)

    def zoo_register_models(register):
        register("toy.arch", "collections:OrderedDict")

    info = registry.register_plugin(
        plugin_module("toy", zoo_register_cards=zoo_register_cards, zoo_register_models=zoo_register_models),
        name="toy",
    )
    assert info.ok
    assert info.registered == {"cards": ["toy-model"], "models": ["toy.arch"]}
    assert registry.card("toy-model").source == "plugin toy"
    import collections

    assert (
        registry.get("models", "toy.arch") is collections.OrderedDict
    )  # resolved lazily from its import path
    registry.unregister_plugin("toy")
    assert "toy-model" not in registry.cards and "toy.arch" not in registry.names("models")


def test_user_registry_file_adds_and_replaces_cards(tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"models": [CARD, {**CARD, "name": "toy-2", "tags": ["x"]}]}))
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    assert zoo.list_models("toy*") == ["toy-2", "toy-model"]
    assert zoo.info("toy-2").tags == ["x"]
    assert zoo.info("toy-model").source == str(path)
    assert zoo.list_models(family="toy") == ["toy-2", "toy-model"]
    assert zoo.list_models(family="nope") == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"config": "not-a-dict"}, "config"),
        ({"colour": "red"}, "colour"),
        ({"default_steps": 0}, "default_steps"),
        ({"weights": {"source": "hf://a/b", "sha256": {"f": "xyz"}}}, "weights.sha256"),
    ],
)
def test_bad_card_error_names_the_field(tmp_path, monkeypatch, change, field):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"models": [{**CARD, **change}]}))
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    with pytest.raises(ConfigError) as info:
        zoo.list_models()
    message = str(info.value)
    assert field in message and "toy-model" in message and str(path) in message


def test_card_rejects_spaces_in_names():
    with pytest.raises(ValueError, match="without spaces"):
        ModelCard(**{**CARD, "name": "two words"})


def test_unknown_model_suggests_close_names(registry):
    registry.register_plugin(
        plugin_module("toy", zoo_register_cards=lambda register: register(CARD)), name="toy"
    )
    with pytest.raises(UnknownNameError) as info:
        zoo.info("toy-modle")
    assert "Did you mean 'toy-model'?" in str(info.value)
    with pytest.raises(UnknownNameError, match="Unknown sampler 'eulr'. Did you mean 'euler'"):
        zoo.get_sampler("eulr")


def test_duplicate_names_are_reported_and_first_wins(registry):
    registry.register_plugin(
        plugin_module("first", zoo_register_samplers=lambda register: register("dup", "os:getcwd")),
        name="first",
    )
    second = registry.register_plugin(
        plugin_module("second", zoo_register_samplers=lambda register: register("dup", "os:getpid")),
        name="second",
    )
    assert not second.ok
    assert "registers sampler 'dup', which plugin 'first' already registered" in second.errors[0]
    assert registry.entry("samplers", "dup").plugin == "first"
    # a plugin registering a card name that another already owns is reported the same way
    registry.register_plugin(
        plugin_module("c1", zoo_register_cards=lambda register: register(CARD)), name="c1"
    )
    c2 = registry.register_plugin(
        plugin_module("c2", zoo_register_cards=lambda register: register(CARD)), name="c2"
    )
    assert "registers card 'toy-model'" in c2.errors[0]


def test_strict_mode_makes_plugin_failures_fatal(registry, monkeypatch):
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    registry.register_plugin(
        plugin_module("a", zoo_register_samplers=lambda register: register("dup", "os:getcwd")), name="a"
    )
    with pytest.raises(PluginError, match="ZOO_STRICT_PLUGINS"):
        registry.register_plugin(
            plugin_module("b", zoo_register_samplers=lambda register: register("dup", "os:getcwd")), name="b"
        )


def test_hook_that_raises_is_isolated(registry):
    def boom(register):
        register("fine-before-error", "os:getcwd")
        raise RuntimeError("kaboom")

    info = registry.register_plugin(plugin_module("bad", zoo_register_samplers=boom), name="bad")
    assert info.errors == ["zoo_register_samplers raised RuntimeError: kaboom"]
    assert "euler" in registry.names("samplers")  # the rest keep working


def test_target_that_fails_to_import_names_the_plugin(registry):
    registry.register_plugin(
        plugin_module("p", zoo_register_samplers=lambda register: register("ghost", "no_such_module_zz:X")),
        name="p",
    )
    with pytest.raises(
        PluginError, match="Plugin 'p' registered sampler 'ghost'.*No module named 'no_such_module_zz'"
    ):
        zoo.get_sampler("ghost")


BROKEN = "raise ImportError('this plugin is broken on purpose')\n"
GOOD = """
from zoo import hookimpl

@hookimpl
def zoo_register_cards(register):
    register({"name": "good-model", "family": "toy", "plugin": "good", "architecture": "toy.arch"})
"""


def test_entry_point_plugin_that_fails_to_import_is_isolated(tmp_path, monkeypatch):
    make_plugin_dist(tmp_path, "zoo-broken", "broken", "zoo_broken_plugin", BROKEN)
    make_plugin_dist(tmp_path, "zoo-good", "good", "zoo_good_plugin", GOOD)
    activate(tmp_path, monkeypatch)
    plugins = {p.name: p for p in zoo.list_plugins()}
    assert (
        "failed to import 'zoo_broken_plugin': ImportError: this plugin is broken on purpose"
        in plugins["broken"].errors[0]
    )
    assert (
        plugins["good"].ok
        and plugins["good"].distribution == "zoo-good"
        and plugins["good"].version == "0.0.1"
    )
    assert "good-model" in zoo.list_models()
    with pytest.raises(UnknownNameError, match="Plugins that failed to load: broken"):
        zoo.get_sampler("nope")

    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    from zoo_core.registry import reset_registry

    reset_registry()
    with pytest.raises(PluginError, match="broken on purpose"):
        get_registry()


def test_allow_list_loads_only_named_plugins(tmp_path, monkeypatch):
    make_plugin_dist(tmp_path, "zoo-good", "good", "zoo_good_plugin", GOOD)
    activate(tmp_path, monkeypatch)
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "good")
    assert [p.name for p in zoo.list_plugins()] == ["good"]
    assert zoo.list_samplers() == []
    from zoo_core.registry import reset_registry

    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "zoo-core")  # a distribution name works too
    reset_registry()
    assert [p.name for p in zoo.list_plugins()] == ["builtin"]
