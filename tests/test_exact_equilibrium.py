"""The equilibrium fixed point of the exact solver: the validation preset, decision cycles, ties."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lotj.config import load_config
from lotj.economy.params import EconomyParams
from lotj.exact import NoPureEquilibriumError, solve_equilibrium, stationary_distribution
from lotj.exact.bellman import Policies, solve_values
from lotj.exact.market import Distribution, Market
from lotj.exact.states import StateSpace


@pytest.fixture(scope="module")
def small():
    p = load_config(["conf=exact_small"]).economy
    return p, solve_equilibrium(p)


def test_preset_equilibrium_is_pure_and_exact(small):
    """How fast it solves is benchmarks' business (docs/validation.md records 0.15-0.6 s), not a test's."""
    p, sol = small
    assert sol.n_states == 70
    assert sol.residual < 1e-12
    assert sol.imbalance < 1e-12
    # pure: no decision that carries flow is within 1e-9 max|V| of indifference (else solve raises)
    assert sol.margin.value > 1e-9


def test_preset_statistics_are_the_documented_ones(small):
    """The solver is deterministic: its statistics are those recorded in docs/validation.md, to the
    printed digits (half a unit in the last place), and consistent with its own distribution."""
    p, sol = small
    space, dist = sol.space, sol.dist
    # e is employment per worker, E / N_w with E = Σ n χ(n); ω and s^N follow MODEL.md section 3
    assert sol.e == pytest.approx(dist.employed(space) / p.n_w, rel=1e-12)
    u = 1.0 - sol.e
    assert sol.omega * dist.mean_n_plus_one(space) == pytest.approx(p.n_w * (sol.e * p.psi_e + u * p.psi_n), rel=1e-12)
    assert abs(sol.e - 0.63573) <= 5e-6
    assert abs(sol.omega - 0.47723) <= 5e-6
    assert abs(sol.mean_size - 1.48921) <= 5e-6
    assert abs(sol.en_rate - 0.10362) <= 5e-6 and abs(sol.ne_rate - 0.25147) <= 5e-6
    # the cap rarely binds: well under 1% of firms are at it
    assert sol.cap_share < 0.005
    # better firms are bigger: the high-z type holds more workers per firm
    sizes = [sol.dist.chi[sol.space.firm_type == f] @ sol.space.size[sol.space.firm_type == f] for f in (0, 1)]
    assert sizes[1] > sizes[0]


def test_preset_equilibrium_is_the_same_from_other_starting_distributions(small):
    p, sol = small
    space = sol.space
    rng = np.random.default_rng(11)
    for _ in range(2):
        chi = rng.random(space.n_states) ** 3
        chi *= 0.6 / (chi @ space.size)
        deficit = 1.0 - chi.sum()
        assert deficit > 0
        for f in range(space.n_firm_types):
            chi[space.empty_state(f)] += deficit * space.p_f[f]
        u = (p.n_w - chi @ space.size) * rng.dirichlet(np.ones(space.n_worker_types))
        other = solve_equilibrium(p, start=Distribution(chi, u))
        assert other.policies.same_as(sol.policies)
        assert np.abs(other.v - sol.v).max() < 1e-10 * np.abs(sol.v).max()
        assert other.e == pytest.approx(sol.e, rel=1e-12)


def test_summary_is_json_ready(small):
    """The summary written for users (lotj.validate) reads back from JSON with the solution's own numbers under
    their names; the size distribution has one entry for each n = 0..n_max, and its means are the solution's
    mean workforce (all firms) and mean size (firms with n >= 1)."""
    p, sol = small
    back = json.loads(json.dumps(sol.summary()))
    assert back["n_states"] == 70
    expected = {
        "outer_iterations": sol.outer_iterations,
        "hjb_relative_residual": sol.residual,
        "flow_imbalance": sol.imbalance,
        "e": sol.e,
        "omega": sol.omega,
        "s_n": sol.market.s_n,
        "s_e": sol.market.s_e,
        "mean_size": sol.mean_size,
        "mean_n": sol.mean_n,
        "en_rate": sol.en_rate,
        "ne_rate": sol.ne_rate,
        "cap_share": sol.cap_share,
        "cap_meeting_share": sol.cap_meeting_share,
        "unmatched_by_type": sol.dist.u.tolist(),
        "purity_margin": sol.margin.value,
        "closest_decision": sol.margin.decision,
    }
    assert {k: back[k] for k in expected} == expected
    assert back["solve_seconds"] == sol.solve_seconds
    sizes = np.array(back["size_distribution"])
    assert len(sizes) == p.n_max + 1
    assert sizes.sum() == pytest.approx(1.0, abs=1e-13)
    n = np.arange(p.n_max + 1)
    assert n @ sizes == pytest.approx(sol.mean_n, rel=1e-12)
    assert n[1:] @ sizes[1:] / sizes[1:].sum() == pytest.approx(sol.mean_size, rel=1e-12)
    assert sizes[-1] == pytest.approx(sol.cap_share, rel=1e-12)


# ------------------------------------------------------------------------ no pure equilibrium

#: One firm type, cap 1, a good and a marginal worker type. Hiring the marginal type fills the firm's
#: only slot; whether that pays depends on how many good workers are looking for jobs, which depends
#: on whether firms hire the marginal type: if they do, unmatched workers are mostly good ones and
#: waiting pays (do not hire); if they do not, the marginal type piles up in unemployment, good
#: workers are scarce among job seekers and hiring the marginal one pays. No pure equilibrium.
CYCLE = dict(
    gamma_e=0.0,
    n_w=0.8,
    n_max=1,
    b=0.5,
    rho=0.05,
    delta_r=0.05,
    delta_m=0.1,
    delta_f=0.02,
    lam=1.0,
    psi_e=0.5,
    psi_n=2.0,
    worker_types=[[1.0, 1.0, 0.8], [0.45, 1.0, 0.2]],
    firm_types=[[1.0, 1.0, 1.0]],
)


def test_a_decision_cycle_is_detected_and_named():
    with pytest.raises(NoPureEquilibriumError, match="cycle") as info:
        solve_equilibrium(EconomyParams(**CYCLE))
    assert any("hire worker type 2 (h=0.45" in d for d in info.value.decisions)


@pytest.mark.parametrize("hire_marginal", [True, False])
def test_the_cycle_economy_has_no_pure_equilibrium(hire_marginal):
    """Check the two candidate decisions by hand: under each, the best response is the other one."""
    p = EconomyParams(**CYCLE)
    space = StateSpace.from_params(p)
    empty = space.empty_state(0)
    pol = Policies.none(space)
    pol.hire[empty] = [True, hire_marginal]  # good workers are always worth hiring
    for j in range(2):
        holds = space.counts[:, j] == 1
        keep = j == 0 or hire_marginal
        pol.quit[holds, j] = not keep
        pol.positive[holds, j] = keep
    dist = stationary_distribution(space, p, pol).dist
    best = solve_values(space, p, Market.of(space, p, dist)).policies
    assert best.hire[empty, 0]
    assert best.hire[empty, 1] == (not hire_marginal)


def _tied_economy(b: float) -> EconomyParams:
    """z = b with cap 1: a lone worker's surplus is (z − b) h / (…) = 0 whatever the distribution."""
    return EconomyParams(
        gamma_e=0.0, n_w=0.8, n_max=1, b=b, worker_types=[[1.0, 1.0, 1.0]], firm_types=[[1.0, 1.0, 1.0]]
    )


