"""Writing zoo models in other ecosystems' layouts: diffusers pipeline folders and the official checkpoints.

The families say what their model is in the other format (which diffusers classes, which keys); this module holds
what they share: the format names, a folder written atomically (a temporary sibling renamed into place, so an
interrupted export leaves nothing half-written), a diffusers component (``config.json`` + weights, optionally the
``fp16`` variant with diffusers' file naming), ``model_index.json``, and a ``NoiseSchedule`` as the config of the
diffusers scheduler that matches a zoo sampler. Nothing here imports diffusers: the files are plain JSON and
safetensors, which diffusers reads unchanged.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from zoo_core import weights
from zoo_core.errors import ZooError

#: every format ``save_pretrained(dir, format=...)`` / ``zoo export --format`` knows
FORMATS = ("zoo", "diffusers", "official")
#: weight-file variants diffusers names ``<name>.<variant>.safetensors``
VARIANTS = {"fp16": torch.float16, "bf16": torch.bfloat16}
#: the diffusers release whose layout we write (recorded as ``_diffusers_version``, as diffusers itself does)
DIFFUSERS_VERSION = "0.30.0"
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
TRANSFORMERS_WEIGHTS = "model.safetensors"
SCHEDULER_CONFIG = "scheduler_config.json"
MODEL_INDEX = "model_index.json"


class ExportError(ZooError, ValueError):
    """A model asked for a format it has no equivalent in, or an export target that is not usable."""


def unsupported_format(model_name: str, fmt: str, formats: tuple[str, ...]) -> ExportError:
    """The error for a format a model cannot be written in, naming the ones it can."""
    if fmt not in FORMATS:
        return ExportError(f"Unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return ExportError(
        f"{model_name} has no {fmt} equivalent"
        + (" (diffusers has no pipeline for this family)" if fmt == "diffusers" else "")
        + f"; it can be exported as: {', '.join(formats)}"
    )


def check_variant(variant: str | None) -> torch.dtype | None:
    """The dtype of a variant name (None: full precision, files without a variant suffix)."""
    if variant is None:
        return None
    if variant not in VARIANTS:
        raise ExportError(f"Unknown variant {variant!r}; expected one of {', '.join(VARIANTS)} (or none)")
    return VARIANTS[variant]


def variant_name(filename: str, variant: str | None) -> str:
    """``diffusion_pytorch_model.safetensors`` -> ``diffusion_pytorch_model.fp16.safetensors`` (diffusers' naming)."""
    if variant is None:
        return filename
    stem, dot, ext = filename.rpartition(".")
    return f"{stem}.{variant}{dot}{ext}"


def cast_state(state: Mapping[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Floating-point tensors in ``dtype`` (integer buffers unchanged); None keeps them as they are."""
    if dtype is None:
        return dict(state)
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def write_component(
    directory: Path,
    config: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    *,
    weights_name: str = DIFFUSERS_WEIGHTS,
    variant: str | None = None,
) -> Path:
    """One pipeline component (``unet/``, ``vae/``, ``text_encoder/``): its config and its safetensors weights."""
    directory.mkdir(parents=True, exist_ok=True)
    weights.write_json_atomic(dict(config), directory / "config.json")
    weights.save_safetensors(
        cast_state(state, check_variant(variant)),
        directory / variant_name(weights_name, variant),
        metadata={"format": "pt"},
    )
    return directory


def diffusers_config(class_name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A diffusers ``config.json``: the class to build and the version of the layout, then the fields."""
    return {"_class_name": class_name, "_diffusers_version": DIFFUSERS_VERSION, **fields}


def write_model_index(
    directory: Path,
    pipeline_class: str,
    components: Mapping[str, tuple[str, str] | tuple[None, None]],
    **extra: Any,
) -> Path:
    """``model_index.json``: which library and class each component folder holds ((None, None): absent)."""
    index = {
        "_class_name": pipeline_class,
        "_diffusers_version": DIFFUSERS_VERSION,
        **extra,
        **{name: list(value) for name, value in components.items()},
    }
    return weights.write_json_atomic(index, directory / MODEL_INDEX)


# -- schedulers ----------------------------------------------------------------------------------------------------
#: zoo sampler -> (diffusers scheduler class, fixed settings that make it run the same algorithm)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddpm": ("DDPMScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "plms": ("PNDMScheduler", {"skip_prk_steps": True}),
    "dpm++2m": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "lower_order_final": True},
    ),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
}
_COMMON = {
    "num_train_timesteps",
    "beta_schedule",
    "beta_start",
    "beta_end",
    "trained_betas",
    "timestep_spacing",
}
_COMMON |= {"steps_offset", "prediction_type"}
#: the schedule fields each scheduler's constructor takes (others would draw diffusers' "will be ignored" warning)
SCHEDULER_FIELDS: dict[str, set[str]] = {
    "DDPMScheduler": _COMMON | {"clip_sample", "clip_sample_range", "variance_type"},
    "DDIMScheduler": _COMMON | {"clip_sample", "clip_sample_range", "set_alpha_to_one"},
    "PNDMScheduler": _COMMON | {"set_alpha_to_one"},
    "DPMSolverMultistepScheduler": _COMMON | {"use_karras_sigmas"},
    "EulerDiscreteScheduler": _COMMON | {"use_karras_sigmas"},
    "EulerAncestralDiscreteScheduler": _COMMON,
    "HeunDiscreteScheduler": _COMMON | {"clip_sample", "clip_sample_range", "use_karras_sigmas"},
}
_DIFFUSERS_BETA_SCHEDULES = {"linear", "scaled_linear", "squaredcos_cap_v2"}


