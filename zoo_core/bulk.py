"""Sampling runs to disk at scale: bounded memory, checks before the work, resumable, sharded over processes.

``zoo sample`` draws its images through ``Model.sample_iter`` one batch at a time and writes them as they come:
one PNG per image into ``--out-dir`` (``000000.png``, ...), a uint8 ``[N, H, W, C]`` array into ``--out x.npz``
(the layout FID tools read, written into the zip entry batch by batch), or a grid. Image ``i`` is seeded
``seed + i``, so its file name says its seed: a rerun of the same command skips the files already there (each is
written under a temporary name and renamed, so a file that exists is complete), and the shards of a torchrun job
(or ``--shard i/K``) each draw the images ``i, i + K, ...`` into the same folder. ``manifest.json`` beside the
images records how they were made; a rerun whose model or options differ is refused before any work.
"""

from __future__ import annotations

import math
import os
import sys
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo_core import __version__
from zoo_core.errors import ZooError

MANIFEST_NAME = "manifest.json"
#: file names are six digits, so at most a million images per folder
MAX_IMAGES = 1_000_000
#: above this many images a grid is refused: it is unreadable and its memory grows with n
GRID_LIMIT = 1024
GRID_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ARRAY_SUFFIXES = (".npz",)
#: manifest fields that must agree for a rerun to add to a folder (n may grow: image i is always seed + i)
MATCHED_FIELDS = ("model", "weights", "revision", "sampler", "steps", "seed", "options", "dtype")


class UsageError(ZooError, ValueError):
    """A sampling run that cannot work as asked, found before any sampling."""


def image_name(index: int) -> str:
    return f"{index:06d}.png"


# -- checks before the work -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outputs:
    """Where a run writes: a grid image, an npz array, a folder of PNGs (at least one)."""

    grid: Path | None = None
    array: Path | None = None
    folder: Path | None = None


def parse_outputs(out: str | None, out_dir: str | None) -> Outputs:
    """Check ``--out`` (grid image or .npz) and ``--out-dir`` without creating anything."""
    grid = array = folder = None
    if out is not None:
        path = Path(out).expanduser()
        if path.is_dir():
            raise UsageError(f"--out {out!r} is a directory; give a file name, or use --out-dir {out!r}")
        suffix = path.suffix.lower()
        if suffix in GRID_SUFFIXES:
            grid = path
        elif suffix in ARRAY_SUFFIXES:
            array = path
        else:
            raise UsageError(
                f"--out {out!r}: unknown output type {suffix or '(no extension)'!r}; use a grid image "
                f"({', '.join(GRID_SUFFIXES)}), a .npz array of uint8 [N, H, W, C], or --out-dir DIR for one PNG "
                "per image"
            )
        check_writable(path.parent, f"--out {out!r}")
    if out_dir is not None:
        folder = Path(out_dir).expanduser()
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"--out-dir {out_dir!r} is a file, not a folder; give a folder for the PNGs")
        check_writable(folder, f"--out-dir {out_dir!r}")
    if grid is None and array is None and folder is None:
        grid = Path("grid.png")
        check_writable(grid.parent, "the grid grid.png")
    return Outputs(grid, array, folder)


def check_writable(folder: Path, what: str) -> None:
    """``folder`` exists and is writable, or could be created: its nearest existing ancestor is a writable folder."""
    probe = folder.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what}: {probe} is a file, so the folder {folder} cannot be created")
    import tempfile

    try:  # a real write: permission bits say nothing to root, or on read-only and special file systems
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise UsageError(
            f"{what}: cannot write in {probe} ({exc.strerror or exc}); choose another location"
        ) from None


def parse_shard(text: str | None, environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """(rank, world size) from ``--shard i/K`` (i counts from 0) or torchrun's RANK / WORLD_SIZE; (0, 1) alone."""
    env_world = int(environ.get("WORLD_SIZE", "1") or 1)
    if text is None:
        return int(environ.get("RANK", "0") or 0), env_world
    if env_world > 1:
        raise UsageError(f"--shard {text!r} under torchrun (WORLD_SIZE={env_world}): torchrun already shards")
    rank, sep, world = text.partition("/")
    try:
        r, k = int(rank), int(world)
    except ValueError:
        r, k = -1, 0
    if not sep or k < 1 or not 0 <= r < k:
        raise UsageError(f"--shard {text!r}: expected i/K with 0 <= i < K, e.g. --shard 0/4 ... --shard 3/4")
    return r, k


def check_counts(n: int, batch_size: int | None, threads: int | None, outputs: Outputs) -> None:
    if n < 1 or n > MAX_IMAGES:
        raise UsageError(f"--n {n}: expected 1 to {MAX_IMAGES} images")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size {batch_size}: expected a positive number of images per batch")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads {threads}: expected a positive number of threads")
    if outputs.grid is not None and n > GRID_LIMIT:
        raise UsageError(
            f"--n {n} is too many images for a grid (at most {GRID_LIMIT}); use --out-dir DIR for one PNG per "
            "image, or --out samples.npz"
        )


