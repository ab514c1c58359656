"""What our samplers do beyond matching diffusers: correct statistics, known equivalences, solver order, options."""

from __future__ import annotations

import math

import pytest
import torch
from sampler_toys import GaussianDenoiser, StochasticX0Generator, ToyDenoiser

import zoo
from zoo_core.config import Config
from zoo_core.model import Model
from zoo_core.samplers.common import ancestral_sigmas, to_x0_eps
from zoo_core.samplers.ddim import ddim_sigma, ddim_step
from zoo_core.samplers.ddpm import posterior_step
from zoo_core.schedule import NoiseSchedule, karras_sigmas
from zoo_core.seeding import make_generator

OURS = ["ddpm", "ddim", "dpm++2m", "euler", "euler-a", "heun"]
SHAPE = (4, 2, 4, 4)
# resolved through the registry once: it is rebuilt for every test, and these tests are about the samplers
CLASSES = {name: type(zoo.get_sampler(name)) for name in OURS}


def get_sampler(name: str):
    return CLASSES[name]()


def sample(name: str, model, seed=0, shape=SHAPE, **kwargs) -> torch.Tensor:
    n = shape[0]
    return get_sampler(name)(model, shape, generator=make_generator(seed, n), **kwargs)


# -- schedule helpers ---------------------------------------------------------------------------------------------
def test_karras_sigmas_follow_the_rho_ramp():
    sigmas = karras_sigmas(0.02, 80.0, 6, rho=7.0)
    assert sigmas[0].item() == pytest.approx(80.0) and sigmas[-1].item() == pytest.approx(0.02)
    assert (sigmas.diff() < 0).all()
    roots = sigmas ** (1 / 7)
    torch.testing.assert_close(roots.diff(), torch.full((5,), roots.diff()[0].item(), dtype=torch.float64))
    # rho = 1 is a linear ramp in sigma
    torch.testing.assert_close(
        karras_sigmas(1.0, 6.0, 6, rho=1.0), torch.arange(6.0, 0.0, -1, dtype=torch.float64)
    )


