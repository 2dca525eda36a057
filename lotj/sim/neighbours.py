"""V at a batch of firm states and at the one-worker neighbours the simulator's decisions need.

A step of the simulator needs, for a set of firms ``S_u``: ``V(S_u)``; ``V(S⊖x_i)`` for the
workers i who face a λ shock or an outside meeting; ``V(S_k⊕x)`` for each meeting at a firm
below the cap. :func:`neighbour_values` builds every neighbour as an explicit set and calls
``vf.value`` once on all of them: one batched evaluation per step, whatever the value function
(network, exact solution, analytic), with no more sets than the decisions need. A value function
that offers ``sparse_neighbours`` (the network, :class:`lotj.nets.ValueNet`) computes the same numbers
from one encoding of the firms: each removal and addition is then one head evaluation on the pool.
The simulator's fast path for the network keeps the pools of the whole population instead
(:mod:`lotj.sim.pooled`); this module serves every other value function.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.economy.value import ValueFunction


def neighbour_values(
    vf: ValueFunction,
    s: FirmBatch,
    rem_row: Tensor,
    rem_slot: Tensor,
    add_row: Tensor,
    h_new: Tensor,
    a_new: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """``V(S_u)`` ``[U]``, ``V(S_u[rem_row] ⊖ slot rem_slot)`` ``[D]`` and
    ``V(S_u[add_row] ⊕ (h_new, a_new))`` ``[M]``. The firms in ``add_row`` must have a free slot.
    Runs without gradients."""
    if hasattr(vf, "sparse_neighbours"):
        if bool((s.size()[add_row] >= s.n_max).any()):
            raise ValueError("an addition neighbour was requested for a firm without a free slot")
        with torch.no_grad():
            return vf.sparse_neighbours(s, rem_row, rem_slot, add_row, h_new, a_new)
    minus = s.index(rem_row).remove(rem_slot)
    plus, added = s.index(add_row).add(h_new, a_new)
    if not bool(added.all()):
        raise ValueError("an addition neighbour was requested for a firm without a free slot")
    batch = FirmBatch.cat([s, minus, plus])
    with torch.no_grad():
        v = vf.value(batch)
    u, d = s.batch_size, rem_row.numel()
    return v[:u], v[u : u + d], v[u + d :]


def with_workers(s: FirmBatch, extra_row: Tensor, h_extra: Tensor, a_extra: Tensor) -> FirmBatch:
    """``S_k ⊕ P_k`` for the firms of ``s`` ``[K]``, ``P_k`` the workers ``(h_extra, a_extra)[extra_row == k]``
    (``extra_row`` ascending), each in the next free slot; refuses a set beyond the cap."""
    k = s.batch_size
    counts = torch.bincount(extra_row, minlength=k)
    start = torch.cumsum(counts, 0) - counts
    within = torch.arange(extra_row.numel(), device=extra_row.device) - start.index_select(0, extra_row)
    for j in range(int(counts.max()) if extra_row.numel() else 0):
        at = (within == j).nonzero().squeeze(1)
        rows = extra_row.index_select(0, at)
        h_j = torch.ones(k, dtype=s.h.dtype, device=s.h.device).index_copy_(0, rows, h_extra[at].to(s.h.dtype))
        a_j = torch.ones(k, dtype=s.a.dtype, device=s.a.device).index_copy_(0, rows, a_extra[at].to(s.a.dtype))
        active = torch.zeros(k, dtype=torch.bool, device=s.h.device).index_fill_(0, rows, True)
        s, added = s.add(h_j, a_j, active)
        if not bool((added == active).all()):
            raise ValueError("a state beyond the cap was requested")
    return s
