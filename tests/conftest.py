"""Shared test set-up: every test sees a fresh plugin registry and no user registry file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
# Test modules are imported with --import-mode=importlib (families share basenames such as test_embedded.py), so
# the helper modules (hubserver, fakedist, <family>_helpers, toy models; each name unique) are put on sys.path here.
for folder in [
    TESTS,
    *sorted(p for p in TESTS.iterdir() if p.is_dir() and p.name not in {"fixtures", "__pycache__"}),
]:
    sys.path.insert(0, str(folder))

# Keep the Hub unreachable by accident: tests that talk to a Hub start a local server and set the endpoint.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.pop("ZOO_REGISTRY", None)
os.environ.pop("ZOO_LOAD_PLUGINS", None)
os.environ.pop("ZOO_STRICT_PLUGINS", None)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tests run their tiny networks on one intra-op thread: on a busy 2-core machine OpenMP threads spin against
    each other and make tiny convolutions ~10x slower (measured 0.6 s vs 0.1 s per tiny-UNet forward at load 7);
    one thread changes no result the tests check. Subprocesses (CLI, torchrun) keep torch's default."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _fresh_registry():
    """Rediscover plugins for every test, so environment changes and in-process plugins do not leak."""
    from zoo_core.registry import reset_registry

    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def registry():
    from zoo_core.registry import get_registry

    return get_registry()


@pytest.fixture
def fixtures_dir() -> Path:
    return TESTS / "fixtures"
