"""Exact sums over Π for the W residual (lotj.sim.meeting_draws.exact_poachers, lotj.economy.wages.poacher_mean;
MODEL.md sections 4, 5 and 10): every distinct poacher state once, weighted by its share of Π ∝ (n + 1) χ.

- On a hand-built market of six firm rows (duplicates in another slot order, an empty firm, a firm at the cap)
  the exact sum equals the brute-force average over every row, each weighted by (n + 1)/Σ(n + 1): the W
  residual is affine in the poacher expectation, so the weighted sum of one-poacher residuals is the truth.
- Equal weights 1/M_Π give the Monte Carlo path's unweighted mean on the same poachers.
- The exact W of exact_small puts the W residual with exact χ^N, χ^E and Π sums at ~1e-10 in one call.
- Too many distinct states are refused, as for the meeting draws.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lotj.sim.meeting_draws as meeting_draws
from lotj.accuracy.exact_check import exact_meeting_draws
from lotj.config import load_config
from lotj.economy.firms import FirmBatch
from lotj.economy.params import MeetingRates
from lotj.economy.wages import poacher_mean, w_residual, wage_v_terms
from lotj.exact import solve_equilibrium
from lotj.exact.table import table_worker_value_function
from lotj.exact.worker_value import exact_worker_values
from lotj.sim.distributions import EconomySnapshot
from lotj.sim.market import Market
from lotj.sim.meeting_draws import exact_poachers


@pytest.fixture(scope="module")
def small():
    cfg = load_config(["conf=exact_small"])
    sol = solve_equilibrium(cfg.economy)
    curve = exact_worker_values(sol.space, sol.params, sol.v, sol.market, w_start=1.0)
    return cfg.economy, sol, curve


def _state(space, counts) -> int:
    """The index of the state of firm type 0 with ``counts`` workers of each type."""
    hit = np.nonzero((space.firm_type == 0) & (space.counts == np.asarray(counts)).all(1))[0]
    assert hit.size == 1
    return int(hit[0])


def _swap_slots(s: FirmBatch, i: int, j: int) -> FirmBatch:
    perm = list(range(s.n_max))
    perm[i], perm[j] = perm[j], perm[i]
    return FirmBatch(s.z, s.q, s.h[:, perm], s.a[:, perm], s.mask[:, perm])


def _market(space) -> tuple[FirmBatch, np.ndarray]:
    """Six firm rows: an empty firm, a lone worker twice, a pair of two types twice (the second in another slot
    order) and a firm at the cap (n_max = 4); returns the rows and each row's state."""
    empty, lone, pair, full = (_state(space, c) for c in ([0, 0, 0], [0, 1, 0], [1, 0, 1], [1, 2, 1]))
    rows = np.array([empty, lone, pair, pair, full, lone])
    firms = space.firm_batch(rows)
    swapped = _swap_slots(firms.index(torch.tensor([3])), 0, 1)
    firms = FirmBatch.cat([firms.index(torch.arange(3)), swapped, firms.index(torch.tensor([4, 5]))])
    return firms, rows


def _grid_states(space, curve):
    occupied = np.nonzero(space.size > 0)[0]
    grid = np.linspace(curve.knots[0] - 0.5, curve.knots[-1] + 0.5, 5)
    states = space.firm_batch(np.tile(occupied, len(grid)))
    w = torch.as_tensor(np.repeat(grid, len(occupied)))[:, None].expand(-1, space.n_max).clone()
    return states, w


def test_exact_poachers_are_the_brute_force_average_over_every_firm_row(small):
    p, sol, curve = small
    space = sol.space
    firms, rows = _market(space)
    assert int(firms.size()[4]) == p.n_max  # the firm at the cap is in the market
    snap = EconomySnapshot(firms, torch.tensor([1.0]), torch.tensor([1.0]))
    ps = exact_poachers(snap)
    # four distinct states, Π weights (n + 1) summed over their rows: 1, 2 + 2, 3 + 3, 5 out of 16
    located = space.locate(ps.firms.z, ps.firms.q, ps.firms.h, ps.firms.a, ps.firms.mask)
    expected = {rows[0]: 1 / 16, rows[1]: 4 / 16, rows[2]: 6 / 16, rows[4]: 5 / 16}
    assert sorted(located.tolist()) == sorted(expected)
    for state, weight in zip(located.tolist(), ps.weight.tolist()):
        assert weight == pytest.approx(expected[state], rel=1e-14)
    assert (ps.firm_id == -1).all()

    wf, vf = table_worker_value_function(curve), sol.value_function()
    states, w = _grid_states(space, curve)
    rates = MeetingRates(sol.market.omega, sol.market.s_n, sol.market.s_e)
    r_exact, _ = w_residual(wf, vf, p, states, w, rates, None, ps.firms, poacher_weight=ps.weight)
    t_exact = wage_v_terms(vf, p, states, rates, None, ps.firms, poacher_weight=ps.weight)
    pi = (firms.size() + 1).double()
    pi = pi / pi.sum()
    brute = torch.zeros_like(r_exact)
    leave = torch.zeros_like(t_exact.leave_prob)
    one_by_one = []
    for k in range(firms.batch_size):
        one = firms.index(torch.tensor([k]))
        r_k, _ = w_residual(wf, vf, p, states, w, rates, None, one)
        one_by_one.append(r_k)
        brute += pi[k] * r_k
        leave += pi[k] * wage_v_terms(vf, p, states, rates, None, one).leave_prob
    scale = p.rho * wf.values(states, w).abs().clamp_min(1.0)
    assert ((r_exact - brute).abs() / scale)[states.mask].max() < 1e-12
    assert torch.allclose(t_exact.leave_prob, leave, rtol=0, atol=1e-14)
    # the firm at the cap counts (it meets workers and makes no offer): leaving it out moves the sum
    no_cap = sum(pi[k] * one_by_one[k] for k in range(6) if k != 4) / (1 - pi[4])
    assert ((r_exact - no_cap).abs() / scale)[states.mask].max() > 1e-4


