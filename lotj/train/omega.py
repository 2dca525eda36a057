"""The training distribution Ω and the Monte Carlo draws of one batch (MODEL.md section 6).

Ω is the simulated χ augmented with every state reachable from it in one event: one worker removed,
one worker added (from χ^N or χ^E), one learning step. :func:`sample_omega` draws a firm from χ
(from a given subset of the economy's firms, so that training and held-out states come from
disjoint firms) and applies, with the probabilities of :data:`EVENTS`, no event, a removal of a
uniformly drawn worker, the addition of a worker drawn from χ^N or χ^E (split in the proportions
s^N : s^E of the meetings, half and half without meetings), or a learning step H(S) (never when
γ^E = 0: H(S) is then no event's outcome; the other events share its probability). An event that
cannot happen leaves the state as it is (removal from an empty firm; addition at the size cap or
from an empty distribution). Each state keeps the index of the firm it came from, which makes a
meeting with one of that firm's own workers void (MODEL.md section 10).
:func:`sample_omega_events` draws the same states and also returns the event applied to each.

Pure tensor code on :mod:`lotj.economy` and :class:`lotj.sim.distributions.EconomySnapshot`; the
Lightning DataModule (:mod:`lotj.train.datamodule`) only calls it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch, sample_firm_types, sample_workers
from lotj.economy.hjb import learned
from lotj.economy.params import EconomyParams
from lotj.economy.technology import learning_step
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
    s, firm_id, _ = sample_omega_events(p, snapshot, count, firms, generator)
    return s, firm_id


def sample_omega_events(
    p: EconomyParams,
    snapshot: EconomySnapshot,
    count: int,
    firms: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[FirmBatch, Tensor, Tensor]:
    """:func:`sample_omega` (the same draws from the same generator), with the event applied to each
    state as a third tensor: its index in :data:`EVENTS`, ``none`` where the drawn event could not
    happen (removal from an empty firm, addition at the cap or from an empty distribution, learning
    in an empty firm) and the state is its firm's."""
    dev = snapshot.firms.z.device
    pool = torch.arange(snapshot.n_firms) if firms is None else firms.cpu()
    firm_id = pool[torch.randint(pool.numel(), (count,), generator=generator)].to(dev)
    s = snapshot.firms.index(firm_id)
    probs = torch.tensor(list(EVENTS.values()), dtype=torch.float64)
    if p.gamma_e == 0.0:  # no learning events: H(S) is not reachable (nor a state of a discrete economy)
        probs[list(EVENTS).index("learn")] = 0.0
    event = torch.multinomial(probs, count, replacement=True, generator=generator).to(dev)
    names = list(EVENTS)
    remove, add, learn = (event == names.index(k) for k in ("remove", "add", "learn"))
    n = s.size()

    s = s.remove(random_worker_slot(s, generator), active=remove)
    rates = snapshot.meeting_rates(p)
    p_unmatched = rates.s_n if rates.omega > 0 else 0.5
    h_new, a_new, ok = _draw_workers(snapshot, count, p_unmatched, generator)
    s, added = s.add(h_new, a_new, active=add & ok & (s.size() < p.n_max))
    h_learned = learned(p, s).h
    s = FirmBatch(s.z, s.q, torch.where(learn.unsqueeze(-1), h_learned, s.h), s.a, s.mask)
    happened = ((remove | learn) & (n > 0)) | added
    return s, firm_id, torch.where(happened, event, torch.full_like(event, names.index("none")))


#: Exploration follows learning chains until their weight in V falls below this share.
EXPLORE_LEARNING_WEIGHT = 1e-3
#: At most this many learning steps in an exploration state.
EXPLORE_MAX_STEPS = 500


def learning_horizon(p: EconomyParams) -> int:
    """How many learning steps V(S) looks ahead: V(S) depends on V(H^k S) with a weight of about
    ``(γ^E/(γ^E + r))^k`` (r = ρ + δ_f + δ_r + δ_m, the rate at which a match ends; MODEL.md
    section 4), so the horizon is the k at which that weight falls to :data:`EXPLORE_LEARNING_WEIGHT`
    (0 without learning)."""
    if p.gamma_e <= 0.0:
        return 0
    ratio = p.gamma_e / (p.gamma_e + p.outflow_rate)
    return min(EXPLORE_MAX_STEPS, math.ceil(math.log(EXPLORE_LEARNING_WEIGHT) / math.log(ratio)))


