"""One timing helper for every peer benchmark: cases alternate within each repeat, so all see the same load.

Wall time is what a user waits for; process CPU time (this process and the children it waited for) is less
disturbed by other jobs on a shared machine. Peak memory is the kernel's high-water mark of this process during a
call above the memory resident just before it (Linux: reset through /proc/self/clear_refs), so it counts what the
call allocates (activations, gradients, a child's load), not the weights held by both sides.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import resource
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Medians and spread over the timed repeats of one case."""

    wall_s: float
    wall_min_s: float
    wall_max_s: float
    cpu_s: float
    peak_extra_mb: float | None
    repeats: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _release_free_memory() -> None:
    """Hand freed heap back to the kernel (glibc keeps it resident), so the baseline is what is really held and
    a call that re-uses a freed buffer is still counted."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the baseline keeps freed memory
        ctypes.CDLL(name).malloc_trim(0)


def timed_call(fn: Callable[[], Any]) -> tuple[float, float, float | None, Any]:
    """(wall s, CPU s, peak MB above the start or None where the kernel cannot say, result) of one call."""
    _release_free_memory()
    base = _status_kb("VmRSS")
    exact = base is not None and _reset_peak()
    wall, cpu = time.perf_counter(), _cpu_seconds()
    result = fn()
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    peak = _status_kb("VmHWM") if exact else None
    extra = (peak - base) / 1024 if peak is not None and base is not None else None
    return wall, cpu, extra, result


def interleave(
    cases: Mapping[str, Callable[[], Any]], *, repeats: int, warmup: int = 1
) -> tuple[dict[str, Timing], dict[str, Any]]:
    """Time every case ``repeats`` times after ``warmup`` untimed rounds, alternating the order each repeat
    (forward, then backward) so neither side always runs first. Returns the timings and each case's last result."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    peaks: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, Any] = {}
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            wall, cpu, peak, outputs[name] = timed_call(cases[name])
            walls[name].append(wall)
            cpus[name].append(cpu)
            if peak is not None:
                peaks[name].append(peak)
    timings = {
        n: Timing(
            wall_s=statistics.median(walls[n]),
            wall_min_s=min(walls[n]),
            wall_max_s=max(walls[n]),
            cpu_s=statistics.median(cpus[n]),
            peak_extra_mb=max(peaks[n]) if peaks[n] else None,
            repeats=repeats,
        )
        for n in names
    }
    return timings, outputs
