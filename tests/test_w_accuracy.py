"""The a posteriori error estimate of W and the wages (lotj.accuracy.worker_chains, lotj.accuracy.wage_error;
docs/accuracy.md): checked where the truth is known, the exact W of exact_small."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lotj.accuracy.exact_check import TableValue, exact_meeting_draws, exact_rates
from lotj.accuracy.wage_error import GROUPS, reset_events, w_error_figures, wage_certify, wage_error_figures
from lotj.accuracy.wage_validation import systematic_poachers, w_estimator_check
from lotj.accuracy.worker_chains import worker_chain_errors
from lotj.config import load_config
from lotj.economy.firms import FirmBatch
from lotj.economy.wages import Reset
from lotj.economy.worker_value import SetFunctionWorkerValue
from lotj.exact import solve_equilibrium
from lotj.exact.table import table_worker_value_function
from lotj.validate.report import build_report, format_report
from lotj.validate.wages import exact_wage_solution, pair_batch, wage_grid


@pytest.fixture(scope="module")
def small():
    cfg = load_config(["conf=exact_small"])
    sol = solve_equilibrium(cfg.economy)
    return cfg.economy, sol, exact_wage_solution(sol)


def _planted_w(p, ew, c: float = 0.01) -> SetFunctionWorkerValue:
    """The exact W plus a smooth planted error ``c · U(h_i) · (1 + 0.2 n) · z`` (growing with the firm's size
    and productivity)."""
    exact = table_worker_value_function(ew.curve)

    def fn(h, a, w, z, q, h_co, a_co, m_co):
        n = m_co.sum(-1).to(h.dtype) + 1
        return exact.fn(h, a, w, z, q, h_co, a_co, m_co) + c * p.unemployment_coef * h * (1 + 0.2 * n) * z

    return SetFunctionWorkerValue(fn)


def test_chains_find_a_planted_w_error_state_by_state(small):
    # W_exact + g under the exact V: the error is g wherever the planted error moves no W across a reset
    # threshold (wages in the middle of each bargaining set); each state's mean over 40 chains within five
    # standard errors (plus 10% of g: the states share each step's poachers) of g
    p, sol, ew = small
    pair, wage = wage_grid(ew.curve, points=3, margin=0.0)
    mid = np.arange(1, len(pair), 3)[::12]  # the middle of the bargaining set of every 12th pair
    pair, wage = pair[mid], wage[mid]
    batch, slot = pair_batch(ew.curve, pair)
    reps = 40
    draws = exact_meeting_draws(sol.space, sol.market, sol.v)
    res = worker_chain_errors(
        _planted_w(p, ew),
        TableValue(sol.space, sol.v),
        p,
        FirmBatch.cat([batch] * reps),
        torch.as_tensor(slot).repeat(reps),
        torch.as_tensor(wage).repeat(reps),
        exact_rates(sol.market),
        lambda g: draws,
        systematic_poachers(sol.space, sol.market, 256),
        torch.Generator().manual_seed(0),
    )
    e = res.error.view(reps, -1).numpy()
    rows = np.arange(len(pair))
    h, n = batch.h[rows, slot].numpy(), batch.mask.sum(-1).numpy()
    g = 0.01 * p.unemployment_coef * h * (1 + 0.2 * n) * batch.z.numpy()
    mean, se = e.mean(0), e.std(0, ddof=1) / math.sqrt(reps)
    assert np.all(np.abs(mean - g) <= 5 * se + 0.1 * g)
    assert abs(mean.mean() / g.mean() - 1) < 0.1


def test_w_error_figures_by_hand():
    e1 = torch.tensor([0.01, -0.02, 0.03])
    e2 = torch.tensor([0.03, -0.02, 0.01])
    scale = torch.tensor([1.0, 2.0, 1.0])
    f = w_error_figures(e1, e2, scale)
    assert f["w_error_mean"] == pytest.approx((0.02 + 0.01 + 0.02) / 3)
    assert f["w_error_signed"] == pytest.approx((0.02 - 0.01 + 0.02) / 3)
    assert f["w_error_rms"] == pytest.approx(math.sqrt((3e-4 + 1e-4 + 3e-4) / 3))


def test_wage_error_figures_and_the_rule():
    # wage error share = |(e1 + e2)/2 / slope| / |median|, rate-weighted within each group
    cause = np.array([int(x) for x in (Reset.HIRE, Reset.HIRE, Reset.COUNTER_OFFER, Reset.RENEG_CUT)] * 2)
    weight = np.array([1.0, 3.0, 1.0, 1.0] * 2)
    e = np.array([0.02, 0.04, 0.01, -0.03] * 2)
    slope = np.array([2.0, 4.0, 1.0, 3.0] * 2)
    f = wage_error_figures(cause, weight, e, e, slope, median_wage=-2.0)
    assert f["wage_error_hire_mean"] == pytest.approx((1 * 0.005 + 3 * 0.005) / 4)
    assert f["wage_error_counter_mean"] == pytest.approx(0.005)
    assert f["wage_error_counter_rms"] == pytest.approx(0.005)
    assert f["wage_error_reneg_mean"] == pytest.approx(0.005)
    assert f["wage_error_poach_mean"] is None and f["wage_error_poach_events"] == 0
    assert f["wage_error_events"] == 8
    # no events in a group does not block the rule; a bound above the tolerance does, and so does a group
    # with one event (no standard error)
    assert wage_certify(f, 0.01) == "converged"
    f["wage_error_counter_upper"] = 0.02
    assert wage_certify(f, 0.01) == "not converged"
    assert wage_certify({}, 0.01) == "not converged"
    one = wage_error_figures(cause[:4], weight[:4], e[:4], e[:4], slope[:4], median_wage=-2.0)
    assert one["wage_error_counter_upper"] is None and wage_certify(one, 0.01) == "not converged"
    assert set(GROUPS) == {"hire", "poach", "counter", "reneg"}


def test_the_estimators_agree_with_a_planted_w_error(small):
    # the validation's comparison with W_exact + g: the W error and every group's wage error agree
    p, sol, ew = small
    out = w_estimator_check(_planted_w(p, ew), sol.value_function(), sol, ew, points=3, reps=1, max_resets=60)
    assert out["agrees"], out
    assert out["true_mean"] == pytest.approx(out["true_mean_vs_exact_w"])
    for group in ("hire", "poach", "counter", "reneg"):
        assert out["wages"][group]["agrees"], (group, out["wages"][group])
    # the validation report prints it beside V's estimator
    stats = {k: 1.0 for k in ("e", "omega", "mean_size", "en_rate", "ne_rate")}
    report = build_report(load_config(["conf=exact_small"]), sol.value_function(), sol, stats)
    report["w_estimator"] = out
    assert "W error estimator" in format_report(report) and "DISAGREES" not in format_report(report)


def test_reset_events_follow_the_wage_ladder(small):
    # at every occupied state of exact_small, each worker at a wage drawn from [-5, 3] (around its bargaining
    # set): every cause occurs; a hire and a raise target U of the worker in the event's slot, a counter-offer
    # and a cut at least U; separations set no wage
    p, sol, ew = small
    space = sol.space
    wf, vf = table_worker_value_function(ew.curve), sol.value_function()
    occupied = np.nonzero(space.size > 0)[0]
    s = space.firm_batch(np.tile(occupied, 3))
    gen = torch.Generator().manual_seed(1)
    w = torch.where(s.mask, -5.0 + 8.0 * torch.rand(s.h.shape, generator=gen, dtype=torch.float64), 0.0)
    poachers = space.firm_batch(np.nonzero(sol.market.pi > 0)[0])
    unmatched = (torch.as_tensor(space.h), torch.as_tensor(space.a))
    ev = reset_events(wf, vf, p, s, w, exact_rates(sol.market), unmatched, poachers, gen)
    codes = ev.cause.numpy()
    rows = torch.arange(ev.count)
    u_slot = (p.unemployment_coef * ev.states.h[rows, ev.slot]).numpy()
    assert ev.states.mask[rows, ev.slot].all()
    for code in (Reset.HIRE, Reset.RENEG_RAISE, Reset.COUNTER_OFFER, Reset.RENEG_CUT, Reset.POACHED):
        assert (codes == int(code)).sum() > 0, code
    np.testing.assert_allclose(ev.target.numpy()[codes == int(Reset.HIRE)], u_slot[codes == int(Reset.HIRE)])
    np.testing.assert_allclose(
        ev.target.numpy()[codes == int(Reset.RENEG_RAISE)], u_slot[codes == int(Reset.RENEG_RAISE)]
    )
    assert not np.isin(codes, [int(Reset.SEPARATE), int(Reset.NONE)]).any() and (ev.weight > 0).all()
    up = np.isin(codes, [int(Reset.RENEG_RAISE), int(Reset.COUNTER_OFFER)])
    assert (ev.target.numpy()[up] >= u_slot[up] - 1e-12).all()
    cut = codes == int(Reset.RENEG_CUT)
    assert (ev.target.numpy()[cut] >= u_slot[cut]).all()
