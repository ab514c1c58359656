"""Sample quality and speed of the embedded class-conditional StyleGAN2 (``stylegan``) on the digits.

    OMP_NUM_THREADS=1 python benchmarks/bench_stylegan_digits.py [--model stylegan] [--n 1000] [--psi 1.0 0.7]

Rows: the real-digit baseline (the held-out test split against the train split: the best a model can hope for),
then the model at each truncation ``--psi``. A model row asks for classes 0, 1, ..., 9 in turn over ``--n``
samples, image i seeded by ``seed + i`` (so a row does not depend on the batch size), and measures them with
``zoo_core.metrics.digits_eval``: the Frechet distance of the digit classifier's features to the real digits'
(``--reference``, default the train split the model saw), the share classified with probability > 0.9, the class
coverage, the classifier score, the class-conditional accuracy (samples asked for digit k classified as k) with
its worst class, and images per second (one forward pass of the generator per image). Prints a table and the
JSON; ``--json PATH`` also writes the JSON.

The Frechet distance is biased upwards at small sample sizes: the baseline (n = 360) is slightly pessimistic next
to rows of 1000. On a shared CPU use one thread (OMP_NUM_THREADS=1 or --threads 1): a thread pool spinning
against other jobs makes timings erratic.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch
from bench_digits_quality import table_lines  # benchmarks/ is on sys.path when run as a script

COLUMNS = (
    ("row", "{}"),
    ("images_per_second", "{:.0f}"),
    ("frechet_distance", "{:.3f}"),
    ("confident_share", "{:.3f}"),
    ("class_coverage", "{}"),
    ("classifier_score", "{:.2f}"),
    ("conditional_accuracy", "{:.3f}"),
    ("worst_class_accuracy", "{:.3f}"),
)


def real_row() -> dict[str, Any]:
    """The held-out real digits (test split, 16 px) measured like samples, against the train split."""
    from zoo_core.data.digits import DigitsDataset
    from zoo_core.metrics.digits_eval import evaluate_digit_samples

    images, labels = DigitsDataset(16, "test").as_tensors()
    figures = evaluate_digit_samples(images, labels, reference="train")
    figures.pop("real_baseline_frechet", None)
    return {"row": "real digits (test vs train)", **_worst(figures)}


def model_row(model: Any, psi: float, args: argparse.Namespace) -> dict[str, Any]:
    from zoo_core.metrics.digits_eval import evaluate_digit_samples
    from zoo_core.metrics.sampling import sample_model

    labels = [i % 10 for i in range(args.n)]
    sample_model(model, 10, batch_size=10, seed=args.seed, per_image={"labels": labels[:10]})  # warm-up
    images, timing = sample_model(
        model,
        args.n,
        batch_size=args.batch_size,
        seed=args.seed,
        per_image={"labels": labels},
        truncation_psi=psi,
    )
    figures = evaluate_digit_samples(images, labels, reference=args.reference)
    figures.pop("real_baseline_frechet", None)
    return {"row": f"{args.model} psi={psi:g}", "truncation_psi": psi, **timing, **_worst(figures)}


def _worst(figures: dict[str, Any]) -> dict[str, Any]:
    per_class = [a for a in figures.get("per_class_accuracy") or [] if a is not None]
    return {**figures, "worst_class_accuracy": min(per_class) if per_class else None}


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = table_lines(rows, COLUMNS)
    for row in rows:
        accuracy = " ".join(f"{a:.2f}" for a in row.get("per_class_accuracy") or [])
        lines.append(f"{row['row']}: class histogram {row['class_histogram']}; per-class accuracy {accuracy}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="stylegan", help="a registered model name or a saved model directory"
    )
    parser.add_argument("--n", type=int, default=1000, help="samples per model row")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0, help="image i is seeded by seed + i")
    parser.add_argument("--psi", type=float, nargs="*", default=[1.0, 0.7], help="truncation psi of each row")
    parser.add_argument("--reference", choices=["train", "all"], default="train")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", dest="json_path", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import zoo

    model = zoo.load(args.model)
    command = "python benchmarks/bench_stylegan_digits.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    rows = [real_row()] + [model_row(model, psi, args) for psi in args.psi]
    result = {
        "benchmark": "stylegan_digits",
        "command": command.strip(),
        "model": args.model,
        "n": args.n,
        "seed": args.seed,
        "reference": args.reference,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rows": rows,
    }
    print(format_table(rows))
    print(json.dumps(result))
    if args.json_path:
        args.json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
