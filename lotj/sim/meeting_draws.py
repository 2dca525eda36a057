"""The meeting draws of a batch from the market: χ^N, χ^E (with firms) and exact sums (MODEL.md section 4).

The meeting integrals of both HJBs average over workers drawn from χ^N and over employed workers drawn
with their firm from χ^E. :func:`sample_draws` makes Monte Carlo draws (i.i.d. or stratified by a key the
integrands vary with); :func:`exact_draws` makes the exact weighted sums over the distinct workers of a
discrete economy. Both return a :class:`DrawSet`, the one raw draw type of the market: the V residual
turns it into :class:`lotj.economy.hjb.MeetingDraws` with the current V (:meth:`DrawSet.with_surplus`),
the W residual with the frozen V's table of surpluses (:meth:`DrawSet.with_surplus_table`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.economy.hjb import MeetingDraws, make_draws
from lotj.economy.params import EconomyParams
from lotj.economy.value import ValueFunction
from lotj.sim.distributions import EconomySnapshot


@dataclass
class DrawSet:
    """Raw meeting draws for one batch: unmatched ``(h_n, a_n)`` ``[M_N]``; employed workers as their
    firms ``s_p`` ``[M_E]`` and slots. ``firm_e``: each employed draw's firm identity in the simulated
    economy, for void meetings (MODEL.md section 10; −1 where a draw stands for several firms, as exact
    sums do); ``row_e``: its firm's row in the market it was drawn from (always a row; None when the draws
    come from no market). ``weight_n``, ``weight_e``: probability weights (:func:`exact_draws`), None for
    equally weighted Monte Carlo draws."""

    h_n: Tensor
    a_n: Tensor
    s_p: FirmBatch
    slot: Tensor
    firm_e: Tensor
    weight_n: Tensor | None = None
    weight_e: Tensor | None = None
    row_e: Tensor | None = None

    def with_surplus(self, vf: ValueFunction, p: EconomyParams) -> MeetingDraws:
        """The :class:`MeetingDraws` of these draws with Δ(S_p, x_j) under the current ``vf`` (the V residual;
        gradients flow through it: :func:`lotj.economy.hjb.make_draws`)."""
        return make_draws(vf, p, self.h_n, self.a_n, self.s_p, self.slot, self.firm_e, self.weight_n, self.weight_e)

    def with_surplus_table(self, table: Tensor) -> MeetingDraws:
        """The :class:`MeetingDraws` of these draws with Δ(S_p, x_j) read from ``table`` ``[N_f, n_max]``, the
        surplus of every worker of the market's firms under a frozen V (the W residual)."""
        if self.row_e is None:
            raise ValueError("DrawSet.with_surplus_table: the draws carry no market rows (row_e)")
        rows = torch.arange(self.slot.numel(), device=self.slot.device)
        h_e, a_e = self.s_p.h[rows, self.slot], self.s_p.a[rows, self.slot]
        delta_p = table[self.row_e, self.slot]
        return MeetingDraws(self.h_n, self.a_n, h_e, a_e, delta_p, self.firm_e, self.weight_n, self.weight_e)


def stratified_positions(n_items: int, count: int, generator: torch.Generator | None = None) -> Tensor:
    """Positions in ``[0, n_items)`` of one uniform draw in each of ``count`` equal-mass strata of the
    range: ``floor((k + u_k) n_items / count)``. Every item has the same chance as under uniform
    draws (the average over the strata is unbiased for the mean), with far less variance when the
    items are sorted by a key the integrand varies with."""
    u = torch.rand(count, generator=generator, dtype=torch.float64)
    pos = ((torch.arange(count, dtype=torch.float64) + u) * (n_items / count)).floor().long()
    return pos.clamp(max=n_items - 1)


def worker_sort_key(h: Tensor, a: Tensor, kappa: float) -> Tensor:
    """The key that orders workers for stratified draws: ``log h + κ log a``. With ``κ = γ^E / r``
    (r = ρ + δ_f + δ_r + δ_m) it is, to first order, the log of a lone worker's match value
    ``z h / (r − γ^E(a q − 1))``, the quantity the meeting integrands vary with most."""
    return torch.log(h) + kappa * torch.log(a)


@dataclass
class MarketOrder:
    """What the draws of one market need and every batch would otherwise recompute: the order of
    χ^N's workers by :func:`worker_sort_key` (``unmatched``; None unless stratified) and the flat slot
    indices ``firm · n_max + slot`` of χ^E's workers (``employed``; sorted by the key when stratified,
    else in slot order). Sorting a large market takes most of a batch's time (about 10 ms of 10.5 at
    the baseline size), so :class:`lotj.sim.market.Market` builds it once per refresh.
    ``mask`` is the occupancy tensor of the snapshot it was built from: an order is used only with
    that snapshot (an identity check, where recounting the workers would cost most of a batch)."""

    unmatched: Tensor | None
    employed: Tensor
    stratified: bool
    kappa: float
    mask: Tensor


