"""What every diffusion sampler shares: argument checks, the model call, prediction-type conversion, img2img start.

Notation (shared by the sampler docstrings): a_t is ``alphas_cumprod[t]``, x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps.
Karras-style samplers (Euler, Heun, DPM-Solver) use sigma_t = sqrt((1 - a_t) / a_t); Euler and Heun integrate in the
variance-exploding variable x = x_t / sqrt(a_t) = x0 + sigma eps and feed the network x / sqrt(1 + sigma^2).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import torch

from zoo_core.errors import SamplerError
from zoo_core.prediction import NO_CLIPPING, Clipping, Prediction, check_prediction_type, to_x0_eps
from zoo_core.sampler import Sampler, SamplerOption, StepCallback
from zoo_core.schedule import NoiseSchedule, karras_sigmas, linspace, trailing_timesteps
from zoo_core.seeding import GeneratorLike, randn

T = TypeVar("T")
__all__ = ["DiffusionSampler", "Prediction", "Run", "to_x0_eps"]

#: options every diffusion sampler accepts: img2img start and x0 clipping
COMMON_OPTIONS = frozenset({"init", "strength", "clip_sample"})
SPACINGS = ("leading", "trailing", "linspace")
COMMON_OPTION_INFO = {
    "init": SamplerOption(
        "img2img: start from this image/latent tensor diffused to the first step", None, "none"
    ),
    "strength": SamplerOption(
        "img2img: share of the steps run from init (1: all, the init drowned)", None, "1.0 with init"
    ),
    "clip_sample": SamplerOption("clip x0 to the schedule's range at every step", None, "the schedule's"),
}
SPACING_INFO = SamplerOption("which timesteps: leading, trailing or linspace", None, "the schedule's")


class DiffusionSampler(Sampler):
    """Base of the zoo's diffusion samplers: validates the call, draws the first noise, then runs ``sample``.

    Subclasses implement ``sample(run, noise, steps, **options)``; they keep no state on ``self``.
    """

    kinds: ClassVar[tuple[str, ...]] = ("diffusion",)
    options: ClassVar[frozenset[str]] = COMMON_OPTIONS
    option_info: ClassVar[Mapping[str, SamplerOption]] = COMMON_OPTION_INFO

    def __call__(
        self,
        model: Any,
        shape: tuple[int, ...],
        *,
        steps: int | None = None,
        generator: GeneratorLike = None,
        cond: Any = None,
        x_T: torch.Tensor | None = None,
        callback: StepCallback | None = None,
        progress: bool = False,
        **options: Any,
    ) -> torch.Tensor:
        self.check(model)
        unknown = sorted(set(options) - self.options)
        if unknown:
            raise SamplerError(
                f"Sampler {self.name!r} got unknown option(s) {', '.join(map(repr, unknown))}; "
                f"it accepts: {', '.join(sorted(self.options))}"
            )
        schedule: NoiseSchedule = model.schedule
        steps = check_steps(self.name, steps, self.default_steps, schedule.num_train_timesteps)
        clip_option = options.pop("clip_sample", None)
        clipping = resolve_clipping(self.name, schedule, clip_option)
        run = Run(self.name, model, cond, generator, callback, progress, working_dtype(model, x_T), clipping)
        run.clip_option = clip_option
        noise = run.initial_noise(shape, x_T)
        return self.sample(run, noise, steps, **options)

    def sample(self, run: Run, noise: torch.Tensor, steps: int, **options: Any) -> torch.Tensor:
        raise NotImplementedError

    def parse_options(self, **options: Any) -> dict[str, Any]:
        """Check the sampler's own options (those its base does not take) and return them for ``step``."""
        return options