def explore_states(
    p: EconomyParams, count: int, generator: torch.Generator | None = None, learning_steps: int | None = None
) -> tuple[FirmBatch, Tensor]:
    """``count`` exploration states: a firm type from G_f, a size uniform on ``0..n_max``, its workers
    from G_w (MODEL.md section 1), then ``k`` learning steps H (section 2), ``k`` uniform on
    ``0..learning_steps`` (default :func:`learning_horizon`). Mixed into Ω by ``solver.explore`` so
    that states the simulated χ rarely visits (large firms of low-productivity types, long learning
    chains) are trained on too. Returns the states and each one's ``k``."""
    z, q = sample_firm_types(p, count, generator)
    size = torch.randint(p.n_max + 1, (count,), generator=generator)
    h, a = sample_workers(p, count * p.n_max, generator)
    mask = torch.arange(p.n_max).unsqueeze(0) < size.unsqueeze(1)
    ones = torch.ones_like(h).view(count, p.n_max)
    h, a = torch.where(mask, h.view(count, p.n_max), ones), torch.where(mask, a.view(count, p.n_max), ones)
    steps = learning_horizon(p) if learning_steps is None else int(learning_steps)
    k = torch.randint(steps + 1, (count,), generator=generator) if steps > 0 else torch.zeros(count, dtype=torch.long)
    for step in range(int(k.max()) if count else 0):
        moved = learning_step(h, a, q, mask, p.theta_plus, p.theta_minus)
        h = torch.where((k > step).unsqueeze(-1), moved, h)
    return FirmBatch(z, q, h, a, mask), k


@dataclass
class DrawSet:
    """Raw meeting draws for one batch: unmatched ``(h_n, a_n)`` ``[M_N]``; employed workers as their
    firms ``s_p`` ``[M_E]``, slots and firm indices (:func:`lotj.economy.hjb.make_draws` turns them
    into :class:`lotj.economy.hjb.MeetingDraws` with the current V). ``weight_n``, ``weight_e``:
    probability weights (:func:`exact_draws`), None for equally weighted Monte Carlo draws."""

    h_n: Tensor
    a_n: Tensor
    s_p: FirmBatch
    slot: Tensor
    firm_e: Tensor
    weight_n: Tensor | None = None
    weight_e: Tensor | None = None


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
    the baseline size), so :class:`lotj.train.datamodule.OmegaDataModule` builds it once per refresh.
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
        return DrawSet(h_n, a_n, snapshot.firms.index(empty), empty, empty)
    if stratified:
        pick = flat[stratified_positions(flat.numel(), m_e, generator).to(flat.device)]
    else:
        pick = flat[torch.randint(flat.numel(), (m_e,), generator=generator).to(flat.device)]
    n_max = snapshot.firms.n_max
    firm_e = pick // n_max
    return DrawSet(h_n, a_n, snapshot.firms.index(firm_e), pick % n_max, firm_e)


#: The most distinct workers :func:`exact_draws` accepts in χ^N or χ^E (beyond it, Monte Carlo draws
#: are cheaper than exact sums).
MAX_EXACT_DRAWS = 4096


def _unique_rows(rows: Tensor) -> tuple[Tensor, Tensor]:
    """The first occurrence of each distinct row of ``rows`` ``[N, K]`` and its share of the rows."""
    _, inverse, counts = torch.unique(rows, dim=0, return_inverse=True, return_counts=True)
    first = torch.full((counts.numel(),), rows.shape[0], dtype=torch.long, device=rows.device)
    first = first.scatter_reduce(0, inverse, torch.arange(rows.shape[0], device=rows.device), "amin")
    return first, counts.to(rows.dtype) / rows.shape[0]


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
            "not discrete enough for exact sums: set solver.exact_sums=false (Monte Carlo draws)"
        )
    no_firm = torch.full_like(firm_e, -1)
    return DrawSet(h_n, a_n, firms.index(firm_e), slot, no_firm, weight_n.to(dev), weight_e.to(dev))
