"""The tracked workers, meeting draws and poachers of the W and wage error estimates and of W's chain targets,
taken from a simulated market (:class:`lotj.sim.market.Market`; docs/accuracy.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from lotj.accuracy.wage_error import GROUPS
from lotj.accuracy.worker_targets import WorkerPoints
from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.surplus import surplus
from lotj.sim.wage_inversion import invert_wage

__all__ = ["bargaining_wages", "cap_events", "tracked_points", "unmatched_workers", "worker_sources"]


def worker_sources(vf: Any, market: Any, m_n: int, m_e: int, m_pi: int):
    """The meeting draws (with Δ from ``vf``) and Π poachers of a :class:`lotj.sim.market.Market`, fresh per step;
    where the market makes exact sums, every distinct worker and poacher state with its weight (the poacher
    source then returns ``(poachers, weight)``, :data:`lotj.accuracy.worker_chains.PoacherSource`)."""
    table = market.surplus_table(vf)

    def draws(g: torch.Generator):
        return market.draws(m_n, m_e, g).with_surplus_table(table)

    def poachers(g: torch.Generator) -> FirmBatch | tuple[FirmBatch, torch.Tensor]:
        ps = market.poachers(m_pi, g)
        return ps.firms if ps.weight is None else (ps.firms, ps.weight)

    return draws, poachers


def unmatched_workers(market: Any, count: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` unmatched workers from χ^N (drawn by their weights where the market makes exact sums)."""
    d = market.draws(count, 1, gen)
    if d.weight_n is None:
        return d.h_n, d.a_n
    idx = torch.multinomial(d.weight_n.double().cpu(), count, replacement=True, generator=gen).to(d.h_n.device)
    return d.h_n[idx], d.a_n[idx]


def cap_events(events, cap: int, gen: torch.Generator):
    """At most ``cap`` of ``events`` (:class:`lotj.accuracy.wage_error.ResetEvents`) per cause group, drawn
    uniformly; each keeps its weight."""
    keep = []
    for codes in GROUPS.values():
        idx = torch.isin(events.cause.cpu(), torch.tensor(codes)).nonzero().squeeze(-1)
        if idx.numel() > cap:
            idx = idx[torch.randperm(idx.numel(), generator=gen)[:cap]]
        keep.append(idx)
    return events.index(torch.cat(keep).sort().values.to(events.cause.device))


#: The least width of a bargaining set in wages, as a share of U(h): where Δ ≤ 0 the set is the one wage at
#: W = U (the W validation's grid, :func:`lotj.validate.wages.wage_grid`, widens it alike).
MIN_SET_WIDTH = 0.05


@torch.no_grad()
def bargaining_wages(
    wf: Any, vf: Any, p: EconomyParams, pts: WorkerPoints, margin: float, gen: torch.Generator
) -> torch.Tensor:
    """Own wages of the tracked workers drawn uniformly across their bargaining sets under ``wf`` (MODEL.md §5),
    ``[B]``: between ``w_U`` and ``w_Δ``, the wages with ``W(S; w_U) = U`` and ``W(S; w_Δ) = U + Δ⁺`` (``Δ`` the
    frozen V's surplus of the worker at ``S``), widened by ``margin`` times the set's width on both sides; the
    width is at least ``MIN_SET_WIDTH · U``. These are the wages every reset sets (hires and raises at
    ``W = U``; poaches, counter-offers and cuts up to ``U + Δ``) and, with the margin, those a neighbouring state's
    own set leaves a worker with until the next reset."""
    rows = torch.arange(pts.slot.numel(), device=pts.slot.device)
    h = pts.states.h[rows, pts.slot]
    u = p.unemployment_coef * h
    d = surplus(vf, p, pts.states)[rows, pts.slot].clamp_min(0.0)
    active = torch.zeros_like(pts.states.mask)
    active[rows, pts.slot] = True
    edges = []
    for target in (u, u + d):
        full = torch.zeros_like(pts.wages)
        full[rows, pts.slot] = target.to(full.dtype)
        w, _ = invert_wage(wf, p, pts.states, pts.wages, full, active, rtol=1e-8, grid=0)
        edges.append(w[rows, pts.slot])
    w_lo, w_hi = edges
    width = torch.maximum(w_hi - w_lo, MIN_SET_WIDTH * u)
    share = torch.rand(h.shape, generator=gen, dtype=torch.float64).to(h.device).to(h.dtype)
    return w_lo - margin * width + share * (1.0 + 2.0 * margin) * width


def tracked_points(
    market: Any,
    vf: Any,
    count: int,
    *,
    wage_range: str,
    wage_margin: float,
    device: torch.device,
    dtype: torch.dtype,
    explore: float = 0.0,
    wf: Any = None,
    bargaining: float = 0.0,
) -> Callable[[torch.Generator], WorkerPoints]:
    """A source of tracked workers: ``count`` training Ω states of the market (a share ``explore`` of them
    exploration states), every worker with a wage from the training range
    (:meth:`lotj.sim.market.Market.wage_states`), one occupied seat of each non-empty state drawn uniformly among
    its workers. A share ``bargaining`` of the tracked workers instead draw their own wage across their bargaining
    set under the W network ``wf`` as it stands when the set is drawn (:func:`bargaining_wages`, widened by
    ``wage_margin``)."""
    if not 0.0 <= bargaining <= 1.0:
        raise ValueError(f"bargaining = {bargaining}: must be in [0, 1]")
    if bargaining > 0 and wf is None:
        raise ValueError("tracked_points(bargaining > 0) needs the W network wf")

    def points(gen: torch.Generator) -> WorkerPoints:
        s, _, w = market.wage_states(
            count, market.train_firms, gen, vf, None, wage_range=wage_range, wage_margin=wage_margin, wage_mix=0.0,
            explore=explore,
        )  # fmt: skip
        keep = s.mask.any(-1).nonzero().squeeze(-1)
        s, w = s.index(keep), w[keep]
        # one occupied seat per state, uniformly among its workers
        u = torch.rand(s.batch_size, generator=gen, dtype=torch.float64).to(s.mask.device)
        rank = (u * s.mask.sum(-1)).long()
        slot = (s.mask.cumsum(-1) > rank.unsqueeze(-1)).to(torch.int64).argmax(-1)
        pts = WorkerPoints(s.to(device, dtype), slot.to(device), w.to(device, dtype))
        if bargaining > 0:
            pick = (torch.rand(slot.numel(), generator=gen, dtype=torch.float64) < bargaining).nonzero().squeeze(-1)
            pick = pick.to(device)
            if pick.numel():
                own = bargaining_wages(wf, vf, market.p, pts.index(pick), wage_margin, gen)
                pts.wages[pick, pts.slot[pick]] = own.to(pts.wages.dtype)
        return pts

    return points
