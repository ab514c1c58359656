"""The StyleGAN trainer on the core loop: exact resume, the phases and their schedules, ADA wiring, EMA ramp-up,
style mixing, class labels, `zoo train stylegan`, and a short run in which D separates real from fake."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from zoo_stylegan.model import StyleGANModel
from zoo_stylegan.trainer import StyleGANTrainConfig, StyleGANTrainer

from zoo_core.training import checkpoint
from zoo_core.training.batches import Batch
from zoo_core.weights import load_safetensors

#: An 8x8 conditional generator small enough for a step in ~0.1 s on one thread.
TINY_MODEL = {
    "z_dim": 16,
    "w_dim": 16,
    "c_dim": 10,
    "img_resolution": 8,
    "img_channels": 1,
    "mapping": {"num_layers": 2},
    "synthesis": {"channel_base": 64, "channel_max": 16},
}


def _config(out: Path, **fields) -> StyleGANTrainConfig:
    base = {
        "out_dir": str(out),
        "model": TINY_MODEL,
        "max_steps": 6,
        "batch_size": 8,
        "checkpoint_every": 3,
        "keep_checkpoints": 10,
        "log_every": 1,
        "progress": False,
        "save_final": False,
    }
    return StyleGANTrainConfig.parse({**base, **fields})


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# -- exact resume ------------------------------------------------------------------------------------------------
EVERYTHING_ON = {  # every phase and every piece of state that must survive a restart
    "augment": "ada",
    "ada_kimg": 0.05,
    "ada_interval": 2,
    "pl_weight": 2.0,
    "pl_interval": 2,
    "r1_interval": 2,
    "r1_gamma": 1.0,
    "style_mixing_prob": 0.5,
    "ema_kimg": 0.1,
}


@pytest.mark.slow
def test_interrupted_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    StyleGANTrainer(_config(tmp_path / "a", **EVERYTHING_ON)).fit()

    class Crashing(StyleGANTrainer):
        def step(self, batch, state):
            if state.step == 4:
                raise KeyboardInterrupt
            return super().step(batch, state)

    with pytest.raises(KeyboardInterrupt):
        Crashing(_config(tmp_path / "b", **EVERYTHING_ON)).fit()
    assert checkpoint.resolve_latest(tmp_path / "b" / "checkpoints").name == "step-0000003"
    StyleGANTrainer(_config(tmp_path / "b", **EVERYTHING_ON)).fit(resume=True)

    a, b = (tmp_path / run / "checkpoints" / "step-0000006" for run in "ab")
    names = sorted(p.name for p in a.glob("*.safetensors"))
    assert names == [
        "D.safetensors",
        "augment.safetensors",
        "model.ema.safetensors",
        "model.safetensors",
        "optimizers.safetensors",
    ]
    for name in names:
        ta, tb = load_safetensors(a / name), load_safetensors(b / name)
        assert ta.keys() == tb.keys()
        assert all(torch.equal(ta[k], tb[k]) for k in ta), name
    state_a, state_b = checkpoint.read_state(a), checkpoint.read_state(b)
    assert state_a["trainer_state"] == state_b["trainer_state"]
    assert state_a["trainer_state"]["pl_mean"] > 0 and state_a["trainer_state"]["ada"]["steps"] == 6
    assert float(load_safetensors(a / "augment.safetensors")["p"]) > 0  # the controller moved p
    assert [r["G_loss"] for r in _rows(tmp_path / "a")] == [r["G_loss"] for r in _rows(tmp_path / "b")]


# -- the phases and their schedules ------------------------------------------------------------------------------
def test_lazy_regularisers_run_on_their_interval_with_rescaled_adam(tmp_path):
    config = _config(tmp_path, max_steps=5, pl_weight=1.0, pl_interval=4, r1_interval=2, r1_gamma=0.5,
                     augment="none", lr=0.002, lr_d=0.001, checkpoint_every=0)  # fmt: skip
    state = StyleGANTrainer(config).fit()
    rows = _rows(tmp_path)
    assert [("Dr1_loss" in r, "Gpl_loss" in r) for r in rows] == [
        (True, True), (False, False), (True, False), (False, False), (True, True)  # steps 0..4
    ]  # fmt: skip
    g, d = state.optimizers["G"].param_groups[0], state.optimizers["D"].param_groups[0]
    assert g["lr"] == pytest.approx(0.002 * 4 / 5) and g["betas"] == pytest.approx((0.0, 0.99**0.8))
    assert d["lr"] == pytest.approx(0.001 * 2 / 3) and d["betas"] == pytest.approx((0.0, 0.99 ** (2 / 3)))
    assert "augment" not in state.modules and "augment_p" not in rows[0]
    # the logged R1 is the plain penalty: gamma / 2 * interval times it is the loss
    assert rows[0]["Dr1_loss"] == pytest.approx(rows[0]["Dr1_r1"] * 0.5 / 2 * 2, rel=1e-5)


def test_without_path_length_g_keeps_its_learning_rate_and_r1_gamma_defaults_to_the_official_auto_value(
    tmp_path,
):
    config = _config(tmp_path, max_steps=1, augment="none", checkpoint_every=0, batch_size=16)
    assert config.gamma() == pytest.approx(0.0002 * 8**2 / 16)
    state = StyleGANTrainer(config).fit()
    assert state.optimizers["G"].param_groups[0]["lr"] == pytest.approx(0.0025)
    assert state.optimizers["D"].param_groups[0]["lr"] == pytest.approx(0.0025 * 16 / 17)


def test_g_ema_follows_the_official_kimg_schedule_with_ramp_up(tmp_path):
    trainer = StyleGANTrainer(_config(tmp_path, batch_size=32, ema_kimg=10.0, ema_rampup=0.05))
    assert trainer.ema_beta(0) == 0.0  # the first update copies G
    assert trainer.ema_beta(100) == pytest.approx(0.5 ** (32 / (100 * 32 * 0.05)))  # ramp-up: 160 images
    assert trainer.ema_beta(10_000) == pytest.approx(0.5 ** (32 / 10_000))  # the 10 kimg half-life
    no_ramp = StyleGANTrainer(_config(tmp_path, batch_size=32, ema_kimg=10.0, ema_rampup=None))
    assert no_ramp.ema_beta(0) == pytest.approx(0.5 ** (32 / 10_000))

    state = StyleGANTrainer(_config(tmp_path, max_steps=1, augment="none", checkpoint_every=0)).fit()
    for (name, ema), (_, live) in zip(
        state.ema_model().named_parameters(), state.model.named_parameters(), strict=True
    ):
        assert torch.equal(ema, live), name  # beta = 0 at step 0


# -- ADA wiring --------------------------------------------------------------------------------------------------
class FewDigits(torch.utils.data.Dataset):
    """Eight real digits: D memorises them within a few steps, so r_t = E[sign D(real)] climbs above 0.6."""

    def __init__(self) -> None:
        from zoo_core.data.digits import DigitsDataset

        data = DigitsDataset(size=8, split="train")
        self.images, self.labels = data.images[:8], data.labels[:8]

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])


def test_ada_p_rises_when_d_overfits_and_follows_the_controller_from_the_logged_signs(tmp_path):
    config = _config(tmp_path, max_steps=24, augment="ada", ada_interval=2, ada_kimg=0.16, ada_target=0.6,
                     r1_gamma=0.0, lr_d=0.01, style_mixing_prob=0.0, checkpoint_every=0)  # fmt: skip
    StyleGANTrainer(config).fit(dataset=FewDigits())
    rows = _rows(tmp_path)
    # replay the controller: every 2 steps p += sign(r_t - 0.6) * 8 * 2 / 160, floored at 0
    p = torch.tensor(0.0)
    for i, row in enumerate(rows):
        if i % 2 == 1:
            rt = (rows[i - 1]["D_real_sign"] + row["D_real_sign"]) / 2
            p = (p + math.copysign(1, rt - 0.6) * 0.1 * (rt != 0.6)).clamp(min=0)
        assert row["augment_p"] == pytest.approx(float(p), abs=1e-6), i
    assert rows[-1]["augment_p"] >= 0.3  # D overfits eight images: p rose
    assert max(r["D_real_sign"] for r in rows) > 0.6


# -- generator pieces: style mixing and labels -------------------------------------------------------------------
def _batch(n: int, labels: torch.Tensor | None = None, step: int = 0) -> Batch:
    data = {"image": torch.zeros(n, 1, 8, 8), "index": torch.arange(n)}
    if labels is not None:
        data["label"] = labels
    return Batch(data, torch.arange(n), n, (0, step, 0))


def test_style_mixing_switches_each_image_to_a_second_latent_at_its_own_cutoff(tmp_path):
    torch.manual_seed(0)
    G = StyleGANModel(TINY_MODEL).eval()
    c = torch.nn.functional.one_hot(torch.arange(16) % 10, 10).float()
    mixing = StyleGANTrainer(_config(tmp_path, style_mixing_prob=1.0))
    _, ws = mixing.run_g(_batch(16), G, c)
    cutoffs = []
    for row in ws:
        change = [j for j in range(1, ws.shape[1]) if not torch.equal(row[j], row[j - 1])]
        assert len(change) == 1  # two blocks of identical ws: z1's then z2's
        cutoffs.append(change[0])
    assert len(set(cutoffs)) > 1  # per-image cutoffs
    plain = StyleGANTrainer(_config(tmp_path, style_mixing_prob=0.0))
    _, ws = plain.run_g(_batch(16), G, c)
    assert all(torch.equal(ws[:, j], ws[:, 0]) for j in range(ws.shape[1]))
    # the same step draws the same images, and the draws do not depend on how the batch is split
    full, _ = mixing.run_g(_batch(16), G, c)
    halves = _batch(16).split(2)
    again = torch.cat([mixing.run_g(h, G, c[h.positions])[0] for h in halves])
    torch.testing.assert_close(full, again, rtol=1e-5, atol=1e-6)


def test_fake_images_take_random_labels_and_reals_their_dataset_labels(tmp_path):
    trainer = StyleGANTrainer(_config(tmp_path))
    labels = torch.tensor([3, 1, 4, 1])
    assert torch.equal(trainer._real_c(_batch(4, labels)).argmax(1), labels)
    fake = trainer._fake_c(_batch(64)).argmax(1)
    assert set(fake.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="labels"):
        trainer._real_c(_batch(4))


# -- zoo train stylegan and learning -----------------------------------------------------------------------------
@pytest.mark.slow
def test_zoo_train_stylegan_cli_trains_d_to_separate_real_from_fake_and_exports_g_ema(tmp_path):
    from zoo_core.cli import main

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"model": TINY_MODEL, "max_steps": 40, "batch_size": 16, "augment": "none",
                                   "log_every": 5, "progress": False, "checkpoint_every": 0,
                                   "sample_every": 40, "sample_n": 10, "r1_gamma": 0.01, "lr": 0.002,
                                   "lr_d": 0.01}))  # fmt: skip
    out = tmp_path / "run"
    assert main(["train", "stylegan", "--config", str(cfg), "--out", str(out)]) == 0
    rows = _rows(out)
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30, 35, 40]
    # D learns to tell them apart: its logistic loss falls well below chance (2 log 2, where it starts) and the
    # logits separate (measured: loss ~1.1, gap ~1.2 over steps 25-40)
    late = rows[-4:]
    loss = sum(r["D_loss"] for r in late) / 4
    gap = sum(r["D_real_logit"] - r["D_fake_logit"] for r in late) / 4
    assert rows[0]["D_loss"] > 2 * math.log(2) - 0.05 and loss < 2 * math.log(2) - 0.15, rows
    assert gap > 0.5, rows
    assert sum(r["G_loss"] for r in late) / 4 > math.log(2)  # so G's non-saturating loss rises
    assert (out / "samples" / "step-0000040.png").exists()

    import zoo

    model = zoo.load(str(out / "model"))
    assert isinstance(model, StyleGANModel) and model.config.c_dim == 10
    images = model.sample(4, seed=0, labels=[0, 1, 2, 3])
    assert images.shape == (4, 1, 8, 8) and torch.isfinite(images).all()
    assert torch.equal(images, model.sample(4, seed=0, labels=[0, 1, 2, 3]))
