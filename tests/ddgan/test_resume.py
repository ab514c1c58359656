"""DDGAN training resumes exactly: a run interrupted mid-way and resumed ends bit-identical to one that never
stopped (G, its EMA, D, both Adam states), with lazy R1 steps on both sides of the interruption."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from zoo_ddgan.trainer import DDGANTrainer

from zoo_core.training import checkpoint
from zoo_core.training.api import make_trainer
from zoo_core.weights import load_safetensors

TINY = {
    "max_steps": 6,
    "batch_size": 4,
    "checkpoint_every": 2,
    "progress": False,
    "log_every": 1,
    "save_final": False,
    "model": {
        "image_size": 8,
        "num_channels": 1,
        "num_channels_dae": 8,
        "ch_mult": [1, 2],
        "num_res_blocks": 1,
        "attn_resolutions": [],
        "nz": 4,
        "z_emb_dim": 8,
        "n_mlp": 1,
        "num_timesteps": 2,
    },
    "ngf": 4,
    "t_emb_dim": 8,
    "lazy_reg": 2,  # R1 on steps 0, 2, 4: before and after the interruption
    "r1_gamma": 0.05,
    "ema_decay": 0.9,
}
FILES = ["D.safetensors", "model.ema.safetensors", "model.safetensors", "optimizers.safetensors"]


class Blobs(Dataset):
    """Smooth random 1 x 8 x 8 images in [-1, 1], fixed by the seed; 10 samples, so epochs cross the batches."""

    def __init__(self, n: int = 10) -> None:
        low = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
        self.images = F.interpolate(low, size=(8, 8), mode="bilinear", align_corners=False)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


class Interrupted(KeyboardInterrupt):
    pass


@pytest.mark.slow
def test_interrupted_and_resumed_ddgan_run_is_bit_identical(tmp_path: Path):
    data = Blobs()
    make_trainer("ddgan", {**TINY, "out_dir": str(tmp_path / "whole")}).fit(dataset=data)

    class Stopping(DDGANTrainer):
        def step(self, batch, state):  # type: ignore[no-untyped-def]
            if state.step == 3:
                raise Interrupted
            return super().step(batch, state)

    split = tmp_path / "split"
    with pytest.raises(Interrupted):
        Stopping(make_trainer("ddgan", {**TINY, "out_dir": str(split)}).config).fit(dataset=data)
    assert checkpoint.resolve_latest(split / "checkpoints").name == checkpoint.step_dir_name(2)
    make_trainer("ddgan", {**TINY, "out_dir": str(split)}).fit(dataset=data, resume=True)

    for step in (4, 6):
        name = checkpoint.step_dir_name(step)
        a_dir, b_dir = tmp_path / "whole" / "checkpoints" / name, split / "checkpoints" / name
        assert sorted(p.name for p in a_dir.glob("*.safetensors")) == FILES
        for file in FILES:
            a, b = load_safetensors(a_dir / file), load_safetensors(b_dir / file)
            assert sorted(a) == sorted(b), file
            for key in a:
                assert torch.equal(a[key], b[key]), f"step {step} {file}:{key} differs"
    # training did move the weights (the comparison is not between two untouched initialisations)
    first = load_safetensors(
        tmp_path / "whole" / "checkpoints" / checkpoint.step_dir_name(2) / "model.safetensors"
    )
    last = load_safetensors(
        tmp_path / "whole" / "checkpoints" / checkpoint.step_dir_name(6) / "model.safetensors"
    )
    assert any(not torch.equal(first[k], last[k]) for k in first)