# b exactly at the tie, and a few ulps either side: the verdict must not depend on the last bit
TIE_PERTURBATIONS = [1.0, 1.0 + 1e-15, 1.0 - 1e-15, 1.0 + 4.4e-16, 1.0 - 2.2e-16]


@pytest.mark.parametrize("factor", TIE_PERTURBATIONS)
def test_a_decision_at_indifference_is_refused(factor):
    """Employment hangs on a tie-break; the solver says so (naming the tied decision) instead of
    returning one side of the tie or reporting a cycle that rounding decided."""
    with pytest.raises(NoPureEquilibriumError, match="indifference") as info:
        solve_equilibrium(_tied_economy(1.0 * factor))
    hire = "hire worker type 1 (h=1, a=1) at firm type 1 (z=1, q=1) with workers {}"
    keep = "keep worker type 1 (h=1, a=1) at firm type 1 (z=1, q=1) with workers {1: 1}"
    assert hire in info.value.decisions and set(info.value.decisions) <= {hire, keep}


@pytest.mark.parametrize("factor", TIE_PERTURBATIONS)
def test_policy_iteration_settles_on_a_tie_and_names_it(factor):
    """Given any market, V does not hang on the tie (both choices give the same V): policy iteration
    stops instead of cycling, V is the closed form, and the tied decision is named."""
    p = _tied_economy(1.0 * factor)
    space = StateSpace.from_params(p)
    dist = Distribution.initial(space, p.n_w)
    sol = solve_values(space, p, Market.of(space, p, dist))
    empty, one = space.empty_state(0), space.plus[space.empty_state(0), 0]
    assert sol.ties == [
        "hire worker type 1 (h=1, a=1) at firm type 1 (z=1, q=1) with workers {}",
        "keep worker type 1 (h=1, a=1) at firm type 1 (z=1, q=1) with workers {1: 1}",
    ]
    # an empty firm never gains from a hire (0 surplus), so V(empty) = 0; a lone worker's match is
    # worth V1 = (z h + (δ_f + δ_m) U) / (ρ + δ_f + δ_r + δ_m) with U = b h / (ρ + δ_r) = V1 at z = b
    u = p.b / (p.rho + p.delta_r)
    assert sol.v[empty] == pytest.approx(0.0, abs=1e-12)
    assert sol.v[one] == pytest.approx(u, rel=1e-12)