def available_memory() -> int | None:
    """Bytes this process may still use: MemAvailable, lowered by a cgroup limit when there is one."""
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            room = int(limit) - used
            free = room if free is None else min(free, room)
    except (OSError, ValueError):
        pass
    return free


def grid_bytes(n: int, shape: tuple[int, int, int], nrow: int | None, scale: int) -> int:
    """Memory a grid of ``n`` images of ``shape`` (H, W, C) takes, with its padding and enlargement."""
    h, w, c = shape
    cols = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pixels = (rows * (h + 2) + 2) * (cols * (w + 2) + 2)
    return n * h * w * c + pixels * c * (1 + scale * scale)


def check_grid_memory(n: int, shape: tuple[int, int, int], nrow: int | None, scale: int) -> None:
    need, free = grid_bytes(n, shape, nrow, scale), available_memory()
    if free is not None and need > free // 2:
        raise UsageError(
            f"a grid of {n} images of {shape[0]}x{shape[1]} at --scale {scale} needs about {need / 2**30:.1f} GB, "
            f"more than half the {free / 2**30:.1f} GB free; use --out-dir DIR, fewer images or a smaller --scale"
        )


# -- the manifest -----------------------------------------------------------------------------------------------
def make_manifest(
    *,
    model: str,
    weights: str | None,
    revision: str | None,
    sampler: str | None,
    steps: int | None,
    seed: int,
    n: int,
    options: Mapping[str, Any],
    dtype: str | None,
    device: str,
    image_shape: tuple[int, int, int],
) -> dict[str, Any]:
    return {
        "model": model,
        "weights": weights,
        "revision": revision,
        "sampler": sampler,
        "steps": steps,
        "seed": seed,
        "seeds": f"image i (file i:06d.png) is seeded {seed} + i",
        "n": n,
        "options": dict(sorted(options.items())),
        "dtype": dtype,
        "device": device,
        "image_shape": list(image_shape),
        "zoo_version": __version__,
    }


def reconcile_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest to write: ``manifest`` itself, or the folder's with ``n`` raised; a mismatch is a UsageError."""
    import json

    path = folder / MANIFEST_NAME
    if not path.exists():
        if any(folder.glob("[0-9]" * 6 + ".png")):
            raise UsageError(
                f"--out-dir {folder} holds images but no {MANIFEST_NAME}, so nothing says how they were made; use "
                "an empty folder"
            )
        return manifest
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a readable manifest ({exc}); use another --out-dir") from None
    for key in (*MATCHED_FIELDS, "image_shape"):
        if old.get(key) != manifest.get(key):
            raise UsageError(
                f"--out-dir {folder} was sampled with {key}={old.get(key)!r}, this run has {key}="
                f"{manifest.get(key)!r}; use another folder, or the same command as before to resume it"
            )
    return {**manifest, "n": max(int(old.get("n", 0)), manifest["n"])}


# -- writing ----------------------------------------------------------------------------------------------------
def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_png(array: np.ndarray, path: Path) -> None:
    """One uint8 [H, W, C] image, under a temporary name first so an existing file is always complete."""
    from PIL import Image

    tmp = _temporary(path)
    try:
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image)
    return array[..., None] if array.ndim == 2 else array


def missing_indices(folder: Path, n: int, rank: int = 0, world: int = 1) -> list[int]:
    """The indices of this shard (``rank``, ``rank + world``, ...) whose PNG is not in ``folder`` yet."""
    present = {p.name for p in folder.glob("[0-9]" * 6 + ".png")} if folder.exists() else set()
    return [i for i in range(rank, n, world) if image_name(i) not in present]


