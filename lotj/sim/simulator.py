"""The vectorised simulator of the economy under a value function V (MODEL.md sections 1–4, 10).

``N_f`` firms (measure 1) and ``round(N_w·N_f)`` workers live on padded tensors
(:class:`~lotj.sim.population.Population`); there is no Python loop over firms or workers.
Decisions use the current V through the :class:`~lotj.economy.value.ValueFunction` protocol, so
the same code runs with the network, an exact solution or an analytic test function, on CPU or
GPU. Time advances in steps of ``dt`` years (``1/dt`` must be an integer: annual dates fall on
steps). One step (docs/simulator.md):

1. **Draws** (:mod:`lotj.sim.events`), all from the state at the start of the step: each process
   fires independently with probability ``1 − exp(−rate·dt)`` (learning: ``γ^E·dt``, see
   :class:`~lotj.sim.events.StepProbabilities`); meeting destinations ∝ ``n + 1``;
   every worker event has a uniform time within the step.
2. **Firm deaths**: the workers become unmatched (h unchanged) and a newborn empty firm from
   G_f takes the firm's place, with a new firm id.
3. **Retirements**: the seat gets a new unmatched worker from G_w with a new worker id.
4. **Match breaks** (δ_m): the worker becomes unmatched.
   A worker hit by 2–4 has no other event before that event's time (priority rule; time 0 for a
   firm death) and, after it, only its meetings as an unmatched worker: each meeting of a seat is
   thinned by the worker's status at the meeting's time. The state now is the **decision state**:
   every decision of the step uses V on it.
5. **Decisions**. Meetings whose destination is the worker's own firm are void. For employed
   workers with a λ shock or a meeting: ``Δ(S, x_i) = V(S) − V(S⊖x_i) − U(x_i)``; for each meeting
   at a firm below the cap, ``Δ_k = Δ(S_k⊕x, x)``. A firm at the cap makes no offer. The offer
   is made iff ``Δ_k > 0`` for an unmatched worker and ``Δ_k > max{Δ, 0}`` (``B > 0``) for an
   employed one.
6. **Separations**: an employed worker with ``Δ < 0`` at a λ shock or at a meeting leaves its firm
   (a worker with both is one separation).
7. **Arrivals** (:func:`lotj.sim.events.admit_in_time_order`): at each firm, the meetings at it
   (below the cap in the decision state) and its departures of steps 3, 4 and 6 and of workers
   who move out are taken in the order of their times from the size after step 2; an offer is
   admitted iff the firm is below the cap at its time. A meeting that finds the firm at the cap
   counts as refused by the cap, whether or not V offered; an employed worker so refused stays
   if ``Δ ≥ 0`` and goes to non-employment if ``Δ < 0``. Admitted employed workers move;
   admitted unmatched workers are hired. A hire from non-employment at time ``t`` then breaks
   with probability ``1 − exp(−δ_m (1 − t) dt)`` in the rest of the step.
8. **Learning**: firms with a learning event apply H to their workforce after the moves in odd
   steps, and after step 2 (before the decisions) in even ones (unmatched workers do not learn; a
   learning event that makes Δ < 0 acts only at the worker's next λ or ψ^E event, MODEL.md
   section 10).

With the network, V and its neighbours come from per-worker pool terms kept for the whole
population during :meth:`Simulator.run_steps` (:mod:`lotj.sim.pooled`): a step re-encodes only the
workers whose ``h`` changed and evaluates the head once on every firm state it needs.

Statistics are sampled at the start of every step (:mod:`lotj.sim.stats`); annual employment
transitions are taken at every annual date. The generator states, the clock and every tensor are
in :meth:`Simulator.state_dict`, so a restored simulator continues the same path.
"""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch, sample_firm_types, sample_workers
from lotj.economy.params import EconomyParams
from lotj.economy.technology import learning_step
from lotj.economy.value import ValueFunction
from lotj.errors import ConfigError
from lotj.sim.distributions import EconomySnapshot, initial_snapshot
from lotj.sim.draws import DrawBuffer
from lotj.sim.events import (
    EventDraws,
    StepEvents,
    StepProbabilities,
    admit_in_time_order,
    count_before,
    earlier_flagged,
    nth_free_slot,
    time_order,
)
from lotj.sim.neighbours import neighbour_values, with_workers
from lotj.sim.panel import concat_panel, panel_rows
from lotj.sim.phases import (
    Admissions,
    Decisions,
    Departures,
    Meetings,
    Offers,
    OfferState,
    OpenMeetings,
    WageDecisions,
)
from lotj.sim.pooled import PoolableValue, PooledValues, value_placement
from lotj.sim.population import Population
from lotj.sim.stats import Accumulator, SimStatistics, log_h_moments, summarise


def steps_per_year(dt: float) -> int:
    """``1/dt`` as an integer; refuses a ``dt`` that does not divide one year."""
    if not (math.isfinite(dt) and dt > 0):
        raise ConfigError(f"sim.dt = {dt}: must be finite and > 0")
    spy = round(1.0 / dt)
    if spy < 1 or abs(spy * dt - 1.0) > 1e-9:
        raise ConfigError(f"sim.dt = {dt}: 1/dt must be an integer so that annual dates fall on steps (e.g. 0.02)")
    return spy


def decision_dtype(precision: int) -> torch.dtype | None:
    """:attr:`Simulator.decision_dtype` for ``sim.decision_precision``: None (the network's own precision)
    for 64, ``torch.float32`` (a single-precision copy) for 32."""
    if precision == 64:
        return None
    if precision == 32:
        return torch.float32
    raise ConfigError(f"sim.decision_precision = {precision}: allowed [64, 32]")


#: meetings at one firm in a step whose decisions are evaluated with the step's values: the second to
#: the ``SPECULATIVE_RANK + 1``-th (Simulator._early_meetings); later ones after an offer are evaluated apart
SPECULATIVE_RANK = 3


def combo_patterns(rank: int, width: int) -> list[list[int | None]]:
    """The rows of a meeting's table at rank ``rank`` (0: a firm's first meeting of the step), as sorted
    positions relative to the meeting (0: the meeting, −1: the one before, None: no worker), ``width``
    entries each: the members (the ``rank`` earlier meetings, then the meeting); then, for every
    non-empty set ``b`` of earlier meetings (bit ``j``: the ``j``-th earlier), the set with the meeting;
    then the set alone. Simulator._offers_in_time_order picks the row of the set that offered."""

    def row(entries: list[int]) -> list[int | None]:
        return entries + [None] * (width - len(entries))

    earlier = [j - rank for j in range(rank)]
    subsets = [[earlier[j] for j in range(rank) if b >> j & 1] for b in range(1, 2**rank)]
    return [row([*earlier, 0])] + [row([*sub, 0]) for sub in subsets] + [row(sub) for sub in subsets]


