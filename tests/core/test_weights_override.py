"""``weights=FILE`` / ``--weights FILE`` for a card: the file is read by whichever reader its format needs (a
registered converter that claims it, or zoo's own and diffusers' layouts), checksums are not applied to it (one
warning), and a file nothing reads is one error naming the formats that exist.

Every file here is written by zoo's own export in the test, or is a fixture under tests/fixtures."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch

import zoo
from zoo_core.cli import main
from zoo_core.errors import UnverifiedWeightsWarning, WeightsError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _tuned(name: str) -> torch.nn.Module:
    """The card's model with every float tensor moved, as a user's fine-tuned copy would be."""
    model = zoo.load(name)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.mul_(1.01).add_(0.001)
    return model


def _load_once(name: str, weights: Path) -> torch.nn.Module:
    """zoo.load with the override, asserting exactly one warning: that checksums were not checked."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = zoo.load(name, weights=weights)
    messages = [str(w.message) for w in caught if issubclass(w.category, UnverifiedWeightsWarning)]
    assert len(messages) == 1 and "checksums not checked" in messages[0], messages
    return model


# -- DDGAN: the official netG.pth ----------------------------------------------------------------------------------
def test_ddgan_official_export_loads_for_the_card_as_folder_file_and_lone_file(tmp_path):
    tuned = _tuned("ddgan")
    tuned.save_pretrained(tmp_path / "official", format="official")  # netG.pth + args.json
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(tmp_path / "official" / "netG.pth", lone / "netG_1200.pth")  # no args.json: the card's architecture
    for weights in (tmp_path / "official", tmp_path / "official" / "netG.pth", lone / "netG_1200.pth", lone):
        model = _load_once("ddgan", weights)
        assert _same(_state(model), _state(tuned)), weights
    assert torch.equal(model.sample(2, seed=3), tuned.sample(2, seed=3))


def test_the_official_fixture_of_another_architecture_is_one_error_naming_the_fix():
    with pytest.raises(WeightsError) as caught:
        zoo.load("ddgan", weights=FIXTURES / "ddgan" / "netG_module_prefixed.pth")
    message = str(caught.value)
    assert "shape mismatches" in message and "zoo convert ddgan-official" in message
    assert "\n" not in message


def test_the_official_fixture_loads_for_a_card_of_its_architecture(tmp_path, registry):
    import yaml
    from ddgan_helpers import fixture_model, small_config

    card = {"name": "ddgan-fixture", "family": "ddgan", "plugin": "ddgan", "architecture": "ddgan.ncsnpp",
            "config": small_config(), "weights": {"source": str(tmp_path / "nowhere"), "format": "ddgan-official"}}  # fmt: skip
    (tmp_path / "cards.yaml").write_text(yaml.safe_dump([card]))
    registry.load_card_files(None, [tmp_path / "cards.yaml"])
    model = zoo.load("ddgan-fixture", weights=FIXTURES / "ddgan" / "netG_module_prefixed.pth")
    assert _same(_state(model), _state(fixture_model()))


# -- StyleGAN2: the official G_ema safetensors, a pickle -----------------------------------------------------------
def test_stylegan_official_safetensors_loads_for_the_card(tmp_path):
    tuned = _tuned("stylegan")
    tuned.save_pretrained(tmp_path / "official", format="official")  # G_ema.safetensors, G_kwargs metadata
    tuned.save_pretrained(tmp_path / "zoo")
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(tmp_path / "zoo" / "model.safetensors", lone / "tuned.safetensors")  # no config.json beside it
    for weights in (
        tmp_path / "official",
        tmp_path / "official" / "G_ema.safetensors",
        tmp_path / "zoo" / "model.safetensors",
        lone / "tuned.safetensors",
    ):
        model = _load_once("stylegan", weights)
        assert _same(_state(model), _state(tuned)), weights
    assert torch.equal(model.sample(2, seed=1, labels=[3, 4]), tuned.sample(2, seed=1, labels=[3, 4]))


