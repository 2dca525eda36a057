"""``OmegaDataModule``: the V residual's batches, a thin Lightning adapter over the market (MODEL.md section 6).

The market (:class:`lotj.sim.market.Market`) holds the simulated cross-sections, the meeting rates, the
split of firms, the Ω states and the meeting draws; this module only asks it for each epoch's states and
each batch's draws and packs them into batches. Until the simulator refreshes it, the market holds the
documented initial economy (:func:`lotj.sim.distributions.initial_snapshot`: firms from G_f with Poisson
workforces from G_w, the other workers unmatched from G_w), a real starting distribution that the
simulator replaces.

- **Random streams**: every draw comes from the market's keyed stream for ``(seed, stream, epoch,
  refresh count)`` (:meth:`lotj.sim.market.Market.stream`), never from a running generator. Lightning
  calls the loaders a different number of times, in a different order, when a run resumes from a
  checkpoint; with keyed seeds a resumed run draws what the uninterrupted one drew.
- **Training** (every epoch, ``reload_dataloaders_every_n_epochs=1``): a pool of ``solver.n_omega``
  states from Ω on the training firms (a share ``solver.explore`` of exploration states);
  ``steps_per_epoch`` batches of ``batch_size`` states drawn from it, each with fresh meeting draws
  (``m_n`` from χ^N, ``m_e`` from χ^E, shared by the batch; a second independent set when
  ``solver.unbiased``), or with ``solver.exact_sums`` the exact sums over the market.
- **Held out** (every epoch): ``solver.n_heldout`` fresh Ω states on the held-out firms, in chunks of
  ``batch_size``, each chunk with two independent draw sets of ``m_eval`` per integral, for the
  unbiased scale-free residual (docs/solver.md).

A batch is a flat ``dict`` of tensors (so that Lightning moves it to the device and casts it to the
run's precision): see :func:`pack` and :func:`unpack`. The simulator's callback calls
:meth:`OmegaDataModule.refresh` at epoch end; the next epoch's loaders use the new snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lotj.config import Config
from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.sim.distributions import EconomySnapshot, initial_snapshot
from lotj.sim.market import HELDOUT, TRAIN, Market
from lotj.sim.meeting_draws import DrawSet

Batch = dict[str, Tensor]

_FIRM_KEYS = ("z", "q", "h", "a", "mask")


@dataclass
class Unpacked:
    """A batch as the economics reads it: states, their firm indices, draw sets and rates."""

    states: FirmBatch
    firm_id: Tensor
    draws: list[DrawSet]
    rates: MeetingRates


def _put_firms(out: Batch, s: FirmBatch, prefix: str) -> None:
    for k in _FIRM_KEYS:
        out[prefix + k] = getattr(s, k)


def _get_firms(batch: Batch, prefix: str) -> FirmBatch:
    return FirmBatch(*(batch[prefix + k] for k in _FIRM_KEYS))


def pack(states: FirmBatch, firm_id: Tensor, draws: list[DrawSet], rates: MeetingRates) -> Batch:
    """Flatten states, draw sets and meeting rates into a dict of tensors."""
    dt = states.h.dtype
    out: Batch = {"firm_id": firm_id, "n_sets": torch.tensor(len(draws))}
    _put_firms(out, states, "")
    for i, d in enumerate(draws):
        out[f"d{i}_h_n"], out[f"d{i}_a_n"] = d.h_n, d.a_n
        _put_firms(out, d.s_p, f"d{i}_p_")
        out[f"d{i}_slot"], out[f"d{i}_firm_e"] = d.slot, d.firm_e
        if d.weight_n is not None and d.weight_e is not None:
            out[f"d{i}_w_n"], out[f"d{i}_w_e"] = d.weight_n, d.weight_e
    out["omega"] = torch.tensor(rates.omega, dtype=dt)
    out["s_n"] = torch.tensor(rates.s_n, dtype=dt)
    out["s_e"] = torch.tensor(rates.s_e, dtype=dt)
    return out


def unpack(batch: Batch) -> Unpacked:
    """Inverse of :func:`pack`."""
    sets = int(batch["n_sets"])
    draws = [
        DrawSet(
            batch[f"d{i}_h_n"],
            batch[f"d{i}_a_n"],
            _get_firms(batch, f"d{i}_p_"),
            batch[f"d{i}_slot"],
            batch[f"d{i}_firm_e"],
            batch.get(f"d{i}_w_n"),
            batch.get(f"d{i}_w_e"),
        )
        for i in range(sets)
    ]
    rates = MeetingRates(batch["omega"], batch["s_n"], batch["s_e"])
    return Unpacked(_get_firms(batch, ""), batch["firm_id"], draws, rates)


class _Batches(Dataset):
    """``length`` batches, each built on demand by ``make(index)``."""

    def __init__(self, make: Callable[[int], Batch], length: int):
        self.make = make
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Batch:
        return self.make(index)


class FromMarket:
    """A DataModule attribute that is its market's (``source``) attribute ``name``, read and written through."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> object:
        return self if obj is None else getattr(obj.source, self.name)

    def __set__(self, obj: object, value: object) -> None:
        setattr(obj.source, self.name, value)