class Run:
    """One sampling call: the model, its conditioning and random state (nothing outlives the call)."""

    def __init__(
        self,
        sampler: str,
        model: Any,
        cond: Any,
        generator: GeneratorLike,
        callback: StepCallback | None,
        progress: bool,
        dtype: torch.dtype,
        clipping: Clipping = NO_CLIPPING,
    ) -> None:
        self.sampler, self.model, self.cond, self.generator = sampler, model, cond, generator
        self.callback, self.progress, self.dtype, self.clipping = callback, progress, dtype, clipping
        self.schedule: NoiseSchedule = model.schedule
        self.prediction_type: str = check_prediction_type(model.prediction_type)
        self.alphas_cumprod: list[float] = self.schedule.alphas_cumprod.tolist()
        self.clip_option: bool | None = None  # clip_sample as the call gave it (None: the schedule's)
        self.device = torch.device(getattr(model, "device", "cpu"))
        self.model_dtype = getattr(model, "dtype", dtype)

    def initial_noise(self, shape: tuple[int, ...], x_T: torch.Tensor | None) -> torch.Tensor:
        if x_T is None:
            return randn(shape, self.generator, device=self.device, dtype=self.dtype)
        if tuple(x_T.shape) != tuple(shape):
            raise SamplerError(f"x_T has shape {tuple(x_T.shape)}, expected {tuple(shape)}")
        return x_T.to(device=self.device, dtype=self.dtype)

    def noise_like(self, x: torch.Tensor) -> torch.Tensor:
        """Fresh N(0, I) noise from the call's generator(s): the only source of randomness after the start."""
        return randn(x.shape, self.generator, device=x.device, dtype=x.dtype)

    def predict(
        self, x_t: torch.Tensor, t: float | int | torch.Tensor, fractional: bool = False
    ) -> torch.Tensor:
        """The network's raw output at timestep ``t`` for the whole batch, in the working dtype.

        ``t`` goes to the model as a [B] tensor: int64 for training timesteps, float32 when ``fractional``
        (Karras-sigma timesteps), as diffusers passes them.
        """
        value = float(t) if fractional else round(float(t))
        dtype = torch.float32 if fractional else torch.int64
        t_batch = torch.full((x_t.shape[0],), value, dtype=dtype, device=x_t.device)
        out = self.model.predict(x_t.to(self.model_dtype), t_batch, self.cond, self.generator)
        return out.to(self.dtype)

    def denoise(
        self,
        x_t: torch.Tensor,
        t: float | int | torch.Tensor,
        alpha: float,
        sigma: float,
        fractional: bool = False,
    ) -> Prediction:
        """One network evaluation at x_t = alpha x0 + sigma eps, readable as x0 / eps / v (the core converts)."""
        return Prediction(
            self.predict(x_t, t, fractional), x_t, alpha, sigma, self.prediction_type, self.clipping
        )

    def denoise_at(self, x_t: torch.Tensor, t: int) -> Prediction:
        """``denoise`` at training timestep t: alpha = sqrt(a_t), sigma = sqrt(1 - a_t)."""
        a_t = self.alphas_cumprod[t]
        return self.denoise(x_t, t, a_t**0.5, (1 - a_t) ** 0.5)

    def denoise_ve(self, x: torch.Tensor, t: float, sigma: float) -> Prediction:
        """``denoise`` of the variance-exploding x = x0 + sigma eps: the network sees x / sqrt(1 + sigma^2) at the
        (fractional) timestep t of sigma; ``derivative(x, sigma)`` is then the probability-flow dx/dsigma."""
        alpha = (1 + sigma**2) ** -0.5
        return self.denoise(x * alpha, t, alpha, sigma * alpha, fractional=True)

    def steps(self, items: Iterable[T], total: int | None = None) -> Iterator[T]:
        return progress_bar(items, self.progress, desc=self.sampler, total=total)

    def step_done(self, i: int, t: Any, x: torch.Tensor) -> None:
        if self.callback is not None:
            self.callback(i, t, x)


# -- argument checks ----------------------------------------------------------------------------------------------
def check_steps(sampler: str, steps: int | None, default: int | None, num_train_timesteps: int) -> int:
    """``steps``, checked against 1..T; when not given, the sampler's default (capped at T, None meaning T)."""
    if steps is None:
        steps = min(default, num_train_timesteps) if default is not None else num_train_timesteps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= num_train_timesteps:
        raise SamplerError(
            f"Sampler {sampler!r}: steps must be an integer in 1..{num_train_timesteps} (the model's training "
            f"timesteps), got {steps!r}"
        )
    return steps


def check_eta(sampler: str, eta: float) -> float:
    if not isinstance(eta, (int, float)) or isinstance(eta, bool) or not eta >= 0:
        raise SamplerError(
            f"Sampler {sampler!r}: eta must be a number >= 0 (0 = deterministic, 1 = DDPM-like noise), got {eta!r}"
        )
    return float(eta)


def check_spacing(sampler: str, spacing: str) -> str:
    if spacing not in SPACINGS:
        raise SamplerError(
            f"Sampler {sampler!r}: timestep_spacing must be one of {', '.join(SPACINGS)}, got {spacing!r}"
        )
    return spacing


def visited_timesteps(sampler: str, schedule: NoiseSchedule, steps: int, spacing: str | None) -> list[int]:
    """The training timesteps a discrete sampler visits, decreasing, spaced as diffusers does (checked)."""
    spacing = check_spacing(sampler, spacing or schedule.timestep_spacing)
    timesteps = schedule.timesteps(steps, spacing).tolist()
    if len(set(timesteps)) != len(timesteps) or not 0 <= min(timesteps) <= max(timesteps) < len(
        schedule.betas
    ):
        raise SamplerError(
            f"Sampler {sampler!r}: {steps} steps with {spacing} spacing and steps_offset {schedule.steps_offset} "
            f"give timesteps outside 0..{schedule.num_train_timesteps - 1} or repeated; use fewer steps or "
            "another timestep_spacing"
        )
    return timesteps


