"""``zoo report samplers``: every embedded diffusion model under every registered diffusion sampler, measured.

Each cell samples n images (seeds 0..n-1) at the sampler's recommended steps (the card's steps where the card's
default sampler is that one; DDGAN's posterior sampler at 4 and 8 steps) and scores them with the project's
evaluators: Frechet distance on digits-classifier features for digit models (lower is better), prompt adherence
(shape, colour and background all right) for the shapes text-to-image model. A conversion bug shows as a number.

Every cell also records the share of pixels more than OUT_OF_RANGE_TOLERANCE outside [-1, 1] before
``Model.sample``'s clamp (``out_of_range``; a slight overshoot of the background is common and harmless): the clamp
pins them at +-1, which the evaluator scores as saturated images. A cell far above its row's median gets
a footnote with that share and the model's a_0 (the signal its lowest training timestep keeps), so a sampler that
overshoots on a model shows why in numbers, not only as a bad distance.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

#: steps per sampler where its default (None: all T training steps) is not what a user runs
STEPS_OVERRIDE: dict[str, tuple[int, ...]] = {"ddgan": (4, 8), "ddpm": (100,)}
PROMPTED = {"t2i"}
#: a pixel counts as out of range when the output clamp moves it by more than this (5% of the range)
OUT_OF_RANGE_TOLERANCE = 0.1
#: footnote a cell whose out-of-range share exceeds its row's median by this much (a share of the pixels)
OUT_OF_RANGE_MARGIN = 0.1


class FinalSamples:
    """A sampler callback keeping the last x of every sampling call (before decoding and the output clamp)."""

    def __init__(self) -> None:
        self.batches: list[Any] = []
        self._last: Any = None

    def __call__(self, i: int, t: Any, x: Any) -> None:
        if i == 0 and self._last is not None:  # a new call began: the previous one's last x is final
            self.batches.append(self._last)
        self._last = x.detach().clone()

    def samples(self) -> Any:
        import torch

        return torch.cat([*self.batches, self._last])


def columns() -> list[tuple[str, int | None]]:
    """(sampler, steps) per column: every registered diffusion sampler at its recommended steps."""
    from zoo_core.api import list_samplers
    from zoo_core.registry import get_sampler

    cols = []
    for name in sorted(list_samplers()):
        sampler = get_sampler(name)
        if "diffusion" not in sampler.kinds:
            continue
        for steps in STEPS_OVERRIDE.get(name, (sampler.default_steps,)):
            cols.append((name, steps))
    return cols


def rows() -> list[str]:
    """One card per distinct set of embedded diffusion weights (first-party first), the example plugin's included."""
    from zoo_core.api import load
    from zoo_core.registry import get_registry

    cards = get_registry().cards
    seen, names = set(), []
    for name in sorted(cards, key=lambda n: (cards[n].family != cards[n].plugin, n)):
        card = cards[name]
        if not (card.weights and card.weights.source.startswith("embedded:")) or card.weights.source in seen:
            continue
        if load(name).kind != "diffusion":
            continue
        seen.add(card.weights.source)
        names.append(name)
    return sorted(names)


def measure(name: str, sampler: str, steps: int | None, n: int, batch_size: int) -> dict[str, Any]:
    """Sample one cell and score it; the evaluator follows from what the model draws."""
    from zoo_core.api import load
    from zoo_core.metrics.sampling import sample_model

    model = load(name)
    run_steps = min(steps or model.schedule.num_train_timesteps, model.schedule.num_train_timesteps)
    per_image: dict[str, list[str]] = {}
    captions: list[str] = []
    if name in PROMPTED:
        from zoo_core.data.shapes import ShapesDataset

        dataset = ShapesDataset(n)  # captions only (they do not depend on the size)
        captions = [dataset.spec(i).caption for i in range(n)]
        per_image["prompt"] = captions
    final = FinalSamples()
    begin = time.perf_counter()
    images, timing = sample_model(
        model, n, batch_size=batch_size, per_image=per_image, sampler=sampler, steps=run_steps, callback=final
    )
    cell: dict[str, Any] = {"model": name, "sampler": sampler, "steps": steps, "run_steps": run_steps, "n": n}
    cell.update(out_of_range_stats(model, final.samples()))
    if captions:
        from zoo_core.metrics.shapes_eval import evaluate_shapes_samples

        cell["metric"], cell["value"] = "prompt", evaluate_shapes_samples(images, captions)["all_accuracy"]
    elif images.shape[1] == 1 and images.shape[-1] == images.shape[-2]:
        from zoo_core.metrics.digits_eval import evaluate_digit_samples

        cell["metric"], cell["value"] = "fd", evaluate_digit_samples(images)["frechet_distance"]
    else:
        cell["metric"], cell["value"] = "std", float(images.std())
    cell["seconds"] = time.perf_counter() - begin
    cell["nfe_per_image"] = timing["nfe_per_image"]
    return cell


