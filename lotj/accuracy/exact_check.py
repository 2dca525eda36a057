"""The error of any V on a discrete economy, exactly, and the pieces the chain estimator needs there.

On a discrete economy (:mod:`lotj.exact`) the V equation under fixed decisions is the linear system
``A V = b`` (:func:`lotj.exact.bellman.linear_system`). For any value table ``V`` read under its own
decisions the residual is ``R = b − A V``, and the error ``e = V − V*`` (``V*`` the value of those
decisions, which differs from the equilibrium V only at second order in the decision error) solves

    A e = −R.

:func:`exact_errors` returns that error and the one the chains of :mod:`lotj.accuracy.chains` estimate,
which leaves out the cross-firm poach-payment term (``A₀``: ``A`` without it): their difference is the
measured cost of that choice (docs/accuracy.md). :class:`TableValue` is a value table as a fast
:class:`lotj.economy.value.ValueFunction` (neighbours by index, not by rebuilt sets), and
:func:`exact_meeting_draws` the exact χ^N and χ^E of a :class:`lotj.exact.market.Market` as weighted
meeting draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lotj.accuracy.estimate import EmployedDraws
from lotj.economy.firms import FirmBatch
from lotj.economy.hjb import MeetingDraws
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.exact.bellman import Policies, Surpluses, linear_system
from lotj.exact.linalg import solve
from lotj.exact.market import Market
from lotj.exact.states import StateSpace

__all__ = ["ExactErrors", "TableValue", "exact_employed", "exact_errors", "exact_meeting_draws", "exact_rates"]


class TableValue:
    """``S ↦ v[index(S)]`` on the states of ``space`` as a ValueFunction whose neighbours ``S⊖x_i`` and
    ``S⊕x`` come from the state space's index maps (rows above the cap and padding slots get V(S))."""

    def __init__(self, space: StateSpace, v: np.ndarray):
        self.space = space
        self.v = np.asarray(v, dtype=np.float64)

    def _index(self, s: FirmBatch) -> np.ndarray:
        return self.space.locate(s.z, s.q, s.h, s.a, s.mask)

    def _out(self, x: np.ndarray, like: Tensor) -> Tensor:
        return torch.as_tensor(x, dtype=like.dtype, device=like.device)

    def value(self, s: FirmBatch) -> Tensor:
        idx = self._index(s)
        return self._out(np.where(idx >= 0, self.v[np.maximum(idx, 0)], 0.0), s.h)

    def _removals(self, s: FirmBatch, idx: np.ndarray) -> np.ndarray:
        wt = self.space.worker_type(s.h, s.a, s.mask)
        mask = s.mask.cpu().numpy()
        nb = self.space.minus[idx[:, None], np.where(mask, wt, 0)]
        return np.where(mask & (nb >= 0), self.v[np.maximum(nb, 0)], self.v[idx][:, None])

    def _additions(self, s: FirmBatch, idx: np.ndarray, h_new: Tensor, a_new: Tensor) -> np.ndarray:
        if h_new.dim() == 2:
            h_new, a_new = h_new[0], a_new[0]  # shared across the batch by every caller here
        wt = self.space.worker_type(h_new, a_new)
        nb = self.space.plus[idx[:, None], wt[None, :]]
        return np.where(nb >= 0, self.v[np.maximum(nb, 0)], self.v[idx][:, None])

    def removal_values(self, s: FirmBatch) -> Tensor:
        return self._out(self._removals(s, self._index(s)), s.h)

    def addition_values(self, s: FirmBatch, h_new: Tensor, a_new: Tensor) -> Tensor:
        return self._out(self._additions(s, self._index(s), h_new, a_new), s.h)

    def values_and_neighbours(
        self, s: FirmBatch, h_new: Tensor | None = None, a_new: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        idx = self._index(s)
        plus = None if h_new is None else self._out(self._additions(s, idx, h_new, a_new), s.h)
        return self._out(self.v[idx], s.h), self._out(self._removals(s, idx), s.h), plus


def exact_rates(market: Market) -> MeetingRates:
    """ω, s^N, s^E of an exact market."""
    return MeetingRates(market.omega, market.s_n, market.s_e)


def exact_meeting_draws(space: StateSpace, market: Market, v: np.ndarray) -> MeetingDraws:
    """The exact χ^N (every worker type, weight χ^N) and χ^E (every (firm state, type) pair with mass,
    weight χ^E, with Δ(S_p, x_j) under ``v``) as one weighted draw set: the meeting terms are then exact sums."""
    own = Surpluses.of(space, np.asarray(v, dtype=np.float64)).own
    sp, j = np.nonzero(market.chi_e > 0)
    t = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float64))  # noqa: E731
    return MeetingDraws(
        h_n=t(space.h),
        a_n=t(space.a),
        h_e=t(space.h[j]),
        a_e=t(space.a[j]),
        delta_p=t(own[sp, j]),
        firm_e=None,
        weight_n=t(market.chi_n),
        weight_e=t(market.chi_e[sp, j]),
    )


def exact_employed(space: StateSpace, market: Market) -> EmployedDraws:
    """The employed draws of :func:`exact_meeting_draws` (same order) as firms and slots."""
    sp, j = np.nonzero(market.chi_e > 0)
    firms = space.firm_batch(sp)
    wt = space.worker_type(firms.h, firms.a, firms.mask)
    has = (wt == j[:, None]) & firms.mask.cpu().numpy()
    return EmployedDraws(firms, torch.as_tensor(np.argmax(has, axis=1)))


@dataclass
class ExactErrors:
    """``error [N]``: V − V* under V's own decisions (A e = −R); ``no_cross [N]``: the error the chains
    estimate (A₀ e = −R, the cross-firm payment term left out); ``residual [N]``: R = b − A V."""

    error: np.ndarray
    no_cross: np.ndarray
    residual: np.ndarray


def exact_errors(space: StateSpace, p: EconomyParams, market: Market, v: np.ndarray) -> ExactErrors:
    """The exact error of the value table ``v`` under its own decisions, with and without the cross-firm
    term (module docstring)."""
    v = np.asarray(v, dtype=np.float64)
    pol = Policies.of(space, Surpluses.of(space, v))
    a_mat, b = linear_system(space, p, market, pol)
    residual = b - a_mat @ v
    no_pay = Policies(pol.hire, pol.quit, np.zeros_like(pol.positive), pol.poach)
    a0, b0 = linear_system(space, p, market, no_pay)
    # A₀ differs from A only in the cross term's matrix entries and its U part of b
    return ExactErrors(solve(a_mat, -residual), solve(a0, -residual), residual)
