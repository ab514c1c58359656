"""Loading messages that say what happened: code in a pickle, a weights file given, NaN weights."""

from __future__ import annotations

import os

import pytest
import torch

import zoo
from zoo_core import weights
from zoo_core.errors import WeightsError
from zoo_core.weights import save_safetensors


class RunsCode:
    """What a malicious checkpoint holds: unpickling it calls os.system."""

    def __reduce__(self):
        return (os.system, ("echo this must never run",))


@pytest.mark.parametrize(
    "save_options",
    [{}, {"pickle_protocol": 4}, {"_use_new_zipfile_serialization": False}],
    ids=["zip", "protocol4-stack-global", "legacy"],
)
def test_a_pickle_that_runs_code_is_refused_naming_the_global(tmp_path, save_options):
    path = tmp_path / "evil.bin"
    torch.save({"weight": torch.zeros(2), "payload": RunsCode()}, path, **save_options)
    assert weights.unsafe_globals(path) == [f"{os.system.__module__}.system"]  # posix.system on Linux
    with pytest.raises(WeightsError) as caught:
        weights.load_torch_checkpoint(path)
    message = str(caught.value)
    assert f"{os.system.__module__}.system" in message and "code execution" in message
    assert "weights_only=False" not in message and "2.6" not in message
    assert "\n" not in message


def test_the_global_is_read_from_the_file_not_from_torchs_wording(tmp_path, monkeypatch):
    import pickle

    path = tmp_path / "evil.pt"
    torch.save(RunsCode(), path)

    def reworded(*args, **kwargs):
        raise pickle.UnpicklingError("something entirely different")

    monkeypatch.setattr(torch, "load", reworded)
    with pytest.raises(WeightsError, match=r"it calls posix\.system|it calls nt\.system"):
        weights.load_torch_checkpoint(path)


def test_a_plain_state_dict_checkpoint_still_loads(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save({"state_dict": {"w": torch.ones(3)}}, path)
    assert weights.unsafe_globals(path) == []
    assert torch.equal(weights.load_state_dict_file(path)["w"], torch.ones(3))


def test_weights_file_is_honoured_not_its_folder(tmp_path):
    """A folder holding the saved model plus another weights file: --weights FILE loads FILE."""
    model = zoo.load("ddpm")
    model.save_pretrained(tmp_path)
    other = {k: v + 0.01 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_safetensors(other, tmp_path / "other.safetensors")
    from_folder = zoo.load("ddpm", weights=tmp_path)
    from_file = zoo.load("ddpm", weights=tmp_path / "other.safetensors")
    key = next(k for k, v in other.items() if v.is_floating_point())
    assert torch.equal(from_folder.state_dict()[key], model.state_dict()[key])
    assert torch.equal(from_file.state_dict()[key], other[key])


def test_a_stylegan_card_given_a_pickle_file_names_that_file(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(b"not read: the opt-in is missing")
    with pytest.raises(WeightsError) as caught:
        zoo.load("stylegan2-ada-ffhq", weights=path)
    assert str(path) in str(caught.value) and "x.pkl/" not in str(caught.value)


def test_nan_weights_are_refused_at_load_naming_the_tensor(tmp_path):
    model = zoo.load("ddgan")
    key, tensor = next(
        (k, v) for k, v in model.state_dict().items() if v.is_floating_point() and v.numel() > 1
    )
    with torch.no_grad():
        tensor.view(-1)[1] = float("nan")
    model.save_pretrained(tmp_path)
    with pytest.raises(WeightsError, match=rf"{key} has 1 of {tensor.numel()} values non-finite"):
        zoo.load("ddgan", weights=tmp_path)
    loaded = zoo.load("ddgan", weights=tmp_path, allow_nonfinite=True)
    assert torch.isnan(loaded.state_dict()[key]).any()


def test_zoo_sample_reports_nan_weights_in_one_line(tmp_path, capsys):
    from zoo_core.cli import main

    model = zoo.load("ddgan")
    with torch.no_grad():
        next(p for p in model.parameters() if p.numel() > 1).view(-1)[0] = float("inf")
    model.save_pretrained(tmp_path / "w")
    code = main(
        ["sample", "ddgan", "--weights", str(tmp_path / "w"), "-n", "2", "--out-dir", str(tmp_path / "d")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "NaN or inf" in err and "--allow-nonfinite-weights" in err
    assert not (tmp_path / "d").exists()


def test_a_local_copy_of_a_pinned_card_loads_with_a_warning_not_a_checksum_error(tmp_path):
    """The card's sha256 pins its published files; the user's own fine-tuned weights load, with a warning."""
    from zoo_core.errors import UnverifiedWeightsWarning

    model = zoo.load("ddpm")
    tuned = {k: v * 1.01 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    model.load_state_dict(tuned)
    model.save_pretrained(tmp_path)
    with pytest.warns(UnverifiedWeightsWarning, match="checksums not checked"):
        loaded = zoo.load("ddpm", weights=tmp_path)
    key = next(k for k, v in tuned.items() if v.is_floating_point())
    assert torch.equal(loaded.state_dict()[key], tuned[key])
