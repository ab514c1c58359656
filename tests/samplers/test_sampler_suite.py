"""The shared sampler suite: every registered diffusion sampler, whoever registered it, meets the Sampler contract.

Parametrised over ``zoo.list_samplers()``, so a new sampler is tested the moment a plugin registers it.
"""

from __future__ import annotations

import pytest
import torch
from sampler_toys import ToyDenoiser, ToyGenerator

import zoo
from zoo_core.sampler import Sampler
from zoo_core.seeding import make_generator
from zoo_core.testing import SAMPLER_CHECKS

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
SHAPE = (3, 2, 4, 4)
STEPS = 4


def _diffusion_samplers() -> dict[str, type[Sampler]]:
    """Every registered sampler that runs diffusion models, resolved once (the registry is rebuilt per test)."""
    from zoo_core.registry import reset_registry

    classes = {n: type(zoo.get_sampler(n)) for n in zoo.list_samplers()}
    reset_registry()
    return {n: cls for n, cls in classes.items() if "diffusion" in cls.kinds}


SAMPLER_CLASSES = _diffusion_samplers()
DIFFUSION_SAMPLERS = sorted(SAMPLER_CLASSES)


def _model(sampler: Sampler, prediction_type: str = "epsilon", **kwargs) -> ToyDenoiser:
    return ToyDenoiser(prediction_type, **kwargs)


def _run(sampler: Sampler, model, seed, n: int = SHAPE[0], **kwargs) -> torch.Tensor:
    return sampler(model, (n, *SHAPE[1:]), steps=STEPS, generator=make_generator(seed, n), **kwargs)


def test_the_core_samplers_and_ddim_are_registered():
    assert {"ddpm", "ddim", "dpm++2m", "euler", "euler-a", "heun"} <= set(DIFFUSION_SAMPLERS)


@pytest.fixture(params=DIFFUSION_SAMPLERS)
def sampler(request) -> Sampler:
    return SAMPLER_CLASSES[request.param]()


def test_public_api(sampler):
    assert isinstance(sampler, Sampler) and callable(sampler)
    assert isinstance(sampler.name, str) and sampler.name in zoo.list_samplers()
    assert type(zoo.get_sampler(sampler.name)) is type(sampler)
    assert isinstance(sampler.kinds, tuple) and "diffusion" in sampler.kinds
    assert not hasattr(
        sampler, "prediction_types"
    )  # the core converts: every sampler runs every prediction type
    assert isinstance(sampler.options, frozenset) and all(isinstance(o, str) for o in sampler.options)
    assert sampler.default_steps is None or (
        isinstance(sampler.default_steps, int) and sampler.default_steps >= 1
    )
    assert isinstance(sampler.description, str) and sampler.description


def test_output_shape_dtype_and_values(sampler):
    x = _run(sampler, _model(sampler), seed=0)
    assert x.shape == SHAPE and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.std() > 0


def test_same_seed_same_samples_other_seed_other_samples(sampler):
    model = _model(sampler)
    a, b, c = _run(sampler, model, 0), _run(sampler, model, 0), _run(sampler, model, 1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-3


def test_per_image_seeds_do_not_depend_on_the_batch(sampler):
    model = _model(sampler)
    batch = _run(sampler, model, [11, 12, 13])
    alone = _run(sampler, model, [12], n=1)
    torch.testing.assert_close(batch[1:2], alone, rtol=1e-5, atol=1e-6)


def test_stateless_between_calls(sampler):
    """One instance serves several models in turn: nothing of one call leaks into the next."""
    model_a, model_b = _model(sampler, seed=1), _model(sampler, seed=2)
    first = _run(sampler, model_a, 5)
    _run(sampler, model_b, 6, n=1)
    torch.testing.assert_close(_run(sampler, model_a, 5), first, rtol=0, atol=0)


def test_callback_after_each_step(sampler):
    seen = []
    _run(sampler, _model(sampler), 0, callback=lambda i, t, x: seen.append((i, x.shape)))
    assert seen, "the callback was never called"
    assert [i for i, _ in seen] == list(range(len(seen)))
    assert all(shape == SHAPE for _, shape in seen)


def test_refuses_a_gan_naming_the_supported_kinds(sampler):
    with pytest.raises(zoo.SamplerError, match="diffusion") as info:
        sampler(ToyGenerator(), (1, 8), steps=2, generator=make_generator(0, 1))
    assert sampler.name in str(info.value) and "gan" in str(info.value)
    with pytest.raises(zoo.SamplerError, match="diffusion"):
        sampler.check(ToyGenerator())


def test_refuses_an_unknown_prediction_type(sampler):
    model = ToyDenoiser("flow_prediction")
    with pytest.raises(zoo.SamplerError, match="prediction types") as info:
        sampler(model, SHAPE, steps=2, generator=make_generator(0, 3))
    assert "flow_prediction" in str(info.value)


@pytest.mark.parametrize("steps", [0, -3, 1001])
def test_bad_steps_name_the_value_and_the_range(sampler, steps):
    with pytest.raises(ValueError, match="steps") as info:
        sampler(_model(sampler), SHAPE, steps=steps, generator=make_generator(0, 3))
    assert str(steps) in str(info.value) and "1000" in str(info.value)


def test_bad_eta_names_the_value(sampler):
    if "eta" not in sampler.options:
        pytest.skip(f"{sampler.name} has no eta option")
    with pytest.raises(ValueError, match="eta") as info:
        sampler(_model(sampler), SHAPE, steps=2, generator=make_generator(0, 3), eta=-0.5)
    assert "-0.5" in str(info.value)


@pytest.mark.parametrize("check", SAMPLER_CHECKS, ids=lambda c: c.__name__)
def test_the_shared_suite_plugin_authors_run(sampler, check):
    """zoo_core.testing's checks (what a plugin author runs on their sampler) pass for every registered one."""
    check(sampler)


def test_the_shared_suite_fails_a_sampler_that_ignores_per_image_seeds():
    """The suite can fail: a sampler drawing its noise from one batch-wide seed breaks check_per_image_seeds."""
    from zoo_core.testing import check_per_image_seeds

    base = SAMPLER_CLASSES["euler"]

    class BatchSeeded(base):
        name = "batch-seeded"

        def __call__(self, model, shape, *, generator=None, **kwargs):
            return super().__call__(model, shape, generator=make_generator(0, shape[0]), **kwargs)

    with pytest.raises(AssertionError, match="one-by-one"):
        check_per_image_seeds(BatchSeeded())
