"""The stationary distribution of the exact solver against a transition matrix built by hand.

The generator below is written one firm state and one event at a time from MODEL.md sections 1, 3,
4 and 10, reading the decisions straight from V (hire iff Δ(S⊕x, x) > 0, separate iff Δ(S, x) < 0, a
worker with Δ ≥ 0 moves iff the poacher's Δ(S'⊕x, x) > Δ(S, x)); it shares no code with
lotj.exact.stationary. The solver's χ must be its stationary law and the unmatched workers' flows
must balance type by type.
"""

from __future__ import annotations

import numpy as np
import pytest

from lotj.config import load_config
from lotj.exact import solve_equilibrium


@pytest.fixture(scope="module")
def small():
    p = load_config(["conf=exact_small"]).economy
    return p, solve_equilibrium(p)


def _maps(space):
    index = {(int(f), tuple(int(c) for c in cs)): i for i, (f, cs) in enumerate(zip(space.firm_type, space.counts))}

    def plus(i, j):
        cs = list(space.counts[i])
        cs[j] += 1
        return index.get((int(space.firm_type[i]), tuple(cs)))

    def minus(i, j):
        cs = list(space.counts[i])
        cs[j] -= 1
        return index.get((int(space.firm_type[i]), tuple(cs)))

    return index, plus, minus


def _hand_generator(p, sol):
    space, v, chi, u = sol.space, sol.v, sol.dist.chi, sol.dist.u
    index, plus, minus = _maps(space)
    n_states, n_types = space.n_states, space.n_worker_types
    U = p.unemployment_coef * space.h
    size = space.size
    employed = float(chi @ size)
    unmatched = float(u.sum())
    mean_n1 = float(chi @ (size + 1))
    e = employed / p.n_w
    total = e * p.psi_e + (1 - e) * p.psi_n
    omega = p.n_w * total / mean_n1
    s_n = (1 - e) * p.psi_n / total
    s_e = 1 - s_n
    pi = (size + 1) * chi / mean_n1

    def own(i, j):
        return v[i] - v[minus(i, j)] - U[j]

    def hire(i, j):
        k = plus(i, j)
        return -np.inf if k is None else v[k] - v[i] - U[j]

    q = np.zeros((n_states, n_states))
    for i in range(n_states):
        n = int(size[i])
        for j in range(n_types):
            if n < p.n_max:
                rate = 0.0
                if hire(i, j) > 0:
                    rate += (n + 1) * omega * s_n * u[j] / unmatched
                for sp in range(n_states):
                    c = space.counts[sp, j]
                    if c and hire(i, j) - max(own(sp, j), 0.0) > 0:
                        rate += (n + 1) * omega * s_e * c * chi[sp] / employed
                q[i, plus(i, j)] += rate
            c = int(space.counts[i, j])
            if c:
                d = own(i, j)
                leave = p.delta_r + p.delta_m
                if d < 0:
                    leave += p.lam + p.psi_e
                else:
                    for sp in range(n_states):
                        if size[sp] < p.n_max and hire(sp, j) > d:
                            leave += p.psi_e * pi[sp]
                q[i, minus(i, j)] += c * leave
        for f in range(space.n_firm_types):
            q[i, index[(f, (0,) * n_types)]] += p.delta_f * space.p_f[f]
    np.fill_diagonal(q, 0.0)
    q[np.diag_indices(n_states)] = -q.sum(1)

    # unmatched workers of each type: inflow minus outflow
    balance = np.zeros(n_types)
    for j in range(n_types):
        inflow = p.delta_r * p.n_w * space.p_w[j]
        find = 0.0
        for i in range(n_states):
            c = space.counts[i, j]
            if c:
                d = own(i, j)
                to_n = p.delta_f + p.delta_m
                if d < 0:
                    hired_away = sum(pi[sp] for sp in range(n_states) if size[sp] < p.n_max and hire(sp, j) > 0)
                    to_n += p.lam + p.psi_e * (1 - hired_away)
                inflow += c * chi[i] * to_n
            if size[i] < p.n_max and hire(i, j) > 0:
                find += p.psi_n * pi[i]
        balance[j] = inflow - u[j] * (p.delta_r + find)
    return q, balance


