"""The worker's chain of events under fixed decisions and regimes, and the error of W along it (MODEL.md section 5).

Hold V's decisions fixed (hire iff Δ(S⊕x, x) > 0, poach iff B > 0, a coworker leaves iff Δ_j < 0 or it is
poached: ``D_j``) and the own-reset *regimes* of the network's ``W_net`` (where its value lies among the
thresholds ``U``, ``U + Δ`` and ``max{Δ_p, 0} + U``: which renegotiations and meetings reset the wage). The
W equation is then linear in W, and the residual of ``W_net`` (:func:`lotj.economy.wages.w_residual`, the one
the W stage trains on), ``R = RHS − ρW_net``, is the source of the error ``e_W = W_net − W``:

    (ρ − L_W) e_W = −R          so          e_W(S, w) = −E_{S,w}[ ∫₀^τ e^{−ρt} R(S_t, w) dt ],

``L_W`` the generator of one worker's chain of events, with its own wage ``w`` fixed, killed at ``τ``, the
first event that ends its contract. ``L_W``'s events are the W equation's own terms, at their rates:

- learning, rate γ^E: ``S → H(S)`` (the wage unchanged);
- a coworker ``j`` leaves, rate ``δ_r + δ_m + λ 1{Δ_j < 0} + ψ^E E_Π D_j``: ``S → S⊖x_j``;
- a coworker arrives, rate ``(n+1) ω [s^N χ^N 1{hire} + s^E χ^E 1{poach}]`` per drawn worker: ``S → S⊕x``;
- the contract ends (absorbing, at a value known exactly, so the error there is zero): firm death and
  match break (``U``), retirement (0), a renegotiation that resets the wage (``U`` or ``U + Δ``: rate λ when
  ``W_net`` is outside the bargaining set or ``Δ < 0``), an outside meeting that resets it (rate ψ^E times
  the share of poachers whose meeting moves the worker, counters or cuts: the targets ``Δ_k + U``,
  ``max{Δ_p, 0} + U`` and ``U`` are V's, whatever W is). The value after a poach is the target at the new
  employer, not a W of another state: there is no cross-firm term here (the W twin of the V equation's
  needs none).

Because the regimes are ``W_net``'s, the target is ``W_net`` minus the W *of those regimes*, which differs
from ``W_net`` minus the exact W only where the two lie on different sides of a threshold (a band of the
width of the error), as the V estimate's decisions do.

Sampling (per step, for a batch of chains, each following one worker, ``slot[b]`` of ``S_b``, whose slot
never changes: removals free slots, additions fill the first free one). Uniformisation at the state's bound

    Λ̄ = a + γ^E + Σ_{j≠i} (δ_r + δ_m + λ 1{Δ_j < 0} + ψ^E) + (n+1) ω 1{n < n_max} + ψ^E,

``a = δ_f + δ_m + δ_r + λ 1{the renegotiation resets}`` the part of the killing that does not depend on the
meeting draws, integrated out as a weight factor as the V chains integrate out firm death:

    ê(S₀, w) = Σ_k W_k (−R_k) / (ρ + Λ̄_k),     W_{k+1} = W_k (Λ̄_k − a_k) / (ρ + Λ̄_k),

and the next event drawn with probability proportional to its rate among ``Λ̄ − a``: a coworker leaving
(``ψ^E E_Π D_j`` averaged over the step's poachers), an arrival (the step's meeting draws), learning, the
outside meeting that resets the wage (``ψ^E`` times the share of the step's poachers: the chain dies), or a
fictitious self-jump (the rest). With fresh draws every step both the residual and the event probabilities
are linear in the draws and the weights do not depend on them, so the estimate is unbiased. With exact sums
(every distinct worker and poacher state with its probability weight) the step's expectations are exact. A chain stops
when it dies or its weight falls below ``tail_weight``; the rest, ``|Σ_{k≥K} …| ≤ W_K sup|R| / (ρ + δ_f + δ_m +
δ_r)``, is :attr:`WorkerChainResult.tail_bound` with the sup over the residuals the chain met.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lotj.accuracy.chains import DrawSource, _pick, apply_event
from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.value import ValueFunction
from lotj.economy.wages import (
    Reset,
    meeting_outcome,
    poacher_mean,
    renegotiation_outcome,
    w_residuals_from_terms,
    wage_v_terms,
)
from lotj.economy.worker_value import WorkerValueFunction

#: A source of poachers from Π: a fresh set per call (``None`` when ψ^E = 0), or ``(poachers, weight)`` with
#: their probabilities under Π (exact sums, :func:`lotj.sim.meeting_draws.exact_poachers`).
PoacherSource = Callable[[torch.Generator], FirmBatch | tuple[FirmBatch, Tensor] | None]

__all__ = ["PoacherSource", "WorkerChainResult", "poacher_parts", "worker_chain_errors", "worker_step"]


def poacher_parts(poachers: FirmBatch | tuple[FirmBatch, Tensor] | None) -> tuple[FirmBatch | None, Tensor | None]:
    """A :data:`PoacherSource`'s set as ``(firms, weight)``: ``weight`` None for Monte Carlo poachers."""
    return poachers if isinstance(poachers, tuple) else (poachers, None)