def working_dtype(model: Any, x_T: torch.Tensor | None = None) -> torch.dtype:
    """Samplers integrate in float64 for a float64 model (or x_T), else float32 (also for half-precision models)."""
    dtype = x_T.dtype if x_T is not None else getattr(model, "dtype", torch.float32)
    return torch.float64 if dtype == torch.float64 else torch.float32


# -- maths --------------------------------------------------------------------------------------------------------
def resolve_clipping(sampler: str, schedule: NoiseSchedule, clip: bool | None) -> Clipping:
    """The x0 clipping of a call: the ``clip_sample`` option, defaulting to the model's schedule (as the checkpoint
    was published), with the schedule's range and dynamic thresholding."""
    if clip is not None and not isinstance(clip, bool):
        raise SamplerError(f"Sampler {sampler!r}: clip_sample must be true or false, got {clip!r}")
    return Clipping(
        clip=schedule.clip_sample if clip is None else clip,
        clip_range=schedule.clip_sample_range,
        thresholding=schedule.thresholding,
        threshold_ratio=schedule.dynamic_thresholding_ratio,
        sample_max_value=schedule.sample_max_value,
    )


def ancestral_sigmas(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """(sigma_down, sigma_up): a deterministic step to sigma_down, then fresh noise of std sigma_up, so that the
    marginal noise level is sigma_to (sigma_down^2 + sigma_up^2 = sigma_to^2); eta = 1 is full ancestral noise."""
    if sigma_to == 0:
        return 0.0, 0.0
    up = min(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    return (sigma_to**2 - up**2) ** 0.5, up


def karras_ve_schedule(
    schedule: NoiseSchedule, steps: int, spacing: str, karras: bool
) -> tuple[list[float], list[float], float]:
    """(timesteps, sigmas, initial sigma) of the Euler / Heun samplers, as diffusers' discrete schedulers set them.

    ``steps`` (possibly fractional) timesteps spaced per ``spacing``, their sigmas interpolated linearly in t, then
    ``steps + 1`` sigmas ending at 0. With ``karras`` the sigmas are Karras et al.'s rho = 7 ramp between the first
    and last spaced sigma, and the timesteps follow them (log-sigma interpolation, fractional). The initial noise is
    N(0, sigma_max^2 I), or N(0, (sigma_max^2 + 1) I) with ``leading`` spacing (a diffusers convention kept for parity).
    """
    T = schedule.num_train_timesteps
    if spacing == "linspace":
        t = linspace(T - 1, steps).float().double().flip(0)  # diffusers: float32 timesteps
    elif spacing == "leading":
        t = (torch.arange(steps, dtype=torch.float64) * (T // steps)).flip(0) + schedule.steps_offset
    else:
        t = trailing_timesteps(T, steps)
    sigmas = schedule.sigma_at(t)
    if karras:
        sigmas = karras_sigmas(float(sigmas[-1]), float(sigmas[0]), steps)
        t = schedule.timestep_of_sigma(sigmas)
    # diffusers keeps timesteps and sigmas in float32: use the same values
    sigma_list = [*sigmas.float().tolist(), 0.0]
    sigma_max = max(sigma_list)
    init_sigma = sigma_max if spacing in ("linspace", "trailing") else (sigma_max**2 + 1) ** 0.5
    return t.float().tolist(), sigma_list, init_sigma


# -- img2img ------------------------------------------------------------------------------------------------------
def start_index(sampler: str, steps: int, strength: float | None, init: torch.Tensor | None) -> int:
    """How many of the ``steps`` to skip for img2img: diffusers' int(steps * strength) steps are run.

    ``strength`` 1 starts from pure noise (the init is drowned), small strengths stay close to ``init``.
    """
    if init is None:
        if strength is not None:
            raise SamplerError(f"Sampler {sampler!r}: strength needs an init latent (init=...)")
        return 0
    strength = 1.0 if strength is None else strength
    if not isinstance(strength, (int, float)) or not 0 < strength <= 1:
        raise SamplerError(f"Sampler {sampler!r}: strength must be in (0, 1], got {strength!r}")
    run_steps = min(int(steps * strength), steps)
    if run_steps < 1:
        raise SamplerError(
            f"Sampler {sampler!r}: strength {strength} with {steps} steps runs no step; "
            f"use strength >= {1 / steps:.3g} or more steps"
        )
    return steps - run_steps


def check_init(init: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    if tuple(init.shape) != tuple(noise.shape):
        raise SamplerError(f"init has shape {tuple(init.shape)}, expected {tuple(noise.shape)}")
    return init.to(device=noise.device, dtype=noise.dtype)


# -- progress -----------------------------------------------------------------------------------------------------
def progress_bar(items: Iterable[T], show: bool, desc: str = "", total: int | None = None) -> Iterator[T]:
    """``items``, wrapped in a tqdm bar only when ``show`` (tqdm is imported only then)."""
    if not show:
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, total=total, leave=False)
