"""zoo_core.weights: sources, checksums, safe loading, atomic saving and state-dict checks."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from zoo_core import weights
from zoo_core.errors import ChecksumError, WeightsError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- sources --------------------------------------------------------------------------------------------------------
def test_local_directory_source_is_returned_and_verified(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "config.json").write_bytes(b"{}")
    expected = {
        "model.safetensors": sha(b"weights"),
        "config.json": sha(b"{}").upper(),
    }  # case does not matter
    assert weights.resolve(tmp_path, sha256=expected) == tmp_path
    assert weights.resolve(str(tmp_path)) == tmp_path


def test_local_checksum_mismatch_names_the_file_and_both_digests(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "config.json").write_bytes(b"{}")
    with pytest.raises(ChecksumError) as err:
        weights.resolve(tmp_path, sha256={"model.safetensors": "0" * 64, "config.json": "1" * 64})
    message = str(err.value)
    assert (
        str(tmp_path / "model.safetensors") in message and "0" * 64 in message and sha(b"weights") in message
    )
    assert "1 more files differ too" in message
    with pytest.raises(WeightsError, match="missing: the card lists a checksum for 'ema.safetensors'"):
        weights.resolve(tmp_path, sha256={"ema.safetensors": "0" * 64})


def test_local_file_source_is_verified_whatever_name_the_card_uses(tmp_path):
    file = tmp_path / "ckpt.pt"
    file.write_bytes(b"checkpoint")
    assert weights.resolve(file, sha256={"ckpt.pt": sha(b"checkpoint")}) == file
    with pytest.raises(ChecksumError):
        weights.resolve(file, sha256={"ckpt.pt": sha(b"other")})


def test_missing_local_path_says_what_sources_exist(tmp_path):
    with pytest.raises(WeightsError, match=r"does not exist.*hf://org/repo.*zoo list"):
        weights.resolve(tmp_path / "nope")


def test_embedded_source_points_inside_the_installed_package():
    path = weights.resolve("embedded:zoo_core/samplers")
    assert path.is_dir() and path == Path(weights.__file__).parent / "samplers"


def test_embedded_source_of_a_package_that_is_not_installed_is_a_clear_error():
    with pytest.raises(
        WeightsError, match=r"package 'zoo_no_such_plugin', which is not installed.*pip install"
    ):
        weights.resolve("embedded:zoo_no_such_plugin/weights/tiny")
    with pytest.raises(WeightsError, match=r"does not exist \(a broken install of 'zoo_core'\?\)"):
        weights.resolve("embedded:zoo_core/weights/not-there")


@pytest.mark.parametrize(
    ("source", "parts"),
    [
        ("hf://google/ddpm-cifar10-32", ("google/ddpm-cifar10-32", None, None)),
        ("hf://org/repo@v1.0", ("org/repo", "v1.0", None)),
        ("hf://org/repo@abc123/unet", ("org/repo", "abc123", "unet")),
        ("hf://org/repo/text_encoder/sub/", ("org/repo", None, "text_encoder/sub")),
        ("hf-hub:org/repo@main", ("org/repo", "main", None)),
    ],
)
def test_parse_hf_source(source, parts):
    parsed = weights.parse_hf_source(source)
    assert (parsed.repo_id, parsed.revision, parsed.subfolder) == parts
    assert weights.is_hub_source(source)


@pytest.mark.parametrize("source", ["hf://onlyname", "hf://", "/local/path"])
def test_parse_hf_source_rejects_what_is_not_org_repo(source):
    with pytest.raises(WeightsError, match="org/repo"):
        weights.parse_hf_source(source)


# -- state dicts ----------------------------------------------------------------------------------------------------
def net() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))


def test_check_state_dict_lists_missing_unexpected_and_mismatched_keys():
    state = net().state_dict()
    del state["2.bias"]
    state["0.weight"] = torch.zeros(4, 2)
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError) as err:
        weights.check_state_dict(net(), state, "ckpt.safetensors")
    message = str(err.value)
    assert "Weights in ckpt.safetensors do not fit Sequential" in message
    assert "missing keys: 2.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "0.weight: checkpoint (4, 2) vs model (3, 2)" in message


def test_check_state_dict_shortens_long_key_lists():
    big = nn.Sequential(*[nn.Linear(1, 1) for _ in range(10)])
    with pytest.raises(WeightsError, match=r"missing keys: .*\.\.\. \(20 in all\)"):
        weights.check_state_dict(big, {}, "empty")


def test_load_state_dict_checked_loads_a_fitting_state():
    source, target = net(), net()
    weights.load_state_dict_checked(target, source.state_dict(), "memory")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


# -- saving ---------------------------------------------------------------------------------------------------------
def test_save_safetensors_round_trips_with_metadata_and_leaves_no_temp_file(tmp_path):
    state = {
        "a": torch.arange(6.0).reshape(2, 3).t(),
        "b": torch.ones(2, dtype=torch.int64),
    }  # a is not contiguous
    path = weights.save_safetensors(state, tmp_path / "m" / "model.safetensors", metadata={"format": "pt"})
    assert listing(path.parent) == ["model.safetensors"]
    loaded = weights.load_safetensors(path)
    assert torch.equal(loaded["a"], state["a"]) and torch.equal(loaded["b"], state["b"])
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        assert handle.metadata() == {"format": "pt"}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600


def test_save_safetensors_failing_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = weights.save_safetensors({"w": torch.ones(3)}, tmp_path / "model.safetensors")
    before = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        weights.save_safetensors({"w": torch.zeros(3)}, path)
    assert path.read_bytes() == before and listing(tmp_path) == ["model.safetensors"]

    def interrupted(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr("safetensors.torch.save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        weights.save_safetensors({"w": torch.zeros(3)}, path)
    assert torch.equal(load_file(str(path))["w"], torch.ones(3)) and listing(tmp_path) == [
        "model.safetensors"
    ]


def test_write_json_atomic_failure_keeps_the_old_file(tmp_path):
    path = weights.write_json_atomic({"width": 8}, tmp_path / "config.json")
    assert json.loads(path.read_text()) == {"width": 8}
    with pytest.raises(TypeError):
        weights.write_json_atomic({"width": object()}, path)
    assert json.loads(path.read_text()) == {"width": 8} and listing(tmp_path) == ["config.json"]


# -- loading --------------------------------------------------------------------------------------------------------
def test_load_safetensors_of_a_corrupt_file_is_a_weights_error(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(WeightsError, match="Could not read safetensors file"):
        weights.load_safetensors(bad)


def test_load_torch_checkpoint_reads_tensors(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"ema_model": {"w": torch.arange(3.0)}, "step": 7}, path)
    loaded = weights.load_torch_checkpoint(path)
    assert loaded["step"] == 7 and torch.equal(loaded["ema_model"]["w"], torch.arange(3.0))


class RunsCode:
    """Unpickling this would create a file: the check that no code from the checkpoint runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_load_torch_checkpoint_refuses_a_pickle_that_needs_code(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "payload": RunsCode(marker)}, path)
    with pytest.raises(WeightsError) as err:
        weights.load_torch_checkpoint(path)
    message = str(err.value)
    assert "is a pickle that needs code to load" in message and "weights_only=True" in message
    assert "zoo convert" in message and "weights_only=False" not in message
    assert not marker.exists()


def test_load_torch_checkpoint_of_garbage_says_it_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pth"
    path.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(WeightsError, match=r"Is it a PyTorch checkpoint, and complete\?"):
        weights.load_torch_checkpoint(path)
    with pytest.raises(WeightsError, match="FileNotFoundError"):
        weights.load_torch_checkpoint(tmp_path / "absent.pt")


def test_sha256_file_matches_hashlib_across_chunks(tmp_path):
    data = os.urandom(3 * 1024 + 17)
    (tmp_path / "f").write_bytes(data)
    assert weights.sha256_file(tmp_path / "f", chunk=1024) == sha(data)