def market_order(snapshot: EconomySnapshot, *, stratified: bool = False, kappa: float = 0.0) -> MarketOrder:
    """The :class:`MarketOrder` of ``snapshot`` for :func:`sample_draws` (same ``stratified``, ``kappa``)."""
    unmatched = None
    if stratified and snapshot.unmatched_h.numel() > 0:
        unmatched = torch.argsort(worker_sort_key(snapshot.unmatched_h, snapshot.unmatched_a, kappa).cpu())
    flat = snapshot.firms.mask.reshape(-1).nonzero().squeeze(-1)
    if stratified and flat.numel() > 0:
        key = worker_sort_key(snapshot.firms.h.reshape(-1)[flat], snapshot.firms.a.reshape(-1)[flat], kappa)
        flat = flat[torch.argsort(key)]
    return MarketOrder(unmatched, flat, stratified, float(kappa) if stratified else 0.0, snapshot.firms.mask)


def sample_draws(
    snapshot: EconomySnapshot,
    m_n: int,
    m_e: int,
    generator: torch.Generator | None = None,
    *,
    stratified: bool = False,
    kappa: float = 0.0,
    order: MarketOrder | None = None,
) -> DrawSet:
    """M_N workers from χ^N and M_E employed workers with their firms from χ^E (empty when the
    distribution is). With ``stratified``, each distribution is sorted by :func:`worker_sort_key`
    and one worker is drawn from each of M equal-mass strata (:func:`stratified_positions`):
    still an unbiased Monte Carlo average, with less variance than i.i.d. draws. ``order``: the
    snapshot's :func:`market_order` with the same ``stratified`` and ``kappa``, kept by the caller
    across batches (built here when None); the draws are the same either way."""
    if order is None:
        order = market_order(snapshot, stratified=stratified, kappa=kappa)
    elif order.stratified != stratified or (stratified and order.kappa != float(kappa)):
        raise ValueError("sample_draws: the market order was built for another choice of stratified or kappa")
    elif order.mask is not snapshot.firms.mask:
        raise ValueError("sample_draws: the market order belongs to another market")
    dev = snapshot.unmatched_h.device
    n_unmatched = snapshot.unmatched_h.numel()
    if n_unmatched == 0:
        h_n, a_n = snapshot.unmatched_h[:0], snapshot.unmatched_a[:0]
    elif stratified:
        assert order.unmatched is not None
        idx = order.unmatched[stratified_positions(n_unmatched, m_n, generator)].to(dev)
        h_n, a_n = snapshot.unmatched_h[idx], snapshot.unmatched_a[idx]
    else:
        h_n, a_n = snapshot.sample_unmatched(m_n, generator)
    flat = order.employed
    if flat.numel() == 0:
        empty = flat[:0]
        return DrawSet(h_n, a_n, snapshot.firms.index(empty), empty, empty, row_e=empty)
    if stratified:
        pick = flat[stratified_positions(flat.numel(), m_e, generator).to(flat.device)]
    else:
        pick = flat[torch.randint(flat.numel(), (m_e,), generator=generator).to(flat.device)]
    n_max = snapshot.firms.n_max
    firm_e = pick // n_max
    return DrawSet(h_n, a_n, snapshot.firms.index(firm_e), pick % n_max, firm_e, row_e=firm_e)


#: The most distinct workers :func:`exact_draws` accepts in χ^N or χ^E (beyond it, Monte Carlo draws
#: are cheaper than exact sums).
MAX_EXACT_DRAWS = 4096


