"""Class images for prior preservation: drawn once by the frozen base model, kept on disk with prompt and seed.

Image ``j`` of a run is drawn from ``prompts[j % len(prompts)]`` with seed ``class_seed + j``, so the set a run
wants is a pure function of its config. ``class_dir/manifest.json`` records every image written there (file,
prompt, seed, base model, sampler, steps, guidance, size); an image whose record matches all of these is reused,
and only the missing ones are drawn. A folder can therefore be shared between runs and grows as needed.

Under ``torchrun`` the ranks share the drawing: the missing images are cut into the same batches as in one
process (so every image gets the same pixels) and rank ``r`` of ``W`` draws batches ``r, r + W, ...``, recording
them in its own ``manifest.rank<r>.json``; ``merge_manifests`` (rank 0, after a barrier) folds those into
``manifest.json``. No two processes write the same file, and the folder ends as a one-process run leaves it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

MANIFEST = "manifest.json"
SHARD_GLOB = "manifest.rank*.json"


@dataclass(frozen=True)
class ClassImage:
    """How one class image was drawn: everything that determines its pixels."""

    prompt: str
    seed: int
    base: str
    sampler: str
    steps: int
    guidance: float | None
    size: int

    @property
    def filename(self) -> str:
        key = json.dumps(asdict(self), sort_keys=True).encode()
        return f"class-{self.seed:06d}-{hashlib.sha1(key).hexdigest()[:10]}.png"


def wanted(
    prompts: Sequence[str],
    n: int,
    seed: int,
    *,
    base: str,
    sampler: str,
    steps: int,
    guidance: float | None,
    size: int,
) -> list[ClassImage]:
    return [
        ClassImage(prompts[j % len(prompts)], seed + j, base, sampler, steps, guidance, size)
        for j in range(n)
    ]


def _read_records(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}  # a manifest cut off by a crash: its images are drawn again
    return {e["file"]: e for e in entries if isinstance(e, dict) and "file" in e}


def read_manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """The records of ``manifest.json`` and of any rank's shard a stopped multi-process run left behind."""
    records = _read_records(directory / MANIFEST)
    for shard in sorted(directory.glob(SHARD_GLOB)):
        records.update(_read_records(shard))
    return records


def shard_name(rank: int) -> str:
    return f"manifest.rank{rank}.json"


def merge_manifests(directory: Path) -> None:
    """Fold the ranks' shards into ``manifest.json`` and remove them (one process, after all ranks drew)."""
    from zoo_core.weights import write_json_atomic

    shards = sorted(directory.glob(SHARD_GLOB))
    if not shards:
        return
    records = read_manifest(directory)
    write_json_atomic(sorted(records.values(), key=lambda r: r["file"]), directory / MANIFEST)
    for shard in shards:
        shard.unlink()


def missing(directory: Path, images: Sequence[ClassImage]) -> list[ClassImage]:
    """The images not yet in ``directory`` with a matching record."""
    records = read_manifest(directory)
    out = []
    for image in images:
        record = records.get(image.filename)
        if (
            record is None
            or record.get("spec") != asdict(image)
            or not (directory / image.filename).is_file()
        ):
            out.append(image)
    return out


@torch.no_grad()
def generate(
    model: Any,
    directory: Path,
    images: Sequence[ClassImage],
    batch: int = 16,
    say: Any = print,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> None:
    """Draw ``images`` with ``model`` and add them to ``directory`` (PNG + manifest record, written per batch so
    an interrupted run keeps what it drew). With ``world_size`` > 1 this process draws only its batches
    (every rank must pass the same ``images``) and records them in its shard; see ``merge_manifests``."""
    from zoo_core.images import to_pil
    from zoo_core.weights import write_json_atomic

    directory.mkdir(parents=True, exist_ok=True)
    todo = list(images)
    if todo:
        share = f", {world_size} processes sharing the batches" if world_size > 1 else ""
        say(f"drawing {len(todo)} class images into {directory}{share}")
    manifest = directory / (MANIFEST if world_size == 1 else shard_name(rank))
    records = read_manifest(directory) if world_size == 1 else _read_records(manifest)
    was_training = model.training
    model.eval()
    try:
        starts = range(0, len(todo), batch)
        for start in starts[rank::world_size]:
            chunk = todo[start : start + batch]
            first = chunk[0]
            x = model.sample(
                len(chunk),
                prompt=[c.prompt for c in chunk],
                seed=[c.seed for c in chunk],
                sampler=first.sampler,
                steps=first.steps,
                guidance_scale=first.guidance,
                height=first.size,
                width=first.size,
            )
            for spec, picture in zip(chunk, to_pil(x), strict=True):
                picture.save(directory / spec.filename)
                records[spec.filename] = {"file": spec.filename, "spec": asdict(spec)}
            write_json_atomic(sorted(records.values(), key=lambda r: r["file"]), manifest)
    finally:
        model.train(was_training)