def test_timestep_of_sigma_inverts_sigma_at():
    schedule = NoiseSchedule(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    t = torch.tensor([0.0, 0.25, 10.5, 500.0, 998.75, 999.0], dtype=torch.float64)
    # sigma_at interpolates sigma linearly and timestep_of_sigma log sigma: equal at the integers, close between
    back = schedule.timestep_of_sigma(schedule.sigma_at(t))
    torch.testing.assert_close(back[[0, 3, 5]], t[[0, 3, 5]])
    assert (back - t).abs().max() < 0.05
    torch.testing.assert_close(schedule.sigma_at(torch.tensor([3.0])), schedule.sigmas[3:4])


def test_prediction_type_conversions_agree():
    """eps, x0 and v outputs describing the same (x0, eps) pair convert to that pair."""
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    alpha, sigma = 0.6, 0.8
    x_t = alpha * x0 + sigma * eps
    outputs = {"epsilon": eps, "sample": x0, "v_prediction": alpha * eps - sigma * x0}
    for prediction_type, output in outputs.items():
        got_x0, got_eps = to_x0_eps(output, x_t, alpha, sigma, prediction_type)
        torch.testing.assert_close(got_x0, x0)
        torch.testing.assert_close(got_eps, eps)
    with pytest.raises(zoo.SamplerError, match="flow"):
        to_x0_eps(eps, x_t, alpha, sigma, "flow")


# -- equivalences -------------------------------------------------------------------------------------------------
def test_ddim_eta1_matches_ddpm_posterior():
    """One step: DDIM with eta = 1 has DDPM's posterior mean and variance (fixed_small)."""
    schedule = NoiseSchedule()
    a = schedule.alphas_cumprod
    g = torch.Generator().manual_seed(1)
    x0, eps, z = torch.randn(3, 2, 8, generator=g, dtype=torch.float64)
    for t, s in [(999, 979), (500, 400), (20, 0)]:
        a_t, a_s = a[t].item(), a[s].item()
        x_t = a_t**0.5 * x0 + (1 - a_t) ** 0.5 * eps
        mean, var = posterior_step(x_t, x0, a_t, a_s, "fixed_small")
        sigma = ddim_sigma(a_t, a_s, eta=1.0)
        assert sigma**2 == pytest.approx(var, rel=1e-12)
        torch.testing.assert_close(ddim_step(x0, eps, a_s, sigma, z), mean + var**0.5 * z)
        # eta = 0 is deterministic and keeps the marginal: x_s = sqrt(a_s) x0 + sqrt(1 - a_s) eps
        torch.testing.assert_close(ddim_step(x0, eps, a_s, 0.0, z), a_s**0.5 * x0 + (1 - a_s) ** 0.5 * eps)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_ddim_eta1_sampler_equals_ddpm_sampler(spacing):
    model = ToyDenoiser("v_prediction", dtype=torch.float64)
    ddim = sample("ddim", model, 2, steps=12, eta=1.0, timestep_spacing=spacing, clip_sample=False)
    ddpm = sample(
        "ddpm", model, 2, steps=12, variance_type="fixed_small", timestep_spacing=spacing, clip_sample=False
    )
    torch.testing.assert_close(ddim, ddpm, rtol=1e-9, atol=1e-9)


def test_euler_is_ddim_eta0_in_sigma_space():
    """DDIM's eta = 0 update is exactly an Euler step of the ODE in x / sqrt(a) (Karras et al. 2022, sec. 3)."""
    model = ToyDenoiser("epsilon", dtype=torch.float64)
    euler_path, ddim_path = [], []
    euler = sample(
        "euler", model, 3, steps=8, timestep_spacing="leading", callback=lambda i, t, x: euler_path.append(x)
    )
    ddim = sample(
        "ddim", model, 3, steps=8, timestep_spacing="leading", callback=lambda i, t, x: ddim_path.append(x)
    )
    torch.testing.assert_close(euler, ddim, rtol=1e-6, atol=1e-6)
    a = model.schedule.alphas_cumprod
    for step, t_next in enumerate(model.schedule.timesteps(8, "leading").tolist()[1:]):
        torch.testing.assert_close(euler_path[step] * a[t_next] ** 0.5, ddim_path[step], rtol=1e-6, atol=1e-6)


def test_euler_ancestral_is_ddpm_posterior_sampling():
    model = ToyDenoiser("epsilon", dtype=torch.float64)
    euler_a = sample("euler-a", model, 4, steps=8, timestep_spacing="leading")
    ddpm = sample("ddpm", model, 4, steps=8, timestep_spacing="leading", variance_type="fixed_small")
    torch.testing.assert_close(euler_a, ddpm, rtol=1e-6, atol=1e-6)


def test_ancestral_sigmas_keep_the_marginal_noise_level():
    for eta in (0.0, 0.5, 1.0):
        down, up = ancestral_sigmas(3.0, 1.2, eta)
        assert down**2 + up**2 == pytest.approx(1.2**2)
        assert up == pytest.approx(eta * (1.2**2 * (9 - 1.44) / 9) ** 0.5)
    assert ancestral_sigmas(3.0, 0.0) == (0.0, 0.0)
    model = ToyDenoiser("epsilon", dtype=torch.float64)
    torch.testing.assert_close(
        sample("euler-a", model, 5, steps=6, eta=0.0), sample("euler", model, 5, steps=6)
    )


# -- the distribution they sample ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,steps,options,prediction_type",
    [
        ("ddpm", 250, {"variance_type": "fixed_small"}, "epsilon"),
        ("ddpm", 250, {"variance_type": "fixed_large"}, "v_prediction"),
        ("ddim", 100, {}, "sample"),
        ("ddim", 250, {"eta": 1.0}, "epsilon"),
        ("dpm++2m", 50, {}, "v_prediction"),
        ("dpm++2m", 50, {"use_karras_sigmas": True}, "sample"),
        ("euler", 100, {}, "epsilon"),
        ("euler-a", 250, {}, "v_prediction"),
        ("heun", 50, {}, "sample"),
        ("heun", 50, {"use_karras_sigmas": True}, "epsilon"),
    ],
)
def test_samples_have_the_data_mean_and_std(name, steps, options, prediction_type):
    """On x0 ~ N(0.3, 0.5^2) with the exact denoiser, 4096 sampled values have that mean and std."""
    model = GaussianDenoiser(prediction_type, mean=0.3, std=0.5)
    x = sample(name, model, 0, shape=(64, 1, 8, 8), steps=steps, **options)
    assert x.mean().item() == pytest.approx(0.3, abs=0.02)
    assert x.std().item() == pytest.approx(0.5, abs=0.025)


@pytest.mark.parametrize("name,order", [("euler", 1), ("ddim", 1), ("heun", 2), ("dpm++2m", 2)])
def test_solver_order(name, order):
    """Doubling the steps divides the error against a 999-step solution by about 2^order."""
    model = GaussianDenoiser("epsilon")

    def run(steps):
        return sample(name, model, 1, shape=(8, 1, 8, 8), steps=steps, timestep_spacing="linspace")

    reference = run(999)
    e20, e40 = ((run(n) - reference).abs().max().item() for n in (20, 40))
    measured = math.log2(e20 / e40)
    assert order - 0.3 < measured < order + 2.0, f"{name}: measured order {measured:.2f}"


