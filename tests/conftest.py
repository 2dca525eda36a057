"""Shared test settings: float64 economics, few threads (CI has 2 cores), no network for W&B."""

import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_default_dtype(torch.float64)
# CI has 2 cores; small tensors run fastest on one thread and threads fight when tests run beside Ray workers
torch.set_num_threads(1)


#: Devices the device-parametrised tests run on: the CPU always, the GPU where torch sees one. The
#: GPU variants carry ``cuda`` in their test ids (``pytest -k cuda`` runs them alone).
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _deterministic_mode_stays_in_its_test():
    """A Trainer with ``deterministic`` set switches torch's deterministic algorithms on for the whole
    process; put the setting back so that later tests do not depend on the order they run in."""
    on, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(on, warn_only=warn_only)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def check_pooled_neighbours():
    """``check(net, s, w, gen)``: a W network's pooled V, removal and addition values equal the same
    sets evaluated explicitly (``SetFunctionWorkerValue`` on its ``worker_fn``). Returns the worker mask
    and the (worker, other coworker) pair mask for further checks."""
    from lotj.economy.worker_value import SetFunctionWorkerValue

    def check(net, s, w, gen):
        naive = SetFunctionWorkerValue(net.worker_fn)
        m = s.mask
        assert torch.allclose(net.values(s, w)[m], naive.values(s, w)[m], rtol=1e-10)
        eye = torch.eye(s.n_max, dtype=torch.bool)
        pair = m.unsqueeze(-1) & m.unsqueeze(-2) & ~eye
        assert torch.allclose(net.removal_values(s, w)[pair], naive.removal_values(s, w)[pair], rtol=1e-10)
        h_new = torch.exp(0.3 * torch.randn(s.batch_size, 3, generator=gen))  # per-firm new workers
        a_new = torch.ones(s.batch_size, 3)
        got = net.addition_values(s, w, h_new, a_new)
        assert torch.allclose(got[m], naive.addition_values(s, w, h_new, a_new)[m], rtol=1e-10)
        return m, pair

    return check
