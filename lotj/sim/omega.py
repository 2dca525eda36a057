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

:func:`explore_states` draws states the simulated χ rarely visits (``solver.explore``).

Pure tensor code on :mod:`lotj.economy` and :class:`lotj.sim.distributions.EconomySnapshot`; the market
(:class:`lotj.sim.market.Market`) draws its states through it.
"""

from __future__ import annotations

import math

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
