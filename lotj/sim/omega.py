"""The training distribution Ω: χ and its one-event neighbours (MODEL.md section 6).

Ω is the simulated χ augmented with every state reachable from it in one event. A draw from Ω
(:func:`sample_omega`) picks a firm uniformly from χ (or from a given subset of firms, so that
training and held-out pools come from disjoint firms) and applies one of:

- ``none``: the state itself;
- ``remove``: ``S⊖x_i`` for a uniformly drawn worker i (retirement, match break, quit, poach);
- ``add``: ``S⊕x`` for a worker x who could meet the firm: from χ^N with probability ``s^N``
  and from χ^E otherwise, the split of meetings in the market-clearing identity (half and half
  when there are no meetings);
- ``learn``: ``H(S)``, one learning step (MODEL.md section 2),

with the probabilities ``weights`` (default: a quarter each). An event that cannot happen
leaves the state as it is and is reported as ``none``: a removal from an empty firm, an
addition at the size cap ``n_max`` (MODEL.md section 10) or from an empty distribution, or
learning in an empty firm.

Pure tensor code on an :class:`~lotj.sim.distributions.EconomySnapshot`; a DataModule calls it
at every refresh. The returned ``source`` (the row of the firm in the snapshot) lets a caller
make meetings between a state and one of its own workers void (MODEL.md section 10).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.technology import learning_step
from lotj.sim.distributions import EconomySnapshot

#: Ω's events, in the order of the ``weights`` argument and of the codes in :attr:`OmegaSample.event`.
OMEGA_EVENTS = ("none", "remove", "add", "learn")


@dataclass
class OmegaSample:
    """Draws from Ω: the states, the row of the firm each came from, and the event applied
    (an index into :data:`OMEGA_EVENTS`)."""

    states: FirmBatch
    source: Tensor
    event: Tensor


def _uniform_slot(mask: Tensor, generator: torch.Generator | None) -> Tensor:
    """A uniformly drawn occupied slot of each row (0 for an empty row)."""
    u = torch.rand(mask.shape, generator=generator, dtype=torch.float64).to(mask.device)
    return torch.where(mask, u, torch.full_like(u, -1.0)).argmax(-1)


def meeting_workers(
    p: EconomyParams, snapshot: EconomySnapshot, count: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``count`` workers a firm could meet: from χ^N with probability ``s^N``, else from χ^E.
    Returns ``(h, a, ok)``; ``ok`` is False where the chosen distribution is empty."""
    firms = snapshot.firms
    dev, dt = firms.h.device, firms.h.dtype
    rates = snapshot.meeting_rates(p)
    s_n = rates.s_n if rates.omega > 0 else 0.5
    from_n = (torch.rand(count, generator=generator, dtype=torch.float64) < s_n).to(dev)
    h = torch.ones(count, dtype=dt, device=dev)
    a = torch.ones(count, dtype=dt, device=dev)
    ok = torch.zeros(count, dtype=torch.bool, device=dev)
    hn, an = snapshot.sample_unmatched(count, generator)
    if hn.numel():
        h, a, ok = torch.where(from_n, hn, h), torch.where(from_n, an, a), from_n.clone()
    sp, slot = snapshot.sample_employed(count, generator)
    if slot.numel():
        rows = torch.arange(count, device=dev)
        h = torch.where(from_n, h, sp.h[rows, slot])
        a = torch.where(from_n, a, sp.a[rows, slot])
        ok = ok | ~from_n
    return h, a, ok


def sample_omega(
    p: EconomyParams,
    snapshot: EconomySnapshot,
    count: int,
    generator: torch.Generator | None = None,
    *,
    firms: Tensor | None = None,
    weights: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25),
) -> OmegaSample:
    """``count`` draws from Ω (module docstring), from the snapshot rows ``firms`` (all when None)."""
    w = torch.tensor(weights, dtype=torch.float64)
    if w.numel() != len(OMEGA_EVENTS) or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError(f"weights {weights}: four non-negative numbers (none, remove, add, learn), not all 0")
    dev = snapshot.firms.z.device
    pool = torch.arange(snapshot.n_firms) if firms is None else firms.cpu()
    source = pool[torch.randint(pool.numel(), (count,), generator=generator)].to(dev)
    s = snapshot.firms.index(source)
    event = torch.multinomial(w, count, replacement=True, generator=generator).to(dev)
    n = s.size()

    remove = (event == 1) & (n > 0)
    s = s.remove(_uniform_slot(s.mask, generator), active=remove)

    h_new, a_new, ok = meeting_workers(p, snapshot, count, generator)
    add = (event == 2) & ok & (n < p.n_max)
    s, _ = s.add(h_new, a_new, active=add)

    learn = (event == 3) & (n > 0)
    h_learned = learning_step(s.h, s.a, s.q, s.mask, p.theta_plus, p.theta_minus)
    s = FirmBatch(s.z, s.q, torch.where(learn.unsqueeze(-1), h_learned, s.h), s.a, s.mask)

    done = torch.where(remove | add | learn, event, torch.zeros_like(event))
    return OmegaSample(s, source, done)
