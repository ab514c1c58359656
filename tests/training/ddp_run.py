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
