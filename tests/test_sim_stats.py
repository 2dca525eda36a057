"""Statistics of the simulated economy (MODEL.md sections 3, 10) and the convergence rule."""

from __future__ import annotations

import math

import pytest
import torch
from reference import crowding_value

from lotj.economy.params import EconomyParams, meeting_rates
from lotj.economy.value import SetFunctionValue
from lotj.sim.convergence import CONVERGED, NOT_CONVERGED, ConvergenceTracker, change, size_drift
from lotj.sim.simulator import Simulator
from lotj.sim.stats import Accumulator, lower_quantile, summarise


def test_lower_quantiles_of_a_histogram():
    hist = torch.tensor([0.0, 5.0, 3.0, 1.0, 1.0])  # sizes 0..4
    assert lower_quantile(hist, 0.5) == 1  # 5 of 10 at size 1: the cumulative share reaches 0.5 there
    assert lower_quantile(hist, 0.9) == 3
    assert math.isnan(lower_quantile(torch.zeros(3), 0.5))


def test_one_sample_window_equals_the_cross_section():
    p = EconomyParams(n_max=8)
    sim = Simulator(p, 300, 0.05, seed=1)
    sim.advance(SetFunctionValue(crowding_value(p)), 2.0)
    sizes = sim.pop.sizes()
    employed = sim.pop.employed()
    acc = Accumulator(p.n_max, "cpu")
    acc.sample(sizes, employed, sim.pop.h)
    st = summarise(acc, p)
    e = float(employed.double().mean())
    assert st.e == pytest.approx(e)
    rates = meeting_rates(p, e, 1.0 + float(sizes.double().mean()))
    assert (st.omega, st.s_n, st.s_e) == pytest.approx((rates.omega, rates.s_n, rates.s_e))
    # ω clears the meeting market: ω ∫(1 + n) dχ = N_w [e ψ^E + (1 − e) ψ^N]
    assert st.omega * (1 + sizes.double().mean()) == pytest.approx(p.n_w * (e * p.psi_e + (1 - e) * p.psi_n))
    active = sizes[sizes > 0].double()
    assert st.firm_size_mean == pytest.approx(float(active.mean()))
    assert st.firm_size_p50 == float(torch.quantile(active, 0.5, interpolation="lower"))
    assert st.firm_size_p90 == pytest.approx(float(active.sort().values[math.ceil(0.9 * active.numel()) - 1]))
    assert st.firm_size_share_at_cap == pytest.approx(float((active == p.n_max).double().mean()))
    lh = torch.log(sim.pop.h)
    assert st.mean_log_h_employed == pytest.approx(float(lh[employed].mean()))
    assert st.var_log_h_employed == pytest.approx(float(lh[employed].var(unbiased=False)))
    assert st.mean_log_h_unmatched == pytest.approx(float(lh[~employed].mean()))
    assert st.var_log_h_unmatched == pytest.approx(float(lh[~employed].var(unbiased=False)))
    assert st.mean_log_h == pytest.approx(float(lh.mean()))


def test_window_statistics_average_the_steps():
    p = EconomyParams(n_max=8)
    sim = Simulator(p, 200, 0.05, seed=2)
    vf = SetFunctionValue(crowding_value(p))
    shares = []
    for _ in range(10):
        shares.append(float(sim.pop.employed().double().mean()))
        sim.run_steps(vf, 1)
    st = sim.statistics()  # the window of the steps run since construction
    assert st.years == pytest.approx(10 * 0.05)
    assert st.e == pytest.approx(sum(shares) / len(shares))


def test_change_is_relative_except_for_log_points():
    assert change("e", 0.702, 0.7) == pytest.approx(0.002 / 0.7)
    assert change("mean_log_h", 0.03, 0.01) == pytest.approx(0.02)
    assert change("omega", 1.0, math.nan) == math.inf


