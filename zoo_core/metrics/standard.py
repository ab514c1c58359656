"""``zoo eval``: FID, KID and precision/recall of samples against a reference, the standard way.

FID and KID are torchmetrics' ``FrechetInceptionDistance`` / ``KernelInceptionDistance`` (the established
implementations, with their process sync); precision/recall is Kynkäänniemi et al. 2019 (``precision_recall``),
which torchmetrics does not have. The feature extractor (``features``: digits, shapes, inception) runs once per
image set, and the metrics read those features through an identity module: the same numbers as handing the
extractor to torchmetrics as ``feature=`` (tested), but the reference features can be cached and the samples
are not pushed through the network once per metric.

Samples come from a folder of images (``000000.png``, ... as ``zoo sample --out-dir`` writes), an ``.npz`` holding
uint8 [N, H, W, C] (``zoo sample --out x.npz``), or a model sampled in batches (image ``i`` seeded ``seed + i``).
The reference is ``digits`` (the real digits at the samples' size), ``shapes`` (the procedural dataset at the
samples' size), a folder of the user's images, or an ``.npz`` of statistics (``features`` [N, D], or ``mu`` and
``sigma`` for FID alone). Reference features are computed once and cached in ``$ZOO_CACHE_DIR`` (default
``$HF_HOME/zoo/eval-references``), keyed by reference, features and image shape.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo_core.errors import EvalError as EvalError  # raised by zoo eval; lives with the other errors
from zoo_core.metrics.eval_args import BUILTIN_REFERENCES, KID_DEFAULT_SUBSET, METRICS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SHAPES_REFERENCE_N = 2000
KID_SUBSETS = 100
EVAL_EXTRA = "pip install 'zoo-core[eval]'"


# -- inputs ----------------------------------------------------------------------------------------------------
def parse_metrics(text: str) -> list[str]:
    """``fid,kid`` -> ["fid", "kid"]; an unknown name suggests the closest one."""
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    if not names:
        raise EvalError(f"--metrics is empty; choose from {', '.join(METRICS)}")
    for name in names:
        if name not in METRICS:
            close = difflib.get_close_matches(name, METRICS, n=1, cutoff=0.4)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise EvalError(f"Unknown metric {name!r}.{hint} Choose from {', '.join(METRICS)}.")
    return list(dict.fromkeys(names))


def _to_float(array: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, C] -> float [N, C, H, W] in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float() / 127.5 - 1


def read_image_folder(folder: Path, n: int | None = None) -> torch.Tensor:
    """The images of ``folder`` in name order (the first ``n``), [N, C, H, W] in [-1, 1]; all of one size/mode."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != "manifest.json")
    if not files:
        raise EvalError(f"{folder} holds no images")
    if n is not None:
        files = files[:n]
    arrays, first = [], None
    for path in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise EvalError(f"{path} is not an image ({', '.join(IMAGE_SUFFIXES)}); remove it from {folder}")
        try:
            with Image.open(path) as im:
                a = np.asarray(im.convert("L" if im.mode in ("L", "1", "I;16") else "RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            raise EvalError(f"{path} is not a readable image ({exc})") from None
        a = a[..., None] if a.ndim == 2 else a
        if first is None:
            first = a.shape
        elif a.shape != first:
            raise EvalError(
                f"{path} is {a.shape[1]}x{a.shape[0]} with {a.shape[2]} channel(s), but {files[0].name} is "
                f"{first[1]}x{first[0]} with {first[2]}: a samples folder holds images of one size"
            )
        arrays.append(a)
    return _to_float(np.stack(arrays))


def read_npz_images(path: Path, n: int | None = None) -> torch.Tensor:
    """``arr_0`` (or the only array, or ``images``) of an .npz, uint8 [N, H, W, C] -> [N, C, H, W] in [-1, 1]."""
    with np.load(path) as data:
        keys = list(data.keys())
        key = (
            "arr_0"
            if "arr_0" in keys
            else "images"
            if "images" in keys
            else keys[0]
            if len(keys) == 1
            else None
        )
        if key is None:
            raise EvalError(f"{path} holds {keys}; expected one uint8 [N, H, W, C] array (arr_0 or images)")
        array = data[key]
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise EvalError(
            f"{path}[{key!r}] is {array.dtype} {list(array.shape)}; expected uint8 [N, H, W, C] with C = 1 or 3"
        )
    return _to_float(array[:n] if n is not None else array)


def load_samples(source: str, n: int | None) -> tuple[torch.Tensor, str] | None:
    """Images from a folder or .npz (first ``n``), with their kind; None when ``source`` is neither."""
    path = Path(source)
    if path.is_dir() and not (path / "config.json").exists():
        images, kind = read_image_folder(path, n), "folder"
    elif path.suffix == ".npz" and path.is_file():
        images, kind = read_npz_images(path, n), "npz"
    elif path.suffix == ".npz":
        raise EvalError(f"no samples file {path}")
    else:
        return None
    if n is not None and len(images) < n:
        raise EvalError(f"{source} holds {len(images)} images, fewer than --n {n}")
    return images, kind


# -- references -------------------------------------------------------------------------------------------------
@dataclass
class Reference:
    """Reference features [N, D] (or only Gaussian statistics), what they are, and where they are cached."""

    name: str
    features: torch.Tensor | None
    mu: torch.Tensor
    sigma: torch.Tensor
    n: int
    cache: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_features(cls, name: str, features: torch.Tensor, **kw: Any) -> Reference:
        f = features.double()
        return cls(name, f, f.mean(0), torch.cov(f.T).reshape(f.shape[1], f.shape[1]), len(f), **kw)


def cache_dir() -> Path:
    env = os.environ.get("ZOO_CACHE_DIR")
    if env:
        return Path(env) / "eval-references"
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "zoo" / "eval-references"


def _check_pairing(reference: str, features: str) -> None:
    if reference in BUILTIN_REFERENCES and features in BUILTIN_REFERENCES and reference != features:
        raise EvalError(
            f"--features {features} does not describe the {reference} reference; use --features {reference} "
            "(or inception)"
        )


def _reference_images(reference: str, shape: tuple[int, int, int], resize: bool) -> tuple[torch.Tensor, str]:
    """The images of a built-in or folder reference at the samples' shape [C, H, W], and a cache key."""
    channels, height, width = shape
    if reference == "digits":
        if height != width:
            raise EvalError(f"the digits reference is square; the samples are {width}x{height}")
        from zoo_core.data.digits import DigitsDataset

        images = DigitsDataset(height, "all").images
        return (images.expand(-1, 3, -1, -1) if channels == 3 else images), f"digits-{height}"
    if reference == "shapes":
        from zoo_core.data.shapes import ShapesDataset

        if channels != 3 or height != width:
            raise EvalError(
                f"the shapes reference is square RGB; the samples are {channels}x{height}x{width}"
            )
        images = ShapesDataset(SHAPES_REFERENCE_N, height, seed=0).as_tensors()[0]
        return images, f"shapes-{SHAPES_REFERENCE_N}-{height}"
    folder = Path(reference)
    if not folder.is_dir():
        raise EvalError(
            f"--reference {reference!r} is not digits, shapes, an image folder or a statistics .npz "
            "(no such directory)"
        )
    images = read_image_folder(folder)
    if tuple(images.shape[1:]) != shape:
        if not resize:
            raise EvalError(
                f"reference images in {folder} are {list(images.shape[1:])} (C, H, W), the samples "
                f"{list(shape)}; pass --resize to resize the reference to the samples"
            )
        images = torch.nn.functional.interpolate(
            images, size=(height, width), mode="bilinear", antialias=True
        )
        if images.shape[1] != channels:
            images = images.mean(1, keepdim=True).expand(-1, channels, -1, -1).contiguous()
    stamp = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        st = p.stat()
        stamp.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    key = f"dir-{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]}-{stamp.hexdigest()[:12]}"
    return images, f"{key}-{'x'.join(map(str, shape))}"


def load_reference(
    reference: str,
    features: str,
    extractor: nn.Module,
    shape: tuple[int, int, int],
    *,
    resize: bool = False,
    batch_size: int = 500,
    use_cache: bool = True,
) -> Reference:
    """Reference features for ``features`` at the samples' ``shape``: from a .npz, the cache, or computed."""
    _check_pairing(reference, features)
    if reference.endswith(".npz"):
        return _reference_from_npz(Path(reference), features)
    images, key = _reference_images(reference, shape, resize)
    path = cache_dir() / f"{key}-{features}.npz"
    if use_cache and path.exists():
        return _reference_from_npz(path, features, name=reference)
    f = _extract(extractor, images, batch_size)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp, features=f.float().numpy(), feature_name=np.array(features), reference=np.array(reference)
        )
        tmp.replace(path)
    return Reference.from_features(reference, f, cache=str(path) if use_cache else None)


def _reference_from_npz(path: Path, features: str, name: str | None = None) -> Reference:
    if not path.is_file():
        raise EvalError(f"no reference statistics file {path}")
    with np.load(path) as data:
        stored = str(data["feature_name"]) if "feature_name" in data else None
        if stored is not None and stored != features:
            raise EvalError(f"{path} holds {stored} features; run with --features {stored}")
        if "features" in data:
            return Reference.from_features(
                name or str(path), torch.from_numpy(data["features"]), cache=str(path)
            )
        if "mu" in data and "sigma" in data:
            mu, sigma = torch.from_numpy(data["mu"]).double(), torch.from_numpy(data["sigma"]).double()
            n = int(data["n"]) if "n" in data else 2
            return Reference(name or str(path), None, mu, sigma, n, cache=str(path))
    raise EvalError(f"{path} has neither 'features' [N, D] nor 'mu' and 'sigma'")


def _extract(extractor: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    from zoo_core.metrics.features import extract

    return extract(extractor, images, batch_size)


# -- the metrics -------------------------------------------------------------------------------------------------
class Precomputed(nn.Module):
    """Identity 'extractor': torchmetrics' metrics read features computed once by the real extractor."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _torchmetrics() -> Any:
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError:
        raise EvalError(f"zoo eval needs torchmetrics: {EVAL_EXTRA}") from None
    return FrechetInceptionDistance, KernelInceptionDistance


def fid_from_features(reference: Reference, fake: torch.Tensor) -> float:
    """torchmetrics' FID; a statistics-only reference enters through the metric's own sum states."""
    fid_cls, _ = _torchmetrics()
    metric = fid_cls(feature=Precomputed(fake.shape[1]), normalize=True)
    if reference.features is not None:
        metric.update(reference.features.double(), real=True)
    else:
        n = reference.n
        metric.real_features_sum = reference.mu * n
        metric.real_features_cov_sum = reference.sigma * (n - 1) + n * torch.outer(reference.mu, reference.mu)
        metric.real_features_num_samples = torch.tensor(n)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kid_from_features(
    reference: torch.Tensor, fake: torch.Tensor, subset_size: int, subsets: int = KID_SUBSETS, seed: int = 0
) -> tuple[float, float]:
    """torchmetrics' KID (mean, std over random subsets), its subsets drawn from a seeded generator."""
    import warnings

    _, kid_cls = _torchmetrics()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = kid_cls(feature=Precomputed(fake.shape[1]), subsets=subsets, subset_size=subset_size)
    metric.update(reference.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def compute_metrics(
    reference: Reference,
    fake: torch.Tensor,
    metrics: Sequence[str],
    *,
    kid_subset_size: int | None = None,
    k: int = 3,
) -> dict[str, Any]:
    """The asked metrics of generated features ``fake`` [N, D] against the reference."""
    from zoo_core.metrics.precision_recall import precision_recall

    n = len(fake)
    if reference.mu.shape[0] != fake.shape[1]:
        raise EvalError(
            f"the reference has {reference.mu.shape[0]}-d features, the samples {fake.shape[1]}-d"
        )
    needs_all = [m for m in metrics if m != "fid"]
    if needs_all and reference.features is None:
        raise EvalError(
            f"{', '.join(needs_all)} need the reference features; {reference.name} holds only mu and sigma "
            "(use --metrics fid, or a reference with 'features')"
        )
    out: dict[str, Any] = {}
    if "fid" in metrics:
        out["fid"] = fid_from_features(reference, fake)
    if "kid" in metrics:
        assert reference.features is not None
        limit = min(n, reference.n)
        size = min(KID_DEFAULT_SUBSET, limit) if kid_subset_size is None else kid_subset_size
        if size > limit:
            raise EvalError(
                f"--kid-subset-size {size} is larger than the {n} samples / {reference.n} reference images; "
                f"use at most {limit}"
            )
        out["kid"], out["kid_std"] = kid_from_features(reference.features, fake, size)
        out["kid_subset_size"] = size
    if "precision" in metrics or "recall" in metrics:
        assert reference.features is not None
        if n <= k or reference.n <= k:
            raise EvalError(f"precision/recall with k={k} needs more than {k} samples and reference images")
        precision, recall = precision_recall(reference.features, fake, k=k)
        if "precision" in metrics:
            out["precision"] = precision
        if "recall" in metrics:
            out["recall"] = recall
        out["k"] = k
    return out


# -- the command -------------------------------------------------------------------------------------------------
def default_features(reference: str) -> str:
    return reference if reference in BUILTIN_REFERENCES else "inception"


def _sample(args: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """Sample the model ``args.samples`` in batches, with balanced labels or shapes prompts where it takes them."""
    from zoo_core.api import load
    from zoo_core.metrics.digits_eval import NUM_CLASSES, is_class_conditional
    from zoo_core.metrics.sampling import sample_model

    model = load(args.samples, device=args.device, dtype=args.dtype)
    per_image: dict[str, list[Any]] = {}
    if is_class_conditional(model):
        per_image["labels"] = [i % NUM_CLASSES for i in range(args.n)]
    elif "shapes" in (getattr(getattr(model, "card", None), "dataset", None) or "").lower():
        from zoo_core.data.shapes import ShapesDataset

        dataset = ShapesDataset(args.n, 32, seed=1)
        per_image["prompt"] = [dataset.spec(i).caption for i in range(args.n)]
    kwargs: dict[str, Any] = {"progress": False}
    if args.sampler:
        kwargs["sampler"] = args.sampler
    if args.steps is not None:
        kwargs["steps"] = args.steps
    if args.eta is not None:
        kwargs["eta"] = args.eta
    images, timing = sample_model(
        model, args.n, batch_size=args.batch_size, seed=args.seed, per_image=per_image or None, **kwargs
    )
    info = {
        "sampler": args.sampler or model.default_sampler,
        "steps": args.steps if args.steps is not None else model.default_steps,
        "seconds_per_image": timing["seconds"] / args.n,
        "nfe_per_image": timing["nfe_per_image"],
    }
    return images, info


def command_line(args: Any, features: str) -> str:
    """The canonical ``zoo eval`` command that reproduces a result (for the card's ``metrics`` entries)."""
    parts = ["zoo eval", args.samples, "--metrics", ",".join(args.metrics), "--n", str(args.n)]
    parts += ["--reference", args.reference, "--features", features]
    for flag in ("sampler", "steps", "eta", "seed"):
        value = getattr(args, flag, None)
        if value is not None and not (flag == "seed" and value == 0):
            parts += [f"--{flag}", str(value)]
    return " ".join(parts)


def card_entries(result: dict[str, Any], command: str) -> list[dict[str, Any]]:
    """The measured figures as a card's ``metrics`` entries (``zoo push`` publishes them)."""
    how = f"n={result['n']} against {result['reference']} ({result['reference_n']} images), {result['features']} features"
    if result.get("sampler"):
        how += f"; sampler {result['sampler']}, {result['steps']} steps"
    return [
        {"name": f"{m}_{result['features']}", "value": round(result[m], 6), "command": command, "notes": how}
        for m in METRICS
        if m in result
    ]


def evaluate(args: Any) -> dict[str, Any]:
    """Run ``zoo eval`` on parsed arguments and return the result (see ``add_arguments``)."""
    from zoo_core.metrics.features import get_extractor

    args.metrics = parse_metrics(args.metrics) if isinstance(args.metrics, str) else list(args.metrics)
    if args.n is not None and args.n < 2:
        raise EvalError(f"--n {args.n}: the metrics need at least 2 samples")
    features = args.features or default_features(args.reference)
    _check_pairing(args.reference, features)
    if not (
        args.reference in BUILTIN_REFERENCES
        or args.reference.endswith(".npz")
        or Path(args.reference).is_dir()
    ):
        raise EvalError(
            f"--reference {args.reference!r} is not digits, shapes, an image folder or a statistics .npz "
            "(no such directory)"
        )
    _torchmetrics()
    extractor = get_extractor(features)
    begin = time.perf_counter()
    loaded = load_samples(args.samples, args.n)
    info: dict[str, Any] = {}
    if loaded is None:
        if args.n is None:
            args.n = 1000
        images, info = _sample(args)
        kind = "model"
    else:
        images, kind = loaded
        args.n = len(images)
    shape = tuple(int(s) for s in images.shape[1:])
    reference = load_reference(
        args.reference, features, extractor, shape, resize=args.resize, batch_size=args.batch_size
    )
    fake = _extract(extractor, images, args.batch_size)
    result: dict[str, Any] = {
        "samples": args.samples,
        "source": kind,
        "n": len(images),
        "image_shape": list(shape),
        "reference": args.reference,
        "reference_n": reference.n,
        "features": features,
        **info,
        **compute_metrics(reference, fake, args.metrics, kid_subset_size=args.kid_subset_size, k=args.k),
        "reference_cache": reference.cache,
        "seconds": time.perf_counter() - begin,
    }
    command = command_line(args, features)
    result["command"] = command
    result["card_metrics"] = card_entries(result, command)
    return result


def format_result(result: dict[str, Any]) -> str:
    """The table people read: one metric a line, then what was measured against what."""
    lines = [
        f"{result['samples']} ({result['source']}, n={result['n']}) vs {result['reference']} "
        f"(n={result['reference_n']}), {result['features']} features"
    ]
    for key in ("fid", "kid", "precision", "recall", "seconds_per_image"):
        if key in result:
            extra = (
                f" ± {result['kid_std']:.4f} (subsets of {result['kid_subset_size']})" if key == "kid" else ""
            )
            lines.append(f"  {key:<18} {result[key]:.4f}{extra}")
    lines.append("card metrics entries:")
    lines += [f"  - {json.dumps(e)}" for e in result["card_metrics"]]
    return "\n".join(lines)
