"""Distributions of a discrete economy and the meeting market they imply (MODEL.md section 3).

A :class:`Distribution` is the measure of firms over states, ``χ`` (total 1: firms have measure
1), and the measure of unmatched workers over worker types, ``u`` (total ``N_w (1 − e)``). From
it :class:`Market` derives everything the V equation and the flows read:

- ``e = E / N_w`` with ``E = Σ_S n(S) χ(S)`` employed workers;
- ``ω``, ``s^N``, ``s^E`` by market clearing, ``ω ∫(1 + n) dχ = N_w [e ψ^E + (1 − e) ψ^N]``
  (:func:`lotj.economy.params.meeting_rates`);
- ``χ^N(x_j) = u_j / Σ u``, ``χ^E(x_j, S_p) = c_j(S_p) χ(S_p) / E`` (employed workers with their
  firm) and ``Π(S) = (n + 1) χ(S) / ∫(1 + n) dχ`` (the poacher's distribution).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams, meeting_rates
from lotj.exact.states import StateSpace


@dataclass
class Distribution:
    """Firms ``chi [N]`` over states and unmatched workers ``u [J]`` over types (measures)."""

    chi: np.ndarray
    u: np.ndarray

    def employed(self, space: StateSpace) -> float:
        """E = ∫ n dχ: the measure of employed workers."""
        return float(self.chi @ space.size)

    def mean_n_plus_one(self, space: StateSpace) -> float:
        """∫ (1 + n) dχ."""
        return float(self.chi @ (space.size + 1.0))

    @classmethod
    def initial(cls, space: StateSpace, n_w: float) -> Distribution:
        """Every firm newborn (empty) with its type's probability; every worker unmatched, by type."""
        chi = np.zeros(space.n_states)
        for f in range(space.n_firm_types):
            chi[space.empty_state(f)] = space.p_f[f]
        return cls(chi, n_w * space.p_w.copy())

    @classmethod
    def of_population(cls, space: StateSpace, firms: FirmBatch, unmatched_h, unmatched_a) -> Distribution:
        """The empirical distribution of a finite population (a simulated cross-section, or several
        side by side): ``χ`` the share of firms in each state, ``u_j`` the unmatched workers of type
        ``j`` per firm (so that, as in the model, firms have measure 1 and workers measure N_w).
        Raises ValueError for a firm above the cap or a firm or worker that is not one of the types."""
        states = space.locate(firms.z, firms.q, firms.h, firms.a, firms.mask)
        if (states < 0).any():
            raise ValueError(f"{int((states < 0).sum())} firms have more than n_max = {space.n_max} workers")
        n_firms = len(states)
        chi = np.bincount(states, minlength=space.n_states) / n_firms
        types = space.worker_type(unmatched_h, unmatched_a)
        u = np.bincount(types, minlength=space.n_worker_types) / n_firms
        return cls(chi, u.astype(np.float64))


@dataclass
class Market:
    """The meeting market of a distribution (module docstring). Arrays: ``chi_n [J]``,
    ``chi_e [N, J]`` (joint over the employed worker's firm state and type), ``pi [N]``."""

    e: float
    omega: float
    s_n: float
    s_e: float
    chi_n: np.ndarray
    chi_e: np.ndarray
    pi: np.ndarray

    @classmethod
    def of(cls, space: StateSpace, p: EconomyParams, dist: Distribution) -> Market:
        employed = dist.employed(space)
        mean_n1 = dist.mean_n_plus_one(space)
        e = employed / p.n_w
        rates = meeting_rates(p, e, mean_n1)
        unmatched = float(dist.u.sum())
        chi_n = dist.u / unmatched if unmatched > 0 else np.zeros_like(dist.u)
        chi_e = space.counts * dist.chi[:, None] / employed if employed > 0 else np.zeros(space.counts.shape)
        pi = (space.size + 1.0) * dist.chi / mean_n1
        return cls(e, rates.omega, rates.s_n, rates.s_e, chi_n, chi_e, pi)

    def meeting_rate(self, space: StateSpace) -> np.ndarray:
        """``(n + 1) ω`` for firms below the cap, 0 at the cap (MODEL.md section 10), ``[N]``."""
        return np.where(space.at_cap, 0.0, (space.size + 1.0) * self.omega)
