"""The meeting market of a discrete economy's distribution (lotj.exact.market, MODEL.md section 3), at the two
ends of the employment range where every market quantity is known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lotj.config import load_config
from lotj.economy.params import EconomyParams
from lotj.exact.bellman import solve_values
from lotj.exact.market import Distribution, Market
from lotj.exact.states import StateSpace


def test_the_initial_distribution_is_every_firm_newborn_and_every_worker_unmatched():
    """The start of the equilibrium search: χ puts G_f(f) on the empty firm of each type, u_j = N_w G_w(j).
    Nobody is employed, so e = 0, every meeting is with an unmatched worker (s^N = 1) and market clearing
    with ∫(1 + n) dχ = 1 gives ω = N_w ψ^N; χ^N is G_w and the poacher's law Π is χ itself."""
    p = load_config(["conf=exact_small", "economy.n_w=1.7"]).economy
    space = StateSpace.from_params(p)
    dist = Distribution.initial(space, p.n_w)
    empty = [space.empty_state(f) for f in range(space.n_firm_types)]
    np.testing.assert_allclose(dist.chi[empty], [0.5, 0.5], rtol=0, atol=1e-15)
    assert dist.chi.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(dist.u, [1.7 * 0.3, 1.7 * 0.4, 1.7 * 0.3], rtol=1e-15)
    assert dist.employed(space) + dist.u.sum() == pytest.approx(p.n_w, rel=1e-15)  # every worker is somewhere

    m = Market.of(space, p, dist)
    assert m.e == 0.0
    assert m.omega == pytest.approx(1.7 * p.psi_n, rel=1e-15)
    assert (m.s_n, m.s_e) == (1.0, 0.0)
    np.testing.assert_allclose(m.chi_n, [0.3, 0.4, 0.3], rtol=1e-15)
    np.testing.assert_allclose(m.pi, dist.chi, rtol=0, atol=1e-15)


def test_a_market_without_unmatched_workers_meets_only_the_employed():
    """Full employment (every firm holds its one worker, u = 0): e = 1, s^N = 0, ω ∫(1 + n) dχ = N_w ψ^E with
    ∫(1 + n) dχ = 2, and χ^N is zero (no unmatched worker to meet), not 0/0. V given this market is then the
    lone worker's closed form without hiring: ρV1 = z h − (δ_f + δ_m)(V1 − U) − δ_r V1 (ψ^E meetings find a
    firm at the cap, which makes no offer; MODEL.md section 10)."""
    p = EconomyParams(
        gamma_e=0.0, n_w=1.0, n_max=1, b=0.4, worker_types=[[1.3, 1.0, 1.0]], firm_types=[[1.2, 1.0, 1.0]]
    )
    space = StateSpace.from_params(p)
    full = space.plus[space.empty_state(0), 0]
    chi = np.zeros(space.n_states)
    chi[full] = 1.0
    dist = Distribution(chi, np.zeros(1))
    with np.errstate(all="raise"):  # no 0/0 on the way
        m = Market.of(space, p, dist)
    assert m.e == 1.0
    assert (m.s_n, m.s_e) == (0.0, 1.0)
    assert m.omega == pytest.approx(p.psi_e / 2.0, rel=1e-15)
    np.testing.assert_array_equal(m.chi_n, np.zeros(1))
    np.testing.assert_array_equal(m.chi_e[full], [1.0])
    np.testing.assert_allclose(m.pi, chi, rtol=0, atol=1e-15)

    v = solve_values(space, p, m).v
    u = p.b * 1.3 / (p.rho + p.delta_r)
    v1 = (1.2 * 1.3 + (p.delta_f + p.delta_m) * u) / (p.rho + p.delta_f + p.delta_m + p.delta_r)
    assert np.all(np.isfinite(v))
    assert v[full] == pytest.approx(v1, rel=1e-12)


def test_the_distribution_of_a_small_population_covers_every_state_and_type():
    """Three firms (an empty low-z firm and two in one state) and two unmatched workers of the first type:
    χ is 1/3, 2/3 on their states and 0 on every other, u = 2/3 on the first type and 0 on the others (workers
    per firm), whatever states and types the population happens to leave out. A firm above the cap has no
    state: the population is refused, saying how many such firms it holds."""
    import torch

    p = load_config(["conf=exact_small"]).economy
    space = StateSpace.from_params(p)
    full = int(np.nonzero((space.firm_type == 1) & (space.counts[:, 0] == 4))[0][0])
    states = np.array([space.empty_state(0), 7, 7])
    firms = space.firm_batch(states, width=p.n_max + 1)
    h, a = torch.tensor([0.7, 0.7]), torch.tensor([1.0, 1.0])
    dist = Distribution.of_population(space, firms, h, a)
    expected = np.zeros(space.n_states)
    np.add.at(expected, states, 1.0 / 3.0)
    np.testing.assert_allclose(dist.chi, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(dist.u, [2.0 / 3.0, 0.0, 0.0], rtol=0, atol=1e-15)
    assert dist.employed(space) + dist.u.sum() == pytest.approx((2 * space.size[7] + 2) / 3, rel=1e-15)

    over = space.firm_batch(np.array([full, full, space.empty_state(0), 7]), width=p.n_max + 1)
    for row in (0, 1):
        over.mask[row, p.n_max], over.h[row, p.n_max], over.a[row, p.n_max] = True, 1.4, 1.0
    with pytest.raises(ValueError, match="^2 firms have more than n_max = 4 workers"):
        Distribution.of_population(space, over, h, a)
