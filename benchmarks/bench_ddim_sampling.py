"""Whole DDIM sampling, ours against diffusers: the same UNet weights (google/ddpm-cifar10-32 architecture, full
width, random weights), the same starting noise and batch, 50 DDIM steps, one process, one run.

    python benchmarks/bench_ddim_sampling.py [--batch 8] [--steps 50] [--repeats 3] [--threads 1]

Ours: ``DDPMModel`` + the zoo ``ddim`` sampler (``model.sample``'s path without the clipping). Diffusers:
``UNet2DModel`` + ``DDIMScheduler`` in the loop its DDIMPipeline runs. Ours and diffusers alternate within every
repeat; figures are medians. Also the fast path ``dtype="auto"`` picks
for this machine (zoo_core.hardware), with the change in the samples.
``ratio`` is our images/s over diffusers' (>= 1 means ours is at least as fast).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from bench_ddpm_unet import build

import zoo
from zoo_core.hardware import choose_fast_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from diffusers import DDIMScheduler
    from zoo_ddpm.model import DDPMModel

    reference, ours_unet, _ = build()
    model = DDPMModel()  # the CIFAR-10 config and the paper's schedule
    model.unet.load_state_dict(ours_unet.state_dict())
    model.eval()
    fast = DDPMModel()
    fast.unet.load_state_dict(ours_unet.state_dict())
    fast = fast.eval().to(memory_format=torch.channels_last)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=True)
    ddim = zoo.get_sampler("ddim")
    shape = (args.batch, 3, 32, 32)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))

    def run_diffusers() -> torch.Tensor:
        scheduler.set_timesteps(args.steps)
        x = noise.clone()
        for t in scheduler.timesteps:
            eps = reference(x, t).sample
            x = scheduler.step(eps, t, x, eta=0.0).prev_sample
        return x

    def run_ours() -> torch.Tensor:
        return ddim(model, shape, steps=args.steps, x_T=noise.clone(), eta=0.0)

    fast_path = choose_fast_path("cpu")

    def run_fast() -> torch.Tensor:
        with fast_path.autocast():
            return ddim(
                fast,
                shape,
                steps=args.steps,
                x_T=noise.clone().to(memory_format=torch.channels_last),
                eta=0.0,
            ).float()

    times: dict[str, list[float]] = {"diffusers": [], "ours": [], "ours fast path": []}
    outputs: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for _ in range(args.repeats):
            for name, fn in (("diffusers", run_diffusers), ("ours", run_ours), ("ours fast path", run_fast)):
                start = time.perf_counter()
                outputs[name] = fn()
                times[name].append(time.perf_counter() - start)
    images_per_s = {name: args.batch / statistics.median(t) for name, t in times.items()}
    diff = (outputs["ours"] - outputs["diffusers"]).abs().max().item()
    fast_diff = (outputs["ours fast path"] - outputs["ours"]).abs()
    print(f"fast path: {fast_path.label} ({fast_path.reason})")
    print(f"{'case':<16} {'images/s':>9} {'ratio vs diffusers':>19}")
    for name, ips in images_per_s.items():
        print(f"{name:<16} {ips:>9.3f} {ips / images_per_s['diffusers']:>19.3f}")
    print(
        f"max |ours - diffusers| = {diff:.2e}; fast path vs fp32: max {fast_diff.max():.3e}, mean {fast_diff.mean():.3e}"
    )
    print(
        json.dumps(
            {
                "batch": args.batch,
                "steps": args.steps,
                "fast_path": fast_path.label,
                "images_per_s": images_per_s,
                "ratio": images_per_s["ours"] / images_per_s["diffusers"],
                "fast_ratio": images_per_s["ours fast path"] / images_per_s["diffusers"],
                "max_abs_diff_vs_diffusers": diff,
                "fast_path_max_abs_diff": fast_diff.max().item(),
                "fast_path_mean_abs_diff": fast_diff.mean().item(),
            }
        )
    )


if __name__ == "__main__":
    main()