def test_solver_distribution_is_stationary_for_the_hand_built_chain(small):
    p, sol = small
    q, balance = _hand_generator(p, sol)
    assert np.abs(sol.dist.chi @ q).max() < 1e-12
    assert np.abs(balance).max() < 1e-12


def test_distribution_sums_to_one_and_workers_add_up(small):
    p, sol = small
    chi, u = sol.dist.chi, sol.dist.u
    assert chi.sum() == pytest.approx(1.0, abs=1e-13)
    assert (chi >= 0).all() and (u > 0).all()
    employed = float(chi @ sol.space.size)
    assert employed + u.sum() == pytest.approx(p.n_w, abs=1e-12)
    assert sol.e == pytest.approx(employed / p.n_w, rel=1e-13)
    # firm types keep their G_f shares: deaths replace a firm by a newborn of a type drawn from G_f
    for f in range(sol.space.n_firm_types):
        assert chi[sol.space.firm_type == f].sum() == pytest.approx(sol.space.p_f[f], abs=1e-12)


def test_a_distribution_that_is_not_stationary_fails_the_hand_built_chain(small):
    p, sol = small
    q, _ = _hand_generator(p, sol)
    moved = sol.dist.chi.copy()
    moved[[0, 1]] += [1e-3, -1e-3]
    assert np.abs(moved @ q).max() > 1e-5


def _hand_worker_chain(p, space, pol, dist):
    """One worker's generator written event by event from MODEL.md sections 3, 4 and 10 (the docstring of
    lotj.exact.transitions), given the decisions ``pol``; keyed by ``("E", S, j)`` and ``("N", j)``."""
    _, plus, minus = _maps(space)
    n_states, n_types = space.n_states, space.n_worker_types
    chi, u, size, counts = dist.chi, dist.u, space.size, space.counts
    employed = float(chi @ size)
    mean_n1 = float(chi @ (size + 1))
    e = employed / p.n_w
    total = e * p.psi_e + (1 - e) * p.psi_n
    omega = p.n_w * total / mean_n1
    s_n, s_e = (1 - e) * p.psi_n / total, e * p.psi_e / total
    pi = (size + 1) * chi / mean_n1
    rows: dict[tuple, dict[tuple, float]] = {}

    def add(src, dst, rate):
        rows.setdefault(src, {})
        rows[src][dst] = rows[src].get(dst, 0.0) + rate

    def poached_away(i, k):  # a type-k worker of S meets a poacher S' ~ Π and moves iff B(S', S, x_k) > 0
        return p.psi_e * sum(pi[sp] for sp in range(n_states) if pol.poach[sp, k, i])

    for i in range(n_states):
        n = int(size[i])
        for j in range(n_types):
            if counts[i, j] == 0:
                continue
            me = ("E", i, j)
            rows.setdefault(me, {})
            # own separation into non-employment: firm death, match break; with Δ < 0 also λ and the meetings
            # whose poacher does not hire
            to_n = p.delta_f + p.delta_m
            if pol.quit[i, j]:
                to_n += p.lam + p.psi_e - poached_away(i, j)
            add(me, ("N", j), to_n)
            for sp in range(n_states):
                if pol.poach[sp, j, i]:
                    add(me, ("E", plus(sp, j), j), p.psi_e * pi[sp])
            # each coworker of type k leaves (retirement included: it is the coworker's, not the worker's)
            for k in range(n_types):
                others = int(counts[i, k]) - (k == j)
                if others:
                    rate = p.delta_r + p.delta_m + (p.lam + p.psi_e if pol.quit[i, k] else poached_away(i, k))
                    add(me, ("E", minus(i, k), j), others * rate)
            # the firm hires an unmatched or poaches an employed type-k worker
            if n < p.n_max:
                for k in range(n_types):
                    rate = s_n * u[k] / u.sum() * pol.hire[i, k]
                    met = [sp for sp in range(n_states) if pol.poach[i, k, sp]]
                    rate += s_e * sum(counts[sp, k] * chi[sp] / employed for sp in met)
                    if rate:
                        add(me, ("E", plus(i, k), j), (n + 1) * omega * rate)
    for j in range(n_types):
        rows.setdefault(("N", j), {})
        for sp in range(n_states):
            if size[sp] < p.n_max and pol.hire[sp, j]:
                add(("N", j), ("E", plus(sp, j), j), p.psi_n * pi[sp])
    return rows


