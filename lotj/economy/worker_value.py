"""The interface between a worker-value function W and the economics that uses it (MODEL.md section 5).

``W_i(S)`` is the present value of the wages of worker ``i`` at firm state ``S``. It depends on the
worker's own state ``x_i = (h_i, a_i, w_i)`` and on the real state of its firm (``z, q`` and the
coworkers' ``(h_j, a_j)``), never on coworkers' wages. The W residual (``lotj.economy.wages``), the
wage inversion (``lotj.sim.wage_inversion``) and the panel need, for every worker ``i`` of every firm of a
batch, all at once:

- ``W_i(S)`` (:meth:`WorkerValueFunction.values`); the learning neighbour ``W_i(H(S))`` with the wage
  unchanged is ``values(H(S), w)`` (a fresh pass, since ``H`` moves every worker's ``h``);
- ``W_i(S⊖x_j)`` for each coworker ``j`` (:meth:`WorkerValueFunction.removal_values`);
- ``W_i(S⊕x_m)`` for new workers ``x_m`` (:meth:`WorkerValueFunction.addition_values`).

Wages are a ``[B, n_max]`` tensor aligned with the firm's slots (``w[k, i]`` is the wage of the
worker in slot ``i`` of firm ``k``; padding slots hold any finite number).

The network (``lotj.nets.WorkerValueNet``) computes the neighbours from a pooled coworker
embedding; :class:`SetFunctionWorkerValue` wraps a plain function of one worker and its explicit
coworker set and builds every neighbour set explicitly: the naive reference used for oracle values
and to check the pooled path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch

#: ``fn(h_i, a_i, w_i, z, q, h_co, a_co, mask_co) -> [N]``: W of worker ``(h_i, a_i, w_i)`` (each ``[N]``)
#: at a firm ``(z, q)`` (``[N]``) whose other workers are the padded set ``h_co, a_co, mask_co`` (``[N, m]``).
WorkerFn = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


@runtime_checkable
class WorkerValueFunction(Protocol):
    """W of every worker of a batch of firms, and at the firms' one-event neighbours (MODEL.md section 5)."""

    def values(self, s: FirmBatch, w: Tensor) -> Tensor:
        """``W_i(S)`` for every slot ``i``: shape ``[B, n_max]`` (padding slots: any finite value)."""
        ...

    def removal_values(self, s: FirmBatch, w: Tensor) -> Tensor:
        """``W_i(S⊖x_j)``: shape ``[B, n_max, n_max]`` indexed ``[k, i, j]``; the diagonal ``i = j`` and
        padding entries hold any finite value (callers mask them)."""
        ...

    def addition_values(self, s: FirmBatch, w: Tensor, h_new: Tensor, a_new: Tensor) -> Tensor:
        """``W_i(S⊕x_m)`` for new workers ``x_m`` (``h_new, a_new`` of shape ``[M]`` shared across the batch
        or ``[B, M]``): shape ``[B, n_max, M]``. The size cap is not applied (callers mask)."""
        ...


def wage_curves(wf: WorkerValueFunction, s: FirmBatch, w: Tensor, active: Tensor) -> Callable[[Tensor], Tensor]:
    """``x ↦ W_i(S; x)`` for the slots ``active`` ``[B, n_max]`` of the states ``s`` (in ``active.nonzero()``
    order), the states fixed: what a wage inversion evaluates many times. Uses ``wf.wage_curves(s, active)``
    when the function has it (the network runs its set pass and head once); otherwise substitutes the
    wages into ``w`` and calls ``wf.values`` (W_i ignores the other workers' wages)."""
    fast = getattr(wf, "wage_curves", None)
    if fast is not None:
        return fast(s, active)
    b, i = active.nonzero(as_tuple=True)

    def curve(x: Tensor) -> Tensor:
        wages = w.clone()
        wages[b, i] = x.to(wages.dtype)
        return wf.values(s, wages)[b, i]

    return curve


def _broadcast_new(s: FirmBatch, h_new: Tensor, a_new: Tensor) -> tuple[Tensor, Tensor]:
    if h_new.dim() == 1:
        h_new = h_new.unsqueeze(0).expand(s.batch_size, -1)
        a_new = a_new.unsqueeze(0).expand(s.batch_size, -1)
    return h_new, a_new


