"""The exact V satisfies the V equation of MODEL.md section 4, checked by an independent evaluation.

The residual here is built from the padded-batch economics of lotj.economy (FirmBatch, production,
the Δ and B formulas of lotj.economy.surplus) and a value lookup of its own (a dict keyed by the
firm's (z, q) and its sorted workers), not from the solver's index maps or linear system: every
expectation is an explicit sum over unmatched worker types (weights χ^N) and over every employed
worker of every firm state (weights χ(S_p) / E per worker).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lotj.config import load_config
from lotj.economy.params import EconomyParams, meeting_rates
from lotj.economy.surplus import hire_surplus_from_values, own_surplus_from_values, poach_gain
from lotj.economy.technology import production
from lotj.economy.value import SetFunctionValue
from lotj.exact import solve_equilibrium
from lotj.exact.bellman import Policies, Surpluses, hjb_residual, relative_residual, solve_values
from lotj.exact.market import Distribution, Market
from lotj.exact.states import StateSpace


def _key(z, q, h, a, m) -> tuple:
    return (
        round(float(z), 12),
        round(float(q), 12),
        tuple(sorted((round(float(x), 12), round(float(y), 12)) for x, y, k in zip(h, a, m) if k)),
    )


def _lookup_value(space: StateSpace, v: np.ndarray) -> SetFunctionValue:
    batch = space.firm_batch()
    table = {
        _key(batch.z[i], batch.q[i], batch.h[i], batch.a[i], batch.mask[i]): float(v[i]) for i in range(space.n_states)
    }

    def fn(z, q, h, a, mask):
        rows = [table.get(_key(z[i], q[i], h[i], a[i], mask[i]), 0.0) for i in range(len(z))]
        return torch.tensor(rows, dtype=torch.float64)

    return SetFunctionValue(fn)


def independent_residual(p: EconomyParams, space: StateSpace, dist: Distribution, v: np.ndarray) -> np.ndarray:
    """ρV(S) minus the right side of MODEL.md section 4's V equation, at every state."""
    vf = _lookup_value(space, v)
    s = space.firm_batch()
    n = s.size()
    val = vf.value(s)
    own = own_surplus_from_values(p, s, val, vf.removal_values(s))  # Δ(S, x_i), [N, n_max]
    u_coef = p.unemployment_coef
    chi, u = torch.as_tensor(dist.chi), torch.as_tensor(dist.u)
    employed = float((chi * n).sum())
    rates = meeting_rates(p, employed / p.n_w, float((chi * (n + 1)).sum()))
    below = (n < p.n_max).double()
    meet = (n + 1) * rates.omega * below

    # meet unmatched: every worker type, weight χ^N
    h_types, a_types = torch.as_tensor(space.h), torch.as_tensor(space.a)
    hire = hire_surplus_from_values(p, val, vf.addition_values(s, h_types, a_types), h_types)  # [N, J]
    meet_n = (hire.clamp_min(0.0) * (u / u.sum())).sum(1)

    # meet employed: every worker (slot) of every firm state S_p, weight χ(S_p)/E
    rows, slots = torch.nonzero(s.mask, as_tuple=True)
    h_e, a_e = s.h[rows, slots], s.a[rows, slots]
    weight = chi[rows] / employed
    hire_e = hire_surplus_from_values(p, val, vf.addition_values(s, h_e, a_e), h_e)  # [N, W]
    gain = poach_gain(hire_e, own[rows, slots].unsqueeze(0))
    meet_e = (gain * weight).sum(1)

    removal = vf.removal_values(s)
    uw = u_coef * s.h
    per_worker = (p.delta_r + p.delta_m) * (removal - val.unsqueeze(1)) + p.delta_m * uw
    per_worker = per_worker + (p.lam + p.psi_e) * (-own).clamp_min(0.0)
    workers = torch.where(s.mask, per_worker, torch.zeros_like(per_worker)).sum(1)
    sum_u = torch.where(s.mask, uw, torch.zeros_like(uw)).sum(1)
    rhs = (
        production(s.z, s.h, s.mask, p.eta)
        - p.delta_f * (val - sum_u)
        + meet * (rates.s_n * meet_n + rates.s_e * meet_e)
        + workers
    )
    return (p.rho * val - rhs).numpy()


@pytest.fixture(scope="module")
def small():
    p = load_config(["conf=exact_small"]).economy
    return p, solve_equilibrium(p)


def test_exact_v_satisfies_its_hjb_in_an_independent_evaluation(small):
    p, sol = small
    res = independent_residual(p, sol.space, sol.dist, sol.v)
    assert np.abs(res).max() / (p.rho * np.abs(sol.v).max()) < 1e-10
    # and the solver's own residual agrees with the independent one
    own = hjb_residual(sol.space, p, sol.market, sol.v)
    assert np.abs(own + res).max() / (p.rho * np.abs(sol.v).max()) < 1e-10


