"""Empirical distributions of a (simulated) economy: χ, χ^N, χ^E and Π (MODEL.md section 3).

An :class:`EconomySnapshot` holds ``N_f`` firms (standing for measure 1) and the unmatched
workers. From it:

- χ: firms drawn uniformly (empty firms included: a newborn firm is a state too);
- χ^N: unmatched workers drawn uniformly;
- χ^E: employed workers drawn uniformly, returned with their firm state ``S_p`` and slot, so
  that the caller computes Δ(S_p, x_j) with the current V;
- Π: firms drawn with probability ∝ ``n + 1`` (the poacher of an employed worker);
- e, ∫(1 + n) dχ and the market-clearing ω, s^N, s^E.

The initial economy (:func:`initial_snapshot`) draws firms from G_f with a Poisson number of
workers from G_w, and the remaining ``N_w·N_f`` workers unmatched from G_w. It is a real
starting distribution; the simulator moves it to the stationary one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch, sample_initial_firms, sample_workers
from lotj.economy.params import EconomyParams, MeetingRates, meeting_rates


@dataclass
class EconomySnapshot:
    """Firms and unmatched workers at one date."""

    firms: FirmBatch
    unmatched_h: Tensor
    unmatched_a: Tensor

    @property
    def n_firms(self) -> int:
        return self.firms.batch_size

    @property
    def device(self) -> torch.device:
        return self.firms.z.device

    def to(self, device: torch.device | str) -> EconomySnapshot:
        """The same economy on ``device`` (itself when it is there already)."""
        if torch.device(device) == self.device:
            return self
        return EconomySnapshot(self.firms.to(device), self.unmatched_h.to(device), self.unmatched_a.to(device))

    def n_employed(self) -> int:
        return int(self.firms.mask.sum())

    def n_workers(self) -> int:
        return self.n_employed() + int(self.unmatched_h.numel())

    def employment_rate(self) -> float:
        total = self.n_workers()
        return self.n_employed() / total if total else 0.0

    def mean_n_plus_one(self) -> float:
        """∫(1 + n(S)) dχ(S)."""
        return 1.0 + self.n_employed() / self.n_firms

    def meeting_rates(self, p: EconomyParams) -> MeetingRates:
        """ω, s^N, s^E by market clearing (MODEL.md section 3)."""
        return meeting_rates(p, self.employment_rate(), self.mean_n_plus_one())

    # ------------------------------------------------------------------ samplers
    def sample_firms(self, count: int, generator: torch.Generator | None = None) -> FirmBatch:
        """``count`` firm states from χ (uniform over firms)."""
        idx = torch.randint(self.n_firms, (count,), generator=generator)
        return self.firms.index(idx.to(self.firms.z.device))

    def sample_unmatched(self, count: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``count`` workers (h, a) from χ^N. With no unmatched worker, falls back to G_w-free
        empty tensors of length 0 (callers treat s^N = 0 then)."""
        m = self.unmatched_h.numel()
        if m == 0:
            return self.unmatched_h[:0], self.unmatched_a[:0]
        idx = torch.randint(m, (count,), generator=generator).to(self.unmatched_h.device)
        return self.unmatched_h[idx], self.unmatched_a[idx]

    def sample_employed(self, count: int, generator: torch.Generator | None = None) -> tuple[FirmBatch, Tensor]:
        """``count`` employed workers from χ^E with their firms: ``(S_p, slot)``; the worker is
        ``(S_p.h[k, slot[k]], S_p.a[k, slot[k]])``. Empty result when nobody is employed."""
        flat = self.firms.mask.reshape(-1).nonzero().squeeze(-1)
        if flat.numel() == 0:
            return self.firms.index(flat[:0]), flat[:0]
        pick = flat[torch.randint(flat.numel(), (count,), generator=generator).to(flat.device)]
        n_max = self.firms.n_max
        return self.firms.index(pick // n_max), pick % n_max

    def sample_poachers(self, count: int, generator: torch.Generator | None = None) -> tuple[FirmBatch, Tensor]:
        """``count`` firms from Π ∝ (n + 1) χ: returns the states and their indices."""
        w = (self.firms.size() + 1).to(torch.float64)
        idx = torch.multinomial(w.cpu(), count, replacement=True, generator=generator).to(self.firms.z.device)
        return self.firms.index(idx), idx


def initial_snapshot(
    p: EconomyParams,
    n_firms: int,
    generator: torch.Generator | None = None,
    mean_size: float | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> EconomySnapshot:
    """The initial economy: ``n_firms`` firms from G_f, each with Poisson(``mean_size``) workers
    from G_w (capped at ``n_max``; default mean ``0.7·n_w``, near the calibrated employment rate),
    and the rest of the ``round(N_w·N_f)`` workers unmatched, drawn from G_w."""
    total = int(round(p.n_w * n_firms))
    size = 0.7 * p.n_w if mean_size is None or mean_size < 0 else mean_size
    firms = sample_initial_firms(p, n_firms, generator, dtype, device, mean_size=size)
    # never more employed workers than there are workers
    excess = int(firms.mask.sum()) - total
    if excess > 0:
        flat = firms.mask.reshape(-1).nonzero().squeeze(-1)
        drop = flat[torch.randperm(flat.numel(), generator=generator)[:excess]]
        mask = firms.mask.reshape(-1).clone()
        mask[drop] = False
        firms.mask = mask.view_as(firms.mask)
        firms.h = torch.where(firms.mask, firms.h, torch.ones_like(firms.h))
        firms.a = torch.where(firms.mask, firms.a, torch.ones_like(firms.a))
        # keep workers packed in the first slots is not required: slots are unordered
    n_unmatched = total - int(firms.mask.sum())
    h, a = sample_workers(p, n_unmatched, generator, dtype, device)
    return EconomySnapshot(firms, h, a)
