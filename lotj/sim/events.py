"""The random events of one time step of length ``dt`` (MODEL.md sections 1–3; docs/simulator.md).

Every Poisson process of the model is discretised on its own: within a step each process fires
independently with probability ``1 − exp(−rate·dt)``, so the marginal rate of every event is
exact. What several events of one worker or one firm in the same step do is settled by the
simulator's priority rule (:mod:`lotj.sim.simulator`).

- firms: death at ``δ_f``, learning at ``γ^E``;
- workers: retirement at ``δ_r``; employed: match break at ``δ_m``, renegotiation shock at
  ``λ``, meeting at ``ψ^E``; unmatched: meeting at ``ψ^N``;
- each meeting goes to firm ``k`` with probability ``(n_k + 1) / Σ_j (n_j + 1)`` at the start
  of the step (the ``+1`` is the manager, MODEL.md section 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lotj.economy.params import EconomyParams


@dataclass(frozen=True)
class StepProbabilities:
    """``1 − exp(−rate·dt)`` for each process of the model."""

    death: float
    learn: float
    retire: float
    brk: float
    reneg: float
    meet_e: float
    meet_n: float

    @classmethod
    def from_params(cls, p: EconomyParams, dt: float) -> StepProbabilities:
        def prob(rate: float) -> float:
            return -math.expm1(-rate * dt)

        return cls(
            death=prob(p.delta_f),
            learn=prob(p.gamma_e),
            retire=prob(p.delta_r),
            brk=prob(p.delta_m),
            reneg=prob(p.lam),
            meet_e=prob(p.psi_e),
            meet_n=prob(p.psi_n),
        )


@dataclass
class StepEvents:
    """The events drawn for one step (masks over firms ``[N_f]`` and worker seats ``[W]``)."""

    death: Tensor
    learn: Tensor
    retire: Tensor
    brk: Tensor
    reneg: Tensor
    meeters: Tensor  #: seats that generate a meeting, ``[M]`` (ascending)
    dest: Tensor  #: the firm each meeting reaches, ``[M]``


def draw_destinations(sizes: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` firms drawn with probability ∝ ``n_k + 1`` (inverse CDF on the cumulative weights)."""
    cum = torch.cumsum((sizes + 1).to(torch.float64), 0)
    u = torch.rand(count, generator=generator, dtype=torch.float64, device=sizes.device) * cum[-1]
    return torch.searchsorted(cum, u, right=True).clamp_(max=sizes.numel() - 1)


def draw_step_events(
    probs: StepProbabilities, employed: Tensor, sizes: Tensor, generator: torch.Generator
) -> StepEvents:
    """Draw every event of one step from the state at its start (``employed`` ``[W]``, firm
    ``sizes`` ``[N_f]``). Events of an unmatched worker other than retirement and ``ψ^N`` meetings
    are never drawn."""
    dev = employed.device
    # single precision suffices for Bernoulli draws (probabilities ≥ 1e-7 are resolved to 1e-7 relative)
    uf = torch.rand(sizes.numel(), 2, generator=generator, dtype=torch.float32, device=dev)
    uw = torch.rand(employed.numel(), 4, generator=generator, dtype=torch.float32, device=dev)
    meet_p = torch.where(employed, probs.meet_e, probs.meet_n)
    meet = uw[:, 3] < meet_p
    meeters = meet.nonzero().squeeze(1)
    return StepEvents(
        death=uf[:, 0] < probs.death,
        learn=uf[:, 1] < probs.learn,
        retire=uw[:, 0] < probs.retire,
        brk=employed & (uw[:, 1] < probs.brk),
        reneg=employed & (uw[:, 2] < probs.reneg),
        meeters=meeters,
        dest=draw_destinations(sizes, meeters.numel(), generator),
    )


# ------------------------------------------------------------------ admission


def rank_within_groups(groups: Tensor, generator: torch.Generator) -> Tensor:
    """A uniformly random order within each group: ``rank[i]`` is ``0, 1, …`` among the entries
    with the same ``groups`` value (the order in which arrivals at one firm are admitted)."""
    k = groups.numel()
    if k == 0:
        return groups.clone()
    perm = torch.randperm(k, generator=generator, device=groups.device)
    order = perm[torch.argsort(groups[perm], stable=True)]
    sorted_groups = groups[order]
    first = torch.searchsorted(sorted_groups, sorted_groups, right=False)
    rank = torch.empty_like(groups)
    rank[order] = torch.arange(k, device=groups.device) - first
    return rank


def nth_free_slot(free: Tensor, rank: Tensor) -> Tensor:
    """For rows of a free-slot mask ``free`` ``[A, n_max]``, the index of the ``rank``-th free slot
    (0-based). The caller guarantees ``rank < free.sum(1)``."""
    cum = torch.cumsum(free.to(torch.int32), 1)
    hit = free & (cum == (rank + 1).unsqueeze(1).to(torch.int32))
    return hit.to(torch.int8).argmax(1)