@dataclass
class WorkerStep:
    """One step's residual and event rates of a batch of tracked workers (module docstring), each ``[B]``
    unless stated: ``residual`` R at the tracked slot, ``value`` W_net, ``u`` U; ``bound`` Λ̄; ``kill_fixed``
    ``a``; ``kill_meeting`` ψ^E times the share of poachers whose meeting resets the wage; ``remove [B, n_max]``
    the coworkers' leaving rates (0 at the tracked slot and on padding); ``add [B, M]`` the arrival rates."""

    residual: Tensor
    value: Tensor
    u: Tensor
    bound: Tensor
    kill_fixed: Tensor
    kill_meeting: Tensor
    remove: Tensor
    add: Tensor


def _wage_matrix(s: FirmBatch, slot: Tensor, wage: Tensor) -> Tensor:
    w = torch.zeros_like(s.h)
    rows = torch.arange(s.batch_size, device=s.h.device)
    w[rows, slot] = wage.to(w.dtype)
    return w


def worker_step(
    wf: WorkerValueFunction,
    vf: ValueFunction,
    p: EconomyParams,
    s: FirmBatch,
    slot: Tensor,
    wage: Tensor,
    rates: MeetingRates,
    draws,
    poachers: FirmBatch | None,
    poacher_weight: Tensor | None = None,
) -> WorkerStep:
    """The W residual of the tracked workers and the rates of their chains' events (module docstring), from
    one evaluation of the W residual (:func:`lotj.economy.wages.w_residuals_from_terms`). ``poacher_weight``:
    the poachers' probabilities under Π (exact sums), None for Monte Carlo poachers."""
    meets = draws is not None and float(rates.omega) > 0.0
    psi = p.psi_e > 0
    terms = wage_v_terms(
        vf,
        p,
        s,
        rates,
        draws if meets else None,
        poachers if psi else None,
        poacher_weight=poacher_weight if psi else None,
    )
    w = _wage_matrix(s, slot, wage)
    (res,), W = w_residuals_from_terms(wf, p, s, w, [terms])
    rows = torch.arange(s.batch_size, device=s.h.device)
    dt = W.dtype
    r_i, W_i = res[rows, slot], W[rows, slot]
    u_i, d_i = terms.u[rows, slot], terms.delta[rows, slot]
    reneg, _ = renegotiation_outcome(W_i, u_i, d_i)
    kill_fixed = p.delta_f + p.delta_m + p.delta_r + p.lam * (reneg != int(Reset.NONE)).to(dt)
    if terms.delta_p.shape[-1] and p.psi_e > 0:
        event, _ = meeting_outcome(
            W_i.unsqueeze(-1), u_i.unsqueeze(-1), d_i.unsqueeze(-1), terms.delta_p[rows, slot], terms.no_offer
        )
        kill_meeting = p.psi_e * poacher_mean((event != int(Reset.NONE)).to(dt), terms.poacher_weight)
    else:
        kill_meeting = torch.zeros_like(W_i)
    others = s.mask.clone()
    others[rows, slot] = False
    base = p.delta_r + p.delta_m + p.lam * (terms.delta < 0).to(dt)
    remove = torch.where(others, base + p.psi_e * terms.leave_prob, torch.zeros_like(base))
    remove_bound = torch.where(others, base + p.psi_e, torch.zeros_like(base)).sum(-1)
    add = terms.hire_rate
    below = (s.size() < p.n_max).to(dt)
    arrive_bound = (s.size().to(dt) + 1.0) * float(rates.omega) * below if meets else torch.zeros_like(W_i)
    bound = kill_fixed + p.gamma_e + remove_bound + arrive_bound + p.psi_e
    return WorkerStep(r_i, W_i, u_i, bound, kill_fixed, kill_meeting, remove, add)


