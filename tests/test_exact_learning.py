"""The closed-workforce learning series V(S) = Σ_k γ^k F(H^k S) / (ρ + γ)^(k+1) (lotj.exact.learning)."""

from __future__ import annotations

import math

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
    assert lone_worker_value(p, 1.1, 0.8, 1.01, 0.97) == pytest.approx(0.88 / 0.0703, rel=1e-13)
    assert res.bounded and res.tail_bound < 1e-12


def test_a_lone_worker_who_outgrows_discounting_has_no_value():
    """ρ + γ (1 − a q) ≤ 0: the worker's output grows as fast as it is discounted, V is infinite (here exactly
    at the edge: ρ = 0.5, γ = 1, a q = 1.5)."""
    p = load_config(["conf=exact_learning", "economy.rho=0.5"]).economy
    with pytest.raises(ConfigError, match="lone-worker value is infinite"):
        lone_worker_value(p, 1.0, 1.0, 1.5, 1.0)
    with pytest.raises(ConfigError, match="infinite"):
        lone_worker_value(p, 1.0, 1.0, 1.6, 1.0)


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
    # the second firm: γ (a q − 1) = 0.08 > ρ = 0.05, named by its q; the first converges
    s = _batch([1.0, 1.0], [0.95, 1.08], [[(1.0, 1.0), (1.2, 1.0)], [(1.0, 1.0)]])
    with pytest.raises(ConfigError, match=r"diverges: .* firm with q = 1\.08 and largest a = 1 "):
        closed_workforce_values(p, s)


def test_open_economies_are_refused():
    p = load_config(["conf=exact_learning", "economy.delta_m=0.1", "economy.lam=0.5"]).economy
    s = _batch([1.0], [0.95], [[(1.0, 1.0)]])
    with pytest.raises(ConfigError, match="active: economy.delta_m = 0.1, economy.lam = 0.5"):
        closed_workforce_values(p, s)
    p = load_config(["conf=exact_learning", "economy.gamma_e=0"]).economy
    with pytest.raises(ConfigError, match="needs gamma_e > 0"):
        closed_workforce_values(p, s)


def test_the_stopping_rule_is_the_exact_tail_of_a_geometric_series(p):
    """A lone worker's output, and that of identical coworkers, grows by a q per learning step, so the terms are
    geometric with ratio r = γ a q / (ρ + γ) and, after K terms, the omitted tail relative to the partial sum is
    r^K / (1 − r^K): the tail bound of the module docstring is that number. The series stops at the first K
    where it is below rtol, reports it, and its sum is the closed form times (1 − r^K). Firms of different z, h
    and sizes, with the same a and q, stop together."""
    aq = 1.01 * 0.97
    r = p.gamma_e * aq / (p.rho + p.gamma_e)
    rtol = 1e-6
    K = next(k for k in range(1, 10_000) if r**k / (1 - r**k) < rtol)  # 200; 1.03e-6 at 199, 0.96e-6 at 200
    s = _batch(
        [1.1, 0.6, 1.0],
        [0.97, 0.97, 0.97],
        [[(0.8, 1.01)], [(1.3, 1.01)], [(1.1, 1.01), (1.1, 1.01), (1.1, 1.01)]],
    )
    res = closed_workforce_values(p, s, rtol=rtol)
    assert res.bounded and res.terms == K
    assert res.tail_bound == pytest.approx(r**K / (1 - r**K), rel=1e-9)
    f0 = np.array([1.1 * 0.8, 0.6 * 1.3, 1.0 * (3 * 1.1**p.eta) ** (1 / p.eta)])
    closed = f0 / (p.rho + p.gamma_e * (1 - aq))
    np.testing.assert_allclose(res.values.numpy(), closed * (1 - r**K), rtol=1e-11)
    # the three coworkers alone: the bound's size factor n^(1/η) is exact for them too
    alone = closed_workforce_values(p, s.index(torch.tensor([2])), rtol=rtol)
    assert alone.terms == K and alone.tail_bound == pytest.approx(r**K / (1 - r**K), rel=1e-9)


