"""Parity with diffusers' schedulers: same toy model, same schedule, same noise -> the same whole trajectory.

diffusers draws its noise through ``randn_tensor``; we replay it from ``zoo_core.seeding.randn`` with an identically
seeded generator, so both sides see the same draws in the same order. diffusers builds its schedule in float32; the
main tests hand it our float64 schedule (``identical schedule``) so the comparison measures the sampling algorithms,
and ``test_parity_with_diffusers_own_float32_schedule`` measures the out-of-the-box difference too.

Errors are relative to the trajectory's scale (max |x|, at least 1): Euler and Heun integrate x_t / sqrt(a_t), which
starts at sigma_max ~ 157 on the DDPM schedule.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from sampler_toys import ToyDenoiser

from zoo_core.schedule import NoiseSchedule
from zoo_core.seeding import randn

diffusers = pytest.importorskip("diffusers")

# numpy 2 warns when diffusers turns our float64 schedule tensors into arrays; harmless here
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SCHEDULER_MODULES = {
    "DDPMScheduler": "scheduling_ddpm",
    "DDIMScheduler": "scheduling_ddim",
    "DPMSolverMultistepScheduler": "scheduling_dpmsolver_multistep",
    "EulerDiscreteScheduler": "scheduling_euler_discrete",
    "EulerAncestralDiscreteScheduler": "scheduling_euler_ancestral_discrete",
    "HeunDiscreteScheduler": "scheduling_heun_discrete",
}
SHAPE = (3, 2, 4, 4)
STEPS = 10

# (our sampler, diffusers scheduler, extra scheduler config, our options / diffusers step kwargs)
CASES = [
    ("ddpm", "DDPMScheduler", {"variance_type": "fixed_small"}, {}),
    ("ddpm", "DDPMScheduler", {"variance_type": "fixed_large"}, {}),
    ("ddim", "DDIMScheduler", {}, {"eta": 0.0}),
    ("ddim", "DDIMScheduler", {}, {"eta": 1.0}),
    ("dpm++2m", "DPMSolverMultistepScheduler", {"use_karras_sigmas": False}, {}),
    ("dpm++2m", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, {}),
    ("euler", "EulerDiscreteScheduler", {"use_karras_sigmas": False}, {}),
    ("euler", "EulerDiscreteScheduler", {"use_karras_sigmas": True}, {}),
    ("euler-a", "EulerAncestralDiscreteScheduler", {}, {}),
    ("heun", "HeunDiscreteScheduler", {"use_karras_sigmas": False}, {}),
    ("heun", "HeunDiscreteScheduler", {"use_karras_sigmas": True}, {}),
]
CASE_IDS = [f"{c[0]}-{'-'.join(f'{k}={v}' for k, v in {**c[2], **c[3]}.items()) or 'default'}" for c in CASES]


def _sampler(name: str):
    """The sampler class itself (not through the registry: these tests are about the maths)."""
    from zoo_core.samplers.ddim import DDIMSampler
    from zoo_core.samplers.ddpm import DDPMSampler
    from zoo_core.samplers.dpm_solver import DPMSolverMultistepSampler
    from zoo_core.samplers.euler import EulerAncestralSampler, EulerSampler
    from zoo_core.samplers.heun import HeunSampler

    classes = [DDPMSampler, DDIMSampler, DPMSolverMultistepSampler, EulerSampler, EulerAncestralSampler]
    return {cls.name: cls for cls in [*classes, HeunSampler]}[name]()


def _config(prediction_type: str, spacing: str, extra: dict, **overrides) -> dict:
    config = {
        "num_train_timesteps": 1000,
        "beta_start": 1e-4,
        "beta_end": 0.02,
        "beta_schedule": "linear",
        "clip_sample": False,
        "timestep_spacing": spacing,
        "steps_offset": 0,
        "prediction_type": prediction_type,
    }
    return {**config, **extra, **overrides}


def _schedule(config: dict) -> NoiseSchedule:
    return NoiseSchedule.parse({k: v for k, v in config.items() if k in NoiseSchedule.model_fields})


def _replay_noise(shape, generator=None, device=None, dtype=None, layout=None):
    return randn(shape, generator, device=device, dtype=dtype or torch.float32)


def diffusers_trajectory(
    monkeypatch,
    cls_name: str,
    config: dict,
    model: ToyDenoiser,
    seed: int,
    step_kwargs: dict,
    identical_schedule: bool = True,
    init: torch.Tensor | None = None,
    strength: float = 1.0,
) -> list[torch.Tensor]:
    """diffusers' denoising loop (as its pipelines write it), recording the latents after every full step."""
    module = importlib.import_module(f"diffusers.schedulers.{SCHEDULER_MODULES[cls_name]}")
    if hasattr(module, "randn_tensor"):
        monkeypatch.setattr(module, "randn_tensor", _replay_noise)
    scheduler = getattr(diffusers, cls_name).from_config(config)
    if identical_schedule:
        schedule = _schedule(config)
        scheduler.betas, scheduler.alphas_cumprod = schedule.betas, schedule.alphas_cumprod
        scheduler.alphas = 1 - schedule.betas
    scheduler.set_timesteps(STEPS)
    generator = torch.Generator().manual_seed(seed)
    noise = randn(SHAPE, generator, dtype=model.dtype)
    timesteps = scheduler.timesteps
    if init is None:
        x = noise * scheduler.init_noise_sigma
    else:  # diffusers' img2img: skip the first steps, noise the init latent to the first kept timestep
        order = scheduler.order
        start = STEPS - min(int(STEPS * strength), STEPS)
        timesteps = timesteps[start * order :]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start * order)
        x = scheduler.add_noise(init, noise, timesteps[:1])
    heun = cls_name == "HeunDiscreteScheduler"
    kwargs = {**step_kwargs, **({} if heun else {"generator": generator})}
    trajectory = []
    for j, t in enumerate(timesteps):
        x_in = scheduler.scale_model_input(x, t)
        out = model.predict(x_in.to(model.dtype), t.expand(SHAPE[0]))
        x = scheduler.step(out, t, x, **kwargs).prev_sample
        if not heun or j % 2 == 1 or j == len(timesteps) - 1:  # Heun: 2 scheduler steps per step
            trajectory.append(x)
    return trajectory


