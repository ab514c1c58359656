"""DreamBooth memory: peak memory of a training run with the whole UNet trained against LoRA adapters (peft).

    python -m benchmarks.bench_dreambooth [--base t2i] [--steps 4] [--batch-size 4] [--rank 4] [--threads 1]

Each mode runs in a fresh interpreter (so neither inherits the other's allocator state) and reports
``benchmarks.timing.timed_call``'s peak above the memory resident before ``fit()`` (the base model is loaded by
then, so the figure is what training adds: gradients, optimizer state, activations) and the trainable parameters.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = """
import json, sys, tempfile
import torch
from benchmarks.timing import timed_call
from zoo_dreambooth.demo import write_instances
from zoo_core.training.api import make_trainer

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
with tempfile.TemporaryDirectory() as tmp:
    images = write_instances(__import__("pathlib").Path(tmp) / "sks", size=32)[0].parent
    trainer = make_trainer("dreambooth", {
        "base": args["base"], "images": str(images), "instance_prompt": "a sks shape",
        "out_dir": tmp + "/run", "max_steps": args["steps"], "batch_size": args["batch_size"],
        "lora": args["lora"], "rank": args["rank"], "checkpoint_every": 0, "progress": False, "sample_steps": 1,
    })
    wall, cpu, peak, state = timed_call(trainer.fit)
    trainable = sum(p.numel() for m in state.modules.values() for p in m.parameters() if p.requires_grad)
    print(json.dumps({"wall_s": wall, "peak_extra_mb": peak, "trainable_params": trainable}))
"""


def run_mode(lora: bool, args: argparse.Namespace) -> dict:
    payload = json.dumps({**vars(args), "lora": lora})
    out = subprocess.run([sys.executable, "-c", CHILD, payload], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="t2i")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory():
        results = {"full": run_mode(False, args), "lora": run_mode(True, args)}
    for mode, r in results.items():
        print(f"{mode}: peak +{r['peak_extra_mb']:.0f} MB, {r['trainable_params']:,} trainable, {r['wall_s']:.1f} s")
    print(f"peak ratio full / lora: {results['full']['peak_extra_mb'] / results['lora']['peak_extra_mb']:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