def _unique_rows(rows: Tensor, mass: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The first occurrence of each distinct row of ``rows`` ``[N, K]`` and its share of the rows, or with
    ``mass`` ``[N]`` its share of the rows' total mass (summed in float64)."""
    _, inverse, counts = torch.unique(rows, dim=0, return_inverse=True, return_counts=True)
    first = torch.full((counts.numel(),), rows.shape[0], dtype=torch.long, device=rows.device)
    first = first.scatter_reduce(0, inverse, torch.arange(rows.shape[0], device=rows.device), "amin")
    if mass is None:
        return first, counts.to(rows.dtype) / rows.shape[0]
    mass = mass.to(torch.float64)
    share = torch.zeros(counts.numel(), dtype=torch.float64, device=mass.device).index_add_(0, inverse, mass)
    return first, (share / mass.sum()).to(rows.dtype)


def canonical_workers(s: FirmBatch) -> tuple[Tensor, Tensor]:
    """Each firm's workers ``(h, a)`` sorted by h, then a, padding last (as −1): the firm's
    multiset of workers as a row, equal for firms in the same state whatever their slot order."""
    big = torch.finfo(s.h.dtype).max
    h = torch.where(s.mask, s.h, torch.full_like(s.h, big))
    a = torch.where(s.mask, s.a, torch.full_like(s.a, big))
    order = torch.sort(a, dim=-1, stable=True).indices
    h, a = h.gather(-1, order), a.gather(-1, order)
    order = torch.sort(h, dim=-1, stable=True).indices
    h, a = h.gather(-1, order), a.gather(-1, order)
    pad = h == big
    return torch.where(pad, -torch.ones_like(h), h), torch.where(pad, -torch.ones_like(a), a)


def exact_draws(snapshot: EconomySnapshot) -> DrawSet:
    """The meeting expectations as exact sums over the snapshot (MODEL.md section 4): every distinct
    unmatched worker of χ^N once, weighted by its share of the unmatched, and every distinct employed
    worker-in-firm state of χ^E (firm type, the firm's multiset of workers, the worker) once, weighted
    by its share of the employed. In a discrete economy (finitely many worker and firm types, no
    learning) these sets are small and the residual carries no Monte Carlo noise.

    Distinct states pool different firms, so the draws carry no firm identity (``firm_e = −1``): a
    meeting with a worker of the firm's own state is not void. The void share is one firm's weight,
    ``1/N_f`` of the employed (MODEL.md section 10), which a Monte Carlo draw ignores equally often.
    Raises ``ValueError`` beyond :data:`MAX_EXACT_DRAWS` distinct workers (use Monte Carlo draws)."""
    firms = snapshot.firms
    dev = firms.h.device
    if snapshot.unmatched_h.numel():
        first, weight_n = _unique_rows(torch.stack([snapshot.unmatched_h, snapshot.unmatched_a], -1))
        h_n, a_n = snapshot.unmatched_h[first], snapshot.unmatched_a[first]
    else:
        h_n, a_n, weight_n = snapshot.unmatched_h[:0], snapshot.unmatched_a[:0], snapshot.unmatched_h[:0]
    flat = firms.mask.reshape(-1).nonzero().squeeze(-1)
    n_max = firms.n_max
    firm_e, slot = flat // n_max, flat % n_max
    if flat.numel():
        hc, ac = canonical_workers(firms.index(firm_e))
        own = torch.stack([firms.h[firm_e, slot], firms.a[firm_e, slot]], -1)
        rows = torch.cat([firms.z[firm_e, None], firms.q[firm_e, None], hc, ac, own], -1)
        first, weight_e = _unique_rows(rows)
        firm_e, slot = firm_e[first], slot[first]
    else:
        weight_e = firms.z[:0]
    too_many = max(h_n.numel(), firm_e.numel())
    if too_many > MAX_EXACT_DRAWS:
        raise ValueError(
            f"exact meeting sums: {too_many} distinct workers (more than {MAX_EXACT_DRAWS}); the economy is "
            "not discrete enough for exact sums: set solver.exact_sums=false (the V stage) or "
            "wsolver.exact_sums=false (the W stage) for Monte Carlo draws"
        )
    no_firm = torch.full_like(firm_e, -1)
    return DrawSet(h_n, a_n, firms.index(firm_e), slot, no_firm, weight_n.to(dev), weight_e.to(dev), row_e=firm_e)


@dataclass
class PoacherSet:
    """The poachers of one batch from Π ∝ (n + 1) χ (MODEL.md section 4): ``firms`` ``[M_Π]``, ``firm_id`` their
    firm identity in the simulated economy (−1 where one poacher stands for several firms, as exact sums do; a
    poacher equal to the worker's own firm is a void meeting, MODEL.md section 10) and ``weight`` their
    probability weights (:func:`exact_poachers`), None for equally weighted Monte Carlo draws."""

    firms: FirmBatch
    firm_id: Tensor
    weight: Tensor | None = None


def sample_poachers(snapshot: EconomySnapshot, count: int, generator: torch.Generator | None = None) -> PoacherSet:
    """``count`` Monte Carlo poachers from Π of ``snapshot`` (:meth:`EconomySnapshot.sample_poachers`)."""
    firms, idx = snapshot.sample_poachers(count, generator)
    return PoacherSet(firms, idx)


def exact_poachers(snapshot: EconomySnapshot) -> PoacherSet:
    """The expectation over Π as an exact sum over the snapshot (MODEL.md section 4, Π ∝ (n + 1) χ): every
    distinct firm state (firm type, its multiset of workers) once, weighted by ``Σ (n + 1)`` over the firms in
    that state divided by ``Σ (n + 1)`` over all firms. Firms at the cap stay in the sum: they meet workers
    and make no offer (MODEL.md section 10; the W residual's ``no_offer``).

    As in :func:`exact_draws`, a state pools different firms, so the poachers carry no firm identity
    (``firm_id = −1``): the void meeting with the worker's own firm (a share of order ``1/N_f``) is ignored.
    Raises ``ValueError`` beyond :data:`MAX_EXACT_DRAWS` distinct firm states (use Monte Carlo draws)."""
    firms = snapshot.firms
    if firms.batch_size == 0:
        raise ValueError("exact poacher sums: the market has no firms")
    hc, ac = canonical_workers(firms)
    rows = torch.cat([firms.z[:, None], firms.q[:, None], hc, ac], -1)
    first, weight = _unique_rows(rows, firms.size() + 1)
    if first.numel() > MAX_EXACT_DRAWS:
        raise ValueError(
            f"exact poacher sums: {first.numel()} distinct firm states (more than {MAX_EXACT_DRAWS}); the economy "
            "is not discrete enough for exact sums: set wsolver.exact_sums=false (Monte Carlo poachers)"
        )
    return PoacherSet(firms.index(first), torch.full_like(first, -1), weight.to(firms.h.dtype))
