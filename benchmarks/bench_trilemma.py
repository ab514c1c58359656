"""The generative trilemma on the offline digits: quality, mode coverage and sampling speed in one run.

    python benchmarks/bench_trilemma.py [--n 1000] [--ddpm-n N] [--blocks K] [--batch-size 250] [--threads 1]
        [--json out.json]

Rows: the embedded ``ddgan`` (4 steps), ``ddpm`` (1000 ancestral steps), ``ddim`` (the same network, 10 and 50
steps) and ``stylegan`` when its card exists. Every row samples ``--n`` images with image i seeded by seed + i
(``zoo_core.metrics.digits_eval.sample_model``), in batches of ``--batch-size``, on the same threads, one after the
other in one process; then ``evaluate_digit_samples`` measures them against the real digits:

- ``fd``: Frechet distance of the digit classifier's features to the real digits' (``--reference``, default the
  train split the models saw, as in bench_digits_quality.py; FID-style, lower is better);
  ``fd@m``: the same on the first m images of every row, m the smallest n of the run (the distance is biased
  upward at small n, so rows are compared at equal n); with ``--blocks K``, ``fd blocks``: the distance of each of
  K disjoint blocks of those m images (the same seeds in every row), so the spread shows how much of a
  difference between rows is sampling noise;
- ``confident``: share of samples the classifier calls with probability > 0.9; ``coverage``: classes holding at
  least half their fair share (10 = no missing mode);
- ``nfe``: network evaluations per image; ``img/s``: images per second (wall clock) and ``img/cpu-s`` per second
  of process CPU time (less disturbed by other jobs on a shared machine), each the median over the full batches;
  ``ms/nfe``: milliseconds of CPU per image per network evaluation (the cost of one network call, so the speed
  comparison can be read against network size); ``params``: parameters of the sampling network.

DDPM at 1000 steps is slow on a CPU: ``--ddpm-n`` samples fewer images for that row only (its speed is the median
over those batches, its quality measured at that n and compared to the others at the same n through ``fd@m``).
The summary states the DDGAN/DDPM-1000 speed-up and distance ratio (the target: >= 100x faster, distance within
1.5x). Prints a table and the JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Row:
    """One sampling setup: a card, the sampler and steps to run it with."""

    label: str
    card: str
    sampler: str | None = None
    steps: int | None = None
    options: tuple[tuple[str, Any], ...] = ()
    optional: bool = False  # skipped (and said so) when the card does not exist


ROWS = (
    Row("ddgan (4 steps)", "ddgan", "ddgan", 4),
    Row("ddpm (1000 steps)", "ddpm", "ddpm", 1000),
    Row("ddim (10 steps)", "ddim", "ddim", 10, (("eta", 0.0),)),
    Row("ddim (50 steps)", "ddim", "ddim", 50, (("eta", 0.0),)),
    Row("stylegan", "stylegan", optional=True),
)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sample_timed(
    model: Any,
    n: int,
    *,
    batch_size: int,
    seed: int,
    sampler: str | None,
    steps: int | None,
    options: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """``n`` images (image i seeded by seed + i) and the per-batch speed, batch by batch so each is timed alone."""
    from zoo_core.metrics.sampling import sample_model

    kwargs: dict[str, Any] = dict(options or {})
    if sampler is not None:
        kwargs["sampler"] = sampler
    if steps is not None:
        kwargs["steps"] = steps
    sample_model(model, 2, batch_size=2, seed=seed, **kwargs)  # warm-up: first-call allocations, kernels
    images, rates, cpu_rates, nfes = [], [], [], []
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        cpu = time.process_time()
        x, timing = sample_model(model, count, batch_size=count, seed=seed + start, **kwargs)
        cpu = time.process_time() - cpu
        images.append(x)
        nfes.append(timing["nfe_per_image"])
        if count == batch_size or n < batch_size:  # a short last batch is not the same measurement
            rates.append(count / timing["seconds"])
            cpu_rates.append(count / cpu)
    nfe = nfes[0]
    ips_cpu = statistics.median(cpu_rates)
    return torch.cat(images), {
        "nfe_per_image": nfe,
        "images_per_s": statistics.median(rates),
        "images_per_cpu_s": ips_cpu,
        "cpu_ms_per_nfe_per_image": 1000.0 / (ips_cpu * nfe) if nfe else None,
        "timed_batches": len(rates),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import zoo
    from zoo_core.metrics.digits_eval import evaluate_digit_samples

    torch.set_num_threads(args.threads)
    available = set(zoo.list_models())
    models: dict[str, Any] = {}
    rows, samples, skipped = [], {}, []
    for row in ROWS:
        if row.card not in available:
            if not row.optional:
                raise SystemExit(
                    f"card {row.card!r} is not registered (zoo list); it is needed for {row.label}"
                )
            skipped.append(row.label)
            continue
        if row.card not in models:
            models[row.card] = zoo.load(row.card, device="cpu")
        model = models[row.card]
        n = args.ddpm_n if (row.sampler == "ddpm" and args.ddpm_n) else args.n
        print(f"sampling {row.label}: n={n} ...", file=sys.stderr, flush=True)
        images, speed = sample_timed(
            model,
            n,
            batch_size=args.batch_size,
            seed=args.seed,
            sampler=row.sampler,
            steps=row.steps,
            options=dict(row.options),
        )
        quality = evaluate_digit_samples(images, reference=args.reference)
        samples[row.label] = images
        rows.append(
            {
                "label": row.label,
                "card": row.card,
                "sampler": row.sampler or model.default_sampler,
                "steps": row.steps or model.default_steps,
                "options": dict(row.options),
                "n": n,
                "params": count_parameters(model),
                **speed,
                "frechet_distance": quality["frechet_distance"],
                "confident_share": quality["confident_share"],
                "class_coverage": quality["class_coverage"],
                "classifier_score": quality["classifier_score"],
                "class_histogram": quality["class_histogram"],
                "real_baseline_frechet": quality["real_baseline_frechet"],
            }
        )
    common = min(r["n"] for r in rows)
    for r in rows:
        r["common_n"] = common
        r["frechet_distance_at_common_n"] = (
            r["frechet_distance"]
            if r["n"] == common
            else evaluate_digit_samples(samples[r["label"]][:common], reference=args.reference)[
                "frechet_distance"
            ]
        )
        r["frechet_distance_blocks"] = block_distances(
            samples[r["label"]][:common], args.blocks, args.reference
        )
    return {
        "settings": {
            "n": args.n,
            "ddpm_n": args.ddpm_n or args.n,
            "blocks": args.blocks,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "seed": args.seed,
            "reference": args.reference,
            "torch": torch.__version__,
            "command": "python benchmarks/bench_trilemma.py " + " ".join(sys.argv[1:]),
        },
        "rows": rows,
        "skipped": skipped,
        "summary": summary(rows),
    }


def block_distances(images: torch.Tensor, blocks: int, reference: str) -> list[float]:
    """Frechet distance of each of ``blocks`` disjoint, equal blocks of ``images`` (none for fewer than 2 blocks)."""
    from zoo_core.metrics.digits_eval import evaluate_digit_samples

    if blocks < 2:
        return []
    size = len(images) // blocks
    return [
        evaluate_digit_samples(images[b * size : (b + 1) * size], reference=reference)["frechet_distance"]
        for b in range(blocks)
    ]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """DDGAN against DDPM-1000: speed-up (wall and CPU), distance ratio at equal n, parameter ratio."""
    by_card = {(r["card"], r["sampler"]): r for r in rows}
    gan, ddpm = by_card.get(("ddgan", "ddgan")), by_card.get(("ddpm", "ddpm"))
    if gan is None or ddpm is None:
        return {}
    speedup = gan["images_per_s"] / ddpm["images_per_s"]
    speedup_cpu = gan["images_per_cpu_s"] / ddpm["images_per_cpu_s"]
    ratio = gan["frechet_distance_at_common_n"] / ddpm["frechet_distance_at_common_n"]
    block_ratios = [
        g / d for g, d in zip(gan["frechet_distance_blocks"], ddpm["frechet_distance_blocks"], strict=True)
    ]
    return {
        "ddgan_vs_ddpm1000_speedup": speedup,
        "ddgan_vs_ddpm1000_speedup_cpu": speedup_cpu,
        "ddgan_vs_ddpm1000_frechet_ratio": ratio,
        "ddgan_vs_ddpm1000_frechet_ratio_blocks": block_ratios,
        "ddgan_vs_ddpm_params_ratio": gan["params"] / ddpm["params"],
        "speedup_at_least_100x": min(speedup, speedup_cpu) >= 100,
        "frechet_within_1_5x": ratio <= 1.5,
    }


def _num(x: float) -> str:
    """Three significant digits, without exponents for the rates seen here (0.0412 .. 1234)."""
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def format_table(result: dict[str, Any]) -> str:
    rows = result["rows"]
    common = rows[0]["common_n"] if rows else 0
    head = (
        f"{'model':<20}{'n':>6}{'fd':>8}{f'fd@{common}':>9}{'confident':>11}{'coverage':>10}{'nfe':>6}"
        f"{'img/s':>10}{'img/cpu-s':>11}{'ms/nfe':>8}{'params':>11}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['label']:<20}{r['n']:>6}{r['frechet_distance']:>8.2f}{r['frechet_distance_at_common_n']:>9.2f}"
            f"{r['confident_share']:>11.3f}{r['class_coverage']:>10}{r['nfe_per_image']:>6.0f}"
            f"{_num(r['images_per_s']):>10}{_num(r['images_per_cpu_s']):>11}"
            f"{r['cpu_ms_per_nfe_per_image']:>8.3f}{r['params']:>11,}"
        )
    for r in rows:
        if r["frechet_distance_blocks"]:
            blocks = ", ".join(f"{d:.2f}" for d in r["frechet_distance_blocks"])
            lines.append(f"{r['label']}: fd of {len(r['frechet_distance_blocks'])} blocks of seeds: {blocks}")
    if rows:
        lines.append(f"real digits (test vs train split): fd {rows[0]['real_baseline_frechet']:.2f}")
    if result["skipped"]:
        lines.append(f"skipped (no card): {', '.join(result['skipped'])}")
    s = result["summary"]
    if s:
        lines.append(
            f"ddgan vs ddpm-1000: {s['ddgan_vs_ddpm1000_speedup']:.0f}x faster (wall), "
            f"{s['ddgan_vs_ddpm1000_speedup_cpu']:.0f}x (CPU time); fd ratio {s['ddgan_vs_ddpm1000_frechet_ratio']:.2f} "
            f"at n={common}; params ratio {s['ddgan_vs_ddpm_params_ratio']:.2f}"
        )
        if s["ddgan_vs_ddpm1000_frechet_ratio_blocks"]:
            ratios = ", ".join(f"{x:.2f}" for x in s["ddgan_vs_ddpm1000_frechet_ratio_blocks"])
            lines.append(f"fd ratio per block of seeds: {ratios}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="samples per row (1000 for the record)")
    parser.add_argument(
        "--ddpm-n", type=int, default=None, help="samples for the DDPM-1000 row (default: --n)"
    )
    parser.add_argument(
        "--blocks",
        type=int,
        default=1,
        help="also measure the distance on this many disjoint blocks of seeds",
    )
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads, the same for every row"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reference",
        choices=["train", "all"],
        default="train",
        help="real digits the distance is measured to",
    )
    parser.add_argument("--json", dest="json_path", default=None, help="also write the JSON here")
    args = parser.parse_args()
    if args.n < 2 or (args.ddpm_n is not None and args.ddpm_n < 2):
        parser.error("need at least 2 samples per row")
    if args.blocks < 1 or 2 * args.blocks > min(args.n, args.ddpm_n or args.n):
        parser.error("--blocks must be at least 1 and leave at least 2 samples per block")
    result = run(args)
    print(format_table(result))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
