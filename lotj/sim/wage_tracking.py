"""Wages along the simulated path (MODEL.md section 5; docs/wages.md).

:class:`WageTracker` keeps the wage of every worker seat of a :class:`~lotj.sim.population.Population`
(NaN when unmatched) and resets it at the events of MODEL.md section 5. The simulator calls it twice per
step (the wiring is in docs/wages.md):

1. :meth:`WageTracker.on_decisions` at the decision state, once the step's surpluses are known and before
   anyone moves. Every employed worker with a λ shock or an outside meeting is valued, ``W_i(S; w_i)``,
   and its outcome is decided with the rules of :mod:`lotj.economy.wages`: renegotiation first (raise to
   ``U``, cut to ``U + Δ``), then, with the value after it, the meeting (poached: ``max{Δ_k, 0} + U`` at the
   poacher; counter-offer: ``max{Δ_p, 0} + U``; firm participation: ``Δ_k + U``); an unmatched worker who
   gets an offer is hired at ``U``. Each outcome resets the value to a target ``T`` at its post-event
   state ``S'`` built from the decision state, as the simulator builds its decisions: ``S`` for a
   renegotiation or a counter-offer, ``S_k⊕x`` for a hire or a poach. The new wage solves
   ``W_i(S'; w) = T`` (:func:`lotj.sim.wage_inversion.invert_wage`), all of the step's resets in one vectorised
   inversion.
2. :meth:`WageTracker.on_moves` after the step's separations and arrivals, before learning (learning
   changes no wage): the new wages take effect for the workers that are where their outcome put them. A
   poach or hire that the firm could not admit because earlier arrivals of the same step filled it (the
   simulator's cap rule) resets nothing: such an offer counts as not made (MODEL.md section 10).
   Unmatched workers get NaN.

Between events wages stay fixed. When other workers of the same firm move in the same step, the state
after the step differs from ``S'`` by those moves (an O(dt) effect of the time step, as for the
simulator's decisions).

Counters: resets by cause (:data:`RESET_CAUSES`), inversions, those not converged, and those where W was
not monotone in w on the bracket. Per seat, the cause of the wage's last reset (``initial`` for a wage
started without a history, :meth:`WageTracker.initialise`) goes into the panel's ``last_reset`` column.
With ``record=True`` every reset is also logged with the quantities the wage-ladder checks need
(:meth:`WageTracker.reset_log`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.surplus import surplus
from lotj.economy.value import ValueFunction
from lotj.economy.wages import Reset, meeting_outcome, renegotiation_outcome
from lotj.economy.worker_value import WorkerValueFunction, wage_curves
from lotj.sim.phases import WageDecisions
from lotj.sim.population import Population
from lotj.sim.wage_inversion import invert_wage

#: The events that reset a wage, by the names used in counters, summaries and the panel's ``last_reset``.
RESET_CAUSES: dict[Reset, str] = {
    Reset.HIRE: "hire",
    Reset.POACHED: "poached",
    Reset.COUNTER_OFFER: "counter_offer",
    Reset.MEETING_CUT: "meeting_cut",
    Reset.RENEG_RAISE: "reneg_raise",
    Reset.RENEG_CUT: "reneg_cut",
}


@dataclass
class _Outcomes:
    """The step's wage outcomes per seat ``[W]`` while they are decided (:meth:`WageTracker.on_decisions`):
    ``W_now`` = ``W_i(S; w_i)`` of the deciding seats (NaN elsewhere), ``value`` after the renegotiation,
    the reset ``event`` (``Reset.NONE``: none), its ``target`` value ``T``, the firm ``dest`` of the post-event
    state and ``delta_decision`` = Δ of the worker there as decided."""

    W_now: Tensor
    value: Tensor
    event: Tensor
    target: Tensor
    dest: Tensor
    delta_decision: Tensor


def _wage_matrix(pop: Population, wage: Tensor, firms: Tensor) -> Tensor:
    """Wages of the firms' slots ``[F, n_max]`` (0 on free slots)."""
    sw = pop.slot_worker[firms]
    w = wage[sw.clamp_min(0)]
    return torch.where(sw >= 0, torch.nan_to_num(w, nan=0.0), torch.zeros_like(w))


def midpoint_target(p: EconomyParams, delta: Tensor, h: Tensor) -> Tensor:
    """The value a worker is given when wages start without a history: ``U + max{Δ, 0}/2``, the middle of
    its bargaining set (docs/wages.md)."""
    return p.unemployment_coef * h + 0.5 * delta.clamp_min(0.0)