def test_equal_weights_are_the_monte_carlo_mean(small):
    p, sol, curve = small
    space = sol.space
    gen = torch.Generator().manual_seed(4)
    poachers = space.firm_batch(torch.randint(space.n_states, (9,), generator=gen).numpy())
    wf, vf = table_worker_value_function(curve), sol.value_function()
    states, w = _grid_states(space, curve)
    rates = MeetingRates(sol.market.omega, sol.market.s_n, sol.market.s_e)
    equal = torch.full((9,), 1 / 9, dtype=torch.float64)
    r_mc, W = w_residual(wf, vf, p, states, w, rates, None, poachers)
    r_eq, _ = w_residual(wf, vf, p, states, w, rates, None, poachers, poacher_weight=equal)
    assert torch.allclose(r_mc, r_eq, rtol=1e-12, atol=1e-12 * float(W.abs().max()))
    x = torch.randn(3, 5, 9, generator=gen, dtype=torch.float64)
    assert torch.allclose(poacher_mean(x, equal), poacher_mean(x), rtol=1e-14, atol=1e-15)
    assert torch.equal(poacher_mean(x), x.mean(-1))  # the Monte Carlo path is the plain mean, bit for bit
    # unequal weights are not the mean
    skew = torch.linspace(1, 9, 9, dtype=torch.float64)
    assert not torch.allclose(poacher_mean(x, skew / skew.sum()), x.mean(-1), atol=1e-3)


def test_the_exact_w_zeroes_the_residual_with_exact_sums_in_one_call(small):
    """The setting of tests/test_exact_w.py::test_the_training_residual_vanishes_at_the_exact_w, with every
    expectation an exact weighted sum in one residual call: χ^N, χ^E as weighted draws, Π as weighted poachers."""
    p, sol, curve = small
    space, market = sol.space, sol.market
    wf, vf = table_worker_value_function(curve), sol.value_function()
    states, w = _grid_states(space, curve)
    rates = MeetingRates(market.omega, market.s_n, market.s_e)
    draws = exact_meeting_draws(space, market, sol.v)
    live = np.nonzero(market.pi > 0)[0]
    poachers = space.firm_batch(live)
    weight = torch.as_tensor(market.pi[live] / market.pi[live].sum())
    r, W = w_residual(wf, vf, p, states, w, rates, draws, poachers, poacher_weight=weight)
    scale = p.rho * torch.maximum(W.abs(), torch.as_tensor(p.unemployment_coef) * states.h)
    assert (r.abs() / scale)[states.mask].max() < 1e-10
    # the same poachers unweighted (a Monte Carlo mean over the states, not over Π) leave a residual
    r_plain, _ = w_residual(wf, vf, p, states, w, rates, draws, poachers)
    assert (r_plain.abs() / scale)[states.mask].max() > 1e-4


def test_too_many_distinct_poacher_states_are_refused(small, monkeypatch):
    _, sol, _ = small
    firms, _ = _market(sol.space)  # four distinct states
    snap = EconomySnapshot(firms, torch.tensor([1.0]), torch.tensor([1.0]))
    monkeypatch.setattr(meeting_draws, "MAX_EXACT_DRAWS", 4)
    assert exact_poachers(snap).firms.batch_size == 4
    monkeypatch.setattr(meeting_draws, "MAX_EXACT_DRAWS", 3)
    with pytest.raises(ValueError, match="4 distinct firm states.*wsolver.exact_sums=false"):
        exact_poachers(snap)


