"""The shared sampler suite, importable by plugin authors: every check a registered diffusion sampler must pass.

A plugin author runs it on their sampler with one test file::

    import pytest
    from zoo_core.testing import SAMPLER_CHECKS, run_check

    @pytest.mark.parametrize("check", SAMPLER_CHECKS, ids=lambda c: c.__name__)
    def test_my_sampler_meets_the_contract(check):
        run_check("my-sampler", check)

or ``zoo_core.testing.run_sampler_suite("my-sampler")`` from anywhere (raises AssertionError naming the check).
The checks run on ``ToyDenoiser``, a cheap deterministic denoiser, so the whole suite takes a second per sampler.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable
from typing import Any

import torch

from zoo_core.errors import SamplerError
from zoo_core.sampler import Sampler
from zoo_core.schedule import NoiseSchedule
from zoo_core.seeding import make_generator

SHAPE = (3, 2, 4, 4)
STEPS = 4


def _alpha_bar(sigmas: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """a = 1 / (1 + sigma^2) at (fractional) timesteps, sigma interpolated linearly as NoiseSchedule.sigma_at does
    (re-implemented on a cached table: the toys are called thousands of times)."""
    t = t.double().clamp(0, len(sigmas) - 1)
    low = t.floor().long().clamp(max=len(sigmas) - 2)
    sigma = torch.lerp(sigmas[low], sigmas[low + 1], t - low)
    return 1 / (1 + sigma**2)


class ToyDenoiser:
    """A fixed random linear map of x_t modulated by smooth functions of t (plus an optional class embedding),
    predicting whatever ``prediction_type`` says: deterministic, cheap, and not trivially linear in t."""

    kind = "diffusion"

    def __init__(
        self,
        prediction_type: str = "epsilon",
        schedule: NoiseSchedule | None = None,
        shape: tuple[int, ...] = (2, 4, 4),
        dtype: torch.dtype = torch.float32,
        num_classes: int = 0,
        seed: int = 0,
    ) -> None:
        self.prediction_type = prediction_type
        self.schedule = schedule or NoiseSchedule()
        self._shape = tuple(shape)
        self.dtype, self.device = dtype, torch.device("cpu")
        g = torch.Generator().manual_seed(seed)
        dim = math.prod(shape)
        self.weight = (torch.randn(dim, dim, generator=g, dtype=torch.float64) * 0.5 / dim**0.5).to(dtype)
        self.bias = (torch.randn(dim, generator=g, dtype=torch.float64) * 0.3).to(dtype)
        self.embedding = (torch.randn(num_classes + 1, dim, generator=g, dtype=torch.float64) * 0.5).to(dtype)
        self.calls: list[int] = []  # batch size of every forward, to count them
        self._sigmas = self.schedule.sigmas

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self._shape

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: Any = None, generator: Any = None
    ) -> torch.Tensor:
        assert x_t.dtype == self.dtype and t.shape == (x_t.shape[0],)
        self.calls.append(x_t.shape[0])
        # near the exact denoiser of N(0, I) data (eps = sqrt(1 - a) x_t), plus a t-modulated linear perturbation
        # scaled by sqrt(a) so that x0_hat stays O(1) at every noise level
        a = _alpha_bar(self._sigmas, t).to(self.dtype)[:, None]
        s = t.to(self.dtype)[:, None] / self.schedule.num_train_timesteps
        x = x_t.flatten(1)
        wiggle = (x @ self.weight.T) * (1 + 0.5 * torch.cos(math.pi * s)) + self.bias * torch.sin(3 * s)
        if cond is not None:
            wiggle = wiggle + self.embedding[cond] * (0.5 + s)
        return ((1 - a).sqrt() * x + a.sqrt() * wiggle).reshape(x_t.shape)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _run(sampler: Sampler, model: Any, seed: Any, n: int = SHAPE[0], **kwargs: Any) -> torch.Tensor:
    kwargs.setdefault("steps", STEPS)
    return sampler(model, (n, *SHAPE[1:]), generator=make_generator(seed, n), **kwargs)


def check_same_seed_same_samples(sampler: Sampler) -> None:
    """A seed fixes the samples bit for bit; another seed gives others."""
    model = ToyDenoiser()
    a, b, c = _run(sampler, model, 0), _run(sampler, model, 0), _run(sampler, model, 1)
    assert a.shape == SHAPE and torch.isfinite(a).all(), f"{sampler.name}: bad output {a.shape}"
    assert torch.equal(a, b), f"{sampler.name}: the same seed gave different samples"
    assert (a - c).abs().max() > 1e-3, f"{sampler.name}: different seeds gave the same samples"


def check_per_image_seeds(sampler: Sampler) -> None:
    """Image i of a batch seeded [s0, s1, ...] equals the image sampled alone with seed s_i."""
    model = ToyDenoiser()
    batch = _run(sampler, model, [11, 12, 13])
    for i, seed in enumerate([11, 12, 13]):
        alone = _run(sampler, model, [seed], n=1)
        err = (batch[i : i + 1] - alone).abs().max().item()
        assert err < 1e-5, f"{sampler.name}: image {i} of a seeded batch differs from one-by-one by {err:.2g}"


def check_img2img_strength(sampler: Sampler) -> None:
    """strength 0 is refused (it would run no step: the input itself, no sampling); the smallest strength that
    runs a step stays near the input; strength 1 starts from (nearly) pure noise, like sampling without init."""
    if not {"init", "strength"} <= sampler.options:
        return  # the sampler has no img2img start
    model = ToyDenoiser()
    init = torch.linspace(-0.8, 0.8, math.prod(SHAPE)).reshape(SHAPE)
    try:
        _run(sampler, model, 0, init=init, strength=0.0)
    except SamplerError as exc:
        assert "strength" in str(exc) and "\n" not in str(exc), f"{sampler.name}: unclear strength-0 error"
    else:
        raise AssertionError(f"{sampler.name}: strength 0 (no step to run) was accepted")
    steps = 50
    low = _run(sampler, model, 0, init=init, strength=1 / steps, steps=steps)
    far = (_run(sampler, model, 0, steps=steps) - init).abs().mean().item()
    near = (low - init).abs().mean().item()
    assert near < 0.25 * far, (
        f"{sampler.name}: strength {1 / steps} moved the input by {near:.3g} (noise: {far:.3g})"
    )
    full = _run(sampler, model, 0, init=init, strength=1.0, steps=steps)
    pure = _run(sampler, model, 0, steps=steps)
    err = (full - pure).abs().max().item()
    # strength 1 noises the init to the plan's first timestep (diffusers' definition): sqrt(a_t) init +
    # sqrt(1 - a_t) noise, with a_t small at 50 steps (t = 980 leading) but not zero
    assert err < 0.05, f"{sampler.name}: strength 1 differs from sampling from noise by {err:.3g}"


def check_callback_per_step(sampler: Sampler) -> None:
    """The callback is called once per step, in order, with the current x."""
    seen: list[tuple[int, tuple[int, ...]]] = []
    _run(sampler, ToyDenoiser(), 0, callback=lambda i, t, x: seen.append((i, tuple(x.shape))))
    assert seen, f"{sampler.name}: the callback was never called"
    assert [i for i, _ in seen] == list(range(len(seen))), f"{sampler.name}: callback indices {seen}"
    assert len(seen) == STEPS, f"{sampler.name}: {len(seen)} callbacks for {STEPS} steps"
    assert all(shape == SHAPE for _, shape in seen), f"{sampler.name}: callback x shapes {seen}"


def check_progress_bar(sampler: Sampler) -> None:
    """progress=True draws a bar on stderr over the steps; progress=False prints nothing."""
    for show in (True, False):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            _run(sampler, ToyDenoiser(), 0, progress=show)
        text = err.getvalue()
        if show:
            assert f"0/{STEPS}" in text, f"{sampler.name}: no progress bar to {STEPS} steps: {text!r}"
        else:
            assert text == "", f"{sampler.name}: progress=False printed {text!r}"


def check_bad_options(sampler: Sampler) -> None:
    """An unknown option is a one-line error listing the sampler's options; steps outside 1..T name the range."""
    try:
        _run(sampler, ToyDenoiser(), 0, no_such_option=1)
    except (SamplerError, TypeError, ValueError) as exc:
        message = str(exc)
        assert "no_such_option" in message and "\n" not in message, (
            f"{sampler.name}: unclear error {message!r}"
        )
        for option in sampler.options:
            assert option in message, (
                f"{sampler.name}: unknown-option error does not list {option!r}: {message!r}"
            )
    else:
        raise AssertionError(f"{sampler.name}: an unknown option was accepted silently")
    for steps in (0, -3, 1001, 2.5):
        try:
            _run(sampler, ToyDenoiser(), 0, steps=steps)
        except (SamplerError, ValueError) as exc:
            message = str(exc)
            assert "steps" in message and str(steps) in message and "1000" in message, (
                f"{sampler.name}: steps={steps} error does not name the value and the range: {message!r}"
            )
        else:
            raise AssertionError(f"{sampler.name}: steps={steps} was accepted")


SAMPLER_CHECKS: list[Callable[[Sampler], None]] = [
    check_same_seed_same_samples,
    check_per_image_seeds,
    check_img2img_strength,
    check_callback_per_step,
    check_progress_bar,
    check_bad_options,
]


def diffusion_sampler_names() -> list[str]:
    """Every registered sampler that runs diffusion models (first-party and plugins')."""
    from zoo_core.api import list_samplers
    from zoo_core.registry import get_sampler

    return sorted(n for n in list_samplers() if "diffusion" in get_sampler(n).kinds)


def run_check(name: str, check: Callable[[Sampler], None]) -> None:
    """Run one check on the registered sampler ``name`` (a fresh instance)."""
    from zoo_core.registry import get_sampler

    check(type(get_sampler(name))())


def run_sampler_suite(name: str) -> None:
    """Run every check on the registered sampler ``name``; the first failure raises AssertionError."""
    for check in SAMPLER_CHECKS:
        run_check(name, check)