def test_no_meetings_means_no_hiring_and_no_employment():
    """ψ^N = ψ^E = 0: ω = s^N = s^E = 0 (MODEL.md section 10); nobody is ever hired."""
    p = load_config(["conf=exact_small", "economy.psi_n=0", "economy.psi_e=0"]).economy
    sol = solve_equilibrium(p)
    assert sol.omega == 0.0 and sol.e == pytest.approx(0.0, abs=1e-12)
    assert sol.dist.u.sum() == pytest.approx(p.n_w, rel=1e-13)
    # an empty firm is worth nothing; a firm with workers is worth its output stream
    empty = sol.space.empty_state(1)
    assert sol.v[empty] == pytest.approx(0.0, abs=1e-12)
    one = sol.space.plus[empty, 1]  # z = 1.5 with one h = 1 worker, who never separates by choice
    z, h = 1.5, 1.0
    u = p.b * h / (p.rho + p.delta_r)
    # ρV1 = z h − δ_f (V1 − U) − (δ_r + δ_m) V1 + δ_m U  (V0 = 0)
    v1 = (z * h + (p.delta_f + p.delta_m) * u) / (p.rho + p.delta_f + p.delta_r + p.delta_m)
    assert sol.v[one] == pytest.approx(v1, rel=1e-13)
    # statistics over the employed, a set of rounding mass here, are undefined, not numbers
    summary = sol.summary()
    assert summary["mean_size"] is None and summary["en_rate"] is None
    assert summary["ne_rate"] == 0.0  # nobody unmatched is ever hired
    assert summary["purity_margin"] is None and summary["closest_decision"] == "none"  # no decision carries flow
    json.loads(json.dumps(summary, allow_nan=False))


def test_damped_search_finds_a_pure_equilibrium_that_simultaneous_best_responses_miss():
    """Adopting every best response at once cycles in this economy; adopting the most profitable
    changes first reaches decisions that are the best response to their own stationary distribution."""
    p = EconomyParams(
        gamma_e=0.0,
        n_w=0.915,
        n_max=4,
        eta=0.771,
        b=0.374,
        worker_types=[[1.085, 1.0, 0.3], [1.126, 1.0, 0.4], [1.409, 1.0, 0.3]],
        firm_types=[[1.395, 1.0, 0.5], [1.597, 1.0, 0.5]],
    )
    sol = solve_equilibrium(p)
    assert min(h["step_fraction"] for h in sol.history) < 1.0
    # the fixed point, checked from scratch: stationary law of the decisions, then V's best response
    dist = stationary_distribution(sol.space, p, sol.policies).dist
    again = solve_values(sol.space, p, Market.of(sol.space, p, dist))
    assert again.policies.same_as(sol.policies)
    assert np.abs(again.v - sol.v).max() < 1e-10 * np.abs(sol.v).max()


