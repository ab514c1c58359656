"""Data-parallel training under torchrun (gloo, CPU) matches one process on the same global batch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from ddp_run import torchrun
from train_helpers import TinyTrainer, tiny_config

from zoo_core.training import checkpoint
from zoo_core.weights import load_safetensors

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"
SETTINGS = dict(max_steps=4, batch_size=8, grad_accum=2, checkpoint_every=2, log_every=1, dropout=0.0)


def _torchrun(out: Path, nproc: int) -> subprocess.CompletedProcess:
    return torchrun(WORKER, str(out), *[f"{k}={v}" for k, v in SETTINGS.items()], nproc=nproc, timeout=120)


@pytest.mark.slow
def test_two_processes_match_one_process_on_the_same_global_batch(tmp_path):
    single = TinyTrainer(tiny_config(tmp_path / "one", **SETTINGS)).fit()
    assert single.step == 4
    result = _torchrun(tmp_path / "two", 2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0/2 finished step 4" in result.stdout and "rank 1/2 finished step 4" in result.stdout

    for step in (2, 4):
        name = checkpoint.step_dir_name(step)
        for file in ("model.safetensors", "model.ema.safetensors", "optimizers.safetensors"):
            a = load_safetensors(tmp_path / "one" / "checkpoints" / name / file)
            b = load_safetensors(tmp_path / "two" / "checkpoints" / name / file)
            assert sorted(a) == sorted(b)
            for key in a:
                torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=f"{name}/{file}:{key}")
    doc = checkpoint.read_state(tmp_path / "two" / "checkpoints" / "step-0000004")
    assert doc["world_size"] == 2 and len(doc["rng"]) == 2 and doc["rng"][0] != doc["rng"][1]
    # the logged loss is the mean over both processes, i.e. the loss of the global batch
    rows = [
        [json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
        for d in ("one", "two")
    ]
    for ra, rb in zip(*rows, strict=True):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5)
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], rel=1e-5)
