"""The interface between a value function and the economics that uses it.

The HJB residual (``lotj.economy.hjb``), the simulator (``lotj.sim``) and the measurement code
need V at a firm state and at its one-event neighbours: every removal ``S⊖x_i`` and additions
``S⊕x`` of given workers. A :class:`ValueFunction` provides these three evaluations. The
network (``lotj.nets.ValueNet``) computes neighbours from its pooled embedding
(ARCHITECTURE.md, "The performance idea"); :class:`SetFunctionValue` wraps any plain function
``V(z, q, h, a, mask)`` and computes every neighbour by building the neighbour set explicitly
(the naive reference, used for oracle values and to check the pooled path).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch


@runtime_checkable
class ValueFunction(Protocol):
    """V(S) and its one-event neighbours for a batch of firm states."""

    def value(self, s: FirmBatch) -> Tensor:
        """V(S), shape ``[B]``."""
        ...

    def removal_values(self, s: FirmBatch) -> Tensor:
        """V(S⊖x_i) for every slot i, shape ``[B, n_max]`` (padding slots: any finite value)."""
        ...

    def addition_values(self, s: FirmBatch, h_new: Tensor, a_new: Tensor) -> Tensor:
        """V(S⊕x_m) for new workers ``x_m``: ``h_new, a_new`` of shape ``[M]`` (shared across the
        batch) or ``[B, M]``. Shape ``[B, M]``. Firms at the cap: any finite value (callers mask)."""
        ...


def _broadcast_new(s: FirmBatch, h_new: Tensor, a_new: Tensor) -> tuple[Tensor, Tensor]:
    if h_new.dim() == 1:
        h_new = h_new.unsqueeze(0).expand(s.batch_size, -1)
        a_new = a_new.unsqueeze(0).expand(s.batch_size, -1)
    return h_new, a_new


def expand_with_slot(s: FirmBatch) -> FirmBatch:
    """The batch with one extra padding slot, so that S⊕x exists even for firms at the tensor width
    (callers apply the economic cap themselves)."""
    b = s.batch_size
    pad1 = torch.ones(b, 1, dtype=s.h.dtype, device=s.h.device)
    pad0 = torch.zeros(b, 1, dtype=torch.bool, device=s.h.device)
    return FirmBatch(s.z, s.q, torch.cat([s.h, pad1], 1), torch.cat([s.a, pad1], 1), torch.cat([s.mask, pad0], 1))


class SetFunctionValue:
    """A :class:`ValueFunction` from a plain set function ``fn(z, q, h, a, mask) -> [B]``.

    Neighbours are built explicitly: n_max removal sets and M addition sets per firm. This is
    the naive O(B·(n + M)) set-pass reference.
    """

    def __init__(self, fn: Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]):
        self.fn = fn

    def value(self, s: FirmBatch) -> Tensor:
        return self.fn(s.z, s.q, s.h, s.a, s.mask)

    def removal_values(self, s: FirmBatch) -> Tensor:
        b, n = s.h.shape
        eye = torch.eye(n, dtype=torch.bool, device=s.h.device)
        mask = (s.mask.unsqueeze(1) & ~eye).reshape(b * n, n)  # row (k, i): firm k without slot i
        h = s.h.unsqueeze(1).expand(b, n, n).reshape(b * n, n)
        a = s.a.unsqueeze(1).expand(b, n, n).reshape(b * n, n)
        z = s.z.repeat_interleave(n)
        q = s.q.repeat_interleave(n)
        return self.fn(z, q, h, a, mask).view(b, n)

    def addition_values(self, s: FirmBatch, h_new: Tensor, a_new: Tensor) -> Tensor:
        h_new, a_new = _broadcast_new(s, h_new, a_new)
        b, m = h_new.shape
        ext = expand_with_slot(s)
        n1 = ext.n_max
        # place the new worker in the extra (last) slot: the set is the same wherever it sits
        h = ext.h.unsqueeze(1).expand(b, m, n1).clone()
        a = ext.a.unsqueeze(1).expand(b, m, n1).clone()
        mask = ext.mask.unsqueeze(1).expand(b, m, n1).clone()
        h[..., -1] = h_new
        a[..., -1] = a_new
        mask[..., -1] = True
        z = s.z.repeat_interleave(m)
        q = s.q.repeat_interleave(m)
        return self.fn(z, q, h.reshape(b * m, n1), a.reshape(b * m, n1), mask.reshape(b * m, n1)).view(b, m)
