from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from zoo_core.data.shapes import (
    ALL_SHAPES,
    BACKGROUNDS,
    COLORS,
    EXTENT,
    NEW_SHAPES,
    PALETTE,
    SHAPES,
    UNIT_AREA,
    ShapesDataset,
    ShapesStream,
    coverage,
    make_caption,
    parse_caption,
)


def _rgb(name: str) -> torch.Tensor:
    return torch.tensor(PALETTE[name], dtype=torch.float32) / 127.5 - 1


def test_items_are_images_captions_and_attributes():
    ds = ShapesDataset(length=50)
    assert len(ds) == 50
    for i in range(50):
        image, caption, attrs = ds[i]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert image.min() >= -1 and image.max() <= 1
        assert (
            caption
            == make_caption(**attrs)
            == f"a {attrs['color']} {attrs['shape']} on a {attrs['background']} background"
        )
        assert attrs["color"] != attrs["background"]
        assert parse_caption(caption) == attrs


def test_pixels_show_the_captioned_colours_with_a_background_border():
    ds = ShapesDataset(length=40, size=48, seed=3)
    for i in range(len(ds)):
        image, _, attrs = ds[i]
        spec = ds.spec(i)
        bg, fg = _rgb(attrs["background"]), _rgb(attrs["color"])
        border = torch.cat([image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1]], dim=1)
        torch.testing.assert_close(border, bg[:, None].expand_as(border))
        centre = image[:, int(spec.cy), int(spec.cx)]
        torch.testing.assert_close(centre, fg, atol=1e-6, rtol=0)
        # share of shape-coloured pixels matches the shape's area
        channel = int(torch.argmax((fg - bg).abs()))
        alpha = (image[channel] - bg[channel]) / (fg[channel] - bg[channel])
        area = alpha.sum().item()
        assert area == pytest.approx(UNIT_AREA[attrs["shape"]] * spec.radius**2, rel=0.03)


def test_items_are_deterministic_per_seed_and_index():
    a, b, c = (
        ShapesDataset(length=20, seed=7),
        ShapesDataset(length=20, seed=7),
        ShapesDataset(length=20, seed=8),
    )
    xa, ca, _ = a.as_tensors()
    xb, cb, _ = b.as_tensors()
    xc, cc, _ = c.as_tensors()
    assert torch.equal(xa, xb) and ca == cb
    assert not torch.equal(xa, xc)
    # item i does not depend on the length of the dataset
    assert torch.equal(ShapesDataset(length=1000, seed=7)[13][0], xa[13])


def test_every_attribute_value_occurs():
    _, _, attrs = ShapesDataset(length=400).as_tensors()
    for key, vocab in (("shape", SHAPES), ("color", COLORS), ("background", BACKGROUNDS)):
        assert {a[key] for a in attrs} == set(vocab)


def test_vocabularies_can_be_restricted():
    ds = ShapesDataset(length=100, shapes=["circle", "square"], colors=["red", "blue"], backgrounds=["white"])
    _, _, attrs = ds.as_tensors()
    assert {a["shape"] for a in attrs} == {"circle", "square"}
    assert {a["color"] for a in attrs} == {"red", "blue"}
    assert {a["background"] for a in attrs} == {"white"}
    with pytest.raises(ValueError, match="hexagon"):
        ShapesDataset(shapes=["hexagon"])
    with pytest.raises(ValueError, match="invisible"):
        ShapesDataset(colors=["red", "blue"], backgrounds=["red"])


def test_size_is_configurable():
    image, _, _ = ShapesDataset(length=3, size=64)[2]
    assert image.shape == (3, 64, 64)
    with pytest.raises(ValueError, match="size"):
        ShapesDataset(size=8)


def test_stream_yields_the_dataset_items_in_order():
    ds = ShapesDataset(length=6, seed=2)
    stream = iter(ShapesStream(seed=2))
    for i in range(6):
        x, caption, attrs = next(stream)
        assert torch.equal(x, ds[i][0]) and caption == ds[i][1] and attrs == ds[i][2]


def test_dataloader_batches_images_captions_and_attributes():
    images, captions, attrs = next(iter(DataLoader(ShapesDataset(length=8), batch_size=4)))
    assert images.shape == (4, 3, 32, 32)
    assert len(captions) == 4 and isinstance(captions[0], str)
    assert len(attrs["shape"]) == 4


def test_parse_caption_accepts_variants_and_rejects_unknown_words():
    assert parse_caption("An Yellow star on a black background.") == {
        "shape": "star",
        "color": "yellow",
        "background": "black",
    }
    with pytest.raises(ValueError, match="hexagon"):
        parse_caption("a red hexagon on a blue background")
    with pytest.raises(ValueError, match="does not read"):
        parse_caption("a photo of a dog")


@pytest.mark.parametrize("shape", ALL_SHAPES)
def test_unit_areas_match_the_drawn_shapes(shape):
    drawn = coverage(shape, 300, 150, 150, 100, supersample=2).sum() / 100**2
    assert drawn == pytest.approx(UNIT_AREA[shape], rel=2e-3)
    assert np.isclose(coverage(shape, 64, 32, 32, 20).sum(), UNIT_AREA[shape] * 400, rtol=0.02)


@pytest.mark.parametrize("shape", ALL_SHAPES)
def test_every_shape_is_centred_on_its_centroid_within_its_extent(shape):
    alpha = coverage(shape, 401, 200.5, 200.5, 100, supersample=1)
    ys, xs = np.nonzero(alpha)
    weights = alpha[ys, xs]
    assert abs(float((xs + 0.5) @ weights / weights.sum()) - 200.5) < 0.3
    assert abs(float((ys + 0.5) @ weights / weights.sum()) - 200.5) < 0.3
    reach = np.hypot(xs + 0.5 - 200.5, ys + 0.5 - 200.5).max() / 100
    assert reach <= EXTENT[shape] + 0.01


def test_new_shapes_are_drawable_but_not_in_the_default_captions():
    assert set(NEW_SHAPES).isdisjoint(SHAPES)
    default = ShapesDataset(length=500, seed=0)
    assert not any(default.spec(i).shape in NEW_SHAPES for i in range(500))
    hearts = ShapesDataset(length=4, seed=0, shapes=["heart"])
    assert {hearts.spec(i).caption.split()[2] for i in range(4)} == {"heart"}
    assert parse_caption("a red heart on a blue background")["shape"] == "heart"
    # a heart is wider at the top than at the bottom (y grows downwards)
    alpha = coverage("heart", 64, 32, 32, 20)
    assert alpha[20].sum() > 3 * alpha[50].sum()
