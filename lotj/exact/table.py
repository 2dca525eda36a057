"""A value table on a discrete economy's states as a :class:`lotj.economy.value.ValueFunction`.

The exact V is a number per state; :func:`table_value_function` lets every lotj function that
takes a ValueFunction (surpluses, HJB residuals, the simulator's policies, the validation)
read it. Each row of a FirmBatch is mapped to its state by its firm type and its multiset of
worker types (:meth:`lotj.exact.states.StateSpace.locate`); the one-event neighbours come from
:class:`lotj.economy.value.SetFunctionValue`. Rows above the size cap (additions to a full
firm, which no caller uses: MODEL.md section 10) get the finite value 0.

:func:`table_worker_value_function` does the same for the exact W of :mod:`lotj.exact.worker_value`: a
worker's pair is its type and the state of its coworkers with it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lotj.economy.value import SetFunctionValue
from lotj.economy.worker_value import SetFunctionWorkerValue
from lotj.exact.states import StateSpace


def table_value_function(space: StateSpace, v: np.ndarray) -> SetFunctionValue:
    """The ValueFunction ``S ↦ v[index(S)]`` on the states of ``space``."""
    table = np.asarray(v, dtype=np.float64)

    def fn(z: Tensor, q: Tensor, h: Tensor, a: Tensor, mask: Tensor) -> Tensor:
        idx = space.locate(z, q, h, a, mask)
        out = np.where(idx >= 0, table[np.where(idx >= 0, idx, 0)], 0.0)
        return torch.as_tensor(out, dtype=z.dtype if z.is_floating_point() else torch.float64, device=z.device)

    return SetFunctionValue(fn)


def table_worker_value_function(curve) -> SetFunctionWorkerValue:
    """The exact W (a :class:`lotj.exact.worker_value.WageCurve`) as a WorkerValueFunction: worker ``i``
    of type ``j`` with coworkers ``X`` at a firm ``(z, q)`` is the pair ``(S, j)``, ``S`` the state of
    ``X ⊕ x_i``; its value at wage ``w`` is the curve's. Rows above the size cap get the finite value 0."""
    space = curve.problem.space
    index = curve.problem.pairs.index

    def fn(h: Tensor, a: Tensor, w: Tensor, z: Tensor, q: Tensor, h_co: Tensor, a_co: Tensor, m_co: Tensor) -> Tensor:
        one = torch.ones_like(m_co[:, :1])
        h_all, a_all = torch.cat([h_co, h.unsqueeze(-1)], -1), torch.cat([a_co, a.unsqueeze(-1)], -1)
        states = space.locate(z, q, h_all, a_all, torch.cat([m_co, one], -1))
        own = space.worker_type(h, a)
        pair = np.where(states >= 0, index[np.maximum(states, 0), own], -1)
        wage = w.detach().cpu().numpy().astype(np.float64)
        out = np.where(pair >= 0, curve.value(np.maximum(pair, 0), wage), 0.0)
        return torch.as_tensor(out, dtype=w.dtype, device=w.device)

    return SetFunctionWorkerValue(fn)