class WageTracker:
    """Wages of the simulated workers and their resets (module docstring).

    ``wf``: the worker value W; ``vf``: the (frozen) V, used to start wages without a history and for the
    panel's dynamic marginal product; ``rtol``: tolerance of the wage inversion.
    """

    def __init__(
        self,
        wf: WorkerValueFunction,
        vf: ValueFunction,
        params: EconomyParams,
        pop: Population,
        *,
        rtol: float = 1e-10,
        record: bool = False,
    ):
        self.wf, self.vf, self.p = wf, vf, params
        self.rtol = rtol
        self.record = record
        self.wage = torch.full((pop.n_workers,), math.nan, dtype=pop.h.dtype, device=pop.h.device)
        #: per seat, the Reset code of the wage's last reset (NONE: started without a history; -1: no wage)
        self.last_reset = torch.full((pop.n_workers,), -1, dtype=torch.int64, device=pop.h.device)
        self.counts = {name: 0 for name in RESET_CAUSES.values()}
        self.counts.update(inversions=0, not_converged=0, non_monotone=0, cap_refused=0)
        self._pending: dict[str, Tensor] | None = None
        self._log: list[dict[str, Tensor]] = []
        self.initialise(pop)

    # -------------------------------------------------------------------------- internals
    def reset_counts(self) -> None:
        for k in self.counts:
            self.counts[k] = 0
        self._log.clear()

    def _values_at(self, pop: Population, seats: Tensor) -> Tensor:
        """``W_i(S; w_i)`` of employed ``seats`` at their firms' current states."""
        firms, inv = torch.unique(pop.firm[seats], return_inverse=True)
        s = pop.firm_batch(firms)
        slot = pop.slot[seats]
        w = _wage_matrix(pop, self.wage, firms)
        active = torch.zeros_like(s.mask)
        active[inv, slot] = True
        with torch.no_grad():
            vals = wage_curves(self.wf, s, w, active)(w[active])
        out = torch.zeros_like(w)
        out[active] = vals.to(out.dtype)
        return out[inv, slot]

    def _solve(self, s: FirmBatch, w: Tensor, slot: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Wages that solve ``W(S'; w) = target`` for the worker in ``slot[r]`` of post-event state ``s[r]`` (one
        row per reset; ``w``: the rows' wages). Returns the wages, and when recording ``W`` at them and the
        surplus ``Δ(S', x)`` (else empty tensors)."""
        rows = torch.arange(s.batch_size, device=slot.device)
        T = torch.zeros_like(w)
        active = torch.zeros_like(s.mask)
        T[rows, slot] = target.to(T.dtype)
        active[rows, slot] = True
        with torch.no_grad():
            w_new, res = invert_wage(self.wf, self.p, s, w, T, active, rtol=self.rtol)
        self.counts["inversions"] += int(res.wage.numel())
        self.counts["not_converged"] += int((~res.converged).sum())
        self.counts["non_monotone"] += int(res.non_monotone.sum())
        wage = w_new[rows, slot]
        if not self.record:
            return wage, wage[:0], wage[:0]
        with torch.no_grad():
            W = self.wf.values(s, w_new)[rows, slot]
            delta = surplus(self.vf, self.p, s)[rows, slot]
        return wage, W, delta

    def _post_event_states(self, pop: Population, seats: Tensor, dest: Tensor) -> tuple[FirmBatch, Tensor, Tensor]:
        """One post-event state per seat: its own firm ``S`` where ``dest`` is that firm, else ``S_k⊕x`` at the
        firm ``dest`` (below the cap). Returns the states, their wages and the seat's slot."""
        s = pop.firm_batch(dest)
        w = _wage_matrix(pop, self.wage, dest)
        slot = pop.slot[seats].clone()
        moving = pop.firm[seats] != dest
        if bool(moving.any()):
            free, _ = s.first_free_slot()
            s, _ = s.add(pop.h[seats], pop.a[seats], active=moving)
            slot = torch.where(moving, free, slot)
        return s, w, slot

    def initialise(self, pop: Population) -> None:
        """Wages for employed workers without one: the wage of :func:`midpoint_target` at their firm now."""
        need = pop.employed() & torch.isnan(self.wage)
        seats = need.nonzero().squeeze(1)
        if seats.numel() == 0:
            return
        s, w, slot = self._post_event_states(pop, seats, pop.firm[seats])
        rows = torch.arange(seats.numel(), device=seats.device)
        with torch.no_grad():
            delta = surplus(self.vf, self.p, s)[rows, slot]
        self.wage[seats] = self._solve(s, w, slot, midpoint_target(self.p, delta, pop.h[seats]))[0]
        self.last_reset[seats] = int(Reset.NONE)

    # ----------------------------------------------------------------------------- hooks
    def on_decisions(self, pop: Population, d: WageDecisions) -> None:
        """Decide the step's wage outcomes at the decision state and solve their wages (before anyone moves):
        own renegotiations, then own outside meetings with the value after them, then hires from
        non-employment (MODEL.md section 5; module docstring). ``d``: the step's decisions per seat and per
        meeting (:class:`~lotj.sim.phases.WageDecisions`). The wage of a hire or poach decided after offers
        of the same firm is still solved at ``S_k⊕x``: the step's earlier arrivals, whose own wages are set in
        the same step, are left out (docs/wages.md)."""
        u = self.p.unemployment_coef * pop.h
        out = self._undecided(pop, d)
        self._renegotiations(d, u, out)
        self._outside_meetings(d, u, out)
        self._hires(d, u, out)
        self._drop_resets_within_tolerance(u, out)
        self._pending = self._solved_resets(pop, d, u, out)

    def _undecided(self, pop: Population, d: WageDecisions) -> _Outcomes:
        """The outcomes before any decision: ``W_i(S; w_i)`` of every employed seat with a λ shock or an outside
        meeting, no reset, every worker at its own firm with ``Δ(S, x_i)``."""
        deciders = torch.unique(torch.cat([d.renegotiating.nonzero().squeeze(1), d.worker[d.employed]]))
        W_now = torch.full_like(self.wage, math.nan)
        if deciders.numel():
            W_now[deciders] = self._values_at(pop, deciders)
        return _Outcomes(
            W_now=W_now,
            value=W_now.clone(),
            event=torch.full_like(pop.firm, int(Reset.NONE)),
            target=torch.full_like(self.wage, math.nan),
            dest=pop.firm.clone(),
            delta_decision=d.delta_own.clone(),
        )

    @staticmethod
    def _renegotiations(d: WageDecisions, u: Tensor, out: _Outcomes) -> None:
        """Own renegotiation (λ, MODEL.md section 5): raise to ``U``, cut to ``U + Δ``; ``Δ < 0`` separates
        (the simulator moves the worker). The value after it is the one the step's meetings see."""
        r = d.renegotiating.nonzero().squeeze(1)
        if r.numel() == 0:
            return
        ev_r, t_r = renegotiation_outcome(out.W_now[r], u[r], d.delta_own[r])
        moved = (ev_r == Reset.RENEG_RAISE) | (ev_r == Reset.RENEG_CUT)
        out.event[r] = torch.where(moved, ev_r, out.event[r])
        out.target[r] = torch.where(moved, t_r, out.target[r])
        out.value[r] = t_r

    @staticmethod
    def _outside_meetings(d: WageDecisions, u: Tensor, out: _Outcomes) -> None:
        """Own outside meetings of employed workers (Proposition 2, MODEL.md section 5), with the value after any
        renegotiation of the same step: poached (``max{Δ_k, 0} + U`` at the poacher), counter-offer
        (``max{Δ_p, 0} + U``) or firm participation (``Δ_k + U``)."""
        k = d.employed.nonzero().squeeze(1)
        if k.numel() == 0:
            return
        seats = d.worker[k]
        ev_m, t_m = meeting_outcome(out.value[seats], u[seats], d.delta_own[seats], d.delta_k[k], ~d.is_open[k])
        poached = ev_m == Reset.POACHED
        changed = poached | (ev_m == Reset.COUNTER_OFFER) | (ev_m == Reset.MEETING_CUT)
        out.event[seats] = torch.where(changed, ev_m, out.event[seats])
        # a poached worker is worth max{Δ_k, 0} + U at the poacher (meeting_outcome gives U when Δ_k < 0)
        out.target[seats] = torch.where(changed, t_m, out.target[seats])
        out.dest[seats] = torch.where(poached, d.firm[k], out.dest[seats])
        out.delta_decision[seats] = torch.where(poached, d.delta_k[k], out.delta_decision[seats])

    @staticmethod
    def _hires(d: WageDecisions, u: Tensor, out: _Outcomes) -> None:
        """Hires from non-employment at ``T = U``: the offer is made iff ``Δ(S_k⊕x, x) > 0`` at a firm below the
        cap."""
        un = (~d.employed).nonzero().squeeze(1)
        if un.numel() == 0:
            return
        hired = d.is_open[un] & (d.delta_k[un] > 0)
        seats = d.worker[un][hired]
        out.event[seats] = int(Reset.HIRE)
        out.target[seats] = u[seats]
        out.dest[seats] = d.firm[un][hired]
        out.delta_decision[seats] = d.delta_k[un][hired]

    def _drop_resets_within_tolerance(self, u: Tensor, out: _Outcomes) -> None:
        """A reset at the worker's own firm within the inversion's tolerance of the current value changes
        nothing (a worker set to an edge of its bargaining set earlier sits on it only up to that tolerance)."""
        stays = (out.event != int(Reset.HIRE)) & (out.event != int(Reset.POACHED))
        scale = torch.maximum(out.target.abs(), u)
        tiny = stays & ((out.target - out.W_now).abs() <= 100.0 * self.rtol * scale)
        out.event = torch.where(tiny, int(Reset.NONE), out.event)

    def _solved_resets(self, pop: Population, d: WageDecisions, u: Tensor, out: _Outcomes) -> dict[str, Tensor] | None:
        """The wages of the step's resets, solved in one inversion at their post-event states, with what
        :meth:`on_moves` and the reset log need (None: no reset)."""
        seats = (out.event != int(Reset.NONE)).nonzero().squeeze(1)
        if seats.numel() == 0:
            return None
        dest = out.dest[seats]
        s, w, slot = self._post_event_states(pop, seats, dest)
        wage, W_after, delta_after = self._solve(s, w, slot, out.target[seats])
        late = torch.zeros_like(d.renegotiating)
        if d.after_offer is not None:
            late[d.worker[d.after_offer]] = True
        return {
            "seat": seats,
            "event": out.event[seats],
            "target": out.target[seats],
            "dest": dest,
            "wage": wage,
            "w_before": self.wage[seats].clone(),
            "W_before": out.W_now[seats],
            "u": u[seats],
            "delta_decision": out.delta_decision[seats],
            "W_after": W_after,
            "delta_after": delta_after,
            "after_offer": late[seats] & (dest != pop.firm[seats]),
        }

    def on_moves(self, pop: Population) -> None:
        """Commit the step's new wages after its separations and arrivals (module docstring)."""
        pend, self._pending = self._pending, None
        if pend is not None:
            seat = pend["seat"]
            arrived = pop.firm[seat] == pend["dest"]
            moving = (pend["event"] == int(Reset.HIRE)) | (pend["event"] == int(Reset.POACHED))
            self.counts["cap_refused"] += int((moving & ~arrived).sum())
            ok = arrived & (pop.firm[seat] >= 0)
            self.wage[seat[ok]] = pend["wage"][ok]
            event = pend["event"][ok]
            self.last_reset[seat[ok]] = event.to(self.last_reset.dtype)
            for code, name in RESET_CAUSES.items():
                self.counts[name] += int((event == int(code)).sum())
            if self.record and bool(ok.any()):
                entry = {k: v[ok] for k, v in pend.items() if k not in ("dest", "wage")}
                entry["w_after"] = pend["wage"][ok]
                entry["J_after"] = entry["delta_after"] + entry["u"]
                self._log.append(entry)
        self.wage[~pop.employed()] = math.nan
        self.last_reset[~pop.employed()] = -1
        self.initialise(pop)  # workers employed without a wage (none after the first step)

    def on_separations(self, workers: Tensor) -> None:
        """Workers who left their firms after :meth:`on_moves` in the same step (a new match that broke
        later in the step) hold no wage."""
        self.wage.index_fill_(0, workers.to(self.wage.device), math.nan)
        self.last_reset.index_fill_(0, workers.to(self.last_reset.device), -1)

    # ---------------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict:
        """The wages of every worker seat and the counters: with the simulator's own state
        (:meth:`lotj.sim.simulator.Simulator.state_dict`), everything needed to continue the path with its
        wages. A step's pending outcomes are not saved: checkpoints are taken between steps, when none is."""
        return {
            "wage": self.wage.detach().cpu().clone(),
            "last_reset": self.last_reset.detach().cpu().clone(),
            "counts": dict(self.counts),
        }

    def load_state_dict(self, state: dict, pop: Population | None = None) -> None:
        """Restore :meth:`state_dict` (onto the tracker's device). With ``pop`` (the restored population),
        the number of seats is checked and workers employed without a wage get one (:meth:`initialise`)."""
        wage = state["wage"]
        n = pop.n_workers if pop is not None else self.wage.numel()
        if wage.numel() != n:
            raise ValueError(f"wage state has {wage.numel()} worker seats, the population {n}")
        self.wage = wage.to(device=self.wage.device, dtype=self.wage.dtype).clone()
        last = state.get("last_reset")  # absent from checkpoints written before it existed: unknown (-1)
        self.last_reset = (
            last.to(self.last_reset.device).clone() if last is not None else torch.full_like(self.last_reset, -1)
        )
        self.counts.update({k: int(v) for k, v in state["counts"].items()})
        self._pending = None
        self._log.clear()
        if pop is not None:
            self.wage[~pop.employed()] = math.nan
            self.last_reset[~pop.employed()] = -1
            self.initialise(pop)

    # --------------------------------------------------------------------------- outputs
    def reset_shares(self) -> dict[str, float]:
        """The share of each cause among the wage resets counted so far (0 when none)."""
        total = sum(self.counts[name] for name in RESET_CAUSES.values())
        return {name: (self.counts[name] / total if total else 0.0) for name in RESET_CAUSES.values()}

    def reset_log(self) -> pd.DataFrame:
        """Every recorded reset (``record=True``): cause, target ``T``, ``U``, value and wage before and after,
        ``Δ`` of the worker as decided (``Δ(S, x_i)``, or ``Δ(S_k⊕x, x)`` for a move) and at the post-event
        state (``delta_after``), and ``J = U + Δ`` there; ``after_offer``: a move decided after offers of
        the same firm earlier in the step (its ``delta_decision`` includes those workers, its
        ``delta_after`` does not)."""
        if not self._log:
            return pd.DataFrame()
        cols = {k: torch.cat([d[k] for d in self._log]).detach().cpu().numpy() for k in self._log[0]}
        frame = pd.DataFrame(cols)
        frame["cause"] = [RESET_CAUSES[Reset(int(e))] for e in frame.pop("event")]
        return frame

    def worker_columns(self, pop: Population) -> dict[str, Tensor]:
        """Per seat ``[W]``: ``wage``, ``W = W_i(S; w_i)``, the dynamic marginal product
        ``J = V(S) − V(S⊖x_i)`` and the markdown ``W/J`` (MODEL.md section 5); NaN for unmatched workers,
        and a NaN markdown where ``J ≤ 0``."""
        nan = torch.full_like(self.wage, math.nan)
        W, J = nan.clone(), nan.clone()
        firms = (pop.sizes() > 0).nonzero().squeeze(1)
        if firms.numel():
            s = pop.firm_batch(firms)
            with torch.no_grad():
                w_all = self.wf.values(s, _wage_matrix(pop, self.wage, firms))
                j_all = surplus(self.vf, self.p, s) + self.p.unemployment_coef * s.h
            seats = pop.slot_worker[firms][s.mask]
            W[seats] = w_all[s.mask].to(W.dtype)
            J[seats] = j_all[s.mask].to(J.dtype)
        markdown = torch.where(J > 0, W / J, nan)
        return {"wage": self.wage.clone(), "W": W, "J": J, "markdown": markdown}

    def panel_columns(self, frame: pd.DataFrame, pop: Population) -> pd.DataFrame:
        """``frame`` (the rows of one annual date, one per seat in seat order: ``lotj.sim.panel.panel_rows``)
        with the columns ``wage, W, J, markdown`` (Float64, null when unmatched) and ``last_reset`` (string: the
        cause of the wage's last reset, :data:`RESET_CAUSES`, or ``initial``; null when unmatched)."""
        cols = self.worker_columns(pop)
        out = frame.copy()
        for name, col in cols.items():
            values = col.detach().cpu().numpy()
            out[name] = pd.array(values, dtype="Float64")
            out.loc[pd.isna(values), name] = pd.NA
        names = {-1: pd.NA, int(Reset.NONE): "initial", **{int(k): v for k, v in RESET_CAUSES.items()}}
        codes = self.last_reset.detach().cpu().numpy()
        out["last_reset"] = pd.array(pd.Series(codes).map(names), dtype="string")
        return out


def firm_wages(pop: Population, tracker: WageTracker, firms: Tensor | None = None) -> tuple[FirmBatch, Tensor]:
    """The firm states and their slot-aligned wages ``[F, n_max]`` (0 on free slots) of ``firms`` (all when
    None), for :meth:`lotj.train.wdatamodule.WDataModule.refresh`."""
    idx = torch.arange(pop.n_firms, device=pop.z.device) if firms is None else firms
    return pop.firm_batch(idx), _wage_matrix(pop, tracker.wage, idx)


def track_wages(sim, wf: WorkerValueFunction, vf: ValueFunction, *, record: bool = False) -> WageTracker:
    """Start tracking wages in the simulator ``sim`` (a :class:`lotj.sim.simulator.Simulator`): every
    employed worker gets the wage of :func:`midpoint_target` now, and every later step resets wages at its
    events. Returns the tracker (also ``sim.wage_tracker``)."""
    tracker = WageTracker(wf, vf, sim.params, sim.pop, record=record)
    sim.wage_tracker = tracker
    return tracker