def test_a_perturbed_v_fails_the_independent_residual(small):
    p, sol = small
    bumped = sol.v * (1 + 1e-4 * np.cos(np.arange(sol.n_states)))
    res = independent_residual(p, sol.space, sol.dist, bumped)
    assert np.abs(res).max() / (p.rho * np.abs(sol.v).max()) > 1e-6


def test_every_decision_kind_is_active_in_the_preset(small):
    """The check covers every term: hiring, poaching and (off the equilibrium path) separations."""
    _, sol = small
    visited = sol.dist.chi > 1e-12
    assert sol.policies.hire[visited].any()
    assert sol.policies.poach[visited].any()
    assert sol.market.s_n > 0 and sol.market.s_e > 0


def test_policy_iteration_reaches_the_fixed_point_from_no_decisions():
    """Given a distribution, policy iteration from "no hire, no poach, no separation" ends with
    decisions that V itself implies, and the residual with every max term is at rounding level."""
    p = load_config(["conf=exact_small"]).economy
    space = StateSpace.from_params(p)
    rng = np.random.default_rng(3)
    chi = rng.random(space.n_states) * (space.size <= 2)
    chi *= 0.5 / (chi @ space.size)  # half a worker per firm employed, N_w = 1
    deficit = 1.0 - chi.sum()
    for f in range(space.n_firm_types):
        chi[space.empty_state(f)] += deficit * space.p_f[f]
    employed = chi @ space.size
    assert chi.sum() == pytest.approx(1.0) and (chi >= 0).all()
    dist = Distribution(chi, (p.n_w - employed) * space.p_w)
    market = Market.of(space, p, dist)
    sol = solve_values(space, p, market, start=Policies.none(space))
    assert Policies.of(space, Surpluses.of(space, sol.v)).same_as(sol.policies)
    assert sol.residual < 1e-12
    res = independent_residual(p, space, dist, sol.v)
    assert np.abs(res).max() / (p.rho * np.abs(sol.v).max()) < 1e-10


def test_separations_enter_when_a_surplus_is_negative():
    """A benefit above the low-z firm's output per unit of h makes its matches unprofitable: it hires
    nobody, and at the states where it has workers they separate (Δ < 0); the residual still closes."""
    p = load_config(["conf=exact_small", "economy.b=1.0"]).economy
    sol = solve_equilibrium(p)
    low = sol.space.firm_type == 0
    has = sol.space.counts > 0
    assert sol.policies.quit[low][has[low]].all()
    assert not sol.policies.hire[low].any()
    res = independent_residual(p, sol.space, sol.dist, sol.v)
    assert np.abs(res).max() / (p.rho * np.abs(sol.v).max()) < 1e-10


def test_poaching_a_worker_whose_match_is_ending_pays_no_surplus():
    """Off the equilibrium path, under a distribution with mass on low-z firms whose workers have Δ < 0
    (``b = 1``), those workers are met by poachers: a poacher pays max{Δ(S_p, x), 0} = 0 for them
    (MODEL.md section 5, row 1 of the table), not Δ. The V that policy iteration finds given that
    distribution closes the independent residual, which reads the same payment from the surpluses."""
    p = load_config(["conf=exact_small", "economy.b=1.0"]).economy
    space = StateSpace.from_params(p)
    rng = np.random.default_rng(5)
    chi = rng.random(space.n_states) * (space.size <= 2)
    chi *= 0.5 / (chi @ space.size)
    deficit = 1.0 - chi.sum()
    for f in range(space.n_firm_types):
        chi[space.empty_state(f)] += deficit * space.p_f[f]
    dist = Distribution(chi, (p.n_w - chi @ space.size) * space.p_w)
    sol = solve_values(space, p, Market.of(space, p, dist), start=Policies.none(space))
    ending = (space.firm_type == 0) & (chi > 0) & (space.size > 0)
    assert sol.policies.quit[ending].any()  # the case arises: mass on matches that are ending
    assert sol.policies.poach.any()
    res = independent_residual(p, space, dist, sol.v)
    assert np.abs(res).max() / (p.rho * np.abs(sol.v).max()) < 1e-10


def test_relative_residual_of_v_shifted_by_a_constant(small):
    """V + c leaves every surplus Δ, every B and every V(S⊖x) − V(S) unchanged, so only −ρV and
    −δ_f(V − ΣU) move: the residual is −(ρ + δ_f) c at every state, and the scale-free residual is
    (ρ + δ_f) |c| / (ρ max|V + c|)."""
    p, sol = small
    c = 1e-3 * np.abs(sol.v).max()
    shifted = sol.v + c
    res = hjb_residual(sol.space, p, sol.market, shifted)
    assert np.abs(res + (p.rho + p.delta_f) * c).max() < 1e-9 * (p.rho + p.delta_f) * c
    expected = (p.rho + p.delta_f) * c / (p.rho * np.abs(shifted).max())
    assert relative_residual(sol.space, p, sol.market, shifted) == pytest.approx(expected, rel=1e-8)
