"""The random events of one time step of length ``dt`` (MODEL.md sections 1–3; docs/simulator.md).

Every Poisson process of the model is discretised on its own: within a step each process fires
independently, with probability ``1 − exp(−rate·dt)`` (the chance of at least one event) or, for
learning, whose events compound, ``γ^E·dt`` (the expected number of events)
(:class:`StepProbabilities`). What several events of one worker or one firm in the same step do is
settled by the simulator's priority rule (:mod:`lotj.sim.simulator`).

- firms: death at ``δ_f``, learning at ``γ^E``;
- workers: retirement at ``δ_r``; employed: match break at ``δ_m``, renegotiation shock at
  ``λ``, meeting at ``ψ^E``; unmatched: meeting at ``ψ^N``;
- each meeting goes to firm ``k`` with probability ``(n_k + 1) / Σ_j (n_j + 1)`` at the start
  of the step (the ``+1`` is the manager, MODEL.md section 3);
- every worker event has a uniform time within the step, which orders the departures and
  arrivals of one firm when the size cap is applied (:func:`admit_in_time_order`).

:class:`EventDraws` draws all of them from one uniform tensor per step, by geometric gaps between
events, so a step costs draws in proportion to its expected number of events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lotj.economy.params import EconomyParams


@dataclass(frozen=True)
class StepProbabilities:
    """The probability of an event in one step for each process of the model: ``1 − exp(−rate·dt)``,
    the chance of at least one event, for the events whose repetition within a step changes nothing
    more (death, retirement, break, λ shock: the first one settles the step) and for meetings; and
    ``γ^E·dt`` for learning, whose events compound (``H`` twice is not ``H`` once), so that the
    expected number of learning events per step is exact. With ``1 − exp(−γ^E dt)`` a firm learned
    about ``γ^E dt / 2`` too rarely (1% at dt = 0.02, 11% at dt = 0.25), and the spread of ``log h``
    with it (docs/simulator.md, "Accuracy in dt")."""

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
            learn=p.learning_probability(dt),
            retire=prob(p.delta_r),
            brk=prob(p.delta_m),
            reneg=prob(p.lam),
            meet_e=prob(p.psi_e),
            meet_n=prob(p.psi_n),
        )


@dataclass
class StepEvents:
    """The events drawn for one step, as ascending index arrays with a time in ``[0, 1)`` (a share of
    the step) for every worker event: firm deaths and learning events ``[.]`` (rows of firms),
    retirements, match breaks (employed seats only) and λ shocks (employed seats only), meetings with
    the firm each one reaches."""

    death: Tensor
    learn: Tensor
    retire: Tensor
    retire_t: Tensor
    brk: Tensor
    brk_t: Tensor
    reneg: Tensor
    reneg_t: Tensor
    meeters: Tensor  #: seats that generate a meeting, ``[M]`` (ascending)
    meet_t: Tensor
    meet_u: Tensor  #: each meeting's thinning uniform, ``[M]`` (EventDraws.thin_e / thin_n)
    dest: Tensor  #: the firm each meeting reaches, ``[M]``


def draw_destinations(sizes: Tensor, u: Tensor) -> Tensor:
    """Firms drawn with probability ∝ ``n_k + 1`` from uniforms ``u`` in ``[0, 1)`` (inverse CDF on the
    cumulative weights)."""
    cum = torch.cumsum(sizes + 1, 0, dtype=torch.float64)
    return torch.searchsorted(cum, u.to(torch.float64) * cum[-1], right=True).clamp_(max=sizes.numel() - 1)


#: the kinds of :class:`EventDraws`, in the order of their segments: (name, over firms?)
_KINDS = (("retire", False), ("brk", False), ("reneg", False), ("meet", False), ("death", True), ("learn", True))


class EventDraws:
    """Every Bernoulli event of a step, drawn from one uniform tensor (module docstring).

    A process that fires with probability ``p`` independently at each of ``n`` places (seats or
    firms) is drawn by its gaps: the number of places skipped before the next event is geometric,
    ``⌊log U / log(1 − p)⌋``, so a step costs a number of draws proportional to the expected number
    of events, not to ``n``. Each kind has a fixed segment of ``μ + sds·√μ + extra`` rows (``μ = n p``);
    in the rare step where a segment ends before its last place it is extended. Every row carries
    three more uniforms: the event's time within the step, and for meetings a thinning draw and the
    destination. Breaks and λ shocks are drawn over all seats and kept for employed ones (they have
    probability 0 off the job); meetings are drawn at ``max(p^E, p^N)``, thinned to ``p^N`` here for seats
    unmatched at the start and returned with their thinning uniform for seats employed at the start,
    which the caller thins to ``p^E`` or ``p^N`` by the worker's status at the meeting's time. All give
    exactly independent Bernoulli draws per place."""

    def __init__(
        self,
        probs: StepProbabilities,
        n_workers: int,
        n_firms: int,
        device: torch.device | str = "cpu",
        sds: float = 6.0,
        extra: float = 8.0,
    ):
        self.probs = probs
        self.meet_max = max(probs.meet_e, probs.meet_n)
        p = {
            "retire": probs.retire,
            "brk": probs.brk,
            "reneg": probs.reneg,
            "meet": self.meet_max,
            "death": probs.death,
            "learn": probs.learn,
        }
        self.n_workers = int(n_workers)
        self.places = [n_firms if firm else n_workers for _, firm in _KINDS]
        self.p = [p[name] for name, _ in _KINDS]
        self.rows = []
        for n, prob in zip(self.places, self.p):
            mu = n * prob
            self.rows.append(0 if prob <= 0 else max(1, math.ceil(mu + sds * math.sqrt(mu) + extra)))
        self.device = torch.device(device)
        kind = torch.repeat_interleave(torch.arange(len(_KINDS)), torch.tensor(self.rows))
        self.kind = kind.to(device)
        inv = torch.tensor([1.0 / math.log1p(-q) if 0 < q < 1 else (-0.0 if q >= 1 else 0.0) for q in self.p])
        self.inv_log = inv.to(torch.float64)[kind].to(device)
        self.limit = torch.tensor(self.places)[kind].to(device)
        ends = torch.tensor(self.rows).cumsum(0)
        self.start_list = (ends - torch.tensor(self.rows)).tolist()
        self.starts = torch.tensor(self.start_list).to(device)
        self.last = (ends - 1).clamp_min(0).to(device)
        self.last_limit = self.limit[self.last] if self.last.numel() and kind.numel() else self.last
        self.total = int(ends[-1])
        # acceptance of a row by its third uniform, for an employed and for an unmatched place: always for
        # retirements, deaths and learning; breaks and λ shocks on the job only; meetings thinned from
        # max(p^E, p^N) to the place's own probability (a threshold of 2 or -1 makes the uniform irrelevant)
        top = max(self.meet_max, 1e-300)
        always, on_job = (2.0, 2.0), (2.0, -1.0)
        meet = (2.0, probs.meet_n / top)  # on the job: every row; the caller thins by the status at its time
        accept = {"retire": always, "brk": on_job, "reneg": on_job, "meet": meet, "death": always, "learn": always}
        #: a meeting row is a meeting of an employed worker iff its thinning uniform is below ``thin_e``, of an
        #: unmatched one iff below ``thin_n``: the caller thins the rows of seats employed at the start by the
        #: worker's status at the meeting's time (docs/simulator.md, "Accuracy in dt")
        self.thin_e, self.thin_n = probs.meet_e / top, probs.meet_n / top
        table = torch.tensor([accept[name] for name, _ in _KINDS], dtype=torch.float64)
        self.accept_kind = table.to(device)
        self.accept = table[kind].to(device)  # [total, 2]: (employed, unmatched)

    def _positions(self, u: Tensor, inv_log: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
        """Positions of the events of each segment from the gap uniforms ``u`` (in ``(0, 1]``)."""
        gaps = torch.floor(torch.log(u) * inv_log).to(torch.int64) + 1
        cum = torch.cumsum(gaps, 0)
        base = torch.cat([cum.new_zeros(1), cum])[starts]
        return cum - 1, base

    def draw(self, employed: Tensor, sizes: Tensor, generator: torch.Generator) -> StepEvents:
        """The events of one step from the state at its start (``employed`` ``[W]``, ``sizes`` ``[N_f]``).

        Every row is kept or dropped in one pass (inside its segment's places, and accepted by its
        third uniform for the place's employment status), so the step's events take one compaction."""
        u = torch.rand(self.total, 4, generator=generator, dtype=torch.float64, device=self.device)
        cum, base = self._positions(1.0 - u[:, 0], self.inv_log, self.starts)
        pos = cum - base.index_select(0, self.kind)
        short = (pos.index_select(0, self.last) < self.last_limit).tolist() if self.total else []
        if any(s and r > 0 for s, r in zip(short, self.rows)):  # a segment ended before its last place
            rows = [u[s : s + r] for s, r in zip(self.start_list, self.rows)]
            position = [pos[s : s + r] for s, r in zip(self.start_list, self.rows)]
            for k, is_short in enumerate(short):
                if is_short and self.rows[k] > 0:
                    position[k], rows[k] = self._extend(k, position[k], rows[k], generator)
            kind = torch.cat([torch.full_like(x, k) for k, x in enumerate(position)])
            pos, u = torch.cat(position), torch.cat(rows)
            limit = torch.tensor(self.places, device=self.device).index_select(0, kind)
            accept = self.accept_kind.index_select(0, kind)
        else:
            kind, limit, accept = self.kind, self.limit, self.accept
        inside = pos < limit
        if self.n_workers > 0:
            emp = employed.index_select(0, pos.clamp_max(self.n_workers - 1))
        else:
            emp = torch.zeros_like(inside)
        hit = (inside & (u[:, 2] < torch.where(emp, accept[:, 0], accept[:, 1]))).nonzero().squeeze(1)
        counts = torch.bincount(kind.index_select(0, hit), minlength=len(_KINDS)).tolist()
        retire, brk, reneg, meet, death, learn = pos.index_select(0, hit).split(counts)
        times = u.index_select(0, hit)
        t_retire, t_brk, t_reneg, t_meet, _, _ = times[:, 1].split(counts)
        thin_meet, u_meet = times[:, 2].split(counts)[3], times[:, 3].split(counts)[3]
        return StepEvents(
            death=death,
            learn=learn,
            retire=retire,
            retire_t=t_retire,
            brk=brk,
            brk_t=t_brk,
            reneg=reneg,
            reneg_t=t_reneg,
            meeters=meet,
            meet_t=t_meet,
            meet_u=thin_meet,
            dest=draw_destinations(sizes, u_meet),
        )

    def _extend(self, k: int, position: Tensor, rows: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Continue segment ``k`` past its fixed rows until it passes its last place."""
        inv = torch.full(
            (self.rows[k],), float(self.inv_log[self.start_list[k]]), dtype=torch.float64, device=self.device
        )
        zero = torch.zeros(1, dtype=torch.int64, device=self.device)
        while int(position[-1]) < self.places[k]:
            u = torch.rand(self.rows[k], 4, generator=generator, dtype=torch.float64, device=self.device)
            cum, _ = self._positions(1.0 - u[:, 0], inv, zero)
            position = torch.cat([position, position[-1] + 1 + cum])
            rows = torch.cat([rows, u])
        return position, rows


# ------------------------------------------------------------------ admission


def admit_in_time_order(
    firm: Tensor, time: Tensor, step: Tensor, start_size: Tensor, cap: int, n_out: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The size cap within a step, event by event in time order at each firm (docs/simulator.md).

    Events ``[K]`` at firms ``firm`` with times ``time`` in ``[0, 1)``: departures (``step = −1``),
    offers (``+1``) and meetings without an offer (``0``). A firm starts the step with
    ``start_size[firm]`` workers; an offer is admitted iff the firm is below ``cap`` at its time.
    Returns, in input order: ``full`` (the firm was at the cap when the event came), ``admitted``
    (offers admitted) and ``rank`` (``0, 1, …`` among the admitted offers of one firm, in time order);
    of the first ``n_out`` events only when ``n_out`` is given.

    The size path with refusals is the running sum reflected at the cap: with ``y`` the sum of
    the steps without refusals, ``x_i = y_i − max(0, max_{j≤i} (y_j − cap))`` (departures never
    empty a firm), so the whole process is one sort, cumulative sums and one cumulative maximum."""
    k = firm.numel()
    n = k if n_out is None else int(n_out)
    if k == 0 or n == 0:
        empty = torch.zeros(0, dtype=torch.bool, device=firm.device)
        return empty, empty, firm[:0].clone()
    order = torch.sort(firm.to(torch.float64) + 0.5 * time, stable=True).indices  # firm, then time
    f, s = firm.index_select(0, order), step.index_select(0, order)
    first = torch.searchsorted(f, f)  # index of the first event of each event's firm
    at_first = first == torch.arange(k, device=f.device)
    seg = torch.cumsum(at_first, 0)
    c = torch.cumsum(s, 0)
    y = start_size.index_select(0, f) + c - (c - s).index_select(0, first)  # size after the event, without refusals
    big = 2 * (k + cap) + 1
    shift = seg * big
    over = torch.cummax((y - cap) + shift, 0).values - shift
    lost = over.clamp_min(0)  # refusals so far (the reflection term)
    lost_before = torch.where(at_first, 0, lost.roll(1))
    full = (y - s - lost_before) >= cap
    admitted = (s > 0) & ~full
    a = torch.cumsum(admitted, 0)
    rank = a - (a - admitted.to(a.dtype)).index_select(0, first) - 1
    # back to input order: the sorted position of each of the first n events
    where = torch.empty_like(order).index_copy_(0, order, torch.arange(k, device=f.device))[:n]
    return full.index_select(0, where), admitted.index_select(0, where), rank.index_select(0, where)


def nth_free_slot(free: Tensor, rank: Tensor) -> Tensor:
    """For rows of a free-slot mask ``free`` ``[A, n_max]``, the index of the ``rank``-th free slot
    (0-based). The caller guarantees ``rank < free.sum(1)``."""
    cum = torch.cumsum(free.to(torch.int32), 1)
    hit = free & (cum == (rank + 1).unsqueeze(1).to(torch.int32))
    return hit.to(torch.int8).argmax(1)


# ------------------------------------------------------- decisions in time order


def time_order(firm: Tensor, time: Tensor) -> tuple[Tensor, Tensor]:
    """Events ``[K]`` sorted by firm, then time (``time`` in ``[0, 1)``): the permutation ``order`` and, for
    each sorted position, the sorted position ``first`` of its firm's first event."""
    order = torch.sort(firm.to(torch.float64) + 0.5 * time, stable=True).indices
    f = firm.index_select(0, order)
    return order, torch.searchsorted(f, f)


def count_before(first: Tensor, flag: Tensor) -> Tensor:
    """For sorted events (``first`` from :func:`time_order`) with a boolean ``flag`` each, the number of
    flagged events strictly before each one at its firm."""
    c = torch.cumsum(flag, 0)
    before = c - flag.to(c.dtype)
    return before - before.index_select(0, first)


def earlier_flagged(first: Tensor, flag: Tensor, at: Tensor) -> tuple[Tensor, Tensor]:
    """The flagged events before each of the sorted positions ``at`` ``[D]`` at its firm, as pairs
    ``(row, pos)``: ``row`` indexes ``at`` (ascending), ``pos`` is the sorted position of the earlier event."""
    first_at = first.index_select(0, at)
    span = at - first_at
    row = torch.repeat_interleave(torch.arange(at.numel(), device=at.device), span)
    start = torch.cumsum(span, 0) - span
    pos = first_at.index_select(0, row) + torch.arange(row.numel(), device=at.device) - start.index_select(0, row)
    keep = flag.index_select(0, pos).nonzero().squeeze(1)
    return row.index_select(0, keep), pos.index_select(0, keep)
