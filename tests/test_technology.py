"""F, H and U (MODEL.md section 2) against values computed by hand."""

import math

import torch

from lotj.economy.technology import learning_step, production, unemployment_value


def _firm(h, a, n_max=None, z=1.0, q=1.0):
    n_max = n_max or len(h)
    pad = n_max - len(h)
    ht = torch.tensor([list(h) + [1.0] * pad])
    at = torch.tensor([list(a) + [1.0] * pad])
    mask = torch.tensor([[True] * len(h) + [False] * pad])
    return torch.tensor([z]), torch.tensor([q]), ht, at, mask


def test_production_by_hand():
    z, _, h, _, mask = _firm([1.0, 2.0, 4.0], [1, 1, 1], z=2.0)
    # F = z (Σ h^η)^(1/η) with η = 1/2: 2 * (1 + √2 + 2)^2
    expected = 2.0 * (1.0 + math.sqrt(2.0) + 2.0) ** 2
    assert torch.allclose(production(z, h, mask, 0.5), torch.tensor([expected]), rtol=1e-12)
    # η = 1: linear
    assert torch.allclose(production(z, h, mask, 1.0), torch.tensor([14.0]), rtol=1e-12)
    # a lone worker: F = z h for any η
    z1, _, h1, _, m1 = _firm([3.0], [1.0], n_max=4, z=1.5)
    assert torch.allclose(production(z1, h1, m1, 0.939), torch.tensor([4.5]), rtol=1e-12)


def test_production_empty_firm_is_zero_with_finite_gradient():
    z = torch.tensor([1.3], requires_grad=True)
    h = torch.ones(1, 4, requires_grad=True)
    mask = torch.zeros(1, 4, dtype=torch.bool)
    f = production(z, h, mask, 0.939)
    assert f.item() == 0.0
    f.sum().backward()
    assert torch.isfinite(z.grad).all() and torch.isfinite(h.grad).all()


def test_production_permutation_and_padding_invariant(gen):
    h = torch.rand(5, 6, generator=gen) + 0.5
    mask = torch.rand(5, 6, generator=gen) > 0.3
    z = torch.rand(5, generator=gen) + 0.5
    perm = torch.randperm(6, generator=gen)
    f = production(z, h, mask, 0.9)
    assert torch.allclose(production(z, h[:, perm], mask[:, perm], 0.9), f, rtol=1e-12)
    h_pad = torch.cat([h, 7.0 * torch.ones(5, 3)], 1)  # padding holds arbitrary values
    mask_pad = torch.cat([mask, torch.zeros(5, 3, dtype=torch.bool)], 1)
    assert torch.allclose(production(z, h_pad, mask_pad, 0.9), f, rtol=1e-12)


def test_learning_step_by_hand():
    tp, tm, q = 0.2, 0.1, 1.05
    _, qt, h, a, mask = _firm([1.0, 2.0, 4.0], [1.1, 1.0, 0.9], q=q)
    new = learning_step(h, a, qt, mask, tp, tm)
    # n - 1 = 2. worker 1: up = log2 + log4 = 3 log 2, no one below
    w1 = 1.0 * 1.1 * q * 2.0 ** (tp / 2 * 3)
    # worker 2: up = log 2 (from 4), down = -log 2 (from 1)
    w2 = 2.0 * 1.0 * q * 2.0 ** (tp / 2 - tm / 2)
    # worker 3: down = log(1/4) + log(2/4) = -3 log 2
    w3 = 4.0 * 0.9 * q * 2.0 ** (-tm / 2 * 3)
    assert torch.allclose(new, torch.tensor([[w1, w2, w3]]), rtol=1e-12)


def test_learning_step_ties_count_in_neither_sum():
    tp, tm = 0.3, 0.2
    _, q, h, a, mask = _firm([2.0, 2.0, 1.0], [1.0, 1.0, 1.0])
    new = learning_step(h, a, q, mask, tp, tm)
    # workers 1 and 2 tie: each only sees worker 3 below, log(1/2)
    hi = 2.0 * 2.0 ** (-tm / 2)
    # worker 3 sees two workers above, each log 2
    lo = 1.0 * 2.0 ** (tp / 2 * 2)
    assert torch.allclose(new, torch.tensor([[hi, hi, lo]]), rtol=1e-12)


def test_learning_step_lone_worker_has_no_coworker_terms():
    _, q, h, a, mask = _firm([1.7], [1.02], n_max=3, q=0.99)
    new = learning_step(h, a, q, mask, 0.5, 0.5)
    assert torch.allclose(new[0, 0], torch.tensor(1.7 * 1.02 * 0.99), rtol=1e-12)
    assert torch.equal(new[0, 1:], h[0, 1:])  # padding untouched


def test_learning_step_equivariant_and_padding_invariant(gen):
    b, n = 6, 7
    h = torch.rand(b, n, generator=gen) + 0.5
    a = torch.rand(b, n, generator=gen) * 0.1 + 0.95
    q = torch.rand(b, generator=gen) * 0.1 + 0.95
    mask = torch.rand(b, n, generator=gen) > 0.3
    new = learning_step(h, a, q, mask, 0.165, 0.034)
    perm = torch.randperm(n, generator=gen)
    new_p = learning_step(h[:, perm], a[:, perm], q, mask[:, perm], 0.165, 0.034)
    assert torch.allclose(new_p, new[:, perm], rtol=1e-12)
    # extra padding with arbitrary values changes nothing for real workers
    h_pad = torch.cat([h, 100.0 * torch.ones(b, 3)], 1)
    a_pad = torch.cat([a, 3.0 * torch.ones(b, 3)], 1)
    m_pad = torch.cat([mask, torch.zeros(b, 3, dtype=torch.bool)], 1)
    new_pad = learning_step(h_pad, a_pad, q, m_pad, 0.165, 0.034)
    assert torch.allclose(new_pad[:, :n][mask], new[mask], rtol=1e-12)
    # padded slots in the original batch hold arbitrary h: changing them changes no real worker
    h_junk = torch.where(mask, h, torch.full_like(h, 50.0))
    new_junk = learning_step(h_junk, a, q, mask, 0.165, 0.034)
    assert torch.allclose(new_junk[mask], new[mask], rtol=1e-12)


def test_unemployment_value():
    h = torch.tensor([1.0, 2.5])
    # U = b h / (ρ + δ_r)
    assert torch.allclose(unemployment_value(h, 0.141, 0.05, 0.05), torch.tensor([1.41, 3.525]), rtol=1e-12)
