"""The loop: grad accumulation, metrics.jsonl, sample grids, mixed precision, and a two-optimizer (GAN) trainer."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from train_helpers import SyntheticImages, TinyNet, TinyTrainer, tiny_config

from zoo_core.trainer import Trainer, TrainParts
from zoo_core.training import checkpoint
from zoo_core.training.batches import Batch, SampleOrder
from zoo_core.training.config import TrainConfig
from zoo_core.weights import load_safetensors


def _weights(state) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.model.named_parameters()}


def test_grad_accumulation_matches_the_full_batch(tmp_path):
    full = TinyTrainer(tiny_config(tmp_path / "a", max_steps=3, grad_accum=1, checkpoint_every=0)).fit()
    accum = TinyTrainer(tiny_config(tmp_path / "b", max_steps=3, grad_accum=2, checkpoint_every=0)).fit()
    four = TinyTrainer(tiny_config(tmp_path / "c", max_steps=3, grad_accum=4, checkpoint_every=0)).fit()
    a, b, c = _weights(full), _weights(accum), _weights(four)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=2e-6)
        torch.testing.assert_close(c[key], a[key], rtol=0, atol=2e-6)
    assert float(accum.model.steps_seen) == 2 * float(full.model.steps_seen)  # really two forwards per step
    # Adam hides a wrongly scaled gradient, the logged gradient norm and loss do not
    rows = {
        name: [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        for name in "ab"
    }
    for ra, rb in zip(rows["a"], rows["b"], strict=True):
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], rel=1e-5)
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5)
    assert not torch.equal(a["inp.weight"], TinyNet().inp.weight)  # and training did move the weights


def test_batch_random_draws_do_not_depend_on_the_split():
    data = {"image": torch.zeros(8, 1, 2, 2), "index": torch.arange(8)}
    whole = Batch(data, torch.arange(8), 8, (0, 5, 0))
    noise = whole.randn(3)
    ints = whole.randint(0, 1000)
    halves = whole.split(2)
    torch.testing.assert_close(torch.cat([h.randn(3) for h in halves]), noise, rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([h.randint(0, 1000) for h in halves]), ints, rtol=0, atol=0)
    # the second half of a two-process run (positions 4..7 of the global batch) draws the same rows
    second = Batch({k: v[4:] for k, v in data.items()}, torch.arange(4, 8), 8, (0, 5, 0))
    torch.testing.assert_close(second.randn(3), noise[4:], rtol=0, atol=0)
    # another step or another phase is another stream
    assert not torch.equal(Batch(data, torch.arange(8), 8, (0, 6, 0)).randn(3), noise)
    assert not torch.equal(whole.for_phase(1).randn(3), noise)


def test_sample_order_is_a_seeded_permutation_per_epoch():
    order = SampleOrder(10, seed=3)
    first, second = order.indices(0, 10), order.indices(10, 20)
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    assert order.indices(7, 13) == first[7:] + second[:3]  # batches straddle epochs without dropping samples
    assert SampleOrder(10, seed=3).indices(0, 10) == first and SampleOrder(10, seed=4).indices(0, 10) != first


def test_metrics_jsonl_rows(tmp_path):
    TinyTrainer(tiny_config(tmp_path, max_steps=5, log_every=2, checkpoint_every=0, lr=0.02)).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 5]  # every log_every steps and the last one
    assert [r["samples"] for r in rows] == [16, 32, 40]
    assert rows[-1]["epoch"] == pytest.approx(40 / 48)
    for r in rows:
        assert set(r) == {
            "step",
            "epoch",
            "samples",
            "lr",
            "loss",
            "pred_std",
            "grad_norm",
            "steps_per_s",
            "elapsed_s",
        }
        assert r["lr"] == 0.02 and r["loss"] > 0 and r["grad_norm"] > 0 and r["steps_per_s"] > 0


def test_first_logged_loss_is_the_loss_of_the_first_batch(tmp_path):
    """Recompute step 1 by hand: seeded init, the seeded data order, the batch's noise stream."""
    config = tiny_config(tmp_path, max_steps=1, log_every=1, checkpoint_every=0, seed=7)
    TinyTrainer(config).fit()
    logged = json.loads((tmp_path / "metrics.jsonl").read_text())["loss"]

    torch.manual_seed(7)
    model = TinyNet()
    data = SyntheticImages()
    index = SampleOrder(len(data), 7).indices(0, 8)
    x = torch.stack([data[i][0] for i in index])
    batch = Batch({"image": x, "index": torch.tensor(index)}, torch.arange(8), 8, (7, 0, 0))
    with torch.no_grad():
        loss = F.mse_loss(model(x + 0.5 * batch.randn_like(x)), x)
    assert logged == pytest.approx(float(loss), rel=1e-6)


def test_sample_grids_are_written_and_do_not_change_training(tmp_path):
    plain = TinyTrainer(tiny_config(tmp_path / "a", max_steps=4, dropout=0.2, checkpoint_every=0)).fit()
    shown = TinyTrainer(
        tiny_config(tmp_path / "b", max_steps=4, dropout=0.2, checkpoint_every=0, sample_every=2, sample_n=4)
    ).fit()
    assert sorted(p.name for p in (tmp_path / "b" / "samples").iterdir()) == [
        "step-0000002.png",
        "step-0000004.png",
    ]
    from PIL import Image

    assert Image.open(tmp_path / "b" / "samples" / "step-0000002.png").size == (22, 22)  # 2 x 2 grid of 8 px
    a, b = _weights(plain), _weights(shown)
    for key in a:
        assert torch.equal(a[key], b[key])
    assert shown.model.training  # sampling put the model back in training mode


