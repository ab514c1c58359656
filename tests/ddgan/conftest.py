"""DDGAN tests run their tiny networks on one intra-op thread: on a shared, busy machine OpenMP threads that spin
against each other make 8x8 convolutions ~10x slower, and one thread changes no result these tests check."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
