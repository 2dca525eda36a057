"""The W equation of MODEL.md section 5 on a finite state space, exactly, for any own wage.

With γ^E = 0 a worker's value ``W_i(S; w)`` depends on its own type ``j``, the state ``S`` of its firm
(which holds it: ``c_j(S) ≥ 1``) and its own wage ``w``. The *pairs* ``(S, j)`` are the unknowns. For a
pair with ``n_k`` coworkers of type ``k`` (``c_k − 1{k = j}``) the equation reads

    ρ W(S) = w + δ_f (U − W) + δ_m (U − W) − δ_r W
           + Σ_k n_k ℓ_k(S) (W(S⊖x_k) − W(S))                        coworkers leave
           + a_k(S) (W(S⊕x_k) − W(S))                                  coworkers arrive
           + λ Q(S; W) + ψ^E Σ_{S_p} Π(S_p) P(S, S_p; W),

with the per-coworker departure rate ``ℓ_k = δ_r + δ_m + λ 1{Δ(S,x_k) < 0} + ψ^E E_Π D_k`` (MODEL.md
section 5's three coworker rows) and the arrival rate of type ``k``,
``a_k = (n+1) ω [s^N χ^N(x_k) 1{Δ(S⊕x_k, x_k) > 0} + s^E Σ_{S_p} χ^E(x_k, S_p) 1{B(S, S_p, x_k) > 0}]``
(0 at the cap). Expectations are exact sums over χ^N, χ^E and Π; the decisions are read from V as
in :mod:`lotj.exact.bellman` (strict inequalities), so the W equation uses the same decisions as V.

**Regimes.** ``Q`` and ``P`` are resets to targets ``T`` (``Q, P = T − W``) or nothing (0). Which, depends
on W itself, but only on where W lies among the pair's *thresholds*: ``U`` and ``U + Δ`` (renegotiation),
and ``max{Δ_p, 0} + U`` for each poacher that triggers a counter-offer (MODEL.md section 5's table,
:func:`lotj.economy.wages.meeting_outcome`). The meetings whose outcome does not depend on W (a
separation at ``Δ < 0``, a move to the poacher at ``Δ_k < Δ_p``, a poacher at the cap) are fixed resets.
A *regime assignment* gives every pair the interval between two consecutive thresholds that its W lies
in; under it the equation is linear, ``A W = w·1 + b``, with ``A`` a nonsingular M-matrix (strictly
diagonally dominant: every rate is paid out of the diagonal, plus ``ρ + δ_f + δ_m + δ_r``). Hence

- for a fixed ``w``, :func:`solve_at_wage` iterates on the regime assignment (solve, re-read the
  intervals, repeat) until it repeats, and raises :class:`RegimeCycleError` naming the pairs that flip
  when the iteration revisits an earlier assignment;
- within one assignment W is *affine in w*, ``W = α + β w`` with ``β = A⁻¹ 1 > 0`` (an M-matrix's
  inverse is non-negative with a positive row sum): W is increasing in w;
- the fixed point is continuous in ``w`` (clips are continuous), so as ``w`` rises each pair's W crosses
  its thresholds upward one at a time. :func:`wage_curve` follows the assignments from one breakpoint to
  the next, up and down from a starting wage, and returns W of every pair as one continuous
  piecewise-affine function of ``w`` (:class:`WageCurve`): evaluating W at any wage and inverting
  ``W(S, j; w) = T`` are then lookups and one division.

numpy for the bookkeeping, torch on one thread for the dense solves (:mod:`lotj.exact.linalg`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lotj.economy.params import EconomyParams
from lotj.exact.bellman import Policies, Surpluses
from lotj.exact.linalg import solve
from lotj.exact.market import Market
from lotj.exact.states import StateSpace

#: Two thresholds of one pair closer than this (relative to max|W| scale) are one threshold.
THRESHOLD_MERGE = 1e-13


class RegimeCycleError(RuntimeError):
    """The regime iteration of the W equation revisited an earlier regime assignment."""

    def __init__(self, message: str, pairs: list[str]):
        super().__init__(message)
        self.pairs = pairs


@dataclass
class Pairs:
    """The unknowns of the W equation: every ``(S, j)`` with a type-``j`` worker at ``S``.

    ``state [P]``, ``wtype [P]``; ``index [N, J]``: the pair of ``(S, j)`` or ``-1``."""

    state: np.ndarray
    wtype: np.ndarray
    index: np.ndarray

    @classmethod
    def of(cls, space: StateSpace) -> Pairs:
        state, wtype = np.nonzero(space.counts > 0)
        index = -np.ones(space.counts.shape, dtype=np.int64)
        index[state, wtype] = np.arange(len(state))
        return cls(state, wtype, index)

    def __len__(self) -> int:
        return len(self.state)


@dataclass
class WorkerProblem:
    """Everything the W equation reads from V and the market, per pair (module docstring).

    ``base [P, P]``: the linear part without the own resets (diagonal ``ρ + δ_f + δ_m + δ_r`` plus every
    coworker rate; off-diagonal minus the coworker rates); ``const [P]``: ``(δ_f + δ_m) U``;
    ``fixed_rate [P]``, ``fixed_value [P]``: the W-independent resets (rate and rate-weighted target sum);
    ``thresholds [P, L]``: each pair's sorted distinct thresholds (``+inf`` padded), ``n_thresholds [P]``;
    ``reneg [P]``: λ applies to the clip into ``[U, U + Δ]`` (Δ ≥ 0); ``counter_lo [P, M]`` and
    ``counter_rate [P, M]``: the lower edges ``max{Δ_p, 0} + U`` of the counter-offer clips and their rates
    ``ψ^E Π(S_p)``; ``u [P]``, ``delta [P]``: U and Δ(S, x_j) of the pair's worker.
    """

    space: StateSpace
    params: EconomyParams
    pairs: Pairs
    surpluses: Surpluses
    policies: Policies
    market: Market
    base: np.ndarray
    const: np.ndarray
    fixed_rate: np.ndarray
    fixed_value: np.ndarray
    thresholds: np.ndarray
    n_thresholds: np.ndarray
    reneg: np.ndarray
    counter_lo: np.ndarray
    counter_rate: np.ndarray
    u: np.ndarray
    delta: np.ndarray
    arrival: np.ndarray  #: [N, J] a_k(S)
    departure: np.ndarray  #: [N, J] ℓ_k(S)

    def describe(self, k: int) -> str:
        space, pairs = self.space, self.pairs
        return f"{space.describe_worker(int(pairs.wtype[k]))} at {space.describe(int(pairs.state[k]))}"

    # ------------------------------------------------------------------ regimes
    def resets(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rate [P], rate-weighted target sum [P])`` of every own reset active at the values ``W``: the
        terms ``λ Q + ψ^E E_Π P`` read ``value − rate · W`` (module docstring). Strict inequalities: a W on
        a threshold resets to it, which is the same as no reset."""
        p = self.params
        rate, value = self.fixed_rate.copy(), self.fixed_value.copy()
        top = self.u + self.delta
        low = self.reneg & (W < self.u)
        high = self.reneg & (W > top)
        rate += p.lam * (low | high)
        value += p.lam * np.where(low, self.u, np.where(high, top, 0.0))
        below = W[:, None] < self.counter_lo  # counter-offer: raised to max{Δ_p, 0} + U
        above = (W > top)[:, None] & (self.counter_rate > 0)  # firm's participation binds: cut to Δ_k + U
        rate += (self.counter_rate * (below | above)).sum(1)
        target = np.where(below, self.counter_lo, np.where(above, top[:, None], 0.0))
        value += (self.counter_rate * target).sum(1)
        return rate, value

    def position(self, W: np.ndarray) -> np.ndarray:
        """The regime assignment of the values ``W``: how many of its thresholds each pair's W exceeds."""
        return (W[:, None] > self.thresholds).sum(1)

    def representative(self, pos: np.ndarray) -> np.ndarray:
        """A value inside each pair's interval ``pos`` (to read the resets of an assignment)."""
        rows = np.arange(len(pos))
        lo = np.where(pos > 0, self.thresholds[rows, np.maximum(pos - 1, 0)], -np.inf)
        last = self.thresholds.shape[1] - 1
        hi = np.where(pos < self.n_thresholds, self.thresholds[rows, np.minimum(pos, last)], np.inf)
        out = 0.5 * (lo + hi)
        out = np.where(np.isinf(lo) & np.isinf(hi), 0.0, out)
        out = np.where(np.isinf(lo) & np.isfinite(hi), hi - 1.0, out)
        return np.where(np.isfinite(lo) & np.isinf(hi), lo + 1.0, out)

    def affine(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(α, β)`` with ``W = α + β w`` under the regime assignment ``pos`` (module docstring)."""
        rate, value = self.resets(self.representative(pos))
        a = self.base + np.diag(rate)
        sol = solve(a, np.stack([self.const + value, np.ones(len(rate))], 1))
        return sol[:, 0], sol[:, 1]


def worker_problem(space: StateSpace, p: EconomyParams, v: np.ndarray, market: Market) -> WorkerProblem:
    """The W equation of the pairs of ``space`` given V (a table over the states) and the market."""
    if p.gamma_e != 0.0:
        raise ValueError("the exact W needs gamma_e = 0 (a finite state space)")
    s = Surpluses.of(space, v)
    pol = Policies.of(space, s)
    pairs = Pairs.of(space)
    n_pairs, n_types = len(pairs), space.n_worker_types
    st, wt = pairs.state, pairs.wtype

    # rates of the firm's other workers (the same as the stationary law's, lotj.exact.stationary)
    meet = market.meeting_rate(space)
    arrival = meet[:, None] * (
        market.s_n * market.chi_n[None, :] * pol.hire + market.s_e * np.einsum("sjp,pj->sj", pol.poach, market.chi_e)
    )
    moves = p.psi_e * np.einsum("ajs,a->sj", pol.poach, market.pi)  # Σ_{S'} Π(S') 1{B(S', S, x_j) > 0}
    departure = p.delta_r + p.delta_m + (p.lam + p.psi_e) * pol.quit + np.where(pol.quit, 0.0, moves)

    base = np.zeros((n_pairs, n_pairs))
    diag = np.full(n_pairs, p.rho + p.delta_f + p.delta_m + p.delta_r)
    for k in range(n_types):
        others = space.counts[st, k] - (wt == k)
        has = others > 0
        rate = others * departure[st, k]
        diag += np.where(has, rate, 0.0)
        dest = pairs.index[np.where(has, space.minus[st, k], 0), wt]
        np.add.at(base, (np.nonzero(has)[0], dest[has]), -rate[has])
        grows = (space.plus[st, k] >= 0) & (arrival[st, k] > 0)
        diag += np.where(grows, arrival[st, k], 0.0)
        dest = pairs.index[np.where(grows, space.plus[st, k], 0), wt]
        np.add.at(base, (np.nonzero(grows)[0], dest[grows]), -arrival[st[grows], k])
    base[np.diag_indices(n_pairs)] += diag

    u = space.u_type[wt]
    delta = s.own[st, wt]
    quit = delta < 0
    const = (p.delta_f + p.delta_m) * u

    # own meetings: Δ_k = delta, Δ_p = hire surplus of the poacher (-inf at the cap: no offer)
    pi = market.pi
    d_p = s.hire[:, wt].T  # [P, N]
    full = space.at_cap[None, :] | ~np.isfinite(d_p)
    rate_p = p.psi_e * pi[None, :] * np.ones((n_pairs, 1))
    neg = quit[:, None]
    moves_p = ~neg & ~full & (delta[:, None] < d_p)
    fixed = neg | moves_p
    fixed_rate = p.lam * quit + (rate_p * fixed).sum(1)
    fixed_target = np.where(neg, u[:, None], np.where(moves_p, (delta + u)[:, None], 0.0))
    fixed_value = p.lam * quit * u + (rate_p * fixed_target).sum(1)
    clip_p = ~neg & ~full & ~moves_p & (pi[None, :] > 0)
    counter_lo = np.where(clip_p, np.maximum(np.where(np.isfinite(d_p), d_p, 0.0), 0.0) + u[:, None], -np.inf)
    counter_rate = np.where(clip_p, rate_p, 0.0)

    # thresholds: U, U + Δ (Δ ≥ 0), and each counter-offer edge; merged when equal to rounding
    scale = max(1.0, float(np.abs(v).max()))
    rows = []
    for k in range(n_pairs):
        if quit[k]:
            rows.append(np.zeros(0))
            continue
        t = np.concatenate([[u[k], u[k] + delta[k]], counter_lo[k, clip_p[k]]])
        t = np.sort(t)
        keep = np.concatenate([[True], np.diff(t) > THRESHOLD_MERGE * scale])
        rows.append(t[keep])
    width = max(1, max(len(r) for r in rows))
    thresholds = np.full((n_pairs, width), np.inf)
    for k, r in enumerate(rows):
        thresholds[k, : len(r)] = r
    n_thr = np.array([len(r) for r in rows], dtype=np.int64)
    return WorkerProblem(
        space=space,
        params=p,
        pairs=pairs,
        surpluses=s,
        policies=pol,
        market=market,
        base=base,
        const=const,
        fixed_rate=fixed_rate,
        fixed_value=fixed_value,
        thresholds=thresholds,
        n_thresholds=n_thr,
        reneg=~quit,
        counter_lo=counter_lo,
        counter_rate=counter_rate,
        u=u,
        delta=delta,
        arrival=arrival,
        departure=departure,
    )


@dataclass
class RegimeSolution:
    """W of every pair at one wage, with its regime assignment and the iterations it took."""

    W: np.ndarray
    position: np.ndarray
    iterations: int


def solve_at_wage(
    prob: WorkerProblem, w: float, start: np.ndarray | None = None, max_iter: int = 200
) -> RegimeSolution:
    """W of every pair at the own wage ``w`` by regime iteration (module docstring), from the assignment
    ``start`` (default: every W at ``U``'s interval from below). Raises RegimeCycleError on a cycle."""
    pos = prob.position(prob.u) if start is None else start
    seen: list[np.ndarray] = []
    for it in range(1, max_iter + 1):
        alpha, beta = prob.affine(pos)
        W = alpha + beta * w
        new = prob.position(W)
        if np.array_equal(new, pos):
            return RegimeSolution(W, pos, it)
        if any(np.array_equal(new, old) for old in seen):
            flips = np.nonzero(new != pos)[0]
            names = [f"{prob.describe(int(k))}: interval {int(pos[k])} -> {int(new[k])}" for k in flips[:8]]
            raise RegimeCycleError(
                f"the regime iteration of the W equation at w = {w:.6g} cycles; pairs that flip: " + "; ".join(names),
                names,
            )
        seen.append(pos)
        pos = new
    raise RegimeCycleError(f"the regime iteration of W at w = {w:.6g} did not settle in {max_iter} steps", [])


@dataclass
class WageCurve:
    """W of every pair as a continuous piecewise-affine function of the own wage (module docstring).

    ``knots [K]`` (increasing): the breakpoints; segment ``m`` (``0..K``) covers ``knots[m-1] ≤ w ≤
    knots[m]`` (unbounded at both ends) with ``W = alpha[m] + beta[m] w`` (each ``[P]``) and regime
    assignment ``positions[m]``.
    """

    problem: WorkerProblem
    knots: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    positions: np.ndarray

    def segment(self, w: np.ndarray | float) -> np.ndarray:
        return np.searchsorted(self.knots, np.asarray(w, dtype=np.float64), side="left")

    def values(self, w: np.ndarray | float) -> np.ndarray:
        """W of every pair at each wage: ``[len(w), P]`` (``[P]`` for a scalar)."""
        w = np.asarray(w, dtype=np.float64)
        m = self.segment(w)
        return self.alpha[m] + self.beta[m] * w[..., None]

    def value(self, pair: np.ndarray, w: np.ndarray) -> np.ndarray:
        """W of ``pair[r]`` at wage ``w[r]``."""
        pair, w = np.broadcast_arrays(np.asarray(pair), np.asarray(w, dtype=np.float64))
        m = self.segment(w)
        return self.alpha[m, pair] + self.beta[m, pair] * w

    def invert(self, pair: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The wage ``w`` with ``W(pair; w) = target``, elementwise (W is increasing: one solution)."""
        pair, target = np.broadcast_arrays(np.asarray(pair), np.asarray(target, dtype=np.float64))
        # W of each pair at every knot, increasing along the knots
        at_knots = self.alpha[: len(self.knots)][:, pair] + self.beta[: len(self.knots)][:, pair] * self.knots[:, None]
        m = (at_knots < target[None, ...]).sum(0)  # the segment holding the target
        return (target - self.alpha[m, pair]) / self.beta[m, pair]


def wage_curve(prob: WorkerProblem, w_start: float = 0.0, max_segments: int = 200_000) -> WageCurve:
    """Follow the regime assignments from ``w_start`` up and down through every breakpoint (module
    docstring): the whole of ``w ↦ W(·; w)``. At a breakpoint, the pairs whose W reaches the edge of its
    interval move to the next interval (up when following rising wages, down when falling)."""
    start = solve_at_wage(prob, w_start).position
    rows = np.arange(len(prob.pairs))
    width = prob.thresholds.shape[1]

    def walk(direction: int) -> tuple[list[float], list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        pos = start.copy()
        knots: list[float] = []
        segs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        w_here = w_start
        for _ in range(max_segments):
            alpha, beta = prob.affine(pos)
            segs.append((alpha, beta, pos.copy()))
            if direction > 0:
                edge = np.where(pos < prob.n_thresholds, prob.thresholds[rows, np.minimum(pos, width - 1)], np.inf)
            else:
                edge = np.where(pos > 0, prob.thresholds[rows, np.maximum(pos - 1, 0)], -np.inf)
            with np.errstate(invalid="ignore"):
                cross = np.where(np.isfinite(edge), (edge - alpha) / beta, direction * np.inf)
            # crossings behind the current wage (rounding) count as at the current wage
            cross = np.maximum(cross, w_here) if direction > 0 else np.minimum(cross, w_here)
            nxt = float(cross.min() if direction > 0 else cross.max())
            if not np.isfinite(nxt):
                return knots, segs
            tol = 1e-12 * max(1.0, abs(nxt))
            hit = np.abs(cross - nxt) <= tol
            pos = pos + direction * hit
            knots.append(nxt)
            w_here = nxt
        raise RuntimeError(f"the W curve has more than {max_segments} segments")

    up_knots, up_segs = walk(+1)
    down_knots, down_segs = walk(-1)
    # segments in increasing w: the downward walk reversed (its first is the start segment), then the upward
    segs = down_segs[::-1] + up_segs[1:]
    knots = np.array(down_knots[::-1] + up_knots)
    alpha = np.stack([s[0] for s in segs])
    beta = np.stack([s[1] for s in segs])
    positions = np.stack([s[2] for s in segs])
    # zero-length segments (several crossings at one wage) are harmless: keep knots non-decreasing
    return WageCurve(prob, knots, alpha, beta, positions)


def exact_worker_values(
    space: StateSpace, p: EconomyParams, v: np.ndarray, market: Market, w_start: float = 0.0
) -> WageCurve:
    """The exact ``W(S, j; w)`` of every pair for every wage, given V and the market (module docstring)."""
    return wage_curve(worker_problem(space, p, v, market), w_start)