class SetFunctionWorkerValue:
    """A :class:`WorkerValueFunction` from a plain function of one worker and its coworker set.

    ``fn(h_i, a_i, w_i, z, q, h_co, a_co, mask_co)`` (see :data:`WorkerFn`). Every neighbour is
    built explicitly: ``B·n_max`` coworker sets for ``values``, ``B·n_max²`` for ``removal_values`` and
    ``B·n_max·M`` for ``addition_values``. Slow but obviously right: the reference for tests.
    """

    def __init__(self, fn: WorkerFn):
        self.fn = fn

    def values(self, s: FirmBatch, w: Tensor) -> Tensor:
        b, n = s.h.shape
        eye = torch.eye(n, dtype=torch.bool, device=s.h.device)
        mask_co = (s.mask.unsqueeze(1) & ~eye).reshape(b * n, n)  # row (k, i): firm k's workers but i
        h_co = s.h.unsqueeze(1).expand(b, n, n).reshape(b * n, n)
        a_co = s.a.unsqueeze(1).expand(b, n, n).reshape(b * n, n)
        out = self.fn(
            s.h.reshape(-1),
            s.a.reshape(-1),
            w.reshape(-1),
            s.z.repeat_interleave(n),
            s.q.repeat_interleave(n),
            h_co,
            a_co,
            mask_co,
        )
        return out.view(b, n)

    def removal_values(self, s: FirmBatch, w: Tensor) -> Tensor:
        b, n = s.h.shape
        eye = torch.eye(n, dtype=torch.bool, device=s.h.device)
        # row (k, i, j): firm k's workers but i and j
        keep = ~eye.unsqueeze(0) & ~eye.unsqueeze(1)  # [i, j, slot]: slot ≠ i and slot ≠ j
        mask_co = (s.mask.view(b, 1, 1, n) & keep.unsqueeze(0)).reshape(b * n * n, n)
        h_co = s.h.view(b, 1, 1, n).expand(b, n, n, n).reshape(b * n * n, n)
        a_co = s.a.view(b, 1, 1, n).expand(b, n, n, n).reshape(b * n * n, n)
        out = self.fn(
            s.h.unsqueeze(-1).expand(b, n, n).reshape(-1),
            s.a.unsqueeze(-1).expand(b, n, n).reshape(-1),
            w.unsqueeze(-1).expand(b, n, n).reshape(-1),
            s.z.repeat_interleave(n * n),
            s.q.repeat_interleave(n * n),
            h_co,
            a_co,
            mask_co,
        )
        return out.view(b, n, n)

    def addition_values(self, s: FirmBatch, w: Tensor, h_new: Tensor, a_new: Tensor) -> Tensor:
        h_new, a_new = _broadcast_new(s, h_new, a_new)
        b, n = s.h.shape
        m = h_new.shape[1]
        eye = torch.eye(n, dtype=torch.bool, device=s.h.device)
        # coworkers of (k, i) in S⊕x_m: firm k's workers but i, plus x_m in an extra last slot
        mask_old = (s.mask.unsqueeze(1) & ~eye).unsqueeze(2).expand(b, n, m, n)
        mask_co = torch.cat([mask_old, torch.ones(b, n, m, 1, dtype=torch.bool, device=s.h.device)], -1)
        h_co = torch.cat([s.h.view(b, 1, 1, n).expand(b, n, m, n), h_new.view(b, 1, m, 1).expand(b, n, m, 1)], -1)
        a_co = torch.cat([s.a.view(b, 1, 1, n).expand(b, n, m, n), a_new.view(b, 1, m, 1).expand(b, n, m, 1)], -1)
        out = self.fn(
            s.h.unsqueeze(-1).expand(b, n, m).reshape(-1),
            s.a.unsqueeze(-1).expand(b, n, m).reshape(-1),
            w.unsqueeze(-1).expand(b, n, m).reshape(-1),
            s.z.repeat_interleave(n * m),
            s.q.repeat_interleave(n * m),
            h_co.reshape(b * n * m, n + 1),
            a_co.reshape(b * n * m, n + 1),
            mask_co.reshape(b * n * m, n + 1),
        )
        return out.view(b, n, m)
