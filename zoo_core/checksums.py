"""sha256 checksums of weight files, checked against what a card pins (below both ``hub`` and ``weights``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from zoo_core.errors import ChecksumError, WeightsError


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def checksum_mismatches(root: Path, expected: Mapping[str, str]) -> list[tuple[str, Path, str]]:
    """``(name, path, actual sha256)`` of each file in ``expected`` whose content differs; a missing file raises."""
    bad = []
    for name, digest in expected.items():
        path = root / name if root.is_dir() else root
        if not path.exists():
            raise WeightsError(f"{path} is missing: the card lists a checksum for {name!r}")
        actual = sha256_file(path)
        if actual != digest.lower():
            bad.append((name, path, actual))
    return bad


def verify_checksums(root: Path, expected: Mapping[str, str]) -> None:
    """Check every file named in ``expected`` (relative to ``root``) against its sha256."""
    bad = checksum_mismatches(root, expected)
    if bad:
        name, path, actual = bad[0]
        more = f" ({len(bad) - 1} more files differ too)" if len(bad) > 1 else ""
        raise ChecksumError(
            f"Checksum mismatch for {path}: expected sha256 {expected[name].lower()}, got {actual}{more}. The file is "
            "corrupt or not the revision the card pins; delete it and download again."
        )
