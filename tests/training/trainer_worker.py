"""Run a registered trainer and dump what this rank holds (``python trainer_worker.py NAME OUT CONFIG_JSON``).

The data-parallel tests start it under torchrun: each rank writes ``OUT/rank<r>.safetensors`` with the trained
module (``model/...``), its EMA copy if any (``ema/...``) and the whole model it trained into (``latent/...``: the trainer's ``_model`` or ``base``),
so a test can compare the ranks bit for bit and against what rank 0 saved. ``"resume": true`` in the JSON
resumes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from zoo_core.training.api import make_trainer

if __name__ == "__main__":
    torch.set_num_threads(1)
    name, out, fields = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    resume = fields.pop("resume", False)
    trainer = make_trainer(name, fields)
    state = trainer.fit(resume=resume)
    latent = getattr(trainer, "_model", None) or getattr(trainer, "base", None)
    tensors = {f"model/{k}": v.detach().clone() for k, v in state.model.state_dict().items()}
    if "model" in state.ema:
        ema = state.ema["model"].module.state_dict()
        tensors.update({f"ema/{k}": v.detach().clone() for k, v in ema.items()})
    if latent is not None:
        tensors.update({f"latent/{k}": v.detach().clone() for k, v in latent.state_dict().items()})
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(out / f"rank{state.dist.rank}.safetensors")
    )
    print(f"rank {state.dist.rank}/{state.dist.world_size} finished step {state.step}", flush=True)
