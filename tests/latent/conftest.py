"""Shared fixtures of the latent family's tests."""

from __future__ import annotations

import pytest
from latent_helpers import make_pipeline


@pytest.fixture(scope="session")
def pipeline_dir(tmp_path_factory):
    """A tiny SD pipeline with random weights, written by diffusers' own save_pretrained."""
    return make_pipeline(tmp_path_factory.mktemp("sd"))