def test_worker_chain_is_the_hand_built_chain_of_one_worker():
    """Every off-diagonal rate of one worker's chain (lotj.exact.transitions, from which EN and NE are read)
    equals the hand-built one, in an economy whose separation rates depend on the firm's state: with b = 1
    the low-z firms' workers quit (Δ < 0) and the high-z firms' do not, so a coworker's departure rate,
    the worker's own move into non-employment and its poaching rate differ from state to state. Off the
    equilibrium path (a given distribution with mass on low-z firms with workers) every kind of row occurs."""
    from lotj.exact.bellman import Policies, solve_values
    from lotj.exact.market import Distribution, Market
    from lotj.exact.states import StateSpace
    from lotj.exact.transitions import worker_chain

    p = load_config(["conf=exact_small", "economy.b=1.0"]).economy
    space = StateSpace.from_params(p)
    rng = np.random.default_rng(5)
    chi = rng.random(space.n_states) * (space.size <= 3)
    chi *= 0.5 / (chi @ space.size)
    deficit = 1.0 - chi.sum()
    for f in range(space.n_firm_types):
        chi[space.empty_state(f)] += deficit * space.p_f[f]
    dist = Distribution(chi, (p.n_w - chi @ space.size) * space.p_w)
    pol = solve_values(space, p, Market.of(space, p, dist), start=Policies.none(space)).policies
    present = space.counts > 0
    assert pol.quit[present].any() and not pol.quit[present].all()  # separations depend on the state
    assert pol.poach.any() and pol.hire.any()

    chain = worker_chain(space, p, pol, dist)
    keys = [("E", int(s), int(j)) for s, j in zip(chain.employed_state, chain.employed_type)]
    keys += [("N", j) for j in range(space.n_worker_types)]
    where = {k: i for i, k in enumerate(keys)}
    hand = np.zeros_like(chain.q)
    for src, out in _hand_worker_chain(p, space, pol, dist).items():
        for dst, rate in out.items():
            hand[where[src], where[dst]] += rate
    off = ~np.eye(len(keys), dtype=bool)
    assert np.abs(chain.q[off] - hand[off]).max() < 1e-12 * np.abs(hand).max()
    assert np.abs(chain.q.sum(1)).max() < 1e-12 * np.abs(hand).max()  # a generator: rows sum to zero
    # the coworker rows are there: a worker with a coworker of each type at a quitting state
    two = [i for i, k in enumerate(keys) if k[0] == "E" and space.counts[k[1]].sum() >= 2 and pol.quit[k[1]].any()]
    assert two


@pytest.mark.parametrize("renewal", ["economy.delta_f=0", "economy.delta_r=0"])
def test_without_deaths_or_retirements_the_population_is_still_the_economys(renewal):
    """With δ_f = 0 no firm is ever replaced by a draw from G_f, and with δ_r = 0 no worker by a draw from G_w:
    the flows then conserve the firms of each type and the workers of each type, and only the population the
    economy starts from (G_f, N_w G_w) says how many there are. The stationary law keeps it (every type's firms
    G_f(f), every type's workers N_w G_w(j), employed plus unmatched) and is stationary for the hand-built chain."""
    p = load_config(["conf=exact_small", "economy.n_w=1.3", renewal]).economy
    sol = solve_equilibrium(p)
    space, chi, u = sol.space, sol.dist.chi, sol.dist.u
    for f in range(space.n_firm_types):
        assert chi[space.firm_type == f].sum() == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_allclose(chi @ space.counts + u, [1.3 * 0.3, 1.3 * 0.4, 1.3 * 0.3], rtol=1e-12)
    q, balance = _hand_generator(p, sol)
    assert np.abs(chi @ q).max() < 1e-12
    assert np.abs(balance).max() < 1e-12


