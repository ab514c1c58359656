"""Start a script under torchrun (gloo, CPU, one thread per process) for the data-parallel tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAINER_WORKER = HERE / "trainer_worker.py"


def torchrun(script: Path, *args: str, nproc: int = 2, timeout: int = 180) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=nproc script args...`` (``nproc=1``: plain python, no group)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if nproc == 1:
        cmd = [sys.executable]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return subprocess.run(
        [*cmd, str(script), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def run_trainer(name: str, out: Path, config: dict, nproc: int) -> dict:
    """Train ``name`` with ``config`` in ``nproc`` processes (``trainer_worker.py``); rank 0's dump of what it
    holds, after checking that every other rank's is bit-identical to it. The run's stderr is kept in
    ``out/stderr.txt``."""
    import json

    import torch
    from safetensors.torch import load_file

    result = torchrun(TRAINER_WORKER, name, str(out), json.dumps(config), nproc=nproc)
    assert result.returncode == 0, result.stderr[-3000:]
    (out / "stderr.txt").write_text(result.stderr, encoding="utf-8")
    ranks = [load_file(out / f"rank{r}.safetensors") for r in range(nproc)]
    for other in ranks[1:]:
        assert other.keys() == ranks[0].keys()
        different = [k for k in ranks[0] if not torch.equal(other[k], ranks[0][k])]
        assert not different, f"the ranks' weights differ: {different[:3]}"
    return ranks[0]


def metrics(run_dir: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_matches_one_process(two: dict, one: dict, two_dir: Path, one_dir: Path, lr: float) -> None:
    """A run on W ranks at batch b each against one process at batch W b (the same global batch and noise).

    The gradients agree to float32 rounding (the batch is summed in another order: the logged losses and
    gradient norm agree to 1e-5). AdamW's first steps are nearly lr * sign(grad), so an element whose gradient is
    ~0 moves by an amount set by that rounding: a few in 10^4 elements differ by up to a few percent of lr (at
    most 0.7% measured), the rest by under 1e-6. Hence: every trained element within 0.05 lr, 99.9% within 1e-6."""
    import pytest
    import torch

    keys = [k for k in one if k.startswith("model/")]
    assert keys and two.keys() == one.keys()
    diff = torch.cat([(two[k].double() - one[k].double()).abs().flatten() for k in keys])
    assert diff.max() <= 0.05 * lr, f"max |W ranks - 1 process| = {diff.max():.3g}"
    assert (diff <= 1e-6).double().mean() >= 0.999
    for a, b in zip(metrics(one_dir), metrics(two_dir), strict=True):
        assert a["step"] == b["step"] and a["samples"] == b["samples"]
        for key in ("loss", "instance_loss", "prior_loss", "grad_norm"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-5), key
