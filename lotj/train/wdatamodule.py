"""The training data of the W stage: worker-in-firm states with wages, and the meeting draws (docs/wages.md).

A batch is ``batch_size`` firm states from Ω (:func:`lotj.train.omega.sample_omega`: χ and its one-event
neighbours) with a wage for every worker; the W residual covers every worker of every state. Drawing
firms from χ and weighting each of their workers equally is drawing workers from χ^E (with their
firm); the removal, addition and learning neighbours are the workers' one-event neighbours.

Wages. Before any wage is simulated, every worker's wage is drawn uniformly from the documented range
of :func:`lotj.economy.wages.initial_wage_range`: with ``wsolver.wage_range=surplus`` (the default) from
the entry wage of a hire at ``W = U``, ``b h − ψ^E Δ⁺``, to the wage of ``W = U + Δ``, ``b h + r̄ Δ⁺``, and
the flow range, all widened (Δ from the frozen V); with ``flow`` between ``b h`` and the flow marginal
product only, widened; with ``mixed`` half the workers from each. :meth:`WDataModule.refresh` takes a
new snapshot and, optionally, the simulated wages of its workers (``[N_f, n_max]``, slot-aligned with
``snapshot.firms``): then a share ``wage_mix`` of the states carry their workers' simulated wages (Ω
keeps every original worker in its slot) and the rest, and every worker added by an Ω event, a wage
from the range, so that W is trained both where the simulation goes and around it.

Meeting draws for each batch: ``M_N`` workers from χ^N, ``M_E`` from χ^E with ``Δ(S_p, x)`` at their own
firm (V frozen: the surplus of every employed worker is computed once per refresh), ``M_Π`` poachers
from Π; all carry the index of their firm, so that meetings with the worker's own firm are void.
Held-out batches, and training batches with ``wsolver.unbiased``, carry a second independent draw set
(keys ending in ``2``) for the unbiased squared residual ``R₁ R₂``; the held-out draws are fixed at
each refresh, so that the held-out residual moves only with W.
Training states and held-out states come from disjoint firms (a fixed split of the firm rows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from lotj.config import WSolverConfig
from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.surplus import surplus
from lotj.economy.value import ValueFunction
from lotj.economy.wages import draw_initial_wages
from lotj.errors import ConfigError
from lotj.sim.distributions import EconomySnapshot
from lotj.train.omega import market_order, sample_draws, sample_omega

Batch = dict[str, Tensor]

#: ``wsolver.wage_range``: ``flow`` draws the initial wages between ``b h`` and the flow marginal product;
#: ``surplus`` also covers the wages of the whole bargaining set ``[U, U + Δ]``; ``mixed`` draws half the
#: workers' wages from each (docs/wages.md).
WAGE_RANGES = ("flow", "surplus", "mixed")

_FIRM_KEYS = ("z", "q", "h", "a", "mask")


def batch_firms(batch: Batch, prefix: str = "", suffix: str = "") -> FirmBatch:
    """The :class:`FirmBatch` stored under ``prefix + (z, q, h, a, mask) + suffix`` in a batch dictionary."""
    return FirmBatch(*(batch[prefix + k + suffix] for k in _FIRM_KEYS))


def _put_firms(batch: Batch, s: FirmBatch, prefix: str = "") -> None:
    for k in _FIRM_KEYS:
        batch[prefix + k] = getattr(s, k)


class _Batches(IterableDataset):
    """``count`` batches from ``make(generator)``; a fresh generator state for every pass."""

    def __init__(self, make: Callable[[torch.Generator], Batch], count: int, seed: int):
        self.make, self.count, self.seed, self.passes = make, count, seed, 0

    def __iter__(self) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(self.seed + 104_729 * self.passes)
        self.passes += 1
        for _ in range(self.count):
            yield self.make(gen)

    def __len__(self) -> int:
        return self.count


class WDataModule(L.LightningDataModule):
    """Ω states with wages and meeting draws for :class:`lotj.train.wmodule.WModule` (module docstring)."""

    def __init__(
        self,
        p: EconomyParams,
        vf: ValueFunction,
        snapshot: EconomySnapshot,
        cfg: WSolverConfig,
        *,
        rates: MeetingRates | None = None,
        wages: Tensor | None = None,
        seed: int = 0,
        heldout_share: float = 0.2,
    ):
        super().__init__()
        if cfg.wage_range not in WAGE_RANGES:
            raise ConfigError(f"wsolver.wage_range = {cfg.wage_range!r}: must be one of {', '.join(WAGE_RANGES)}")
        self.p, self.vf, self.cfg, self.seed = p, vf, cfg, int(seed)
        self.heldout_share = heldout_share
        self.refreshes = 0
        self.refresh(snapshot, wages, rates)

    # ------------------------------------------------------------------------------ pools
    def refresh(
        self, snapshot: EconomySnapshot, wages: Tensor | None = None, rates: MeetingRates | None = None
    ) -> None:
        """Rebuild the training and held-out pools from ``snapshot``; ``wages`` ``[N_f, n_max]``: the simulated
        wages of its workers (slot-aligned), or None for wages from the initial range only."""
        p, cfg = self.p, self.cfg
        self.snapshot = snapshot
        self.order = market_order(snapshot)  # χ^E's workers, found once per refresh, not per batch
        self.rates = rates if rates is not None else snapshot.meeting_rates(p)
        gen = torch.Generator().manual_seed(self.seed + 7_919 * self.refreshes)
        self.refreshes += 1
        n_f = snapshot.n_firms
        split = torch.randperm(n_f, generator=torch.Generator().manual_seed(self.seed))
        n_held = max(1, int(round(self.heldout_share * n_f))) if n_f > 1 else 0
        held_firms, train_firms = split[:n_held], split[n_held:] if n_f > 1 else split
        self.train_states, self.train_ids, self.train_wages = self._pool(cfg.n_states, train_firms, wages, gen)
        if n_held:
            self.val_states, self.val_ids, self.val_wages = self._pool(cfg.n_heldout, held_firms, wages, gen)
        else:
            self.val_states, self.val_ids, self.val_wages = self.train_states, self.train_ids, self.train_wages
        with torch.no_grad():  # Δ(S_p, x_j) of every employed worker, with the frozen V
            self.delta_table = surplus(self.vf, p, snapshot.firms)
        # fixed draws for the held-out residual, so that it moves only with W
        self.val_batches = self._batches_of(self.val_states, self.val_ids, self.val_wages, gen)

    def _pool(
        self, count: int, firms: Tensor, wages: Tensor | None, gen: torch.Generator
    ) -> tuple[FirmBatch, Tensor, Tensor]:
        s, firm_id = sample_omega(self.p, self.snapshot, count, firms, gen)
        delta = None
        if self.cfg.wage_range in ("surplus", "mixed"):  # cover the bargaining set (docs/wages.md)
            with torch.no_grad():
                delta = surplus(self.vf, self.p, s)
        flow_share = 0.5 if self.cfg.wage_range == "mixed" else 0.0
        w = draw_initial_wages(self.p, s, self.cfg.wage_margin, gen, delta, flow_share)
        if wages is not None:
            orig = self.snapshot.firms.mask[firm_id]
            sim_w = wages.to(w.dtype)[firm_id]
            use = (torch.rand(count, generator=gen, dtype=torch.float64) < self.cfg.wage_mix).to(w.device)
            keep = use.unsqueeze(-1) & orig & s.mask & torch.isfinite(sim_w)
            w = torch.where(keep, sim_w, w)
        return s, firm_id, w

    def _draws(self, gen: torch.Generator, suffix: str = "") -> Batch:
        """One set of meeting draws, under keys ending in ``suffix``."""
        cfg, snap = self.cfg, self.snapshot
        d = sample_draws(snap, cfg.m_n, cfg.m_e, gen, order=self.order)
        rows = torch.arange(d.slot.numel(), device=d.slot.device)
        poachers, poacher_id = snap.sample_poachers(cfg.m_pi, gen)
        out: Batch = {
            "h_n": d.h_n,
            "a_n": d.a_n,
            "h_e": d.s_p.h[rows, d.slot],
            "a_e": d.s_p.a[rows, d.slot],
            "delta_e": self.delta_table[d.firm_e, d.slot],
            "firm_e": d.firm_e,
            "poacher_id": poacher_id,
        }
        _put_firms(out, poachers, "p_")
        return {k + suffix: v for k, v in out.items()}

    def _batch(self, s: FirmBatch, ids: Tensor, w: Tensor, rows: Tensor, gen: torch.Generator, pair: bool) -> Batch:
        out = self._draws(gen)
        if pair:  # an independent second draw set, for the unbiased squared residual
            out.update(self._draws(gen, "2"))
        _put_firms(out, s.index(rows))
        out["w"], out["firm_id"] = w[rows], ids[rows]
        out["rates"] = torch.tensor([self.rates.omega, self.rates.s_n, self.rates.s_e], dtype=torch.float64)
        return out

    def _batches_of(self, s: FirmBatch, ids: Tensor, w: Tensor, gen: torch.Generator) -> list[Batch]:
        size = self.cfg.batch_size
        return [
            self._batch(s, ids, w, torch.arange(k, min(k + size, s.batch_size)), gen, pair=True)
            for k in range(0, s.batch_size, size)
        ]

    # ------------------------------------------------------------------------ dataloaders
    def _train_batch(self, gen: torch.Generator) -> Batch:
        rows = torch.randint(self.train_states.batch_size, (self.cfg.batch_size,), generator=gen)
        return self._batch(self.train_states, self.train_ids, self.train_wages, rows, gen, pair=self.cfg.unbiased)

    def train_dataloader(self) -> DataLoader:
        data = _Batches(self._train_batch, self.cfg.steps_per_epoch, self.seed + 17 * self.refreshes)
        return DataLoader(data, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_batches, batch_size=None, shuffle=False, num_workers=0)
