"""Checkpoints are atomic: a crash mid-write leaves the previous checkpoint and ``latest`` loadable."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn
from train_helpers import TinyTrainer, tiny_config

from zoo_core.errors import WeightsError
from zoo_core.training import checkpoint
from zoo_core.training.ema import EMA


def _parts(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.5, 0.9))
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    return model, EMA(model, 0.9), opt


def _save(root, step, model, ema, opt, **kw):
    return checkpoint.save(
        root,
        step,
        modules={"model": model},
        ema={"model": ema},
        optimizers={"opt": opt},
        state={"x": step},
        **kw,
    )


def test_round_trip_restores_weights_ema_and_optimizer(tmp_path):
    model, ema, opt = _parts(0)
    ema.update(model)
    _save(tmp_path, 3, model, ema, opt)
    model2, ema2, opt2 = _parts(1)
    doc = checkpoint.load(
        checkpoint.resolve(tmp_path), modules={"model": model2}, ema={"model": ema2}, optimizers={"opt": opt2}
    )
    assert doc["step"] == 3 and doc["x"] == 3
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(ema.state_dict().values(), ema2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert ema2.num_updates == 1
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["param_groups"][0]["betas"] == (0.5, 0.9)
    for i in s1["state"]:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(s1["state"][i][key], s2["state"][i][key])


def test_crash_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, ema, opt = _parts()
    _save(tmp_path, 2, model, ema, opt)
    real = checkpoint._write_tensors

    def dying(state, path):
        if path.name == checkpoint.OPTIMIZERS_NAME:  # model and EMA files already written
            raise OSError("disk full (simulated)")
        real(state, path)

    monkeypatch.setattr(checkpoint, "_write_tensors", dying)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    with pytest.raises(OSError, match="simulated"):
        _save(tmp_path, 4, model, ema, opt)
    assert (tmp_path / "latest").read_text().strip() == "step-0000002"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-0000002"]  # no partial directory
    model2, ema2, opt2 = _parts(1)
    doc = checkpoint.load(
        checkpoint.resolve(tmp_path), modules={"model": model2}, ema={"model": ema2}, optimizers={"opt": opt2}
    )
    assert doc["step"] == 2
    assert not torch.equal(model2[0].weight, model[0].weight)  # the step-2 weights, not the changed ones


def test_killed_writer_leaves_only_a_hidden_temp_dir_that_is_ignored_and_cleaned(tmp_path):
    model, ema, opt = _parts()
    _save(tmp_path, 2, model, ema, opt)
    # what a SIGKILL during the write of step 4 leaves behind: a temp dir with some files, latest untouched
    partial = tmp_path / ".tmp-step-0000004-abc"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\x00" * 10)
    assert checkpoint.resolve_latest(tmp_path).name == "step-0000002"
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path)] == [2]
    _save(tmp_path, 6, model, ema, opt)
    assert not partial.exists()
    assert checkpoint.resolve_latest(tmp_path).name == "step-0000006"


def test_latest_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    model, ema, opt = _parts()
    for step in (1, 2):
        _save(tmp_path, step, model, ema, opt)
    (tmp_path / "latest").write_text("step-0000009\n")  # names a checkpoint that is gone
    assert checkpoint.resolve_latest(tmp_path).name == "step-0000002"
    (tmp_path / "latest").unlink()
    assert checkpoint.resolve(tmp_path.parent / tmp_path.name).name == "step-0000002"
    with pytest.raises(WeightsError, match="No checkpoint"):
        checkpoint.resolve(tmp_path / "nowhere")


def test_keep_prunes_old_checkpoints(tmp_path):
    model, ema, opt = _parts()
    for step in range(1, 6):
        _save(tmp_path, step, model, ema, opt, keep=2)
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path)] == [4, 5]


def test_rng_states_round_trip():
    state = checkpoint.rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    checkpoint.set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_loop_checkpoint_layout(tmp_path):
    TinyTrainer(tiny_config(tmp_path, max_steps=5, checkpoint_every=2, keep_checkpoints=2)).fit()
    root = tmp_path / "checkpoints"
    # checkpoints at 2, 4 and the final step 5; only the newest two are kept
    assert [s for s, _ in checkpoint.list_checkpoints(root)] == [4, 5]
    assert (root / "latest").read_text().strip() == "step-0000005"
    doc = checkpoint.read_state(root / "step-0000005")
    assert doc["config"]["max_steps"] == 5 and doc["world_size"] == 1 and len(doc["rng"]) == 1
    assert doc["data"] == {"epoch": 0, "offset": 40, "samples_seen": 40}
    assert set(doc["rng"][0]) == {"torch", "numpy", "python"}


_WRITER = """
import sys, torch
from torch import nn
from zoo_core.training import checkpoint
from zoo_core.training.ema import EMA
model = nn.Linear(512, 512)
opt = torch.optim.AdamW(model.parameters())
ema = EMA(model, 0.9)
step = 0
while True:
    step += 1
    with torch.no_grad():
        model.weight.fill_(step)
    checkpoint.save(sys.argv[1], step, modules={"model": model}, ema={"model": ema}, optimizers={"o": opt},
                    state={}, keep=3)
    print(step, flush=True)
"""


@pytest.mark.slow
def test_sigkill_during_saves_never_leaves_latest_unloadable(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "ck"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):  # wait until a few checkpoints exist, then kill at an arbitrary moment
            assert proc.stdout.readline(), "writer died"
        time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    latest = checkpoint.resolve_latest(root)
    model = nn.Linear(512, 512)
    doc = checkpoint.load(
        latest,
        modules={"model": model},
        ema={"model": EMA(model, 0.9)},
        optimizers={"o": torch.optim.AdamW(model.parameters())},
    )
    assert doc["step"] >= 3 and torch.all(model.weight == doc["step"])
    for _, path in checkpoint.list_checkpoints(root):  # every visible checkpoint is complete
        assert checkpoint.read_state(path)["step"] == int(path.name.split("-")[1])
