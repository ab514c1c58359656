"""Converters are dispatched by the core: a card's ``weights.format`` names a registered converter, which reads the
file; ``zoo convert`` lists them; unknown names and formats nobody converts are one-line errors naming the fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo import hookimpl
from zoo_core.cli import main as zoo_main
from zoo_core.errors import PluginError, UnknownNameError

ZOO = [sys.executable, "-m", "zoo_core.cli"]
CALLS: list[tuple[str, str, dict]] = []


def read_npz(path: Path, *, config=None, scale: float = 1.0):
    """A third party's format: the DDGAN generator's tensors in an .npz under their zoo names."""
    from zoo_ddgan.model import DDGANModel

    CALLS.append(("read", str(path), dict(config or {})))
    model = DDGANModel(config)
    with np.load(path) as data:
        state = {k: torch.from_numpy(data[k]) * scale for k in data.files}
    model.load_state_dict(state, strict=True)
    return model.eval()


def check_npz(source: str, *, card=None, **options) -> None:
    CALLS.append(("check", source, options))
    if options.get("refuse"):
        raise zoo.WeightsError(f"refused {source} before reading it")


class NpzPlugin:
    @hookimpl
    def zoo_register_converters(self, register):
        register(
            "ddgan-npz",
            reads="a DDGAN generator as .npz (test format)",
            read=read_npz,
            check=check_npz,
            architecture="ddgan.ncsnpp",
            suffixes=(".npz",),
        )


class BareFunctionPlugin:
    @hookimpl
    def zoo_register_converters(self, register):
        register("old-style", lambda source, out_dir: out_dir)


def _card(tmp_path: Path, monkeypatch, fmt: str, source: str, plugin: str = "ddgan", config=None) -> str:
    config = json.dumps(config) if config is not None else "{}"
    path = tmp_path / "cards.yaml"
    path.write_text(
        "models:\n- name: toy-card\n  family: ddgan\n"
        f"  plugin: {plugin}\n  architecture: ddgan.ncsnpp\n  config: {config}\n"
        f"  weights: {{source: '{source}', format: {fmt}}}\n  default_sampler: ddgan\n"
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(path))  # for subprocesses
    from zoo_core.registry import get_registry

    get_registry().load_card_files(None, [path])  # the registry of this process may be built already
    return "toy-card"


@pytest.fixture
def npz(tmp_path, registry):
    CALLS.clear()
    registry.register_plugin(NpzPlugin(), name="npz-plugin")
    reference = zoo.load("ddgan")
    path = tmp_path / "generator.npz"
    np.savez(path, **{k: v.numpy() for k, v in reference.state_dict().items()})
    yield reference, path
    registry.unregister_plugin("npz-plugin")


def test_a_cards_format_is_read_by_the_converter_it_names(npz, tmp_path, monkeypatch):
    reference, path = npz
    config = reference.config.model_dump(mode="json")
    name = _card(tmp_path, monkeypatch, "ddgan-npz", str(path), config=config)
    model = zoo.load(name)
    assert [c[0] for c in CALLS] == ["check", "read"]  # refused (or not) before reading
    assert CALLS[1][1] == str(path) and CALLS[1][2] == config  # the card's config goes to the converter
    assert model.card.name == name and not model.training
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    x = torch.randn(2, *model.sample_shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.sample(2, seed=3, x_T=x), reference.sample(2, seed=3, x_T=x))


def test_options_reach_the_converter_and_its_check_runs_first(npz, tmp_path, monkeypatch):
    reference, path = npz
    name = _card(
        tmp_path, monkeypatch, "ddgan-npz", str(path), config=reference.config.model_dump(mode="json")
    )
    card = zoo.info(name)
    cls = type(reference)
    doubled = cls.from_card(card, scale=2.0)
    key = "generator.all_modules.0.weight"
    assert torch.equal(doubled.state_dict()[key], 2 * reference.state_dict()[key])
    CALLS.clear()
    with pytest.raises(zoo.WeightsError, match="refused"):
        cls.from_card(card, refuse=True)
    assert [c[0] for c in CALLS] == ["check"]


def test_a_file_given_for_a_card_is_read_by_the_converter_claiming_its_ending(npz, tmp_path, monkeypatch):
    reference, path = npz
    name = _card(tmp_path, monkeypatch, "zoo", str(tmp_path), config=reference.config.model_dump(mode="json"))
    model = zoo.load(name, weights=path)
    assert CALLS and CALLS[-1][0] == "read"
    assert torch.equal(model.state_dict()["generator.all_modules.0.weight"],
                       reference.state_dict()["generator.all_modules.0.weight"])  # fmt: skip


def test_zoo_convert_runs_read_then_writes_a_zoo_model(npz, tmp_path):
    reference, path = npz
    out = tmp_path / "out"
    config = json.dumps(reference.config.model_dump(mode="json")).replace(" ", "")
    assert zoo_main(["convert", "ddgan-npz", str(path), str(out), "--set", f"config={config}"]) == 0
    again = zoo.load(str(out))
    for key, value in reference.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_zoo_convert_without_arguments_lists_what_each_converter_reads_and_writes(capsys):
    assert zoo_main(["convert"]) == 0
    listed = capsys.readouterr().out
    assert zoo_main(["convert", "--list"]) == 0
    assert capsys.readouterr().out == listed
    for name in ("ddgan-official", "stylegan2-ada-pkl", "stylegan2-ada-safetensors", "pytorch-ddpm"):
        assert name in listed
    assert "reads:  NVlabs DDGAN netG_<epoch>.pth" in listed
    assert "writes: netG.pth in the NVlabs layout" in listed
    assert "writes: (nothing: read only)" in listed  # the pickle reader
    assert zoo_main(["convert", "--list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert (
        rows["ddgan-official"]["plugin"] == "ddgan"
        and rows["ddgan-official"]["architecture"] == "ddgan.ncsnpp"
    )
    assert rows["stylegan2-ada-pkl"]["writes"] is None
    assert "G_ema" in rows["stylegan2-ada-safetensors"]["writes"]


def test_an_unknown_converter_lists_the_registered_ones(tmp_path):
    for name, extra in (("no-such-converter", "Known:"), ("ddgan-oficial", "Did you mean 'ddgan-official'?")):
        result = subprocess.run(
            [*ZOO, "convert", name, str(tmp_path / "a"), str(tmp_path / "b")], capture_output=True, text=True
        )
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert f"Unknown converter {name!r}" in result.stderr and extra in result.stderr
        assert "ddgan-official" in result.stderr and "stylegan2-ada-pkl" in result.stderr
        assert "zoo convert --list" in result.stderr
        assert not (tmp_path / "b").exists()


def test_a_converter_name_without_files_says_what_it_needs(capsys):
    assert zoo_main(["convert", "ddgan-official"]) == 2
    err = capsys.readouterr().err
    assert "needs SOURCE and OUT" in err and "netG_<epoch>.pth" in err


def test_a_card_whose_format_its_installed_plugin_does_not_convert(tmp_path, monkeypatch):
    name = _card(tmp_path, monkeypatch, "ddgan-v9", str(tmp_path / "netG.pth"))
    (tmp_path / "netG.pth").write_bytes(b"")
    with pytest.raises(PluginError) as err:
        zoo.load(name)
    message = str(err.value)
    assert "stores its weights as 'ddgan-v9'" in message
    assert "plugin 'ddgan' is installed but registers no converter 'ddgan-v9'" in message
    assert "ddgan-official" in message and str(tmp_path / "cards.yaml") in message


def test_a_card_whose_format_comes_from_a_plugin_not_installed(tmp_path, monkeypatch):
    name = _card(tmp_path, monkeypatch, "ddgan-extra", str(tmp_path / "netG.pth"), plugin="ddgan-extras")
    (tmp_path / "netG.pth").write_bytes(b"")
    result = subprocess.run([*ZOO, "sample", name, "-n", "1", "--out", str(tmp_path / "x.png")],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = result.stderr
    assert "install plugin 'ddgan-extras', which the card names" in message
    assert "installed plugins:" in message and "ddgan" in message and "stylegan" in message
    assert not (tmp_path / "x.png").exists()


def test_an_official_card_without_its_file_says_where_to_get_it(tmp_path, monkeypatch):
    name = _card(tmp_path, monkeypatch, "ddgan-official", str(tmp_path / "missing"))
    with pytest.raises(zoo.WeightsError, match="needs its official weights .*NVlabs DDGAN.*expected at"):
        zoo.load(name)


def test_a_bare_function_is_not_a_converter(registry):
    info = registry.register_plugin(BareFunctionPlugin(), name="bare")
    try:
        assert any("no longer a converter" in e for e in info.errors)
        with pytest.raises(UnknownNameError):
            registry.converter("old-style")
    finally:
        registry.unregister_plugin("bare")


def test_no_family_overrides_from_card():
    from zoo_core.api import get_model_class
    from zoo_core.model import Model

    for architecture in ("ddgan.ncsnpp", "stylegan2", "ddpm.unet", "latent.sd"):
        cls = get_model_class(architecture)
        assert cls.from_card.__func__ is Model.from_card.__func__, architecture
        if architecture in ("ddgan.ncsnpp", "stylegan2"):  # their official files are read by their converters
            assert cls.from_pretrained.__func__ is Model.from_pretrained.__func__, architecture


def test_family_models_do_not_import_their_converters():
    """convert stands above model (it builds models); model importing convert back would be a cycle."""
    import ast

    import zoo_ddgan.model
    import zoo_stylegan.model

    for module, converter in (
        (zoo_ddgan.model, "zoo_ddgan.convert"),
        (zoo_stylegan.model, "zoo_stylegan.convert"),
    ):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert converter not in imported, module.__name__
