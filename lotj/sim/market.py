"""The market the value equations integrate over (MODEL.md sections 3, 4 and 6): one plain-torch object.

:class:`Market` holds the simulated cross-sections of the economy and everything a residual reads from
them:

- the **pooled cross-sections**: the newest snapshot (χ, χ^N, χ^E; Ω's states come from it) and the
  last ``window`` snapshots pooled side by side (:func:`pooled_snapshot`), from which the meeting draws
  come. One cross-section of a finite simulated economy carries sampling noise in e and hence in s^N,
  which V inherits; pooling cross-sections a year or more apart averages it down, at the cost of a lag
  of about half the window while the economy moves. :meth:`Market.settle` freezes the market on a
  long final window (docs/solver.md, "the final market"); :meth:`Market.pin` keeps the meeting terms on
  such a window while Ω's states still follow the newest cross-section (the W stage, whose V is frozen);
- the **meeting rates** ω, s^N, s^E of the pooled market (:meth:`EconomySnapshot.meeting_rates`), or
  the rates a caller measured along the simulation (the W stage passes the simulator's);
- the **Ω states** (:mod:`lotj.sim.omega`) on a fixed split of the firm rows into training and
  held-out firms (rows keep their identity across the simulator's refreshes, so held-out firms are
  never trained on), with an optional share of exploration states and, for the W equation, wages;
- the **meeting draws** from χ^N and χ^E (:mod:`lotj.sim.meeting_draws`: i.i.d., stratified, or exact
  sums), the poachers from Π (Monte Carlo, or exact sums), and the table of Δ(S_p, x_j) under a frozen V.

Random streams: :meth:`Market.stream` gives a CPU generator keyed by ``(seed, kind, epoch, refreshes)``;
the epoch is an argument (the market knows nothing of a trainer), so the same key gives the same draws
however often a loader is built. Everything is drawn on the CPU, from CPU generators, wherever the
simulator runs: the same snapshot gives the same batches, also after a resume, and sorts with ties
cannot differ between devices. The Lightning DataModules of :mod:`lotj.train` are thin adapters that
pack its states and draws into batches.

Example: a market of 200 simulated firms, its rates and one batch's draws

>>> import torch
>>> from lotj.economy.params import EconomyParams
>>> from lotj.sim.distributions import initial_snapshot
>>> from lotj.sim.market import TRAIN, Market
>>> p = EconomyParams(n_max=8)
>>> market = Market(p, seed=0, heldout_fraction=0.2, window=2)
>>> market.refresh(initial_snapshot(p, 200, torch.Generator().manual_seed(0)))
>>> gen = market.stream(TRAIN, epoch=0)
>>> states, firm_id = market.omega_states(64, market.train_firms, gen)
>>> draws = market.draws(16, 16, gen)
>>> states.batch_size, draws.h_n.numel(), draws.slot.numel()
(64, 16, 16)
>>> bool(0.0 < market.rates.s_n < 1.0)
True
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.surplus import surplus
from lotj.economy.value import ValueFunction
from lotj.economy.wages import draw_initial_wages
from lotj.sim.distributions import EconomySnapshot
from lotj.sim.meeting_draws import (
    DrawSet,
    MarketOrder,
    PoacherSet,
    exact_draws,
    exact_poachers,
    market_order,
    sample_draws,
    sample_poachers,
)
from lotj.sim.omega import explore_states, sample_omega

#: Stream ids of :meth:`Market.stream`.
SPLIT, TRAIN, HELDOUT = 0, 1, 2

_FIRM_KEYS = ("z", "q", "h", "a", "mask")


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


def split_firms(n: int, heldout_fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A random split of ``n`` firm rows into ``(training, held-out)``: a share ``heldout_fraction`` held
    out, at least one and at most ``n − 1``; a single firm is both."""
    n_held = min(max(1, round(heldout_fraction * n)), n - 1) if n > 1 else 0
    perm = torch.randperm(n, generator=generator)
    return (perm[n_held:], perm[:n_held]) if n_held else (perm, perm)


def _firms_state(s: FirmBatch) -> dict[str, Tensor]:
    return {k: getattr(s, k) for k in _FIRM_KEYS}


def _snapshot_state(s: EconomySnapshot) -> dict:
    return {"firms": _firms_state(s.firms), "unmatched": (s.unmatched_h, s.unmatched_a)}


def _snapshot_from(state: dict) -> EconomySnapshot:
    return EconomySnapshot(FirmBatch(*(state["firms"][k] for k in _FIRM_KEYS)), *state["unmatched"])


