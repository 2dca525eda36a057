"""Each event and decision rule of the simulator in isolation (MODEL.md sections 1–4, 10).

One process at a time is made certain within a step (rate·dt ≫ 1), the others are off, and the
state after one step is compared with what the rule in MODEL.md says for every worker.
"""

from __future__ import annotations

import math

import torch
from reference import accept_all_value

from lotj.economy.params import EconomyParams
from lotj.economy.technology import learning_step
from lotj.economy.value import SetFunctionValue
from lotj.sim.simulator import Simulator

OFF = dict(delta_r=0.0, delta_f=0.0, delta_m=0.0, lam=0.0, gamma_e=0.0, psi_e=0.0, psi_n=0.0)
CERTAIN = 1e4  # rate·dt = 100: the event happens within the step with probability 1 − e^-100


def params(n_max: int = 16, **rates: float) -> EconomyParams:
    return EconomyParams(n_max=n_max, **{**OFF, **rates})


def per_worker(p: EconomyParams, bonus):
    """V(S) = Σ_i (U(h_i) + bonus(h_i)): Δ(S, x_i) = Δ(S⊕x_i, x_i) = bonus(h_i)."""
    u = p.unemployment_coef

    def fn(z, q, h, a, mask):
        return torch.where(mask, u * h + bonus(h), torch.zeros_like(h)).sum(-1)

    return SetFunctionValue(fn)


def before(sim: Simulator) -> dict:
    pop = sim.pop
    return {k: getattr(pop, k).clone() for k in ("worker_id", "h", "a", "firm", "slot", "firm_id", "z", "q")}


def test_renegotiation_separates_exactly_the_negative_surplus_matches():
    p = params(lam=CERTAIN)
    sim = Simulator(p, 200, 0.01, seed=1)
    old = before(sim)
    sim.run_steps(per_worker(p, lambda h: h - 1.0), 1)  # Δ = h − 1
    sim.pop.check()
    was = old["firm"] >= 0
    neg = old["h"] < 1.0
    assert bool((sim.pop.firm[was & neg] == -1).all())
    assert bool((sim.pop.firm[was & ~neg] == old["firm"][was & ~neg]).all())
    assert bool((sim.pop.slot[was & ~neg] == old["slot"][was & ~neg]).all())
    assert bool((sim.pop.firm[~was] == -1).all())
    c = sim.statistics().counts
    assert c["reneg_separations"] == int((was & neg).sum()) > 0
    assert c["reneg_shocks"] == int(was.sum())


def test_unmatched_worker_is_hired_iff_hire_surplus_is_positive():
    p = params(n_max=64, psi_n=CERTAIN)
    sim = Simulator(p, 300, 0.01, seed=2)
    old = before(sim)
    sim.run_steps(per_worker(p, lambda h: h - 1.0), 1)  # Δ(S⊕x, x) = h − 1
    sim.pop.check()
    un = old["firm"] < 0
    pos = old["h"] > 1.0
    assert bool((sim.pop.firm[un & pos] >= 0).all())  # the cap (64) cannot bind here
    assert bool((sim.pop.firm[un & ~pos] == -1).all())
    assert bool((sim.pop.firm[~un] == old["firm"][~un]).all())  # employed workers had no event
    c = sim.statistics().counts
    assert c["hires"] == int((un & pos).sum()) > 0
    assert c["cap_blocked"] == c["cap_refused"] == 0


def test_poaching_moves_workers_up_the_ladder_and_only_when_the_poacher_gains():
    p = params(n_max=64, psi_e=CERTAIN)
    sim = Simulator(p, 300, 0.01, seed=3)
    old = before(sim)
    z_before = torch.where(old["firm"] >= 0, old["z"][old["firm"].clamp_min(0)], torch.zeros_like(old["h"]))
    sim.run_steps(SetFunctionValue(accept_all_value(p, c=1.0, eps=0.5)), 1)  # Δ at firm k = 1 + 0.5 log z_k > 0
    sim.pop.check()
    was = old["firm"] >= 0
    assert bool((sim.pop.firm[was] >= 0).all())  # Δ > 0: no one separates
    z_after = sim.pop.z[sim.pop.firm[was]]
    moved = sim.pop.firm[was] != old["firm"][was]
    assert bool((z_after >= z_before[was]).all())
    assert bool((z_after[moved] > z_before[was][moved]).all())
    c = sim.statistics().counts
    assert c["poaches"] == int(moved.sum()) > 0
    assert c["meetings_e"] + c["void_meetings"] == int(was.sum())
    assert bool((sim.pop.firm[~was] == -1).all())  # unmatched workers had no event


