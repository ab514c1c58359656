"""``zoo sample`` at scale: streamed outputs, resume, shards, and every check before the work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo_core import bulk
from zoo_core.cli import main
from zoo_core.images import to_uint8

MODEL = "ddgan"  # 4 steps of a small generator: the fastest real model


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["sample", MODEL, "--threads", "1", "--quiet", *args])
    out, err = capsys.readouterr()
    return code, out, err


def folder_images(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


@pytest.fixture(scope="module")
def reference():
    """uint8 images 0..11 of the model, image i seeded i."""
    model = zoo.load(MODEL)
    return to_uint8(model.sample(12, seed=list(range(12))))


def test_out_dir_and_npz_hold_the_seeded_images(tmp_path, capsys, reference):
    code, out, err = run(
        capsys,
        "--n",
        "12",
        "--batch-size",
        "5",
        "--out-dir",
        str(tmp_path / "d"),
        "--out",
        str(tmp_path / "s.npz"),
    )
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "d").glob("*.png"))
    assert names == [f"{i:06d}.png" for i in range(12)]
    array = np.load(tmp_path / "s.npz")["arr_0"]
    assert array.shape == (12, 16, 16, 1) and array.dtype == np.uint8
    np.testing.assert_array_equal(array, reference)
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "d" / "000007.png"))[..., None], reference[7]
    )
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["model"] == MODEL and manifest["sampler"] == "ddgan" and manifest["steps"] == 4
    assert manifest["seed"] == 0 and manifest["n"] == 12 and manifest["zoo_version"]
    assert "batch size 5 (--batch-size)" in err
    assert not list((tmp_path / "d").glob(".*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_npz_alone_is_streamed_and_the_batch_size_is_chosen_and_printed(tmp_path, capsys, reference):
    code, out, err = run(capsys, "--n", "12", "--out", str(tmp_path / "s.npz"))
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "s.npz")["arr_0"], reference)
    assert "MB per image" in err and "GB free" in err


def test_a_rerun_samples_only_the_missing_images(tmp_path, capsys):
    folder = tmp_path / "d"
    assert run(capsys, "--n", "10", "--batch-size", "4", "--out-dir", str(folder))[0] == 0
    complete = folder_images(folder)
    for i in (2, 3, 9):
        (folder / f"{i:06d}.png").unlink()
    (folder / ".000003.png.99999.tmp").write_bytes(b"half a png")  # what a kill -9 leaves
    code, out, err = run(capsys, "--n", "10", "--batch-size", "4", "--out-dir", str(folder))
    assert code == 0
    assert "7 of 10 images already" in err and "sampling 3" in err and "sampled 3 images" in out
    assert folder_images(folder) == complete
    assert not list(folder.glob(".*.tmp"))
    # a larger n adds images; the manifest remembers the largest
    assert run(capsys, "--n", "12", "--out-dir", str(folder))[0] == 0
    assert len(folder_images(folder)) == 12
    assert json.loads((folder / "manifest.json").read_text())["n"] == 12


def test_a_folder_made_with_other_options_is_refused(tmp_path, capsys):
    folder = tmp_path / "d"
    assert run(capsys, "--n", "3", "--out-dir", str(folder))[0] == 0
    before = folder_images(folder)
    code, out, err = run(capsys, "--n", "3", "--out-dir", str(folder), "--seed", "5")
    assert code == 2 and "sampled with seed=0, this run has seed=5" in err
    assert folder_images(folder) == before


def test_shards_together_equal_one_process(tmp_path, capsys):
    assert run(capsys, "--n", "9", "--out-dir", str(tmp_path / "one"))[0] == 0
    for shard in ("1/3", "0/3", "2/3"):
        code, out, err = run(
            capsys, "--n", "9", "--batch-size", "2", "--out-dir", str(tmp_path / "three"), "--shard", shard
        )
        assert code == 0, err
        assert f"(shard {shard})" in out
    assert folder_images(tmp_path / "three") == folder_images(tmp_path / "one")
    # packing the shards' folder into an npz samples nothing
    code, out, err = run(
        capsys, "--n", "9", "--out-dir", str(tmp_path / "three"), "--out", str(tmp_path / "s.npz")
    )
    assert code == 0 and "sampling 0" in err
    assert np.load(tmp_path / "s.npz")["arr_0"].shape == (9, 16, 16, 1)


def test_a_grid_is_written_from_the_streamed_batches(tmp_path, capsys):
    code, out, err = run(
        capsys, "--n", "6", "--batch-size", "4", "--out", str(tmp_path / "g.png"), "--nrow", "3"
    )
    assert code == 0
    assert Image.open(tmp_path / "g.png").size == (3 * 18 + 2, 2 * 18 + 2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "late.weird"], "unknown output type '.weird'"),
        (["--out", "noextension"], "(no extension)"),
        (["--out", "{file}/grid.png"], "is a file, so the folder"),
        (["--out-dir", "{file}"], "is a file, not a folder"),
        (["--out-dir", "/proc/zoo-samples"], "cannot write in /proc"),
        (["--out", "{tmp}"], "is a directory"),
        (["--n", "0"], "--n 0: expected 1 to"),
        (["--n", "2000", "--out", "{tmp}/g.png"], "too many images for a grid"),
        (["--batch-size", "0"], "--batch-size 0"),
        (["--threads", "0"], "--threads 0"),
        (["--shard", "2/2", "--out-dir", "{tmp}/d"], "--shard '2/2'"),
        (["--shard", "0/2"], "needs --out-dir"),
        (
            ["--shard", "0/2", "--out-dir", "{tmp}/d", "--out", "{tmp}/s.npz"],
            "run the shards with --out-dir only",
        ),
        (["--out-dir", "{tmp}/d", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--out-dir", "{tmp}/d", "--guidance-scale", "3"], "unexpected arguments ['guidance_scale']"),
    ],
)
def test_bad_output_and_counts_exit_2_at_once_with_one_line_and_nothing_written(tmp_path, args, message):
    (tmp_path / "file").write_text("x")
    args = [a.format(tmp=tmp_path, file=tmp_path / "file") for a in args]
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "zoo_core.cli", "sample", MODEL, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    seconds = time.perf_counter() - start
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    assert seconds < 3 or os.getloadavg()[0] > 2, f"{seconds:.1f} s"  # a loaded machine may be slow to start


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sampler", "ddpmm"], "Unknown sampler 'ddpmm'"),
        (["--set", "colour=1"], "unexpected arguments ['colour']"),
        (["--labels", "1,2"], "unexpected arguments ['labels']"),
        (["--steps", "0"], "--steps 0"),
    ],
)
def test_options_the_model_does_not_take_fail_before_anything_is_written(tmp_path, capsys, args, message):
    code, out, err = run(capsys, "--n", "3", "--out-dir", str(tmp_path / "d"), *args)
    assert code == 2 and message in err
    assert not (tmp_path / "d").exists()


def test_a_grid_that_would_not_fit_in_memory_is_refused(monkeypatch):
    monkeypatch.setattr(bulk, "available_memory", lambda: 10 * 2**20)
    with pytest.raises(bulk.UsageError, match="needs about"):
        bulk.check_grid_memory(1024, (256, 256, 3), None, 4)
    bulk.check_grid_memory(16, (16, 16, 1), None, 1)


def test_parse_shard_reads_torchrun_environment():
    assert bulk.parse_shard(None, {"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2)
    assert bulk.parse_shard(None, {}) == (0, 1)
    assert bulk.parse_shard("3/4", {}) == (3, 4)
    with pytest.raises(bulk.UsageError, match="torchrun already shards"):
        bulk.parse_shard("0/2", {"RANK": "0", "WORLD_SIZE": "2"})


def test_torchrun_two_processes_give_the_one_process_folder(tmp_path, capsys):
    assert run(capsys, "--n", "7", "--out-dir", str(tmp_path / "one"))[0] == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # `zoo` itself, as a user runs it; torchrun's parser would take --n as a prefix of its own options: -n
    zoo_command = str(Path(sys.executable).with_name("zoo"))
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "--no-python",
    ]
    sample = ["sample", MODEL, "-n", "7", "--batch-size", "2", "--quiet", "--out-dir", str(tmp_path / "two")]
    result = subprocess.run(
        [*torchrun, zoo_command, *sample, "--out", str(tmp_path / "two.npz")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(shard 0/2)" in result.stdout and "(shard 1/2)" in result.stdout
    assert folder_images(tmp_path / "two") == folder_images(tmp_path / "one")
    array = np.load(tmp_path / "two.npz")["arr_0"]
    np.testing.assert_array_equal(
        array[3], np.asarray(Image.open(tmp_path / "one" / "000003.png"))[..., None]
    )
    torch.testing.assert_close(torch.from_numpy(array).shape, torch.Size([7, 16, 16, 1]))


def test_an_unconditional_cards_options_are_refused_before_its_weights_load(tmp_path, capsys, monkeypatch):
    """The unknown-option case is a bad-output case too: refused from the card and class, with nothing loaded."""
    import zoo_core.api

    def no_load(*args, **kwargs):
        raise AssertionError("the weights were loaded before the options were checked")

    monkeypatch.setattr(zoo_core.api, "load", no_load)
    code, out, err = run(capsys, "--n", "3", "--out-dir", str(tmp_path / "d"), "--guidance-scale", "3")
    assert code == 2 and "unexpected arguments ['guidance_scale']" in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()
