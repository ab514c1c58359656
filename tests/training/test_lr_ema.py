"""Learning-rate schedule values and EMA maths, as functions and as the loop applies them."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from train_helpers import TinyTrainer, tiny_config

from zoo_core.training.ema import EMA, ema_decay
from zoo_core.training.lr import lr_factor


def test_warmup_is_linear_and_never_zero():
    factors = [lr_factor(s, max_steps=100, warmup_steps=4) for s in range(6)]
    assert factors == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_cosine_after_warmup():
    kw = dict(max_steps=12, warmup_steps=2, schedule="cosine")
    assert lr_factor(0, **kw) == 0.5 and lr_factor(1, **kw) == 1.0
    assert lr_factor(2, **kw) == 1.0  # the first step after warm-up is the top of the cosine
    assert lr_factor(7, **kw) == pytest.approx(0.5)  # half-way through the 10 decay steps
    assert lr_factor(4, **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)))
    assert lr_factor(12, **kw) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(12, min_ratio=0.1, **kw) == pytest.approx(0.1)
    assert lr_factor(7, min_ratio=0.1, **kw) == pytest.approx(0.1 + 0.9 * 0.5)


def test_loop_uses_the_scheduled_lr_for_each_update(tmp_path):
    config = tiny_config(
        tmp_path, max_steps=6, lr=0.01, warmup_steps=2, lr_schedule="cosine", checkpoint_every=0
    )
    TinyTrainer(config).fit()
    logged = [json.loads(line)["lr"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    expected = [0.01 * lr_factor(s, max_steps=6, warmup_steps=2, schedule="cosine") for s in range(6)]
    assert logged == pytest.approx(expected, rel=1e-12)


def test_ema_decay_warmup():
    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 10) == pytest.approx(11 / 20)
    assert ema_decay(0.999, 10**6) == 0.999
    assert ema_decay(0.9, 5, warmup=False) == 0.9


def test_ema_matches_the_closed_form():
    module = nn.Linear(3, 2)
    tracker = EMA(module, decay=0.8, warmup=False)
    expected = module.weight.detach().clone()
    for value in (1.0, -2.0, 0.5):
        with torch.no_grad():
            module.weight.fill_(value)
        tracker.update(module)
        expected = 0.8 * expected + 0.2 * value
    torch.testing.assert_close(tracker.module.weight, expected, rtol=0, atol=1e-6)
    assert tracker.num_updates == 3 and not tracker.module.weight.requires_grad
    assert not tracker.module.training


def test_ema_averages_float_buffers_and_copies_integer_ones():
    module = nn.BatchNorm1d(2)
    tracker = EMA(module, decay=0.5, warmup=False)
    with torch.no_grad():
        module.running_mean.fill_(4.0)
        module.num_batches_tracked.fill_(7)
    tracker.update(module)
    torch.testing.assert_close(tracker.module.running_mean, torch.full((2,), 2.0))
    assert int(tracker.module.num_batches_tracked) == 7


def test_ema_copy_to_and_warmup_in_use():
    module = nn.Linear(2, 2)
    tracker = EMA(module, decay=0.99)
    start = module.weight.detach().clone()
    with torch.no_grad():
        module.weight.add_(1.0)
    assert tracker.update(module) == pytest.approx(0.1)  # first update: (1 + 0) / (10 + 0)
    torch.testing.assert_close(tracker.module.weight, start + 0.9)
    target = nn.Linear(2, 2)
    tracker.copy_to(target)
    torch.testing.assert_close(target.weight, tracker.module.weight)


def test_loop_ema_tracks_the_trained_model(tmp_path):
    """The loop's EMA after step n is lerp(EMA after step n-1, weights after step n, 1 - decay(n - 1))."""
    from zoo_core.training import checkpoint
    from zoo_core.weights import load_safetensors

    TinyTrainer(tiny_config(tmp_path, max_steps=3, ema_decay=0.5, checkpoint_every=1)).fit()
    root = tmp_path / "checkpoints"
    ema = load_safetensors(root / "step-0000001" / "model.ema.safetensors")
    for step, n in ((2, 1), (3, 2)):
        w = load_safetensors(root / checkpoint.step_dir_name(step) / "model.safetensors")
        d = ema_decay(0.5, n)
        ema = {k: torch.lerp(ema[k], w[k], 1 - d) for k in ema}
    saved = load_safetensors(root / "step-0000003" / "model.ema.safetensors")
    assert sorted(saved) == ["inp.bias", "inp.weight", "out.bias", "out.weight", "steps_seen"]
    for key in saved:
        torch.testing.assert_close(saved[key], ema[key], rtol=0, atol=1e-7)
    assert checkpoint.read_state(root / "step-0000003")["ema"]["model"]["num_updates"] == 3
