"""``zoo report``: measured tables and figures built from ``zoo eval``.

``trilemma`` is the DDGAN paper's comparison (Xiao et al. 2022, Table 1 and Fig. 1: sample quality, mode
coverage and sampling speed) on the embedded digits models: every row sampled with seeds 0..n-1 and measured
with the same features and reference, so rows compare with each other (not with CIFAR-10 figures in papers).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

#: (label, model, sampler, steps, eta): the rows of the DDGAN paper's comparison that the zoo embeds
TRILEMMA_ROWS: tuple[tuple[str, str, str | None, int | None, float | None], ...] = (
    ("DDGAN 4 steps", "ddgan", "ddgan", 4, None),
    ("DDPM 1000 ancestral", "ddpm", "ddpm", 1000, None),
    ("DDIM 10 steps", "ddpm", "ddim", 10, 0.0),
    ("DDIM 50 steps", "ddpm", "ddim", 50, 0.0),
    ("DPM++ 10 steps", "ddpm", "dpm++2m", 10, None),
    ("StyleGAN2", "stylegan", None, None, None),
)
TRILEMMA_METRICS = ("fid", "kid", "precision", "recall")


def trilemma(n: int, batch_size: int, rows: list[str] | None = None) -> list[dict[str, Any]]:
    """Measure every row (or those labelled in ``rows``); one dict per row with its figures and command."""
    from zoo_core.metrics.standard import EvalError, evaluate

    chosen = [r for r in TRILEMMA_ROWS if rows is None or r[0] in rows]
    if rows is not None and len(chosen) != len(rows):
        known = ", ".join(r[0] for r in TRILEMMA_ROWS)
        raise EvalError(f"--rows names a row that does not exist; the rows are: {known}")
    results = []
    for label, model, sampler, steps, eta in chosen:
        args = argparse.Namespace(
            samples=model,
            metrics=",".join(TRILEMMA_METRICS),
            n=n,
            reference="digits",
            features="digits",
            resize=False,
            kid_subset_size=None,
            k=3,
            batch_size=batch_size,
            sampler=sampler,
            steps=steps,
            eta=eta,
            seed=0,
            device=None,
            dtype=None,
            json=False,
        )
        r = evaluate(args)
        row = {"label": label, "model": model, "sampler": r["sampler"], "steps": r["steps"], "n": r["n"]}
        row.update({k: r[k] for k in (*TRILEMMA_METRICS, "kid_std", "seconds_per_image", "nfe_per_image")})
        row["command"] = r["command"]
        results.append(row)
        print(
            f"{label}: FID {row['fid']:.2f}, recall {row['recall']:.3f}, {row['seconds_per_image']:.4f} s/image"
        )
    return results


def machine() -> str:
    import torch

    return (
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}"
    )


def markdown_table(rows: list[dict[str, Any]], header: str) -> str:
    lines = [
        header,
        "",
        "| sampler | NFE | FID ↓ | KID ↓ | precision ↑ | recall (mode coverage) ↑ | s / image ↓ |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        nfe = "-" if r["nfe_per_image"] is None else f"{r['nfe_per_image']:g}"
        lines.append(
            f"| {r['label']} | {nfe} | {r['fid']:.2f} | {r['kid']:.4f} ± {r['kid_std']:.4f} | "
            f"{r['precision']:.3f} | {r['recall']:.3f} | {r['seconds_per_image']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], out: Path, title: str) -> None:
    """FID against seconds per image (log x), one labelled point per row; needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from zoo_core.metrics.standard import EvalError

        raise EvalError("the plot needs matplotlib: pip install 'zoo-core[plot]'") from None
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for i, r in enumerate(rows):
        size = 30 + 300 * r["recall"]
        ax.scatter(r["seconds_per_image"], r["fid"], s=size, alpha=0.7)
        ax.annotate(
            f"{r['label']}\nrecall {r['recall']:.2f}",
            (r["seconds_per_image"], r["fid"]),
            textcoords="offset points",
            xytext=(8, 4 if i % 2 == 0 else -18),  # alternate sides: neighbours do not overlap
            fontsize=7,
        )
    ax.set_xscale("log")
    ax.set_xlabel("sampling time per image (s, log scale, CPU)")
    ax.set_ylabel("FID on digit-classifier features (lower is better)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(x=0.25, y=0.15)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def run_report(args: argparse.Namespace) -> int:
    from zoo_core.metrics.standard import EvalError

    if args.report == "samplers":
        from zoo_core.metrics.sampler_matrix import run_samplers_report

        return run_samplers_report(args)
    if args.report != "trilemma":
        raise EvalError(f"unknown report {args.report!r}")
    if args.n < 10:
        raise EvalError(f"--n {args.n}: the trilemma needs at least 10 samples per row")
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise EvalError(f"--out {out} must be a .png, .svg or .pdf plot (the tables are written beside it)")
    rows = trilemma(args.n, args.batch_size, [r.strip() for r in args.rows.split(",")] if args.rows else None)
    header = (
        f"Trilemma on the embedded digits models: n = {args.n} samples per row (seeds 0..{args.n - 1}), "
        f"reference: the 1797 real digits, digits-classifier features; {machine()}. "
        "Command: `zoo report trilemma --n {n} --out {out}`.".format(n=args.n, out=args.out)
    )
    plot(rows, out, f"quality vs sampling time, embedded digits models (n={args.n})")
    out.with_suffix(".md").write_text(markdown_table(rows, header), encoding="utf-8")
    out.with_suffix(".json").write_text(
        json.dumps({"header": header, "rows": rows}, indent=2) + "\n", encoding="utf-8"
    )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(markdown_table(rows, header))
        print(f"wrote {out}, {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    return 0