class NpzWriter:
    """Stream uint8 batches into ``arr_0`` of an .npz (what ``np.load(path)["arr_0"]`` reads), renamed at close."""

    def __init__(self, path: Path, n: int) -> None:
        self.path, self.n, self.written = path, n, 0
        self.tmp = _temporary(path)
        self.zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self.entry: Any = None

    def write(self, batch: np.ndarray) -> None:
        if self.entry is None:
            self.entry = self.zip.open("arr_0.npy", "w", force_zip64=True)
            header = {"descr": "|u1", "fortran_order": False, "shape": (self.n, *batch.shape[1:])}
            np.lib.format.write_array_header_1_0(self.entry, header)
        self.entry.write(np.ascontiguousarray(batch, dtype=np.uint8).tobytes())
        self.written += batch.shape[0]

    def close(self) -> Path:
        if self.written != self.n:
            raise RuntimeError(f"{self.path}: {self.written} of {self.n} images were written")
        self.entry.close()
        self.zip.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self.zip.close()
        self.tmp.unlink(missing_ok=True)


def read_folder(folder: Path, n: int) -> Iterator[np.ndarray]:
    """The folder's images 0..n-1 in order, one uint8 [1, H, W, C] batch at a time."""
    for i in range(n):
        yield read_png(folder / image_name(i))[None]


def write_array(batches: Iterable[np.ndarray], path: Path, n: int) -> Path:
    writer = NpzWriter(path, n)
    try:
        for batch in batches:
            writer.write(batch)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def write_grid(batches: Iterable[np.ndarray], path: Path, nrow: int | None, scale: int) -> Path:
    from PIL import Image

    from zoo_core.images import tile

    grid = tile(np.concatenate(list(batches)), nrow)
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        image.save(tmp, format=Image.registered_extensions()[path.suffix.lower()])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the run ----------------------------------------------------------------------------------------------------
class _Probed(Exception):
    """Raised from the probe's step callback: one network evaluation is enough to know shape and memory."""


def _first_of_each(kwargs: Mapping[str, Any], n: int) -> dict[str, Any]:
    from zoo_core.model import _is_per_image, _take

    return {k: _take(v, [0]) if _is_per_image(v, n) else v for k, v in kwargs.items()}


def probe(
    model: Any, n: int, seed: int, sample_kwargs: Mapping[str, Any]
) -> tuple[tuple[int, int, int], int]:
    """(image shape H, W, C; bytes one image needs while sampling) from the first network evaluation of image 0.

    It runs the model's own argument checks, so options the model or sampler does not take fail here, before
    any file is written. The memory is the process's peak above its size just before (Linux), or CUDA's peak.
    """
    import torch

    seen: dict[str, Any] = {}

    def stop(step: int, t: Any, x: torch.Tensor) -> None:
        seen["x"] = x
        raise _Probed

    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(model.device)
        base = torch.cuda.memory_allocated(model.device)
    else:
        base = _rss_reset()
    try:
        images = model.sample(1, seed=[seed], callback=stop, **_first_of_each(sample_kwargs, n))
    except _Probed:
        with torch.no_grad():
            images = model.decode(seen["x"])
    if cuda:
        used = torch.cuda.max_memory_allocated(model.device) - base
    else:
        peak = _status_kb("VmHWM")
        used = (peak * 1024 - base) if peak is not None and base is not None else 0
    if images.shape[0] != 1:
        raise UsageError(
            f"{type(model).__name__} gives {images.shape[0]} images per seed with these options (edit= draws a "
            "source and an edited image from each); zoo sample writes one image per seed: draw them from Python, "
            "model.sample(n, ..., batch_size=B) or model.sample_iter(n, batch_size=B, ...)"
        )
    _, c, h, w = images.shape
    return (int(h), int(w), int(c)), max(int(used), 4 * c * h * w)


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _rss_reset() -> int | None:
    """Reset the kernel's peak-RSS mark to the current size (Linux); the current size in bytes, or None."""
    rss = _status_kb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return rss * 1024 if rss is not None else None


def _sample_options(args: Any) -> dict[str, Any]:
    import json

    kwargs: dict[str, Any] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {item!r}")
        try:
            kwargs[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key.replace("-", "_")] = value
    for key in ("prompt", "negative_prompt", "guidance_scale", "eta", "truncation_psi"):
        if getattr(args, key, None) is not None:
            kwargs[key] = getattr(args, key)
    if args.labels is not None:
        try:
            kwargs["labels"] = [int(v) for v in args.labels.split(",")]
        except ValueError:
            raise UsageError(f"--labels {args.labels!r}: expected comma-separated integers") from None
    return kwargs