def test_an_economy_that_never_renews_is_refused():
    """δ_f = δ_r = 0: nothing draws the population back to G_f and G_w, and the chain's stationary laws are many."""
    from lotj.exact.bellman import Policies
    from lotj.exact.states import StateSpace
    from lotj.exact.stationary import StationaryError, stationary_distribution

    p = load_config(["conf=exact_small", "economy.delta_f=0", "economy.delta_r=0"]).economy
    space = StateSpace.from_params(p)
    with pytest.raises(StationaryError, match="needs delta_r > 0 or delta_f > 0"):
        stationary_distribution(space, p, Policies.none(space))


def test_the_stationary_law_is_the_fixed_point_of_the_frozen_chain_and_of_the_picard_step():
    """At the stationary (χ, u) the rates frozen there make one firm's generator (lotj.exact.stationary's, equal
    to the hand-built one entry by entry) stationary at χ, and a fixed-point step from (χ, u) returns it."""
    from lotj.exact.stationary import firm_generator, picard_step, stationary_distribution

    p = load_config(["conf=exact_small", "economy.n_w=1.3", "economy.b=0.5"]).economy
    p.firm_types = [[0.6, 1.0, 0.3], [1.5, 1.0, 0.7]]
    sol = solve_equilibrium(p)
    space, chi, u = sol.space, sol.dist.chi, sol.dist.u
    assert chi[space.firm_type == 0].sum() == pytest.approx(0.3, abs=1e-12)
    stat = stationary_distribution(space, p, sol.policies)
    np.testing.assert_allclose(stat.dist.chi, chi, rtol=0, atol=1e-12)
    np.testing.assert_allclose(stat.dist.u, u, rtol=1e-11)
    q = firm_generator(space, p, sol.policies, chi, u)
    hand, _ = _hand_generator(p, sol)
    assert np.abs(q - hand).max() < 1e-12 * np.abs(hand).max()
    assert np.abs(chi @ q).max() < 1e-12
    again = picard_step(space, p, sol.policies, sol.dist)
    np.testing.assert_allclose(again.chi, chi, rtol=0, atol=1e-11)
    np.testing.assert_allclose(again.u, u, rtol=1e-10)


def test_type_probabilities_are_normalised():
    """Probabilities that sum to 1 within the configuration's 1e-9 (here 1 + 6e-10) are normalised: firms have
    measure 1 and workers N_w. With no hiring every firm is empty and every worker unmatched."""
    from lotj.exact.bellman import Policies
    from lotj.exact.states import StateSpace
    from lotj.exact.stationary import picard_step, stationary_distribution

    p = load_config(["conf=exact_small", "economy.n_w=1.3"]).economy
    p.firm_types = [[0.6, 1.0, 0.3], [1.5, 1.0, 0.7 + 6e-10]]
    p.worker_types = [[0.7, 1.0, 0.3], [1.0, 1.0, 0.4 + 6e-10], [1.4, 1.0, 0.3]]
    p.validate()
    space = StateSpace.from_params(p)
    none = Policies.none(space)
    dist = stationary_distribution(space, p, none).dist
    empty = [space.empty_state(f) for f in range(2)]
    f_share, w_share = np.array([0.3, 0.7 + 6e-10]), np.array([0.3, 0.4 + 6e-10, 0.3])
    np.testing.assert_allclose(dist.chi[empty], f_share / f_share.sum(), rtol=1e-12)
    assert dist.chi.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(dist.u, 1.3 * w_share / w_share.sum(), rtol=1e-12)
    step = picard_step(space, p, none, dist)
    np.testing.assert_allclose(step.chi, dist.chi, rtol=0, atol=1e-12)
    np.testing.assert_allclose(step.u, dist.u, rtol=1e-12)
