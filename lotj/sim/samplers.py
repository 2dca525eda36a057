"""Draws of employed workers from χ^E with their surplus at their own firm (MODEL.md section 3–4).

The poaching integral of the HJB needs, for each drawn employed worker ``x_j`` at firm ``S_p``,
``Δ(S_p, x_j) = V(S_p) − V(S_p⊖x_j) − U(x_j)`` under the current V. :func:`employed_with_surplus`
draws ``(x_j, S_p)`` from the snapshot's χ^E and evaluates Δ with two value passes (on ``S_p``
and on ``S_p⊖x_j``), shared by every firm that meets these draws. Unmatched workers come from
:meth:`EconomySnapshot.sample_unmatched` (χ^N) and poachers from
:meth:`EconomySnapshot.sample_poachers` (Π ∝ (n + 1) χ).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lotj.economy.params import EconomyParams
from lotj.economy.value import ValueFunction
from lotj.sim.distributions import EconomySnapshot


@dataclass
class EmployedDraws:
    """Employed workers ``(h, a)`` ``[M]``, their surplus ``delta`` at their firm, and the firm's
    row in the snapshot (``firm``), for void meetings (MODEL.md section 10)."""

    h: Tensor
    a: Tensor
    delta: Tensor
    firm: Tensor


def employed_with_surplus(
    vf: ValueFunction,
    p: EconomyParams,
    snapshot: EconomySnapshot,
    count: int,
    generator: torch.Generator | None = None,
) -> EmployedDraws:
    """``count`` draws from χ^E with Δ(S_p, x_j) under ``vf`` (empty when nobody is employed)."""
    flat = snapshot.firms.mask.reshape(-1).nonzero().squeeze(-1)
    if flat.numel() == 0:
        empty = snapshot.firms.h.reshape(-1)[:0]
        return EmployedDraws(empty, empty, empty, flat)
    pick = flat[torch.randint(flat.numel(), (count,), generator=generator).to(flat.device)]
    n_max = snapshot.firms.n_max
    firm, slot = pick // n_max, pick % n_max
    s_p = snapshot.firms.index(firm)
    rows = torch.arange(count, device=firm.device)
    h, a = s_p.h[rows, slot], s_p.a[rows, slot]
    with torch.no_grad():
        delta = vf.value(s_p) - vf.value(s_p.remove(slot)) - p.unemployment_coef * h
    return EmployedDraws(h, a, delta, firm)
