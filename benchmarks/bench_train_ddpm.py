"""Training speed: our DDPM model + L_simple against diffusers' UNet2DModel with the same loss, one run.

    python benchmarks/bench_train_ddpm.py [--config small|cifar10] [--batch 8] [--repeats 8] [--threads N]

One training step = draw t and eps, x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps, predict, MSE on eps, backward, AdamW
step. Ours runs ``zoo_ddpm.trainer.ddpm_loss`` on ``DDPMModel`` (the trainer's own loss); diffusers runs the same
maths on a ``UNet2DModel`` built from the same config with the same initial weights (the first losses are
compared). The two alternate within every repeat, so both see the same machine load; each figure is the median
step time. ``ratio`` is diffusers' median time over ours (>= 1: ours is at least as fast).

Also reported, not part of the ratio: ours under bf16 autocast, and the whole zoo training loop (``fit``: data
order, the step above through ``state.optimize`` with clipping, EMA update, metrics) on the same model and batch.
Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

CONFIGS: dict[str, dict[str, Any]] = {
    # a reduced DDPM UNet at CIFAR-10 resolution (the layout of google/ddpm-cifar10-32, narrower and shallower)
    "small": {
        "sample_size": 32,
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": [64, 128, 128],
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
        "attention_head_dim": None,
        "norm_eps": 1e-6,
        "downsample_padding": 0,
        "flip_sin_to_cos": False,
        "freq_shift": 1,
    },
}


def unet_config(name: str) -> dict[str, Any]:
    if name == "cifar10":
        from zoo_ddpm.model import CIFAR10_UNET

        return dict(CIFAR10_UNET)
    return dict(CONFIGS[name])


def build(name: str, seed: int = 0):
    from diffusers import UNet2DModel
    from zoo_ddpm.model import DDPMModel

    config = unet_config(name)
    torch.manual_seed(seed)
    reference = UNet2DModel(**config).train()
    ours = DDPMModel({"unet": config}).train()
    ours.unet.load_state_dict(reference.state_dict(), strict=True)
    return ours, reference


def timed(fn: Callable[..., float], *args: Any) -> tuple[float, float]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def loop_steps_per_s(name: str, batch: int, steps: int) -> float:
    """Steps/s of the whole zoo loop (fit) on the same model, from its own metrics log."""
    from zoo_ddpm.trainer import DDPMTrainer

    from zoo_core.training.config import load_config

    config = unet_config(name)
    size = config["sample_size"]

    class Noise(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 256

        def __getitem__(self, i: int) -> torch.Tensor:
            return (
                torch.rand(config["in_channels"], size, size, generator=torch.Generator().manual_seed(i)) * 2
                - 1
            )

    with tempfile.TemporaryDirectory() as out:
        trainer = DDPMTrainer(
            load_config(
                DDPMTrainer.config_class,
                {
                    "out_dir": out,
                    "model": {"unet": config},
                    "max_steps": steps + 1,
                    "batch_size": batch,
                    "warmup_steps": 0,
                    "checkpoint_every": 0,
                    "log_every": 1,
                    "progress": False,
                    "save_final": False,
                },
            )
        )
        trainer.fit(dataset=Noise())
        with open(f"{out}/metrics.jsonl", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle]
    return statistics.median(r["steps_per_s"] for r in rows[1:])  # the first step pays one-off set-up


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", choices=[*CONFIGS, "cifar10"], default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-loop", action="store_true", help="skip the whole-loop measurement")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from zoo_ddpm.trainer import ddpm_loss

    ours, reference = build(args.config)
    bf16 = build(args.config)[0]
    schedule = ours.schedule
    alphas = schedule.alphas_cumprod.float()
    size, channels = ours.sample_shape[1], ours.sample_shape[0]
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_ref = torch.optim.AdamW(reference.parameters(), lr=1e-4)
    opt_bf16 = torch.optim.AdamW(bf16.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)

    def batch():
        x0 = torch.rand(args.batch, channels, size, size, generator=gen) * 2 - 1
        t = torch.randint(0, schedule.num_train_timesteps, (args.batch,), generator=gen)
        return x0, t, torch.randn(x0.shape, generator=gen)

    def step_ours(x0, t, noise) -> float:
        loss = ddpm_loss(ours, x0, t, noise)
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)
        return float(loss.detach())

    def step_bf16(x0, t, noise) -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = ddpm_loss(bf16, x0, t, noise)
        loss.backward()
        opt_bf16.step()
        opt_bf16.zero_grad(set_to_none=True)
        return float(loss.detach())

    def step_ref(x0, t, noise) -> float:
        a = alphas[t].reshape(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        loss = F.mse_loss(reference(x_t, t).sample.float(), noise.float())
        loss.backward()
        opt_ref.step()
        opt_ref.zero_grad(set_to_none=True)
        return float(loss.detach())

    times: dict[str, list[float]] = {"ours": [], "diffusers": [], "ours bf16 autocast": []}
    first: dict[str, float] = {}
    for i in range(args.warmup + args.repeats):
        x0, t, noise = batch()
        for label, fn in (("ours", step_ours), ("diffusers", step_ref), ("ours bf16 autocast", step_bf16)):
            seconds, loss = timed(fn, x0, t, noise)
            first.setdefault(label, loss)
            if i >= args.warmup:
                times[label].append(seconds)

    median = {k: statistics.median(v) for k, v in times.items()}
    result: dict[str, Any] = {
        "benchmark": "train_ddpm",
        "config": args.config,
        "batch": args.batch,
        "image": [channels, size, size],
        "params_M": round(sum(p.numel() for p in ours.parameters()) / 1e6, 3),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "steps_per_s": {k: round(1 / v, 4) for k, v in median.items()},
        "ratio_diffusers_over_ours": round(median["diffusers"] / median["ours"], 3),
        "ratio_bf16_speedup": round(median["ours"] / median["ours bf16 autocast"], 3),
        "first_loss_abs_diff": abs(first["ours"] - first["diffusers"]),
    }
    if not args.no_loop:
        result["steps_per_s"]["zoo fit loop"] = round(
            loop_steps_per_s(args.config, args.batch, args.repeats), 4
        )

    print(f"DDPM training step, config {args.config} ({result['params_M']}M params), batch {args.batch}, "
          f"{channels}x{size}x{size}, {result['threads']} threads, median of {args.repeats}")  # fmt: skip
    print(f"{'':<22}{'steps/s':>10}{'ms/step':>10}")
    for label, rate in result["steps_per_s"].items():
        print(f"{label:<22}{rate:>10.3f}{1000 / rate:>10.1f}")
    print(
        f"ratio diffusers/ours time: {result['ratio_diffusers_over_ours']:.3f} (>= 1: ours at least as fast)"
    )
    print(f"first-step loss |ours - diffusers| = {result['first_loss_abs_diff']:.2e}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
