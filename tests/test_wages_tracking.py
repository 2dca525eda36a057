"""WageTracker on hand-made steps: each event resets the wage to the value of MODEL.md section 5."""

import math

import torch

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.technology import production
from lotj.economy.value import SetFunctionValue
from lotj.economy.worker_value import SetFunctionWorkerValue
from lotj.sim.distributions import EconomySnapshot
from lotj.sim.phases import WageDecisions
from lotj.sim.population import Population
from lotj.sim.wage_tracking import WageTracker, midpoint_target

P = EconomyParams(n_max=3)
U = P.unemployment_coef


def _value(z, q, h, a, mask):
    sum_u = U * torch.where(mask, h, torch.zeros_like(h)).sum(-1)
    return sum_u + production(z, h, mask, P.eta) / P.outflow_rate


def _worker(hi, ai, wi, z, q, h, a, mask):
    """Increasing in the wage, and depending on the coworkers (so that the firm state matters)."""
    co = torch.where(mask, h, torch.zeros_like(h)).sum(-1)
    return U * hi + (wi - P.b * hi) / 0.3 + 0.1 * co + 0.05 * torch.tanh(wi)


def _population():
    # firm 0: workers 0, 1; firm 1: worker 2; firm 2: empty; workers 3, 4 unmatched
    h = torch.tensor([[1.0, 1.2, 1.0], [0.9, 1.0, 1.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[True, True, False], [True, False, False], [False, False, False]])
    firms = FirmBatch(torch.tensor([1.5, 1.1, 2.0]), torch.ones(3), h, torch.ones(3, 3), mask)
    return Population.from_snapshot(EconomySnapshot(firms, torch.tensor([0.8, 1.1]), torch.ones(2)))


def _W(tracker, pop, seat):
    return float(tracker._values_at(pop, torch.tensor([seat]))[0])


def _no_events(pop):
    return WageDecisions(
        renegotiating=torch.zeros(pop.n_workers, dtype=torch.bool),
        delta_own=torch.zeros(pop.n_workers),
        worker=torch.zeros(0, dtype=torch.long),
        firm=torch.zeros(0, dtype=torch.long),
        employed=torch.zeros(0, dtype=torch.bool),
        is_open=torch.zeros(0, dtype=torch.bool),
        delta_k=torch.zeros(0),
    )


def _tracker(pop):
    return WageTracker(SetFunctionWorkerValue(_worker), SetFunctionValue(_value), P, pop, record=True)


def test_initial_wages_give_the_middle_of_the_bargaining_set():
    pop = _population()
    tr = _tracker(pop)
    emp = pop.employed()
    assert torch.isfinite(tr.wage[emp]).all() and torch.isnan(tr.wage[~emp]).all()
    vf = SetFunctionValue(_value)
    from lotj.economy.surplus import surplus

    delta = surplus(vf, P, pop.firm_batch())
    for seat in (0, 1, 2):
        d = delta[pop.firm[seat], pop.slot[seat]]
        assert math.isclose(_W(tr, pop, seat), float(midpoint_target(P, d, pop.h[seat])), rel_tol=1e-9)


def test_renegotiation_cut_and_raise():
    pop = _population()
    tr = _tracker(pop)
    tr.wage[0], tr.wage[1] = 5.0, -2.0  # far above and below the bargaining set
    ev = _no_events(pop)
    ev.renegotiating[[0, 1]] = True
    ev.delta_own[0], ev.delta_own[1] = 2.0, 2.5
    tr.on_decisions(pop, ev)
    tr.on_moves(pop)
    assert math.isclose(_W(tr, pop, 0), U * 1.0 + 2.0, rel_tol=1e-9)  # cut to U + Δ
    assert math.isclose(_W(tr, pop, 1), U * 1.2, rel_tol=1e-9)  # raised to U
    assert tr.counts["reneg_cut"] == 1 and tr.counts["reneg_raise"] == 1


def test_hire_poach_counter_offer_and_refused_offer():
    pop = _population()
    tr = _tracker(pop)
    w2 = float(tr.wage[2])
    W0 = _W(tr, pop, 0)
    ev = _no_events(pop)
    # seat 3 (unmatched) meets firm 2 and is hired; seat 0 meets firm 1 whose Δ_p = 9 > Δ_k = 2: poached;
    # seat 2 meets firm 0 (Δ_p = W2 − U + 0.5 < Δ_k = 5): counter-offer; seat 1 meets firm 2 with Δ_p = 7 > Δ_k = 1
    # but the simulator will refuse it (the firm filled up): no reset
    ev.worker = torch.tensor([0, 1, 2, 3])
    ev.firm = torch.tensor([1, 2, 0, 2])
    ev.employed = torch.tensor([True, True, True, False])
    ev.is_open = torch.tensor([True, True, True, True])
    W2 = _W(tr, pop, 2)
    ev.delta_k = torch.tensor([9.0, 7.0, W2 - U * 0.9 + 0.5, 3.0])
    ev.delta_own[[0, 1, 2]] = torch.tensor([2.0, 1.0, 5.0])
    tr.on_decisions(pop, ev)
    # the simulator's moves: seat 3 hired at firm 2, seat 0 moves to firm 1; seat 1's move is refused
    pop.attach(torch.tensor([3]), torch.tensor([2]), torch.tensor([0]))
    pop.detach(torch.tensor([0]))
    pop.attach(torch.tensor([0]), torch.tensor([1]), torch.tensor([1]))
    w1_before = float(tr.wage[1])
    tr.on_moves(pop)
    assert math.isclose(_W(tr, pop, 3), U * 0.8, rel_tol=1e-9)  # hired at U
    assert math.isclose(_W(tr, pop, 0), U * 1.0 + 2.0, rel_tol=1e-9)  # poached: Δ_k + U at the poacher
    # matched offer, solved at the decision state S; seat 0 joined seat 2's firm in the same step, which
    # moves W by this W's coworker term (the documented O(dt) effect of simultaneous events)
    log = tr.reset_log().set_index("seat")
    assert math.isclose(log.loc[2, "W_after"], W2 + 0.5, rel_tol=1e-9)
    assert math.isclose(_W(tr, pop, 2), W2 + 0.5 + 0.1 * float(pop.h[0]), rel_tol=1e-9)
    assert float(tr.wage[2]) > w2
    assert float(tr.wage[1]) == w1_before
    assert tr.counts["hire"] == 1 and tr.counts["poached"] == 1 and tr.counts["counter_offer"] == 1
    assert tr.counts["cap_refused"] == 1
    assert W0 != _W(tr, pop, 0)
    assert sorted(log["cause"]) == ["counter_offer", "hire", "poached"]


def test_separation_clears_the_wage_and_a_poacher_at_the_cap_changes_nothing():
    pop = _population()
    tr = _tracker(pop)
    w1 = float(tr.wage[1])
    ev = _no_events(pop)
    ev.renegotiating[0] = True
    ev.delta_own[0] = -1.0  # Δ < 0: the simulator separates the worker
    ev.worker, ev.firm = torch.tensor([1]), torch.tensor([1])
    ev.employed, ev.is_open = torch.tensor([True]), torch.tensor([False])  # the poacher is at the cap
    ev.delta_k = torch.tensor([50.0])
    ev.delta_own[1] = 0.5
    tr.on_decisions(pop, ev)
    pop.detach(torch.tensor([0]))
    tr.on_moves(pop)
    assert math.isnan(float(tr.wage[0]))
    assert float(tr.wage[1]) == w1
    assert sum(tr.reset_shares().values()) == 0.0


def test_worker_columns_markdown():
    pop = _population()
    tr = _tracker(pop)
    cols = tr.worker_columns(pop)
    emp = pop.employed()
    assert torch.isfinite(cols["W"][emp]).all() and torch.isnan(cols["W"][~emp]).all()
    assert torch.allclose(cols["markdown"][emp], cols["W"][emp] / cols["J"][emp])
    # J = V(S) − V(S⊖x_i) = U + marginal product / r̄ for this V
    s = pop.firm_batch(torch.tensor([0]))
    f = production(s.z, s.h, s.mask, P.eta)
    f_minus = production(s.z, s.h[:, [1]], s.mask[:, [1]], P.eta)
    assert math.isclose(float(cols["J"][0]), U * 1.0 + float(f - f_minus) / P.outflow_rate, rel_tol=1e-9)


def test_a_new_match_that_breaks_in_its_step_leaves_no_wage():
    """In a simulated run at a coarse step, hires from non-employment break later in their step (late
    breaks): at every step end the wage is set exactly for the employed workers."""
    from reference import accept_all_value

    from lotj.sim.simulator import Simulator
    from lotj.sim.wage_tracking import track_wages

    p = EconomyParams(n_max=6, delta_m=2.0, psi_n=3.0)
    sim = Simulator(p, 60, 0.25, seed=3)
    vf = SetFunctionValue(accept_all_value(p))
    tracker = track_wages(sim, SetFunctionWorkerValue(_worker), vf)
    late = []
    late_breaks = sim._late_breaks

    def counted(*args):
        before = int(sim.pop.employed().sum())
        late_breaks(*args)
        late.append(before - int(sim.pop.employed().sum()))

    sim._late_breaks = counted
    for _ in range(12):
        sim.run_steps(vf, 1)
        emp = sim.pop.employed()
        assert torch.isfinite(tracker.wage[emp]).all() and torch.isnan(tracker.wage[~emp]).all()
    assert sum(late) > 0
