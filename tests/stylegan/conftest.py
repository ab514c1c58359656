"""StyleGAN tests run single-threaded: on a shared CPU, torch's thread pool spinning against other jobs makes these
tiny networks far slower than one thread does."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
