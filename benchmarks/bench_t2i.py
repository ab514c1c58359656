"""The embedded text-to-image model (`t2i`): prompt adherence and Prompt-to-Prompt word swap.

    python benchmarks/bench_t2i.py [--model t2i] [--n 200] [--scales 1,3,5,7.5] [--pairs 120] [--threads 1]
                                   [--json out.json]

1. Prompt adherence: ``n`` prompts of the shapes dataset's captions (``draw_spec(i, 32, seed=12345)``), image i
   from seed i (so every scale starts from the same noise), the card's sampler and steps; each image read by
   ``zoo_core.metrics.shapes_eval`` (shape / colour / background / all three right). Scale 1 is no guidance.
   The autoencoder's reconstructions of the dataset images with these captions give the ceiling.
2. Word swap "a C circle on a B background" -> "a C square on a B background" for ``pairs`` (colour, background,
   seed) triples cycling through all 30 colour/background pairs: the share of edited images that show the
   prompt's colour and background, a square, and the same colour and background as their source image; the
   same figures for the target prompt sampled alone from the same seed (no edit); and how well the layout is kept
   (foreground centroid distance to the source image, in pixels).

Speed and memory against diffusers (this model's pipeline, and a full-size SD v1.5 UNet step) are rows of the peer
benchmarks: ``python -m benchmarks run --only sd_tiny_pipeline,sd15_unet_step``.

Prints tables and writes JSON (stdout, or ``--json``). On a shared CPU pass ``--threads 1``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

MODEL = "t2i"  # the default of --model


# -- helpers ----------------------------------------------------------------------------------------------------
def prompts(n: int, size: int = 32) -> list[str]:
    from zoo_core.data.shapes import draw_spec

    return [draw_spec(i, size, seed=12345).caption for i in range(n)]


# -- 1. prompt adherence ------------------------------------------------------------------------------------------
def adherence(model: Any, n: int, scales: list[float], batch: int) -> list[dict[str, Any]]:
    from zoo_core.metrics.shapes_eval import evaluate_shapes_samples

    texts = prompts(n)
    rows = []
    for scale in scales:
        started = time.perf_counter()
        chunks = []
        for i in range(0, n, batch):
            part = texts[i : i + batch]
            seeds = list(range(i, i + len(part)))
            chunks.append(model.sample(len(part), prompt=part, seed=seeds, guidance_scale=scale))
        images = torch.cat(chunks)
        result = evaluate_shapes_samples(images, texts)
        result.pop("histogram")
        rows.append({"guidance_scale": scale, **result, "seconds": time.perf_counter() - started})
    return rows


def reconstruction(model: Any, n: int, batch: int) -> dict[str, Any]:
    """Adherence of the autoencoder's reconstructions of real dataset images: the ceiling of the samples'."""
    from zoo_core.data.shapes import ShapesDataset
    from zoo_core.metrics.shapes_eval import evaluate_shapes_samples

    images, captions, _ = ShapesDataset(n, model.default_size[0], seed=12345).as_tensors()
    with torch.no_grad():
        rebuilt = torch.cat([model.vae(chunk) for chunk in images.split(batch)]).clamp(-1, 1)
    result = evaluate_shapes_samples(rebuilt, captions)
    result.pop("histogram")
    return result


# -- 2. word swap -------------------------------------------------------------------------------------------------
def foreground(image: np.ndarray, min_contrast: float = 0.25) -> np.ndarray:
    """Pixels far from the border's median colour (as shapes_eval reads them): bool [H, W]."""
    rgb = (np.clip(image, -1, 1) + 1) / 2
    border = np.concatenate([rgb[:, 0, :], rgb[:, -1, :], rgb[:, :, 0], rgb[:, :, -1]], axis=1)
    bg = np.median(border, axis=1)
    return np.sqrt(((rgb - bg[:, None, None]) ** 2).sum(axis=0)) > min_contrast


def centroid_distance(a: np.ndarray, b: np.ndarray) -> float:
    ma, mb = foreground(a), foreground(b)
    if not ma.any() or not mb.any():
        return float("nan")
    ca = np.array(np.nonzero(ma)).mean(axis=1)
    cb = np.array(np.nonzero(mb)).mean(axis=1)
    return float(np.linalg.norm(ca - cb))


