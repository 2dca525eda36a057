"""A value table on a discrete economy's states as a :class:`lotj.economy.value.ValueFunction`.

The exact V is a number per state; :func:`table_value_function` lets every lotj function that
takes a ValueFunction (surpluses, HJB residuals, the simulator's policies, the validation)
read it. Each row of a FirmBatch is mapped to its state by its firm type and its multiset of
worker types (:meth:`lotj.exact.states.StateSpace.locate`); the one-event neighbours come from
:class:`lotj.economy.value.SetFunctionValue`. Rows above the size cap (additions to a full
firm, which no caller uses: MODEL.md section 10) get the finite value 0.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lotj.economy.value import SetFunctionValue
from lotj.exact.states import StateSpace


def table_value_function(space: StateSpace, v: np.ndarray) -> SetFunctionValue:
    """The ValueFunction ``S ↦ v[index(S)]`` on the states of ``space``."""
    table = np.asarray(v, dtype=np.float64)

    def fn(z: Tensor, q: Tensor, h: Tensor, a: Tensor, mask: Tensor) -> Tensor:
        idx = space.locate(z, q, h, a, mask)
        out = np.where(idx >= 0, table[np.where(idx >= 0, idx, 0)], 0.0)
        return torch.as_tensor(out, dtype=z.dtype if z.is_floating_point() else torch.float64, device=z.device)

    return SetFunctionValue(fn)
