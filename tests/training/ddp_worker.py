"""Run the tiny trainer (``python ddp_worker.py OUT [key=value ...]``); the DDP test starts it under torchrun."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_helpers import TinyTrainer, tiny_config  # noqa: E402

from zoo_core.training.config import apply_overrides  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    fields = apply_overrides({}, sys.argv[2:])
    state = TinyTrainer(tiny_config(sys.argv[1], **fields)).fit()
    print(f"rank {state.dist.rank}/{state.dist.world_size} finished step {state.step}", flush=True)
