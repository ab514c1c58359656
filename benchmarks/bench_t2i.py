"""The embedded text-to-image model (`t2i`): prompt adherence, Prompt-to-Prompt word swap, and CPU time / peak
memory of sampling against diffusers.

    python benchmarks/bench_t2i.py [--model t2i] [--n 200] [--scales 1,3,5,7.5] [--pairs 120] [--threads 1] [--skip-full]
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
3. Speed and memory, ours vs diffusers in this run, each measurement in a fresh process: (a) 20 DDIM steps with
   classifier-free guidance on the embedded model's configuration and weights (8 images, prompts as in 1; the
   diffusers StableDiffusionPipeline is built from the same weights and its images are compared with ours); (b)
   one full-size Stable Diffusion v1.5 UNet step (random weights, the same in both, batch 2 as under CFG, 64x64
   latents, 77 text tokens). Wall and process CPU seconds (median over repeats) and the peak resident memory
   during the timed calls (the kernel's high-water mark, reset before them through /proc/self/clear_refs) above
   the memory held before them.

Prints tables and writes JSON (stdout, or ``--json``). On a shared CPU pass ``--threads 1``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

MODEL = "t2i"  # the default of --model


# -- helpers ----------------------------------------------------------------------------------------------------
def prompts(n: int, size: int = 32) -> list[str]:
    from zoo_core.data.shapes import draw_spec

    return [draw_spec(i, size, seed=12345).caption for i in range(n)]


def _rss_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def measure(fn: Callable[[], Any], repeats: int, warmup: int) -> dict[str, float]:
    """Median wall and CPU seconds of ``fn`` and the peak memory (MB) during the timed calls above the start."""
    for _ in range(warmup):
        fn()
    base = _rss_kb("VmRSS")
    exact = _reset_peak()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    peak = _rss_kb("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
        "peak_extra_mb": (peak - base) / 1024,
        "peak_total_mb": peak / 1024,
        "peak_exact": exact,
    }


def in_child(task: str, **kwargs: Any) -> dict[str, Any]:
    """Run ``TASKS[task](**kwargs)`` in a fresh process, so each measurement has its own memory high-water mark."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run_task, (task, kwargs))


def _run_task(task: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    threads = kwargs.pop("threads", None)
    if threads:
        torch.set_num_threads(threads)
    return TASKS[task](**kwargs)


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


# -- 3. speed and memory (each in a child process) -------------------------------------------------------------
def _load_model(name: str = MODEL) -> Any:
    """The model under test: a card name or a directory saved by save_pretrained (e.g. a training run's model/)."""
    import zoo

    return zoo.load(name)


def _diffusers_pipeline(model: Any) -> Any:
    """A diffusers StableDiffusionPipeline holding the weights of our model."""
    import tempfile

    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    c = model.config
    unet = UNet2DConditionModel(**c.unet.model_dump())
    unet.load_state_dict(model.unet.state_dict())
    vae_config = c.vae.model_dump()
    vae = AutoencoderKL(**vae_config)
    vae.load_state_dict(model.vae.state_dict())
    text = c.text_encoder
    tokenizer_dir = model.tokenizer.save_pretrained(tempfile.mkdtemp())
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            **text.model_dump(),
            bos_token_id=model.tokenizer.bos_token_id,
            pad_token_id=model.tokenizer.pad_token_id,
        )
    )
    state = model.text_encoder.state_dict()
    if not any(k.startswith("text_model.") for k in text_encoder.state_dict()):  # transformers >= 5 drops it
        state = {k.removeprefix("text_model."): v for k, v in state.items()}
    missing, unexpected = text_encoder.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("position_ids")]:
        raise RuntimeError(f"text encoder weights do not map: missing {missing}, unexpected {unexpected}")
    s = c.schedule
    scheduler = DDIMScheduler(
        num_train_timesteps=s.num_train_timesteps,
        beta_start=s.beta_start,
        beta_end=s.beta_end,
        beta_schedule=s.beta_schedule,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=s.steps_offset,
    )
    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def task_tiny(which: str, model_name: str, n: int, steps: int, repeats: int, warmup: int) -> dict[str, Any]:
    model = _load_model(model_name)
    scale = model.config.guidance_scale
    texts = prompts(n)
    height = model.default_size[0]
    latents = torch.randn(n, *model.sample_shape, generator=torch.Generator().manual_seed(0))
    out: dict[str, Any] = {}
    if which == "ours":

        def run() -> torch.Tensor:
            return model.sample(
                n, prompt=texts, sampler="ddim", steps=steps, guidance_scale=scale, x_T=latents
            )

    else:
        pipe = _diffusers_pipeline(model)
        del model

        def run() -> torch.Tensor:
            with torch.no_grad():
                images = pipe(
                    texts,
                    height=height,
                    width=height,
                    num_inference_steps=steps,
                    guidance_scale=scale,
                    latents=latents.clone(),
                    output_type="pt",
                ).images
            return images * 2 - 1

    out.update(measure(run, repeats, warmup))
    out["images"] = run().tolist()
    return out


