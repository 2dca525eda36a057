"""The stationary equilibrium of a discrete economy, exactly (MODEL.md sections 3, 4, 6 and 10).

An equilibrium is V, the distributions (χ, χ^N) and ω such that V solves the HJB given the
distributions, the distributions are stationary under the decisions V implies, and the meeting
market clears (MODEL.md section 6). :func:`solve_equilibrium` iterates on the decisions:

1. from the distribution, the market: ω, s^N, s^E, χ^N, χ^E (:class:`lotj.exact.market.Market`);
2. V given the market, exactly (:func:`lotj.exact.bellman.solve_values`), and its decisions;
3. if they are the decisions the distribution is stationary under, stop: V is exact given the
   distribution and the distribution is stationary under V's decisions. Otherwise adopt them, take
   the stationary distribution under them (:func:`lotj.exact.stationary.stationary_distribution`)
   and repeat.

Decisions are discrete, so the loop ends exactly or revisits an earlier set of decisions: a
decision cycle. Adopting every best response at once can cycle where a pure equilibrium exists
(simultaneous best responses overshoot), so on a cycle the loop retries adopting only the changes
of largest |surplus| (a quarter of them, then fewer, down to one at a time). Whatever the path,
the result is checked as a fixed point: its decisions are the best response to the stationary
distribution they imply. When even single changes cycle, the economy has no equilibrium in pure
hire/poach/separation decisions that this search reaches (MODEL.md section 10), and
:class:`NoPureEquilibriumError` names the decisions that flip. The same error is raised when the
equilibrium found has a decision that carries flow (positive mass on both sides) within
``INDIFFERENCE_TOL`` of indifference: the distribution would then hang on a tie-break. The outer
loop treats ties as policy iteration does (:data:`lotj.exact.bellman.TIE_TOL`, the same tolerance):
best responses that differ from the current decisions only in ties end the loop, so an exact tie
gives this verdict on every machine instead of a cycle decided by rounding.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.value import ValueFunction
from lotj.exact.bellman import TIE_TOL, Policies, Surpluses, ValueSolution, decision_margins, solve_values
from lotj.exact.market import Distribution, Market
from lotj.exact.states import StateSpace
from lotj.exact.stationary import flow_imbalance, stationary_distribution
from lotj.exact.table import table_value_function
from lotj.exact.transitions import NEGLIGIBLE_MASS, annual_rates

#: A decision whose surplus is within this fraction of max|V| of zero is at indifference (the tie
#: tolerance of policy iteration, so that both loops call the same decisions ties).
INDIFFERENCE_TOL = TIE_TOL
#: States with less mass than this count as unvisited when decisions are checked for purity.
MASS_TOL = 1e-12


class NoPureEquilibriumError(RuntimeError):
    """The discrete economy has no equilibrium in pure decisions (MODEL.md section 10)."""

    def __init__(self, message: str, decisions: list[str]):
        super().__init__(message)
        self.decisions = decisions


@dataclass
class Margin:
    """The decision closest to indifference among those that carry flow."""

    value: float  #: |surplus| / max|V|
    decision: str


@dataclass
class ExactSolution:
    """The exact equilibrium of a discrete economy and its statistics."""

    params: EconomyParams
    space: StateSpace
    v: np.ndarray  #: V(S) for every state
    policies: Policies
    dist: Distribution
    market: Market
    en_rate: float | None  #: None when (almost) nobody is employed (``NEGLIGIBLE_MASS``)
    ne_rate: float | None  #: None when (almost) nobody is unmatched
    residual: float  #: max |HJB residual| / (ρ max|V|)
    imbalance: float  #: largest flow imbalance of the stationary distribution
    margin: Margin
    outer_iterations: int
    solve_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    # ---------------------------------------------------------------- the states and values
    @property
    def states(self) -> FirmBatch:
        """Every firm state as a FirmBatch (rows in state order)."""
        return self.space.firm_batch()

    @property
    def values(self) -> np.ndarray:
        return self.v

    def value_function(self) -> ValueFunction:
        """The exact V as a ValueFunction (:mod:`lotj.exact.table`)."""
        return table_value_function(self.space, self.v)

    def values_given(self, dist: Distribution) -> tuple[np.ndarray, Market]:
        """The exact V given the market of another distribution (e.g. a simulated population's,
        :meth:`Distribution.of_population`), by policy iteration from this equilibrium's decisions;
        with that market."""
        market = Market.of(self.space, self.params, dist)
        return solve_values(self.space, self.params, market, start=self.policies).v, market

    # ---------------------------------------------------------------- statistics
    @property
    def n_states(self) -> int:
        return self.space.n_states

    @property
    def e(self) -> float:
        """Employment rate."""
        return self.market.e

    @property
    def omega(self) -> float:
        return self.market.omega

    @property
    def mean_size(self) -> float | None:
        """Mean number of workers of firms with n ≥ 1 (MODEL.md section 10: firm-size statistics
        report firms with n ≥ 1; the source's unweighted average employer size). None when such firms
        have negligible mass (``NEGLIGIBLE_MASS``): a mean over rounding is no statistic."""
        active = self.space.size >= 1
        mass = float(self.dist.chi[active].sum())
        if mass <= NEGLIGIBLE_MASS:
            return None
        return float(self.dist.chi[active] @ self.space.size[active] / mass)

    @property
    def mean_n(self) -> float:
        """Mean workforce over all firms, empty ones included: ∫ n dχ = N_w e."""
        return float(self.dist.chi @ self.space.size)

    @property
    def cap_share(self) -> float:
        """Share of firms at the size cap."""
        return float(self.dist.chi[self.space.at_cap].sum())

    @property
    def cap_meeting_share(self) -> float:
        """Share of all meetings that reach a firm at the cap (void for the firm; MODEL.md section 10)."""
        return float(self.market.pi[self.space.at_cap].sum())

    def size_distribution(self) -> list[float]:
        """χ(n = 0), …, χ(n = n_max)."""
        return [float(self.dist.chi[self.space.size == n].sum()) for n in range(self.space.n_max + 1)]

    def summary(self) -> dict[str, Any]:
        """The key numbers as a JSON-ready dict."""
        return {
            "n_states": self.n_states,
            "solve_seconds": self.solve_seconds,
            "outer_iterations": self.outer_iterations,
            "hjb_relative_residual": self.residual,
            "flow_imbalance": self.imbalance,
            "e": self.e,
            "omega": self.omega,
            "s_n": self.market.s_n,
            "s_e": self.market.s_e,
            "mean_size": self.mean_size,
            "mean_n": self.mean_n,
            "en_rate": self.en_rate,
            "ne_rate": self.ne_rate,
            "cap_share": self.cap_share,
            "cap_meeting_share": self.cap_meeting_share,
            "size_distribution": self.size_distribution(),
            "unmatched_by_type": self.dist.u.tolist(),
            "purity_margin": float(self.margin.value) if math.isfinite(self.margin.value) else None,
            "closest_decision": self.margin.decision,
        }


def _purity_margin(space: StateSpace, market: Market, dist: Distribution, v: np.ndarray) -> list[tuple[float, str]]:
    """Every decision that carries flow, with |surplus| / max|V|, closest to indifference first."""
    scale = float(np.abs(v).max())
    visited = dist.chi > MASS_TOL
    hire = visited[:, None] & (space.plus >= 0) & (market.chi_n[None, :] > MASS_TOL)
    poach = visited[:, None, None] & (space.plus >= 0)[:, :, None] & (market.chi_e.T[None] > MASS_TOL)
    margins = decision_margins(
        space,
        Surpluses.of(space, v),
        hire & (market.omega > 0 and market.s_n > 0),
        visited[:, None] & (space.counts > 0),
        poach & (market.omega > 0 and market.s_e > 0),
    )
    return sorted(((gain / scale, name) for gain, name in margins), key=lambda t: t[0])


def _partial_step(current: Policies, best: Policies, s: Surpluses, fraction: float) -> tuple[Policies, int]:
    """``current`` with the ``ceil(fraction · n)`` changes towards ``best`` of largest |surplus| adopted
    (``n`` changed decisions; a worker's separation and the sign of its surplus change together).
    Returns the new decisions and ``n``."""
    hire = current.hire != best.hire
    own = (current.quit != best.quit) | (current.positive != best.positive)
    poach = current.poach != best.poach
    margins = np.concatenate([np.abs(s.hire[hire]), np.abs(s.own[own]), np.abs(s.gain[poach])])
    n = len(margins)
    take = np.zeros(n, dtype=bool)
    take[np.argsort(-margins, kind="stable")[: max(1, math.ceil(fraction * n))]] = True
    out = Policies(current.hire.copy(), current.quit.copy(), current.positive.copy(), current.poach.copy())
    k_h, k_o = int(hire.sum()), int(own.sum())
    for mask, chosen, names in (
        (hire, take[:k_h], ("hire",)),
        (own, take[k_h : k_h + k_o], ("quit", "positive")),
        (poach, take[k_h + k_o :], ("poach",)),
    ):
        cells = tuple(idx[chosen] for idx in np.nonzero(mask))
        for name in names:
            getattr(out, name)[cells] = getattr(best, name)[cells]
    return out, n


def solve_equilibrium(p: EconomyParams, max_iter: int = 1000, start: Distribution | None = None) -> ExactSolution:
    """The exact stationary equilibrium of the discrete economy ``p`` (module docstring), iterating from
    the distribution ``start`` (default: every firm newborn, every worker unmatched). Starting from
    other distributions is how one looks for other equilibria."""
    clock = time.perf_counter()
    p.validate()
    space = StateSpace.from_params(p)
    dist = Distribution.initial(space, p.n_w) if start is None else start
    current: Policies | None = None  # the decisions ``dist`` is stationary under
    tried: list[Policies] = []  # decisions adopted at the current step size
    fraction = 1.0
    cycle: list[str] = []
    history: list[dict[str, float]] = []
    vsol: ValueSolution | None = None
    imbalance = float("nan")
    for it in range(1, max_iter + 1):
        market = Market.of(space, p, dist)
        vsol = solve_values(space, p, market, start=None if vsol is None else vsol.policies)
        best = vsol.policies
        history.append(
            {
                "iteration": it,
                "e": market.e,
                "omega": market.omega,
                "policy_iterations": vsol.iterations,
                "step_fraction": fraction,
            }
        )
        if current is not None:
            tol = TIE_TOL * float(np.abs(vsol.v).max())
            if best.differs_only_in_ties(current, Surpluses.of(space, vsol.v), tol):
                break
        if current is None:
            step, n_changed = best, 0
        else:
            step, n_changed = _partial_step(current, best, Surpluses.of(space, vsol.v), fraction)
        if current is not None and any(step.same_as(old) for old in tried):
            # a decision cycle: retry with fewer, most profitable changes at a time before giving up
            cycle = cycle or best.differences(current, space, limit=12)
            if fraction * n_changed <= 1.0:
                raise NoPureEquilibriumError(
                    f"no pure equilibrium: the decisions cycle (outer iteration {it}, even when changed one at "
                    "a time); decisions that flip: " + "; ".join(cycle),
                    cycle,
                )
            fraction = max(fraction / 4.0, 0.5 / n_changed)
            tried = []
            step, _ = _partial_step(current, best, Surpluses.of(space, vsol.v), fraction)
        tried.append(step)
        current = step
        stat = stationary_distribution(space, p, current, start=dist)
        dist, imbalance = stat.dist, stat.imbalance
    else:
        raise NoPureEquilibriumError(
            f"the decisions did not settle in {max_iter} outer iterations"
            + ("; decisions that cycled: " + "; ".join(cycle) if cycle else ""),
            cycle,
        )
    assert vsol is not None
    margins = _purity_margin(space, market, dist, vsol.v)
    ties = [name for value, name in margins if value < INDIFFERENCE_TOL]
    if ties:
        raise NoPureEquilibriumError(
            "no pure equilibrium: decisions that carry flow sit at indifference (|surplus| < "
            f"{INDIFFERENCE_TOL:g} max|V|), so the distribution hangs on a tie-break: " + "; ".join(ties[:12]),
            ties,
        )
    margin = Margin(*margins[0]) if margins else Margin(float("inf"), "none")
    rates = annual_rates(space, p, vsol.policies, dist)
    check = float(np.abs(flow_imbalance(space, p, vsol.policies, np.concatenate([dist.chi, dist.u]))).max())
    return ExactSolution(
        params=p,
        space=space,
        v=vsol.v,
        policies=vsol.policies,
        dist=dist,
        market=market,
        en_rate=rates.en,
        ne_rate=rates.ne,
        residual=vsol.residual,
        imbalance=max(check, 0.0 if np.isnan(imbalance) else imbalance),
        margin=margin,
        outer_iterations=len(history),
        solve_seconds=time.perf_counter() - clock,
        history=history,
    )
