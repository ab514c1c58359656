"""Sample quality of the embedded digits DDPM against its number of steps: the DDIM paper's Table 1 on digits.

    python benchmarks/bench_digits_quality.py [--model ddpm] [--n 1000] [--ddim-steps 10 20 50] [--ddpm-steps 1000]

Rows: the real-digit baseline (the held-out test split against the train split: the best a model can hope
for), DDIM with eta = 0 at each of ``--ddim-steps``, and ancestral DDPM at ``--ddpm-steps`` (the model's own
sampler and schedule). Each model row draws ``--n`` samples, image i seeded by ``seed + i`` (so a row does not
depend on the batch size), and measures them with ``zoo_core.metrics`` (``sampling``, ``digits_eval``): the Frechet distance of
the digit classifier's features to the real digits' (``--reference``, default the train split the model saw),
the share classified with probability > 0.9, the class coverage and histogram, the classifier score, images per
second and network evaluations per image. Prints a table and the JSON; ``--json PATH`` also writes the JSON,
rewritten after every row so a long run (1000 DDPM steps) leaves its finished rows behind.

The test split holds 360 images and a model row ``--n``: the Frechet distance is biased upwards at small sample
sizes, so the baseline (n = 360) is slightly pessimistic next to rows of 1000. On a shared CPU pass
``--threads 1``: a thread pool spinning against other jobs makes timings erratic.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

COLUMNS = (
    ("row", "{}"),
    ("nfe_per_image", "{:.0f}"),
    ("images_per_second", "{:.1f}"),
    ("frechet_distance", "{:.3f}"),
    ("confident_share", "{:.3f}"),
    ("class_coverage", "{}"),
    ("classifier_score", "{:.2f}"),
)


def real_row() -> dict[str, Any]:
    """The held-out real digits (test split, 16 px) measured like samples, against the train split."""
    from zoo_core.data.digits import DigitsDataset
    from zoo_core.metrics.digits_eval import evaluate_digit_samples

    images = DigitsDataset(16, "test").images
    figures = evaluate_digit_samples(images, reference="train")
    figures.pop("real_baseline_frechet", None)
    return {"row": "real digits (test vs train)", "sampler": None, "steps": None, **figures}


def model_row(
    model: Any, sampler: str, steps: int, args: argparse.Namespace, **options: Any
) -> dict[str, Any]:
    from zoo_core.metrics.digits_eval import evaluate_digit_samples
    from zoo_core.metrics.sampling import sample_model

    images, timing = sample_model(
        model, args.n, batch_size=args.batch_size, seed=args.seed, sampler=sampler, steps=steps, **options
    )
    figures = evaluate_digit_samples(images, reference=args.reference)
    figures.pop("real_baseline_frechet", None)
    label = f"{sampler} {steps}" + "".join(f" {k}={v}" for k, v in options.items())
    return {"row": label, "sampler": sampler, "steps": steps, "options": options, **timing, **figures}


def table_lines(rows: list[dict[str, Any]], columns: tuple[tuple[str, str], ...] = COLUMNS) -> list[str]:
    """Aligned columns (name, format): a header, a rule, one line per row; "-" where a figure is missing."""
    cells = [[name for name, _ in columns]]
    for row in rows:
        cells.append(["-" if row.get(name) is None else fmt.format(row[name]) for name, fmt in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = table_lines(rows)
    for row in rows:
        lines.append(f"{row['row']}: class histogram {row['class_histogram']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="ddpm", help="a registered model name or a saved model directory")
    parser.add_argument("--n", type=int, default=1000, help="samples per model row")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="image i is seeded by seed + i")
    parser.add_argument("--ddim-steps", type=int, nargs="*", default=[10, 20, 50])
    parser.add_argument("--ddpm-steps", type=int, nargs="*", default=[1000], help="none to skip DDPM")
    parser.add_argument("--reference", choices=["train", "all"], default="train")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", dest="json_path", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import zoo

    model = zoo.load(args.model)
    command = "python benchmarks/bench_digits_quality.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    result: dict[str, Any] = {
        "benchmark": "digits_quality",
        "command": command.strip(),
        "model": args.model,
        "n": args.n,
        "seed": args.seed,
        "reference": args.reference,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rows": [],
    }

    def record(row: dict[str, Any]) -> None:
        result["rows"].append(row)
        print(f"[{time.strftime('%H:%M:%S')}] {row['row']}: " + json.dumps(row), flush=True)
        if args.json_path:
            args.json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    record(real_row())
    for steps in args.ddim_steps:
        record(model_row(model, "ddim", steps, args, eta=0.0))
    for steps in args.ddpm_steps:
        record(model_row(model, "ddpm", steps, args))

    print(format_table(result["rows"]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
