"""The exact W of a discrete economy (lotj.exact.worker_value) and its wages (lotj.exact.wages), MODEL.md section 5.

Closed forms on a lone worker (one worker type, one firm type, cap 1, so no coworker ever changes):

- with only exogenous rates (λ = ψ^E = ψ^N = 0) no reset ever happens and
  ``ρ W = w + (δ_f + δ_m)(U − W) − δ_r W``, i.e. ``W = (w + (δ_f + δ_m) U) / (ρ + δ_f + δ_m + δ_r)``;
- with renegotiation (λ > 0, still no meetings) a λ shock moves W to the nearest edge of ``[U, U + Δ]``:
  with ``r = ρ + δ_f + δ_m + δ_r``, ``W = (w + (δ_f + δ_m) U) / r`` inside the set,
  ``(w + (δ_f + δ_m) U + λ U) / (r + λ)`` below it and ``(w + (δ_f + δ_m) U + λ (U + Δ)) / (r + λ)`` above it.

On exact_small: the Postel-Vinay–Robin ladder (a hire sets W = U exactly; a counter-offer never lowers
the wage), W increasing in w, the curve equal to the regime iteration at any wage, the stationary law
consistent with the exact firm distribution, and the W residual the network trains on vanishing at the
exact W.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lotj.config import load_config
from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.wages import w_residual
from lotj.exact import solve_equilibrium
from lotj.exact.bellman import solve_values
from lotj.exact.market import Distribution, Market
from lotj.exact.states import StateSpace
from lotj.exact.table import table_worker_value_function
from lotj.exact.wages import CAUSES, exact_wages, simulate_wage_chain, weighted_quantile
from lotj.exact.worker_value import (
    RegimeCycleError,
    exact_worker_values,
    solve_at_wage,
    worker_problem,
)


def _lone(**kw) -> EconomyParams:
    base = dict(
        gamma_e=0.0,
        n_w=1.0,
        n_max=1,
        b=0.4,
        rho=0.05,
        delta_r=0.05,
        delta_m=0.1,
        delta_f=0.02,
        lam=0.0,
        psi_e=0.0,
        psi_n=0.0,
        worker_types=[[1.3, 1.0, 1.0]],
        firm_types=[[1.2, 1.0, 1.0]],
    )
    base.update(kw)
    return EconomyParams(**base)


def _lone_problem(p: EconomyParams):
    """V and the W problem of the lone-worker economy with every firm holding its worker."""
    space = StateSpace.from_params(p)
    full = int(np.nonzero(space.size == 1)[0][0])
    chi = np.zeros(space.n_states)
    chi[full] = 1.0
    market = Market.of(space, p, Distribution(chi, np.zeros(1)))
    v = solve_values(space, p, market).v
    return space, worker_problem(space, p, v, market), full


@pytest.mark.parametrize("w", [-3.0, 0.1, 0.52, 2.0, 7.5])
def test_lone_worker_with_exogenous_rates_only(w):
    p = _lone()
    space, prob, _ = _lone_problem(p)
    u = p.b * 1.3 / (p.rho + p.delta_r)
    expected = (w + (p.delta_f + p.delta_m) * u) / (p.rho + p.delta_f + p.delta_m + p.delta_r)
    sol = solve_at_wage(prob, w)
    assert len(prob.pairs) == 1
    assert sol.W[0] == pytest.approx(expected, rel=1e-13)
    curve = exact_worker_values(space, p, prob_v(space, p), prob.market)
    assert curve.values(w)[0] == pytest.approx(expected, rel=1e-13)


def prob_v(space, p):
    full = int(np.nonzero(space.size == 1)[0][0])
    chi = np.zeros(space.n_states)
    chi[full] = 1.0
    return solve_values(space, p, Market.of(space, p, Distribution(chi, np.zeros(1)))).v


def test_renegotiation_resets_a_wage_outside_the_bargaining_set():
    """Regime iteration starts every pair in U's interval; a wage far above (below) the bargaining set
    must end in the cut (raise) regime, with the hand-computed value, and the curve must have exactly
    the two kinks at the wages that put W on U and on U + Δ."""
    p = _lone(lam=1.0)
    space, prob, full = _lone_problem(p)
    u, delta = prob.u[0], prob.delta[0]
    assert delta > 0
    r = p.rho + p.delta_f + p.delta_m + p.delta_r
    exo = (p.delta_f + p.delta_m) * u
    w_top = r * (u + delta) - exo  # inside the set W = (w + exo)/r: W = U + Δ here
    w_bottom = r * u - exo
    for w, expected in [
        (w_top + 3.0, (w_top + 3.0 + exo + p.lam * (u + delta)) / (r + p.lam)),
        (w_bottom - 2.0, (w_bottom - 2.0 + exo + p.lam * u) / (r + p.lam)),
        (0.5 * (w_top + w_bottom), (0.5 * (w_top + w_bottom) + exo) / r),
    ]:
        sol = solve_at_wage(prob, w)
        assert sol.W[0] == pytest.approx(expected, rel=1e-13)
    high = solve_at_wage(prob, w_top + 3.0)
    assert high.iterations >= 2  # it started inside (U's interval) and had to move: the wage was reset
    curve = exact_worker_values(space, p, prob_v(space, p), prob.market)
    np.testing.assert_allclose(curve.knots, [w_bottom, w_top], rtol=1e-12)
    assert curve.invert(np.array([0]), np.array([u + delta]))[0] == pytest.approx(w_top, rel=1e-12)


def test_a_regime_cycle_is_reported_with_the_pairs_that_flip(monkeypatch):
    """Force a two-cycle of the regime assignment (re-reading alternates); the error names the pair."""
    p = _lone(lam=1.0)
    _, prob, _ = _lone_problem(p)
    flip = iter(range(10**6))
    monkeypatch.setattr(type(prob), "position", lambda self, W: np.array([(next(flip) + 1) % 2 + 1]))
    with pytest.raises(RegimeCycleError, match="cycles; pairs that flip: worker type 1"):
        solve_at_wage(prob, 0.3, start=np.array([1]))


# ----------------------------------------------------------------------------- exact_small


@pytest.fixture(scope="module")
def small():
    cfg = load_config(["conf=exact_small"])
    sol = solve_equilibrium(cfg.economy)
    curve = exact_worker_values(sol.space, sol.params, sol.v, sol.market, w_start=1.0)
    return cfg, sol, curve


@pytest.fixture(scope="module")
def small_wages(small):
    _, sol, curve = small
    return exact_wages(curve, sol.dist)


def test_w_is_increasing_in_the_wage_and_the_curve_is_the_regime_iteration(small):
    _, _, curve = small
    assert (curve.beta > 0).all()
    grid = np.linspace(curve.knots[0] - 1.0, curve.knots[-1] + 1.0, 997)
    values = curve.values(grid)
    assert (np.diff(values, axis=0) > 0).all()
    rng = np.random.default_rng(3)
    for w in rng.uniform(curve.knots[0] - 2.0, curve.knots[-1] + 2.0, 6):
        sol = solve_at_wage(curve.problem, float(w))
        np.testing.assert_allclose(curve.values(w), sol.W, rtol=1e-11, atol=1e-11)
        # the solution is a fixed point: its regimes are the ones it was computed under
        np.testing.assert_array_equal(curve.problem.position(sol.W), sol.position)


def test_inversion_hits_every_target(small):
    _, _, curve = small
    prob = curve.problem
    pairs = np.arange(len(prob.pairs))
    for target in (prob.u, prob.u + 0.5 * np.maximum(prob.delta, 0.0), prob.u + np.maximum(prob.delta, 0.0)):
        w = curve.invert(pairs, target)
        np.testing.assert_allclose(curve.value(pairs, w), target, rtol=1e-12, atol=1e-12)


def test_the_wage_ladder(small_wages):
    """A hire sets W = U exactly; a counter-offer never lowers the wage (it happens only when W is below
    the outside offer's value, and W is increasing in w); renegotiation raises and cuts move the right way."""
    ew = small_wages
    org, ch, curve = ew.origins, ew.chain, ew.curve
    hire_pairs, hire_targets, hire_wages, flow = ew.resets()["hire"]
    assert len(hire_wages) and (flow > 0).all()
    np.testing.assert_allclose(curve.value(hire_pairs, hire_wages), curve.problem.u[hire_pairs], rtol=1e-12)
    np.testing.assert_allclose(hire_targets, curve.problem.u[hire_pairs], rtol=0)
    before, after = org.wage[ch.node_origin[ch.src]], org.wage[ch.node_origin[ch.dst]]
    counter = ch.cause == CAUSES.index("counter_offer")
    assert counter.sum() > 100
    assert (after[counter] > before[counter]).all()
    assert (after[ch.cause == CAUSES.index("reneg_raise")] > before[ch.cause == CAUSES.index("reneg_raise")]).all()
    assert (after[ch.cause == CAUSES.index("reneg_cut")] < before[ch.cause == CAUSES.index("reneg_cut")]).all()
    assert (after[ch.cause == CAUSES.index("meeting_cut")] < before[ch.cause == CAUSES.index("meeting_cut")]).all()


def test_the_stationary_wage_law_is_consistent_with_the_firm_distribution(small, small_wages):
    """The chain's mass by pair is the exact c_j(S) χ(S) of every pair (the wage refines the worker chain)."""
    _, sol, curve = small
    ch, prob = small_wages.chain, curve.problem
    by_pair = np.bincount(ch.node_pair, weights=ch.mass, minlength=len(prob.pairs))
    expected = sol.space.counts[prob.pairs.state, prob.pairs.wtype] * sol.dist.chi[prob.pairs.state]
    np.testing.assert_allclose(by_pair, expected, rtol=1e-9, atol=1e-13)
    assert (ch.mass >= -1e-15).all()


def test_a_simulated_wage_chain_agrees_with_the_balance(small_wages):
    """2000 workers' spells over 150 years (Gillespie): mean wage and negative-wage share within sampling
    error of the balance's (about 0.05 and 1.5 pp one standard error here; tolerances 4 standard errors)."""
    ew = small_wages
    occ = simulate_wage_chain(ew, workers=2000, years=150.0, seed=5, burn_in=10.0)
    w = ew.node_wage
    assert occ @ w / occ.sum() == pytest.approx(ew.mean, abs=0.2)
    assert occ[w < 0].sum() / occ.sum() == pytest.approx(ew.negative_share, abs=0.06)
    assert weighted_quantile(w, occ, 0.5) == pytest.approx(ew.median, abs=0.15)


@pytest.mark.parametrize("overrides", [[], ["economy.b=0.8", "economy.eta=2.0"]], ids=["exact_small", "quits"])
def test_the_training_residual_vanishes_at_the_exact_w(small, overrides):
    """The W network is trained on lotj.economy.wages.w_residual; at the exact W, with its Monte Carlo draws
    replaced by exact sums (the residual is affine in each expectation: one draw at a time, weighted by
    χ^N, χ^E and Π), it vanishes at every state, every worker and every wage of a grid spanning the
    bargaining sets. In exact_small no worker ever separates by choice (every Δ is above 1); with b = 0.8 and
    η = 2 some workers quit (Δ < 0) at states where a coworker stays, so the W of the stayer reads the quits'
    departure rates and the reset targets of Δ < 0. The W is solved here rather than taken from the module
    fixture, so that this check, the one independent of lotj.exact's own arithmetic, runs for every change to
    the W solver (benchmarks/mutation.py selects the tests that call a function)."""
    cfg, sol, _ = small
    if overrides:
        cfg = load_config(["conf=exact_small", *overrides])
        sol = solve_equilibrium(cfg.economy)
        quit, present = sol.policies.quit, sol.space.counts > 0
        assert ((quit & present).any(1) & (~quit & present).any(1)).any()  # a quit beside a coworker who stays
    curve = exact_worker_values(sol.space, sol.params, sol.v, sol.market, w_start=1.0)
    p, space, market = cfg.economy, sol.space, sol.market
    wf, vf = table_worker_value_function(curve), sol.value_function()
    rates = MeetingRates(market.omega, market.s_n, market.s_e)
    grid = np.linspace(curve.knots[0] - 0.5, curve.knots[-1] + 0.5, 9)
    occupied = np.nonzero(space.size > 0)[0]
    states = space.firm_batch(np.tile(occupied, len(grid)))
    w = torch.as_tensor(np.repeat(grid, len(occupied)))[:, None].expand(-1, space.n_max).clone()
    none = torch.zeros(0, dtype=torch.float64)

    def res(draws, poacher):
        return w_residual(wf, vf, p, states, w, rates, draws, space.firm_batch(np.array([poacher])))[0]

    from lotj.economy.hjb import MeetingDraws

    base = {s: res(None, s) for s in np.nonzero(market.pi > 0)[0]}
    p0 = next(iter(base))
    total = sum(market.pi[s] * r for s, r in base.items())
    for j in range(space.n_worker_types):
        x = (torch.tensor([space.h[j]]), torch.tensor([space.a[j]]))
        total += market.chi_n[j] * (res(MeetingDraws(*x, none, none, none), p0) - base[p0])
    own = curve.problem.surpluses.own
    for s_p, j in zip(*np.nonzero(market.chi_e > 0)):
        x = (torch.tensor([space.h[j]]), torch.tensor([space.a[j]]), torch.tensor([own[s_p, j]]))
        total += market.chi_e[s_p, j] * (res(MeetingDraws(none, none, *x), p0) - base[p0])
    W = wf.values(states, w)
    scale = p.rho * torch.maximum(W.abs(), torch.as_tensor(p.unemployment_coef) * states.h)
    rel = (total.abs() / scale)[states.mask]
    assert rel.max() < 1e-10


# ----------------------------------------------------------------------------- the wage chain, edge by edge


@pytest.mark.parametrize(
    "overrides",
    [["economy.n_max=2"], ["economy.n_max=3", "economy.b=0.8", "economy.eta=2.0"]],
    ids=["cap2", "quits"],
)
def test_the_wage_chain_is_the_table_of_model_section_5(overrides):
    """Every reset edge, loss rate and hire of lotj.exact.wages' chain against the table of MODEL.md section 5,
    written here from V alone (U = b h / (ρ + δ_r), Δ(S, x) = V(S) − V(S⊖x) − U, the poacher's
    Δ_p = V(S'⊕x) − V(S') − U): a worker with Δ < 0 separates at λ and at a meeting whose poacher does not hire,
    and moves to the poacher's bottom when it hires; with Δ ≥ 0 a λ shock clips W into [U, U + Δ], a poacher
    with Δ_p > Δ takes the worker at W = Δ + U, one with Δ_p ≤ Δ cuts W above U + Δ to the top and raises W below
    max{Δ_p, 0} + U to it; a poacher at the cap does nothing; deaths, breaks and retirements end the spell. Each
    reset lands on the wage whose W is its target. Then the stationary masses: the balance holds node by node,
    and the chain's mass at each pair is the firm distribution's c_j(S) χ(S). Two small economies (cap 2; cap 3
    with quits beside stayers) keep it to a second; W is solved here, not in a fixture, so that every change to
    the chain is checked by this test (benchmarks/mutation.py selects the tests that call a function)."""
    from lotj.exact.wages import BOTTOM, COUNTER, POACHED, TOP

    cfg = load_config(["conf=exact_small", *overrides])
    sol = solve_equilibrium(cfg.economy)
    p, space, v, m = sol.params, sol.space, sol.v, sol.market
    curve = exact_worker_values(space, p, v, m, w_start=1.0)
    ew = exact_wages(curve, sol.dist)
    org, ch, pairs = ew.origins, ew.chain, curve.problem.pairs
    U = p.b * space.h / (p.rho + p.delta_r)

    def delta(s, j):
        return v[s] - v[space.minus[s, j]] - U[j]

    def delta_p(s, j):
        return -np.inf if space.plus[s, j] < 0 else v[space.plus[s, j]] - v[s] - U[j]

    def node_key(n):  # the worker's pair, and the origin of its wage: where it was set, how, and against whom
        o = ch.node_origin[n]
        return int(ch.node_pair[n]), int(org.pair[o]), int(org.kind[o]), int(org.other[o])

    quits = [delta(s, j) < 0 for s, j in zip(pairs.state, pairs.wtype)]
    if "economy.b=0.8" in overrides:
        assert any(quits) and not all(quits)
    node_of = {node_key(n): n for n in range(len(ch.mass))}
    wage = org.wage[ch.node_origin]
    W = curve.value(ch.node_pair, wage)
    edges = {}
    for src, dst, rate, cause in zip(ch.src, ch.dst, ch.rate, ch.cause):
        if cause >= 0:
            edges[(int(src), node_key(dst), int(cause))] = edges.get((int(src), node_key(dst), int(cause)), 0.0) + rate
    hand, targets = {}, {}
    loss = np.zeros(len(ch.mass))
    for n in range(len(ch.mass)):
        k = int(ch.node_pair[n])
        s, j = int(pairs.state[k]), int(pairs.wtype[k])
        d, u, w_n = delta(s, j), U[j], W[n]
        tol = 1e-10 * max(abs(w_n), u)
        loss[n] = p.delta_f + p.delta_m + p.delta_r
        out = []  # (destination key, cause, rate, target)
        if d < 0:
            loss[n] += p.lam
            for sp in np.nonzero(m.pi > 0)[0]:
                if delta_p(sp, j) > 0:
                    dest = int(pairs.index[space.plus[sp, j], j])
                    out.append(((dest, dest, BOTTOM, -1), "poached", p.psi_e * m.pi[sp], U[j]))
                else:
                    loss[n] += p.psi_e * m.pi[sp]
        else:
            if w_n < u - tol:
                out.append(((k, k, BOTTOM, -1), "reneg_raise", p.lam, u))
            if w_n > u + d + tol:
                out.append(((k, k, TOP, -1), "reneg_cut", p.lam, u + d))
            for sp in np.nonzero(m.pi > 0)[0]:
                dp, rate = delta_p(sp, j), p.psi_e * m.pi[sp]
                if space.size[sp] == p.n_max:
                    continue
                if dp > d:
                    dest = int(pairs.index[space.plus[sp, j], j])
                    out.append(((dest, dest, POACHED, k), "poached", rate, d + u))
                elif w_n > u + d + tol:
                    out.append(((k, k, TOP, -1), "meeting_cut", rate, u + d))
                elif w_n < max(dp, 0.0) + u - tol:
                    out.append(((k, k, COUNTER, int(sp)), "counter_offer", rate, max(dp, 0.0) + u))
        for key, cause, rate, target in out:
            if node_of.get(key) == n:
                continue  # a reset to the wage the worker has changes nothing
            e = (n, key, CAUSES.index(cause))
            hand[e] = hand.get(e, 0.0) + rate
            targets[key] = target
    assert {c for _, _, c in hand} == set(range(1, len(CAUSES)))  # every kind of reset occurs
    assert set(edges) == set(hand)
    for e, rate in hand.items():
        assert edges[e] == pytest.approx(rate, rel=1e-12)
    np.testing.assert_allclose(ch.loss, loss, rtol=1e-12)
    for key, target in targets.items():  # the wage set by a reset gives W its target
        n = node_of[key]
        assert W[n] == pytest.approx(target, rel=1e-9, abs=1e-9)
    # hires: unmatched x_j meets S' ~ Π at rate ψ^N and is hired at the bottom of S'⊕x_j when Δ_p > 0
    entry = np.zeros(len(ch.mass))
    for j in range(space.n_worker_types):
        for sp in np.nonzero(m.pi > 0)[0]:
            if delta_p(sp, j) > 0:
                dest = int(pairs.index[space.plus[sp, j], j])
                entry[node_of[(dest, dest, BOTTOM, -1)]] += sol.dist.u[j] * p.psi_n * m.pi[sp]
    np.testing.assert_allclose(ch.entry, entry, rtol=1e-12, atol=1e-15)
    # the stationary masses: inflow = outflow at every node, and the pair marginal is c_j(S) χ(S)
    out_rate = ch.loss + np.bincount(ch.src, weights=ch.rate, minlength=len(ch.mass))
    inflow = np.bincount(ch.dst, weights=ch.rate * ch.mass[ch.src], minlength=len(ch.mass)) + ch.entry
    assert np.abs(ch.mass * out_rate - inflow).sum() < 1e-11 * ch.entry.sum()
    by_pair = np.bincount(ch.node_pair, weights=ch.mass, minlength=len(pairs))
    expected = space.counts[pairs.state, pairs.wtype] * sol.dist.chi[pairs.state]
    np.testing.assert_allclose(by_pair, expected, rtol=1e-9, atol=1e-13)
    assert ch.mass.sum() == pytest.approx(sol.dist.employed(space), rel=1e-9)


def test_the_wage_statistics_are_those_of_the_stationary_law():
    """The statistics users read (quantiles, mean, negative share, resets by cause, summary) recomputed from the
    chain's nodes and edges: a quantile is the smallest wage whose cumulative employed mass reaches it; a cause's
    reset flow is the mass at each edge's origin times its rate (hires: the entry flow); and spells that start
    end: the hiring flow equals the flow out of employment (deaths, breaks, retirements, separations)."""
    cfg = load_config(["conf=exact_small", "economy.n_max=2"])
    sol = solve_equilibrium(cfg.economy)
    curve = exact_worker_values(sol.space, sol.params, sol.v, sol.market, w_start=1.0)
    ew = exact_wages(curve, sol.dist)
    ch, org = ew.chain, ew.origins
    wage, mass = org.wage[ch.node_origin], ch.mass
    assert ch.entry.sum() == pytest.approx((mass * ch.loss).sum(), rel=1e-9)
    order = np.argsort(wage)
    cum = np.cumsum(mass[order]) / mass.sum()
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert ew.quantiles()[f"p{round(100 * q)}"] == wage[order][np.nonzero(cum >= q - 1e-12)[0][0]]
    assert ew.median == ew.quantiles()["p50"]
    assert ew.mean == pytest.approx(wage @ mass / mass.sum(), rel=1e-13)
    negative = mass[wage < 0].sum() / mass.sum()
    assert 0.0 < negative < 1.0 and ew.negative_share == pytest.approx(negative, rel=1e-13)
    by_cause = ew.by_cause()
    for c, name in enumerate(CAUSES):
        if name == "hire":
            nodes, flow = np.nonzero(ch.entry > 0)[0], ch.entry[ch.entry > 0]
        else:
            nodes, flow = ch.dst[ch.cause == c], mass[ch.src[ch.cause == c]] * ch.rate[ch.cause == c]
        origins = np.unique(ch.node_origin[nodes])
        w = org.wage[origins]
        stats = by_cause[name]
        assert stats["flow"] == pytest.approx(flow.sum(), rel=1e-12) and stats["flow"] > 0
        assert stats["count"] == len(origins)
        assert (stats["min"], stats["max"]) == (w.min(), w.max())
        f_by_origin = np.array([flow[ch.node_origin[nodes] == o].sum() for o in origins])
        assert stats["negative_share"] == pytest.approx(f_by_origin[w < 0].sum() / f_by_origin.sum(), rel=1e-12)
        o = np.argsort(w)
        cum = np.cumsum(f_by_origin[o]) / f_by_origin.sum()
        assert stats["median"] == w[o][np.nonzero(cum >= 0.5 - 1e-12)[0][0]]
    summary = ew.summary()
    assert summary == {
        "pairs": len(curve.problem.pairs),
        "curve_segments": len(curve.knots) + 1,
        "origins": len(org),
        "chain_nodes": len(mass),
        "employed_mass": pytest.approx(sol.dist.employed(sol.space), rel=1e-9),
        "mean": ew.mean,
        "quantiles": ew.quantiles(),
        "negative_share": ew.negative_share,
        "by_cause": by_cause,
    }


def test_the_exact_w_as_a_worker_value_function_reads_the_curve_and_gives_zero_above_the_cap():
    """lotj.exact.table: a worker's value at its wage is the curve's at its pair (the lone worker's closed form
    here), in the wage's precision; a worker whose firm would be above the cap (two workers, n_max = 1) has no
    pair and gets the finite value 0."""
    p = _lone()
    space, prob, _ = _lone_problem(p)
    wf = table_worker_value_function(exact_worker_values(space, p, prob_v(space, p), prob.market))
    u = p.b * 1.3 / (p.rho + p.delta_r)
    x = torch.tensor([1.3, 1.0], dtype=torch.float64)
    firms = FirmBatch(
        torch.tensor([1.2, 1.2], dtype=torch.float64),
        torch.ones(2, dtype=torch.float64),
        torch.stack([x, x]),
        torch.ones(2, 2, dtype=torch.float64),
        torch.tensor([[True, False], [True, True]]),
    )
    firms.h[:, 1] = 1.3
    for dtype in (torch.float64, torch.float32):
        w = torch.tensor([[0.52, 0.0], [2.0, 2.0]], dtype=dtype)
        out = wf.values(firms, w)
        assert out.dtype == dtype
        expected = (0.52 + (p.delta_f + p.delta_m) * u) / (p.rho + p.delta_f + p.delta_m + p.delta_r)
        assert float(out[0, 0]) == pytest.approx(expected, rel=1e-6 if dtype == torch.float32 else 1e-13)
        assert out[1].tolist() == [0.0, 0.0]
