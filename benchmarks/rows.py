"""What the peer benchmarks compare: ours against diffusers on the same architecture and the same weights.

Each row is built by a function of the size (``tiny`` for the test suite's smoke run, ``quick``, ``full``) and
returns a ``Row``: named cases (ours first, then the peer, then extra variants such as the hardware's fast path),
a check run on the cases' outputs (agreement figures; a row whose outputs disagree raises), and how many
items one call produces. Rows are built one at a time, so only one row's models are in memory.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

Size = Literal["tiny", "quick", "full"]
OURS, PEER = "zoo", "diffusers"


@dataclass
class Row:
    name: str
    title: str
    cases: dict[str, Callable[[], Any]]
    repeats: int
    warmup: int = 1
    items: int = 1
    unit: str = "call"
    check: Callable[[dict[str, Any]], dict[str, float]] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: the cases run a child process and return its peak resident memory (MB), reported instead of ours
    child_peak: bool = False


def _pick(size: Size, tiny: Any, quick: Any, full: Any) -> Any:
    return {"tiny": tiny, "quick": quick, "full": full}[size]


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def _agree(figures: dict[str, float], key: str, bound: float) -> dict[str, float]:
    """Raise when ours and the peer disagree: a speed figure for a different computation means nothing."""
    if not figures[key] <= bound:
        raise AssertionError(f"{key} = {figures[key]:.3g} exceeds {bound:g}: ours and the peer disagree")
    return figures


# -- the DDPM UNet (google/ddpm-cifar10-32's architecture) ------------------------------------------------------
SMALL_UNET: dict[str, Any] = {  # the same block layout, narrower and shallower, for the tiny size
    "sample_size": 16,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
    "attention_head_dim": None,
    "norm_num_groups": 8,
    "norm_eps": 1e-6,
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
}


def _unet_config(size: Size) -> dict[str, Any]:
    from zoo_ddpm.model import CIFAR10_UNET

    return dict(SMALL_UNET) if size == "tiny" else dict(CIFAR10_UNET)


def _random_unets(config: dict[str, Any], seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(diffusers UNet2DModel, our UNet2D) with the same random weights (not zero-initialised layers, which
    would make the comparison trivial)."""
    from diffusers import UNet2DModel
    from zoo_ddpm.unet import UNet2D, UNet2DConfig

    torch.manual_seed(seed)
    reference = UNet2DModel(**config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in reference.named_parameters():
            scale = 1.0 if "norm" in name and name.endswith("weight") else 0.0
            p.copy_(torch.randn(p.shape, generator=generator) * 0.02 + scale)
    ours = UNet2D(UNet2DConfig.parse(config)).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference, ours


def unet_forward(size: Size) -> Row:
    from zoo_core.hardware import choose_fast_path

    config = _unet_config(size)
    batch = _pick(size, 1, 2, 8)
    reference, ours = _random_unets(config)
    fast_unet = _random_unets(config)[1].to(memory_format=torch.channels_last)
    fast = choose_fast_path("cpu")
    generator = torch.Generator().manual_seed(1)
    side = config["sample_size"]
    x = torch.randn(batch, config["in_channels"], side, side, generator=generator)
    t = torch.randint(0, 1000, (batch,), generator=generator)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def run_fast() -> torch.Tensor:
        with fast.autocast():
            return fast_unet(x_cl, t)

    def check(out: dict[str, Any]) -> dict[str, float]:
        figures = {
            "max_abs_diff_vs_diffusers": _max_abs(out[OURS], out[PEER]),
            "fast_path_max_abs_diff": _max_abs(out[f"{OURS} fast path"], out[OURS]),
            "fast_path_mean_abs_diff": float((out[f"{OURS} fast path"].float() - out[OURS]).abs().mean()),
        }
        return _agree(figures, "max_abs_diff_vs_diffusers", 1e-4)

    cases = {OURS: lambda: ours(x, t), PEER: lambda: reference(x, t).sample, f"{OURS} fast path": run_fast}
    return Row(
        "unet_forward",
        f"DDPM UNet forward, {'CIFAR-10' if size != 'tiny' else 'small'} config, batch {batch} x {side}x{side}",
        {name: _no_grad(fn) for name, fn in cases.items()},
        repeats=_pick(size, 3, 3, 7),
        items=batch,
        unit="image",
        check=check,
        info={"fast_path": fast.label, "batch": batch},
    )


def _no_grad(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode():
            return fn()

    return run


def ddim_sampling(size: Size) -> Row:
    from diffusers import DDIMScheduler
    from zoo_ddpm.model import DDPMModel

    import zoo
    from zoo_core.hardware import choose_fast_path

    config = _unet_config(size)
    batch, steps = _pick(size, (1, 2), (2, 5), (4, 10))
    reference, ours_unet = _random_unets(config)
    model = DDPMModel({"unet": config}).eval()  # the paper's schedule
    model.unet.load_state_dict(ours_unet.state_dict())
    fast_model = DDPMModel({"unet": config}).eval()
    fast_model.unet.load_state_dict(ours_unet.state_dict())
    fast_model.use_fast_path(choose_fast_path("cpu"))
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=True)
    ddim = zoo.get_sampler("ddim")
    side = config["sample_size"]
    shape = (batch, config["in_channels"], side, side)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))

    def run_diffusers() -> torch.Tensor:
        scheduler.set_timesteps(steps)
        x = noise.clone()
        for t in scheduler.timesteps:
            x = scheduler.step(reference(x, t).sample, t, x, eta=0.0).prev_sample
        return x

    def run_fast() -> torch.Tensor:
        with fast_model.fast_path.autocast():
            return ddim(fast_model, shape, steps=steps, x_T=noise.clone(), eta=0.0).float()

    def check(out: dict[str, Any]) -> dict[str, float]:
        figures = {
            "max_abs_diff_vs_diffusers": _max_abs(out[OURS], out[PEER]),
            "fast_path_max_abs_diff": _max_abs(out[f"{OURS} fast path"], out[OURS]),
        }
        return _agree(figures, "max_abs_diff_vs_diffusers", 1e-3)

    cases = {
        OURS: lambda: ddim(model, shape, steps=steps, x_T=noise.clone(), eta=0.0),
        PEER: run_diffusers,
        f"{OURS} fast path": run_fast,
    }
    return Row(
        "ddim_sampling",
        f"DDIM sampling, {steps} steps, batch {batch} x {side}x{side} (diffusers: UNet2DModel + DDIMScheduler)",
        {name: _no_grad(fn) for name, fn in cases.items()},
        repeats=_pick(size, 3, 3, 5),
        items=batch,
        unit="image",
        check=check,
        info={"steps": steps, "fast_path": fast_model.fast_path.label},
    )


