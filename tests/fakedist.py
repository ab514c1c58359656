"""Install throwaway plugin distributions on sys.path (a dist-info folder + module), as pip would, for tests."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path


def make_plugin_dist(
    root: Path, dist: str, entry_name: str, module: str, source: str, version: str = "0.0.1"
) -> Path:
    """Write ``module.py`` and ``<dist>-<version>.dist-info`` with a ``zoo`` entry point under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[zoo]\n{entry_name} = {module}\n", encoding="utf-8")
    return root


def activate(root: Path, monkeypatch) -> None:
    """Put ``root`` first on sys.path for this test (and for subprocesses through PYTHONPATH)."""
    monkeypatch.syspath_prepend(str(root))
    import os

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), *sys.path]))
