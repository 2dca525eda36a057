"""The tracked workers, meeting draws and poachers of the W and wage error estimates and of W's chain targets,
taken from a simulated market (:class:`lotj.sim.market.Market`; docs/accuracy.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from lotj.accuracy.wage_error import GROUPS
from lotj.accuracy.worker_targets import WorkerPoints
from lotj.economy.firms import FirmBatch

__all__ = ["cap_events", "tracked_points", "unmatched_workers", "worker_sources"]


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
) -> Callable[[torch.Generator], WorkerPoints]:
    """A source of tracked workers: ``count`` training Ω states of the market (a share ``explore`` of them
    exploration states), every worker with a wage from the training range
    (:meth:`lotj.sim.market.Market.wage_states`), one occupied seat of each non-empty state drawn uniformly among
    its workers."""

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
        return WorkerPoints(s.to(device, dtype), slot.to(device), w.to(device, dtype))

    return points
