"""Annual EN and NE rates of a discrete economy, exactly, from one worker's Markov chain (MODEL.md sections 3, 10).

MODEL.md section 10 defines ``EN = P(non-employed at t+1 | employed at t)`` and ``NE`` the reverse,
on an annual panel (the state at a fixed date each year), with retirees dropped. In the
stationary equilibrium we follow one worker. Its state is ``(own type j, its firm's state S)``
when employed and ``(j, unmatched)`` otherwise, and it moves as a continuous-time Markov chain
whose rates are the firm and worker rates of :mod:`lotj.exact.stationary`:

- employed at ``S``: its firm dies (``δ_f``) or the match ends into non-employment
  (``δ_m``; ``λ`` and outside meetings whose poacher does not hire, when ``Δ(S, x_j) < 0``):
  to unmatched; it is poached into ``S'`` (``ψ^E Π(S') 1{B(S', S, x_j) > 0}``): to ``S'⊕x_j``;
  a coworker of type ``k`` leaves (``(c_k − 1{k = j})`` times the per-worker rate): to ``S⊖x_k``;
  its firm hires or poaches a type-``k`` worker: to ``S⊕x_k``;
- unmatched: hired by a firm in ``S'`` (``ψ^N Π(S') 1{hire x_j at S'}``): to ``S'⊕x_j``.

The worker's own retirement is left out: it happens at rate ``δ_r`` whatever the worker's
state, so dropping retirees is conditioning on survival, which leaves the chain without it.
With ``P = exp(Q · 1 year)`` and the stationary law of workers at ``t`` (employed at ``S`` with
weight ``c_j(S) χ(S) / E``, unmatched with weight ``u_j / Σu``):

    EN = Σ_{employed s} w(s) P(s → unmatched),   NE = Σ_{unmatched s} w(s) P(s → employed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lotj.economy.params import EconomyParams
from lotj.exact.bellman import Policies
from lotj.exact.linalg import expm
from lotj.exact.market import Distribution
from lotj.exact.states import StateSpace
from lotj.exact.stationary import firm_rates


@dataclass
class WorkerChain:
    """The generator ``q`` of one worker's chain; states ``0..n_employed-1`` are ``(S, j)`` pairs
    (``employed_state [n_employed]``, ``employed_type``), then one unmatched state per type."""

    q: np.ndarray
    employed_state: np.ndarray
    employed_type: np.ndarray
    n_types: int

    @property
    def n_employed(self) -> int:
        return len(self.employed_state)


def worker_chain(space: StateSpace, p: EconomyParams, pol: Policies, dist: Distribution) -> WorkerChain:
    """Build the worker's generator (module docstring)."""
    rates = firm_rates(space, p, pol, dist.chi, dist.u)
    es, et = np.nonzero(space.counts > 0)
    n_emp, n_types = len(es), space.n_worker_types
    index = -np.ones((space.n_states, n_types), dtype=np.int64)
    index[es, et] = np.arange(n_emp)
    unmatched = n_emp + np.arange(n_types)
    q = np.zeros((n_emp + n_types, n_emp + n_types))
    rows = np.arange(n_emp)
    np.add.at(q, (rows, unmatched[et]), p.delta_f + rates.to_unmatched[es, et])
    # poached into S': the worker lands in S'⊕x_j
    for k in range(n_emp):
        dest = np.nonzero(rates.poached_to[es[k], et[k]] > 0)[0]
        np.add.at(
            q, (np.full(len(dest), k), index[space.plus[dest, et[k]], et[k]]), rates.poached_to[es[k], et[k], dest]
        )
    for t in range(n_types):
        others = space.counts[es, t] - (et == t)
        has = others > 0
        np.add.at(q, (rows[has], index[space.minus[es[has], t], et[has]]), others[has] * rates.leave[es[has], t])
        grows = space.plus[es, t] >= 0
        np.add.at(q, (rows[grows], index[space.plus[es[grows], t], et[grows]]), rates.hire[es[grows], t])
    for j in range(n_types):
        dest = np.nonzero(rates.find_job[j] > 0)[0]
        np.add.at(q, (np.full(len(dest), unmatched[j]), index[space.plus[dest, j], j]), rates.find_job[j, dest])
    q[np.diag_indices(len(q))] -= q.sum(1)
    return WorkerChain(q, es, et, n_types)


#: A set of workers or firms whose mass is at most this share of the whole (workers: N_w; firms: 1)
#: holds nothing but rounding: a statistic over it is undefined (None, null in JSON), not a number.
NEGLIGIBLE_MASS = 1e-10


@dataclass
class AnnualRates:
    en: float | None  #: None when (almost) nobody is employed (``NEGLIGIBLE_MASS``)
    ne: float | None  #: None when (almost) nobody is unmatched


def annual_rates(
    space: StateSpace, p: EconomyParams, pol: Policies, dist: Distribution, years: float = 1.0
) -> AnnualRates:
    """EN and NE over ``years`` (default one year) in the stationary equilibrium (module docstring)."""
    chain = worker_chain(space, p, pol, dist)
    trans = expm(chain.q * years)
    n_emp = chain.n_employed
    w_emp = space.counts[chain.employed_state, chain.employed_type] * dist.chi[chain.employed_state]
    floor = NEGLIGIBLE_MASS * p.n_w
    en = float(w_emp @ trans[:n_emp, n_emp:].sum(1) / w_emp.sum()) if w_emp.sum() > floor else None
    w_un = dist.u
    ne = float(w_un @ trans[n_emp:, :n_emp].sum(1) / w_un.sum()) if w_un.sum() > floor else None
    return AnnualRates(en, ne)
