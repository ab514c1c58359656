from __future__ import annotations

import json
import random

import pytest
import torch

from zoo_core.data.shapes import PALETTE, ShapesDataset
from zoo_core.metrics import shapes_eval
from zoo_core.metrics.shapes_eval import evaluate_shapes_samples, read_image


@pytest.fixture(scope="module")
def shapes32():
    return ShapesDataset(length=300, size=32, seed=11).as_tensors()


def test_ground_truth_images_score_perfectly(shapes32):
    images, captions, _ = shapes32
    result = evaluate_shapes_samples(images, captions)
    assert result["all_accuracy"] == 1.0
    assert result["shape_accuracy"] == result["color_accuracy"] == result["background_accuracy"] == 1.0
    assert result["mean_shape_iou"] > 0.95 and result["unreadable"] == 0
    assert sum(result["histogram"]["shape"].values()) == 300


@pytest.mark.parametrize("size", [16, 64])
def test_ground_truth_scores_perfectly_at_other_sizes(size):
    images, _, attributes = ShapesDataset(length=60, size=size, seed=2).as_tensors()
    assert evaluate_shapes_samples(images, attributes)["all_accuracy"] == 1.0


def test_shuffled_captions_score_at_chance(shapes32):
    images, captions, _ = shapes32
    shuffled = list(captions)
    random.Random(0).shuffle(shuffled)
    result = evaluate_shapes_samples(images, shuffled)
    assert result["shape_accuracy"] < 0.35 and result["color_accuracy"] < 0.35
    assert result["all_accuracy"] < 0.05


def test_noisy_blurred_images_are_still_read(shapes32):
    images, captions, _ = shapes32
    kernel = torch.tensor([0.25, 0.5, 0.25])
    kernel = (kernel[:, None] * kernel[None]).expand(3, 1, 3, 3)
    blurred = torch.nn.functional.conv2d(
        torch.nn.functional.pad(images, (1,) * 4, mode="replicate"), kernel, groups=3
    )
    noisy = (blurred + 0.2 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))).clamp(
        -1, 1
    )
    assert evaluate_shapes_samples(noisy, captions)["all_accuracy"] > 0.97


def test_a_recoloured_shape_is_read_with_its_new_colour():
    ds = ShapesDataset(length=40, size=32, seed=4)
    for i in range(40):
        image, _, attrs = ds[i]
        if attrs["color"] != "red" and attrs["background"] != "red":
            break
    fg = torch.tensor(PALETTE[attrs["color"]]) / 127.5 - 1
    red = torch.tensor(PALETTE["red"]) / 127.5 - 1
    is_fg = (image - fg[:, None, None]).abs().amax(0) < 1e-4
    image = torch.where(is_fg, red[:, None, None], image)
    reading = read_image(image.numpy())
    assert (
        reading.color == "red"
        and reading.shape == attrs["shape"]
        and reading.background == attrs["background"]
    )


def test_a_blank_image_has_no_shape():
    blank = torch.full((1, 3, 32, 32), -1.0)
    result = evaluate_shapes_samples(blank, ["a red circle on a black background"])
    assert (
        result["unreadable"] == 1 and result["shape_accuracy"] == 0.0 and result["background_accuracy"] == 1.0
    )


def test_mismatched_lengths_are_rejected(shapes32):
    images, captions, _ = shapes32
    with pytest.raises(ValueError, match="one caption per image"):
        evaluate_shapes_samples(images[:3], captions[:2])


@pytest.fixture
def toys(registry):
    from metric_toys import ToyPlugin

    registry.register_plugin(ToyPlugin(), name="metric-toys")
    yield
    registry.unregister_plugin("metric-toys")


def test_cli_scores_a_model_that_draws_its_prompts(toys, tmp_path):
    out = tmp_path / "oracle.json"
    assert shapes_eval.main(["toy-shapes", "--n", "60", "--batch-size", "25", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["all_accuracy"] == 1.0 and result["n"] == 60 and result["nfe_per_image"] == 1.0


def test_cli_catches_a_model_that_ignores_colour(toys, tmp_path):
    out = tmp_path / "colorblind.json"
    assert shapes_eval.main(["toy-shapes-colorblind", "--n", "60", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["shape_accuracy"] == 1.0 and result["color_accuracy"] < 0.35
    assert result["histogram"]["color"]["white"] == 60


def test_cli_on_the_dataset_itself(tmp_path, capsys):
    assert shapes_eval.main(["--real", "--n", "50", "--size", "48", "--shapes", "circle,square"]) == 0
    printed = capsys.readouterr().out
    assert "all_accuracy         1.0000" in printed and '"triangle": 0' in printed


def test_hearts_are_recognised_among_all_shapes_and_old_shapes_still_read():
    from zoo_core.data.shapes import ALL_SHAPES

    hearts, captions, _ = ShapesDataset(length=60, size=32, seed=3, shapes=["heart"]).as_tensors()
    result = evaluate_shapes_samples(hearts, captions)  # a caption asks for a heart: all shapes are candidates
    assert result["shape_accuracy"] == 1.0 and result["all_accuracy"] == 1.0
    others, captions, _ = ShapesDataset(length=300, size=32, seed=11).as_tensors()
    assert evaluate_shapes_samples(others, captions, shapes=ALL_SHAPES)["shape_accuracy"] == 1.0
    # with the default candidates a heart is never read as one
    assert all(read_image(h.numpy()).shape != "heart" for h in hearts[:10])