def word_swap(model: Any, pairs: int, cross_steps: float, self_steps: float) -> dict[str, Any]:
    from zoo_core.data.shapes import COLORS
    from zoo_core.metrics.shapes_eval import read_images

    combos = [(c, b) for c in COLORS for b in COLORS if b != c]
    jobs: dict[tuple[str, str], list[int]] = {}
    for k in range(pairs):
        jobs.setdefault(combos[k % len(combos)], []).append(k)
    records = []
    for (color, background), seeds in jobs.items():
        source = f"a {color} circle on a {background} background"
        target = f"a {color} square on a {background} background"
        edit = {"type": "replace", "source": source, "target": target}
        edit.update(cross_steps=cross_steps, self_steps=self_steps)
        both = model.sample(len(seeds), edit=edit, seed=seeds).numpy()
        alone = model.sample(len(seeds), prompt=target, seed=seeds).numpy()
        src, edited = both[: len(seeds)], both[len(seeds) :]
        readings = read_images(np.concatenate([src, edited, alone]))
        n = len(seeds)
        for i in range(n):
            s, e, a = readings[i], readings[n + i], readings[2 * n + i]
            records.append(
                {
                    "source_right": s.attributes
                    == {"shape": "circle", "color": color, "background": background},
                    **{
                        f"{name}_{key}": value
                        for name, r, img in (("edit", e, edited[i]), ("alone", a, alone[i]))
                        for key, value in {
                            "color": r.color == color,
                            "background": r.background == background,
                            "square": r.shape == "square",
                            "keeps_source_colors": r.color == s.color and r.background == s.background,
                            "centroid_px": centroid_distance(src[i], img),
                            "mad_to_source": float(np.abs(img - src[i]).mean()),
                        }.items()
                    },
                    "mad_edit_to_alone": float(np.abs(edited[i] - alone[i]).mean()),
                }
            )
    summary: dict[str, Any] = {"pairs": len(records), "cross_steps": cross_steps, "self_steps": self_steps}
    for key in records[0]:
        values = np.array([r[key] for r in records], dtype=float)
        summary[key] = float(np.nanmean(values))
    return summary


def _load_model(name: str = MODEL) -> Any:
    """The model under test: a card name or a directory saved by save_pretrained (e.g. a training run's model/)."""
    import zoo

    return zoo.load(name)


# -- main -------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=MODEL, help="card name or model directory (default: the embedded t2i)"
    )
    parser.add_argument("--n", type=int, default=200, help="prompts for the adherence table")
    parser.add_argument("--scales", default="1,3,5,7.5", help="guidance scales (1 = no guidance)")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=120, help="word-swap pairs")
    parser.add_argument("--cross-steps", type=float, default=0.8)
    parser.add_argument("--self-steps", type=float, default=0.4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="write the results here (default: print them)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    report: dict[str, Any] = {
        "model": args.model,
        "threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
    }
    model = _load_model(args.model)
    report["sampler"] = {"name": model.default_sampler, "steps": model.default_steps}
    scales = [float(s) for s in args.scales.split(",")]
    report["adherence"] = adherence(model, args.n, scales, args.batch)
    report["reconstruction"] = reconstruction(model, args.n, args.batch)
    print(f"\nprompt adherence, {args.n} prompts, {model.default_sampler} {model.default_steps} steps")
    print(f"{'guidance':>8} {'shape':>7} {'colour':>7} {'backgr':>7} {'all 3':>7} {'iou':>6} {'s':>6}")
    for row in report["adherence"]:
        print(
            f"{row['guidance_scale']:>8g} {row['shape_accuracy']:>7.3f} {row['color_accuracy']:>7.3f} "
            f"{row['background_accuracy']:>7.3f} {row['all_accuracy']:>7.3f} {row['mean_shape_iou']:>6.3f} "
            f"{row['seconds']:>6.1f}"
        )
    rec = report["reconstruction"]
    print(
        f"{'vae rec.':>8} {rec['shape_accuracy']:>7.3f} {rec['color_accuracy']:>7.3f} "
        f"{rec['background_accuracy']:>7.3f} {rec['all_accuracy']:>7.3f} {rec['mean_shape_iou']:>6.3f}"
        "   (autoencoder reconstructions of dataset images: the ceiling)"
    )
    swap = word_swap(model, args.pairs, args.cross_steps, args.self_steps)
    report["word_swap"] = swap
    print(f"\nword swap circle -> square, {swap['pairs']} pairs (guidance {model.config.guidance_scale})")
    print(f"source images right: {swap['source_right']:.3f}")
    print(
        f"{'':>16} {'colour':>7} {'backgr':>7} {'square':>7} {'keeps src':>9} {'centroid px':>11} {'MAD src':>8}"
    )
    for name, label in (("edit", "prompt-to-prompt"), ("alone", "target alone")):
        print(
            f"{label:>16} {swap[name + '_color']:>7.3f} {swap[name + '_background']:>7.3f} "
            f"{swap[name + '_square']:>7.3f} {swap[name + '_keeps_source_colors']:>9.3f} "
            f"{swap[name + '_centroid_px']:>11.2f} {swap[name + '_mad_to_source']:>8.4f}"
        )
    print(f"mean abs difference, edited vs target alone: {swap['mad_edit_to_alone']:.4f}")
    text = json.dumps(report, indent=2)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        print(f"\nwrote {args.json}")
    else:
        print(text)


if __name__ == "__main__":
    main()
