"""The V equation of MODEL.md section 4 on a finite state space, with exact expectations.

For a firm state ``S`` with ``n`` workers, counts ``c_j`` and meeting rate ``m(S) = (n+1) ω``
below the cap (0 at the cap, MODEL.md section 10), with γ^E = 0:

    ρ V(S) = F(S) − δ_f (V(S) − Σ_i U(x_i))
           + m(S) [ s^N Σ_j χ^N(x_j) max{Δ(S⊕x_j, x_j), 0}
                  + s^E Σ_{(j, S_p)} χ^E(x_j, S_p) B(S, S_p, x_j) ]
           + Σ_j c_j [ (δ_r + δ_m)(V(S⊖x_j) − V(S)) + δ_m U(x_j) ]
           + Σ_j c_j (λ + ψ^E) max{−Δ(S, x_j), 0},

``Δ(S, x) = V(S) − V(S⊖x) − U(x)``, ``B(S, S_p, x) = max{Δ(S⊕x, x) − max{Δ(S_p, x), 0}, 0}``.
The expectations over χ^N and χ^E are exact sums over worker types and (type, firm state) pairs.

The equation is piecewise linear in V. Fixing the decisions (:class:`Policies`: hire iff
``Δ(S⊕x, x) > 0``, separate iff ``Δ(S, x) < 0``, poach iff ``B > 0``, and the sign of the
current employer's ``Δ(S_p, x)`` inside ``B``) makes it linear; :func:`solve_values` alternates
solving that linear system and re-reading the decisions (policy iteration, a semismooth Newton
method) until the decisions repeat, so the result solves the nonlinear equation up to the
rounding of one dense linear solve (:mod:`lotj.exact.linalg`). :func:`hjb_residual` evaluates the
equation with its max terms directly, to check any V.

Ties: a decision whose gain (Δ for hiring and separating, the argument of B for poaching) is within
``TIE_TOL · max|V|`` of zero is a tie. Either choice solves the equation (the max term is the same to
that tolerance), so policy iteration stops as soon as the decisions it reads differ from the ones V
was computed under only in ties, and names them (:attr:`ValueSolution.ties`). Without this rule an
exact tie (a surplus that is zero in exact arithmetic) would flip with the last bit of rounding,
and whether the iteration settled or cycled would depend on the machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lotj.economy.params import EconomyParams
from lotj.exact.linalg import solve
from lotj.exact.market import Market
from lotj.exact.states import StateSpace

#: Relative size of the HJB residual (|R| / (ρ max|V|)) accepted as an exact solution.
RESIDUAL_TOL = 1e-12
#: A decision whose gain is within this fraction of max|V| of zero is a tie (module docstring).
TIE_TOL = 1e-9


class ValueIterationError(RuntimeError):
    """The V equation could not be solved for the given distributions."""


@dataclass
class Surpluses:
    """Δ and the poacher's gain of every decision, from a value table (MODEL.md section 4).

    ``own [N, J]``: Δ(S, x_j) (0 where ``c_j = 0``); ``hire [N, J]``: Δ(S⊕x_j, x_j) (``-inf`` at
    the cap, where no offer is made); ``gain [N, J, N]``: ``Δ(S⊕x_j, x_j) − max{Δ(S_p, x_j), 0}``,
    the argument of B for poacher ``S``, worker type ``j``, current employer ``S_p``
    (``-inf`` where ``S`` is at the cap or ``S_p`` has no worker of type ``j``).
    """

    own: np.ndarray
    hire: np.ndarray
    gain: np.ndarray

    @classmethod
    def of(cls, space: StateSpace, v: np.ndarray) -> Surpluses:
        has = space.minus >= 0
        own = np.where(has, v[:, None] - v[np.where(has, space.minus, 0)] - space.u_type, 0.0)
        room = space.plus >= 0
        hire = np.where(room, v[np.where(room, space.plus, 0)] - v[:, None] - space.u_type, -np.inf)
        gain = hire[:, :, None] - np.maximum(own, 0.0).T[None, :, :]
        gain = np.where(has.T[None, :, :], gain, -np.inf)
        return cls(own, hire, gain)


@dataclass
class Policies:
    """The decisions that make the V equation linear (module docstring); boolean arrays.

    ``hire [N, J]``, ``quit [N, J]`` (Δ(S, x_j) < 0 for a present worker), ``positive [N, J]``
    (Δ(S, x_j) > 0: the current employer's surplus enters B), ``poach [N, J, N]`` (B > 0).
    """

    hire: np.ndarray
    quit: np.ndarray
    positive: np.ndarray
    poach: np.ndarray

    @classmethod
    def none(cls, space: StateSpace) -> Policies:
        """No hiring, no poaching, no separation: the start of policy iteration."""
        n, j = space.counts.shape
        zeros = np.zeros((n, j), dtype=bool)
        return cls(zeros, zeros.copy(), zeros.copy(), np.zeros((n, j, n), dtype=bool))

    @classmethod
    def of(cls, space: StateSpace, s: Surpluses) -> Policies:
        """MODEL.md section 4: hire iff Δ(S⊕x, x) > 0, separate iff Δ(S, x) < 0, poach iff B > 0."""
        has = space.minus >= 0
        return cls(s.hire > 0, has & (s.own < 0), has & (s.own > 0), s.gain > 0)

    def same_as(self, other: Policies) -> bool:
        return all(np.array_equal(getattr(self, k), getattr(other, k)) for k in ("hire", "quit", "positive", "poach"))

    def differs_only_in_ties(self, other: Policies, s: Surpluses, tol: float) -> bool:
        """Whether every decision that differs between the two policies is a tie: its gain in ``s``
        within ``tol`` of zero, in the units of V (module docstring)."""
        return all(
            bool(np.all(np.abs(gain[differ]) <= tol))
            for differ, gain in (
                (self.hire != other.hire, s.hire),
                ((self.quit != other.quit) | (self.positive != other.positive), s.own),
                (self.poach != other.poach, s.gain),
            )
        )

    def differences(self, other: Policies, space: StateSpace, limit: int = 8) -> list[str]:
        """Readable names of the decisions that differ between two policies (at most ``limit``)."""
        out: list[str] = []
        for s, j in zip(*np.nonzero(self.hire != other.hire)):
            out.append(f"hire {space.describe_worker(j)} at {space.describe(s)}")
        for s, j in zip(*np.nonzero(self.quit != other.quit)):
            out.append(f"separate {space.describe_worker(j)} from {space.describe(s)}")
        for s, j, sp in zip(*np.nonzero(self.poach != other.poach)):
            out.append(f"poach {space.describe_worker(j)} from {space.describe(sp)} into {space.describe(s)}")
        return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


def _add_at(a: np.ndarray, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
    keep = vals != 0
    np.add.at(a, (rows[keep], cols[keep]), vals[keep])


def linear_system(space: StateSpace, p: EconomyParams, market: Market, pol: Policies) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` with ``A V = b`` the V equation under fixed decisions (module docstring)."""
    n_states, n_types = space.counts.shape
    rows = np.repeat(np.arange(n_states), n_types)
    a_mat = np.diag(np.full(n_states, p.rho + p.delta_f))
    rhs = space.F + p.delta_f * space.sum_u
    meet = market.meeting_rate(space)
    u = space.u_type

    # meetings: coefficient on Δ(S⊕x, x) = V(S⊕x) − V(S) − U(x), unmatched and employed workers met
    w = meet[:, None, None] * market.s_e * market.chi_e.T[None, :, :] * pol.poach  # [S, j, S_p]
    coef = meet[:, None] * market.s_n * market.chi_n[None, :] * pol.hire + w.sum(2)
    a_mat[np.diag_indices(n_states)] += coef.sum(1)
    _add_at(a_mat, rows, np.where(space.plus >= 0, space.plus, 0).ravel(), -coef.ravel())
    rhs -= coef @ u
    # ... minus the poacher's payment max{Δ(S_p, x), 0} = positive · (V(S_p) − V(S_p⊖x) − U(x))
    c = w * pol.positive.T[None, :, :]  # [S, j, S_p]
    a_mat += c.sum(1)
    for j in range(n_types):
        has = space.minus[:, j] >= 0
        cj = c[:, j, :][:, has]  # [S, S_p with a type-j worker]
        targets = space.minus[has, j]
        np.add.at(a_mat.T, targets, -cj.T)  # column S_p⊖x_j of every row S
    rhs += c.sum(2) @ u
    # retirement, match break and separations (quits, being poached with Δ < 0) of present workers
    sep = space.counts * (p.delta_r + p.delta_m + (p.lam + p.psi_e) * pol.quit)
    a_mat[np.diag_indices(n_states)] += sep.sum(1)
    _add_at(a_mat, rows, np.where(space.minus >= 0, space.minus, 0).ravel(), -sep.ravel())
    rhs += (space.counts * (p.delta_m + (p.lam + p.psi_e) * pol.quit)) @ u
    return a_mat, rhs


def hjb_residual(space: StateSpace, p: EconomyParams, market: Market, v: np.ndarray) -> np.ndarray:
    """The V equation's right side minus its left side, with every max term evaluated (``[N]``)."""
    s = Surpluses.of(space, v)
    meet = market.meeting_rate(space)
    hire = np.where(space.plus >= 0, np.maximum(s.hire, 0.0), 0.0)
    poach = np.maximum(s.gain, 0.0)  # -inf entries become 0
    meetings = meet * (market.s_n * hire @ market.chi_n + market.s_e * np.einsum("sjp,pj->s", poach, market.chi_e))
    v_minus = np.where(space.minus >= 0, v[np.where(space.minus >= 0, space.minus, 0)], 0.0)
    events = space.counts * ((p.delta_r + p.delta_m) * (v_minus - v[:, None]) + p.delta_m * space.u_type)
    separations = space.counts * (p.lam + p.psi_e) * np.maximum(-s.own, 0.0)
    return space.F - p.delta_f * (v - space.sum_u) + meetings + events.sum(1) + separations.sum(1) - p.rho * v


def relative_residual(space: StateSpace, p: EconomyParams, market: Market, v: np.ndarray) -> float:
    """max |residual| / (ρ max |V|): the scale-free size of the residual."""
    return float(np.abs(hjb_residual(space, p, market, v)).max() / (p.rho * np.abs(v).max()))


def decision_margins(
    space: StateSpace, s: Surpluses, hire: np.ndarray, keep: np.ndarray, poach: np.ndarray
) -> list[tuple[float, str]]:
    """``(|gain|, name)`` of every decision the boolean masks select: hiring ``hire [N, J]``, keeping a present
    worker ``keep [N, J]``, poaching ``poach [N, J, N]`` (except where the poacher's state with the worker added is
    the worker's own employer's state: the two Δ's are identical, a structural tie that never matters)."""
    out = [
        (abs(s.hire[st, j]), f"hire {space.describe_worker(j)} at {space.describe(st)}")
        for st, j in zip(*np.nonzero(hire))
    ]
    out += [
        (abs(s.own[st, j]), f"keep {space.describe_worker(j)} at {space.describe(st)}")
        for st, j in zip(*np.nonzero(keep & (space.minus >= 0)))
    ]
    same = space.plus[:, :, None] == np.arange(space.n_states)[None, None, :]
    for st, j, sp in zip(*np.nonzero(poach & ~same)):
        name = f"poach {space.describe_worker(j)} from {space.describe(sp)} into {space.describe(st)}"
        out.append((abs(s.gain[st, j, sp]), name))
    return out


def tied_decisions(space: StateSpace, s: Surpluses, tol: float) -> list[str]:
    """Names of the decisions whose gain is within ``tol`` of zero (in the units of V)."""
    margins = decision_margins(space, s, np.abs(s.hire) <= tol, np.abs(s.own) <= tol, np.abs(s.gain) <= tol)
    return [name for _, name in margins]


@dataclass
class ValueSolution:
    v: np.ndarray
    policies: Policies
    iterations: int
    residual: float
    #: the decisions at a tie in the solution (names; module docstring)
    ties: list[str] = field(default_factory=list)


def solve_values(
    space: StateSpace,
    p: EconomyParams,
    market: Market,
    start: Policies | None = None,
    max_iter: int = 500,
    tol: float = RESIDUAL_TOL,
) -> ValueSolution:
    """Solve the V equation given the distributions by policy iteration (module docstring).

    Stops when the decisions read from V are the ones V was computed under, or differ from them
    only in ties (``TIE_TOL``; named in the result); then V solves the nonlinear equation (checked:
    relative residual below ``tol``, plus what ties of gain up to ``TIE_TOL · max|V|`` can add,
    at most ``TIE_TOL`` times the largest total event rate over ρ). Raises ValueIterationError when
    the decisions revisit an earlier set (a cycle) or ``max_iter`` is reached.
    """
    pol = Policies.none(space) if start is None else start
    history: list[Policies] = []
    for it in range(1, max_iter + 1):
        a_mat, rhs = linear_system(space, p, market, pol)
        try:
            v = solve(a_mat, rhs)
        except RuntimeError as exc:  # torch.linalg.LinAlgError
            raise ValueIterationError(f"the V equation under fixed decisions is singular: {exc}") from None
        surpluses = Surpluses.of(space, v)
        new = Policies.of(space, surpluses)
        tie_tol = TIE_TOL * float(np.abs(v).max())
        if new.differs_only_in_ties(pol, surpluses, tie_tol):
            res = relative_residual(space, p, market, v)
            allowed = tol + TIE_TOL * float(np.diag(a_mat).max()) / p.rho
            if res > allowed:
                raise ValueIterationError(f"policy iteration stopped with relative residual {res:.3g} > {allowed:g}")
            return ValueSolution(v, pol, it, res, tied_decisions(space, surpluses, tie_tol))
        if any(new.same_as(old) for old in history):
            diff = new.differences(pol, space)
            raise ValueIterationError(
                "policy iteration for V cycles between decision sets given the distributions; flipping: "
                + "; ".join(diff)
            )
        history.append(pol)
        pol = new
    raise ValueIterationError(f"policy iteration for V did not settle in {max_iter} iterations")
