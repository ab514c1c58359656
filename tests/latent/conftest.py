"""The latent family's tests run single-threaded: on a shared, loaded machine OpenMP threads spin-wait and make
tiny models many times slower (measured: 0.6 s vs 0.1 s per tiny-UNet forward at load 7 on 2 cores)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
