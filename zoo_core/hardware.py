"""The fast path for the hardware at hand: bf16 autocast only where it is native, channels_last fp32 elsewhere.

bf16 autocast is no speed-up by itself: on a CPU without native bf16 (AVX2 only) oneDNN emulates it and a DDPM UNet
forward runs 6.5x *slower* than fp32, with DDIM samples that drift; on a CPU with AVX512-BF16 or AMX it runs 1.9x
faster (``python -m benchmarks run --only unet_forward`` on the machines these figures come from). So
``dtype="auto"`` asks the hardware: bf16 where the CPU reports native bf16 instructions or a GPU supports it, fp16 on older GPUs, and
otherwise fp32 weights in channels_last memory format. Weights stay fp32 in every case: autocast runs the network's
matrix products in the low precision while the sampler's update arithmetic stays fp32.
"""

from __future__ import annotations

import contextlib
import math
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

#: the /proc/cpuinfo flags of native bf16 arithmetic (AVX512-BF16 dot products, AMX tiles)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class FastPath:
    """How to run a model fast on ``device``: autocast dtype (None: fp32) and memory format, and why."""

    device: str
    autocast_dtype: torch.dtype | None
    channels_last: bool
    reason: str

    @property
    def label(self) -> str:
        precision = "fp32" if self.autocast_dtype is None else f"{str(self.autocast_dtype)[6:]} autocast"
        return precision + (" + channels_last" if self.channels_last else "")

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The autocast region for the network's forward passes (nothing for fp32)."""
        if self.autocast_dtype is None:
            yield
            return
        with torch.autocast(self.device, dtype=self.autocast_dtype):
            yield


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags as Linux reports them (empty where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.partition(":")[2].split())
    return set()


def cpu_native_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU has native bf16 arithmetic (AVX512-BF16 or AMX on x86; BF16 in Armv8.6+ on Arm)."""
    flags = cpu_flags() if flags is None else flags
    if any(flag in flags for flag in NATIVE_BF16_FLAGS):
        return True
    return platform.machine().lower() in ("aarch64", "arm64") and "bf16" in flags


def choose_fast_path(device: torch.device | str | None = None, *, flags: set[str] | None = None) -> FastPath:
    """The fastest numerically safe way to run on ``device`` (default: the CPU), with the reason in words."""
    kind = torch.device(device or "cpu").type
    if kind == "cuda":
        if torch.cuda.is_bf16_supported():
            return FastPath("cuda", torch.bfloat16, True, "the GPU supports bf16")
        return FastPath("cuda", torch.float16, True, "the GPU has no bf16: fp16 autocast")
    if kind != "cpu":
        return FastPath(kind, None, False, f"no fast path is chosen for {kind!r} devices: fp32")
    capability = torch.backends.cpu.get_cpu_capability()
    if cpu_native_bf16(flags):
        return FastPath("cpu", torch.bfloat16, True, f"the CPU ({capability}) has native bf16 instructions")
    return FastPath(
        "cpu",
        None,
        True,
        f"the CPU ({capability}) has no native bf16 (bf16 autocast would be emulated and slower): fp32",
    )


def default_threads(cpus: int | None = None, load: float | None = None) -> int:
    """Intra-op threads for sampling on the CPU when neither ``--threads`` nor OMP_NUM_THREADS says: the CPUs not
    already busy (usable CPUs minus the 1-minute load average, at least 1).

    Small-op networks (the DDGAN generator) collapse when torch's default of one thread per core competes with
    another busy process: on a 2-core machine with one busy process, 64 DDGAN digits took 1.5-4.8 s with 2 threads
    and 0.7-0.9 s with 1 (0.65-0.73 s with 2 threads when idle). Leaving the busy cores alone avoids the collapse.
    """
    import os

    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
    return max(1, min(cpus, math.floor(cpus - load + 0.5)))


def estimate_batch_size(
    per_image_bytes: int, free_bytes: int | None, device: str, cap: int | None = None
) -> int:
    """Images per batch: a quarter of the free memory over what one image needs, capped (64 on the CPU, where
    larger batches are no faster; 256 on a GPU)."""
    cap = cap or (64 if device == "cpu" else 256)
    if free_bytes is None or per_image_bytes <= 0:
        return cap
    return max(1, min(cap, free_bytes // 4 // per_image_bytes))
