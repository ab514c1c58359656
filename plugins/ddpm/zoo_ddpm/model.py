"""DDPM (Ho, Jain, Abbeel 2020): a UNet that predicts the noise in x_t, with the linear-beta training schedule.

``DDPMModel`` implements the Denoiser protocol, so every registered sampler runs it (``ddpm`` by default, 1000
steps; ``ddim`` with fewer). It reads three weight layouts:

- the zoo format (``config.json`` with ``_zoo_architecture: ddpm.unet`` + ``model.safetensors``);
- a flat diffusers folder (``google/ddpm-cifar10-32``: ``config.json`` + ``diffusion_pytorch_model.safetensors``
  or ``.bin`` + ``scheduler_config.json`` in one directory);
- a diffusers pipeline folder (``model_index.json`` + ``unet/`` + ``scheduler/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from zoo_core import export, weights
from zoo_core.conditioner import labels_for_batch, pop_labels
from zoo_core.config import Config
from zoo_core.errors import ConfigError, WeightsError
from zoo_core.jsonio import read_json_object
from zoo_core.model import ARCH_KEY, CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, Model
from zoo_core.nn import rename_legacy_attention_keys
from zoo_core.schedule import NoiseSchedule
from zoo_core.seeding import GeneratorLike
from zoo_ddpm.unet import UNet2D, UNet2DConfig

#: in order of preference: safetensors first, full precision first (fp16 variant files load as float32)
DIFFUSERS_WEIGHTS = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "diffusion_pytorch_model.bin",
    "diffusion_pytorch_model.fp16.bin",
)
SCHEDULER_CONFIG = "scheduler_config.json"

#: google/ddpm-cifar10-32: the paper's CIFAR-10 network (35.7M parameters) in diffusers' terms.
CIFAR10_UNET: dict[str, Any] = {
    "sample_size": 32,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [128, 256, 256, 256],
    "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "attention_head_dim": None,
    "norm_eps": 1e-6,
    "norm_num_groups": 32,
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
}

#: The paper's schedule: T = 1000, betas linear from 1e-4 to 0.02; x0 clipped and sigma_t^2 = beta_t for CIFAR-10.
PAPER_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "clip_sample": True,
    "variance_type": "fixed_large",
}


class DDPMConfig(Config):
    """The UNet, the noise schedule it was trained with, and what it predicts."""

    unet: UNet2DConfig = Field(default_factory=lambda: UNet2DConfig.parse(CIFAR10_UNET))
    schedule: NoiseSchedule = Field(default_factory=lambda: NoiseSchedule.parse(PAPER_SCHEDULE))
    prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon"


def _directory(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def _unet_dir(directory: Path) -> Path:
    """Where a diffusers UNet lives: ``unet/`` of a pipeline, else the directory itself (the flat layout)."""
    sub = directory / "unet"
    return sub if (sub / CONFIG_NAME).exists() else directory


def _scheduler_config(directory: Path) -> dict[str, Any] | None:
    """The diffusers scheduler config next to a UNet: ``scheduler/`` of a pipeline, the flat root, or the
    ``scheduler/`` sibling of a ``unet/`` folder given directly."""
    for path in (
        directory / "scheduler" / SCHEDULER_CONFIG,
        directory / SCHEDULER_CONFIG,
        directory.parent / "scheduler" / SCHEDULER_CONFIG,
    ):
        if path.exists():
            return read_json_object(path)
    return None


def is_zoo_format(directory: Path) -> bool:
    path = directory / CONFIG_NAME
    return path.exists() and ARCH_KEY in read_json_object(path)


def config_from_diffusers(directory: Path) -> DDPMConfig:
    """A DDPMConfig from a diffusers flat or pipeline folder (UNet config + scheduler config).

    Without a scheduler config the paper's schedule is assumed. The scheduler's ``prediction_type`` (default
    epsilon) is the model's.
    """
    unet_dir = _unet_dir(directory)
    config_path = unet_dir / CONFIG_NAME
    if not config_path.exists():
        raise WeightsError(
            f"{directory} is not a diffusers UNet2DModel folder: no {CONFIG_NAME} (or unet/{CONFIG_NAME})"
        )
    unet = UNet2DConfig.from_diffusers(read_json_object(config_path), where=str(config_path))
    scheduler = _scheduler_config(directory)
    if scheduler is None:
        return DDPMConfig(unet=unet)
    try:
        schedule = NoiseSchedule.from_diffusers(scheduler)
    except ConfigError as exc:
        raise WeightsError(f"The scheduler config in {directory} is not usable: {exc}") from None
    return DDPMConfig.parse(
        {
            "unet": unet,
            "schedule": schedule,
            "prediction_type": scheduler.get("prediction_type") or "epsilon",
        },
        where=str(directory),
    )


def diffusers_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """The UNet weights of a diffusers folder (safetensors preferred, ``.bin`` read with weights_only=True),
    with the attention names of early diffusers releases mapped onto the current ones."""
    unet_dir = _unet_dir(directory)
    for name in DIFFUSERS_WEIGHTS:
        path = unet_dir / name
        if path.exists():
            break
    else:
        raise WeightsError(f"{unet_dir} has no {' or '.join(DIFFUSERS_WEIGHTS)}")
    if path.suffix == ".safetensors":
        state = weights.load_safetensors(path)
    else:
        state = weights.load_torch_checkpoint(path)
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise WeightsError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    state = {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in state.items()}
    return rename_legacy_attention_keys(state)


class DDPMModel(Model):
    """A pixel-space diffusion model: ``predict(x_t, t)`` is the UNet's noise (or x0 / v) prediction."""

    architecture: ClassVar[str] = "ddpm.unet"
    config_class: ClassVar[type[Config]] = DDPMConfig
    kind: ClassVar[str] = "diffusion"
    default_sampler = "ddpm"
    default_steps = 1000
    export_formats: ClassVar[tuple[str, ...]] = ("zoo", "diffusers")
    native_formats: ClassVar[tuple[str, ...]] = (
        *Model.native_formats,
        "diffusers (a DDPMPipeline or UNet2DModel folder, or its diffusion_pytorch_model.safetensors)",
    )
    config: DDPMConfig

    def __init__(self, config: DDPMConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.unet = UNet2D(self.config.unet)

    # -- the Denoiser protocol ----------------------------------------------------------------------------------
    @property
    def schedule(self) -> NoiseSchedule:
        return self.config.schedule

    @property
    def prediction_type(self) -> str:
        return self.config.prediction_type

    @property
    def num_classes(self) -> int | None:
        return self.config.unet.num_class_embeds

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        h, w = self.config.unet.image_size
        return (self.config.unet.in_channels, h, w)

    def check_input(self, x_t: torch.Tensor) -> None:
        """Raise a ValueError naming the bad shape when ``x_t`` is not [B, *sample_shape]."""
        expected = self.sample_shape
        if x_t.ndim != 4 or tuple(x_t.shape[1:]) != expected:
            c, h, w = expected
            got = tuple(x_t.shape)
            raise ValueError(
                f"{type(self).__name__} expects images of shape [B, {c}, {h}, {w}] ({c} channels, {h}x{w} pixels), "
                f"got {list(got)}"
            )

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: Any = None, generator: GeneratorLike = None
    ) -> torch.Tensor:
        """The network output for ``x_t`` [B, C, H, W] at training timesteps ``t`` ([B] or scalar, may be
        fractional); ``cond`` holds class labels [B] for a class-conditional UNet and is None otherwise."""
        return self(x_t, t, cond)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor | float, cond: Any = None) -> torch.Tensor:
        self.check_input(x_t)
        labels = None
        if self.num_classes is not None:
            if cond is None:
                raise ValueError(f"{type(self).__name__} is class-conditional: pass class labels [B] as cond")
            labels = torch.as_tensor(cond, dtype=torch.long, device=x_t.device)
        elif cond is not None:
            raise ValueError(
                f"{type(self).__name__} is unconditional; got a conditioning of type {type(cond)}"
            )
        return self.unet(x_t, t, class_labels=labels)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @classmethod
    def sample_options(cls, config: Config, card: Any = None) -> dict[str, Any]:
        from zoo_core.sampler import SamplerOption

        classes = config.unet.num_class_embeds
        if classes is None:
            return {}
        return {
            "labels": SamplerOption(
                f"class label(s) in 0..{classes - 1}: one for all images, or one per image (alias class_labels)",
                None,
                "required",
            )
        }

    def prepare_conditioning(self, n: int, **kwargs: Any) -> tuple[Any, Any]:
        """Class-conditional UNets take ``labels`` (alias ``class_labels``): an int for all images, or n ints."""
        if self.num_classes is None:
            return super().prepare_conditioning(n, **kwargs)
        labels = pop_labels(kwargs)
        if kwargs or labels is None:
            raise TypeError(
                f"{type(self).__name__}.sample() needs labels=(an int or {n} ints in 0..{self.num_classes - 1})"
                + (f" and got unexpected arguments {sorted(kwargs)}" if kwargs else "")
            )
        return labels_for_batch(labels, n, self.num_classes).to(self.device), self

    # -- weights in three layouts -------------------------------------------------------------------------------
    @classmethod
    def read_config(cls, directory: Path, overrides: Mapping[str, Any] | None = None) -> Config:
        directory = _directory(directory)
        if is_zoo_format(directory) or (
            not (directory / CONFIG_NAME).exists() and not (directory / "unet" / CONFIG_NAME).exists()
        ):
            return super().read_config(directory, overrides)
        return config_from_diffusers(directory)

    @classmethod
    def read_state_dict(cls, directory: Path) -> dict[str, torch.Tensor]:
        if directory.is_file():  # the file given, in our names or a diffusers UNet's
            state = weights.load_state_dict_file(directory)
            if all(k.startswith("unet.") for k in state):
                return state
            return {f"unet.{k}": v for k, v in rename_legacy_attention_keys(state).items()}
        folder = _directory(directory)
        if is_zoo_format(folder) or (folder / WEIGHTS_NAME).exists():
            return super().read_state_dict(folder)
        return {f"unet.{k}": v for k, v in diffusers_state_dict(folder).items()}

    def export(self, directory: Path, format: str, variant: str | None) -> Path:
        """A ``DDPMPipeline`` folder: ``unet/`` (a diffusers ``UNet2DModel``), ``scheduler/`` (the schedule as a
        ``DDPMScheduler`` config, which ``DDIMPipeline`` converts to DDIM on loading) and ``model_index.json``; the
        card beside them keeps zoo's sampler defaults."""
        state = {k.removeprefix("unet."): v for k, v in self.state_dict().items()}
        export.write_component(
            directory / "unet",
            export.diffusers_config("UNet2DModel", self.config.unet.to_diffusers()),
            state,
            variant=variant,
        )
        export.write_scheduler(directory / "scheduler", self.schedule, self.prediction_type, "ddpm")
        export.write_model_index(
            directory,
            "DDPMPipeline",
            {"unet": ("diffusers", "UNet2DModel"), "scheduler": ("diffusers", "DDPMScheduler")},
        )
        if self.card is not None:
            weights.write_json_atomic(self.card.model_dump(mode="json"), directory / CARD_NAME)
        return directory