def test_bf16_autocast_trains_close_to_fp32(tmp_path):
    fp32 = TinyTrainer(tiny_config(tmp_path / "a", max_steps=3, checkpoint_every=0)).fit()
    bf16 = TinyTrainer(
        tiny_config(tmp_path / "b", max_steps=3, checkpoint_every=0, mixed_precision="bf16")
    ).fit()
    a, b = _weights(fp32), _weights(bf16)
    assert all(v.dtype == torch.float32 for v in b.values())  # weights stay fp32 under autocast
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert 0 < diff < 0.05


def test_export_writes_the_ema_model(tmp_path):
    from zoo_core.model import Model

    class Saved(TinyTrainer):
        def export(self, state, directory):
            directory.mkdir(parents=True)
            torch.save(state.ema_model().state_dict(), directory / "ema.pt")
            return directory

    state = Saved(tiny_config(tmp_path, max_steps=2, save_final=True)).fit()
    saved = torch.load(tmp_path / "model" / "ema.pt", weights_only=True)
    for key, value in state.ema_model().state_dict().items():
        assert torch.equal(saved[key], value)
    assert not isinstance(state.model, Model)


# -- a GAN-shaped trainer: two optimizers, D then G each step, R1 on every other step, EMA of G only -------------
class ToyGANConfig(TrainConfig):
    r1_every: int = 2
    r1_gamma: float = 1.0


class ToyGAN(Trainer):
    name = "toy-gan"
    config_class = ToyGANConfig
    seen_grad_flags: list[tuple[str, bool, bool]] = []

    def build_model(self):  # the generator
        return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Unflatten(1, (1, 4, 4)))

    def build_dataset(self):
        return SyntheticImages(size=4)

    def build(self, model, config):
        D = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.SiLU(), nn.Linear(8, 1))
        return TrainParts(
            modules={"model": model, "D": D},
            optimizers={
                "G": self.adamw(model.parameters()),
                "D": self.adamw(D.parameters(), lr=2 * config.lr),
            },
            ema=["model"],
        )

    def _flags(self, phase, state):
        g = any(p.requires_grad for p in state.model.parameters())
        d = any(p.requires_grad for p in state.modules["D"].parameters())
        self.seen_grad_flags.append((phase, g, d))

    def d_loss(self, batch, state):
        self._flags("D", state)
        fake = state.model(batch.randn(4))
        real = batch.images
        loss = F.softplus(state.modules["D"](fake)).mean() + F.softplus(-state.modules["D"](real)).mean()
        return loss

    def r1(self, batch, state):
        self._flags("R1", state)
        real = batch.images.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(state.modules["D"](real).sum(), real, create_graph=True)
        return self.config.r1_gamma / 2 * grad.square().sum([1, 2, 3]).mean() * self.config.r1_every

    def g_loss(self, batch, state):
        self._flags("G", state)
        return F.softplus(-state.modules["D"](state.model(batch.randn(4)))).mean()

    def step(self, batch, state):
        metrics = state.optimize(batch, self.d_loss, "D", prefix="D_")
        if state.step % self.config.r1_every == 0:
            metrics.update(state.optimize(batch, self.r1, "D", prefix="R1_"))
        metrics.update(state.optimize(batch, self.g_loss, "G", prefix="G_"))
        return metrics


def _gan_config(path, **kw):
    base = dict(out_dir=str(path), max_steps=4, batch_size=8, grad_accum=2, lr=1e-2, ema_decay=0.9,
                checkpoint_every=2, log_every=1, progress=False, save_final=False)  # fmt: skip
    return ToyGANConfig.parse({**base, **kw})


def test_two_optimizer_trainer_freezes_the_other_module_and_checkpoints_both(tmp_path):
    ToyGAN.seen_grad_flags = []
    state = ToyGAN(_gan_config(tmp_path)).fit()
    flags = ToyGAN.seen_grad_flags
    # per step: D (2 micro-batches), R1 on even steps, G; G trains only in its phase and D only in its own
    assert [f[0] for f in flags[:8]] == ["D", "D", "R1", "R1", "G", "G", "D", "D"]
    assert all((g, d) == ((True, False) if ph == "G" else (False, True)) for ph, g, d in flags)
    assert all(p.requires_grad for p in state.modules["D"].parameters())  # restored after each phase
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"D_loss", "G_loss", "lr_G", "lr_D", "D_grad_norm", "G_grad_norm"} <= set(rows[0])
    assert "R1_loss" in rows[0] and "R1_loss" not in rows[1]
    assert rows[0]["lr_D"] == 2 * rows[0]["lr_G"]
    ck = tmp_path / "checkpoints" / "step-0000004"
    assert sorted(p.name for p in ck.glob("*.safetensors")) == [
        "D.safetensors",
        "model.ema.safetensors",
        "model.safetensors",
        "optimizers.safetensors",
    ]
    assert {k.split("/")[0] for k in load_safetensors(ck / "optimizers.safetensors")} == {"G", "D"}


def test_two_optimizer_trainer_resumes_exactly(tmp_path):
    ToyGAN(_gan_config(tmp_path / "a", max_steps=4)).fit()

    class Crashing(ToyGAN):
        def step(self, batch, state):
            if state.step == 3:
                raise KeyboardInterrupt
            return super().step(batch, state)

    with pytest.raises(KeyboardInterrupt):
        Crashing(_gan_config(tmp_path / "b")).fit()
    ToyGAN(_gan_config(tmp_path / "b")).fit(resume=True)
    for name in ("D.safetensors", "model.ema.safetensors", "model.safetensors", "optimizers.safetensors"):
        a = load_safetensors(tmp_path / "a" / "checkpoints" / "step-0000004" / name)
        b = load_safetensors(tmp_path / "b" / "checkpoints" / "step-0000004" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert checkpoint.read_state(tmp_path / "b" / "checkpoints" / "step-0000004")["step"] == 4
