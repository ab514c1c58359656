"""The machine a benchmark ran on, for the header of its table: figures from another machine are not comparable."""

from __future__ import annotations

import os
import platform
from typing import Any


def describe(threads: int | None = None) -> dict[str, Any]:
    import torch

    from zoo_core.hardware import choose_fast_path, cpu_flags

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    flags = cpu_flags()
    fast = choose_fast_path("cpu")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "instruction_set": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": fast.autocast_dtype is not None,
        "bf16_flags": sorted(f for f in flags if "bf16" in f),
        "threads": threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "fast_path": fast.label,
    }


def header(machine: dict[str, Any]) -> str:
    bf16 = "native bf16" if machine["native_bf16"] else "no native bf16"
    return (
        f"{machine['cpu']}, {machine['cores']} cores ({machine['instruction_set']}, {bf16}), "
        f"{machine['threads']} torch threads, torch {machine['torch']}, Python {machine['python']}; "
        f"fast path here: {machine['fast_path']}"
    )
