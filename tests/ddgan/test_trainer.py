"""DDGAN training on the core loop: D separates real from fake pairs, R1 is lazy and finite, the model exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from zoo_ddgan.config import DDGANConfig
from zoo_ddgan.model import DDGANModel
from zoo_ddgan.schedule import DiffusionCoefficients
from zoo_ddgan.trainer import DDGANTrainConfig, DDGANTrainer

import zoo
from zoo_core.training.api import get_trainer_class, make_trainer

TINY_MODEL = {
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
}


class Blobs(Dataset):
    """Smooth random 1 x 8 x 8 images in [-1, 1] (fixed by the seed)."""

    def __init__(self, n: int = 64) -> None:
        low = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
        self.images = F.interpolate(low, size=(8, 8), mode="bilinear", align_corners=False)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def tiny_run(out_dir: Path, **options: object) -> dict[str, object]:
    """A trainer config for TINY_MODEL and a tiny D, batch 8, logged every step, no checkpoints."""
    return {
        "out_dir": str(out_dir),
        "batch_size": 8,
        "progress": False,
        "log_every": 1,
        "checkpoint_every": 0,
        "model": TINY_MODEL,
        "ngf": 4,
        "t_emb_dim": 8,
        **options,
    }


def test_config_defaults_are_the_official_cifar10_settings():
    c = DDGANTrainConfig()
    assert (c.lr, c.lr_d, c.adam_betas, c.r1_gamma, c.lazy_reg, c.ema_decay) == (
        1.6e-4, 1.25e-4, (0.5, 0.9), 0.02, 15, 0.9999
    )  # fmt: skip
    assert c.lr_schedule == "cosine" and c.grad_clip is None
    assert get_trainer_class("ddgan") is DDGANTrainer


@pytest.mark.slow
def test_short_training_separates_real_and_fake_and_exports(tmp_path: Path):
    config = tiny_run(
        tmp_path,
        max_steps=24,
        lr=1e-4,
        lr_d=5e-3,
        lazy_reg=4,
        r1_gamma=0.05,
        ema_decay=0.9,
    )
    data = Blobs()
    state = make_trainer("ddgan", config).fit(dataset=data)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 25))
    # lazy R1: computed on steps 0, 4, 8, ... (logged as 1, 5, 9, ...), finite, and positive once D is not flat
    r1_rows = [r["step"] for r in rows if "D_r1" in r]
    assert r1_rows == [1, 5, 9, 13, 17, 21]
    assert all(torch.isfinite(torch.tensor(r["D_r1"])) for r in rows if "D_r1" in r)
    assert rows[-4]["D_r1"] > 0
    assert {"D_loss", "G_loss", "lr_G", "lr_D", "D_real_logit", "D_fake_logit"} <= set(rows[0])
    assert rows[-1]["lr_D"] < 5e-3  # cosine decay

    # D now scores real pairs above the generator's pairs, on data it did not see in this order
    model, D = state.model.eval(), state.modules["D"].eval()
    coefficients = DiffusionCoefficients.from_config(model.config)
    gen = torch.Generator().manual_seed(1)
    x0 = data.images[:32]
    t = torch.randint(0, 2, (32,), generator=gen)
    with torch.no_grad():
        x_t, x_next = coefficients.q_sample_pairs(
            x0, t, torch.randn(x0.shape, generator=gen), torch.randn(x0.shape, generator=gen)
        )
        trainer = DDGANTrainer(config)
        fake, _ = trainer._fake(_FixedBatch(gen), model, t, x_next)
        real_logit, fake_logit = D(x_t, t, x_next).mean(), D(fake, t, x_next).mean()
    assert real_logit > fake_logit + 0.1

    exported = zoo.load(str(tmp_path / "model"))
    assert isinstance(exported, DDGANModel)
    samples = exported.sample(2, seed=0)
    assert samples.shape == (2, 1, 8, 8) and samples.abs().max() <= 1


def test_reconstruction_term_adds_weighted_x0_error_to_the_generator_loss(tmp_path: Path):
    """rec_weight w: G_loss = adversarial + w * mean (x0' - x0)^2, both logged; w = 0 logs neither (the paper)."""
    config = tiny_run(tmp_path, max_steps=2, save_final=False, rec_weight=0.5)
    make_trainer("ddgan", config).fit(dataset=Blobs())
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        assert row["G_rec"] > 0
        assert row["G_loss"] == pytest.approx(row["G_adversarial"] + 0.5 * row["G_rec"], rel=1e-5)

    plain = tmp_path / "plain"
    make_trainer("ddgan", {**config, "out_dir": str(plain), "rec_weight": 0.0}).fit(dataset=Blobs())
    row = json.loads((plain / "metrics.jsonl").read_text().splitlines()[0])
    assert "G_rec" not in row and "G_adversarial" not in row


def test_min_snr_weighting_of_the_reconstruction_term():
    """rec_snr_gamma g: sample i's squared error is weighted by min(abar / (1 - abar), g) of its input x_{t+1}."""
    model = DDGANModel(DDGANConfig(**{**TINY_MODEL, "num_timesteps": 4}))
    x0 = torch.zeros(4, 1, 8, 8)
    x0_pred = torch.arange(1.0, 5.0).reshape(4, 1, 1, 1).expand(4, 1, 8, 8)  # squared errors 1, 4, 9, 16
    t = torch.tensor([0, 1, 2, 3])
    abar = model.schedule.alphas_cumprod
    snr = abar / (1 - abar)
    assert snr[0] > 0.5 > snr[1] > snr[2] > snr[3]  # T = 4 spans high to very low signal
    weighted = DDGANTrainer(DDGANTrainConfig(rec_snr_gamma=0.5)).reconstruction(model, t, x0_pred, x0)
    expected = (torch.tensor([1.0, 4.0, 9.0, 16.0]) * snr.clamp(max=0.5)).mean()
    assert weighted == pytest.approx(float(expected), rel=1e-6)
    plain = DDGANTrainer(DDGANTrainConfig()).reconstruction(model, t, x0_pred, x0)
    assert plain == pytest.approx(7.5)
    with pytest.raises(ValueError, match="rec_snr_gamma"):
        DDGANTrainConfig(rec_snr_gamma=0.0)


class _FixedBatch:
    """The draws ``DDGANTrainer._fake`` asks a batch for, from a plain generator."""

    def __init__(self, gen: torch.Generator) -> None:
        self.gen = gen

    def randn(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.randn((32, *shape), generator=self.gen, dtype=dtype or torch.float32)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=self.gen, dtype=x.dtype)