# -- DDIM inversion -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_ddim_inversion_reconstructs(prediction_type):
    """invert(x0) then sampling gives x0 back, with a first-order error in 1/steps (values of std 0.5); inverting
    a sample also recovers, roughly, the noise it came from."""
    ddim = get_sampler("ddim")
    model = GaussianDenoiser(prediction_type)
    noise = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0 = ddim(model, noise.shape, steps=50, x_T=noise)
    errors = {}
    for steps in (50, 200):
        x_T = ddim.invert(model, x0, steps)
        errors[steps] = (ddim(model, x0.shape, steps=steps, x_T=x_T) - x0).abs().max().item()
    assert errors[50] < 0.15 and errors[200] < 0.04 and errors[50] / errors[200] > 3  # measured 0.095, 0.024
    recovered = ddim.invert(model, x0, 50)
    assert (recovered - noise).abs().mean() < 0.08 and (recovered - noise).abs().max() < 0.3  # 0.052, 0.20


def test_ddim_inversion_runs_a_toy_network_and_checks_its_arguments():
    ddim = get_sampler("ddim")
    model = ToyDenoiser("epsilon", dtype=torch.float64)
    x0 = sample("ddim", model, 0, steps=50)
    x_T = ddim.invert(model, x0, 200)
    assert (ddim(model, x0.shape, steps=200, x_T=x_T) - x0).abs().max() < 0.05
    with pytest.raises(zoo.SamplerError, match="steps"):
        ddim.invert(model, x0, 0)
    with pytest.raises(zoo.SamplerError, match="diffusion"):
        ddim.invert(object(), x0, 10)


# -- options ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", OURS)
def test_img2img_strength(name):
    """strength 1 forgets the init (pure noise start), a small strength stays near it."""
    model = GaussianDenoiser("epsilon", shape=(1, 8, 8), mean=0.0, std=1.0)
    init = torch.full((8, 1, 8, 8), -0.8, dtype=torch.float64)

    def run(strength, **kw):
        return sample(name, model, 0, shape=init.shape, steps=20, init=init, strength=strength, **kw)

    far, near = ((run(strength) - init).abs().mean() for strength in (1.0, 0.1))
    assert near < 0.35 * far  # measured 0.14-0.25 vs 0.94-1.08
    # strength 1 is the plain sampler up to the sqrt(a_T) ~ 0.006 of init left in the first latent
    assert (run(1.0) - sample(name, model, 0, shape=init.shape, steps=20)).abs().max() < 0.05
    seen: list = []
    run(0.1, callback=lambda *args: seen.append(args))
    assert len(seen) == 2  # int(20 * 0.1) steps
    with pytest.raises(zoo.SamplerError, match="strength"):
        run(1.5)
    with pytest.raises(zoo.SamplerError, match="strength 0.01 with 20 steps runs no step"):
        run(0.01)
    with pytest.raises(zoo.SamplerError, match="init"):
        sample(name, model, 0, shape=init.shape, steps=20, strength=0.5)
    with pytest.raises(zoo.SamplerError, match="init has shape"):
        sample(name, model, 0, shape=init.shape, steps=20, init=init[:2], strength=0.5)


@pytest.mark.parametrize("name", OURS)
def test_x_T_is_the_initial_noise(name):
    model = ToyDenoiser("epsilon")
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(9))
    from_seed = get_sampler(name)(model, SHAPE, steps=5, generator=torch.Generator().manual_seed(9))
    from_x_T = get_sampler(name)(
        model, SHAPE, steps=5, x_T=noise, generator=torch.Generator().manual_seed(123)
    )
    if name in ("ddim", "dpm++2m", "euler", "heun"):  # deterministic after the start
        torch.testing.assert_close(from_x_T, from_seed)
    with pytest.raises(zoo.SamplerError, match="x_T has shape"):
        get_sampler(name)(model, SHAPE, steps=5, x_T=noise[:1])


@pytest.mark.parametrize("name", OURS)
def test_options_are_checked(name):
    sampler = get_sampler(name)
    model = ToyDenoiser("epsilon")
    assert {"init", "strength", "clip_sample"} <= sampler.options
    with pytest.raises(zoo.SamplerError, match="unknown option.*'etta'") as info:
        sampler(model, SHAPE, steps=3, etta=0.5)
    assert "accepts" in str(info.value)
    if "timestep_spacing" in sampler.options:
        with pytest.raises(zoo.SamplerError, match="timestep_spacing"):
            sampler(model, SHAPE, steps=3, timestep_spacing="uniform")