# -- latent text-to-image -------------------------------------------------------------------------------------
def _shape_prompts(n: int) -> list[str]:
    from zoo_core.data.shapes import draw_spec

    return [draw_spec(i, 32, seed=12345).caption for i in range(n)]


def diffusers_pipeline(model: Any) -> Any:
    """A diffusers StableDiffusionPipeline holding the weights of our latent model."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    c = model.config
    unet = UNet2DConditionModel(**c.unet.model_dump())
    unet.load_state_dict(model.unet.state_dict())
    vae = AutoencoderKL(**c.vae.model_dump())
    vae.load_state_dict(model.vae.state_dict())
    tokenizer = CLIPTokenizer.from_pretrained(str(model.tokenizer.save_pretrained(tempfile.mkdtemp())))
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            **c.text_encoder.model_dump(),
            bos_token_id=model.tokenizer.bos_token_id,
            pad_token_id=model.tokenizer.pad_token_id,
        )
    )
    state = model.text_encoder.state_dict()
    if not any(k.startswith("text_model.") for k in text_encoder.state_dict()):  # transformers >= 5 drops it
        state = {k.removeprefix("text_model."): v for k, v in state.items()}
    missing, unexpected = text_encoder.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("position_ids")]:
        raise RuntimeError(f"text encoder weights do not map: missing {missing}, unexpected {unexpected}")
    s = c.schedule
    scheduler = DDIMScheduler(
        num_train_timesteps=s.num_train_timesteps,
        beta_start=s.beta_start,
        beta_end=s.beta_end,
        beta_schedule=s.beta_schedule,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=s.steps_offset,
    )
    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sd_tiny_pipeline(size: Size) -> Row:
    import zoo

    n, steps = _pick(size, (2, 2), (8, 10), (8, 20))
    model = zoo.load("t2i")
    pipe = diffusers_pipeline(model)
    texts = _shape_prompts(n)
    scale = model.config.guidance_scale
    height = model.default_size[0]
    latents = torch.randn(n, *model.sample_shape, generator=torch.Generator().manual_seed(0))

    def run_ours() -> torch.Tensor:
        return model.sample(n, prompt=texts, sampler="ddim", steps=steps, guidance_scale=scale, x_T=latents)

    def run_diffusers() -> torch.Tensor:
        images = pipe(
            texts,
            height=height,
            width=height,
            num_inference_steps=steps,
            guidance_scale=scale,
            latents=latents.clone(),
            output_type="pt",
        ).images
        return images * 2 - 1

    def check(out: dict[str, Any]) -> dict[str, float]:
        return _agree(
            {"max_abs_diff_vs_diffusers": _max_abs(out[OURS], out[PEER])}, "max_abs_diff_vs_diffusers", 1e-3
        )

    return Row(
        "sd_tiny_pipeline",
        f"embedded t2i (SD v1 architecture, 1.75M params): {n} images, {steps} DDIM steps with CFG",
        {OURS: _no_grad(run_ours), PEER: _no_grad(run_diffusers)},
        repeats=_pick(size, 3, 3, 5),
        items=n,
        unit="image",
        check=check,
    )


def _sd_unets(size: Size) -> tuple[torch.nn.Module, torch.nn.Module, dict[str, Any]]:
    """(ours, diffusers') UNet2DConditionModel with the same seeded random weights: SD v1.5's config, or a tiny one."""
    from diffusers import UNet2DConditionModel as Reference
    from zoo_latent.model import SD1_UNET
    from zoo_latent.unet import UNet2DConditionModel

    config = dict(SD1_UNET)
    if size == "tiny":
        config.update(
            block_out_channels=[32, 64],
            down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
            cross_attention_dim=32,
            attention_head_dim=8,
            layers_per_block=1,
            sample_size=8,
        )
    with torch.device("meta"):
        nets = (UNet2DConditionModel(config), Reference(**config))
    ours, reference = (net.to_empty(device="cpu") for net in nets)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in sorted(reference.state_dict().items()):
            if name.endswith("weight") and ("norm" in name or p.ndim == 1):
                p.copy_(1 + 0.02 * torch.randn(p.shape, generator=generator))
            else:  # std 1 / sqrt(fan in) keeps activations finite through the 16 blocks
                fan_in = p[0].numel() if p.ndim > 1 else 1
                p.copy_(
                    torch.randn(p.shape, generator=generator) * fan_in**-0.5 * (1.0 if p.ndim > 1 else 0.02)
                )
    ours.load_state_dict(reference.state_dict(), strict=True)
    return ours.eval(), reference.eval(), config


def sd15_unet_step(size: Size) -> Row:
    ours, reference, config = _sd_unets(size)
    side = _pick(size, 8, 64, 64)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, side, side, generator=generator)
    t = torch.tensor([500, 500])
    context = torch.randn(2, 77, config["cross_attention_dim"], generator=generator)

    def check(out: dict[str, Any]) -> dict[str, float]:
        rms = float(out[PEER].pow(2).mean().sqrt())
        figures = {"max_abs_diff_vs_diffusers": _max_abs(out[OURS], out[PEER]), "output_rms": rms}
        return _agree(figures, "max_abs_diff_vs_diffusers", 1e-3 * max(rms, 1.0))

    return Row(
        "sd15_unet_step",
        ("Stable Diffusion v1.5 UNet (860M params, random weights)" if size != "tiny" else "tiny SD UNet")
        + f": one step, batch 2 (as under CFG), {side}x{side} latents, 77 tokens",
        {
            OURS: _no_grad(lambda: ours(x, t, context)),
            PEER: _no_grad(lambda: reference(x, t, encoder_hidden_states=context).sample),
        },
        repeats=_pick(size, 3, 1, 3),
        # one untimed round even in --quick: with a single timed repeat and no warmup, the case run first (ours)
        # would be the only one timed cold.
        warmup=1,
        check=check,
    )


# -- training ---------------------------------------------------------------------------------------------------
EMBEDDED_DDPM_CONFIG = Path(__file__).resolve().parents[1] / "plugins/ddpm/zoo_ddpm/configs/ddpm-digits.yaml"


def train_step(size: Size) -> Row:
    """One optimizer step of the embedded DDPM's training config: ours through the trainer's loss, diffusers'
    UNet2DModel with DDPMScheduler.add_noise and the same MSE, the same initial weights and batches."""
    import yaml
    from diffusers import DDPMScheduler, UNet2DModel
    from zoo_ddpm.model import DDPMModel
    from zoo_ddpm.trainer import ddpm_loss

    recipe = yaml.safe_load(EMBEDDED_DDPM_CONFIG.read_text(encoding="utf-8"))
    unet_config = dict(recipe["model"]["unet"])
    batch = _pick(size, 4, 64, recipe["batch_size"])
    torch.manual_seed(0)
    reference = UNet2DModel(**unet_config).train()
    ours = DDPMModel(recipe["model"]).train()
    ours.unet.load_state_dict(reference.state_dict(), strict=True)
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02
    )
    lr = float(recipe["lr"])
    optimizers = {
        OURS: torch.optim.AdamW(ours.parameters(), lr=lr),
        PEER: torch.optim.AdamW(reference.parameters(), lr=lr),
    }
    side, channels = unet_config["sample_size"], unet_config["in_channels"]
    batches = {OURS: torch.Generator().manual_seed(0), PEER: torch.Generator().manual_seed(0)}
    first_loss: dict[str, float] = {}

    def draw(who: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = batches[who]  # each side draws the same sequence of batches from its own generator
        x0 = torch.rand(batch, channels, side, side, generator=g) * 2 - 1
        t = torch.randint(0, 1000, (batch,), generator=g)
        return x0, t, torch.randn(x0.shape, generator=g)

    def step(who: str, loss_fn: Callable[..., torch.Tensor]) -> float:
        x0, t, noise = draw(who)
        loss = loss_fn(x0, t, noise)
        loss.backward()
        optimizers[who].step()
        optimizers[who].zero_grad(set_to_none=True)
        first_loss.setdefault(who, float(loss.detach()))
        return float(loss.detach())

    def peer_loss(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x_t = scheduler.add_noise(x0, noise, t)
        return F.mse_loss(reference(x_t, t).sample.float(), noise.float())

    def check(out: dict[str, Any]) -> dict[str, float]:
        figures = {
            "first_loss": first_loss[OURS],
            "first_loss_abs_diff": abs(first_loss[OURS] - first_loss[PEER]),
        }
        return _agree(figures, "first_loss_abs_diff", 1e-5)

    return Row(
        "train_step",
        f"training step of the embedded ddpm config (1.1M params, 16x16, batch {batch}, AdamW): "
        "diffusers UNet2DModel + DDPMScheduler",
        {
            OURS: lambda: step(OURS, lambda x0, t, noise: ddpm_loss(ours, x0, t, noise)),
            PEER: lambda: step(PEER, peer_loss),
        },
        repeats=_pick(size, 3, 10, 20),
        warmup=0,  # the first step's losses are compared, so no untimed step may come before
        items=batch,
        unit="image",
        check=check,
    )


# -- start-up -------------------------------------------------------------------------------------------------
# The child's own high-water mark: ru_maxrss is carried across fork and exec (a child of a 1 GB parent
# reports 1 GB), /proc/self/status's VmHWM belongs to the new address space.
PEAK_PROBE = (
    "\nimport sys\nsys.stdout.write('\\npeak_kb=' + next(l.split()[1] for l in open('/proc/self/status')"
    " if l.startswith('VmHWM:')))"
)


def _python(code: str) -> Callable[[], float]:
    """A case that runs ``code`` in a fresh interpreter and returns that interpreter's peak resident MB."""

    def run() -> float:
        out = subprocess.run(
            [sys.executable, "-c", code + PEAK_PROBE], check=True, capture_output=True, text=True
        )
        return int(out.stdout.rpartition("peak_kb=")[2]) / 1024

    return run


def import_zoo(size: Size) -> Row:
    return Row(
        "import_zoo",
        "`import zoo` in a fresh interpreter (diffusers: `import diffusers`)",
        {OURS: _python("import zoo"), PEER: _python("import diffusers")},
        repeats=_pick(size, 3, 3, 7),
        child_peak=True,
    )


def zoo_list(size: Size) -> Row:
    code = "import contextlib, io\nfrom zoo_core.cli import main\nwith contextlib.redirect_stdout(io.StringIO()): main(['list'])"
    return Row(
        "zoo_list",
        "`zoo list` with every installed plugin (against `import torch`, which it must not need)",
        {OURS: _python(code), "import torch": _python("import torch")},
        repeats=_pick(size, 3, 3, 7),
        child_peak=True,
    )


def load_cold_start(size: Size) -> Row:
    """``zoo.load("ddpm")`` in a fresh interpreter against diffusers loading the same weights in its layout."""
    from diffusers import UNet2DModel

    import zoo

    model = zoo.load("ddpm")
    folder = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    reference = UNet2DModel(**model.config.unet.model_dump())
    reference.load_state_dict(model.unet.state_dict())
    reference.save_pretrained(folder)
    return Row(
        "load_cold_start",
        "`zoo.load('ddpm')` cold, fresh interpreter (diffusers: `UNet2DModel.from_pretrained` of the same weights)",
        {
            OURS: _python("import zoo; zoo.load('ddpm')"),
            PEER: _python(f"from diffusers import UNet2DModel; UNet2DModel.from_pretrained({str(folder)!r})"),
        },
        repeats=_pick(size, 3, 3, 5),
        child_peak=True,
    )


ROWS: dict[str, Callable[[Size], Row]] = {
    "unet_forward": unet_forward,
    "ddim_sampling": ddim_sampling,
    "sd_tiny_pipeline": sd_tiny_pipeline,
    "sd15_unet_step": sd15_unet_step,
    "train_step": train_step,
    "import_zoo": import_zoo,
    "zoo_list": zoo_list,
    "load_cold_start": load_cold_start,
}