@dataclass
class WorkerChainResult:
    """Per-chain estimates ``error [B]`` of ``e_W(S₀, w₀) = W_net − W`` at the tracked worker, ``value [B]`` =
    W_net(S₀, w₀), ``u [B]`` = U of the worker, the truncation ``tail_bound [B]``, the steps taken and the
    events (coworker moves and learning, not self-jumps) per chain."""

    error: Tensor
    value: Tensor
    u: Tensor
    tail_bound: Tensor
    steps: int
    events_per_chain: float

    @property
    def scale(self) -> Tensor:
        """``max{|W_net|, U}``: the scale of the W validation (:func:`lotj.economy.wages.worker_residual_scale`)."""
        return torch.maximum(self.value.abs(), self.u)


@torch.no_grad()
def worker_chain_errors(
    wf: WorkerValueFunction,
    vf: ValueFunction,
    p: EconomyParams,
    start: FirmBatch,
    slot: Tensor,
    wage: Tensor,
    rates: MeetingRates,
    draw_source: DrawSource | None,
    poacher_source: PoacherSource | None,
    generator: torch.Generator,
    *,
    tail_weight: float = 1e-2,
    max_steps: int = 20000,
) -> WorkerChainResult:
    """One chain of events from each tracked worker ``(start[b], slot[b], wage[b])`` (module docstring); the
    live chains advance together, one evaluation of the W residual per step. ``draw_source(generator)``:
    fresh meeting draws each step (None: no meetings); ``poacher_source(generator)``: fresh poachers from Π
    (None when ψ^E = 0). Random choices come from ``generator`` (CPU)."""
    b = start.batch_size
    dev, dt = start.h.device, start.h.dtype
    error = torch.zeros(b, dtype=dt, device=dev)
    weight = torch.ones(b, dtype=dt, device=dev)
    sup_r = torch.zeros(b, dtype=dt, device=dev)
    value0 = torch.zeros(b, dtype=dt, device=dev)
    u0 = torch.zeros(b, dtype=dt, device=dev)
    live = torch.arange(b, device=dev)
    s, sl, wg = start.clone(), slot.to(dev), wage.to(dev, dt)
    n_max = start.n_max
    kill_floor = p.rho + p.delta_f + p.delta_m + p.delta_r
    moves, steps = 0.0, 0
    while steps < max_steps and live.numel():
        draws = draw_source(generator) if draw_source is not None else None
        if draws is not None:
            draws = draws.to(dev, dt)
        poachers, poacher_weight = poacher_parts(poacher_source(generator) if poacher_source is not None else None)
        if poacher_weight is not None:  # exact sums: every poacher state with its weight under Π
            poacher_weight = poacher_weight.to(dev, dt)
        if poachers is not None:
            poachers = poachers.to(dev)
            poachers = FirmBatch(
                poachers.z.to(dt), poachers.q.to(dt), poachers.h.to(dt), poachers.a.to(dt), poachers.mask
            )
        ev = worker_step(wf, vf, p, s, sl, wg, rates, draws, poachers, poacher_weight)
        if steps == 0:
            value0, u0 = ev.value.clone(), ev.u.clone()
        wl = weight[live]
        error[live] += wl * (-ev.residual) / (p.rho + ev.bound)
        sup_r[live] = torch.maximum(sup_r[live], ev.residual.abs())
        wl = wl * (ev.bound - ev.kill_fixed) / (p.rho + ev.bound)
        # next event: learning, a coworker leaving, an arrival, the contract reset by a meeting, or a self-jump
        alive = ev.bound - ev.kill_fixed
        learn = torch.full_like(alive, p.gamma_e)
        real = torch.cat([learn.unsqueeze(-1), ev.remove, ev.add, ev.kill_meeting.unsqueeze(-1)], -1)
        stay = (alive - real.sum(-1)).clamp_min(0.0)
        pick = _pick(torch.cat([real, stay.unsqueeze(-1)], -1), generator, False).to(dev)
        n_add = ev.add.shape[-1]
        dies = pick == n_max + n_add + 1
        s, moved = apply_event(p, s, pick, n_add, draws)
        moves += float(moved.to(dt).sum()) / b
        wl = torch.where(dies, torch.zeros_like(wl), wl)
        weight[live] = wl
        keep = wl >= tail_weight
        if not bool(keep.all()):
            live, s, sl, wg = live[keep], s.index(keep.nonzero().squeeze(-1)), sl[keep], wg[keep]
        steps += 1
    tail = weight * sup_r / kill_floor
    return WorkerChainResult(error, value0, u0, tail, steps, moves)
