"""Exact wages of a discrete economy: the wage of every reset and the stationary wage distribution (MODEL.md section 5).

**Reset wages.** Every event that resets a worker's value to a target ``T`` sets its wage to the ``w*``
with ``W(S', j; w*) = T`` at the post-event pair ``(S', j)`` (:meth:`lotj.exact.worker_value.WageCurve.invert`).
A wage is therefore identified by its *origin*, the pair where it was set and its target:

- ``bottom`` of a pair: ``T = U`` (hire from non-employment at ``S⊕x``; renegotiation raise; a worker
  with ``Δ < 0`` at its employer poached at ``S_p⊕x``);
- ``top`` of a pair: ``T = U + Δ(S, x)`` (renegotiation cut; the firm's participation binding at a meeting);
- ``counter`` of a pair and a poacher ``S_p``: ``T = max{Δ_p, 0} + U`` (counter-offer);
- ``poached`` from a pair (employer ``S``) by a poacher ``S_p``: ``T = max{Δ(S, x), 0} + U`` at ``S_p⊕x``.

The set of origins is finite, so the wages of the economy are finitely many numbers.

**The stationary distribution of (pair, wage).** One worker's state is its pair ``(S, j)`` and the
origin of its current wage, or unmatched. It moves as a continuous-time Markov chain:

- its coworkers leave and arrive (rates of :func:`lotj.exact.worker_value.worker_problem`): the pair
  changes, the wage does not (MODEL.md section 5: between events wages stay fixed);
- a λ shock: separation if ``Δ < 0``; else to the pair's ``bottom`` if ``W(S, j; w) < U``, to its ``top`` if
  ``W > U + Δ``, nothing inside the bargaining set;
- an outside meeting with a poacher ``S_p ~ Π`` (rate ``ψ^E``), by the table of MODEL.md section 5: with
  ``Δ < 0`` to the poacher's ``bottom`` if it hires (``B > 0``), else unmatched; at a poacher at the cap
  nothing; poached (``B > 0``) to the ``poached`` origin at ``S_p⊕x``; ``W > U + Δ`` to ``top``;
  ``W < max{Δ_p, 0} + U`` to the ``counter`` origin; else nothing;
- its firm dies or the match breaks (``δ_f + δ_m``): unmatched; it retires (``δ_r``): it leaves the
  chain (its replacement enters as an unmatched worker);
- unmatched, it is hired by ``S' ~ Π`` that hires it (rate ``ψ^N Π(S')``) at the ``bottom`` of ``S'⊕x``.

The pair's moves do not depend on the wage, so the chain's marginal over pairs is the worker chain of
:mod:`lotj.exact.transitions`, and its stationary mass at a pair is ``c_j(S) χ(S)``. Given the
stationary unmatched masses ``u_j``, the masses ``m`` of the employed nodes solve the balance

    m_n r_n = Σ_{n'} m_{n'} q(n' → n) + Σ_j u_j h_j(n),

``r_n`` the total rate of leaving node ``n`` (every reset that changes its wage, every change of
pair, δ_f + δ_m + δ_r and the separations) and ``h_j(n)`` the hiring rate of an unmatched type-``j``
worker into node ``n``. So a wage's weight is the rate at which it is set times how long it lasts: it
lasts until the worker's next reset, separation or retirement (coworker changes carry it to other
pairs). The matrix ``diag(r) − q^T`` is a nonsingular M-matrix (``r_n ≥ δ_r + Σ q(n → ·)``), solved
sparse (SuperLU). Only the nodes reachable from a hire are built (breadth first).

The stationary *wage distribution* of employed workers (a point-in-time cross-section, what an annual
panel samples) puts mass ``m_n / Σ m`` on the wage of node ``n``. The *reset flows* ``m_n q(n → n')``
weight each reset wage by its equilibrium rate: :class:`ExactWages` reports the reset wages by cause with
those weights. :func:`simulate_wage_chain` samples the same chain for many workers and years, an
independent check of the balance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from lotj.exact.market import Distribution
from lotj.exact.worker_value import WageCurve, WorkerProblem

#: The reset causes, in the names of lotj.sim.wage_tracking.RESET_CAUSES.
CAUSES = ("hire", "poached", "counter_offer", "meeting_cut", "reneg_raise", "reneg_cut")
_CAUSE = {name: i for i, name in enumerate(CAUSES)}
#: Origin kinds.
BOTTOM, TOP, COUNTER, POACHED = 0, 1, 2, 3
#: A value within this fraction of max{|T|, U} of a threshold is on it (no reset), as in the simulator.
ON_THRESHOLD = 1e-10


@dataclass
class Origins:
    """Every wage the economy can set: ``pair [O]`` (post-event pair), ``kind [O]``, ``target [O]``, ``wage [O]``,
    ``other [O]`` (the poacher's state of a counter-offer, the worker's previous pair of a poach, else ``-1``);
    ``bottom [P]``, ``top [P]`` (origin of each pair's edges; ``-1`` for ``top`` when Δ < 0),
    ``counter [P, N]`` and ``poached [P, N]`` (origin by pair and poacher, ``-1`` where none)."""

    pair: np.ndarray
    kind: np.ndarray
    target: np.ndarray
    wage: np.ndarray
    other: np.ndarray
    bottom: np.ndarray
    top: np.ndarray
    counter: np.ndarray
    poached: np.ndarray

    def __len__(self) -> int:
        return len(self.pair)


def wage_origins(curve: WageCurve) -> Origins:
    """The origins of the module docstring, with their wages by exact inversion."""
    prob = curve.problem
    space, pairs = prob.space, prob.pairs
    n_pairs, n_states = len(pairs), space.n_states
    pair_l, kind_l, target_l, other_l = [], [], [], []

    def add(pair: np.ndarray, kind: int, target: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
        start = sum(len(x) for x in pair_l)
        pair_l.append(pair)
        kind_l.append(np.full(len(pair), kind))
        target_l.append(target)
        other_l.append(np.full(len(pair), -1) if other is None else other)
        return start + np.arange(len(pair))

    every = np.arange(n_pairs)
    bottom = add(every, BOTTOM, prob.u)
    top = -np.ones(n_pairs, dtype=np.int64)
    ok = prob.delta >= 0
    top[ok] = add(every[ok], TOP, prob.u[ok] + prob.delta[ok])
    counter = -np.ones((n_pairs, n_states), dtype=np.int64)
    k, s = np.nonzero(prob.counter_rate > 0)
    counter[k, s] = add(k, COUNTER, prob.counter_lo[k, s], s)
    poached = -np.ones((n_pairs, n_states), dtype=np.int64)
    k, s = np.nonzero(_moves(prob) & prob.reneg[:, None])  # with Δ < 0 a poached worker gets its bottom
    dest = pairs.index[space.plus[s, pairs.wtype[k]], pairs.wtype[k]]
    poached[k, s] = add(dest, POACHED, np.maximum(prob.delta[k], 0.0) + prob.u[k], k)
    pair = np.concatenate(pair_l)
    target = np.concatenate(target_l)
    wage = curve.invert(pair, target)
    return Origins(pair, np.concatenate(kind_l), target, wage, np.concatenate(other_l), bottom, top, counter, poached)


def _moves(prob: WorkerProblem) -> np.ndarray:
    """``[P, N]``: the worker of the pair moves to poacher ``S_p`` at a meeting (``B(S_p, S, x) > 0``)."""
    pol, pairs = prob.policies, prob.pairs
    return pol.poach[:, pairs.wtype, pairs.state].T


@dataclass
class WageChain:
    """The employed nodes ``(pair, origin)`` reachable from a hire, their transitions and the stationary masses.

    ``node_pair, node_origin [M]``; ``src, dst, rate, cause`` the transitions between nodes (``cause``: an
    index into :data:`CAUSES` for a reset, ``-1`` for a coworker change); ``loss [M]``: the rate of leaving
    employment (retirement included); ``entry [M]``: the hiring flow into each node; ``mass [M]``."""

    node_pair: np.ndarray
    node_origin: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    rate: np.ndarray
    cause: np.ndarray
    loss: np.ndarray
    entry: np.ndarray
    mass: np.ndarray


def _transitions(curve: WageCurve, org: Origins, nk: np.ndarray, no: np.ndarray, coworker: sp.csr_matrix):
    """The transitions out of the nodes ``(nk, no)``: ``(row, dest pair, dest origin, rate, cause)`` and the
    loss rate of each node (module docstring)."""
    prob = curve.problem
    p = prob.params
    b = len(nk)
    W = curve.value(nk, org.wage[no])
    u, top = prob.u[nk], prob.u[nk] + prob.delta[nk]
    tol = ON_THRESHOLD * np.maximum(np.abs(W), u)
    rows, dpair, dorig, rate, cause = [], [], [], [], []

    def emit(r, k2, o2, q, c):
        rows.append(r)
        dpair.append(k2)
        dorig.append(o2)
        rate.append(np.broadcast_to(q, r.shape).astype(np.float64))
        cause.append(np.full(len(r), c))

    # coworkers leave and arrive: the pair changes, the wage stays
    sub = coworker[nk].tocoo()
    emit(sub.row, sub.col, no[sub.row], sub.data, -1)
    quit = ~prob.reneg[nk]
    # renegotiation
    low = ~quit & (W < u - tol)
    high = ~quit & (W > top + tol)
    r = np.nonzero(low)[0]
    emit(r, nk[r], org.bottom[nk[r]], p.lam, _CAUSE["reneg_raise"])
    r = np.nonzero(high)[0]
    emit(r, nk[r], org.top[nk[r]], p.lam, _CAUSE["reneg_cut"])
    # outside meetings, poacher by poacher
    pi = prob.market.pi
    moves = _moves(prob)[nk]  # [b, N]
    q = p.psi_e * pi[None, :]
    r, s = np.nonzero(moves & (pi[None, :] > 0))
    k = nk[r]
    dest = prob.pairs.index[prob.space.plus[s, prob.pairs.wtype[k]], prob.pairs.wtype[k]]
    origin = np.where(quit[r], org.bottom[dest], org.poached[k, s])
    emit(r, dest, origin, q[0, s], _CAUSE["poached"])
    clip = prob.counter_rate[nk] > 0
    cut = clip & (W > top + tol)[:, None]
    r, s = np.nonzero(cut)
    emit(r, nk[r], org.top[nk[r]], q[0, s], _CAUSE["meeting_cut"])
    lo = prob.counter_lo[nk]
    raise_ = clip & (W[:, None] < lo - tol[:, None])
    r, s = np.nonzero(raise_)
    emit(r, nk[r], org.counter[nk[r], s], q[0, s], _CAUSE["counter_offer"])
    # losses: firm death, match break, retirement, separations (λ and meetings that do not poach at Δ < 0)
    loss = np.full(b, p.delta_f + p.delta_m + p.delta_r)
    loss += quit * (p.lam + p.psi_e * (pi[None, :] * ~moves).sum(1))
    cat = [np.concatenate(x) for x in (rows, dpair, dorig, rate, cause)]
    return (*cat, loss)


def wage_chain(curve: WageCurve, org: Origins, dist: Distribution, max_nodes: int = 5_000_000) -> WageChain:
    """Build the reachable nodes and solve the stationary balance (module docstring)."""
    prob = curve.problem
    p, space, pairs = prob.params, prob.space, prob.pairs
    n_pairs = len(pairs)
    off = -prob.base.copy()
    off[np.diag_indices(n_pairs)] = 0.0
    coworker = sp.csr_matrix(np.where(off > 0, off, 0.0))

    # hires: an unmatched type-j worker is hired by S' (rate ψ^N Π(S') per worker) at the bottom of S'⊕x
    hire = prob.policies.hire  # [N, J]
    s, j = np.nonzero(hire & (prob.market.pi[:, None] > 0))
    dest = pairs.index[space.plus[s, j], j]
    entry_pair, entry_origin = dest, org.bottom[dest]
    entry_flow = dist.u[j] * p.psi_n * prob.market.pi[s]

    key_of: dict[int, int] = {}
    node_pair: list[int] = []
    node_origin: list[int] = []

    def ids(k: np.ndarray, o: np.ndarray) -> np.ndarray:
        keys = o.astype(np.int64) * n_pairs + k
        out = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys.tolist()):
            got = key_of.get(key)
            if got is None:
                got = len(node_pair)
                key_of[key] = got
                node_pair.append(key % n_pairs)
                node_origin.append(key // n_pairs)
            out[i] = got
        return out

    entry_node = ids(entry_pair, entry_origin)
    src_l, dst_l, rate_l, cause_l, loss_l = [], [], [], [], []
    done = 0
    while done < len(node_pair):
        if len(node_pair) > max_nodes:
            raise RuntimeError(f"the wage chain has more than {max_nodes} nodes")
        batch = np.arange(done, len(node_pair))
        done = len(node_pair)
        nk, no = np.array(node_pair)[batch], np.array(node_origin)[batch]
        row, dk, do, rate, cause, loss = _transitions(curve, org, nk, no, coworker)
        dst = ids(dk, do)
        src = batch[row]
        keep = dst != src
        src_l.append(src[keep])
        dst_l.append(dst[keep])
        rate_l.append(rate[keep])
        cause_l.append(cause[keep])
        loss_l.append(loss)
    src, dst = np.concatenate(src_l), np.concatenate(dst_l)
    rate, cause, loss = np.concatenate(rate_l), np.concatenate(cause_l), np.concatenate(loss_l)
    n = len(node_pair)
    entry = np.bincount(entry_node, weights=entry_flow, minlength=n)
    out_rate = loss + np.bincount(src, weights=rate, minlength=n)
    mass = _balance(sp.csr_matrix((rate, (dst, src)), shape=(n, n)), out_rate, entry)
    return WageChain(np.array(node_pair), np.array(node_origin), src, dst, rate, cause, loss, entry, mass)


def _balance(inflow: sp.csr_matrix, out_rate: np.ndarray, entry: np.ndarray, tol: float = 1e-13) -> np.ndarray:
    """The ``m ≥ 0`` with ``m_n r_n = Σ_{n'} inflow[n, n'] m_{n'} + entry_n``: BiCGSTAB preconditioned by
    ``diag(r)`` from the Jacobi guess, checked (and finished by Jacobi sweeps when short): a direct sparse
    factorisation of these chains fills in far beyond memory."""
    a = sp.diags(out_rate) - inflow
    scale = float(np.abs(entry).sum())
    guess = entry / out_rate
    pre = spla.LinearOperator(a.shape, matvec=lambda x: x / out_rate)
    m, _ = spla.bicgstab(a, entry, x0=guess, M=pre, rtol=tol, atol=tol * scale * 1e-3, maxiter=5000)
    for _ in range(20_000):
        res = entry - a @ m
        if np.abs(res).sum() <= tol * scale:
            return m
        m = m + res / out_rate
    raise RuntimeError(f"the stationary wage balance did not converge: residual {np.abs(res).sum() / scale:.3g}")


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: np.ndarray | float) -> np.ndarray:
    """The ``q``-quantiles of a discrete distribution (the smallest value whose cumulative weight reaches ``q``)."""
    order = np.argsort(values, kind="stable")
    v, c = values[order], np.cumsum(weights[order])
    c = c / c[-1]
    idx = np.searchsorted(c, np.asarray(q) - 1e-12, side="left")
    return v[np.minimum(idx, len(v) - 1)]


@dataclass
class ExactWages:
    """The exact wages of a discrete economy (module docstring)."""

    curve: WageCurve
    origins: Origins
    chain: WageChain

    @property
    def node_wage(self) -> np.ndarray:
        return self.origins.wage[self.chain.node_origin]

    def quantiles(self, q=(0.1, 0.25, 0.5, 0.75, 0.9)) -> dict[str, float]:
        """Quantiles of the stationary wage distribution of employed workers."""
        vals = weighted_quantile(self.node_wage, self.chain.mass, np.asarray(q))
        return {f"p{round(100 * x)}": float(v) for x, v in zip(q, vals)}

    @property
    def median(self) -> float:
        return float(weighted_quantile(self.node_wage, self.chain.mass, 0.5))

    @property
    def mean(self) -> float:
        return float(self.node_wage @ self.chain.mass / self.chain.mass.sum())

    @property
    def negative_share(self) -> float:
        """Share of employed workers paid a negative wage."""
        return float(self.chain.mass[self.node_wage < 0].sum() / self.chain.mass.sum())

    def reset_flows(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """By cause: ``(origin, flow)`` of every reset wage set with positive flow (per unit of time, per unit
        measure of firms), one row per distinct origin."""
        ch = self.chain
        out = {}
        for c, name in enumerate(CAUSES):
            if name == "hire":
                node, flow = np.nonzero(ch.entry > 0)[0], ch.entry[ch.entry > 0]
            else:
                sel = ch.cause == c
                node, flow = ch.dst[sel], ch.mass[ch.src[sel]] * ch.rate[sel]
            uniq, inv = np.unique(ch.node_origin[node], return_inverse=True)
            out[name] = (uniq, np.bincount(inv, weights=flow, minlength=len(uniq)))
        return out

    def resets(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """By cause: ``(post-event pair, target, wage, flow)`` of every reset with positive flow
        (:meth:`reset_flows`)."""
        org = self.origins
        return {name: (org.pair[o], org.target[o], org.wage[o], f) for name, (o, f) in self.reset_flows().items()}

    def by_cause(self) -> dict[str, dict[str, float]]:
        """min, flow-weighted median and max of the reset wages of each cause, their flow and the share of
        negative wages among them (flow-weighted)."""
        out = {}
        for name, (_, _, wage, flow) in self.resets().items():
            if len(wage) == 0:
                out[name] = {"flow": 0.0, "count": 0}
                continue
            out[name] = {
                "flow": float(flow.sum()),
                "count": int(len(wage)),
                "min": float(wage.min()),
                "median": float(weighted_quantile(wage, flow, 0.5)),
                "max": float(wage.max()),
                "negative_share": float(flow[wage < 0].sum() / flow.sum()),
            }
        return out

    def summary(self) -> dict:
        return {
            "pairs": len(self.curve.problem.pairs),
            "curve_segments": int(len(self.curve.knots) + 1),
            "origins": len(self.origins),
            "chain_nodes": int(len(self.chain.mass)),
            "employed_mass": float(self.chain.mass.sum()),
            "mean": self.mean,
            "quantiles": self.quantiles(),
            "negative_share": self.negative_share,
            "by_cause": self.by_cause(),
        }


def exact_wages(curve: WageCurve, dist: Distribution) -> ExactWages:
    """Reset wages and the stationary wage distribution of the economy whose W is ``curve`` and whose
    stationary distribution is ``dist`` (the one the curve's market comes from)."""
    org = wage_origins(curve)
    return ExactWages(curve, org, wage_chain(curve, org, dist))


def simulate_wage_chain(
    wages: ExactWages, workers: int, years: float, seed: int = 0, burn_in: float = 0.0
) -> np.ndarray:
    """Sample the node chain of :func:`wage_chain` for ``workers`` employed workers started from the
    stationary law's hires, restarting from a hire after every exit (employment spells placed end to
    end, which samples the stationary law by the renewal-reward theorem), and return the time spent at
    each node (``[M]``, summed over workers, after ``burn_in`` years): proportional to the stationary
    masses. An independent check of the balance equations (Gillespie's algorithm, vectorised over
    workers)."""
    ch = wages.chain
    n = len(ch.mass)
    rng = np.random.default_rng(seed)
    order = np.argsort(ch.src, kind="stable")
    dst, rate = ch.dst[order], ch.rate[order]
    start = np.searchsorted(ch.src[order], np.arange(n + 1))
    cum = np.concatenate([[0.0], np.cumsum(rate)])  # cum[start[nd]] is the rate before node nd's edges
    out_rate = ch.loss + np.bincount(ch.src, weights=ch.rate, minlength=n)
    entry_p = ch.entry / ch.entry.sum()
    entry_nodes = np.nonzero(entry_p > 0)[0]
    cum_entry = np.cumsum(entry_p[entry_nodes])

    def hire(k: int) -> np.ndarray:
        return entry_nodes[np.minimum(np.searchsorted(cum_entry, rng.random(k) * cum_entry[-1]), len(entry_nodes) - 1)]

    node = hire(workers)
    clock = np.zeros(workers)
    occupancy = np.zeros(n)
    while True:
        idx = np.nonzero(clock < years)[0]
        if len(idx) == 0:
            break
        here = node[idx]
        hold = rng.exponential(1.0 / out_rate[here])
        stay_from, stay_to = np.maximum(clock[idx], burn_in), np.minimum(clock[idx] + hold, years)
        np.add.at(occupancy, here, np.maximum(stay_to - stay_from, 0.0))
        clock[idx] += hold
        # next: edge m of the node with probability rate_m / out_rate, else an exit (then a new hire)
        x = cum[start[here]] + rng.random(len(idx)) * out_rate[here]
        m = np.searchsorted(cum, x, side="right") - 1  # the edge whose cumulative interval holds x
        inside = m < start[here + 1]
        nxt = np.where(inside, dst[np.minimum(m, len(dst) - 1)], -1)
        exit_ = ~inside
        nxt[exit_] = hire(int(exit_.sum()))
        node[idx] = nxt
    return occupancy
