"""Match surplus Δ and the poacher's gain B (MODEL.md section 4), from any ValueFunction.

- ``Δ(S, x_i) = V(S) − V(S⊖x_i) − U(x_i)``: the surplus of worker i at its firm;
- ``Δ(S⊕x, x) = V(S⊕x) − V(S) − U(x)``: the surplus of hiring x;
- ``B(S_k, S_p, x_j) = max{Δ(S_k⊕x_j, x_j) − max{Δ(S_p, x_j), 0}, 0}`` (Proposition 1).

``U(x) = b h / (ρ + δ_r)`` (MODEL.md section 2).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.value import ValueFunction


def own_surplus_from_values(p: EconomyParams, s: FirmBatch, v: Tensor, v_minus: Tensor) -> Tensor:
    """Δ(S, x_i) from V(S) ``[B]`` and V(S⊖x_i) ``[B, n_max]``; padding slots are 0."""
    delta = v.unsqueeze(-1) - v_minus - p.unemployment_coef * s.h
    return torch.where(s.mask, delta, torch.zeros_like(delta))


def surplus(vf: ValueFunction, p: EconomyParams, s: FirmBatch) -> Tensor:
    """Δ(S, x_i) for every worker of every firm, ``[B, n_max]`` (0 on padding)."""
    return own_surplus_from_values(p, s, vf.value(s), vf.removal_values(s))


def hire_surplus_from_values(p: EconomyParams, v: Tensor, v_plus: Tensor, h_new: Tensor) -> Tensor:
    """Δ(S⊕x, x) from V(S) ``[B]``, V(S⊕x_m) ``[B, M]`` and the new workers' h (``[M]`` or ``[B, M]``)."""
    return v_plus - v.unsqueeze(-1) - p.unemployment_coef * h_new


def hire_surplus(vf: ValueFunction, p: EconomyParams, s: FirmBatch, h_new: Tensor, a_new: Tensor) -> Tensor:
    """Δ(S⊕x_m, x_m) for new workers ``x_m`` (``[M]`` shared or ``[B, M]``); shape ``[B, M]``.

    The size cap is not applied here: callers decide what a firm at the cap does
    (MODEL.md section 10: it makes no offer)."""
    return hire_surplus_from_values(p, vf.value(s), vf.addition_values(s, h_new, a_new), h_new)


def poach_gain(hire_surplus_k: Tensor, own_surplus_p: Tensor) -> Tensor:
    """B = max{Δ(S_k⊕x_j, x_j) − max{Δ(S_p, x_j), 0}, 0} (MODEL.md section 4, Proposition 1).

    Arguments broadcast: ``hire_surplus_k`` is Δ at the poacher after adding x_j, and
    ``own_surplus_p`` is Δ of x_j at its current firm p."""
    return (hire_surplus_k - own_surplus_p.clamp_min(0.0)).clamp_min(0.0)


def employed_surplus(vf: ValueFunction, p: EconomyParams, s_p: FirmBatch, slot: Tensor) -> Tensor:
    """Δ(S_p, x_j) = V(S_p) − V(S_p⊖x_j) − U(x_j) of one worker per firm, the one in slot ``slot[k]``
    of firm ``k`` (MODEL.md section 4), ``[B]``.

    Used for the employed workers drawn from χ^E: one value pass on ``S_p`` and one on ``S_p⊖x_j``
    (two set evaluations per draw, computed once per batch and shared by every firm that meets them),
    rather than all ``n_max`` removal neighbours of each drawn firm."""
    rows = torch.arange(s_p.batch_size, device=s_p.z.device)
    h_j = s_p.h[rows, slot]
    return vf.value(s_p) - vf.value(s_p.remove(slot)) - p.unemployment_coef * h_j
