"""Datasets a training config can name, and loading them in worker processes."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from train_helpers import TinyTrainer, tiny_config

from zoo_core.errors import ConfigError
from zoo_core.trainer import Trainer
from zoo_core.training.batches import as_item
from zoo_core.training.datasets import resolve_dataset


def test_image_folder_at_the_model_size_and_channels(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (20, 10), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("L", (12, 12), 0).save(tmp_path / "sub" / "b.jpg")
    data = resolve_dataset(str(tmp_path), size=8, channels=3, recursive=True)
    assert len(data) == 2
    item = as_item(data[0])
    assert sorted(item) == ["caption", "image"] and item["image"].shape == (3, 8, 8)
    torch.testing.assert_close(item["image"][:, 4, 4], torch.tensor([1.0, -1.0, -1.0]))
    gray = resolve_dataset(str(tmp_path), size=4, channels=1)  # a one-channel model reads grayscale
    assert len(gray) == 1 and gray[0][0].shape == (1, 4, 4)


def test_unknown_dataset_and_channel_mismatch_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="Unknown dataset 'digitz'.*digits"):
        resolve_dataset("digitz")
    with pytest.raises(ConfigError, match="No images"):
        resolve_dataset(str(tmp_path))
    with pytest.raises(ConfigError, match="1-channel images but the model expects 3"):
        resolve_dataset("digits", size=8, channels=3)


def test_digits_are_the_training_split_at_the_model_size():
    data = resolve_dataset("digits", size=8, channels=1)
    image, label = data[0]
    assert image.shape == (1, 8, 8) and 0 <= label < 10 and image.min() >= -1 and image.max() <= 1
    assert data.split == "train" and len(data) < 1797


def test_trainer_passes_dataset_options(tmp_path):
    trainer = TinyTrainer(
        tiny_config(tmp_path, dataset="digits", dataset_options={"split": "test", "size": 4})
    )
    data = Trainer.build_dataset(trainer)
    assert data.split == "test" and data[0][0].shape == (1, 4, 4)


@pytest.mark.slow
def test_worker_processes_give_the_same_run(tmp_path):
    a = TinyTrainer(tiny_config(tmp_path / "a", max_steps=3, checkpoint_every=0)).fit()
    b = TinyTrainer(tiny_config(tmp_path / "b", max_steps=3, checkpoint_every=0, num_workers=2)).fit()
    for (name, pa), pb in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb), name