def out_of_range_stats(model: Any, x: Any) -> dict[str, float]:
    """How far the decoded samples leave [-1, 1] before the output clamp, and the model's a_0."""
    import torch

    with torch.no_grad():
        raw = model.decode(x).float().abs()
    return {
        "out_of_range": float((raw > 1 + OUT_OF_RANGE_TOLERANCE).float().mean()),
        "max_abs": float(raw.max()),
        "a0": float(model.schedule.alphas_cumprod[0]),
    }


def matrix(n: int, batch_size: int, models: list[str] | None = None) -> list[dict[str, Any]]:
    cells = []
    for name in models or rows():
        for sampler, steps in columns():
            cell = measure(name, sampler, steps, n, batch_size)
            print(
                f"{name} x {sampler}@{steps}: {cell['metric']} {cell['value']:.3f} ({cell['seconds']:.1f} s)"
            )
            cells.append(cell)
    return cells


def markdown(cells: list[dict[str, Any]], n: int, command: str) -> str:
    cols = list(dict.fromkeys((c["sampler"], c["steps"]) for c in cells))
    names = list(dict.fromkeys(c["model"] for c in cells))
    by = {(c["model"], c["sampler"], c["steps"]): c for c in cells}
    head = "| model (metric) | " + " | ".join(f"{s} {st}" for s, st in cols) + " |"
    lines = [
        f"Model x sampler matrix, n = {n} samples per cell (seeds 0..{n - 1}), steps under each sampler's name. "
        "fd: Frechet distance to the 1797 real digits on digits-classifier features (lower is better); "
        "prompt: share of t2i samples whose shape, colour and background all match the prompt (higher is "
        f"better). (T=k): the model has only k timesteps, all run. Command: `{command}`.",
        "",
        head,
        "|" + "---|" * (len(cols) + 1),
    ]
    notes: list[str] = []
    for name in names:
        metric = next(c["metric"] for c in cells if c["model"] == name)
        values = [by.get((name, s, st)) for s, st in cols]
        flagged = {id(c) for c in overshooting(cells, name)}
        texts = []
        for cell in values:
            text = _value(cell)
            if cell is not None and id(cell) in flagged:
                notes.append(_footnote(len(notes) + 1, cell, cells))
                text += f" [{len(notes)}]"
            texts.append(text)
        lines.append(f"| {name} ({metric}) | " + " | ".join(texts) + " |")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def _row_median(cells: list[dict[str, Any]], name: str) -> float | None:
    shares = sorted(c["out_of_range"] for c in cells if c["model"] == name and "out_of_range" in c)
    return shares[(len(shares) - 1) // 2] if shares else None


def overshooting(cells: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The cells of row ``name`` whose out-of-range share exceeds the row's median by OUT_OF_RANGE_MARGIN."""
    median = _row_median(cells, name)
    if median is None:
        return []
    return [
        c for c in cells if c["model"] == name and c.get("out_of_range", 0.0) > median + OUT_OF_RANGE_MARGIN
    ]


def _footnote(number: int, cell: dict[str, Any], cells: list[dict[str, Any]]) -> str:
    median = _row_median(cells, cell["model"])
    return (
        f"[{number}] {cell['sampler']} {cell['steps']} on {cell['model']}: {cell['out_of_range']:.0%} of the "
        f"pixels lie more than {OUT_OF_RANGE_TOLERANCE} outside [-1, 1] before the output clamp (max |x| "
        f"{cell['max_abs']:.2f}; the row's median "
        f"{median:.0%}), so the scored images are pinned at +-1. {cell['model']}'s lowest training timestep keeps "
        f"a_0 = {cell['a0']:.4g} of the signal: every sampler's last step goes to the data from noise std "
        f"sqrt(1 - a_0) = {(1 - cell['a0']) ** 0.5:.2f}."
    )


def _value(cell: dict[str, Any] | None) -> str:
    """The cell's figure; a model trained on fewer timesteps than the column's steps runs all of them (noted)."""
    if cell is None:
        return ""
    text = f"{cell['value']:.2f}"
    return text if cell["run_steps"] == cell["steps"] else f"{text} (T={cell['run_steps']})"


def run_samplers_report(args: argparse.Namespace) -> int:
    from zoo_core.errors import EvalError

    if args.n < 2:
        raise EvalError(f"--n {args.n}: the evaluators need at least 2 samples per cell")
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    if models:
        known = rows()
        unknown = [m for m in models if m not in known]
        if unknown:
            raise EvalError(
                f"--models: {', '.join(unknown)} not embedded diffusion models; choose from {', '.join(known)}"
            )
    cells = matrix(args.n, args.batch_size, models)
    command = f"zoo report samplers --n {args.n} --out {args.out}"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(cells, args.n, command), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(cells, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


def add_parser(reports: Any) -> None:
    p = reports.add_parser(
        "samplers",
        help="every embedded diffusion model under every diffusion sampler, scored by the digit/shape evaluators",
    )
    p.add_argument("--n", type=int, default=200, help="samples per cell")
    p.add_argument(
        "--out", default="docs/samplers-matrix.md", help="the markdown table; the JSON goes beside it"
    )
    p.add_argument("--batch-size", type=int, default=100, help="images per sampling batch")
    p.add_argument("--models", help="comma-separated subset of the rows (default: all)")