def _full_unet(which: str) -> torch.nn.Module:
    """The SD v1.5 UNet (ours or diffusers') with the same seeded random weights."""
    from zoo_latent.model import SD1_UNET

    if which == "ours":
        from zoo_latent.unet import UNet2DConditionModel

        with torch.device("meta"):
            net = UNet2DConditionModel(SD1_UNET)
    else:
        from diffusers import UNet2DConditionModel

        with torch.device("meta"):
            net = UNet2DConditionModel(**SD1_UNET)
    net = net.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in sorted(net.state_dict().items()):
            if name.endswith("weight") and ("norm" in name or p.ndim == 1):
                p.copy_(1 + 0.02 * torch.randn(p.shape, generator=generator))
            else:  # std 1 / sqrt(fan in) keeps activations finite through the 16 blocks
                fan_in = p[0].numel() if p.ndim > 1 else 1
                p.copy_(
                    torch.randn(p.shape, generator=generator) * fan_in**-0.5 * (1.0 if p.ndim > 1 else 0.02)
                )
    return net.eval()


def task_full(which: str, repeats: int, warmup: int) -> dict[str, Any]:
    net = _full_unet(which)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 64, 64, generator=generator)
    t = torch.tensor([500, 500])
    context = torch.randn(2, 77, 768, generator=generator)

    def run() -> torch.Tensor:
        with torch.no_grad():
            y = net(x, t, context)
        return y if isinstance(y, torch.Tensor) else y.sample

    out = measure(run, repeats, warmup)
    y = run()
    out["output_rms"] = float(y.pow(2).mean().sqrt())
    out["output_head"] = y.flatten()[:4096].tolist()
    return out


TASKS: dict[str, Callable[..., dict[str, Any]]] = {"tiny": task_tiny, "full": task_full}


def speed(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    tiny = {
        which: in_child(
            "tiny",
            which=which,
            model_name=args.model,
            n=8,
            steps=20,
            repeats=args.repeats,
            warmup=1,
            threads=args.threads,
        )
        for which in ("ours", "diffusers")
    }
    a, b = (torch.tensor(tiny[w].pop("images")) for w in ("ours", "diffusers"))
    result["tiny_ddim20_cfg"] = {**tiny, "max_abs_diff": float((a - b).abs().max())}
    if not args.skip_full:
        full = {
            which: in_child("full", which=which, repeats=args.full_repeats, warmup=0, threads=args.threads)
            for which in ("ours", "diffusers")
        }
        a, b = (torch.tensor(full[w].pop("output_head")) for w in ("ours", "diffusers"))
        result["sd15_unet_step"] = {**full, "max_abs_diff_first_4096": float((a - b).abs().max())}
    return result


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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-full", action="store_true", help="skip the full-size SD v1.5 UNet step")
    parser.add_argument("--json", default=None, help="write the results here (default: print them)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    report: dict[str, Any] = {
        "model": args.model,
        "threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
    }
    if not args.skip_quality:
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
    if not args.skip_speed:
        report["speed"] = speed(args)
        print("\nCPU time and peak memory (ours vs diffusers, each in a fresh process)")
        print(f"{'workload':>24} {'who':>9} {'wall s':>8} {'cpu s':>8} {'peak+ MB':>9} {'ratio':>6}")
        for key, label in (
            ("tiny_ddim20_cfg", "t2i 20 DDIM steps CFG"),
            ("sd15_unet_step", "SD1.5 UNet step b2"),
        ):
            if key not in report["speed"]:
                continue
            entry = report["speed"][key]
            for who in ("ours", "diffusers"):
                m = entry[who]
                ratio = entry["diffusers"]["cpu_s"] / m["cpu_s"]
                print(
                    f"{label:>24} {who:>9} {m['wall_s']:>8.2f} {m['cpu_s']:>8.2f} {m['peak_extra_mb']:>9.1f} "
                    f"{ratio:>6.2f}"
                )
            diff = {k: v for k, v in entry.items() if k.startswith("max_abs")}
            print(f"{'':>24} outputs: {diff}")
    text = json.dumps(report, indent=2)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        print(f"\nwrote {args.json}")
    else:
        print(text)


if __name__ == "__main__":
    main()