class Market:
    """The pooled cross-sections, meeting rates, Ω states and meeting draws of one solve (module docstring).

    ``seed``: the key of the random streams. ``heldout_fraction``: the share of firm rows whose Ω states are
    held out. ``window``: how many snapshots the meeting draws and rates pool. ``stratified``, ``exact_sums``:
    the kind of meeting draws (:func:`lotj.sim.meeting_draws.sample_draws`, :func:`lotj.sim.meeting_draws.exact_draws`).
    ``split_seed``: seed of the firm split's generator; None draws it from the ``SPLIT`` stream.
    ``device``: where the market keeps its snapshots (default the CPU, module docstring); None keeps them
    where they come from (beside a value function on the simulator's device).
    """

    def __init__(
        self,
        p: EconomyParams,
        *,
        seed: int,
        heldout_fraction: float,
        window: int = 1,
        stratified: bool = False,
        exact_sums: bool = False,
        split_seed: int | None = None,
        device: str | None = "cpu",
    ):
        self.p = p
        self.seed = int(seed)
        #: snapshots pooled: ``window``, or more once :meth:`settle` froze the market
        self.window = max(1, int(window))
        self.heldout_fraction = float(heldout_fraction)
        self.stratified = bool(stratified)
        self.exact_sums = bool(exact_sums)
        self.split_seed = split_seed
        self.device = device
        #: κ of the stratification key log h + κ log a (:func:`lotj.sim.meeting_draws.worker_sort_key`)
        self.kappa = p.gamma_e / p.outflow_rate
        #: the last ``window`` snapshots, newest first (:attr:`snapshot`)
        self.history: list[EconomySnapshot] = []
        #: the pooled market the draws and rates come from
        self.pooled: EconomySnapshot | None = None
        self.rates: MeetingRates | None = None
        self.train_firms: Tensor | None = None
        self.heldout_firms: Tensor | None = None
        self.refreshes = 0
        #: whether :meth:`settle` froze the market (later :meth:`refresh` calls are refused)
        self.settled = False
        #: the cross-sections :meth:`pin` fixed the meeting terms on (None: the last ``window`` snapshots)
        self.pinned: list[EconomySnapshot] | None = None
        self._split_n = -1
        self._provisional = False
        self._exact: DrawSet | None = None
        self._exact_poachers: PoacherSet | None = None
        self._order: MarketOrder | None = None
        self._surplus: tuple[ValueFunction, Tensor] | None = None

    # ------------------------------------------------------------------ cross-sections
    @property
    def snapshot(self) -> EconomySnapshot | None:
        """The newest χ, χ^N, χ^E (Ω's states come from it); None before the first refresh."""
        return self.history[0] if self.history else None

    def start(self, snapshot: EconomySnapshot) -> None:
        """Start from ``snapshot``, a provisional economy (the documented initial one, no simulated
        cross-section): the next :meth:`refresh` replaces it instead of pooling with it."""
        self.refresh(snapshot)
        self._provisional = True

    def refresh(self, snapshot: EconomySnapshot, rates: MeetingRates | None = None) -> None:
        """Add ``snapshot`` as the newest cross-section (the oldest leaves the window) and set the meeting
        rates: ``rates`` when given (e.g. measured along the simulation), else those of the pooled market.
        The split of firms is kept unless the number of firms changes."""
        if self.settled:
            raise RuntimeError("the market is frozen (Market.settle): no refresh after it")
        if self.device is not None:
            snapshot = snapshot.to(self.device)
        kept = [] if self._provisional else self.history
        self._provisional = False
        self.history = [snapshot, *kept][: self.window]
        if self.pinned is None:  # pinned meeting terms stay (:meth:`pin`)
            self._pool(self.history, rates)
        n = snapshot.n_firms
        if self.train_firms is None or self._split_n != n:
            self._split_n = n
            gen = self.stream(SPLIT, n) if self.split_seed is None else torch.Generator().manual_seed(self.split_seed)
            self.train_firms, self.heldout_firms = split_firms(n, self.heldout_fraction, gen)
        self.refreshes += 1

    def settle(self, snapshots: list[EconomySnapshot]) -> None:
        """Freeze the market on ``snapshots`` (oldest first, e.g. one cross-section a year of a long
        simulation under the final V): the market pools all of them, Ω's states come from the newest,
        and no :meth:`refresh` follows. The sampling noise of one simulated window moves V; a long final
        window under a V that no longer changes removes most of it."""
        if not snapshots:
            raise ValueError("settle needs at least one snapshot")
        self.window = max(self.window, len(snapshots))
        for snap in snapshots:
            self.refresh(snap)
        self.settled = True

    def pin(self, snapshots: list[EconomySnapshot]) -> None:
        """Fix the meeting terms (the draws from χ^N and χ^E, the poachers from Π, the rates, the surplus table)
        on ``snapshots`` pooled, e.g. one cross-section a year of a long simulation under a frozen V; later
        :meth:`refresh` calls move only the newest snapshot, where Ω's states come from, and ignore their
        ``rates``. Under a frozen V the simulated economy is stationary, so every cross-section is a draw of
        the same market and pooling many averages its sampling noise down (the W stage:
        ``wsolver.settle_years``)."""
        if not snapshots:
            raise ValueError("pin needs at least one snapshot")
        if self.settled:
            raise RuntimeError("the market is frozen (Market.settle): nothing to pin")
        if self.device is not None:
            snapshots = [s.to(self.device) for s in snapshots]
        self.pinned = list(snapshots)
        self._pool(self.pinned, None)

    def _pool(self, snapshots: list[EconomySnapshot], rates: MeetingRates | None) -> None:
        """The meeting terms from ``snapshots`` pooled: the rates ``rates`` or the pool's own; the exact sums,
        the sort order and the surplus table are rebuilt at first use."""
        self.pooled = pooled_snapshot(snapshots)
        self.rates = rates if rates is not None else self.pooled.meeting_rates(self.p)
        self._exact, self._exact_poachers, self._order, self._surplus = None, None, None, None

    # ------------------------------------------------------------------ random streams
    def stream(self, kind: int, epoch: int) -> torch.Generator:
        """A CPU generator seeded from ``(seed, kind, epoch, refreshes)``: ``kind`` is ``SPLIT``, ``TRAIN``
        or ``HELDOUT`` (the split passes the number of firms as ``epoch``)."""
        key = [self.seed % 2**32, int(kind), int(epoch), int(self.refreshes)]
        seed = int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0]) & (2**63 - 1)
        return torch.Generator().manual_seed(seed)

    # ------------------------------------------------------------------ states and draws
    def omega_states(
        self, count: int, firms: Tensor, generator: torch.Generator, explore: float = 0.0
    ) -> tuple[FirmBatch, Tensor]:
        """``count`` states from Ω on the firm rows ``firms`` (:func:`lotj.sim.omega.sample_omega`), of which
        a share ``explore`` are exploration states (:func:`lotj.sim.omega.explore_states`, firm index −1:
        no simulated firm). Returns the states and the firm each came from."""
        assert self.snapshot is not None, "Market.omega_states before the first refresh"
        n_explore = int(round(explore * count))
        s, ids = sample_omega(self.p, self.snapshot, count - n_explore, firms, generator)
        if n_explore == 0:
            return s, ids
        dev, dt = s.h.device, s.h.dtype
        e, _ = explore_states(self.p, n_explore, generator)
        e = e.to(dev, dt)
        return FirmBatch.cat([s, e]), torch.cat([ids, torch.full((n_explore,), -1, dtype=ids.dtype, device=ids.device)])

    def wage_states(
        self,
        count: int,
        firms: Tensor,
        generator: torch.Generator,
        vf: ValueFunction,
        wages: Tensor | None,
        *,
        wage_range: str,
        wage_margin: float,
        wage_mix: float,
        explore: float = 0.0,
    ) -> tuple[FirmBatch, Tensor, Tensor]:
        """``count`` Ω states with a wage for every worker (the W equation's states, docs/wages.md); a share
        ``explore`` of them exploration states (:meth:`omega_states`).

        Wages are drawn from the initial range (:func:`lotj.economy.wages.draw_initial_wages`: ``flow``,
        ``surplus`` — also the wages of the bargaining set [U, U + Δ] under ``vf`` — or ``mixed``, half of
        each); with ``wages`` ``[N_f, n_max]`` (the simulated wages of the newest snapshot, slot-aligned), a
        share ``wage_mix`` of the states keep their original workers' simulated wages instead."""
        s, firm_id = self.omega_states(count, firms, generator, explore)
        delta = None
        if wage_range in ("surplus", "mixed"):  # cover the bargaining set
            with torch.no_grad():
                delta = surplus(vf, self.p, s)
        flow_share = 0.5 if wage_range == "mixed" else 0.0
        w = draw_initial_wages(self.p, s, wage_margin, generator, delta, flow_share)
        if wages is not None:
            assert self.snapshot is not None
            real = firm_id.clamp_min(0)  # exploration states (firm −1) carry no simulated wages
            orig = self.snapshot.firms.mask[real] & (firm_id >= 0).unsqueeze(-1).to(self.snapshot.firms.mask.device)
            sim_w = wages.to(device=w.device, dtype=w.dtype)[real.to(w.device)]
            use = (torch.rand(count, generator=generator, dtype=torch.float64) < wage_mix).to(w.device)
            keep = use.unsqueeze(-1) & orig & s.mask & torch.isfinite(sim_w)
            w = torch.where(keep, sim_w, w)
        return s, firm_id, w

    def draws(self, m_n: int, m_e: int, generator: torch.Generator) -> DrawSet:
        """Meeting draws for one batch from the pooled market: ``m_n`` from χ^N and ``m_e`` from χ^E, or with
        ``exact_sums`` the exact sums over the market (computed once per refresh)."""
        assert self.pooled is not None, "Market.draws before the first refresh"
        if self.exact_sums:
            if self._exact is None:
                self._exact = exact_draws(self.pooled)
            return self._exact
        if self._order is None:  # the market's sorted workers, once per refresh
            self._order = market_order(self.pooled, stratified=self.stratified, kappa=self.kappa)
        return sample_draws(
            self.pooled, m_n, m_e, generator, stratified=self.stratified, kappa=self.kappa, order=self._order
        )

    def poachers(self, count: int, generator: torch.Generator) -> PoacherSet:
        """``count`` poaching firms from Π ∝ (n + 1) χ of the pooled market, with their rows, or with
        ``exact_sums`` every distinct firm state of the market once with its weight under Π
        (:func:`lotj.sim.meeting_draws.exact_poachers`, computed once per refresh)."""
        assert self.pooled is not None, "Market.poachers before the first refresh"
        if self.exact_sums:
            if self._exact_poachers is None:
                self._exact_poachers = exact_poachers(self.pooled)
            return self._exact_poachers
        return sample_poachers(self.pooled, count, generator)

    def surplus_table(self, vf: ValueFunction) -> Tensor:
        """Δ(S, x_i) of every worker of the pooled market's firms under ``vf`` (frozen: no gradients),
        ``[N_f, n_max]``; computed once per refresh and value function. With ``exact_sums`` only the rows the
        exact draws read (:meth:`draws`: one firm per distinct state) are computed, the others are NaN: a pool
        of many cross-sections has millions of rows and a few hundred distinct states."""
        assert self.pooled is not None, "Market.surplus_table before the first refresh"
        if self._surplus is None or self._surplus[0] is not vf:
            firms = self.pooled.firms
            with torch.no_grad():
                if self.exact_sums:
                    rows = torch.unique(self.draws(0, 0, torch.Generator()).row_e)
                    table = torch.full(firms.mask.shape, float("nan"), dtype=firms.h.dtype, device=firms.h.device)
                    table[rows] = surplus(vf, self.p, firms.index(rows)).to(table.dtype)
                else:
                    table = surplus(vf, self.p, firms)
            self._surplus = (vf, table)
        return self._surplus[1]

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict:
        assert self.snapshot is not None
        snap = self.snapshot
        return {
            "firms": _firms_state(snap.firms),
            "unmatched_h": snap.unmatched_h,
            "unmatched_a": snap.unmatched_a,
            "history": [_snapshot_state(h) for h in self.history[1:]],
            "train_firms": self.train_firms,
            "heldout_firms": self.heldout_firms,
            "refreshes": self.refreshes,
            "window": self.window,
            "settled": self.settled,
            "pinned": None if self.pinned is None else [_snapshot_state(h) for h in self.pinned],
        }

    def load_state_dict(self, state: dict) -> None:
        firms = FirmBatch(*(state["firms"][k] for k in _FIRM_KEYS))
        self.train_firms, self.heldout_firms = state["train_firms"], state["heldout_firms"]
        self._split_n = firms.batch_size
        self._provisional = False
        self.window = int(state.get("window", self.window))
        self.settled = False
        self.history = [_snapshot_from(h) for h in reversed(state.get("history", []))]
        self.pinned, pinned = None, state.get("pinned")
        if pinned:
            self.pin([_snapshot_from(h) for h in pinned])
        self.refresh(EconomySnapshot(firms, state["unmatched_h"], state["unmatched_a"]))
        self.refreshes = int(state["refreshes"])
        self.settled = bool(state.get("settled", False))
