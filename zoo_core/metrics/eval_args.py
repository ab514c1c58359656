"""The flags of ``zoo eval`` and ``zoo report``, kept free of torch so building the CLI parser stays fast."""

from __future__ import annotations

from typing import Any

METRICS = ("fid", "kid", "precision", "recall")
BUILTIN_REFERENCES = ("digits", "shapes")
KID_DEFAULT_SUBSET = 1000


def add_arguments(p: Any) -> None:
    """The flags of ``zoo eval`` (real flags, each with help)."""
    p.add_argument(
        "samples", help="a model name or saved model directory (sampled here), a samples folder, or .npz"
    )
    p.add_argument(
        "--metrics", default="fid,kid,precision,recall", help=f"comma-separated: {', '.join(METRICS)}"
    )
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help="samples to use (default: all of a folder/.npz, 1000 from a model)",
    )
    p.add_argument(
        "--reference", default="digits", help="digits, shapes, a folder of real images, or stats.npz"
    )
    p.add_argument(
        "--features",
        choices=["digits", "shapes", "inception"],
        default=None,
        help="feature extractor (default: the reference's own; inception for folders, needs zoo-core[inception])",
    )
    p.add_argument(
        "--resize", action="store_true", help="resize a reference folder to the samples' size/channels"
    )
    p.add_argument(
        "--kid-subset-size",
        type=int,
        default=None,
        help=f"KID subset size (default min({KID_DEFAULT_SUBSET}, n))",
    )
    p.add_argument("--k", type=int, default=3, help="neighbourhood size of precision/recall (paper: 3)")
    p.add_argument("--batch-size", type=int, default=250, help="images per sampling and feature batch")
    p.add_argument("--sampler", help="sampler to draw the model's samples with (default: the model's)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--eta", type=float, help="DDIM eta")
    p.add_argument("--seed", type=int, default=0, help="image i is seeded seed + i")
    p.add_argument("--device", help="device to sample on")
    p.add_argument("--dtype", help="float32 (default), bfloat16, float16 or auto")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def add_report_parsers(reports: Any) -> None:
    """``zoo report trilemma`` and ``zoo report samplers``; each report is a sub-command with its own flags."""
    from zoo_core.metrics.sampler_matrix import add_parser

    add_parser(reports)
    p = reports.add_parser(
        "trilemma",
        help="quality, mode coverage and sampling time of the embedded families under one evaluation",
        description="DDGAN 4 steps, DDPM 1000 ancestral, DDIM 10/50, DPM++ 10 and StyleGAN2 sampled with the "
        "same seeds and measured with `zoo eval` (digits features, reference digits): FID, KID, precision, "
        "recall (mode coverage) and seconds per image; writes a markdown and JSON table beside the plot.",
    )
    p.add_argument(
        "--n", type=int, default=200, help="samples per row (the DDPM 1000-step row dominates the time)"
    )
    p.add_argument(
        "--out", default="docs/trilemma.png", help="the plot; the .md and .json tables go beside it"
    )
    p.add_argument("--batch-size", type=int, default=100, help="images per sampling batch")
    p.add_argument("--rows", help="comma-separated subset of the rows' labels (default: all)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")

    p = reports.add_parser(
        "ddim-steps",
        help="the DDIM paper's Table 1: FID at 10/20/50/100 DDIM steps, eta 0 and 1, and 1000 ancestral steps",
        description="Sample a diffusion model (default the embedded ddpm) with DDIM at each step count, eta 0 "
        "(deterministic) and eta 1, and with ancestral DDPM as the reference row; measure every row with `zoo "
        "eval` (digits features, reference digits) and say whether eta 0 improves with the steps and beats eta 1 "
        "at few steps, as in the paper. Writes a markdown and JSON table beside the plot.",
    )
    p.add_argument(
        "--model", default="ddpm", help="a diffusion model on 16x16 digits (name or saved directory)"
    )
    p.add_argument("--n", type=int, default=500, help="samples per row (seeds 0..n-1)")
    p.add_argument("--steps", default="10,20,50,100", help="comma-separated DDIM step counts")
    p.add_argument(
        "--ancestral-steps",
        type=int,
        default=1000,
        help="steps of the ancestral reference row (0: no such row)",
    )
    p.add_argument(
        "--out", default="docs/ddim-steps.png", help="the plot; the .md and .json tables go beside it"
    )
    p.add_argument("--batch-size", type=int, default=250, help="images per sampling batch")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
