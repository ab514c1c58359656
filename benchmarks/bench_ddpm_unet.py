"""Our DDPM UNet against diffusers' UNet2DModel: same architecture (google/ddpm-cifar10-32, full width), same
weights, one process, one run.

    python benchmarks/bench_ddpm_unet.py [--batch 8] [--repeats 10] [--threads N]

Timed: one forward pass (inference mode) on a batch of 32x32 images at random timesteps. Ours and diffusers
alternate within every repeat, so both see the same machine load; each figure is the median over the repeats.
"fp32 channels_last" is ours with channels_last weights and input; the fast path is the one ``dtype="auto"`` picks
for this machine (zoo_core.hardware: bf16 autocast + channels_last only where the CPU has native bf16, else
channels_last fp32; the header says which), and its output is compared to our fp32 output (max and mean abs diff, and the output's RMS for scale). ``speedup`` is
diffusers' median time over ours (>= 1 means ours is at least as fast); the CPU columns do the same with process
CPU time. Prints a table and a JSON line.

On a shared CPU, pass ``--threads 1``: a thread pool spinning against other jobs makes timings erratic.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from zoo_core.hardware import choose_fast_path


def build(seed: int = 0):
    from diffusers import UNet2DModel
    from zoo_ddpm.model import CIFAR10_UNET
    from zoo_ddpm.unet import UNet2D, UNet2DConfig

    torch.manual_seed(seed)
    reference = UNet2DModel(**CIFAR10_UNET).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # zero-initialised layers would make the comparison trivial
        for name, p in reference.named_parameters():
            p.copy_(
                torch.randn(p.shape, generator=gen) * 0.02
                + (1.0 if "norm" in name and name.endswith("weight") else 0.0)
            )
    ours = UNet2D(UNet2DConfig.parse(CIFAR10_UNET)).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    fast = UNet2D(UNet2DConfig.parse(CIFAR10_UNET)).eval()
    fast.load_state_dict(reference.state_dict(), strict=True)
    fast = fast.to(memory_format=torch.channels_last)  # used both in fp32 and under bf16 autocast
    return reference, ours, fast


def timed(fn: Callable[[], torch.Tensor]) -> tuple[float, float, torch.Tensor]:
    """(wall seconds, process CPU seconds, output): CPU time is less disturbed by other jobs on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    reference, ours, fast = build()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 3, 32, 32, generator=gen)
    t = torch.randint(0, 1000, (args.batch,), generator=gen)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def run_reference() -> torch.Tensor:
        return reference(x, t).sample

    def run_ours() -> torch.Tensor:
        return ours(x, t)

    def run_channels_last() -> torch.Tensor:
        return fast(x_cl, t)

    fast_path = choose_fast_path("cpu")

    def run_fast() -> torch.Tensor:
        with fast_path.autocast():
            return fast(x_cl, t)

    cases = {
        "diffusers UNet2DModel fp32": run_reference,
        "zoo UNet2D fp32": run_ours,
        "zoo fp32 channels_last": run_channels_last,
        "zoo fast path": run_fast,
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpu_times: dict[str, list[float]] = {name: [] for name in cases}
    outputs: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for _ in range(args.warmup):
            for fn in cases.values():
                fn()
        for _ in range(args.repeats):
            for name, fn in cases.items():
                seconds, cpu_seconds, outputs[name] = timed(fn)
                times[name].append(seconds)
                cpu_times[name].append(cpu_seconds)

    median = {name: statistics.median(v) for name, v in times.items()}
    cpu_median = {name: statistics.median(v) for name, v in cpu_times.items()}
    cpu_base = cpu_median["diffusers UNet2DModel fp32"]
    ref_out, ours_out, fast_out = (
        outputs[n].float() for n in ("diffusers UNet2DModel fp32", "zoo UNet2D fp32", "zoo fast path")
    )
    base = median["diffusers UNet2DModel fp32"]
    fp32_diff = (ours_out - ref_out).abs().max().item()
    fast_diff = (fast_out - ours_out).abs().max().item()
    fast_mean_diff = (fast_out - ours_out).abs().mean().item()
    rms = ours_out.pow(2).mean().sqrt().item()

    print(
        f"batch {args.batch} x 3x32x32, {args.repeats} repeats, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"fast path: {fast_path.label} ({fast_path.reason})")
    print(f"{'case':<28} {'median s':>9} {'min s':>8} {'speedup':>8} {'CPU s':>8} {'CPU speedup':>12}")
    for name in cases:
        print(
            f"{name:<28} {median[name]:>9.4f} {min(times[name]):>8.4f} {base / median[name]:>8.3f} "
            f"{cpu_median[name]:>8.4f} {cpu_base / cpu_median[name]:>12.3f}"
        )
    print(f"max |ours - diffusers| fp32: {fp32_diff:.2e}")
    print(
        f"fast path vs fp32: max abs diff {fast_diff:.2e}, mean abs diff {fast_mean_diff:.2e} (output RMS {rms:.3f})"
    )
    print(
        json.dumps(
            {
                "batch": args.batch,
                "repeats": args.repeats,
                "threads": torch.get_num_threads(),
                "fast_path": fast_path.label,
                "median_seconds": median,
                "median_cpu_seconds": cpu_median,
                "cpu_speedup_fp32": cpu_base / cpu_median["zoo UNet2D fp32"],
                "cpu_speedup_fast_path": cpu_base / cpu_median["zoo fast path"],
                "speedup_fp32": base / median["zoo UNet2D fp32"],
                "speedup_fp32_channels_last": base / median["zoo fp32 channels_last"],
                "speedup_fast_path": base / median["zoo fast path"],
                "max_abs_diff_fp32_vs_diffusers": fp32_diff,
                "max_abs_diff_fast_vs_fp32": fast_diff,
                "mean_abs_diff_fast_vs_fp32": fast_mean_diff,
                "output_rms": rms,
            }
        )
    )


if __name__ == "__main__":
    main()
