"""`zoo export` end to end: a ddpm diffusers folder that diffusers loads, and the one-line errors (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ZOO = [sys.executable, "-m", "zoo_core.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ZOO, *args], capture_output=True, text=True, timeout=120)


def test_export_ddpm_diffusers_loads_in_diffusers(tmp_path: Path) -> None:
    out = tmp_path / "ddpm-diffusers"
    result = run("export", "ddpm", str(out), "--format", "diffusers")
    assert result.returncode == 0, result.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left over
    diffusers = pytest.importorskip("diffusers")
    pipe = diffusers.DDPMPipeline.from_pretrained(out)
    import zoo

    model = zoo.load("ddpm")
    theirs = pipe.unet.state_dict()
    ours = model.save_pretrained(tmp_path / "again", format="diffusers")
    from safetensors.torch import load_file

    expected = load_file(ours / "unet" / "diffusion_pytorch_model.safetensors")
    assert set(theirs) == set(expected)
    for key, value in expected.items():
        assert torch.equal(theirs[key], value), key


def test_export_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    result = run("export", "ddmp", str(tmp_path / "a"), "--format", "diffusers")
    assert result.returncode == 2 and "Did you mean 'ddpm'" in result.stderr
    assert "Traceback" not in result.stderr
    result = run("export", "stylegan", str(tmp_path / "b"), "--format", "diffusers")
    assert (
        result.returncode == 2
        and "no diffusers equivalent" in result.stderr
        and "exported as:" in result.stderr
    )
    assert not (tmp_path / "b").exists()
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    result = run("export", "ddpm", str(full), "--format", "diffusers")
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert (full / "keep.txt").read_text() == "mine"
    for result in (run("export", "ddmp", str(tmp_path / "c")),):
        assert len(result.stderr.strip().splitlines()) == 1


def test_export_overwrite_replaces_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    result = run("export", "ddpm", str(out), "--format", "diffusers", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert not (out / "old.txt").exists() and (out / "model_index.json").exists()
