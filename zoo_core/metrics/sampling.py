"""Sampling a model for evaluation: per-image seeds, timing, network-evaluation counts, and the shared CLI bits.

Image ``i`` is seeded by ``seed + i`` whatever the batch size, so a figure does not change when the batch does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

#: the methods a network evaluation goes through; a model can name others in ``nfe_methods``
NFE_METHODS = ("predict", "generate")


@contextlib.contextmanager
def count_network_evaluations(model: Any) -> Iterator[list[int]]:
    """Count calls of the model's network methods while the block runs; yields a one-element counter list.

    Samplers call ``predict`` (diffusion) or ``generate`` (GANs) once per step on the whole batch, so the count
    per ``sample`` call is the number of network evaluations per image. Classifier-free guidance that batches
    the conditional and unconditional halves counts once per step. Models set ``nfe_methods`` to change this.
    """
    counter = [0]
    names = [n for n in getattr(model, "nfe_methods", NFE_METHODS) if hasattr(model, n)]
    originals = {name: getattr(model, name) for name in names}

    def wrap(method: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            counter[0] += 1
            return method(*args, **kwargs)

        return counted

    shadowed = {name: model.__dict__[name] for name in names if name in getattr(model, "__dict__", {})}
    for name, method in originals.items():
        setattr(model, name, wrap(method))
    try:
        yield counter
    finally:
        for name in originals:
            if name in shadowed:
                setattr(model, name, shadowed[name])
            else:
                delattr(model, name)  # the class's method shows through again


def sample_model(
    model: Any,
    n: int,
    *,
    batch_size: int = 250,
    seed: int = 0,
    per_image: Mapping[str, Sequence[Any]] | None = None,
    **sample_kwargs: Any,
) -> tuple[torch.Tensor, dict[str, float | None]]:
    """``n`` samples, image ``i`` seeded by ``seed + i``; returns (images on CPU, timing and NFE figures).

    ``per_image`` holds sample arguments with one entry per image (``labels``, ``prompt``), sliced per batch;
    ``sample_kwargs`` go to every ``model.sample`` call (sampler, steps, sampler options).
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be positive, got n={n}, batch_size={batch_size}")
    for key, values in (per_image or {}).items():
        if len(values) != n:
            raise ValueError(f"per_image[{key!r}] has {len(values)} entries for {n} images")
    batches, seconds, calls = [], 0.0, []
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        kwargs = dict(sample_kwargs)
        for key, values in (per_image or {}).items():
            kwargs[key] = list(values[start : start + count])
        with count_network_evaluations(model) as counter:
            begin = time.perf_counter()
            x = model.sample(count, seed=list(range(seed + start, seed + start + count)), **kwargs)
            seconds += time.perf_counter() - begin
        calls.append(counter[0])
        batches.append(x.detach().float().cpu())
    nfe = float(np.mean(calls)) if any(calls) else None
    return torch.cat(batches), {"seconds": seconds, "images_per_second": n / seconds, "nfe_per_image": nfe}


# -- command-line helpers shared by the evaluation scripts -----------------------------------------------------
def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as JSON when it parses (``eta=0.0`` -> 0.0), else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--option takes key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_sampling_arguments(parser: argparse.ArgumentParser, n: int, batch_size: int) -> None:
    parser.add_argument("--n", type=int, default=n, help="number of samples")
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--seed", type=int, default=0, help="image i is seeded by seed + i")
    parser.add_argument("--sampler", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument(
        "--option",
        action="append",
        type=parse_option,
        default=[],
        metavar="KEY=VALUE",
        help="a sample() argument, e.g. --option eta=0.0 (repeatable; values parsed as JSON)",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--json", dest="json_path", default=None, help="also write the result JSON here")
    parser.add_argument("--grid", default=None, help="save the first 100 samples as a PNG grid")


def load_from_args(args: argparse.Namespace) -> Any:
    from zoo_core.api import load

    return load(args.model, device=args.device, dtype=args.dtype)


def sample_from_args(
    args: argparse.Namespace, model: Any, per_image: Mapping[str, Sequence[Any]] | None = None
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Sample ``model`` as the arguments say: (images, a description of the run with its timing)."""
    kwargs = dict(args.option)
    if args.sampler:
        kwargs["sampler"] = args.sampler
    if args.steps is not None:
        kwargs["steps"] = args.steps
    images, timing = sample_model(
        model, args.n, batch_size=args.batch_size, seed=args.seed, per_image=per_image, **kwargs
    )
    info = {
        "model": args.model,
        "sampler": args.sampler or model.default_sampler,
        "steps": args.steps if args.steps is not None else model.default_steps,
        "options": dict(args.option),
        "seed": args.seed,
        "device": str(model.device),
        "dtype": str(model.dtype).removeprefix("torch."),
        **timing,
    }
    return images, info


def format_table(result: Mapping[str, Any]) -> str:
    """Two aligned columns: scalars first, then lists on one line; dicts are left to the JSON."""
    rows = [(k, v) for k, v in result.items() if not isinstance(v, (list, dict))]
    rows += [
        (k, " ".join("-" if x is None else f"{x:.2f}" if isinstance(x, float) else str(x) for x in v))
        for k, v in result.items()
        if isinstance(v, list)
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {f'{v:.4f}' if isinstance(v, float) else v}" for k, v in rows)


def report(result: Mapping[str, Any], images: torch.Tensor, args: argparse.Namespace) -> None:
    """Print the table and the JSON; write the JSON and the sample grid where the arguments say."""
    if args.grid:
        from zoo_core.images import save_grid

        save_grid(images[:100], args.grid, nrow=10, scale=2)
    print(format_table(result))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
