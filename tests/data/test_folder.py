from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from zoo_core.data import get_dataset
from zoo_core.data.folder import ImageFolderDataset
from zoo_core.errors import UnknownNameError


def _stripes(width: int, height: int) -> Image.Image:
    """Vertical thirds: red | green | blue."""
    a = np.zeros((height, width, 3), dtype=np.uint8)
    a[:, : width // 3, 0] = 255
    a[:, width // 3 : 2 * width // 3, 1] = 255
    a[:, 2 * width // 3 :, 2] = 255
    return Image.fromarray(a)


@pytest.fixture
def folder(tmp_path):
    _stripes(90, 30).save(tmp_path / "a_wide.png")
    Image.new("RGB", (20, 50), (255, 255, 255)).save(tmp_path / "b_tall.jpg")
    Image.new("L", (16, 16), 0).save(tmp_path / "c_gray.png")
    (tmp_path / "a_wide.txt").write_text("a photo of sks stripes\n")
    (tmp_path / "notes.md").write_text("not an image")
    return tmp_path


def test_images_are_resized_center_cropped_and_scaled(folder):
    ds = ImageFolderDataset(folder, size=24, caption="default")
    assert len(ds) == 3 and [p.name for p in ds.paths] == ["a_wide.png", "b_tall.jpg", "c_gray.png"]
    wide, caption = ds[0]
    assert wide.shape == (3, 24, 24) and caption == "a photo of sks stripes"
    # the centre crop of red|green|blue is the green third
    assert wide[1, :, 4:20].min() > 0.9 and wide[0, :, 4:20].max() < -0.9
    tall, caption = ds[1]
    assert caption == "default" and tall.min() > 0.95
    gray, _ = ds[2]
    assert torch.equal(gray, torch.full((3, 24, 24), -1.0))
    images, captions = ds.as_tensors()
    assert images.shape == (3, 3, 24, 24) and captions[1] == "default"


def test_grayscale_mode_gives_one_channel(folder):
    image, _ = ImageFolderDataset(folder, size=8, mode="L")[1]
    assert image.shape == (1, 8, 8)


def test_empty_or_missing_folders_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No images"):
        ImageFolderDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolderDataset(tmp_path / "nope")


def test_registry_finds_names_and_folders(folder):
    assert isinstance(get_dataset(folder, size=8), ImageFolderDataset)
    shapes = get_dataset("shapes", length=3, size=32)
    assert len(shapes) == 3
    with pytest.raises(UnknownNameError, match="Did you mean 'shapes'"):
        get_dataset("shape")


def test_registry_builds_digits():
    pytest.importorskip("sklearn")
    ds = get_dataset("digits", size=8, split="test")
    assert ds.images.shape[1:] == (1, 8, 8) and len(ds) < 1797