def test_the_purity_margin_is_the_closest_decision_that_carries_flow():
    """Every decision that carries flow at the equilibrium, listed by hand from V and the distribution: hiring
    x_j at a visited firm below the cap when unmatched x_j exist, keeping a present worker at a visited firm,
    poaching x_j from S_p into a visited firm below the cap when employed x_j at S_p exist (except into
    S_p's own state: the same Δ on both sides). Its |surplus| / max|V| is the margin the solver reports."""
    from lotj.exact.equilibrium import MASS_TOL, _purity_margin

    p = load_config(["conf=exact_small"]).economy
    sol = solve_equilibrium(p)
    space, v, chi, m = sol.space, sol.v, sol.dist.chi, sol.market
    assert m.omega > 0 and m.s_n > 0 and m.s_e > 0
    u = p.b * space.h / (p.rho + p.delta_r)

    def own(s, j):
        return v[s] - v[space.minus[s, j]] - u[j]

    hand = []
    for s in np.nonzero(chi > MASS_TOL)[0]:
        for j in range(space.n_worker_types):
            if space.counts[s, j] > 0:
                hand.append((abs(own(s, j)), f"keep {space.describe_worker(j)} at {space.describe(s)}"))
            if space.size[s] == p.n_max:
                continue
            gain = v[space.plus[s, j]] - v[s] - u[j]
            if m.chi_n[j] > MASS_TOL:
                hand.append((abs(gain), f"hire {space.describe_worker(j)} at {space.describe(s)}"))
            for sp in range(space.n_states):
                if m.chi_e[sp, j] > MASS_TOL and space.plus[s, j] != sp:
                    name = f"poach {space.describe_worker(j)} from {space.describe(sp)} into {space.describe(s)}"
                    hand.append((abs(gain - max(own(sp, j), 0.0)), name))
    scale = np.abs(v).max()
    listed = _purity_margin(space, m, sol.dist, v)
    assert sorted(name for _, name in listed) == sorted(name for _, name in hand)
    assert any(name.startswith("poach") for _, name in hand) and any(name.startswith("hire") for _, name in hand)
    by_name = dict((name, value) for value, name in listed)
    for value, name in hand:
        assert by_name[name] == pytest.approx(value / scale, rel=1e-9, abs=1e-15)
    closest = min(hand)
    assert sol.margin.decision == closest[1]
    assert sol.margin.value == pytest.approx(closest[0] / scale, rel=1e-9)


def test_values_given_another_distribution_are_its_exact_values(small):
    """values_given: V solved from scratch under the market of a given distribution (policy iteration started at
    the equilibrium's decisions only saves steps); at the equilibrium's own distribution it is the equilibrium V."""
    p, sol = small
    v_same, market_same = sol.values_given(sol.dist)
    assert np.abs(v_same - sol.v).max() < 1e-10 * np.abs(sol.v).max()
    assert market_same.e == pytest.approx(sol.e, rel=1e-13)
    space = sol.space
    chi = sol.dist.chi * (1.0 + 0.5 * np.cos(np.arange(space.n_states)))
    chi /= chi.sum()
    dist = Distribution(chi, (p.n_w - chi @ space.size) * space.p_w)
    v, market = sol.values_given(dist)
    assert market.e == pytest.approx(chi @ space.size / p.n_w, rel=1e-13)
    scratch = solve_values(space, p, Market.of(space, p, dist)).v
    assert np.abs(v - scratch).max() < 1e-10 * np.abs(scratch).max()
    assert np.abs(v - sol.v).max() > 1e-4 * np.abs(sol.v).max()  # another market, other values


def test_a_search_started_at_the_equilibrium_stops_there(small):
    """The outer loop starts from the given distribution: from the equilibrium's own, its first market is the
    equilibrium's and its best response the equilibrium's decisions, so it ends at the second iteration (the one
    that finds nothing to change). From the default start nobody is employed in the first market. The history
    records each iteration's market and step."""
    p, sol = small
    again = solve_equilibrium(p, start=sol.dist)
    assert again.outer_iterations == len(again.history) == 2
    assert again.policies.same_as(sol.policies)
    first = again.history[0]
    assert set(first) == {"iteration", "e", "omega", "policy_iterations", "step_fraction"}
    assert (first["iteration"], first["step_fraction"]) == (1, 1.0)
    assert first["e"] == pytest.approx(sol.e, rel=1e-12) and first["omega"] == pytest.approx(sol.omega, rel=1e-12)
    assert again.history[1]["iteration"] == 2
    assert sol.history[0]["e"] == 0.0 and sol.history[0]["omega"] == pytest.approx(p.n_w * p.psi_n, rel=1e-15)
    assert [h["iteration"] for h in sol.history] == list(range(1, sol.outer_iterations + 1))
    assert sol.outer_iterations > 2


def test_a_search_cut_short_says_so(small):
    """exact_small needs three outer iterations: with two the search stops without an answer and says why
    (no decision cycled, so none is named)."""
    p, sol = small
    assert sol.outer_iterations == 3
    with pytest.raises(NoPureEquilibriumError, match=r"^the decisions did not settle in 2 outer iterations$") as info:
        solve_equilibrium(p, max_iter=2)
    assert info.value.decisions == []
