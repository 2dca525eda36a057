"""Chain targets for W (lotj.accuracy.worker_targets; docs/accuracy.md): on exact_small, a W that is the exact
W plus a planted smooth error gets targets equal to the exact W, and fitting a trainable copy of that error to
its targets removes it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lotj.accuracy.exact_check import TableValue, exact_meeting_draws, exact_rates
from lotj.accuracy.wage_validation import systematic_poachers
from lotj.accuracy.worker_targets import WorkerPoints, _target_scale, _w_of, fit_worker_targets, worker_targets
from lotj.config import load_config
from lotj.economy.firms import FirmBatch
from lotj.economy.worker_value import SetFunctionWorkerValue
from lotj.exact import solve_equilibrium
from lotj.exact.table import table_worker_value_function
from lotj.validate.wages import exact_wage_solution, pair_batch, pair_wages, wage_grid


@pytest.fixture(scope="module")
def small():
    cfg = load_config(["conf=exact_small"])
    sol = solve_equilibrium(cfg.economy)
    ew = exact_wage_solution(sol)
    pair, wage = wage_grid(ew.curve, points=3, margin=0.0)
    mid = np.arange(1, len(pair), 3)[::12]  # the middle of the bargaining set of every 12th pair
    return cfg.economy, sol, ew, WorkerPoints(*pair_wages(ew.curve, pair[mid], wage[mid]))


class PlantedW(torch.nn.Module):
    """The exact W plus ``theta · 0.01 · U(h) · (1 + 0.2 n) · z``, ``theta`` trainable."""

    def __init__(self, p, ew, theta: float):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor(theta, dtype=torch.float64))
        exact = table_worker_value_function(ew.curve)

        def fn(h, a, w, z, q, h_co, a_co, m_co):
            n = m_co.sum(-1).to(h.dtype) + 1
            g = 0.01 * p.unemployment_coef * h * (1 + 0.2 * n) * z
            return exact.fn(h, a, w, z, q, h_co, a_co, m_co) + self.theta * g

        self.inner = SetFunctionWorkerValue(fn)

    def values(self, s, w):
        return self.inner.values(s, w)

    def removal_values(self, s, w):
        return self.inner.removal_values(s, w)

    def addition_values(self, s, w, h_new, a_new):
        return self.inner.addition_values(s, w, h_new, a_new)


def _sources(sol):
    draws = exact_meeting_draws(sol.space, sol.market, sol.v)
    return exact_rates(sol.market), (lambda g: draws), systematic_poachers(sol.space, sol.market, 256)


def test_the_targets_of_a_planted_error_are_the_exact_w(small):
    p, sol, ew, pts = small
    rates, draws, poachers = _sources(sol)
    reps = 20
    many = pts.repeat(reps)
    wf = PlantedW(p, ew, 1.0)
    gen = torch.Generator().manual_seed(0)
    y = worker_targets(wf, TableValue(sol.space, sol.v), p, many, rates, draws, poachers, gen).view(reps, -1).numpy()
    rows = torch.arange(pts.slot.numel())
    exact = PlantedW(p, ew, 0.0).values(pts.states, pts.wages)[rows, pts.slot].detach().numpy()
    planted = wf.values(pts.states, pts.wages)[rows, pts.slot].detach().numpy() - exact
    mean, se = y.mean(0), y.std(0, ddof=1) / math.sqrt(reps)
    assert np.all(np.abs(mean - exact) <= 5 * se + 0.1 * np.abs(planted))
    assert np.abs(mean - exact).mean() < 0.2 * np.abs(planted).mean()


def test_more_chain_pairs_average_the_targets_noise_down(small):
    """``reps`` pairs of chains a target: the spread of the targets over independent sets falls as 1/√reps."""
    p, sol, ew, pts = small
    rates, draws, poachers = _sources(sol)
    copies = 8
    many = pts.repeat(copies)
    wf, vf = PlantedW(p, ew, 1.0), TableValue(sol.space, sol.v)
    spread = {}
    for reps in (1, 4):
        gen = torch.Generator().manual_seed(10 + reps)
        y = worker_targets(wf, vf, p, many, rates, draws, poachers, gen, reps=reps).view(copies, -1).numpy()
        spread[reps] = np.sqrt(y.var(0, ddof=1).mean())  # pooled over the points: ~70 degrees of freedom
    assert 0.3 < spread[4] / spread[1] < 0.75, spread  # 1/√4 = 0.5
    with pytest.raises(ValueError, match="reps"):
        worker_targets(wf, vf, p, pts, rates, draws, poachers, torch.Generator(), reps=0)


def test_the_state_scale_is_each_workers_own_value_or_u():
    p = load_config(["conf=exact_small"]).economy
    h = torch.tensor([[0.7, 1.4], [1.0, 1.0], [1.4, 0.7]], dtype=torch.float64)
    states = FirmBatch(torch.ones(3), torch.ones(3), h, torch.ones_like(h), torch.ones_like(h, dtype=torch.bool))
    pts = WorkerPoints(states, torch.tensor([1, 0, 0]), torch.zeros_like(h))
    y = torch.tensor([-50.0, 0.1, 30.0], dtype=torch.float64)
    u = p.unemployment_coef * torch.tensor([1.4, 1.0, 1.4], dtype=torch.float64)  # the tracked workers' U(h)
    assert 1.0 < float(u[1]) < 30.0  # the middle worker is scaled by U, the others by |y|
    torch.testing.assert_close(_target_scale(p, pts, y), torch.maximum(y.abs(), u), rtol=1e-14, atol=0)


@pytest.mark.parametrize(("loss", "memory"), [("batch", 1), ("state", 1), ("state", 0)])
def test_fitting_the_targets_removes_a_planted_error(small, loss, memory):
    """Each round tracks a different half of the workers; with ``memory=0`` the last fit pools both rounds'
    targets, the first drawn under the planted network, the second under the network the first fit left: both
    estimate the exact W, so a mismatch of targets and workers in the pool would leave the error in place."""
    p, sol, ew, pts = small
    rates, draws, poachers = _sources(sol)
    wf = PlantedW(p, ew, 1.0)
    half = pts.slot.numel() // 2

    def points(g: torch.Generator) -> WorkerPoints:
        return pts.index(torch.randperm(pts.slot.numel(), generator=g)[:half])

    out = fit_worker_targets(
        wf, TableValue(sol.space, sol.v), p, points, rates, draws, poachers, torch.Generator().manual_seed(1),
        rounds=2, steps=150, lr=0.05, batch_size=64, loss=loss, memory=memory,
    )  # fmt: skip
    assert abs(float(wf.theta)) < 0.25, float(wf.theta)
    assert out["w_chain_rounds"] == 2 and out["w_chain_target_seconds"] > 0
    assert out["w_chain_pool"] == (2 if memory == 0 else 1) * half
    with pytest.raises(ValueError, match="loss"):
        fit_worker_targets(
            wf, TableValue(sol.space, sol.v), p, lambda g: pts, rates, draws, poachers, torch.Generator(),
            rounds=1, steps=1, lr=0.05, loss="per-worker",
        )  # fmt: skip
    with pytest.raises(ValueError, match="memory"):
        fit_worker_targets(
            wf, TableValue(sol.space, sol.v), p, lambda g: pts, rates, draws, poachers, torch.Generator(),
            rounds=1, steps=1, lr=0.05, memory=-1,
        )  # fmt: skip


def test_the_pool_keeps_the_last_memory_sets(small):
    """Three rounds of one worker set each: the last fit pools 1, 2 or all 3 sets as ``memory`` says."""
    p, sol, ew, pts = small
    rates, draws, poachers = _sources(sol)
    one = pts.index(torch.arange(4))
    for memory, pooled in ((1, 1), (2, 2), (0, 3), (5, 3)):
        out = fit_worker_targets(
            PlantedW(p, ew, 1.0), TableValue(sol.space, sol.v), p, lambda g: one, rates, draws, poachers,
            torch.Generator().manual_seed(2), rounds=3, steps=0, lr=0.05, memory=memory,
        )  # fmt: skip
        assert out["w_chain_pool"] == pooled * 4, (memory, out)


def test_bargaining_wages_span_each_workers_bargaining_set(small):
    """``bargaining_wages`` under the exact W and V: every pair's draws lie between the wage at ``W = U`` and the wage
    at ``W = U + Δ``, widened by the margin on both sides, and are uniform across that range."""
    from lotj.accuracy.worker_market import MIN_SET_WIDTH, bargaining_wages

    p, sol, ew, _ = small
    curve, prob = ew.curve, ew.curve.problem
    pair = np.arange(len(prob.pairs))
    assert (prob.delta > 0).all()  # every pair of exact_small has a bargaining set: the least width never binds
    lo = curve.invert(pair, prob.u)
    width = np.maximum(curve.invert(pair, prob.u + np.maximum(prob.delta, 0.0)) - lo, MIN_SET_WIDTH * prob.u)
    batch, slot = pair_batch(curve, pair)
    rows = torch.arange(batch.batch_size)
    wages = torch.zeros(batch.h.shape, dtype=torch.float64)
    wages[rows, torch.as_tensor(slot)] = torch.as_tensor(p.b * batch.h[rows, torch.as_tensor(slot)])
    reps = 12
    pts = WorkerPoints(batch, torch.as_tensor(slot), wages).repeat(reps)
    wf, vf = table_worker_value_function(curve), sol.value_function()
    for margin in (0.0, 0.25):
        w = bargaining_wages(wf, vf, p, pts, margin, torch.Generator().manual_seed(3)).numpy()
        f = (w.reshape(reps, -1) - lo) / width  # position in the set: 0 at W = U, 1 at W = U + Δ⁺
        assert f.min() >= -margin - 1e-6 and f.max() <= 1 + margin + 1e-6, (f.min(), f.max())
        u = (f + margin) / (1 + 2 * margin)  # uniform on [0, 1]
        assert abs(u.mean() - 0.5) < 0.03 and abs((u < 0.25).mean() - 0.25) < 0.04, (u.mean(), (u < 0.25).mean())


def test_tracked_workers_take_a_share_of_bargaining_set_wages(small):
    """``tracked_points`` on a market of every occupied exact_small state, no margin: with ``bargaining=1`` every
    tracked worker's exact W lies in ``[U, U + Δ]``; from the flow range alone some do not (the check can fail);
    a share outside ``[0, 1]``, or a share without the W network, is refused."""
    from lotj.accuracy.worker_market import tracked_points
    from lotj.economy.surplus import surplus
    from lotj.sim.distributions import EconomySnapshot
    from lotj.sim.market import Market

    p, sol, ew, _ = small
    space = sol.space
    firms = space.firm_batch(np.repeat(np.nonzero(space.size > 0)[0], 4))
    market = Market(p, seed=0, heldout_fraction=0.2, exact_sums=True)
    market.refresh(EconomySnapshot(firms, torch.tensor([1.0, 1.4]), torch.tensor([1.0, 1.0])))
    wf, vf = table_worker_value_function(ew.curve), sol.value_function()

    def band(share: float) -> torch.Tensor:
        source = tracked_points(
            market, vf, 200, wage_range="flow", wage_margin=0.0, device=torch.device("cpu"), dtype=torch.float64,
            wf=wf, bargaining=share,
        )  # fmt: skip
        pts = source(torch.Generator().manual_seed(4))
        rows = torch.arange(pts.slot.numel())
        u = p.unemployment_coef * pts.states.h[rows, pts.slot]
        d = surplus(vf, p, pts.states)[rows, pts.slot]
        return (_w_of(wf, pts) - u) / d  # 0 at W = U, 1 at W = U + Δ

    inside = band(1.0)
    assert inside.numel() > 100 and float(inside.min()) > -1e-6 and float(inside.max()) < 1 + 1e-6
    outside = band(0.0)
    assert bool(((outside < -0.01) | (outside > 1.01)).any())
    for share, wf_given in ((1.5, wf), (0.5, None)):
        with pytest.raises(ValueError, match="bargaining"):
            tracked_points(
                market, vf, 8, wage_range="flow", wage_margin=0.0, device=torch.device("cpu"), dtype=torch.float64,
                wf=wf_given, bargaining=share,
            )  # fmt: skip
