"""The textual-inversion demo on the embedded ``t2i``: learn a heart (a shape its training captions never held)
from 5 instance images, and measure with ``zoo_core.metrics.shapes_eval`` how often samples show it.

    python -m zoo_textual_inversion.demo --out runs/ti-demo --steps 300 --num-vectors 1 --n 64

writes the instance images (each with a ``name.txt`` template naming its colours, "a red {} on a white
background", so the token learns the shape, not the colours), trains, and prints the share of samples read as a
heart for each measured prompt before (the token at its initializer, ``--initializer``) and after training, plus a figure
``--figure`` (rows: instance images; before; after).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from zoo_core.data.shapes import ALL_SHAPES, ShapeSpec, render

CONCEPT = "heart"
#: (colour, background) of the instance images
INSTANCES = [("red", "white"), ("blue", "yellow"), ("yellow", "black"), ("white", "blue"), ("black", "red")]
PROMPTS = ["a photo of a {}", "a red {} on a white background", "a green {} on a blue background"]


def write_instance_images(folder: str | Path, n: int = 5, size: int = 32) -> Path:
    """``n`` hearts (centred, radius 0.27 of the side) as PNGs with their template sidecars."""
    from PIL import Image

    from zoo_core.images import to_pil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        color, background = INSTANCES[i % len(INSTANCES)]
        spec = ShapeSpec(CONCEPT, color, background, size / 2, size / 2, 0.27 * size)
        (image,) = to_pil(torch.from_numpy(render(spec, size))[None])
        assert isinstance(image, Image.Image)
        image.save(folder / f"{i:02d}.png")
        (folder / f"{i:02d}.txt").write_text(
            f"a {color} {{}} on a {background} background\n", encoding="utf-8"
        )
    return folder


def concept_share(model: Any, prompt: str, n: int, seed: int = 0, steps: int = 20) -> dict[str, Any]:
    """Share of ``n`` samples of ``prompt`` that the recogniser reads as the concept (all shapes candidates),
    and of those asking for colours, the share with the right colour and background too."""
    from zoo_core.metrics.shapes_eval import read_images

    images = model.sample(n, prompt=prompt, seed=list(range(seed, seed + n)), steps=steps)
    readings = read_images(images, shapes=ALL_SHAPES)
    shapes = [r.shape for r in readings]
    out: dict[str, Any] = {
        "prompt": prompt,
        "concept_share": sum(s == CONCEPT for s in shapes) / n,
        "shapes": {s: shapes.count(s) for s in ALL_SHAPES if shapes.count(s)},
    }
    words = prompt.split()
    if "background" in words and words[1] != "{}":
        color, background = words[1], words[-2]
        out["all_three_share"] = (
            sum(r.shape == CONCEPT and r.color == color and r.background == background for r in readings) / n
        )
    return out, images


def main(argv: list[str] | None = None) -> int:
    import zoo
    from zoo_core.images import save_grid

    p = argparse.ArgumentParser(
        prog="python -m zoo_textual_inversion.demo", description=__doc__.split("\n")[0]
    )
    p.add_argument("--out", default="runs/ti-demo")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--num-vectors", type=int, default=1)
    p.add_argument("--n", type=int, default=64, help="samples per prompt")
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--initializer", default="star", help="the word the vectors start from")
    p.add_argument("--figure", help="write the figure here (PNG)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    images = write_instance_images(out / "images")
    token = "<heart>"
    base = zoo.load("t2i")
    base.load_textual_inversion(
        {
            token: base.text_encoder.token_embedding.weight[
                base.tokenizer.token_to_id(f"{args.initializer}</w>")
            ]
            .detach()
            .repeat(args.num_vectors, 1)
        }
    )
    before = [concept_share(base, pr.format(token), args.n) for pr in PROMPTS]
    word = concept_share(base, PROMPTS[0].format(CONCEPT), args.n)  # the plain word: bytes to this model
    started = time.perf_counter()
    zoo.train(
        "textual-inversion",
        base="t2i",
        images=str(images),
        placeholder_token=token,
        initializer_token=args.initializer,
        num_vectors=args.num_vectors,
        max_steps=args.steps,
        lr=args.lr,
        out_dir=str(out / "run"),
        progress=False,
    )
    seconds = time.perf_counter() - started
    learned = zoo.load("t2i")
    learned.load_textual_inversion(out / "run" / "learned_embeds.safetensors")
    after = [concept_share(learned, pr.format(token), args.n) for pr in PROMPTS]
    result = {
        "steps": args.steps,
        "num_vectors": args.num_vectors,
        "train_seconds": round(seconds, 1),
        "plain_word_heart": word[0],
        "before": [b for b, _ in before],
        "after": [a for a, _ in after],
    }
    print(json.dumps(result, indent=1))
    (out / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    if args.figure:
        from zoo_core.data.folder import load_image

        inst = torch.stack([load_image(path, 32) for path in sorted(images.glob("*.png"))])
        rows = [inst.repeat(2, 1, 1, 1)[:8]]
        for (_, b), (_, a) in zip(before, after, strict=True):
            rows += [b[:8], a[:8]]
        save_grid(torch.cat(rows), args.figure, nrow=8, scale=3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
