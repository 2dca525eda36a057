"""Firm-state batches (⊕, ⊖, cap) and draws from G_w, G_f (MODEL.md sections 1 and 10)."""

import math

import numpy as np
import pytest
import torch

from lotj.economy.firms import (
    FirmBatch,
    sample_firm_types,
    sample_initial_firms,
    sample_workers,
    truncated_normal_draws,
)
from lotj.economy.params import EconomyParams


def _batch():
    h = torch.tensor([[1.0, 2.0, 1.0], [3.0, 1.0, 1.0], [1.5, 2.5, 3.5]])
    mask = torch.tensor([[True, True, False], [True, False, False], [True, True, True]])
    h = torch.where(mask, h, torch.ones_like(h))
    return FirmBatch(torch.tensor([1.0, 2.0, 3.0]), torch.ones(3), h, torch.ones(3, 3), mask)


def test_add_goes_to_first_free_slot_and_refuses_at_cap():
    s = _batch()
    out, ok = s.add(torch.tensor([9.0, 8.0, 7.0]), torch.tensor([1.1, 1.2, 1.3]))
    assert ok.tolist() == [True, True, False]
    assert out.size().tolist() == [3, 2, 3]
    assert out.h[0, 2] == 9.0 and out.a[0, 2] == 1.1
    assert out.h[1, 1] == 8.0
    assert torch.equal(out.h[2], s.h[2])  # full firm unchanged
    assert torch.equal(s.size(), torch.tensor([2, 1, 3]))  # the original is not modified


def test_add_respects_active_and_remove_frees_slot():
    s = _batch()
    out, ok = s.add(torch.tensor([9.0, 8.0, 7.0]), torch.ones(3), active=torch.tensor([False, True, True]))
    assert ok.tolist() == [False, True, False]
    rem = out.remove(torch.tensor([0, 0, 1]))
    assert rem.size().tolist() == [1, 1, 2]
    assert rem.mask[1].tolist() == [False, True, False] and rem.h[1, 1] == 8.0
    # removing from an empty slot is a no-op
    same = s.remove(torch.tensor([2, 2, 0]), active=torch.tensor([True, True, False]))
    assert torch.equal(same.mask, s.mask)


def test_empty_firms():
    e = FirmBatch.empty(torch.ones(4), torch.ones(4), 5)
    assert e.size().tolist() == [0, 0, 0, 0] and e.h.shape == (4, 5)


def _cov(x: torch.Tensor) -> np.ndarray:
    return np.cov(x.numpy().T)


@pytest.mark.parametrize(
    "mean,cov",
    [
        ([0.1, -0.2], [[0.157**2, 0.02**2], [0.02**2, 0.05**2]]),
        ([0.0, 0.3], [[0.04, 0.02], [0.02, 0.01]]),  # singular: perfectly correlated (det = 0)
        ([0.0, 0.0], [[0.09, 0.0], [0.0, 0.0]]),  # a zero variance, as in the counterfactuals
    ],
)
def test_truncated_normal_moments(mean, cov, gen):
    n = 200_000
    x = truncated_normal_draws(mean, cov, n, gen)
    cov = np.array(cov)
    sd = np.sqrt(np.diag(cov))
    # sampling error of a mean is sd/√n; allow 5 of them
    assert np.all(np.abs(x.mean(0).numpy() - mean) <= 5 * sd / math.sqrt(n) + 1e-12)
    # variance: relative sampling error ≈ √(2/n); truncation at 4 sd shrinks it by ≈ 0.1%
    emp = _cov(x)
    assert np.allclose(emp, cov, rtol=0.02, atol=1e-12)
    # truncation box holds
    assert np.all(np.abs(x.numpy() - mean) <= 4 * sd + 1e-9)
    # zero-variance coordinates are exactly the mean
    for k in range(2):
        if sd[k] == 0:
            assert torch.all(x[:, k] == mean[k])


def test_singular_covariance_keeps_exact_linear_relation(gen):
    x = truncated_normal_draws([0.0, 0.3], [[0.04, 0.02], [0.02, 0.01]], 1000, gen)
    # cov = v vᵀ with v = (0.2, 0.1): second coordinate = 0.3 + 0.5 (first)
    assert torch.allclose(x[:, 1], 0.3 + 0.5 * x[:, 0], atol=1e-12)


def test_sample_workers_and_firms_match_config(gen):
    p = EconomyParams(mu_h=0.2, sd_log_h=0.3, sd_log_a=0.05, cov_log_ha=0.005, mu_q=-0.01)
    n = 100_000
    h, a = sample_workers(p, n, gen)
    logs = torch.stack([h.log(), a.log()], 1)
    assert abs(logs[:, 0].mean().item() - 0.2) < 5 * 0.3 / math.sqrt(n)
    assert np.allclose(_cov(logs), p.sigma_w, rtol=0.03)
    z, q = sample_firm_types(p, n, gen)
    logf = torch.stack([z.log(), q.log()], 1)
    assert abs(logf[:, 1].mean().item() + 0.01) < 5 * p.sd_log_q / math.sqrt(n)
    assert np.allclose(_cov(logf), p.sigma_f, rtol=0.03)


