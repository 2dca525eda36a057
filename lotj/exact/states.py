"""The finite state space of a discrete economy (MODEL.md sections 1, 3 and 10).

With finitely many worker types ``x_j = (h_j, a_j)``, finitely many firm types ``(z_f, q_f)``,
a size cap ``n_max`` and no learning (γ^E = 0, so ``h`` never changes: MODEL.md section 10,
"off the job h does not change"), a firm state is ``(f, c)``: its type and the vector of
worker-type counts ``c = (c_1, …, c_J)`` with ``Σ_j c_j ≤ n_max``. Values are
permutation-invariant (MODEL.md section 1), so the counts are the whole workforce.

:class:`StateSpace` enumerates these states (by firm type, then size, then counts) and holds
the index maps of the one-worker events ``S⊕x_j`` (``plus``) and ``S⊖x_j`` (``minus``),
production ``F(S)`` from :func:`lotj.economy.technology.production` and ``Σ_i U(x_i)``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.technology import production, unemployment_value
from lotj.errors import ConfigError

#: Two types closer than this (relative) are treated as the same type when a FirmBatch is read back.
TYPE_MATCH_RTOL = 1e-9


def _compositions(total: int, parts: int) -> list[tuple[int, ...]]:
    """Every vector of ``parts`` non-negative integers summing to ``total`` (lexicographic, descending)."""
    if parts == 1:
        return [(total,)]
    out = []
    for first in range(total, -1, -1):
        out.extend((first, *rest) for rest in _compositions(total - first, parts - 1))
    return out


@dataclass
class StateSpace:
    """Every firm state of a discrete economy with its one-event neighbours (module docstring).

    Arrays (``N`` states, ``J`` worker types, ``K`` firm types):

    - ``firm_type [N]``, ``counts [N, J]``, ``size [N]`` (``n``, the manager not counted);
    - ``plus [N, J]``: index of ``S⊕x_j``, ``-1`` when ``n = n_max`` (MODEL.md section 10: no offer);
    - ``minus [N, J]``: index of ``S⊖x_j``, ``-1`` when ``c_j = 0``;
    - ``F [N]``: production; ``sum_u [N]``: ``Σ_i U(x_i)``; ``u_type [J]``: ``U(x_j)``.
    """

    h: np.ndarray  # [J]
    a: np.ndarray  # [J]
    p_w: np.ndarray  # [J] probabilities of G_w
    z: np.ndarray  # [K]
    q: np.ndarray  # [K]
    p_f: np.ndarray  # [K] probabilities of G_f
    n_max: int
    firm_type: np.ndarray
    counts: np.ndarray
    size: np.ndarray
    plus: np.ndarray
    minus: np.ndarray
    F: np.ndarray
    u_type: np.ndarray
    sum_u: np.ndarray
    _lookup: np.ndarray  # dense table: key(firm type, counts) -> state index or -1

    # ------------------------------------------------------------------ build
    @classmethod
    def from_params(cls, p: EconomyParams) -> StateSpace:
        """The state space of ``p``: needs ``worker_types``, ``firm_types`` and ``gamma_e = 0``."""
        if p.worker_types is None or p.firm_types is None:
            raise ConfigError(
                "the exact solver needs a discrete economy: set economy.worker_types [[h, a, prob], ...] "
                "and economy.firm_types [[z, q, prob], ...]"
            )
        if p.gamma_e != 0.0:
            raise ConfigError(
                f"economy.gamma_e = {p.gamma_e}: the exact solver needs no learning (gamma_e = 0), so that "
                "h stays on the worker types and the state space is finite"
            )
        wt = np.asarray(p.worker_types, dtype=np.float64)
        ft = np.asarray(p.firm_types, dtype=np.float64)
        _check_distinct(wt[:, :2], "worker_types", "(h, a)")
        _check_distinct(ft[:, :2], "firm_types", "(z, q)")
        h, a, p_w = wt[:, 0], wt[:, 1], wt[:, 2]
        z, q, p_f = ft[:, 0], ft[:, 1], ft[:, 2]
        n_types, n_firm_types, cap = len(h), len(z), int(p.n_max)

        per_type = [c for n in range(cap + 1) for c in _compositions(n, n_types)]
        firm_type = np.repeat(np.arange(n_firm_types), len(per_type))
        counts = np.array(per_type * n_firm_types, dtype=np.int64).reshape(-1, n_types)
        size = counts.sum(1)
        n_states = len(firm_type)

        radix = cap + 2  # room for n_max + 1 workers: additions at the cap can be recognised
        lookup = -np.ones(n_firm_types * radix**n_types, dtype=np.int64)
        keys = _keys(firm_type, counts, radix)
        lookup[keys] = np.arange(n_states)

        eye = np.eye(n_types, dtype=np.int64)
        plus = -np.ones((n_states, n_types), dtype=np.int64)
        minus = -np.ones((n_states, n_types), dtype=np.int64)
        for j in range(n_types):
            room = size < cap
            plus[room, j] = lookup[_keys(firm_type[room], counts[room] + eye[j], radix)]
            has = counts[:, j] > 0
            minus[has, j] = lookup[_keys(firm_type[has], counts[has] - eye[j], radix)]

        u_type = unemployment_value(torch.as_tensor(h), p.b, p.rho, p.delta_r).numpy()
        space = cls(
            h=h,
            a=a,
            p_w=p_w,
            z=z,
            q=q,
            p_f=p_f,
            n_max=cap,
            firm_type=firm_type,
            counts=counts,
            size=size,
            plus=plus,
            minus=minus,
            F=np.zeros(n_states),
            u_type=u_type,
            sum_u=counts @ u_type,
            _lookup=lookup,
        )
        batch = space.firm_batch()
        space.F = production(batch.z, batch.h, batch.mask, p.eta).numpy()
        return space

    # ------------------------------------------------------------------ sizes
    @property
    def n_states(self) -> int:
        return len(self.firm_type)

    @property
    def n_worker_types(self) -> int:
        return len(self.h)

    @property
    def n_firm_types(self) -> int:
        return len(self.z)

    @property
    def at_cap(self) -> np.ndarray:
        """Firms at the size cap (MODEL.md section 10: they make no offer)."""
        return self.size == self.n_max

    def empty_state(self, firm_type: int) -> int:
        """Index of the newborn (empty) firm of a type (MODEL.md section 1)."""
        key = _keys(np.array([firm_type]), np.zeros((1, self.n_worker_types), dtype=np.int64), self.n_max + 2)
        return int(self._lookup[key][0])

    def describe(self, state: int) -> str:
        """A readable name of a state: ``firm 2 (z=1.2, q=1) with workers {1: 2, 3: 1}`` (types 1-based)."""
        f = int(self.firm_type[state])
        workers = {j + 1: int(c) for j, c in enumerate(self.counts[state]) if c}
        return f"firm type {f + 1} (z={self.z[f]:g}, q={self.q[f]:g}) with workers {workers or '{}'}"

    def describe_worker(self, j: int) -> str:
        return f"worker type {j + 1} (h={self.h[j]:g}, a={self.a[j]:g})"

    # ------------------------------------------------------------------ firm batches
    def firm_batch(self, states: np.ndarray | None = None, width: int | None = None) -> FirmBatch:
        """The states as a padded :class:`FirmBatch` (``width`` slots, default ``n_max``), workers
        in type order; the network and every lotj.economy function read this form."""
        idx = np.arange(self.n_states) if states is None else np.asarray(states)
        width = self.n_max if width is None else width
        counts = self.counts[idx]
        h = np.ones((len(idx), width))
        a = np.ones((len(idx), width))
        mask = np.zeros((len(idx), width), dtype=bool)
        for row, c in enumerate(counts):
            types = np.repeat(np.arange(self.n_worker_types), c)
            h[row, : len(types)] = self.h[types]
            a[row, : len(types)] = self.a[types]
            mask[row, : len(types)] = True
        f = self.firm_type[idx]
        return FirmBatch(
            torch.as_tensor(self.z[f]),
            torch.as_tensor(self.q[f]),
            torch.as_tensor(h),
            torch.as_tensor(a),
            torch.as_tensor(mask),
        )

    def worker_type(self, h, a, mask=None) -> np.ndarray:
        """Worker-type index of each worker ``(h, a)`` (tensors or arrays of one shape; with ``mask``,
        entries outside it are not checked and their index is meaningless). Raises ValueError when a
        worker is not one of the types."""
        h, a = (np.asarray(_np(t), dtype=np.float64) for t in (h, a))
        mask = None if mask is None else np.asarray(_np(mask), dtype=bool)
        return _match(np.stack([h, a], -1), np.stack([self.h, self.a], -1), "worker", "(h, a)", mask)

    def locate(self, z, q, h, a, mask) -> np.ndarray:
        """State index of every row of a padded batch (tensors or arrays); ``-1`` for rows with more
        than ``n_max`` workers. Raises ValueError when a firm or worker is not one of the types."""
        z, q = (np.asarray(_np(t), dtype=np.float64) for t in (z, q))
        mask = np.asarray(_np(mask), dtype=bool)
        f = _match(np.stack([z, q], -1), np.stack([self.z, self.q], -1), "firm", "(z, q)")
        wt = self.worker_type(h, a, mask)
        counts = np.zeros((len(z), self.n_worker_types), dtype=np.int64)
        for j in range(self.n_worker_types):
            counts[:, j] = ((wt == j) & mask).sum(1)
        out = -np.ones(len(z), dtype=np.int64)
        fits = counts.sum(1) <= self.n_max
        out[fits] = self._lookup[_keys(f[fits], counts[fits], self.n_max + 2)]
        return out


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t


def _keys(firm_type: np.ndarray, counts: np.ndarray, radix: int) -> np.ndarray:
    weights = radix ** np.arange(counts.shape[1], dtype=np.int64)
    return firm_type.astype(np.int64) * radix ** counts.shape[1] + counts @ weights


def _check_distinct(rows: np.ndarray, name: str, what: str) -> None:
    for i, j in itertools.combinations(range(len(rows)), 2):
        if np.allclose(rows[i], rows[j], rtol=1e-6, atol=0.0):
            raise ConfigError(f"economy.{name}: rows {i + 1} and {j + 1} have the same {what}; merge them")


def _match(values: np.ndarray, table: np.ndarray, kind: str, what: str, mask: np.ndarray | None = None) -> np.ndarray:
    """Index of the table row equal to each value (relative tolerance TYPE_MATCH_RTOL)."""
    close = np.all(np.abs(values[..., None, :] - table) <= TYPE_MATCH_RTOL * np.abs(table), axis=-1)
    found = close.any(-1)
    check = found if mask is None else (found | ~mask)
    if not check.all():
        bad = values[~check][0]
        raise ValueError(f"{kind} {what} = {tuple(bad.tolist())} is not one of the economy's {kind} types")
    return np.argmax(close, axis=-1)
