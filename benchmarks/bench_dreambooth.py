"""DreamBooth memory: peak memory of a training run with the whole UNet trained against LoRA adapters (peft).

    python -m benchmarks.bench_dreambooth [--base t2i] [--steps 4] [--batch-size 4] [--rank 4] [--threads 1]
    python -m benchmarks.bench_dreambooth --sd-width [--latent 32] [--steps 2]   # a large base (slow: ~GBs)

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

#: ``--sd-width``: one DreamBooth step (the trainer's freezing, peft adapters on LORA_TARGETS, AdamW over what
#: trains, mse of epsilon) on a randomly initialised UNet of SD v1.5's widths (320/640/1280/1280, cross-attention
#: 768, 8 heads; ``layers_per_block`` 1 to keep the run short) with a 1-layer 768-wide text encoder.
CHILD_SD = """
import json, sys
import torch
import torch.nn.functional as F
from benchmarks.timing import timed_call
from zoo_dreambooth.trainer import LORA_TARGETS
from zoo_latent.unet import UNet2DConditionConfig, UNet2DConditionModel

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
unet = UNet2DConditionModel(UNet2DConditionConfig.parse({
    "sample_size": args["latent"], "cross_attention_dim": 768, "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": args["layers_per_block"],
}))
unet.requires_grad_(False)
if args["lora"]:
    from peft import LoraConfig, inject_adapter_in_model
    inject_adapter_in_model(LoraConfig(r=args["rank"], lora_alpha=args["rank"], target_modules=LORA_TARGETS), unet)
    for name, p in unet.named_parameters():
        p.requires_grad_("lora_" in name)
else:
    unet.requires_grad_(True)
unet.train()
trainable = [p for p in unet.parameters() if p.requires_grad]
optimizer = torch.optim.AdamW(trainable, lr=1e-4)
n = args["batch_size"]
x = torch.randn(n, 4, args["latent"], args["latent"])
states = torch.randn(n, 77, 768)

def run():
    for _ in range(args["steps"]):
        t = torch.randint(0, 1000, (n,))
        loss = F.mse_loss(unet(x, t, states), torch.randn_like(x))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return float(loss)

wall, cpu, peak, loss = timed_call(run)
print(json.dumps({"wall_s": wall, "peak_extra_mb": peak, "trainable_params": sum(p.numel() for p in trainable),
                  "params": sum(p.numel() for p in unet.parameters()), "loss": loss}))
"""


def run_mode(lora: bool, args: argparse.Namespace) -> dict:
    payload = json.dumps({**vars(args), "lora": lora})
    child = CHILD_SD if args.sd_width else CHILD
    out = subprocess.run([sys.executable, "-c", child, payload], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="t2i")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sd-width", action="store_true", help="a random UNet of SD v1.5's widths instead")
    parser.add_argument("--latent", type=int, default=32, help="--sd-width: latent side")
    parser.add_argument("--layers-per-block", type=int, default=1, help="--sd-width: SD has 2")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.sd_width and "--batch-size" not in sys.argv:
        args.batch_size = 1
    with tempfile.TemporaryDirectory():
        results = {"full": run_mode(False, args), "lora": run_mode(True, args)}
    for mode, r in results.items():
        print(
            f"{mode}: peak +{r['peak_extra_mb']:.0f} MB, {r['trainable_params']:,} trainable, {r['wall_s']:.1f} s"
        )
    print(
        f"peak ratio full / lora: {results['full']['peak_extra_mb'] / results['lora']['peak_extra_mb']:.2f}"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
