"""The training distribution Ω and the Monte Carlo draws of one batch (MODEL.md section 6).

Ω is the simulated χ augmented with every state reachable from it in one event: one worker removed,
one worker added (from χ^N or χ^E), one learning step. :func:`sample_omega` draws a firm from χ
(from a given subset of the economy's firms, so that training and held-out states come from
disjoint firms) and applies, with the probabilities of :data:`EVENTS`, no event, a removal of a
uniformly drawn worker, the addition of a worker drawn from χ^N or χ^E (split in the proportions
s^N : s^E of the meetings, half and half without meetings), or a learning step H(S). An event that
cannot happen leaves the state as it is (removal from an empty firm; addition at the size cap or
from an empty distribution). Each state keeps the index of the firm it came from, which makes a
meeting with one of that firm's own workers void (MODEL.md section 10).

Pure tensor code on :mod:`lotj.economy` and :class:`lotj.sim.distributions.EconomySnapshot`; the
Lightning DataModule (:mod:`lotj.train.datamodule`) only calls it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.economy.hjb import learned
from lotj.economy.params import EconomyParams
from lotj.sim.distributions import EconomySnapshot

#: Ω's events and their probabilities: χ itself, one removal, one addition, one learning step.
EVENTS = {"none": 0.25, "remove": 0.25, "add": 0.25, "learn": 0.25}


def random_worker_slot(s: FirmBatch, generator: torch.Generator | None = None) -> Tensor:
    """A uniformly drawn real worker's slot in each firm (slot 0 for an empty firm), ``[B]``."""
    u = torch.rand(s.mask.shape, generator=generator, dtype=torch.float64).to(s.h.device)
    return torch.where(s.mask, u, torch.full_like(u, -1.0)).argmax(-1)


def _draw_workers(
    snapshot: EconomySnapshot, count: int, p_unmatched: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """``count`` workers, each from χ^N with probability ``p_unmatched`` and from χ^E otherwise.
    Returns ``(h, a, ok)``; ``ok`` is False where the chosen distribution is empty."""
    dev, dt = snapshot.firms.h.device, snapshot.firms.h.dtype
    from_n = torch.rand(count, generator=generator, dtype=torch.float64).to(dev) < p_unmatched
    h = torch.ones(count, dtype=dt, device=dev)
    a = torch.ones(count, dtype=dt, device=dev)
    ok = torch.zeros(count, dtype=torch.bool, device=dev)
    hn, an = snapshot.sample_unmatched(count, generator)
    if hn.numel():
        h, a, ok = torch.where(from_n, hn, h), torch.where(from_n, an, a), ok | from_n
    sp, slot = snapshot.sample_employed(count, generator)
    if slot.numel():
        rows = torch.arange(count, device=dev)
        he, ae = sp.h[rows, slot], sp.a[rows, slot]
        h, a, ok = torch.where(from_n, h, he), torch.where(from_n, a, ae), ok | ~from_n
    return h, a, ok


def sample_omega(
    p: EconomyParams,
    snapshot: EconomySnapshot,
    count: int,
    firms: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[FirmBatch, Tensor]:
    """``count`` states from Ω (module docstring), drawn from the firms with indices ``firms``
    (all firms when None). Returns the states and the index of the firm each came from."""
    dev = snapshot.firms.z.device
    pool = torch.arange(snapshot.n_firms) if firms is None else firms.cpu()
    firm_id = pool[torch.randint(pool.numel(), (count,), generator=generator)].to(dev)
    s = snapshot.firms.index(firm_id)
    probs = torch.tensor(list(EVENTS.values()), dtype=torch.float64)
    event = torch.multinomial(probs, count, replacement=True, generator=generator).to(dev)
    names = list(EVENTS)
    remove, add, learn = (event == names.index(k) for k in ("remove", "add", "learn"))

    s = s.remove(random_worker_slot(s, generator), active=remove)
    rates = snapshot.meeting_rates(p)
    p_unmatched = rates.s_n if rates.omega > 0 else 0.5
    h_new, a_new, ok = _draw_workers(snapshot, count, p_unmatched, generator)
    s, _ = s.add(h_new, a_new, active=add & ok & (s.size() < p.n_max))
    h_learned = learned(p, s).h
    s = FirmBatch(s.z, s.q, torch.where(learn.unsqueeze(-1), h_learned, s.h), s.a, s.mask)
    return s, firm_id


@dataclass
class DrawSet:
    """Raw meeting draws for one batch: unmatched ``(h_n, a_n)`` ``[M_N]``; employed workers as their
    firms ``s_p`` ``[M_E]``, slots and firm indices (:func:`lotj.economy.hjb.make_draws` turns them
    into :class:`lotj.economy.hjb.MeetingDraws` with the current V)."""

    h_n: Tensor
    a_n: Tensor
    s_p: FirmBatch
    slot: Tensor
    firm_e: Tensor


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


def sample_draws(
    snapshot: EconomySnapshot,
    m_n: int,
    m_e: int,
    generator: torch.Generator | None = None,
    *,
    stratified: bool = False,
    kappa: float = 0.0,
) -> DrawSet:
    """M_N workers from χ^N and M_E employed workers with their firms from χ^E (empty when the
    distribution is). With ``stratified``, each distribution is sorted by :func:`worker_sort_key`
    and one worker is drawn from each of M equal-mass strata (:func:`stratified_positions`):
    still an unbiased Monte Carlo average, with less variance than i.i.d. draws."""
    dev = snapshot.unmatched_h.device
    n_unmatched = snapshot.unmatched_h.numel()
    if n_unmatched == 0:
        h_n, a_n = snapshot.unmatched_h[:0], snapshot.unmatched_a[:0]
    elif stratified:
        order = torch.argsort(worker_sort_key(snapshot.unmatched_h, snapshot.unmatched_a, kappa).cpu())
        idx = order[stratified_positions(n_unmatched, m_n, generator)].to(dev)
        h_n, a_n = snapshot.unmatched_h[idx], snapshot.unmatched_a[idx]
    else:
        h_n, a_n = snapshot.sample_unmatched(m_n, generator)
    flat = snapshot.firms.mask.reshape(-1).nonzero().squeeze(-1)
    if flat.numel() == 0:
        empty = flat[:0]
        return DrawSet(h_n, a_n, snapshot.firms.index(empty), empty, empty)
    if stratified:
        key = worker_sort_key(snapshot.firms.h.reshape(-1)[flat], snapshot.firms.a.reshape(-1)[flat], kappa)
        flat = flat[torch.argsort(key)]
        pick = flat[stratified_positions(flat.numel(), m_e, generator).to(flat.device)]
    else:
        pick = flat[torch.randint(flat.numel(), (m_e,), generator=generator).to(flat.device)]
    n_max = snapshot.firms.n_max
    firm_e = pick // n_max
    return DrawSet(h_n, a_n, snapshot.firms.index(firm_e), pick % n_max, firm_e)
