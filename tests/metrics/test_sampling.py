from __future__ import annotations

import argparse

import pytest
import torch

pytest.importorskip("sklearn")

from metric_toys import DigitPicker  # noqa: E402

from zoo_core.metrics.sampling import count_network_evaluations, format_table, parse_option, sample_model  # noqa: E402


def test_images_are_seeded_per_image_whatever_the_batch_size():
    model = DigitPicker()
    a, info = sample_model(model, 10, batch_size=4, seed=5)
    b, _ = sample_model(model, 10, batch_size=10, seed=5)
    assert a.shape == (10, 1, 16, 16) and torch.equal(a, b)
    c, _ = sample_model(model, 3, seed=6)
    torch.testing.assert_close(c[:2], a[1:3])
    assert not torch.equal(a[0], a[1])


def test_network_evaluations_are_counted_per_batch():
    model = DigitPicker()
    _, info = sample_model(model, 10, batch_size=4)
    assert info["nfe_per_image"] == 1.0 and info["images_per_second"] > 0 and info["seconds"] > 0
    assert model.calls == 3
    assert "generate" not in model.__dict__  # the counting wrapper is gone


def test_counting_restores_an_instance_override():
    model = DigitPicker()

    def marker(z, cond=None, **kw):
        return model.bank[:1].expand(len(z), -1, -1, -1)

    model.generate = marker
    with count_network_evaluations(model) as counter:
        model.generate(torch.zeros(2, 4))
        model.generate(torch.zeros(2, 4))
    assert counter[0] == 2 and model.generate is marker


def test_per_image_arguments_are_sliced_per_batch():
    model = DigitPicker({"num_classes": 10})
    labels = [i % 10 for i in range(12)]
    images, _ = sample_model(model, 12, batch_size=5, per_image={"labels": labels})
    expected = torch.stack([model.bank[model.bank_labels == label][0] for label in labels])
    assert images.shape == expected.shape
    # every image is a real digit of the asked class
    for image, label in zip(images, labels, strict=True):
        assert (model.bank[model.bank_labels == label] == image).flatten(1).all(1).any()
    with pytest.raises(ValueError, match="3 entries for 12 images"):
        sample_model(model, 12, per_image={"labels": [1, 2, 3]})


def test_options_parse_as_json_or_strings():
    assert parse_option("eta=0.0") == ("eta", 0.0)
    assert parse_option("noise_mode=const") == ("noise_mode", "const")
    assert parse_option("x=[1, 2]") == ("x", [1, 2])
    with pytest.raises(argparse.ArgumentTypeError):
        parse_option("eta")


def test_table_aligns_scalars_and_lists():
    table = format_table({"n": 3, "fid": 1.23456, "hist": [1, 2], "nested": {"a": 1}})
    assert table.splitlines() == ["n     3", "fid   1.2346", "hist  1 2"]