def test_negative_surplus_at_a_meeting_sends_the_worker_to_non_employment_even_at_the_cap():
    p = params(n_max=2, psi_e=CERTAIN)
    sim = Simulator(p, 200, 0.01, seed=4, initial_mean_size=50.0)  # Poisson(50) capped at 2: every firm full
    assert bool((sim.pop.sizes() == 2).all())
    sim.run_steps(per_worker(p, lambda h: -torch.ones_like(h)), 1)  # Δ = −1 everywhere: no offers either
    sim.pop.check()
    c = sim.statistics().counts
    assert c["cap_blocked"] == c["meetings_e"] > 0  # every destination is at the cap
    assert c["meeting_separations"] == c["meetings_e"]
    assert int(sim.pop.employed().sum()) == c["void_meetings"]  # only void meetings keep their job
    assert c["hires"] == c["poaches"] == 0


def test_a_firm_at_the_cap_makes_no_offer_and_arrivals_never_exceed_it():
    p = params(n_max=3, psi_n=CERTAIN)
    sim = Simulator(p, 300, 0.01, seed=5, initial_mean_size=2.0)
    full = sim.pop.sizes() == 3
    old_seats = sim.pop.slot_worker[full].clone()
    sim.run_steps(SetFunctionValue(accept_all_value(p)), 1)
    sim.pop.check()
    assert bool((sim.pop.sizes() <= 3).all())
    assert torch.equal(sim.pop.slot_worker[full], old_seats)  # full firms received nobody
    c = sim.statistics().counts
    assert c["cap_blocked"] > 0 and c["cap_refused"] > 0
    assert c["hires"] + c["cap_blocked"] + c["cap_refused"] == c["meetings_n"]


def test_learning_applies_H_to_the_whole_firm_and_not_to_unmatched_workers():
    p = params(gamma_e=100.0)  # γ^E·dt = 1: every firm learns in the step
    sim = Simulator(p, 100, 0.01, seed=6)
    s = sim.pop.firm_batch()
    expected = learning_step(s.h, s.a, s.q, s.mask, p.theta_plus, p.theta_minus)
    h_un = sim.pop.h[sim.pop.firm < 0].clone()
    sim.run_steps(SetFunctionValue(accept_all_value(p)), 1)
    after = sim.pop.firm_batch()
    torch.testing.assert_close(after.h[after.mask], expected[s.mask])
    assert torch.equal(sim.pop.h[sim.pop.firm < 0], h_un)
    assert sim.statistics().counts["learning"] == 100


def test_firm_death_unmatches_its_workers_and_brings_a_newborn_empty_firm():
    p = params(delta_f=CERTAIN)
    sim = Simulator(p, 100, 0.01, seed=7)
    old = before(sim)
    sim.run_steps(SetFunctionValue(accept_all_value(p)), 1)
    sim.pop.check()
    assert int(sim.pop.employed().sum()) == 0
    assert torch.equal(sim.pop.h, old["h"])  # off the job h is unchanged
    assert not bool(torch.isin(sim.pop.firm_id, old["firm_id"]).any())
    assert not bool((sim.pop.z == old["z"]).any())


def test_retirement_replaces_the_worker_by_a_new_unmatched_one():
    p = params(delta_r=CERTAIN)
    sim = Simulator(p, 100, 0.01, seed=8)
    old = before(sim)
    sim.run_steps(SetFunctionValue(accept_all_value(p)), 1)
    sim.pop.check()
    assert sim.pop.n_workers == old["h"].numel() == round(p.n_w * 100)
    assert not bool(torch.isin(sim.pop.worker_id, old["worker_id"]).any())
    assert int(sim.pop.employed().sum()) == 0
    assert int(sim.pop.sizes().sum()) == 0


def test_match_break_takes_priority_over_a_shock_in_the_same_step():
    p = params(delta_m=CERTAIN, lam=CERTAIN, psi_e=CERTAIN)
    sim = Simulator(p, 100, 0.01, seed=9)
    h0 = sim.pop.h.clone()
    sim.run_steps(per_worker(p, lambda h: h - 1.0), 1)
    c = sim.statistics().counts
    assert int(sim.pop.employed().sum()) == 0
    assert c["reneg_shocks"] == c["meetings_e"] == c["poaches"] == 0
    assert torch.equal(sim.pop.h, h0)


def test_all_rates_zero_change_nothing():
    p = params()
    sim = Simulator(p, 150, 0.02, seed=10)
    old = before(sim)
    sim.advance(SetFunctionValue(accept_all_value(p)), 3.0)
    for k, v in old.items():
        assert torch.equal(getattr(sim.pop, k), v), k
    st = sim.statistics()
    assert all(v == 0 for k, v in st.counts.items())
    assert st.en_rate == 0.0 and st.ne_rate == 0.0
    assert math.isclose(st.omega, 0.0) and math.isclose(st.s_n, 0.0)
