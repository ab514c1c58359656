"""The DreamBooth demo on the embedded ``t2i`` model, measured by the shapes evaluator.

The subject is one object of the procedural shapes world, a yellow star, named only by the identifier "sks
shape" (a word the base model never saw; its tokens are bare bytes). Four instance images show it on four
backgrounds (none green), each captioned "a sks shape on a <background> background".

- **instance fidelity**: the share of samples for "a sks shape on a green background" that the evaluator reads
  as a yellow star; **editability**: the share of them on the green background asked for;
- **prior preservation**: the share of samples whose shape, colour and background are all right, for the class
  prompts (the ordinary captions the class images were drawn from) and for 30 other ordinary prompts.

    python -m zoo_dreambooth.demo instances runs/db/instances
    python -m zoo_dreambooth.demo evaluate --base t2i [--model DIR | --lora DIR] --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

SUBJECT = {"shape": "star", "color": "yellow"}
INSTANCE_BACKGROUNDS = ("red", "blue", "white", "black")
IDENTIFIER = "sks shape"
EDIT_BACKGROUND = "green"


def instance_prompt(background: str) -> str:
    return f"a {IDENTIFIER} on a {background} background"


def write_instances(directory: Path, size: int = 32, seed: int = 0) -> list[Path]:
    """The four instance images (PNG) with their captions (``.txt`` sidecars)."""
    import numpy as np
    from PIL import Image

    from zoo_core.data.shapes import RADIUS_RANGE, ShapeSpec, render

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, background in enumerate(INSTANCE_BACKGROUNDS):
        radius = float(rng.uniform(*RADIUS_RANGE)) * size
        cx, cy = (size / 2 + rng.uniform(-0.08, 0.08, size=2) * size).tolist()
        spec = ShapeSpec(SUBJECT["shape"], SUBJECT["color"], background, cx, cy, radius)
        array = ((render(spec, size).transpose(1, 2, 0) + 1) * 127.5).round().clip(0, 255).astype("uint8")
        path = directory / f"instance-{i}.png"
        Image.fromarray(array).save(path)
        path.with_suffix(".txt").write_text(instance_prompt(background) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def ordinary_prompts(n: int, seed: int) -> list[str]:
    """``n`` distinct captions of the shapes dataset (the base model's vocabulary)."""
    from zoo_core.data.shapes import draw_spec

    out: list[str] = []
    index = 0
    while len(out) < n:
        caption = draw_spec(index, 32, seed=seed).caption
        if caption not in out:
            out.append(caption)
        index += 1
    return out


#: the class prompts of the demo (what class images are drawn from) and the held-out prompts of the measurement
CLASS_PROMPT_SEED, HELD_OUT_SEED = 101, 202


def class_prompts(n: int = 30) -> list[str]:
    return ordinary_prompts(n, CLASS_PROMPT_SEED)


def held_out_prompts(n: int = 30) -> list[str]:
    taken = set(class_prompts())
    return [p for p in ordinary_prompts(n + len(taken), HELD_OUT_SEED) if p not in taken][:n]


def _sample(model: Any, prompts: list[str], seed: int, steps: int, guidance: float | None) -> torch.Tensor:
    images = []
    for start in range(0, len(prompts), 64):
        chunk = prompts[start : start + 64]
        images.append(
            model.sample(
                len(chunk),
                prompt=chunk,
                seed=[seed + start + i for i in range(len(chunk))],
                sampler="ddim",
                steps=steps,
                guidance_scale=guidance,
            )
        )
    return torch.cat(images)


def evaluate(
    model: Any,
    *,
    n_subject: int = 64,
    n_prompts: int = 30,
    repeats: int = 2,
    steps: int = 25,
    guidance: float | None = None,
    seed: int = 1000,
) -> dict[str, Any]:
    """Instance fidelity, editability and prior preservation of ``model`` (see the module docstring)."""
    from zoo_core.metrics.shapes_eval import evaluate_shapes_samples, read_images

    subject = _sample(model, [instance_prompt(EDIT_BACKGROUND)] * n_subject, seed, steps, guidance)
    readings = read_images(subject)
    is_subject = [r.shape == SUBJECT["shape"] and r.color == SUBJECT["color"] for r in readings]
    on_green = [r.background == EDIT_BACKGROUND for r in readings]
    out: dict[str, Any] = {
        "subject_share": sum(is_subject) / n_subject,
        "editability": sum(on_green) / n_subject,
        "subject_and_background": sum(a and b for a, b in zip(is_subject, on_green, strict=True)) / n_subject,
    }
    for name, prompts in (
        ("class_prompts", class_prompts(n_prompts)),
        ("held_out_prompts", held_out_prompts(n_prompts)),
    ):
        wanted = prompts * repeats
        result = evaluate_shapes_samples(_sample(model, wanted, seed + 10_000, steps, guidance), wanted)
        out[name] = {
            k: result[k]
            for k in ("n", "all_accuracy", "shape_accuracy", "color_accuracy", "background_accuracy")
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zoo_dreambooth.demo", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("instances", help="write the four instance images and captions")
    p.add_argument("directory", type=Path)
    p.add_argument("--size", type=int, default=32)
    e = sub.add_parser("evaluate", help="measure a base model, a fine-tuned model or base + LoRA")
    e.add_argument("--base", default="t2i")
    e.add_argument("--model", help="a full DreamBooth output folder (out_dir/model)")
    e.add_argument("--lora", help="a LoRA DreamBooth output folder or file")
    e.add_argument("--n", type=int, default=64, help="samples of the subject prompt")
    e.add_argument("--repeats", type=int, default=2, help="samples per ordinary prompt")
    e.add_argument("--steps", type=int, default=25)
    e.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "instances":
        for path in write_instances(args.directory, args.size):
            print(path)
        return 0
    import zoo

    model = zoo.load(args.model or args.base)
    if args.lora:
        model.load_lora(args.lora)
    result = evaluate(model, n_subject=args.n, repeats=args.repeats, steps=args.steps)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
