"""``zoo report``: measured tables and figures built from ``zoo eval``.

``trilemma`` is the DDGAN paper's comparison (Xiao et al. 2022, Table 1 and Fig. 1: sample quality, mode
coverage and sampling speed) on the embedded digits models: every row sampled with seeds 0..n-1 and measured
with the same features and reference, so rows compare with each other (not with CIFAR-10 figures in papers).

``ddim-steps`` is the DDIM paper's Table 1 (Song et al. 2021) on one diffusion model (default the embedded
``ddpm``): FID at 10 / 20 / 50 / 100 DDIM steps with eta = 0 (deterministic) and eta = 1, and 1000 ancestral
steps as the reference row. The paper's shape: with eta = 0 quality rises (or holds) with the steps and beats
eta = 1 at few steps; the report says whether the model shows it.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

from zoo_core.errors import EvalError

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
Row = tuple[str, str, str | None, int | None, float | None]


def trilemma(n: int, batch_size: int, rows: list[str] | None = None) -> list[dict[str, Any]]:
    """Measure every row (or those labelled in ``rows``); one dict per row with its figures and command."""
    chosen = [r for r in TRILEMMA_ROWS if rows is None or r[0] in rows]
    if rows is not None and len(chosen) != len(rows):
        known = ", ".join(r[0] for r in TRILEMMA_ROWS)
        raise EvalError(f"--rows names a row that does not exist; the rows are: {known}")
    return measure(chosen, n, batch_size)


def measure(chosen: list[Row], n: int, batch_size: int) -> list[dict[str, Any]]:
    """``zoo eval`` each (label, model, sampler, steps, eta) row: seeds 0..n-1, digits features and reference."""
    from zoo_core.metrics.standard import evaluate

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
        row = {"label": label, "model": model, "sampler": r["sampler"], "steps": r["steps"], "eta": eta}
        row["n"] = r["n"]
        row.update({k: r[k] for k in (*TRILEMMA_METRICS, "kid_std", "seconds_per_image", "nfe_per_image")})
        row["command"] = r["command"]
        results.append(row)
        print(
            f"{label}: FID {row['fid']:.2f}, recall {row['recall']:.3f}, {row['seconds_per_image']:.4f} s/image"
        )
    return results


def machine() -> str:
    import torch

    threads = torch.get_num_threads()
    return (
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{threads} thread{'s' if threads != 1 else ''}, {torch.backends.cpu.get_cpu_capability()}"
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


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EvalError("the plot needs matplotlib: pip install 'zoo-core[plot]'") from None
    return plt


def plot(rows: list[dict[str, Any]], out: Path, title: str) -> None:
    """FID against seconds per image (log x), one labelled point per row; needs matplotlib."""
    plt = _pyplot()
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


def _plot_path(out: str) -> Path:
    path = Path(out)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise EvalError(f"--out {path} must be a .png, .svg or .pdf plot (the tables are written beside it)")
    return path


def _write(args: argparse.Namespace, out: Path, markdown: str, document: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(markdown, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(document["rows"], indent=2))
    else:
        print(markdown)
        print(f"wrote {out}, {out.with_suffix('.md')} and {out.with_suffix('.json')}")


def run_report(args: argparse.Namespace) -> int:
    reports = {"trilemma": run_trilemma, "ddim-steps": run_ddim_steps, "samplers": _run_samplers}
    if args.report not in reports:
        raise EvalError(f"unknown report {args.report!r}; the reports are: {', '.join(reports)}")
    return reports[args.report](args)


def _run_samplers(args: argparse.Namespace) -> int:
    from zoo_core.metrics.sampler_matrix import run_samplers_report

    return run_samplers_report(args)


def run_trilemma(args: argparse.Namespace) -> int:
    if args.n < 10:
        raise EvalError(f"--n {args.n}: the trilemma needs at least 10 samples per row")
    out = _plot_path(args.out)
    rows = trilemma(args.n, args.batch_size, [r.strip() for r in args.rows.split(",")] if args.rows else None)
    header = (
        f"Trilemma on the embedded digits models: n = {args.n} samples per row (seeds 0..{args.n - 1}), "
        f"reference: the 1797 real digits, digits-classifier features; {machine()}. "
        "Command: `zoo report trilemma --n {n} --out {out}`.".format(n=args.n, out=args.out)
    )
    plot(rows, out, f"quality vs sampling time, embedded digits models (n={args.n})")
    _write(args, out, markdown_table(rows, header), {"header": header, "rows": rows})
    return 0


# -- ddim-steps: the DDIM paper's Table 1 ---------------------------------------------------------------------
DDIM_STEPS = (10, 20, 50, 100)
DDIM_ETAS = (0.0, 1.0)


def ddim_rows(model: str, steps: list[int], ancestral_steps: int) -> list[Row]:
    """DDIM at each step count for eta 0 then eta 1, and ancestral DDPM (0 ancestral steps: no such row)."""
    rows: list[Row] = [
        (f"DDIM eta {eta:g}, {s} steps", model, "ddim", s, eta) for eta in DDIM_ETAS for s in steps
    ]
    if ancestral_steps:
        rows.append((f"DDPM ancestral, {ancestral_steps} steps", model, "ddpm", ancestral_steps, None))
    return rows


def ddim_shape(rows: list[dict[str, Any]]) -> dict[str, bool]:
    """Whether the rows have the paper's ordering: eta 0 FID never rises with more steps (within 5 %, the
    noise of FID at these n), and eta 0 beats eta 1 at the fewest steps."""
    by = {(r["eta"], r["steps"]): r["fid"] for r in rows if r["sampler"] == "ddim"}
    steps = sorted({s for _, s in by})
    eta0 = [by[(0.0, s)] for s in steps]
    return {
        "eta0_improves_or_holds": all(b <= a * 1.05 for a, b in zip(eta0[:-1], eta0[1:], strict=True)),
        "eta0_beats_eta1_at_fewest_steps": by[(0.0, steps[0])] < by[(1.0, steps[0])],
    }


def ddim_markdown(rows: list[dict[str, Any]], header: str) -> str:
    """The paper's layout (one line per eta, one column per step count) for FID, then every row in full."""
    ddim = [r for r in rows if r["sampler"] == "ddim"]
    steps = sorted({r["steps"] for r in ddim})
    fid = {(r["eta"], r["steps"]): r["fid"] for r in ddim}
    lines = [header, "", "| FID ↓ | " + " | ".join(f"{s} steps" for s in steps) + " |"]
    lines.append("|---|" + "---:|" * len(steps))
    for eta in DDIM_ETAS:
        lines.append(f"| DDIM eta = {eta:g} | " + " | ".join(f"{fid[(eta, s)]:.2f}" for s in steps) + " |")
    for r in rows:
        if r["sampler"] != "ddim":
            lines.append(f"| {r['label']} (reference) | {r['fid']:.2f} |" + " |" * (len(steps) - 1))
    shape = ddim_shape(rows)
    lines += [
        "",
        "The paper's shape: eta 0 improves or holds with more steps: "
        f"{'yes' if shape['eta0_improves_or_holds'] else 'no'}; eta 0 beats eta 1 at {steps[0]} steps: "
        f"{'yes' if shape['eta0_beats_eta1_at_fewest_steps'] else 'no'}.",
        "",
    ]
    return "\n".join(lines) + "\n" + markdown_table(rows, "Every row:")