def scheduler_config(schedule: Any, prediction_type: str, sampler: str | None) -> dict[str, Any]:
    """A ``NoiseSchedule`` as the ``scheduler_config.json`` of the diffusers scheduler matching ``sampler``
    (DDPMScheduler for samplers diffusers has no counterpart of). A schedule diffusers has no name for is written
    as its ``trained_betas``, so the betas are the same either way."""
    class_name, fixed = SCHEDULERS.get(sampler or "ddpm", SCHEDULERS["ddpm"])
    fields = schedule.model_dump(mode="json")
    if fields["beta_schedule"] not in _DIFFUSERS_BETA_SCHEDULES and fields.get("trained_betas") is None:
        fields["trained_betas"] = schedule.betas.tolist()
        fields["beta_schedule"] = "linear"
    fields["prediction_type"] = prediction_type
    kept = {k: v for k, v in fields.items() if k in SCHEDULER_FIELDS[class_name]}
    # the fields this scheduler has no parameter for, under a private key diffusers skips and
    # NoiseSchedule.from_diffusers reads, so the schedule round-trips whole
    rest = {k: v for k, v in fields.items() if k not in kept and k != "prediction_type"}
    return diffusers_config(class_name, {**kept, **fixed, "_zoo_schedule": rest})


def write_scheduler(directory: Path, schedule: Any, prediction_type: str, sampler: str | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return weights.write_json_atomic(
        scheduler_config(schedule, prediction_type, sampler), directory / SCHEDULER_CONFIG
    )


# -- the atomic folder ---------------------------------------------------------------------------------------------
def write_folder(
    out: str | os.PathLike[str], write: Callable[[Path], Any], *, overwrite: bool = False
) -> Path:
    """Run ``write(tmp)`` on a fresh temporary folder next to ``out`` and rename it to ``out`` only when it
    succeeded: a failed or interrupted export leaves ``out`` as it was. An ``out`` that exists and is not empty is
    refused unless ``overwrite``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is a file: give a folder to export into")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(
            f"{out} exists and is not empty: choose another folder, or pass --overwrite to replace it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        write(tmp)
        tmp.chmod(0o777 & ~_umask())
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