def test_a_stylegan_pickle_is_refused_naming_the_file_and_the_converter(tmp_path):
    path = tmp_path / "x.pkl"
    shutil.copy(FIXTURES / "stylegan" / "network-snapshot-small.pkl", path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(WeightsError) as error:
            zoo.load("stylegan2-ada-ffhq", weights=path)
    message = str(error.value)
    assert f"zoo convert stylegan2-ada-pkl {path} OUT_DIR" in message and "x.pkl/" not in message
    assert not [w for w in caught if issubclass(w.category, UnverifiedWeightsWarning)]  # an error, not both


# -- DDPM: diffusers folders, a lone file --------------------------------------------------------------------------
def test_ddpm_diffusers_export_and_a_lone_zoo_file_load_for_the_card(tmp_path):
    tuned = _tuned("ddpm")
    tuned.save_pretrained(tmp_path / "pipe", format="diffusers")
    tuned.save_pretrained(tmp_path / "zoo")
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(tmp_path / "zoo" / "model.safetensors", lone / "model.safetensors")
    for weights in (
        tmp_path / "pipe",
        tmp_path / "pipe" / "unet",
        tmp_path / "pipe" / "unet" / "diffusion_pytorch_model.safetensors",
        tmp_path / "zoo",
        lone / "model.safetensors",
    ):
        model = _load_once("ddpm", weights)
        assert _same(_state(model), _state(tuned)), weights


# -- files nothing reads -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,content", [("notes.txt", b"hello"), ("weights.bin", b"\0" * 16)])
def test_a_file_no_reader_takes_is_one_error_listing_the_formats(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(WeightsError) as caught:
        zoo.load("ddgan", weights=path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert "zoo (a save_pretrained folder" in message and "ddgan-official: NVlabs DDGAN netG_<epoch>.pth" in message


def test_a_folder_with_nothing_readable_lists_the_formats(tmp_path):
    (tmp_path / "readme.md").write_text("my weights are elsewhere")
    with pytest.raises(WeightsError, match=r"loads: zoo .*ddgan-official"):
        zoo.load("ddgan", weights=tmp_path)


def test_cli_override_prints_one_warning_line_and_a_bad_file_one_error_line(tmp_path, capsys):
    zoo.load("ddgan").save_pretrained(tmp_path / "official", format="official")
    code = main(["sample", "ddgan", "--weights", str(tmp_path / "official" / "netG.pth"), "-n", "2",
                 "--out-dir", str(tmp_path / "d"), "--quiet", "--threads", "1"])  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    assert code == 0 and sorted((tmp_path / "d").glob("*.png"))
    assert [line for line in err if line.startswith("warning:")] == [
        f"warning: {tmp_path / 'official' / 'netG.pth'}: checksums not checked (the card 'ddgan' pins its published "
        "files, not a local copy); loaded as it is"
    ]
    (tmp_path / "bad.txt").write_text("no weights")
    code = main(["sample", "ddgan", "--weights", str(tmp_path / "bad.txt"), "-n", "2",
                 "--out-dir", str(tmp_path / "e")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("zoo: error:") and "ddgan-official" in err[0]
    assert not (tmp_path / "e").exists()


def test_nan_in_an_official_file_is_refused_naming_the_tensor_unless_allowed(tmp_path):
    model = zoo.load("ddgan")
    key, tensor = next((k, v) for k, v in model.state_dict().items() if v.is_floating_point() and v.numel() > 2)
    with torch.no_grad():
        tensor.view(-1)[2] = float("inf")
    model.save_pretrained(tmp_path, format="official")
    with pytest.raises(WeightsError, match=rf"{key} has 1 of {tensor.numel()} values non-finite"):
        zoo.load("ddgan", weights=tmp_path / "netG.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = zoo.load("ddgan", weights=tmp_path / "netG.pth", allow_nonfinite=True)
    assert torch.isinf(loaded.state_dict()[key]).sum() == 1