def refuse_unconditional_options(name: str, sampler: str | None, kwargs: Mapping[str, Any]) -> None:
    """Options an unconditional card's model does not take, refused from its card and class before its weights
    are loaded (the probe after loading checks conditional models, whose options depend on the weights' config)."""
    if not kwargs:
        return
    from zoo_core.api import get_model_class
    from zoo_core.cli_help import card_config
    from zoo_core.registry import get_registry, get_sampler

    registry = get_registry()
    if name not in registry.cards:
        return  # a saved folder or hf:// source: the probe checks it
    card = registry.card(name)
    cls = get_model_class(card.architecture)
    if cls.sample_options(card_config(card, cls), card):
        return
    sampler_name = sampler or card.default_sampler or cls.default_sampler
    accepted = set(get_sampler(sampler_name).options) if sampler_name else set()
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        takes = f" ({', '.join(sorted(accepted))})" if accepted else ""
        raise UsageError(
            f"{cls.__name__}.sample() got unexpected arguments {unknown}; it is unconditional and takes only n, "
            f"sampler, steps, seed, output and the sampler's options{takes}"
        )


def _set_threads(requested: int | None, device: str | None) -> str:
    import torch

    from zoo_core.hardware import default_threads

    if requested is not None:
        torch.set_num_threads(requested)
        return f"{requested} (--threads)"
    if os.environ.get("OMP_NUM_THREADS"):
        return f"{torch.get_num_threads()} (OMP_NUM_THREADS)"
    if device not in (None, "cpu"):
        return f"{torch.get_num_threads()} (torch's default)"
    threads = default_threads()
    torch.set_num_threads(threads)
    return f"{threads} (the CPUs not busy; --threads or OMP_NUM_THREADS to change)"


def _cleanup_temporaries(folder: Path, rank: int, world: int) -> None:
    """Remove what killed runs of this shard left half-written (``.000123.png.<pid>.tmp``)."""
    for tmp in folder.glob(".[0-9]*.png.*.tmp"):
        index = tmp.name[1:7]
        if index.isdigit() and int(index) % world == rank:
            tmp.unlink(missing_ok=True)


def _barrier() -> None:
    """Wait for every torchrun rank (a gloo barrier: CPU-only, whatever device the ranks sample on)."""
    from datetime import timedelta

    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=timedelta(days=1))
    dist.barrier()