def ddim_plot(rows: list[dict[str, Any]], out: Path, title: str) -> None:
    """FID against DDIM steps (log x), one line per eta, the ancestral row as a dashed reference line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for eta, marker in zip(DDIM_ETAS, "os", strict=True):
        line = sorted((r["steps"], r["fid"]) for r in rows if r["sampler"] == "ddim" and r["eta"] == eta)
        ax.plot([s for s, _ in line], [f for _, f in line], marker=marker, label=f"DDIM eta = {eta:g}")
    for r in rows:
        if r["sampler"] != "ddim":
            ax.axhline(r["fid"], color="grey", linestyle="--", label=r["label"])
    steps = sorted({r["steps"] for r in rows if r["sampler"] == "ddim"})
    ax.set_xscale("log")
    ax.set_xticks(steps, [str(s) for s in steps])
    ax.minorticks_off()
    ax.set_xlabel("sampling steps (network evaluations per image)")
    ax.set_ylabel("FID on digit-classifier features (lower is better)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def run_ddim_steps(args: argparse.Namespace) -> int:
    if args.n < 10:
        raise EvalError(f"--n {args.n}: the ddim-steps table needs at least 10 samples per row")
    try:
        steps = sorted({int(s) for s in args.steps.split(",")})
    except ValueError:
        raise EvalError(
            f"--steps {args.steps!r}: expected comma-separated step counts, e.g. 10,20,50,100"
        ) from None
    if len(steps) < 2 or steps[0] < 1:
        raise EvalError(f"--steps {args.steps!r}: expected at least two positive step counts")
    if args.ancestral_steps < 0:
        raise EvalError(
            f"--ancestral-steps {args.ancestral_steps}: expected a step count, or 0 for no such row"
        )
    out = _plot_path(args.out)
    rows = measure(ddim_rows(args.model, steps, args.ancestral_steps), args.n, args.batch_size)
    command = f"zoo report ddim-steps --model {args.model} --n {args.n} --out {args.out}"
    if steps != list(DDIM_STEPS):
        command += f" --steps {','.join(map(str, steps))}"
    if args.ancestral_steps != 1000:
        command += f" --ancestral-steps {args.ancestral_steps}"
    header = (
        f"DDIM steps on `{args.model}`: n = {args.n} samples per row (seeds 0..{args.n - 1}), reference: the 1797 "
        f"real digits, digits-classifier features; {machine()}. Command: `{command}`."
    )
    ddim_plot(rows, out, f"DDIM steps on {args.model} (n={args.n})")
    document = {"header": header, "command": command, "shape": ddim_shape(rows), "rows": rows}
    _write(args, out, ddim_markdown(rows, header), document)
    return 0