def test_a_market_with_exact_sums_gives_exact_poachers_and_monte_carlo_otherwise(small):
    _, sol, _ = small
    firms, _ = _market(sol.space)
    snap = EconomySnapshot(firms, torch.tensor([1.0, 1.4]), torch.tensor([1.0, 1.0]))
    exact = Market(sol.params, seed=0, heldout_fraction=0.2, exact_sums=True)
    exact.refresh(snap)
    got = exact.poachers(16, torch.Generator().manual_seed(0))
    assert got.firms.batch_size == 4 and float(got.weight.sum()) == pytest.approx(1.0, abs=1e-15)
    mc = Market(sol.params, seed=0, heldout_fraction=0.2)
    mc.refresh(snap)
    drawn = mc.poachers(16, torch.Generator().manual_seed(0))
    same, idx = snap.sample_poachers(16, torch.Generator().manual_seed(0))
    assert drawn.weight is None and torch.equal(drawn.firm_id, idx) and torch.equal(drawn.firms.h, same.h)


def test_the_worker_chains_read_weighted_poachers(small):
    """The chains of the W error estimate and of W's chain targets (lotj.accuracy.worker_chains) take a poacher
    source that returns ``(poachers, weight)``: at the exact W with exact χ^N, χ^E and Π every step's residual is
    zero, so the estimated error is ~0; the same poachers read unweighted give a visible error."""
    from lotj.accuracy.exact_check import TableValue
    from lotj.accuracy.worker_chains import worker_chain_errors
    from lotj.validate.wages import pair_batch, wage_grid

    p, sol, curve = small
    space, market = sol.space, sol.market
    wf = table_worker_value_function(curve)
    pair, wage = wage_grid(curve, points=3, margin=0.0)
    pick = np.arange(1, len(pair), 3)[::8]
    batch, slot = pair_batch(curve, pair[pick])
    draws = exact_meeting_draws(space, market, sol.v)
    live = np.nonzero(market.pi > 0)[0]
    poachers = space.firm_batch(live)
    weight = torch.as_tensor(market.pi[live] / market.pi[live].sum())
    rates = MeetingRates(market.omega, market.s_n, market.s_e)

    def run(source):
        res = worker_chain_errors(
            wf, TableValue(space, sol.v), p, batch, torch.as_tensor(slot), torch.as_tensor(wage[pick]), rates,
            lambda g: draws, source, torch.Generator().manual_seed(1),
        )  # fmt: skip
        return (res.error.abs() / res.scale).max()

    assert run(lambda g: (poachers, weight)) < 1e-9
    assert run(lambda g: poachers) > 1e-4


def test_worker_sources_pass_the_weights_of_an_exact_market(small):
    from lotj.accuracy.worker_market import worker_sources

    _, sol, _ = small
    firms, _ = _market(sol.space)
    snap = EconomySnapshot(firms, torch.tensor([1.0, 1.4]), torch.tensor([1.0, 1.0]))
    for exact in (True, False):
        market = Market(sol.params, seed=0, heldout_fraction=0.2, exact_sums=exact)
        market.refresh(snap)
        _, source = worker_sources(sol.value_function(), market, 4, 4, 8)
        got = source(torch.Generator().manual_seed(0))
        if exact:
            assert isinstance(got, tuple) and got[0].batch_size == 4
            assert float(got[1].sum()) == pytest.approx(1.0, abs=1e-15)
        else:
            assert isinstance(got, FirmBatch) and got.batch_size == 8


def test_reset_events_draw_each_worker_s_poacher_by_the_weights(small):
    """The wage resets of the wage error estimate (lotj.accuracy.wage_error.reset_events) with weighted poachers:
    all the weight on one poacher state gives the resets of that poacher alone."""
    from lotj.accuracy.wage_error import reset_events

    p, sol, curve = small
    space = sol.space
    wf, vf = table_worker_value_function(curve), sol.value_function()
    states, w = _grid_states(space, curve)
    rates = MeetingRates(sol.market.omega, sol.market.s_n, sol.market.s_e)
    poachers = space.firm_batch(np.array([_state(space, c) for c in ([0, 0, 0], [0, 0, 1], [1, 1, 0])]))
    for k in range(3):
        weight = torch.zeros(3, dtype=torch.float64)
        weight[k] = 1.0
        gen = torch.Generator().manual_seed(k)
        got = reset_events(wf, vf, p, states, w, rates, None, (poachers, weight), gen)
        alone = reset_events(wf, vf, p, states, w, rates, None, poachers.index(torch.tensor([k])), gen)
        assert got.count == alone.count > 0
        assert torch.equal(got.cause, alone.cause) and torch.allclose(got.target, alone.target, rtol=0, atol=0)
        assert torch.equal(got.states.h, alone.states.h)
    # the three poachers set different resets: the weights choose among them
    a = reset_events(wf, vf, p, states, w, rates, None, poachers.index(torch.tensor([0])), gen)
    b = reset_events(wf, vf, p, states, w, rates, None, poachers.index(torch.tensor([2])), gen)
    assert a.count != b.count or not torch.equal(a.target, b.target)
