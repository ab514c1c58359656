"""The DDPM trainer: L_simple for each prediction type, labels for class-conditional UNets, and `zoo train ddpm`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from zoo_core.training.batches import Batch
from zoo_core.training.config import load_config

TINY_YAML = Path(__file__).resolve().parents[1] / "fixtures" / "training" / "ddpm_tiny.yaml"


def _tiny_model_config(**unet) -> dict:
    config = yaml.safe_load(TINY_YAML.read_text())["model"]
    config["unet"].update(unet)
    return config


def _model(prediction_type="epsilon", **unet):
    from zoo_ddpm.model import DDPMModel

    torch.manual_seed(0)
    return DDPMModel({**_tiny_model_config(**unet), "prediction_type": prediction_type})


def _alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """a_t = prod (1 - beta_s), betas linear 1e-4 .. 0.02 over 1000 steps (the paper's schedule), by hand."""
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    return torch.from_numpy(np.cumprod(1 - betas))[t].float().reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_loss_is_l_simple_for_each_prediction_type(prediction_type):
    from zoo_ddpm.trainer import DDPMTrainer

    model = _model(prediction_type)
    x0 = torch.rand(4, 1, 8, 8) * 2 - 1
    batch = Batch({"image": x0, "index": torch.arange(4)}, torch.arange(4), 4, (0, 3, 0))
    trainer = DDPMTrainer({"model": model.config})
    loss = trainer.loss(batch, SimpleNamespace(model=model))

    replay = Batch({"image": x0, "index": torch.arange(4)}, torch.arange(4), 4, (0, 3, 0))
    t = replay.randint(0, 1000)  # the trainer draws t first, then the noise
    eps = replay.randn_like(x0)
    a = _alpha_bar(t)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    target = {"epsilon": eps, "sample": x0, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0}[
        prediction_type
    ]
    with torch.no_grad():
        expected = ((model.unet(x_t, t) - target) ** 2).mean()
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)


def test_class_conditional_model_is_trained_on_the_labels():
    from zoo_ddpm.trainer import DDPMTrainer

    model = _model(num_class_embeds=10)
    x0 = torch.rand(4, 1, 8, 8) * 2 - 1
    labels = torch.tensor([1, 2, 3, 4])

    def batch() -> Batch:
        return Batch({"image": x0, "label": labels, "index": torch.arange(4)}, torch.arange(4), 4, (0, 0, 0))

    trainer = DDPMTrainer({"model": model.config})
    loss = trainer.loss(batch(), SimpleNamespace(model=model))
    replay = batch()
    t, eps = replay.randint(0, 1000), replay.randn_like(x0)
    a = _alpha_bar(t)
    with torch.no_grad():
        expected = (
            (model.unet(a.sqrt() * x0 + (1 - a).sqrt() * eps, t, class_labels=labels) - eps) ** 2
        ).mean()
        unlabelled = (
            (model.unet(a.sqrt() * x0 + (1 - a).sqrt() * eps, t, class_labels=labels * 0) - eps) ** 2
        ).mean()
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(expected, unlabelled)
    no_labels = Batch({"image": x0, "index": torch.arange(4)}, torch.arange(4), 4, (0, 0, 0))
    with pytest.raises(ValueError, match="class-conditional"):
        trainer.loss(no_labels, SimpleNamespace(model=model))


def test_model_config_typo_in_the_training_config_fails_early():
    from zoo_ddpm.trainer import DDPMTrainConfig

    from zoo_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model\.unet\.block_out_chanels"):
        load_config(DDPMTrainConfig, TINY_YAML, overrides=["model.unet.block_out_chanels=[8, 8]"])


@pytest.mark.slow
def test_training_on_digits_lowers_the_denoising_loss(tmp_path):
    """20 steps on 8x8 digits: the loss on a fixed set of (x0, t, eps) drops well below its initial value."""
    from zoo_ddpm.trainer import DDPMTrainConfig, DDPMTrainer, ddpm_loss

    from zoo_core.data.digits import DigitsDataset

    data = DigitsDataset(size=8, split="test")  # held out: the run trains on the train split
    g = torch.Generator().manual_seed(1)
    x0 = data.images[:64]
    t = torch.randint(0, 1000, (64,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    overrides = {"out_dir": str(tmp_path), "max_steps": 20, "batch_size": 16, "checkpoint_every": 0}
    config = load_config(
        DDPMTrainConfig, TINY_YAML, overrides={**overrides, "sample_every": 0, "ema_decay": None}
    )
    torch.manual_seed(config.seed)  # the loop builds the model under the run's seed: the same initial weights
    initial = _evaluate(DDPMTrainer(config).build_model(), x0, t, eps, ddpm_loss)
    state = DDPMTrainer(config).fit()
    final = _evaluate(state.model, x0, t, eps, ddpm_loss)
    assert final < 0.6 * initial, (initial, final)


def _evaluate(model, x0, t, eps, loss_fn) -> float:
    with torch.no_grad():
        return float(loss_fn(model.eval(), x0, t, eps))


def _zoo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = "import sys; from zoo_core.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_zoo_train_ddpm_cli_writes_checkpoints_metrics_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    first = _zoo(
        "train", "ddpm", "--config", str(TINY_YAML), "--out", str(out), "--set", "max_steps=2", cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert "trained ddpm to step 2" in first.stdout
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-0000002"
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]

    from zoo_core.cli import main

    assert (
        main(["train", "ddpm", "--config", str(TINY_YAML), "--out", str(out)]) == 2
    )  # never overwrites a run
    assert "--resume" in capsys.readouterr().err

    resumed = _zoo("train", "ddpm", "--config", str(TINY_YAML), "--out", str(out), "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr and "step 2" in resumed.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(r["loss"] > 0 for r in rows)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "latest",
        "step-0000002",
        "step-0000004",
    ]
    assert (out / "samples" / "step-0000004.png").exists()

    import zoo

    model = zoo.load(str(out / "model"))  # the exported EMA model
    assert type(model).__name__ == "DDPMModel" and model.sample_shape == (1, 8, 8)
    images = model.sample(2, steps=3, seed=0)
    assert images.shape == (2, 1, 8, 8) and torch.isfinite(images).all()


def test_zoo_train_cli_typo_fails_before_any_work(tmp_path, capsys):
    from zoo_core.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_YAML.read_text() + "batchsize: 4\n")
    assert main(["train", "ddpm", "--config", str(bad), "--out", str(tmp_path / "run")]) == 2
    assert "'batchsize' (did you mean 'batch_size'?)" in capsys.readouterr().err
    assert main(["train", "ddpm", "--config", str(TINY_YAML), "--set", "model.unet.layers_per_blok=2"]) == 2
    assert "model.unet.layers_per_blok" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