def test_last_callback_is_the_result_and_steps_default():
    schedule = NoiseSchedule(num_train_timesteps=40)
    model = ToyDenoiser("epsilon", schedule)
    for name in OURS:
        seen: list = []
        out = sample(name, model, 0, callback=lambda i, t, x, seen=seen: seen.append((i, t, x)))
        default = get_sampler(name).default_steps or 40  # ddpm: every training timestep
        assert len(seen) == min(default, 40) and seen[-1][2] is out
    with pytest.raises(zoo.SamplerError, match="1..40"):
        sample("ddim", model, 0, steps=41)


def test_clip_sample_defaults_to_the_schedule():
    base = ToyDenoiser("sample", dtype=torch.float64)
    base.bias = base.bias * 20  # x0 predictions far outside [-1, 1]
    clipped = ToyDenoiser("sample", NoiseSchedule(clip_sample=True), dtype=torch.float64)
    clipped.bias = base.bias
    for name in OURS:
        by_option = sample(name, base, 0, steps=6, clip_sample=True)
        by_schedule = sample(name, clipped, 0, steps=6)
        torch.testing.assert_close(by_schedule, by_option)
        assert (sample(name, base, 0, steps=6) - by_option).abs().max() > 0.1


def test_ddpm_variance_type_and_errors():
    model = ToyDenoiser("epsilon", NoiseSchedule(variance_type="fixed_large"))
    large = sample("ddpm", model, 0, steps=10)
    torch.testing.assert_close(large, sample("ddpm", model, 0, steps=10, variance_type="fixed_large"))
    assert (large - sample("ddpm", model, 0, steps=10, variance_type="fixed_small")).abs().max() > 1e-3
    with pytest.raises(zoo.SamplerError, match="learned_range"):
        sample("ddpm", model, 0, steps=10, variance_type="learned_range")
    offset = ToyDenoiser("epsilon", NoiseSchedule(steps_offset=1))
    with pytest.raises(zoo.SamplerError, match="timestep_spacing"):
        sample("ddpm", offset, 0, steps=1000)  # leading spacing + offset 1 would visit t = 1000
    with pytest.raises(zoo.SamplerError, match="at most 999"):
        sample("dpm++2m", model, 0, steps=1000)


def test_working_dtypes():
    for name in OURS:
        assert sample(name, ToyDenoiser("epsilon", dtype=torch.float64), 0, steps=3).dtype == torch.float64
        # half-precision networks are fed their dtype, the sampler integrates in float32
        assert sample(name, ToyDenoiser("epsilon", dtype=torch.bfloat16), 0, steps=3).dtype == torch.float32


def test_stochastic_x0_generator_runs_under_ddim_and_ddpm():
    """A DDGAN-style generator drawing z from the sampler's generator: reproducible, and different per seed."""
    model = StochasticX0Generator()
    for name in ("ddim", "ddpm"):
        a, b = sample(name, model, 0, steps=4), sample(name, model, 0, steps=4)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert (a - sample(name, model, 1, steps=4)).abs().max() > 1e-3


def test_progress_bar_only_when_asked(capsys):
    model = ToyDenoiser("epsilon")
    for name in OURS:
        sample(name, model, 0, steps=3, progress=False)
    assert capsys.readouterr().err == ""
    sample("ddim", model, 0, steps=3, progress=True)
    assert "ddim" in capsys.readouterr().err


# -- through Model.sample -----------------------------------------------------------------------------------------
class ToyModelConfig(Config):
    prediction_type: str = "epsilon"
    schedule: NoiseSchedule = NoiseSchedule()


class ToyModel(Model):
    """The toy as a real zoo Model (nn.Module + config): what ``Model.sample`` routes sampler options through."""

    architecture = "test.toy-denoiser"
    config_class = ToyModelConfig
    kind = "diffusion"
    default_sampler = "ddim"
    default_steps = 7

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self.toy = ToyDenoiser(self.config.prediction_type, self.config.schedule)
        self.register_buffer("weight", self.toy.weight)
        self.schedule, self.prediction_type = self.config.schedule, self.config.prediction_type

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.toy.sample_shape

    def predict(self, x_t, t, cond=None, generator=None):
        return self.toy.predict(x_t, t, cond, generator)


def test_model_sample_routes_sampler_options():
    model = ToyModel()
    direct = get_sampler("ddim")(model, (2, 2, 4, 4), steps=7, generator=make_generator(0, 2), eta=0.7)
    torch.testing.assert_close(
        model.sample(2, seed=0, eta=0.7), direct.clamp(-1, 1)
    )  # images clip to [-1, 1]
    init = torch.zeros(2, 2, 4, 4)
    via_model = model.sample(2, sampler="euler", steps=10, seed=[3, 4], init=init, strength=0.5)
    direct = get_sampler("euler")(
        model, (2, 2, 4, 4), steps=10, generator=make_generator([3, 4], 2), init=init, strength=0.5
    )
    torch.testing.assert_close(via_model, direct.clamp(-1, 1))
