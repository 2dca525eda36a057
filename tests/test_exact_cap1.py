"""The exact solver on the hand-checkable economy: one worker type, one firm type, size cap 1.

Algebra (MODEL.md sections 3, 4 and 10). Firm states: empty (V0) and one worker (V1); the worker's
surplus is Δ = V1 − V0 − U with U = b h / (ρ + δ_r). Suppose Δ > 0 (checked below).

- A full firm is at the cap: its meeting terms are zero (section 10). Its worker never separates
  (Δ > 0) and a poacher of its own kind gains B = Δ − Δ = 0, so
      ρ V1 = z h − δ_f (V1 − U) + (δ_r + δ_m)(V0 − V1) + δ_m U.
- An empty firm meets at rate (0 + 1) ω; unmatched workers are hired (Δ > 0); employed ones sit
  in full firms and B = 0, so
      ρ V0 = −δ_f V0 + ω s^N Δ.
  Subtracting, (ρ + δ_f + δ_r + δ_m + ω s^N) Δ = z h − (ρ + δ_r) U = (z − b) h, and
      Δ = (z − b) h / (ρ + δ_f + δ_r + δ_m + ω s^N),  V0 = ω s^N Δ / (ρ + δ_f),  V1 = V0 + U + Δ.

Stationary distribution: m1 = share of full firms = employed workers = e N_w. Empty firms fill at
rate ω s^N = N_w (1 − e) ψ^N / (1 + m1) (market clearing: ω (1 + m1) = N_w [e ψ^E + (1 − e) ψ^N]);
full firms empty at δ_r + δ_m + δ_f (retirement, break, death). Balance (1 − m1) ω s^N = m1 d with
d = δ_r + δ_m + δ_f gives (1 − e N)(1 − e) ψ = e d (1 + e N), i.e. the quadratic
      (ψ − d) N e² − (ψ (1 + N) + d) e + ψ = 0,
whose root in (0, min(1, 1/N)) is e.

Annual rates: a worker leaves employment at hazard δ_m + δ_f (own retirement dropped: section 10)
and finds a job at ψ^N times the chance that the met firm is empty, Π(0) = (1 − m1) / (1 + m1). With
two states, P(E → N in one year) = h_EN / (h_EN + h_NE) (1 − exp(−(h_EN + h_NE))), and symmetrically.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lotj.economy.params import EconomyParams
from lotj.exact import solve_equilibrium

Z, H, B = 1.2, 1.0, 0.4


def _params(**kw) -> EconomyParams:
    base = dict(
        gamma_e=0.0,
        n_w=1.5,
        n_max=1,
        b=B,
        rho=0.05,
        delta_r=0.05,
        delta_m=0.1,
        delta_f=0.02,
        lam=1.0,
        psi_e=0.8,
        psi_n=0.5,
        worker_types=[[H, 1.0, 1.0]],
        firm_types=[[Z, 1.0, 1.0]],
    )
    base.update(kw)
    return EconomyParams(**base)


def _by_hand(p: EconomyParams) -> dict[str, float]:
    d = p.delta_r + p.delta_m + p.delta_f
    n, psi = p.n_w, p.psi_n
    qa, qb, qc = (psi - d) * n, -(psi * (1 + n) + d), psi
    roots = np.roots([qa, qb, qc]).real
    e = float(min(r for r in roots if 0 < r < min(1.0, 1.0 / n)))
    m1 = e * n
    omega = n * (e * p.psi_e + (1 - e) * psi) / (1 + m1)
    omega_sn = n * (1 - e) * psi / (1 + m1)
    u = p.b * H / (p.rho + p.delta_r)
    delta = (Z - p.b) * H / (p.rho + p.delta_f + p.delta_r + p.delta_m + omega_sn)
    v0 = omega_sn * delta / (p.rho + p.delta_f)
    h_en = p.delta_m + p.delta_f
    h_ne = psi * (1 - m1) / (1 + m1)
    tot = h_en + h_ne
    return {
        "e": e,
        "omega": omega,
        "delta": delta,
        "v0": v0,
        "v1": v0 + u + delta,
        "en": h_en / tot * (1 - math.exp(-tot)),
        "ne": h_ne / tot * (1 - math.exp(-tot)),
        "m1": m1,
    }


@pytest.mark.parametrize("overrides", [{}, {"n_w": 0.8, "psi_n": 1.3, "delta_f": 0.001}, {"b": 0.05, "lam": 0.0}])
def test_cap_one_economy_matches_the_hand_solution(overrides):
    p = _params(**overrides)
    sol = solve_equilibrium(p)
    ref = _by_hand(p)
    assert ref["delta"] > 0  # the supposition of the algebra
    empty, full = sol.space.empty_state(0), 1 - sol.space.empty_state(0)
    assert sol.n_states == 2
    assert sol.v[empty] == pytest.approx(ref["v0"], rel=1e-12)
    assert sol.v[full] == pytest.approx(ref["v1"], rel=1e-12)
    assert sol.e == pytest.approx(ref["e"], rel=1e-12)
    assert sol.omega == pytest.approx(ref["omega"], rel=1e-12)
    assert sol.dist.chi[full] == pytest.approx(ref["m1"], rel=1e-12)
    assert sol.en_rate == pytest.approx(ref["en"], rel=1e-10)
    assert sol.ne_rate == pytest.approx(ref["ne"], rel=1e-10)
    # every firm with a worker has exactly one
    assert sol.mean_size == pytest.approx(1.0, abs=1e-14)
    # the cap binds for every full firm: that is the point of cap 1
    assert sol.cap_share == pytest.approx(ref["m1"], rel=1e-12)


@pytest.mark.parametrize("years", [0.25, 3.0])
def test_cap_one_transition_rates_over_other_horizons(years):
    """Over T years the two-state chain gives P(E → N) = h_EN/(h_EN + h_NE) (1 − exp(−(h_EN + h_NE) T))."""
    from lotj.exact.transitions import annual_rates

    p = _params()
    sol = solve_equilibrium(p)
    ref = _by_hand(p)
    h_en = p.delta_m + p.delta_f
    h_ne = p.psi_n * (1 - ref["m1"]) / (1 + ref["m1"])
    tot = h_en + h_ne
    got = annual_rates(sol.space, p, sol.policies, sol.dist, years=years)
    assert got.en == pytest.approx(h_en / tot * (1 - math.exp(-tot * years)), rel=1e-10)
    assert got.ne == pytest.approx(h_ne / tot * (1 - math.exp(-tot * years)), rel=1e-10)


def test_cap_one_distribution_sums_to_one_and_workers_add_up():
    p = _params()
    sol = solve_equilibrium(p)
    assert sol.dist.chi.sum() == pytest.approx(1.0, abs=1e-14)
    assert (sol.dist.chi >= 0).all() and (sol.dist.u >= 0).all()
    employed = float(sol.dist.chi @ sol.space.size)
    assert employed + sol.dist.u.sum() == pytest.approx(p.n_w, abs=1e-12)


def test_a_meeting_with_a_full_firm_is_void_but_counts_in_omega():
    """With cap 1 every meeting that reaches a full firm is void; ω still counts it: ω (1 + m1) is
    the whole meeting flow N_w [e ψ^E + (1 − e) ψ^N], not only the flow reaching empty firms."""
    p = _params()
    sol = solve_equilibrium(p)
    m1 = sol.dist.chi[sol.space.size == 1].sum()
    flow = p.n_w * (sol.e * p.psi_e + (1 - sol.e) * p.psi_n)
    assert sol.omega * (1 + m1) == pytest.approx(flow, rel=1e-13)
    assert sol.cap_meeting_share == pytest.approx(2 * m1 / (1 + m1), rel=1e-12)
