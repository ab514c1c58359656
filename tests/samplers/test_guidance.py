"""Classifier-free guidance: one wrapper around any Denoiser, one batched forward, diffusers' rescale."""

from __future__ import annotations

import pytest
import torch
from sampler_toys import ToyDenoiser, ToyGenerator

import zoo
from zoo_core.denoiser import Denoiser
from zoo_core.guidance import ClassifierFreeGuidance, guide
from zoo_core.seeding import make_generator

NUM_CLASSES = 3


def _toy(prediction_type: str = "epsilon") -> ToyDenoiser:
    return ToyDenoiser(prediction_type, num_classes=NUM_CLASSES, dtype=torch.float64)


def _inputs(n: int = 3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([900, 500, 20][:n])
    cond = torch.tensor([0, 1, 2][:n])
    uncond = torch.full((n,), NUM_CLASSES)  # the null label (ClassLabelConditioner.null)
    return x, t, cond, uncond


def test_wrapper_is_a_denoiser_of_the_same_model():
    model = _toy("v_prediction")
    guided = ClassifierFreeGuidance(model, None, 7.5)
    assert isinstance(guided, Denoiser) and guided.kind == "diffusion"
    assert guided.schedule is model.schedule and guided.prediction_type == "v_prediction"
    assert guided.sample_shape == model.sample_shape and guided.dtype == torch.float64
    x = torch.randn(2, 2, 4, 4)
    assert guided.decode(x) is x
    assert guided.weight is model.weight  # anything else is the wrapped model's


@pytest.mark.parametrize("scale", [1.5, 7.5])
def test_guided_prediction_in_one_batched_forward(scale):
    model = _toy()
    x, t, cond, uncond = _inputs()
    out_c, out_u = model.predict(x, t, cond), model.predict(x, t, uncond)
    model.calls.clear()
    guided = ClassifierFreeGuidance(model, uncond, scale).predict(x, t, cond)
    assert model.calls == [6]  # one forward over [uncond, cond]
    torch.testing.assert_close(guided, out_u + scale * (out_c - out_u))
    assert (guided - out_c).abs().max() > 1e-2


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.0])
def test_scale_at_most_one_is_no_guidance(scale):
    """w <= 1: the conditional model itself, one forward of the batch (diffusers switches guidance off too)."""
    model = _toy()
    x, t, cond, uncond = _inputs()
    expected = model.predict(x, t, cond)
    model.calls.clear()
    wrapper = ClassifierFreeGuidance(model, uncond, scale)
    assert not wrapper.enabled
    torch.testing.assert_close(wrapper.predict(x, t, cond), expected, rtol=0, atol=0)
    assert model.calls == [3]


def test_rescale_matches_diffusers_rescale_noise_cfg():
    reference = pytest.importorskip("diffusers.guiders.guider_utils")  # the same function SD pipelines use
    model = _toy()
    x, t, cond, uncond = _inputs()
    out_c, out_u = model.predict(x, t, cond), model.predict(x, t, uncond)
    for rescale in (0.0, 0.3, 0.7, 1.0):
        ours = ClassifierFreeGuidance(model, uncond, 7.5, rescale=rescale).predict(x, t, cond)
        theirs = reference.rescale_noise_cfg(out_u + 7.5 * (out_c - out_u), out_c, guidance_rescale=rescale)
        torch.testing.assert_close(ours, theirs)
    full = guide(out_u, out_c, 7.5, rescale=1.0)
    torch.testing.assert_close(full.std(dim=(1, 2, 3)), out_c.std(dim=(1, 2, 3)))  # phi = 1: std of the cond


def test_guided_sampling_with_any_sampler():
    model = _toy()
    _, _, cond, uncond = _inputs()
    shape = (3, 2, 4, 4)
    for name in ("ddim", "dpm++2m", "euler-a"):
        sampler = zoo.get_sampler(name)

        def run(m, seed=0, sampler=sampler):
            return sampler(m, shape, steps=6, generator=make_generator(seed, 3), cond=cond)

        guided = ClassifierFreeGuidance(model, uncond, 4.0)
        first = run(guided)
        torch.testing.assert_close(run(guided), first, rtol=0, atol=0)
        torch.testing.assert_close(run(ClassifierFreeGuidance(model, uncond, 1.0)), run(model))
        assert (first - run(model)).abs().max() > 1e-2


def test_dict_conditioning_is_batched_too():
    class DictModel(ToyDenoiser):
        def predict(self, x_t, t, cond=None, generator=None):
            return super().predict(x_t, t, cond["label"], generator) * cond["gain"][:, None, None, None]

    model = DictModel(num_classes=NUM_CLASSES, dtype=torch.float64)
    x, t, labels, null = _inputs()
    cond = {"label": labels, "gain": torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)}
    uncond = {"label": null, "gain": torch.ones(3, dtype=torch.float64)}
    out_c, out_u = model.predict(x, t, cond), model.predict(x, t, uncond)
    guided = ClassifierFreeGuidance(model, uncond, 3.0).predict(x, t, cond)
    torch.testing.assert_close(guided, out_u + 3.0 * (out_c - out_u))


def test_bad_arguments():
    with pytest.raises(ValueError, match="rescale"):
        ClassifierFreeGuidance(_toy(), None, 7.5, rescale=1.5)
    with pytest.raises(ValueError, match="scale"):
        ClassifierFreeGuidance(_toy(), None, "high")
    with pytest.raises(ValueError, match="diffusion"):
        ClassifierFreeGuidance(ToyGenerator(), None, 7.5)