class Simulator:
    """The simulated economy (module docstring).

    ``seed`` fixes both random streams: one on ``device`` for the per-step event draws, one on
    the CPU for draws from G_w and G_f. ``initial_mean_size`` is the mean workforce of the initial
    economy (:func:`lotj.sim.distributions.initial_snapshot`; None or < 0: its default).
    ``threads``: torch's CPU intra-op threads while stepping (restored afterwards; 0 leaves torch's
    setting). A step is many small operations, for which one thread is fastest: on a 2-core machine
    two threads made the smoke-size simulation about three times slower.
    """

    def __init__(
        self,
        params: EconomyParams,
        n_firms: int,
        dt: float,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
        initial_mean_size: float | None = None,
        snapshot: EconomySnapshot | None = None,
        threads: int = 1,
    ):
        if n_firms < 1:
            raise ConfigError(f"sim.n_firms = {n_firms}: must be >= 1")
        self.params = params
        self.dt = float(dt)
        self.spy = steps_per_year(self.dt)
        self.device = torch.device(device)
        self.dtype = torch.float64
        self.probs = StepProbabilities.from_params(params, self.dt)
        self.cpu_gen = torch.Generator().manual_seed(int(seed))
        self.gen = torch.Generator(device=self.device).manual_seed(int(seed) + 1)
        if snapshot is None:
            snapshot = initial_snapshot(params, n_firms, self.cpu_gen, initial_mean_size, self.dtype, self.device)
        if snapshot.firms.n_max != params.n_max:
            raise ConfigError(f"snapshot has {snapshot.firms.n_max} slots per firm, economy.n_max = {params.n_max}")
        self.pop = Population.from_snapshot(snapshot.to(self.device))
        self.new_workers = DrawBuffer(lambda k: sample_workers(params, k, self.cpu_gen, self.dtype, self.device))
        self.new_firms = DrawBuffer(lambda k: sample_firm_types(params, k, self.cpu_gen, self.dtype, self.device), 256)
        self.step_count = 0
        self.acc = Accumulator(params.n_max, self.device)
        self._annual_id: Tensor | None = None
        self._annual_employed: Tensor | None = None
        self._panel: list[pd.DataFrame] | None = None
        self.last_statistics: SimStatistics | None = None
        self.threads = int(threads)
        #: where V is evaluated: the device and dtype of the value function's parameters, read by
        #: :meth:`run_steps` (:func:`lotj.sim.pooled.value_placement`); None: the simulator's own
        self.value_device: torch.device | None = None
        self.value_dtype: torch.dtype | None = None
        #: a :class:`lotj.sim.wage_tracking.WageTracker` that sets wages along the path (None: no wages)
        self.wage_tracker = None
        #: precision of the decisions with a poolable network (:class:`lotj.nets.ValueNet`): None uses
        #: the network as given; ``torch.float32`` decides on a single-precision copy (docs/simulator.md)
        self.decision_dtype: torch.dtype | None = None
        #: per-worker and per-firm terms of a poolable network during :meth:`run_steps` (None otherwise)
        self._pooled: PooledValues | None = None
        #: ``(1, log h, log² h)`` of every worker during :meth:`run_steps` (the per-step samples)
        self._moments: Tensor | None = None
        #: keep V(S) and V(S⊖x_i) of unchanged firms from step to step with a poolable network
        #: (:class:`lotj.sim.pooled.PooledValues`); False evaluates every value at every step
        self.reuse_values = True
        #: evaluations of V made since this simulator was built (not saved; kept values not counted)
        self.head_evaluations = 0
        self.draws = EventDraws(self.probs, self.pop.n_workers, self.pop.n_firms, self.device)
        #: :func:`combo_patterns` of ranks 1..SPECULATIVE_RANK as ``(use, offset)`` tensors (:meth:`_early_meetings`)
        self._patterns = []
        for rank in range(1, SPECULATIVE_RANK + 1):
            pattern = combo_patterns(rank, SPECULATIVE_RANK + 1)
            use = torch.tensor([[0 if d is None else 1 for d in r] for r in pattern], device=self.device)
            offset = torch.tensor([[0 if d is None else d for d in r] for r in pattern], device=self.device)
            self._patterns.append((use, offset))
        self._bits = 2 ** torch.arange(SPECULATIVE_RANK, device=self.device)

    @classmethod
    def from_config(cls, cfg, device: torch.device | str = "cpu", seed_offset: int = 0) -> Simulator:
        """The simulator of a :class:`lotj.config.Config` (economy, sim group and seed; ``seed_offset``
        is added to the seed, for independent replications of one config)."""
        mean = cfg.sim.initial_mean_size
        sim = cls(
            cfg.economy,
            cfg.sim.n_firms,
            cfg.sim.dt,
            seed=cfg.seed + seed_offset,
            device=device,
            initial_mean_size=None if mean < 0 else mean,
            threads=cfg.sim.threads,
        )
        sim.decision_dtype = decision_dtype(cfg.sim.decision_precision)
        return sim

    # ------------------------------------------------------------------ views
    @property
    def clock(self) -> float:
        """Simulated time in years since the start."""
        return self.step_count / self.spy

    @property
    def year(self) -> int:
        """Completed simulated years."""
        return self.step_count // self.spy

    def snapshot(self) -> EconomySnapshot:
        """The current economy: χ (firms), χ^N (unmatched workers); χ^E and Π via its samplers."""
        return self.pop.snapshot()

    def statistics(self) -> SimStatistics:
        """Statistics of the window since the last :meth:`advance` began (or the last reset)."""
        return summarise(self.acc, self.params)

    # ---------------------------------------------------------------- running
    def advance(self, vf: ValueFunction, years: float) -> SimStatistics:
        """Simulate ``years`` years under V; returns (and keeps as :attr:`last_statistics`) the
        statistics of these years. ``years·(1/dt)`` is rounded to whole steps."""
        self.acc.reset()
        self.run_steps(vf, round(years * self.spy))
        self.last_statistics = self.statistics()
        return self.last_statistics

    def yearly_snapshots(self, vf: ValueFunction, years: int) -> list[EconomySnapshot]:
        """Simulate ``years`` years under V and return the economy at the end of each (a final market to
        pool: ``sim.settle_years``, ``wsolver.settle_years``); :attr:`last_statistics` is the last year's."""
        out = []
        for _ in range(int(years)):
            self.advance(vf, 1.0)
            out.append(self.snapshot())
        return out

    def run_steps(self, vf: ValueFunction, steps: int) -> None:
        """Simulate ``steps`` steps, accumulating into the current statistics window. V is evaluated where
        ``vf`` lives (the device and dtype of its parameters; the simulator's own for a plain set function)."""
        self.value_device, self.value_dtype = value_placement(vf)
        previous = torch.get_num_threads()
        if self.threads > 0 and self.device.type == "cpu":
            torch.set_num_threads(self.threads)
        try:
            # Inference mode rather than no_grad: a step is a few hundred small operations, and skipping
            # autograd's dispatch and version counting makes it about 15% cheaper at 10³ firms. The state
            # (Population, statistics, draw buffers) is updated in place or built outside inference mode,
            # so it stays usable by the training that samples from it (tests/test_sim_pooled.py).
            with torch.inference_mode():
                if int(steps) > 0 and isinstance(vf, PoolableValue):
                    self._pooled = PooledValues(vf, self.pop, self.decision_dtype, reuse=self.reuse_values)
                if int(steps) > 0:
                    self._moments = log_h_moments(self.pop.h)
                for _ in range(int(steps)):
                    self._step(vf)
        finally:
            self._pooled = None
            self._moments = None
            torch.set_num_threads(previous)
        self.acc.years += steps / self.spy

    def simulate_panel(self, vf: ValueFunction, years: int, from_year: int = 0) -> pd.DataFrame:
        """The annual panel of ``years`` consecutive annual dates (docs/panel.md): the simulation
        first runs to the next annual date (unless it is at one), or on to year ``from_year`` of the
        clock when that is later, then records it and ``years − 1`` further dates. The statistics of
        the simulated window are kept in :attr:`last_statistics`."""
        if int(years) < 1:
            raise ValueError(f"a panel needs at least one year, not {years}")
        self.run_steps(vf, max(0, int(from_year) * self.spy - self.step_count))
        self.acc.reset()
        self.run_steps(vf, (-self.step_count) % self.spy)
        self._panel = [self._panel_rows()]
        try:
            self.run_steps(vf, (int(years) - 1) * self.spy)
            frames = self._panel
        finally:
            self._panel = None
        self.last_statistics = self.statistics()
        return concat_panel(frames)

    def surpluses(
        self, vf: ValueFunction, deciders: Tensor, movers: Tensor, dests: Tensor, dtype: torch.dtype | None = None
    ) -> tuple[Tensor, Tensor]:
        """Δ(S, x_i) of the employed ``deciders`` at their firms and Δ(S_k⊕x, x) of worker ``movers[m]`` at
        firm ``dests[m]`` (below the cap) in the current population, as a step decides them: with a poolable
        network from its pools, in ``dtype`` (the decision precision; None: the network's own)."""
        self.value_device, self.value_dtype = value_placement(vf)
        try:
            with torch.no_grad():
                if isinstance(vf, PoolableValue):
                    self._pooled = PooledValues(vf, self.pop, dtype)
                own, hire, _ = self._surpluses(vf, deciders, movers, dests)
        finally:
            self._pooled = None
        return own, hire

    # ------------------------------------------------------------------- step
    def _surpluses(
        self,
        vf: ValueFunction,
        deciders: Tensor,
        movers: Tensor,
        dests: Tensor,
        combos: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Δ(S, x_i) of the employed ``deciders`` at their firms and Δ(S_k⊕x, x) of worker
        ``movers[m]`` at firm ``dests[m]`` (below the cap), from one evaluation of V on the firms
        involved and their neighbours (:func:`lotj.sim.neighbours.neighbour_values`). ``combos`` ``[P, C]``:
        rows of indices into ``movers`` (−1: none) of meetings at one firm; the third result is V of each
        row's firm with those workers added, −∞ where they would take it beyond the cap (with the
        network, in the same evaluation; see :meth:`_early_meetings`)."""
        pop = self.pop
        own = pop.firm.index_select(0, deciders)
        firms, inv = torch.unique(torch.cat([own, dests]), return_inverse=True)
        n_d = deciders.numel()
        self.acc.count("value_evaluations", firms.numel() + n_d + movers.numel())
        u = self.params.unemployment_coef
        rem_row, add_row = inv[:n_d], inv[n_d:]
        n_p = 0 if combos is None else combos.shape[0]
        v_combo = None
        if self._pooled is not None:
            before = self._pooled.evaluations
            v_all = self._pooled.values(pop, firms, rem_row, deciders, add_row, movers, combos if n_p else None)
            self.head_evaluations += self._pooled.evaluations - before
            v, v_minus, v_plus, v_combo = v_all.to(self.device, self.dtype).split(
                [firms.numel(), n_d, movers.numel(), n_p]
            )
        else:
            self.head_evaluations += firms.numel() + n_d + movers.numel()
            s, dev, dt = self._value_batch(firms)
            h_new, a_new = pop.h[movers].to(dev, dt), pop.a[movers].to(dev, dt)
            rem_slot = pop.slot[deciders].to(dev)
            v, v_minus, v_plus = neighbour_values(vf, s, rem_row.to(dev), rem_slot, add_row.to(dev), h_new, a_new)
            v, v_minus, v_plus = (x.to(self.device, self.dtype) for x in (v, v_minus, v_plus))
        delta_own = v.index_select(0, rem_row) - v_minus - u * pop.h.index_select(0, deciders)
        delta_hire = v_plus - v.index_select(0, add_row) - u * pop.h.index_select(0, movers)
        if n_p == 0:
            return delta_own, delta_hire, delta_hire[:0]
        self.acc.count("value_evaluations", n_p)
        combo_firms = dests.index_select(0, combos[:, 0])
        if v_combo is None:  # any other value function: the combinations as explicit sets
            return delta_own, delta_hire, self._combo_values(vf, combo_firms, movers, combos)
        return delta_own, delta_hire, torch.where(self._within_cap(combo_firms, combos), v_combo, -math.inf)

    def _value_batch(self, firms: Tensor) -> tuple[FirmBatch, torch.device, torch.dtype]:
        """The states of ``firms`` as a batch on the value function's device and in its dtype
        (``value_device``, ``value_dtype``; the simulator's own by default), with that device and dtype."""
        dev = self.value_device or self.device
        dt = self.value_dtype or self.dtype
        s = self.pop.firm_batch(firms)
        if (dev, dt) != (self.device, self.dtype):
            s = FirmBatch(s.z.to(dev, dt), s.q.to(dev, dt), s.h.to(dev, dt), s.a.to(dev, dt), s.mask.to(dev))
        return s, dev, dt

    def _after_offers(self, o_d: Tensor, order: Tensor, first: Tensor, offer: Tensor) -> Tensor:
        """In the sorted order of :func:`lotj.sim.events.time_order`: the meetings decided with earlier offers
        of their firm in the step, i.e. after one, and not where those fill the firm (step 5)."""
        before = count_before(first, offer.index_select(0, order))
        return (before > 0) & (self.pop.size.index_select(0, o_d.index_select(0, order)) + before < self.params.n_max)

    def _within_cap(self, firms: Tensor, combos: Tensor) -> Tensor:
        """Whether each firm ``firms[k]`` with the ``combos[k]`` workers (−1: none) added stays within the cap."""
        return self.pop.size.index_select(0, firms) + (combos >= 0).sum(1) <= self.params.n_max

    def _combo_values(self, vf: ValueFunction, firms: Tensor, movers: Tensor, combos: Tensor) -> Tensor:
        """V of each firm ``firms[k]`` with the workers ``movers[combos[k]]`` added (``combos`` ``[P, C]``, −1:
        none), −∞ where they would take it beyond the cap, in the simulator's dtype and on its device: from
        the kept pools with the network, as explicit sets for any other value function."""
        pop = self.pop
        room = self._within_cap(firms, combos)
        if self._pooled is not None:
            before = self._pooled.evaluations
            v = self._pooled.combo_values(pop, firms, movers, combos).to(self.device, self.dtype)
            self.head_evaluations += self._pooled.evaluations - before
            return torch.where(room, v, -math.inf)
        fits = room.nonzero().squeeze(1)
        combos = combos.index_select(0, fits)
        member = combos >= 0
        workers = movers.index_select(0, combos.clamp_min(0).view(-1)).view(combos.shape)[member]
        s, dev, dt = self._value_batch(firms.index_select(0, fits))
        s = with_workers(s, member.nonzero()[:, 0].to(dev), pop.h[workers].to(dev, dt), pop.a[workers].to(dev, dt))
        self.head_evaluations += fits.numel()
        with torch.no_grad():
            v_fits = vf.value(s).to(self.device, self.dtype)
        return torch.full((firms.numel(),), -math.inf, dtype=self.dtype, device=self.device).index_copy_(
            0, fits, v_fits
        )

    def _decide(
        self, vf: ValueFunction, deciders: Tensor, open_m: OpenMeetings, own_row: Tensor
    ) -> tuple[Tensor, Offers]:
        """Step 5 on the decision state: ``Δ(S, x_i)`` of the ``deciders`` (employed seats with a λ shock or an
        outside meeting), and for the open meetings (at a firm below the cap, with their time order) ``Δ`` of
        the worker at its own firm (``own_row``: its row in ``deciders``, −1 when unmatched; 0 then), ``Δ_k``
        and the offer, taken at each firm in time order (:meth:`_offers_in_time_order`). One evaluation of V
        serves all but the rare fifth or later meetings at a firm after an offer. Returns ``(Δ of the
        deciders, the offers)``."""
        dev = self.device
        tables, combos, top = self._early_meetings(open_m.first, open_m.order)
        if deciders.numel() or open_m.worker.numel():
            delta_own, delta_hire, v_early = self._surpluses(vf, deciders, open_m.worker, open_m.firm, combos)
        else:
            delta_own = delta_hire = v_early = torch.zeros(0, dtype=self.dtype, device=dev)
        if deciders.numel():
            own_delta = torch.where(own_row >= 0, delta_own.index_select(0, own_row.clamp_min(0)), 0.0)
        else:
            own_delta = torch.zeros(open_m.worker.numel(), dtype=self.dtype, device=dev)
        delta_hire, offer = self._offers_in_time_order(vf, open_m, own_delta, delta_hire, (tables, top), v_early)
        return delta_own, Offers(own_delta, delta_hire, offer)

    def _early_meetings(self, first: Tensor, order: Tensor) -> tuple[list[Tensor], Tensor, int]:
        """The second to ``SPECULATIVE_RANK + 1``-th meetings of the step at each firm (time order) and the
        firm states their decisions may need, evaluated with the step's other values (docs/simulator.md,
        step 5).

        Returns one table per rank ``r`` (indices into the meetings, −1: none; rows of
        :func:`combo_patterns`), ``[n_r, 2^(r+1) − 1, SPECULATIVE_RANK + 1]``: per meeting its members
        (the firm's ``r`` earlier meetings and itself), then the firm with each non-empty set of earlier
        meetings and the meeting added, then with the set alone; the firm states of all tables flat; and
        the highest rank of a meeting at a firm (0: each firm met once at most). An entry's sorted
        position is ``(s + 1)·use + offset`` in the meetings padded by one at the front."""
        rank = torch.arange(order.numel(), device=order.device) - first
        top = int(rank.max()) if order.numel() else 0
        padded = torch.cat([order.new_full((1,), -1), order])  # position 0: none
        tables = []
        for r, (use, offset) in enumerate(self._patterns[:top], start=1):
            at = (rank == r).nonzero().add_(1).view(-1, 1, 1)  # sorted positions, shifted by one
            tables.append(padded.index_select(0, (at * use + offset).view(-1)).view(-1, *use.shape))
        width = SPECULATIVE_RANK + 1
        flat = torch.cat([t[:, 1:].reshape(-1, width) for t in tables]) if tables else order.new_zeros((0, width))
        return tables, flat, top

    def _offers_in_time_order(
        self,
        vf: ValueFunction,
        open_m: OpenMeetings,
        own_delta: Tensor,
        delta_hire: Tensor,
        early: tuple[list[Tensor], int],
        v_early: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """The offers of the open meetings, taken at each firm in time order (docs/simulator.md, step 5): a
        meeting is decided on the decision state plus the workers the firm offered earlier in the step,
        ``Δ_k = V(S_k⊕P⊕x) − V(S_k⊕P) − U(x)``. Where those offers fill the firm (``S_k⊕P`` at the cap) it
        keeps its decision on the decision state: the cap rule of step 7 then admits it only where a
        departure of the step freed a slot before it.

        ``delta_hire``: ``Δ_k`` on the decision state (``P = ∅``); ``own_delta``: ``Δ`` of each worker at its
        own firm (0 off the job); ``early``: the tables of the early meetings at each firm and the highest
        rank (:meth:`_early_meetings`); ``v_early``: V of their firm states (−∞ beyond the cap). The early
        meetings are decided rank by rank from them (:meth:`_early_offers`); a later meeting after an offer
        is evaluated apart, and again while an earlier decision at its firm changes (:meth:`_later_offers`).
        The result is the sequential one. Returns ``(Δ_k, offer)``."""
        threshold = own_delta.clamp_min(0.0)  # max{Δ, 0}: B > 0 iff Δ_k exceeds it (MODEL.md section 4)
        offer = delta_hire > threshold
        tables, top = early
        if top == 0:
            return delta_hire, offer
        u_h = self.params.unemployment_coef * self.pop.h.index_select(0, open_m.worker)  # U(x)
        state = OfferState(threshold, delta_hire, delta_hire.clone(), offer, u_h)
        self._early_offers(state, tables, v_early)
        if top > SPECULATIVE_RANK:
            self._later_offers(vf, open_m, state)
        return state.delta, state.offer

    def _early_offers(self, state: OfferState, tables: list[Tensor], v_early: Tensor) -> None:
        """The second to ``SPECULATIVE_RANK + 1``-th meetings at each firm, rank by rank, from the values of
        their tables (:meth:`_early_meetings`): each is decided with the set of earlier meetings that offered."""
        start = 0
        for r, table in enumerate(tables, start=1):
            sets = 2**r - 1  # the non-empty sets of earlier meetings
            meeting = table[:, 0, r]
            values = v_early[start : start + table.shape[0] * 2 * sets].view(-1, 2 * sets)
            start += values.numel()
            # the set of earlier meetings that offered, as a column of the table (−1: none)
            offered = state.offer.index_select(0, table[:, 0, :r].reshape(-1)).view(-1, r).long()
            subset = (offered * self._bits[:r]).sum(1) - 1
            col = subset.clamp_min(0).unsqueeze(1)
            v_with_x = values.gather(1, col).squeeze(1)  # V(S_k⊕P⊕x)
            delta_k = v_with_x - values.gather(1, col + sets).squeeze(1) - state.u_h.index_select(0, meeting)
            # decided on the decision state where none offered before, or where the offers fill the firm
            after = (subset >= 0) & (v_with_x > -math.inf)
            self.acc.count("after_offer", after.sum())
            delta_k = torch.where(after, delta_k, state.on_state.index_select(0, meeting))
            state.delta.index_copy_(0, meeting, delta_k)
            state.offer.index_copy_(0, meeting, delta_k > state.threshold.index_select(0, meeting))

    def _later_offers(self, vf: ValueFunction, open_m: OpenMeetings, state: OfferState) -> None:
        """The meetings beyond the early ranks at a firm: each one after an offer of its firm is decided again
        with the firm's earlier offers P, ``Δ_k = V(S_k⊕P⊕x) − V(S_k⊕P) − U(x)``, until no decision changes."""
        order, first = open_m.order, open_m.first
        later = torch.arange(open_m.firm.numel(), device=open_m.firm.device) - first > SPECULATIVE_RANK
        changed = state.offer.index_select(0, order)
        while True:
            dirty = ((count_before(first, changed) > 0) & later).nonzero().squeeze(1)  # sorted positions
            if dirty.numel() == 0:
                after = self._after_offers(open_m.firm, order, first, state.offer) & later
                self.acc.count("after_offer", after.sum())
                return
            row, pos = earlier_flagged(first, state.offer.index_select(0, order), dirty)
            again = order.index_select(0, dirty)  # the meetings to decide again
            k = again.numel()
            # each one's earlier offers P (ascending rows), as rows of a table: S⊕P and S⊕P⊕x
            counts = torch.bincount(row, minlength=k)
            starts = (torch.cumsum(counts, 0) - counts).index_select(0, row)
            within = torch.arange(row.numel(), device=row.device) - starts
            without_x = torch.full((k, int(counts.max()) + 1), -1, dtype=order.dtype, device=order.device)
            without_x[row, within] = order.index_select(0, pos)
            with_x = without_x.clone()
            with_x[torch.arange(k, device=again.device), counts] = again
            self.acc.count("value_evaluations", 2 * k)
            firms = open_m.firm.index_select(0, again).repeat(2)
            v = self._combo_values(vf, firms, open_m.worker, torch.cat([with_x, without_x]))
            # where the earlier offers fill the firm, the decision on the decision state
            delta_k = torch.where(
                v[:k] > -math.inf,
                v[:k] - v[k:] - state.u_h.index_select(0, again),
                state.on_state.index_select(0, again),
            )
            offer_k = delta_k > state.threshold.index_select(0, again)
            changed = torch.zeros_like(changed).index_copy_(0, dirty, offer_k != state.offer.index_select(0, again))
            state.delta.index_copy_(0, again, delta_k)
            state.offer.index_copy_(0, again, offer_k)

    def _step(self, vf: ValueFunction) -> None:
        """One step (module docstring), phase by phase. A step touches few workers: the phases work on compact
        index arrays of the workers with an event (:mod:`lotj.sim.phases`), with one compaction per selection."""
        pop = self.pop
        employed = pop.firm >= 0
        self._sample_statistics(employed)
        ev = self.draws.draw(employed, pop.size, self.gen)  # 1. the step's events, from the start state
        free_from = self._firm_deaths(ev)  # 2.
        # 8. learning acts here in even steps, on the workforce at the start less the deaths, and the step's
        # decisions see it; in odd steps it acts at the end of the step
        learn_early = self.step_count % 2 == 0
        learned = self._learn(ev.learn) if learn_early and ev.learn.numel() else None  # re-encoded below
        start_size = pop.size.clone()  # the size path of the admission rule starts here (step 7)
        retired, broken = self._retirements_and_breaks(ev, free_from)  # 3., 4.
        if learn_early:  # the early learning and the retired seats' new workers, re-encoded in one go
            self._refresh_workers(ev.retire if learned is None else torch.cat([learned, ev.retire]))
        meetings = self._live_meetings(ev, free_from, refresh_renewed=not learn_early)
        decisions, open_m, offers = self._decisions(vf, ev, free_from, meetings)  # 5.
        if self.wage_tracker is not None:
            self._wage_decisions(meetings, decisions, open_m, offers)
        separated = self._separations(decisions)  # 6.
        admitted = self._admissions(meetings, offers, (retired, broken, separated), start_size)  # 7.
        self._arrivals(meetings, separated, admitted)
        if not learn_early:  # 8. H on the workforce after the moves, re-encoded with the retired seats
            changed = torch.cat([ev.retire, self._learn(ev.learn)]) if ev.learn.numel() else ev.retire
            self._refresh_workers(changed)
        self.acc.flush()
        self.step_count += 1
        if self.step_count % self.spy == 0:
            self._record_annual()

    def _sample_statistics(self, employed: Tensor) -> None:
        """The statistics of the step's start state (:mod:`lotj.sim.stats`)."""
        if self._moments is not None:
            self.acc.sample_moments(self.pop.size, employed, self._moments)
        else:
            self.acc.sample(self.pop.size, employed, self.pop.h)

    def _firm_deaths(self, ev: StepEvents) -> Tensor:
        """Step 2, firm deaths (δ_f, MODEL.md section 1): the workers become unmatched (h unchanged) and a newborn
        empty firm from G_f takes the firm's place. Returns ``free_from`` per seat, the time from which its
        worker is unmatched after steps 2–4 (0 for a dying firm's workers; retirements and breaks set theirs):
        before it the seat has no other event (priority rule), after it only meetings as an unmatched worker.
        −1: no event of steps 2–4."""
        pop = self.pop
        free_from = torch.full((pop.n_workers,), -1.0, dtype=torch.float64, device=self.device)
        if ev.death.numel():
            z, q = self.new_firms.take(ev.death.numel())  # newborn firms from G_f
            free_from.index_fill_(0, pop.replace_firms(ev.death, z, q), 0.0)
            if self._pooled is not None:
                self._pooled.refresh_firms(pop, ev.death)
            self.acc.count("deaths", ev.death.numel())
        return free_from

    def _retirements_and_breaks(self, ev: StepEvents, free_from: Tensor) -> tuple[Departures, Departures]:
        """Steps 3 and 4 (MODEL.md section 1): a retirement (δ_r) gives the seat a new unmatched worker from G_w;
        a match break (δ_m) makes the worker unmatched, unless a firm death freed it first (priority rule).
        Each is a departure from the firm at its time; ``free_from`` records the times."""
        pop = self.pop
        free_from.index_copy_(0, ev.retire, ev.retire_t)
        retiring = ev.retire
        gone = (pop.firm.index_select(0, retiring) >= 0).nonzero().squeeze(1)  # retirees who leave a firm
        leaving = retiring.index_select(0, gone)
        retired = Departures(leaving, pop.firm.index_select(0, leaving), ev.retire_t.index_select(0, gone))
        live = (free_from.index_select(0, ev.brk) < 0).nonzero().squeeze(1)
        breaking = ev.brk.index_select(0, live)
        broken = Departures(breaking, pop.firm.index_select(0, breaking), ev.brk_t.index_select(0, live))
        pop.detach(torch.cat([retired.workers, broken.workers]), torch.cat([retired.firms, broken.firms]))
        if retiring.numel():
            h, a = self.new_workers.take(retiring.numel())  # new workers from G_w
            pop.renew_workers(retiring, h, a)
            self.acc.count("retirements", retiring.numel())
        self.acc.count("breaks", breaking.numel())
        free_from.index_copy_(0, breaking, broken.times)
        return retired, broken

    def _live_meetings(self, ev: StepEvents, free_from: Tensor, refresh_renewed: bool) -> Meetings:
        """The step's meetings thinned by the met worker's status at their time (MODEL.md section 3: an
        unmatched worker meets at ψ^N, an employed one at ψ^E): a seat unmatched since ``free_from`` keeps its
        later meetings at the unmatched rate, a seat employed throughout at the employed rate. A meeting with
        the worker's own firm is void (section 10) and dropped. ``refresh_renewed``: a retired seat's new
        worker can meet a firm later in the step; its pool terms are brought up to date now."""
        pop = self.pop
        own_all = pop.firm.index_select(0, ev.meeters)
        t_free = free_from.index_select(0, ev.meeters)
        live = (t_free < 0) | ((ev.meet_t > t_free) & (ev.meet_u < self.draws.thin_n))
        if self.draws.thin_e < 1.0:
            live &= (t_free >= 0) | (own_all < 0) | (ev.meet_u < self.draws.thin_e)
        kept = (live & (ev.dest != own_all)).nonzero().squeeze(1)  # live meetings, void ones dropped
        self.acc.count("void_meetings", live.sum() - kept.numel())
        worker, firm = ev.meeters.index_select(0, kept), ev.dest.index_select(0, kept)
        if refresh_renewed and ev.retire.numel() and self._pooled is not None:
            renewed = worker.index_select(0, torch.isin(worker, ev.retire).nonzero().squeeze(1))
            if renewed.numel():
                self._pooled.refresh_workers(pop, renewed)
        own_firm = own_all.index_select(0, kept)
        is_open = pop.size.index_select(0, firm) < self.params.n_max  # a firm at the cap makes no offer
        open_rows = is_open.nonzero().squeeze(1)
        self.acc.count("cap_blocked", worker.numel() - open_rows.numel())
        time = ev.meet_t.index_select(0, kept)
        return Meetings(worker, firm, time, own_firm, own_firm >= 0, is_open, open_rows)

    def _decisions(
        self, vf: ValueFunction, ev: StepEvents, free_from: Tensor, meetings: Meetings
    ) -> tuple[Decisions, OpenMeetings, Offers]:
        """Step 5 on the decision state (MODEL.md section 4): the deciders are the employed seats with a live λ
        shock or an outside meeting, Δ(S, x_i) each; the open meetings (at a firm below the cap: a firm at the
        cap makes no offer, section 10) get Δ_k and an offer, in time order at each firm (:meth:`_decide`)."""
        acc, dev = self.acc, self.device
        live = (free_from.index_select(0, ev.reneg) < 0).nonzero().squeeze(1)
        renegotiating, reneg_t = ev.reneg.index_select(0, live), ev.reneg_t.index_select(0, live)
        on_job = meetings.employed.nonzero().squeeze(1)  # outside meetings of employed workers
        acc.count("meetings_e", on_job.numel())
        acc.count("meetings_n", meetings.worker.numel() - on_job.numel())
        acc.count("reneg_shocks", renegotiating.numel())
        # ascending seats with a λ shock or an outside meeting; a decision's time is its meeting's, else its shock's
        met_on_job = meetings.worker.index_select(0, on_job)
        deciders, inverse = torch.unique(torch.cat([renegotiating, met_on_job]), return_inverse=True)
        meeting_row = inverse[renegotiating.numel() :]  # each outside meeting's row in deciders
        time = torch.empty(deciders.numel(), dtype=meetings.time.dtype, device=dev)
        time.index_copy_(0, inverse[: renegotiating.numel()], reneg_t)
        time.index_copy_(0, meeting_row, meetings.time.index_select(0, on_job))
        rows = meetings.open_rows
        worker, firm, t = (x.index_select(0, rows) for x in (meetings.worker, meetings.firm, meetings.time))
        open_m = OpenMeetings(worker, firm, *time_order(firm, t))
        own_row = torch.full((meetings.worker.numel(),), -1, dtype=torch.long, device=dev).index_copy_(
            0, on_job, meeting_row
        )
        delta_own, offers = self._decide(vf, deciders, open_m, own_row.index_select(0, rows))
        return Decisions(renegotiating, deciders, time, delta_own, meeting_row), open_m, offers

    def _separations(self, d: Decisions) -> Departures:
        """Step 6: an employed worker with Δ(S, x_i) < 0 at a λ shock or an outside meeting leaves its firm
        (MODEL.md section 4; a worker with both is one separation), a departure at the decision's time."""
        quits = (d.delta_own < 0).nonzero().squeeze(1)
        at_meeting = torch.zeros(d.deciders.numel(), dtype=torch.bool, device=self.device)
        n_at_meeting = at_meeting.index_fill_(0, d.meeting_row, True).index_select(0, quits).sum()
        self.acc.count("reneg_separations", quits.numel() - n_at_meeting)
        self.acc.count("meeting_separations", n_at_meeting)
        leaving = d.deciders.index_select(0, quits)
        # their slots are freed in step 7, with those of the workers who move out (no state is read between)
        return Departures(leaving, self.pop.firm.index_select(0, leaving), d.time.index_select(0, quits))

    def _arrivals(self, meetings: Meetings, separated: Departures, adm: Admissions | None) -> None:
        """Step 7, the moves: the ``separated`` workers and those who move out leave their firms, the admitted
        offers (:meth:`_admissions`) join theirs (employed workers move, unmatched ones are hired), and a hire
        from non-employment may break in the rest of the step (:meth:`_late_breaks`)."""
        pop = self.pop
        out_w, out_firm = separated.workers[:0], separated.firms[:0]
        if adm is not None:
            moving_out = meetings.open_rows.index_select(0, adm.moving_out)
            out_w, out_firm = meetings.worker.index_select(0, moving_out), meetings.own_firm.index_select(0, moving_out)
        pop.detach(torch.cat([separated.workers, out_w]), torch.cat([separated.firms, out_firm]))
        if adm is not None:
            pop.attach(adm.workers, adm.firms, nth_free_slot(pop.slot_worker.index_select(0, adm.firms) < 0, adm.rank))
        if self.wage_tracker is not None:
            self.wage_tracker.on_moves(pop)
        if adm is not None:
            self._late_breaks(adm.workers, adm.from_job, adm.times)

    def _admissions(
        self,
        meetings: Meetings,
        offers: Offers,
        departures: tuple[Departures, Departures, Departures],
        start_size: Tensor,
    ) -> Admissions | None:
        """Step 7, the cap rule (:func:`lotj.sim.events.admit_in_time_order`): at each firm, its open meetings and
        the step's ``departures`` (retirements, breaks, separations) in time order from ``start_size``; an offer
        is admitted iff the firm is below the cap at its time. Workers who move out free their slot at their
        meeting's time: a second pass with them (an employed mover with Δ ≥ 0 still holds its slot; one with
        Δ < 0 left in step 6), only where the first pass found a firm at the cap (with none, more departures
        change no admission). None without open meetings."""
        rows = meetings.open_rows
        if rows.numel() == 0:
            return None
        dev, n_max, n_open = self.device, self.params.n_max, rows.numel()
        worker, firm, time, from_job, own_firm = (
            x.index_select(0, rows)
            for x in (meetings.worker, meetings.firm, meetings.time, meetings.employed, meetings.own_firm)
        )
        firms = torch.cat([firm, *(x.firms for x in departures)])
        times = torch.cat([time, *(x.times for x in departures)])
        steps = torch.cat([offers.offer.to(torch.int64), torch.full((firms.numel() - n_open,), -1, device=dev)])
        full, admitted, rank = admit_in_time_order(firms, times, steps, start_size, n_max, n_open)
        can_move_out = from_job & (offers.own_delta >= 0)
        stay_mover = (admitted & can_move_out).nonzero().squeeze(1)
        if stay_mover.numel() and bool(full.any()):
            firms = torch.cat([firms, own_firm.index_select(0, stay_mover)])
            times = torch.cat([times, time.index_select(0, stay_mover)])
            steps = torch.cat([steps, torch.full((stay_mover.numel(),), -1, device=dev)])
            full, admitted, rank = admit_in_time_order(firms, times, steps, start_size, n_max, n_open)
        self.acc.count("cap_refused", full.sum())
        adm = admitted.nonzero().squeeze(1)
        workers, new_firms, rank, job = (x.index_select(0, adm) for x in (worker, firm, rank, from_job))
        n_poach = job.sum()
        self.acc.count("poaches", n_poach)
        self.acc.count("hires", workers.numel() - n_poach)
        moving_out = (admitted & can_move_out).nonzero().squeeze(1)
        return Admissions(workers, new_firms, rank, job, time.index_select(0, adm), moving_out)

    def _learn(self, firms: Tensor) -> Tensor:
        """The learning event H on the whole workforce of each of ``firms`` (MODEL.md section 2); returns
        the seats whose ``h`` changed."""
        pop, p = self.pop, self.params
        sw = pop.slot_worker.index_select(0, firms)
        mask = sw >= 0
        seat = sw.clamp_min(0).view(-1)  # padding reads seat 0: learning_step leaves padding alone
        h_pad = pop.h.index_select(0, seat).view(sw.shape)
        a_pad = pop.a.index_select(0, seat).view(sw.shape)
        new_h = learning_step(h_pad, a_pad, pop.q.index_select(0, firms), mask, p.theta_plus, p.theta_minus)
        real = mask.view(-1).nonzero().squeeze(1)
        learned = seat.index_select(0, real)
        pop.h.index_copy_(0, learned, new_h.view(-1).index_select(0, real))
        pop.touch(firms)
        self.acc.count("learning", firms.numel())
        return learned

    def _refresh_workers(self, seats: Tensor) -> None:
        """Keep the per-worker pool terms and ``log h`` moments of ``seats`` up to date after their
        ``h`` (or their worker) changed."""
        if self._pooled is not None:
            self._pooled.refresh_workers(self.pop, seats)
        if self._moments is not None and seats.numel():
            self._moments.index_copy_(0, seats, log_h_moments(self.pop.h.index_select(0, seats)))

    def _late_breaks(self, hired: Tensor, from_job: Tensor, hire_t: Tensor) -> None:
        """Match breaks of the step's hires from non-employment in the rest of the step after their
        hire (time ``hire_t``): probability ``1 − exp(−δ_m (1 − t) dt)`` each. Without them a new
        match would be safe from δ_m until the next step (docs/simulator.md, "Accuracy in dt")."""
        new = from_job.logical_not().nonzero().squeeze(1)
        if new.numel() == 0 or self.params.delta_m <= 0:
            return
        rest = hire_t.index_select(0, new).neg().add_(1.0)
        prob = torch.expm1(rest * (-self.params.delta_m * self.dt)).neg_()
        u = torch.rand(new.numel(), generator=self.gen, dtype=torch.float64, device=self.device)
        late = hired.index_select(0, new.index_select(0, (u < prob).nonzero().squeeze(1)))
        if late.numel():
            self.pop.detach(late)
            self.acc.count("breaks", late.numel())
            if self.wage_tracker is not None:
                self.wage_tracker.on_separations(late)

    def _wage_decisions(self, meetings: Meetings, d: Decisions, open_m: OpenMeetings, offers: Offers) -> None:
        """The step's decisions in the wage tracker's per-seat form (:meth:`WageTracker.on_decisions`), with
        the meetings that came after an offer of the same firm in the step."""
        pop, dev = self.pop, self.device
        reneg = torch.zeros(pop.n_workers, dtype=torch.bool, device=dev)
        reneg[d.renegotiating] = True
        delta_own = torch.zeros(pop.n_workers, dtype=self.dtype, device=dev)
        delta_own[d.deciders] = d.delta_own
        delta_k = torch.full((meetings.worker.numel(),), -math.inf, dtype=self.dtype, device=dev)
        delta_k[meetings.open_rows] = offers.delta_hire
        after = torch.zeros(meetings.worker.numel(), dtype=torch.bool, device=dev)
        after[meetings.open_rows[open_m.order]] = self._after_offers(
            open_m.firm, open_m.order, open_m.first, offers.offer
        )
        self.wage_tracker.on_decisions(
            pop,
            WageDecisions(
                reneg, delta_own, meetings.worker, meetings.firm, meetings.employed, meetings.is_open, delta_k, after
            ),
        )

    def _record_annual(self) -> None:
        """An annual date: EN/NE transitions since the previous one and the panel rows if recording."""
        employed = self.pop.employed()
        if self._annual_id is not None:
            stayed = self.pop.worker_id == self._annual_id
            self.acc.transition(self._annual_employed, employed, stayed)
        self._annual_id = self.pop.worker_id.clone()
        self._annual_employed = employed.clone()
        if self._panel is not None:
            self._panel.append(self._panel_rows())

    def _panel_rows(self) -> pd.DataFrame:
        """The panel rows of the current date, with the wage columns when a wage tracker is set."""
        frame = panel_rows(self.pop, self.year)
        if self.wage_tracker is not None:
            frame = self.wage_tracker.panel_columns(frame, self.pop)
        return frame

    # ---------------------------------------------------------- checkpointing
    def state_dict(self) -> dict:
        """Everything needed to continue the same path: tensors, generator states, clock, window, and
        the wages when a wage tracker is attached."""
        return {
            "population": self.pop.state_dict(),
            "step_count": self.step_count,
            "gen": self.gen.get_state(),
            "gen_device": self.device.type,
            "cpu_gen": self.cpu_gen.get_state(),
            "new_workers": self.new_workers.state_dict(),
            "new_firms": self.new_firms.state_dict(),
            "accumulator": self.acc.state_dict(),
            "annual_id": None if self._annual_id is None else self._annual_id.clone(),
            "annual_employed": None if self._annual_employed is None else self._annual_employed.clone(),
            "dt": self.dt,
            "wages": None if self.wage_tracker is None else self.wage_tracker.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue a saved path. The per-step draws come from a generator of the simulator's device
        type, whose stream differs between CPU and GPU: a path is continued on the kind of device it
        was saved on, else the load is refused."""
        if abs(float(state["dt"]) - self.dt) > 1e-12:
            raise ConfigError(f"sim.dt = {self.dt} differs from the checkpoint's {state['dt']}")
        saved = state.get("gen_device")
        if saved is None:  # checkpoints before the device was recorded: a CPU generator state is far longer
            saved = "cpu" if state["gen"].numel() == torch.Generator().get_state().numel() else "cuda"
        if saved != self.device.type:
            raise ConfigError(
                f"the checkpoint's simulator ran on {saved} and this one is on {self.device.type}: their random "
                "streams differ, so the path cannot be continued; resume with the trainer.accelerator of the "
                "saved run"
            )
        self.pop = Population.from_state_dict(state["population"], self.device)
        if self.pop.n_max != self.params.n_max:
            raise ConfigError(f"checkpoint has {self.pop.n_max} slots per firm, economy.n_max = {self.params.n_max}")
        self.step_count = int(state["step_count"])
        self.gen.set_state(state["gen"].cpu())
        self.cpu_gen.set_state(state["cpu_gen"].cpu())
        self.new_workers.load_state_dict(state["new_workers"], self.device)
        self.new_firms.load_state_dict(state["new_firms"], self.device)
        self.acc.load_state_dict(state["accumulator"])
        self._annual_id = None if state["annual_id"] is None else state["annual_id"].to(self.device).clone()
        emp = state["annual_employed"]
        self._annual_employed = None if emp is None else emp.to(self.device).clone()
        self.last_statistics = self.statistics() if self.acc.years > 0 else None
        if state.get("wages") is not None and self.wage_tracker is not None:
            self.wage_tracker.load_state_dict(state["wages"], self.pop)