def run(args: Any) -> int:
    """``zoo sample``: every check first, then stream the images to their outputs."""
    from zoo_core.api import load

    outputs = parse_outputs(args.out, args.out_dir)
    check_counts(args.n, args.batch_size, args.threads, outputs)
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps {args.steps}: expected a positive number of steps")
    if args.nrow is not None and args.nrow < 1 or not 1 <= args.scale <= 16:
        raise UsageError("--nrow must be positive and --scale between 1 and 16")
    rank, world = parse_shard(args.shard)
    torchrun = args.shard is None and world > 1
    if world > 1 and outputs.folder is None:
        raise UsageError(
            "a sharded run needs --out-dir DIR: every shard writes its images into the same folder"
        )
    if world > 1 and not torchrun and (outputs.grid or outputs.array):
        raise UsageError(
            "--out needs every shard's images: run the shards with --out-dir only, then the same command without "
            "--shard to pack them (it samples only what is missing)"
        )
    if outputs.folder is not None and args.n > MAX_IMAGES:
        raise UsageError(f"--n {args.n}: a folder holds at most {MAX_IMAGES} images")
    kwargs = _sample_options(args)
    say = log if rank == 0 else (lambda message: None)

    if args.weights is None:
        refuse_unconditional_options(args.name, args.sampler, kwargs)
    threads = _set_threads(args.threads, args.device)
    model = load(
        args.name,
        device=args.device,
        dtype=args.dtype,
        revision=args.revision,
        weights=args.weights,
        allow_nonfinite=args.allow_nonfinite_weights,
    )
    if model.fast_path is not None:
        say(f"fast path: {model.fast_path.label} ({model.fast_path.reason})")
    sampler = args.sampler or model.default_sampler
    steps = args.steps
    if steps is None and sampler == model.default_sampler:
        steps = model.default_steps
    sample_kwargs = {"sampler": sampler, "steps": steps, **kwargs}
    from zoo_core.hardware import estimate_batch_size

    shape, per_image = probe(model, args.n, args.seed, sample_kwargs)
    if outputs.grid is not None:
        check_grid_memory(args.n, shape, args.nrow, args.scale)
    free = available_memory()
    batch_size = args.batch_size or estimate_batch_size(per_image, free, model.device.type)
    how = (
        "--batch-size"
        if args.batch_size
        else (
            f"~{per_image / 2**20:.1f} MB per image, {free / 2**30:.1f} GB free"
            if free
            else "no memory figure"
        )
    )
    say(f"batch size {batch_size} ({how}); threads {threads}")

    card = model.card
    spec = card.weights if card is not None else None
    manifest = make_manifest(
        model=args.name,
        weights=os.fspath(args.weights) if args.weights else (spec.source if spec else None),
        revision=args.revision or (spec.revision if spec else None),
        sampler=sampler,
        steps=steps,
        seed=args.seed,
        n=args.n,
        options=kwargs,
        dtype=str(args.dtype) if args.dtype else None,
        device=model.device.type,
        image_shape=shape,
    )
    folder = outputs.folder
    if folder is not None:
        manifest = reconcile_manifest(folder, manifest)
        folder.mkdir(parents=True, exist_ok=True)
        from zoo_core.weights import write_json_atomic

        write_json_atomic(manifest, folder / MANIFEST_NAME)
        _cleanup_temporaries(folder, rank, world)
        todo = missing_indices(folder, args.n, rank, world)
        mine = len(range(rank, args.n, world))
        shard = f" (shard {rank}/{world})" if world > 1 else ""
        (log if world > 1 else say)(
            f"{mine - len(todo)} of {mine} images{shard} already in {folder}; sampling {len(todo)}"
        )
    else:
        todo = list(range(args.n))

    writer = NpzWriter(outputs.array, args.n) if outputs.array is not None and folder is None else None
    kept: list[np.ndarray] = []
    done = 0
    bar = _progress(len(todo), quiet=args.quiet or (world > 1 and rank != 0))
    try:
        batches = (
            model.sample_iter(
                args.n, batch_size=batch_size, seed=args.seed, indices=todo, output="numpy", **sample_kwargs
            )
            if todo
            else iter(())
        )
        for batch in batches:
            chunk = todo[done : done + batch.shape[0]]
            if folder is not None:
                for index, image in zip(chunk, batch, strict=True):
                    write_png(image, folder / image_name(index))
            elif writer is not None:
                writer.write(batch)
            else:
                kept.append(batch)
            done += batch.shape[0]
            bar(batch.shape[0])
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar(0, close=True)

    if writer is not None:
        print(f"wrote {args.n} samples of {args.name} to {writer.close()}")
    if folder is not None and (outputs.grid or outputs.array) and torchrun:
        _barrier()
    if folder is not None and rank == 0 and (outputs.grid or outputs.array):
        missing = missing_indices(folder, args.n)
        if missing:
            raise UsageError(
                f"{folder} lacks {len(missing)} images (first {image_name(missing[0])}); rerun to add them"
            )
        kept = []
    if rank == 0:
        if outputs.array is not None and folder is not None:
            path = write_array(read_folder(folder, args.n), outputs.array, args.n)
            print(f"wrote {args.n} samples of {args.name} to {path}")
        if outputs.grid is not None:
            batches = read_folder(folder, args.n) if folder is not None else kept
            path = write_grid(batches, outputs.grid, args.nrow, args.scale)
            print(f"wrote {args.n} samples of {args.name} to {path}")
    if folder is not None:
        print(
            f"sampled {done} images of {args.name} into {folder}"
            + (f" (shard {rank}/{world})" if world > 1 else "")
        )
    return 0


def _progress(total: int, quiet: bool) -> Any:
    """A callable advancing a tqdm bar over images (stderr); a no-op when quiet or nothing is to be done."""
    if quiet or total == 0:
        return lambda k, close=False: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True)

    def advance(k: int, close: bool = False) -> None:
        # the last images are counted without drawing: close() draws the final 100% line, once
        if bar.n + k < total:
            bar.update(k)
        else:
            bar.n += k
        if close:
            bar.close()

    return advance
