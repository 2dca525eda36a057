"""The closed-workforce learning series V(S) = Σ_k γ^k F(H^k S) / (ρ + γ)^(k+1) (lotj.exact.learning)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lotj.config import load_config
from lotj.economy.firms import FirmBatch
from lotj.economy.technology import learning_step, production
from lotj.errors import ConfigError
from lotj.exact.learning import closed_workforce_values, learning_check, learning_states, lone_worker_value


@pytest.fixture
def p():
    return load_config(["conf=exact_learning"]).economy


def _batch(z, q, rows, width=4) -> FirmBatch:
    h = torch.ones(len(rows), width)
    a = torch.ones(len(rows), width)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, workers in enumerate(rows):
        for k, (hh, aa) in enumerate(workers):
            h[i, k], a[i, k], mask[i, k] = hh, aa, True
    return FirmBatch(torch.tensor(z), torch.tensor(q), h, a, mask)


def test_lone_worker_matches_the_closed_form(p):
    # V = F / (ρ + γ (1 − a q)): with ρ = 0.05, γ = 1, z = 1.1, h = 0.8, a = 1.01, q = 0.97,
    # V = 0.88 / (0.05 + 1 − 0.9797) = 0.88 / 0.0703
    s = _batch([1.1, 0.9], [0.97, 1.0], [[(0.8, 1.01)], [(1.3, 0.99)]])
    res = closed_workforce_values(p, s)
    assert res.values[0].item() == pytest.approx(0.88 / 0.0703, rel=1e-11)
    assert res.values[1].item() == pytest.approx(lone_worker_value(p, 0.9, 1.3, 0.99, 1.0), rel=1e-11)
    assert res.bounded and res.tail_bound < 1e-12


def test_without_coworker_effects_and_linear_ces_workers_add_up(p):
    # θ⁺ = θ⁻ = 0, η = 1: F is a sum and every worker grows at its own a q, so V = z Σ_i h_i / (ρ + γ(1 − a_i q))
    p.theta_plus = p.theta_minus = 0.0
    p.eta = 1.0
    workers = [(0.8, 1.02), (1.3, 0.97), (1.0, 1.0)]
    s = _batch([1.2], [0.98], [workers])
    expected = sum(1.2 * h / (p.rho + p.gamma_e * (1 - a * 0.98)) for h, a in workers)
    assert closed_workforce_values(p, s).values[0].item() == pytest.approx(expected, rel=1e-11)


def test_identical_coworkers_grow_together(p):
    # equal h: both coworker sums are empty (ties enter neither), each grows at a q, F(H^k S) = (a q)^k F(S)
    s = _batch([1.0], [0.96], [[(1.1, 1.01), (1.1, 1.01), (1.1, 1.01)]])
    f0 = 1.0 * (3 * 1.1**p.eta) ** (1 / p.eta)
    expected = f0 / (p.rho + p.gamma_e * (1 - 1.01 * 0.96))
    assert closed_workforce_values(p, s).values[0].item() == pytest.approx(expected, rel=1e-11)


def test_series_solves_the_learning_hjb_with_coworker_effects(p):
    """ρ V(S) = F(S) + γ (V(H S) − V(S)) on firms with distinct h (both θ terms active)."""
    gen = torch.Generator().manual_seed(5)
    s = learning_states(p, 64, max_iterates=5, generator=gen, mean_size=4.0)
    assert (s.size() >= 2).any()
    v = closed_workforce_values(p, s).values
    hs = FirmBatch(s.z, s.q, learning_step(s.h, s.a, s.q, s.mask, p.theta_plus, p.theta_minus), s.a, s.mask)
    v_next = closed_workforce_values(p, hs).values
    residual = p.rho * v - production(s.z, s.h, s.mask, p.eta) - p.gamma_e * (v_next - v)
    assert (residual.abs() / (p.rho * v)).max() < 1e-10
    # the coworker terms matter: without them the values differ
    p.theta_plus = p.theta_minus = 0.0
    assert (closed_workforce_values(p, s).values - v).abs().max() > 1e-3 * v.abs().max()


def test_divergent_series_is_refused(p):
    s = _batch([1.0], [1.08], [[(1.0, 1.0)]])  # γ (a q − 1) = 0.08 > ρ = 0.05
    with pytest.raises(ConfigError, match="diverges"):
        closed_workforce_values(p, s)


def test_open_economies_are_refused():
    p = load_config(["conf=exact_learning", "economy.delta_m=0.1"]).economy
    s = _batch([1.0], [0.95], [[(1.0, 1.0)]])
    with pytest.raises(ConfigError, match="delta_m"):
        closed_workforce_values(p, s)


def test_learning_states_are_draws_and_their_iterates(p):
    gen = torch.Generator().manual_seed(0)
    s0 = learning_states(p, 300, max_iterates=0, generator=gen)
    assert (s0.size() >= 1).all() and (s0.size() <= p.n_max).all()
    # no iterate: h on the truncated support of G_w (log h within ±4 sd)
    log_h = torch.log(s0.h[s0.mask])
    assert log_h.abs().max() <= 4 * p.sd_log_h + 1e-12
    s = learning_states(p, 300, max_iterates=30, generator=torch.Generator().manual_seed(0))
    # with a q < 1 on average, iterates drift h down
    assert torch.log(s.h[s.mask]).mean() < log_h.mean() - 0.1


def test_heldout_check_is_reproducible_and_seeded(p):
    a = learning_check(p, 50, seed=1, max_iterates=10)
    b = learning_check(p, 50, seed=1, max_iterates=10)
    c = learning_check(p, 50, seed=2, max_iterates=10)
    assert np.array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert a.summary()["n_states"] == 50 and a.tail_bound < 1e-12
