"""Batched sampling: an image depends on its seed, not on the batch it was drawn in."""

from __future__ import annotations

import pytest
import torch

import zoo

# (card, sample arguments small enough for a test)
FAMILIES = {
    "ddpm": dict(steps=4, sampler="ddim"),
    "ddgan": {},
    "stylegan": {},
    "t2i": dict(steps=3, prompt="a red circle on a blue background"),
}


@pytest.fixture(scope="module")
def models():
    return {name: zoo.load(name) for name in FAMILIES}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_images_of_a_seed_do_not_depend_on_the_batch_size(models, name):
    model, kwargs = models[name], FAMILIES[name]
    whole = model.sample(5, seed=7, batch_size=5, **kwargs)
    assert whole.shape[0] == 5
    for batch_size in (1, 2, 3):
        torch.testing.assert_close(
            model.sample(5, seed=7, batch_size=batch_size, **kwargs), whole, rtol=0, atol=1e-5
        )
    # image i is seeded seed + i: a run starting later gives the same images
    later = model.sample(2, seed=[10, 11], **kwargs)
    torch.testing.assert_close(later, whole[3:], rtol=0, atol=1e-5)
    assert not torch.equal(whole[0], whole[1])


def test_sample_iter_yields_batches_of_the_requested_indices(models):
    model = models["ddgan"]
    batches = list(model.sample_iter(7, batch_size=3, seed=0))
    assert [b.shape[0] for b in batches] == [3, 3, 1]
    every = torch.cat(batches)
    picked = torch.cat(list(model.sample_iter(7, batch_size=2, seed=0, indices=[6, 2, 4])))
    torch.testing.assert_close(picked, every[[6, 2, 4]], rtol=0, atol=1e-5)
    arrays = list(model.sample_iter(4, batch_size=4, seed=0, output="numpy"))
    assert arrays[0].dtype.name == "uint8" and arrays[0].shape[0] == 4


def test_per_image_arguments_are_sliced_with_the_batch(models):
    model = models["t2i"]
    prompts = ["a red circle on a blue background", "a green square on a white background", "a blue triangle"]
    one = model.sample(3, seed=0, steps=2, prompt=prompts, batch_size=3)
    split = model.sample(3, seed=0, steps=2, prompt=prompts, batch_size=1)
    torch.testing.assert_close(split, one, rtol=0, atol=1e-5)
    alone = model.sample(1, seed=[2], steps=2, prompt=prompts[2])
    torch.testing.assert_close(alone, one[2:], rtol=0, atol=1e-5)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_batch_sizes_are_refused(models, bad):
    with pytest.raises(ValueError, match="batch_size"):
        models["ddgan"].sample(2, batch_size=bad)


def test_a_generator_seed_cannot_be_split_into_batches(models):
    with pytest.raises(ValueError, match="int seed"):
        models["ddgan"].sample(2, batch_size=1, seed=torch.Generator().manual_seed(0))
