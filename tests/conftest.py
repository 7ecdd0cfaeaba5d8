"""Shared test settings: CPU only, deterministic, one intra-op thread pool size."""

import os

import pytest
import torch

os.environ.setdefault("PIXLOOM_TEST", "1")


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
