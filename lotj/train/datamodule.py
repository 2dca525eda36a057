"""``OmegaDataModule``: firm states from Ω and the Monte Carlo draws of each batch (MODEL.md section 6).

The DataModule holds an :class:`~lotj.sim.distributions.EconomySnapshot` (χ, χ^N, χ^E) and its
meeting rates (pooled over the last ``solver.market_window`` snapshots:
:meth:`OmegaDataModule.refresh`). Until the simulator refreshes it, the snapshot is the documented
initial economy
(:func:`lotj.sim.distributions.initial_snapshot`: firms from G_f with Poisson workforces from G_w,
the other workers unmatched from G_w), a real starting distribution that the simulator replaces.

- **Split**: a share ``solver.heldout_fraction`` of χ's firms (rows of the snapshot) is held out;
  training states come from the other firms only. The split is drawn once and kept across refreshes
  (redrawn only if the number of firms changes).
- **Random streams**: every draw (the split, each epoch's training pool and batches, each epoch's
  held-out states) comes from a generator seeded from ``(seed, stream, epoch, refresh count)``
  (:meth:`OmegaDataModule.stream`), never from a running generator. Lightning calls the loaders a
  different number of times, in a different order, when a run resumes from a checkpoint; with keyed
  seeds a resumed run draws what the uninterrupted one drew.
- **Training** (every epoch, ``reload_dataloaders_every_n_epochs=1``): a pool of ``solver.n_omega``
  states from Ω (:func:`lotj.train.omega.sample_omega`) on the training firms, a share
  ``solver.explore`` of them replaced by exploration states (:func:`lotj.train.omega.explore_states`;
  0 by default: Ω as MODEL.md section 6 defines it); ``steps_per_epoch``
  batches of ``batch_size`` states drawn from it, each with fresh meeting draws (``m_n`` from χ^N,
  ``m_e`` from χ^E, shared by the batch; a second independent set when ``solver.unbiased``), or with
  ``solver.exact_sums`` the exact sums over the snapshot's distinct workers (discrete economies).
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
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lotj.config import Config
from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.sim.distributions import EconomySnapshot, initial_snapshot
from lotj.train.omega import (
    DrawSet,
    MarketOrder,
    exact_draws,
    explore_states,
    market_order,
    sample_draws,
    sample_omega,
)

Batch = dict[str, Tensor]

_FIRM_KEYS = ("z", "q", "h", "a", "mask")

#: Stream ids of :meth:`OmegaDataModule.stream`.
SPLIT, TRAIN, HELDOUT = 0, 1, 2


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


class OmegaDataModule(L.LightningDataModule):
    """Ω states and meeting draws for the V residual (module docstring).

    ``refresh(snapshot)`` replaces χ, χ^N, χ^E and the meeting rates (``snapshot.meeting_rates(p)``);
    Ω is redrawn for the next epoch.
    """

    def __init__(self, cfg: Config, snapshot: EconomySnapshot | None = None):
        super().__init__()
        self.cfg = cfg
        self.p: EconomyParams = cfg.economy
        self.solver = cfg.solver
        #: the last ``solver.market_window`` snapshots, newest first (:attr:`snapshot`), and their pooled market
        self.history: list[EconomySnapshot] = []
        self.market: EconomySnapshot | None = None
        self.rates: MeetingRates | None = None
        self.train_firms: Tensor | None = None
        self.heldout_firms: Tensor | None = None
        self._split_n = -1
        self._exact: DrawSet | None = None
        self._order: MarketOrder | None = None
        self._provisional = False
        self.refreshes = 0
        #: snapshots pooled into the market: ``solver.market_window``, or more once :meth:`settle` froze it
        self.window = max(1, int(self.solver.market_window))
        #: whether :meth:`settle` froze the market (later :meth:`refresh` calls are refused)
        self.settled = False
        #: κ of the stratification key log h + κ log a (:func:`lotj.train.omega.worker_sort_key`)
        self.kappa = self.p.gamma_e / self.p.outflow_rate
        if snapshot is not None:
            self.refresh(snapshot)

    # ------------------------------------------------------------ snapshot
    @property
    def snapshot(self) -> EconomySnapshot | None:
        """The newest χ, χ^N, χ^E (Ω's states come from it); None before :meth:`setup`."""
        return self.history[0] if self.history else None

    def initial(self) -> EconomySnapshot:
        """The documented initial economy (module docstring), from the run's seed."""
        gen = torch.Generator().manual_seed(int(self.cfg.seed))
        return initial_snapshot(self.p, self.cfg.sim.n_firms, gen, self.cfg.sim.initial_mean_size)

    def setup(self, stage: str | None = None) -> None:
        if self.snapshot is None:
            self.refresh(self.initial())
            self._provisional = True  # the initial economy is no simulated cross-section: never pooled

    def refresh(self, snapshot: EconomySnapshot) -> None:
        """Replace χ, χ^N, χ^E and the meeting rates; Ω is redrawn at the next epoch (train) and
        validation (held out). The split of firms is kept (rows keep their identity across the
        simulator's refreshes, so held-out firms are never trained on) unless the number of firms changes.

        Ω's states come from ``snapshot`` (the newest χ). The market the residual sees (ω, s^N, s^E
        and the meeting draws from χ^N, χ^E) pools the last ``solver.market_window`` snapshots
        (:func:`pooled_snapshot`): one cross-section of a finite simulated economy carries sampling
        noise in e and hence in s^N, which V inherits; pooling cross-sections a year or more apart
        averages it down, at the cost of a lag of about half the window while the economy moves."""
        if self.settled:
            raise RuntimeError("the market is frozen (OmegaDataModule.settle): no refresh after it")
        # batches are drawn on the CPU, from CPU generators, wherever the simulator runs (Lightning moves
        # them to the module's device): the same snapshot gives the same batches, also after a resume
        # (checkpoints load on the CPU), and sorts with ties cannot differ between devices
        snapshot = snapshot.to("cpu")
        kept = [] if self._provisional else self.history
        self._provisional = False
        self.history = [snapshot, *kept][: self.window]
        self._set_market()
        n = snapshot.n_firms
        if self.train_firms is None or self._split_n != n:
            self._split_n = n
            n_held = min(max(1, round(self.solver.heldout_fraction * n)), n - 1) if n > 1 else 0
            perm = torch.randperm(n, generator=self.stream(SPLIT, n))
            self.heldout_firms = perm[:n_held] if n_held else perm
            self.train_firms = perm[n_held:] if n_held else perm
        self.refreshes += 1

    def settle(self, snapshots: list[EconomySnapshot]) -> None:
        """Freeze the market on ``snapshots`` (oldest first, e.g. one cross-section a year of a long
        simulation under the final V): the market pools all of them, Ω's states come from the newest,
        and no :meth:`refresh` follows. The sampling noise of one simulated window moves V (docs/validation.md,
        "market floor"); a long final window under a V that no longer changes removes most of it."""
        if not snapshots:
            raise ValueError("settle needs at least one snapshot")
        self.window = max(self.window, len(snapshots))
        for snap in snapshots:
            self.refresh(snap)
        self.settled = True

    def _set_market(self) -> None:
        self.market = pooled_snapshot(self.history)
        self.rates = self.market.meeting_rates(self.p)
        self._exact = None
        self._order = None  # the market's sorted workers, built at its first draws

    # -------------------------------------------------------------- batches
    def _epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.current_epoch) if trainer is not None else 0

    def stream(self, kind: int, epoch: int | None = None) -> torch.Generator:
        """A CPU generator seeded from ``(cfg.seed, kind, epoch, refreshes)``: ``kind`` is ``SPLIT``,
        ``TRAIN`` or ``HELDOUT``; ``epoch`` defaults to the attached Trainer's current epoch (0 without
        one; the split passes the number of firms). The same key gives the same draws however often a
        loader is built."""
        epoch = self._epoch() if epoch is None else int(epoch)
        key = [int(self.cfg.seed) % 2**32, int(kind), int(epoch), int(self.refreshes)]
        seed = int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0]) & (2**63 - 1)
        return torch.Generator().manual_seed(seed)

    def draws(self, m_n: int, m_e: int, generator: torch.Generator) -> DrawSet:
        """Meeting draws for one batch: ``m_n`` and ``m_e`` Monte Carlo draws, or with
        ``solver.exact_sums`` the exact sums over the snapshot (computed once per refresh)."""
        assert self.market is not None
        if self.solver.exact_sums:
            if self._exact is None:
                self._exact = exact_draws(self.market)
            return self._exact
        strat = self.solver.stratified
        if self._order is None:
            self._order = market_order(self.market, stratified=strat, kappa=self.kappa)
        return sample_draws(self.market, m_n, m_e, generator, stratified=strat, kappa=self.kappa, order=self._order)

    def omega_states(
        self, count: int, firms: Tensor, generator: torch.Generator, explore: float = 0.0
    ) -> tuple[FirmBatch, Tensor]:
        """``count`` states from Ω on the given firms, of which a share ``explore`` are exploration
        states (:func:`lotj.train.omega.explore_states`, firm index −1: no simulated firm)."""
        assert self.snapshot is not None
        n_explore = int(round(explore * count))
        s, ids = sample_omega(self.p, self.snapshot, count - n_explore, firms, generator)
        if n_explore == 0:
            return s, ids
        dev, dt = s.h.device, s.h.dtype
        e, _ = explore_states(self.p, n_explore, generator)
        e = FirmBatch(*(t.to(dev, dt) if t.is_floating_point() else t.to(dev) for t in (e.z, e.q, e.h, e.a, e.mask)))
        return FirmBatch.cat([s, e]), torch.cat([ids, torch.full((n_explore,), -1, dtype=ids.dtype, device=ids.device)])

    def train_dataloader(self) -> DataLoader:
        self.setup()
        s = self.solver
        gen = self.stream(TRAIN)
        pool, pool_id = self.omega_states(s.n_omega, self.train_firms, gen, s.explore)
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
        states, ids = self.omega_states(s.n_heldout, self.heldout_firms, gen)
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
        assert self.snapshot is not None
        snap = self.snapshot
        return {
            "firms": {k: getattr(snap.firms, k) for k in _FIRM_KEYS},
            "unmatched_h": snap.unmatched_h,
            "unmatched_a": snap.unmatched_a,
            "history": [
                {"firms": {k: getattr(h.firms, k) for k in _FIRM_KEYS}, "unmatched": (h.unmatched_h, h.unmatched_a)}
                for h in self.history[1:]
            ],
            "train_firms": self.train_firms,
            "heldout_firms": self.heldout_firms,
            "refreshes": self.refreshes,
            "window": self.window,
            "settled": self.settled,
        }

    def load_state_dict(self, state: dict) -> None:
        firms = FirmBatch(*(state["firms"][k] for k in _FIRM_KEYS))
        self.train_firms, self.heldout_firms = state["train_firms"], state["heldout_firms"]
        self._split_n = firms.batch_size
        self._provisional = False
        self.window = int(state.get("window", self.window))
        self.settled = False
        self.history = [
            EconomySnapshot(FirmBatch(*(h["firms"][k] for k in _FIRM_KEYS)), *h["unmatched"])
            for h in reversed(state.get("history", []))
        ]
        self.refresh(EconomySnapshot(firms, state["unmatched_h"], state["unmatched_a"]))
        self.refreshes = int(state["refreshes"])
        self.settled = bool(state.get("settled", False))


def pooled_snapshot(snapshots: list[EconomySnapshot]) -> EconomySnapshot:
    """The economy of several cross-sections pooled (each counts as much as the others): their firms
    and unmatched workers side by side. The first snapshot's firms keep their row indices, so the
    firm identities of Ω states (drawn from it) still mark void meetings with their own workers."""
    if len(snapshots) == 1:
        return snapshots[0]
    firms = FirmBatch.cat([s.firms for s in snapshots])
    return EconomySnapshot(
        firms, torch.cat([s.unmatched_h for s in snapshots]), torch.cat([s.unmatched_a for s in snapshots])
    )
