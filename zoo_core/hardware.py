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