@pytest.mark.parametrize("theta_plus", [0.165, 1.0, 1.5])
def test_values_are_linear_in_output_units(p, theta_plus):
    """Output in other units (z times 1e-4) scales every V by the same factor, whichever stopping rule applies:
    the tail bound for 0 ≤ θ⁺ ≤ 1 (its edge included), relative terms outside (θ⁺ = 1.5), where the series still
    solves ρ V(S) = F(S) + γ (V(H S) − V(S))."""
    p.theta_plus = theta_plus
    s = learning_states(p, 48, max_iterates=5, generator=torch.Generator().manual_seed(8), mean_size=4.0)
    res = closed_workforce_values(p, s)
    assert res.bounded == (theta_plus <= 1.0)
    small = closed_workforce_values(p, FirmBatch(s.z * 1e-4, s.q, s.h, s.a, s.mask))
    np.testing.assert_allclose(small.values.numpy(), 1e-4 * res.values.numpy(), rtol=1e-12)
    hs = FirmBatch(s.z, s.q, learning_step(s.h, s.a, s.q, s.mask, p.theta_plus, p.theta_minus), s.a, s.mask)
    v, v_next = res.values, closed_workforce_values(p, hs).values
    residual = p.rho * v - production(s.z, s.h, s.mask, p.eta) - p.gamma_e * (v_next - v)
    assert (residual.abs() / (p.rho * v)).max() < 1e-10


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


def test_learning_states_have_poisson_sizes_and_uniform_step_counts(p):
    """Sizes: Poisson(mean_size) capped at n_max, empty firms left out, so P(n = 1) = λ e^-λ / (1 − e^-λ) and
    E n = Σ_n min(n, n_max) P(n) / (1 − e^-λ). Steps: k uniform on 0..max_iterates. With two worker types
    (told apart by a) and no coworker effects, a step multiplies h by a q, so k = log(h / h⁰) / log(a q) with
    h⁰ the type's. 4000 firms: tolerances are 4 standard errors."""
    p.theta_plus = p.theta_minus = 0.0
    p.worker_types = [[0.8, 1.02, 0.5], [1.2, 0.97, 0.5]]
    p.firm_types = [[1.0, 0.98, 1.0]]
    lam, count = 1.5, 4000
    s = learning_states(p, count, max_iterates=2, generator=torch.Generator().manual_seed(3), mean_size=lam)
    n = s.size().double()
    pmf = [math.exp(-lam) * lam**k / math.factorial(k) for k in range(60)]
    mean = (sum(min(k, p.n_max) * pk for k, pk in enumerate(pmf))) / (1 - pmf[0])
    assert float(n.min()) >= 1
    assert float(n.mean()) == pytest.approx(mean, abs=4 * float(n.std()) / count**0.5)
    share_one = pmf[1] / (1 - pmf[0])
    assert float((n == 1).double().mean()) == pytest.approx(
        share_one, abs=4 * (share_one * (1 - share_one) / count) ** 0.5
    )
    a = s.a[:, 0]
    h0 = torch.where(a == 1.02, 0.8, 1.2)
    assert ((a == 1.02) | (a == 0.97)).all()
    steps = torch.log(s.h[:, 0] / h0) / torch.log(a * s.q)
    k = steps.round()
    assert (steps - k).abs().max() < 1e-6
    share = torch.stack([(k == j).double().mean() for j in range(3)])
    assert float(share.sum()) == 1.0
    assert (share - 1 / 3).abs().max() < 4 * (2 / 9 / count) ** 0.5
    check = learning_check(p, 500, seed=4, max_iterates=0, mean_size=lam)
    assert float(check.states.size().double().mean()) == pytest.approx(mean, abs=0.2)


def test_heldout_check_is_reproducible_and_seeded(p):
    a = learning_check(p, 50, seed=1, max_iterates=10)
    b = learning_check(p, 50, seed=1, max_iterates=10)
    c = learning_check(p, 50, seed=2, max_iterates=10)
    assert np.array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert a.summary()["n_states"] == 50 and a.tail_bound < 1e-12
    # the summary written for users: the check's own numbers under their names
    assert a.summary() == {
        "n_states": 50,
        "solve_seconds": a.solve_seconds,
        "series_terms": a.terms,
        "tail_bound": a.tail_bound,
        "seed": 1,
        "max_iterates": 10,
        "mean_value": float(a.values.mean()),
    }
    assert a.terms == closed_workforce_values(p, a.states).terms > 1
