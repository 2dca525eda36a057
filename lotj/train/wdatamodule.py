"""The training data of the W stage: a thin Lightning adapter over the market (docs/wages.md).

The market (:class:`lotj.sim.market.Market`, one snapshot, the simulator's meeting rates) draws the states,
their wages and the meeting draws; this module packs them into batches. With ``meetings`` (the cross-sections
of ``wsolver.settle_years``) the meeting draws, poachers and rates come from those cross-sections pooled,
fixed for the stage (:meth:`lotj.sim.market.Market.pin`), while the states still come from the newest snapshot.

A batch is ``batch_size`` firm states from Ω (:func:`lotj.sim.omega.sample_omega`: χ and its one-event
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
from Π; all carry the index of their firm, so that meetings with the worker's own firm are void, and
the draws' probability weights when the market makes exact sums (``wsolver.exact_sums``: every distinct
worker and poacher state once; keys ``weight_n``, ``weight_e``, ``poacher_weight``).
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
from lotj.economy.value import ValueFunction
from lotj.errors import ConfigError
from lotj.sim.distributions import EconomySnapshot
from lotj.sim.market import Market
from lotj.train.datamodule import FromMarket

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
        exact_sums: bool = False,
        meetings: list[EconomySnapshot] | None = None,
    ):
        super().__init__()
        if cfg.wage_range not in WAGE_RANGES:
            raise ConfigError(f"wsolver.wage_range = {cfg.wage_range!r}: must be one of {', '.join(WAGE_RANGES)}")
        self.p, self.vf, self.cfg, self.seed = p, vf, cfg, int(seed)
        #: the market the batches come from: the newest snapshot only (or the pinned ``meetings`` for the meeting
        #: terms), where the simulator keeps it (beside the frozen V), the firm split seeded by ``seed``; Monte
        #: Carlo draws, or exact sums (``exact_sums``)
        self.source = Market(
            p, seed=self.seed, heldout_fraction=heldout_share, split_seed=self.seed, device=None, exact_sums=exact_sums
        )
        if meetings:  # the meeting terms pinned on these cross-sections (wsolver.settle_years), the states still move
            self.source.pin(meetings)
        self.refreshes = 0
        self.refresh(snapshot, wages, rates)

    # ------------------------------------------------------------------------------ pools
    snapshot = FromMarket("snapshot")  #: the newest χ, χ^N, χ^E
    rates = FromMarket("rates")  #: the meeting rates ω, s^N, s^E of the batches

    @property
    def delta_table(self) -> Tensor:
        """Δ(S, x_i) of every worker of the market's firms under the frozen V, ``[N_f, n_max]``."""
        return self.source.surplus_table(self.vf)

    def refresh(
        self, snapshot: EconomySnapshot, wages: Tensor | None = None, rates: MeetingRates | None = None
    ) -> None:
        """Rebuild the training and held-out pools from ``snapshot``; ``wages`` ``[N_f, n_max]``: the simulated
        wages of its workers (slot-aligned), or None for wages from the initial range only; ``rates``: the
        meeting rates (default: the snapshot's)."""
        gen = torch.Generator().manual_seed(self.seed + 7_919 * self.refreshes)
        self.refreshes += 1
        market = self.source
        market.refresh(snapshot, rates)
        self.train_states, self.train_ids, self.train_wages = self._pool(
            self.cfg.n_states, market.train_firms, wages, gen, self.cfg.explore
        )
        self.val_states, self.val_ids, self.val_wages = self._pool(self.cfg.n_heldout, market.heldout_firms, wages, gen)
        # fixed draws for the held-out residual, so that it moves only with W
        self.val_batches = self._batches_of(self.val_states, self.val_ids, self.val_wages, gen)

    def _pool(
        self, count: int, firms: Tensor, wages: Tensor | None, gen: torch.Generator, explore: float = 0.0
    ) -> tuple[FirmBatch, Tensor, Tensor]:
        """``count`` states of Ω on ``firms`` with wages, a share ``explore`` of them exploration states (training
        pool only: the held-out residual stays on the simulated economy's states)."""
        c = self.cfg
        return self.source.wage_states(
            count, firms, gen, self.vf, wages, wage_range=c.wage_range, wage_margin=c.wage_margin,
            wage_mix=c.wage_mix, explore=explore,
        )  # fmt: skip

    def _draws(self, gen: torch.Generator, suffix: str = "") -> Batch:
        """One set of meeting draws, under keys ending in ``suffix``."""
        d = self.source.draws(self.cfg.m_n, self.cfg.m_e, gen)
        meet = d.with_surplus_table(self.delta_table)
        poachers = self.source.poachers(self.cfg.m_pi, gen)
        out: Batch = {
            "h_n": meet.h_n,
            "a_n": meet.a_n,
            "h_e": meet.h_e,
            "a_e": meet.a_e,
            "delta_e": meet.delta_p,
            "firm_e": meet.firm_e,
            "poacher_id": poachers.firm_id,
        }
        if meet.weight_n is not None and meet.weight_e is not None:
            out["weight_n"], out["weight_e"] = meet.weight_n, meet.weight_e
        if poachers.weight is not None:
            out["poacher_weight"] = poachers.weight
        _put_firms(out, poachers.firms, "p_")
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