def zoo_trajectory(name: str, model: ToyDenoiser, seed: int, **options) -> list[torch.Tensor]:
    trajectory: list[torch.Tensor] = []
    out = _sampler(name)(
        model,
        SHAPE,
        steps=STEPS,
        generator=torch.Generator().manual_seed(seed),
        callback=lambda i, t, x: trajectory.append(x.clone()),
        **options,
    )
    assert trajectory and out is not None
    torch.testing.assert_close(trajectory[-1], out, rtol=0, atol=0)
    return trajectory


def assert_same_trajectory(ours: list[torch.Tensor], theirs: list[torch.Tensor], tol: float) -> float:
    assert len(ours) == len(theirs), f"{len(ours)} steps here, {len(theirs)} in diffusers"
    worst = 0.0
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.dtype == b.dtype, (a.dtype, b.dtype)
        err = (a - b).abs().max().item() / max(1.0, b.abs().max().item())
        assert err <= tol, f"step {i}: relative error {err:.2e} > {tol:.0e}"
        worst = max(worst, err)
    return worst


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_trajectory_matches_diffusers(monkeypatch, case, prediction_type, spacing, dtype):
    name, cls_name, extra, options = case
    if name == "ddim" and spacing == "linspace":
        pytest.skip(
            "diffusers' DDIM steps to t - T // steps, not to the next linspace timestep (see zoo_core.samplers.ddim)"
        )
    config = _config(prediction_type, spacing, extra)
    model = ToyDenoiser(prediction_type, _schedule(config), SHAPE[1:], dtype=dtype)
    ours = zoo_trajectory(name, model, seed=3, **options)
    theirs = diffusers_trajectory(monkeypatch, cls_name, config, model, 3, options)
    assert_same_trajectory(ours, theirs, tol=1e-5)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c[0] in ("ddpm", "ddim", "heun")], ids=lambda c: f"{c[0]}-{c[2]}{c[3]}"
)
def test_clip_sample_and_stable_diffusion_schedule_match_diffusers(monkeypatch, case):
    """clip_sample on, scaled_linear betas with steps_offset 1 and x0 prediction (the rest of the config space)."""
    name, cls_name, extra, options = case
    config = _config(
        "sample",
        "leading",
        extra,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        steps_offset=1,
        clip_sample=True,
        clip_sample_range=0.8,
    )
    model = ToyDenoiser("sample", _schedule(config), SHAPE[1:], dtype=torch.float64)
    ours = zoo_trajectory(name, model, seed=4, **options)
    theirs = diffusers_trajectory(monkeypatch, cls_name, config, model, 4, options)
    assert_same_trajectory(ours, theirs, tol=1e-5)


def test_ddim_final_alpha_follows_set_alpha_to_one(monkeypatch):
    config = _config("epsilon", "trailing", {"set_alpha_to_one": False})
    model = ToyDenoiser("epsilon", _schedule(config), SHAPE[1:], dtype=torch.float64)
    ours = zoo_trajectory("ddim", model, seed=5)
    assert_same_trajectory(
        ours, diffusers_trajectory(monkeypatch, "DDIMScheduler", config, model, 5, {}), 1e-5
    )
    ours_one = zoo_trajectory(
        "ddim", ToyDenoiser("epsilon", _schedule({**config, "set_alpha_to_one": True})), 5
    )
    assert (ours[-1].float() - ours_one[-1]).abs().max() > 1e-4  # the option does something