def test_convergence_needs_patience_and_the_residual():
    tr = ConvergenceTracker(sim_tol=0.01, solver_tol=1e-3, patience=2, drift_window=2)
    base = {"e": 0.7, "omega": 1.0, "firm_size_mean": 5.0, "firm_size_se": 0.1, "mean_log_h": 0.1}
    assert not tr.update(base, 1e-4)  # first refresh: nothing to compare
    assert not tr.update({**base, "e": 0.701}, 1e-4)  # streak 1
    assert not tr.update({**base, "e": 0.702}, 5e-3)  # streak 2 but residual too large
    assert tr.status == NOT_CONVERGED
    assert tr.update({**base, "e": 0.703}, 5e-4)  # streak 3, residual below tolerance
    assert tr.status == CONVERGED
    tr2 = ConvergenceTracker(sim_tol=0.01, solver_tol=1e-3, patience=2, drift_window=2)
    for e in (0.7, 0.701, 0.75, 0.751):  # a jump resets the streak
        done = tr2.update({**base, "e": e}, 1e-4)
    assert not done and tr2.streak == 1
    assert not tr2.update({**base, "e": 0.751}, None)  # residual not measured: never converged
    assert tr2.status == NOT_CONVERGED
    restored = ConvergenceTracker(sim_tol=0.01, solver_tol=1e-3, patience=2, drift_window=2)
    restored.load_state_dict(tr.state_dict())
    assert restored.state_dict() == tr.state_dict()


def test_a_drifting_firm_size_is_not_settled():
    """Mean size rising 0.9% a refresh: each change is below sim_tol = 2%, but over five refreshes the
    sizes lie up to about 0.09, 4.7 standard errors of 0.02, from their average: not settled. The same path
    with standard errors five times larger, or a stationary path with noise, settles."""
    base = {"e": 0.7, "omega": 1.0, "mean_log_h": 0.1}
    drifting = ConvergenceTracker(sim_tol=0.02, solver_tol=1.0, patience=3, drift_window=5)
    noisy = ConvergenceTracker(sim_tol=0.02, solver_tol=1.0, patience=3, drift_window=5)
    for k in range(8):
        drifting.update({**base, "firm_size_mean": 5.0 * 1.009**k, "firm_size_se": 0.02}, 0.1)
        noisy.update({**base, "firm_size_mean": 5.0 * 1.009**k, "firm_size_se": 0.1}, 0.1)
    assert drifting.streak >= 3 and not drifting.settled and drifting.status == NOT_CONVERGED
    assert drifting.last_drift == pytest.approx(2 * 5.0 * 1.009**5 * 0.009 / 0.02, rel=0.02)
    assert noisy.settled and noisy.status == CONVERGED
    # a stationary size with sampling noise of one standard error settles once the window is full
    flat = ConvergenceTracker(sim_tol=0.02, solver_tol=1.0, patience=3, drift_window=5)
    for k, eps in enumerate((0.3, -0.8, 1.1, -0.4, 0.6, -1.2)):
        flat.update({**base, "firm_size_mean": 6.0 + 0.05 * eps, "firm_size_se": 0.05}, 0.1)
        assert flat.settled == (k >= 4), k
    assert size_drift([1.0, 2.0], [0.1, 0.1], 5) == math.inf  # the window is not full yet


def test_the_mean_size_standard_error_by_hand():
    """Two firms of sizes 2 and 4 sampled at each of 10 steps: sd 1, two firms, SE = 1/sqrt(2)."""
    from lotj.sim.stats import _size_se

    active = torch.tensor([0.0, 10.0, 0.0, 10.0], dtype=torch.float64)  # sizes 1..4
    sizes = torch.arange(1, 5, dtype=torch.float64)
    assert _size_se(active, sizes, 10) == pytest.approx(1 / math.sqrt(2))


def test_simulation_runs_on_its_thread_count_and_restores_torchs():
    p = EconomyParams(n_max=8)
    sim = Simulator(p, 50, 0.05, seed=3, threads=1)
    seen = []

    class Probe:
        def value(self, s):
            seen.append(torch.get_num_threads())
            return crowding_value(p)(s.z, s.q, s.h, s.a, s.mask)

    torch.set_num_threads(2)
    try:
        sim.advance(Probe(), 1.0)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