class OmegaDataModule(L.LightningDataModule):
    """Ω states and meeting draws for the V residual, from :attr:`source`, the run's market (module docstring).

    ``refresh(snapshot)`` adds a simulated cross-section to the market; Ω is redrawn for the next epoch.
    The attributes below read the market: ``market`` (the pooled cross-sections the residual reads),
    ``rates``, ``history``, ``window``, ``settled``, ``refreshes``, ``train_firms``, ``heldout_firms``.
    """

    def __init__(self, cfg: Config, snapshot: EconomySnapshot | None = None):
        super().__init__()
        self.cfg = cfg
        self.p: EconomyParams = cfg.economy
        self.solver = cfg.solver
        #: the market the batches come from
        self.source = Market(
            self.p,
            seed=int(cfg.seed),
            window=int(self.solver.market_window),
            heldout_fraction=self.solver.heldout_fraction,
            stratified=self.solver.stratified,
            exact_sums=self.solver.exact_sums,
        )
        if snapshot is not None:
            self.refresh(snapshot)

    # ------------------------------------------------------------ the market, read through
    snapshot = FromMarket("snapshot")  #: the newest χ, χ^N, χ^E (Ω's states); None before :meth:`setup`
    market = FromMarket("pooled")  #: the pooled cross-sections the residual's draws and rates come from
    rates = FromMarket("rates")
    history = FromMarket("history")
    window = FromMarket("window")
    settled = FromMarket("settled")
    refreshes = FromMarket("refreshes")
    train_firms = FromMarket("train_firms")
    heldout_firms = FromMarket("heldout_firms")
    kappa = FromMarket("kappa")
    _order = FromMarket("_order")

    def initial(self) -> EconomySnapshot:
        """The documented initial economy (module docstring), from the run's seed."""
        gen = torch.Generator().manual_seed(int(self.cfg.seed))
        return initial_snapshot(self.p, self.cfg.sim.n_firms, gen, self.cfg.sim.initial_mean_size)

    def setup(self, stage: str | None = None) -> None:
        if self.snapshot is None:
            self.source.start(self.initial())  # the initial economy is no simulated cross-section: never pooled

    def refresh(self, snapshot: EconomySnapshot) -> None:
        """Add ``snapshot`` to the market (:meth:`lotj.sim.market.Market.refresh`); Ω is redrawn at the next
        epoch (train) and validation (held out)."""
        self.source.refresh(snapshot)

    def settle(self, snapshots: list[EconomySnapshot]) -> None:
        """Freeze the market on ``snapshots`` (:meth:`lotj.sim.market.Market.settle`)."""
        self.source.settle(snapshots)

    # -------------------------------------------------------------- batches
    def _epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.current_epoch) if trainer is not None else 0

    def stream(self, kind: int, epoch: int | None = None) -> torch.Generator:
        """The market's generator for ``kind`` (``SPLIT``, ``TRAIN``, ``HELDOUT``) and ``epoch`` (default: the
        attached Trainer's current epoch, 0 without one)."""
        return self.source.stream(kind, self._epoch() if epoch is None else int(epoch))

    def draws(self, m_n: int, m_e: int, generator: torch.Generator) -> DrawSet:
        """One batch's meeting draws from the market (:meth:`lotj.sim.market.Market.draws`)."""
        return self.source.draws(m_n, m_e, generator)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        s = self.solver
        gen = self.stream(TRAIN)
        pool, pool_id = self.source.omega_states(s.n_omega, self.train_firms, gen, s.explore)
        sets = 2 if s.unbiased else 1

        def make(index: int) -> Batch:
            idx = torch.randint(pool.batch_size, (s.batch_size,), generator=gen)
            draws = [self.draws(s.m_n, s.m_e, gen) for _ in range(sets)]
            return pack(pool.index(idx), pool_id[idx], draws, self.rates)

        return DataLoader(_Batches(make, s.steps_per_epoch), batch_size=None, shuffle=False)

    def heldout_batches(self, generator: torch.Generator | None = None) -> list[Batch]:
        """Fresh held-out Ω states in chunks, each with two independent draw sets of ``m_eval``
        (from ``generator``, else from the epoch's held-out stream)."""
        self.setup()
        s = self.solver
        gen = generator or self.stream(HELDOUT)
        states, ids = self.source.omega_states(s.n_heldout, self.heldout_firms, gen)
        out = []
        for start in range(0, s.n_heldout, s.batch_size):
            sl = torch.arange(start, min(start + s.batch_size, s.n_heldout))
            draws = [self.draws(s.m_eval, s.m_eval, gen) for _ in range(2)]
            out.append(pack(states.index(sl), ids[sl], draws, self.rates))
        return out

    def val_dataloader(self) -> DataLoader:
        batches = self.heldout_batches()
        return DataLoader(_Batches(batches.__getitem__, len(batches)), batch_size=None, shuffle=False)

    # ------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict:
        return self.source.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.source.load_state_dict(state)
