"""The ddgan posterior sampler: the official 4-step run replayed, the paper's formulas, seeds, steps and errors."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ddgan_helpers import fixture_model, io
from sampler_toys import ToyDenoiser

from zoo_core.api import get_sampler
from zoo_core.errors import SamplerError
from zoo_core.samplers.common import Run
from zoo_core.samplers.ddgan import DDGANSampler
from zoo_core.schedule import NoiseSchedule
from zoo_core.seeding import make_generator, randn


@pytest.fixture(scope="module")
def model():
    return fixture_model()


class ReplayRun(Run):
    """A sampling run whose latents and posterior noise come from the official recording, step by step."""

    def __init__(self, model: Any, latents: torch.Tensor, noises: torch.Tensor) -> None:
        super().__init__("ddgan", model, None, None, None, False, torch.float32)
        self.latents, self.noises = latents, noises
        self.x0_preds: list[torch.Tensor] = []
        self.trajectory: list[torch.Tensor] = []
        self.timesteps: list[int] = []

    def predict(self, x_t: torch.Tensor, t: Any, fractional: bool = False) -> torch.Tensor:
        step = len(self.x0_preds)
        t_batch = torch.full((x_t.shape[0],), int(t), dtype=torch.int64)
        x0 = self.model.predict(x_t, t_batch, z=self.latents[step])
        self.x0_preds.append(x0)
        return x0

    def noise_like(self, x: torch.Tensor) -> torch.Tensor:
        return self.noises[len(self.x0_preds) - 1]

    def step_done(self, i: int, t: Any, x: torch.Tensor) -> None:
        self.timesteps.append(int(t))
        self.trajectory.append(x)


def test_sampler_reproduces_the_official_four_step_run(model):
    data = io()
    run = ReplayRun(model, data["sample_z"], data["sample_noise"])
    with torch.no_grad():
        out = DDGANSampler().sample(run, data["sample_x_init"], 4)
    assert run.timesteps == [3, 2, 1, 0] == data["sample_t"][:, 0].tolist()
    for k in range(4):
        assert (run.x0_preds[k] - data["sample_x0_pred"][k]).abs().max() < 1e-5, k
        assert (run.trajectory[k] - data["sample_x_traj"][k]).abs().max() < 1e-5, k
    assert (out - data["sample_out"]).abs().max() < 1e-5
    torch.testing.assert_close(out, run.x0_preds[-1])  # the last step returns x0' itself


class ToyX0Model:
    """A cheap x0-predicting Denoiser: x0' = tanh(w_t x_t + z-shift), z drawn from the generator like DDGAN's."""

    kind = "diffusion"
    prediction_type = "sample"
    sample_shape = (2, 3, 3)
    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule

    def predict(self, x_t, t, cond=None, generator=None):
        z = randn((x_t.shape[0], 1), generator)
        return torch.tanh((0.5 + 0.1 * t.float()).reshape(-1, 1, 1, 1) * x_t + z[:, :, None, None])

    def decode(self, x):
        return x


def direct_posterior_sampling(model: ToyX0Model, shape, seed: int, timesteps: list[int]) -> torch.Tensor:
    """The paper's sampler written out with scalars: x_s = mu~(x_t, x0') + sigma~ eps (Ho et al. eq. 7)."""
    gen = torch.Generator().manual_seed(seed)
    a = model.schedule.alphas_cumprod.tolist()
    x = torch.randn(shape, generator=gen)
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x0 = model.predict(x, torch.full((shape[0],), t), generator=gen)
        a_t, a_s = a[t], (a[s] if s >= 0 else 1.0)
        alpha, beta = a_t / a_s, 1 - a_t / a_s
        mean = a_s**0.5 * beta / (1 - a_t) * x0 + alpha**0.5 * (1 - a_s) / (1 - a_t) * x
        var = beta * (1 - a_s) / (1 - a_t)
        x = mean + var**0.5 * torch.randn(shape, generator=gen) if s >= 0 else mean
    return x


@pytest.mark.parametrize("steps, visited", [(6, [5, 4, 3, 2, 1, 0]), (3, [5, 3, 1]), (1, [5])])
def test_sampler_matches_direct_formulas(steps, visited):
    schedule = NoiseSchedule(num_train_timesteps=6, beta_schedule="linear", beta_start=0.1, beta_end=0.9)
    model = ToyX0Model(schedule)
    seen: list[int] = []
    out = DDGANSampler()(
        model,
        (3, 2, 3, 3),
        steps=steps,
        generator=torch.Generator().manual_seed(5),
        callback=lambda i, t, x: seen.append(t),
    )
    assert seen == visited  # trailing spacing: always starts at T - 1
    expected = direct_posterior_sampling(model, (3, 2, 3, 3), 5, visited)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_sample_is_deterministic_in_range_and_batch_independent(model):
    a = model.sample(2, seed=[7, 8])
    b = model.sample(2, seed=[7, 8])
    single = model.sample(1, seed=7)
    assert a.shape == (2, 3, 16, 16)
    assert torch.equal(a, b)
    assert (a[0] - a[1]).abs().max() > 1e-2  # different seeds, different images
    assert a.abs().max() <= 1  # x0' is tanh-bounded and the last step returns it
    torch.testing.assert_close(single[0], a[0], atol=1e-5, rtol=1e-5)


def test_default_sampler_and_steps_come_from_the_model(model):
    seen: list[int] = []
    model.sample(1, seed=0, callback=lambda i, t, x: seen.append(t))
    assert model.default_sampler == "ddgan" and model.default_steps == 4
    assert seen == [3, 2, 1, 0]


def test_equals_core_ddpm_sampler_with_posterior_variance(model):
    """With steps = T, DDGAN sampling is ancestral sampling with x0 predictions and the posterior variance."""
    a = model.sample(1, seed=3)
    b = model.sample(1, seed=3, sampler="ddpm", variance_type="fixed_small")
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_more_steps_than_T_is_a_clear_error(model):
    with pytest.raises(SamplerError, match=r"1\.\.4"):
        model.sample(1, seed=0, steps=5)


def test_runs_an_epsilon_model_as_ddpm_posterior_sampling():
    """The core converts eps to x0, so DDGAN's posterior sampler on an epsilon model is DDPM's ancestral sampler
    with the posterior variance on the same (trailing) timesteps."""
    sampler = get_sampler("ddgan")
    assert isinstance(sampler, DDGANSampler)
    model = ToyDenoiser("epsilon", NoiseSchedule(num_train_timesteps=40), dtype=torch.float64)
    for steps in (4, 40):
        ours = sampler(model, (3, 2, 4, 4), steps=steps, generator=make_generator([1, 2, 3], 3))
        ddpm = get_sampler("ddpm")(
            model,
            (3, 2, 4, 4),
            steps=steps,
            generator=make_generator([1, 2, 3], 3),
            variance_type="fixed_small",
            timestep_spacing="trailing",
        )
        torch.testing.assert_close(ours, ddpm, rtol=1e-7, atol=1e-9)  # exp(log var / 2) vs sqrt(var)


def test_x_T_replaces_the_starting_noise(model):
    x_T = torch.zeros(1, 3, 16, 16)
    a = model.sample(1, seed=0, x_T=x_T)
    b = model.sample(1, seed=0)
    assert not torch.equal(a, b)
    with pytest.raises(SamplerError, match="x_T"):
        model.sample(1, seed=0, x_T=torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize("sampler", ["dpm++2m", "euler"])
def test_generic_core_samplers_run_the_ddgan_model(model, sampler):
    """The model is a plain x0-predicting Denoiser: other samplers run it, also with fewer steps than T."""
    seen: list[Any] = []
    x = model.sample(1, seed=0, sampler=sampler, steps=2, callback=lambda i, t, x: seen.append(t))
    assert x.shape == (1, 3, 16, 16) and torch.isfinite(x).all()
    assert len(seen) == 2 and float(seen[0]) == pytest.approx(3, abs=0.5)  # trailing spacing starts at T - 1
