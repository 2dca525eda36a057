"""Shared test settings: float64 economics, few threads (CI has 2 cores), no network for W&B."""

import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_default_dtype(torch.float64)
# CI has 2 cores; small tensors run fastest on one thread and threads fight when tests run beside Ray workers
torch.set_num_threads(1)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