@pytest.mark.parametrize(
    "case",
    [CASES[0], CASES[2], CASES[4], CASES[6], CASES[9]],
    ids=["ddpm", "ddim", "dpm++2m", "euler", "heun"],
)
def test_img2img_start_matches_diffusers(monkeypatch, case):
    """strength skips the first steps and noises the init latent at the first kept timestep, as diffusers does."""
    name, cls_name, extra, options = case
    config = _config("epsilon", "leading", extra, steps_offset=1)
    model = ToyDenoiser("epsilon", _schedule(config), SHAPE[1:], dtype=torch.float64)
    init = torch.linspace(-1, 1, SHAPE[0] * 32, dtype=torch.float64).reshape(SHAPE)
    ours = zoo_trajectory(name, model, seed=6, init=init, strength=0.55, **options)
    theirs = diffusers_trajectory(monkeypatch, cls_name, config, model, 6, options, init=init, strength=0.55)
    assert len(ours) == 5  # int(10 * 0.55) steps run
    assert_same_trajectory(ours, theirs, tol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_parity_with_diffusers_own_float32_schedule(monkeypatch, case):
    """Out of the box, diffusers' float32 cumprod of the betas differs from our float64 one by ~1e-7 relative; it
    moves the Karras endpoints (sigma_min = sigma at t = 0 depends on 1 - a_0 ~ 1e-4) most, to a few 1e-5."""
    name, cls_name, extra, options = case
    config = _config("epsilon", "leading", extra, steps_offset=1)
    model = ToyDenoiser("epsilon", _schedule(config), SHAPE[1:], dtype=torch.float32)
    ours = zoo_trajectory(name, model, seed=7, **options)
    theirs = diffusers_trajectory(monkeypatch, cls_name, config, model, 7, options, identical_schedule=False)
    assert_same_trajectory(ours, theirs, tol=1e-4)


def test_karras_sigmas_and_timesteps_match_diffusers():
    config = _config("epsilon", "linspace", {"use_karras_sigmas": True})
    schedule = _schedule(config)
    for cls_name in ("EulerDiscreteScheduler", "DPMSolverMultistepScheduler"):
        scheduler = getattr(diffusers, cls_name).from_config(config)
        scheduler.alphas_cumprod = schedule.alphas_cumprod
        scheduler.set_timesteps(STEPS)
        if cls_name == "EulerDiscreteScheduler":
            from zoo_core.samplers.common import karras_ve_schedule

            timesteps, sigmas, init_sigma = karras_ve_schedule(schedule, STEPS, "linspace", karras=True)
            assert init_sigma == pytest.approx(float(scheduler.init_noise_sigma), rel=1e-6)
        else:
            from zoo_core.samplers.dpm_solver import dpm_solver_timesteps

            timesteps, sigmas = dpm_solver_timesteps(schedule, STEPS, "linspace", karras=True)
        assert timesteps == pytest.approx(scheduler.timesteps.double().tolist(), abs=1e-3)
        assert sigmas == pytest.approx(scheduler.sigmas.double().tolist(), rel=1e-6)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_visited_timesteps_match_diffusers_for_every_step_count(spacing):
    """Every step count 1..T; where diffusers' trailing arange overshoots by one it appends -1, which we never
    visit (e.g. T = 1000, steps = 61)."""
    schedule = NoiseSchedule(timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0)
    scheduler = diffusers.DDPMScheduler(timestep_spacing=spacing, steps_offset=schedule.steps_offset)
    overshoots = []
    for steps in range(1, 1000):
        scheduler.set_timesteps(steps)
        theirs = scheduler.timesteps.tolist()
        assert schedule.timesteps(steps).tolist() == theirs[:steps], steps
        if len(theirs) > steps:
            assert theirs[steps:] == [-1]
            overshoots.append(steps)
    assert (61 in overshoots) == (spacing == "trailing")


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_karras_style_timesteps_and_sigmas_match_diffusers(spacing):
    """The Euler/Heun and DPM-Solver grids (their own spacing rules) for many step counts, ties included."""
    from zoo_core.samplers.common import karras_ve_schedule
    from zoo_core.samplers.dpm_solver import dpm_solver_timesteps

    schedule = NoiseSchedule(timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0)
    config = {"timestep_spacing": spacing, "steps_offset": schedule.steps_offset}
    euler = diffusers.EulerDiscreteScheduler(**config)
    dpm = diffusers.DPMSolverMultistepScheduler(**config)
    for scheduler in (euler, dpm):
        scheduler.alphas_cumprod = schedule.alphas_cumprod
    for steps in [*range(1, 120, 3), 27, 48, 61, 250, 499, 998]:
        euler.set_timesteps(steps)
        timesteps, sigmas, _ = karras_ve_schedule(schedule, steps, spacing, karras=False)
        if len(euler.timesteps) == steps:  # not diffusers' trailing overshoot
            assert timesteps == euler.timesteps.tolist(), steps
            assert sigmas == euler.sigmas.tolist(), steps
        if steps < 999 and (spacing != "leading" or steps < 499):  # else dpm's own grid repeats timesteps
            dpm.set_timesteps(steps)
            if len(dpm.timesteps) != steps:  # diffusers' trailing overshoot again
                continue
            timesteps, sigmas = dpm_solver_timesteps(schedule, steps, spacing, karras=False)
            assert timesteps == dpm.timesteps.tolist(), steps
            assert sigmas == pytest.approx(dpm.sigmas.tolist(), rel=1e-6), steps