def test_discrete_types(gen):
    p = EconomyParams(worker_types=[[1.0, 1.0, 0.25], [2.0, 1.01, 0.75]], firm_types=[[1.0, 0.99, 1.0]])
    h, a = sample_workers(p, 40_000, gen)
    share = (h == 2.0).double().mean().item()
    assert abs(share - 0.75) < 5 * math.sqrt(0.75 * 0.25 / 40_000)
    assert torch.all(a[h == 2.0] == 1.01)
    z, q = sample_firm_types(p, 10, gen)
    assert torch.all(z == 1.0) and torch.all(q == 0.99)


def test_stratified_discrete_types_have_the_exact_mix_in_random_order():
    """The initial economy's discrete firm types: every type count within one of count × probability,
    in random order; each position still has the type's probability (mean over seeds)."""
    types = [[0.6, 1.0, 0.3], [1.0, 1.0, 0.45], [1.5, 1.0, 0.25]]
    p = EconomyParams(firm_types=types, worker_types=[[1.0, 1.0, 1.0]])
    first = []
    for seed in range(400):
        z, _ = sample_firm_types(p, 101, torch.Generator().manual_seed(seed), stratified=True)
        for value, _, prob in types:
            assert abs(int((z == value).sum()) - 101 * prob) < 1.0
        first.append(float(z[0]))
        assert not torch.equal(z, z.sort().values) or seed > 0  # not sorted by type
    share = sum(f == 1.0 for f in first) / len(first)
    assert abs(share - 0.45) < 4 * math.sqrt(0.45 * 0.55 / len(first))
    firms = sample_initial_firms(p, 1000, torch.Generator().manual_seed(1))
    assert abs(int((firms.z == 1.5).sum()) - 250) <= 1


def test_same_generator_seed_same_draws():
    p = EconomyParams()
    a = sample_initial_firms(p, 50, torch.Generator().manual_seed(7))
    b = sample_initial_firms(p, 50, torch.Generator().manual_seed(7))
    assert torch.equal(a.h, b.h) and torch.equal(a.mask, b.mask) and torch.equal(a.z, b.z)
    assert int(a.size().max()) <= p.n_max


def test_discrete_draws_depend_on_the_generator_alone():
    """A run is reproduced by its seed: discrete draws (workers, firm types i.i.d. and stratified, the
    initial economy) are the same for equal generators whatever the global torch seed in between."""
    p = EconomyParams(worker_types=[[0.7, 1.0, 0.3], [1.4, 1.0, 0.7]], firm_types=[[0.6, 1.0, 0.3], [1.5, 1.0, 0.7]])

    def draws(global_seed: int) -> list[torch.Tensor]:  # 41 firms: the stratified mix hangs on the random offset
        gen = torch.Generator().manual_seed(11)
        torch.manual_seed(global_seed)
        firms = sample_initial_firms(p, 41, gen)
        return [
            *sample_workers(p, 41, gen),
            *sample_firm_types(p, 41, gen),
            *sample_firm_types(p, 41, gen, stratified=True),
            firms.z,
            firms.h,
            firms.mask,
        ]

    first = draws(1)
    for global_seed in range(2, 8):
        assert all(torch.equal(x, y) for x, y in zip(first, draws(global_seed)))


def test_unstratified_discrete_draws_are_independent():
    """Without ``stratified`` each draw is independent: four firms of two equally likely types are all of
    one type with probability 1/8, so among 200 seeds some are (a miss has probability (7/8)^200 < 1e-11);
    stratified draws never are."""
    p = EconomyParams(firm_types=[[0.6, 1.0, 0.5], [1.5, 1.0, 0.5]], worker_types=[[1.0, 1.0, 0.5], [2.0, 1.0, 0.5]])
    one_type = {"firms": 0, "workers": 0, "stratified": 0}
    for seed in range(200):
        gen = torch.Generator().manual_seed(seed)
        one_type["firms"] += len(set(sample_firm_types(p, 4, gen)[0].tolist())) == 1
        one_type["workers"] += len(set(sample_workers(p, 4, gen)[0].tolist())) == 1
        one_type["stratified"] += len(set(sample_firm_types(p, 4, gen, stratified=True)[0].tolist())) == 1
    assert one_type["firms"] > 0 and one_type["workers"] > 0 and one_type["stratified"] == 0
