"""The firm's chain of events under fixed decisions, and the error of V along it (MODEL.md section 4).

Hold the decisions fixed at those a value function ``V_net`` implies (hire iff Δ(S⊕x, x) > 0, poach iff
B > 0, separate iff Δ(S, x) < 0). The V equation is then linear, ``(ρ − L) V = F + δ_f ΣU + …`` with ``L``
the generator of the firm's chain of events, and the HJB residual of ``V_net`` is ``R = RHS − ρV_net``
(:func:`lotj.economy.hjb.v_residual`). The error ``e = V_net − V`` solves

    (ρ − L) e = −R          so          e(S) = −E_S[ ∫₀^∞ e^{−ρt} R(S_t) dt ]     (Feynman–Kac)

(a network whose V is too high has ``ρV > RHS``: ``R < 0``, ``e > 0``). ``L``'s events are the V
equation's own terms, at their rates:

- learning, rate γ^E: ``S → H(S)``;
- a meeting at rate ``(n+1) ω`` (none at the cap, MODEL.md section 10): with probability ``s^N`` an
  unmatched worker from χ^N, hired iff Δ(S⊕x, x) > 0; with ``s^E`` an employed worker from χ^E, poached
  iff B(S, S_p, x) > 0; ``S → S⊕x``;
- per worker, retirement and match break, rate ``δ_r + δ_m``; renegotiation and outside meetings, rate
  ``λ + ψ^E``, separating iff Δ(S, x) < 0 (the worker goes to non-employment or a poacher: either way
  the firm's side is ``S → S⊖x``);
- firm death, rate δ_f: absorbing, with the known value ΣU(x_i), so the error there is zero.

A worker with Δ ≥ 0 poached away, and a counter-offer, change nothing in the V equation: the leaving
worker is paid its whole surplus Δ (``V(S⊖x) + U + Δ = V(S)``), so they are not events of ``L``.

Cross-firm term. The poach payment ``max{Δ(S_p, x), 0}`` is paid at the worker's current firm ``S_p``;
with the decisions fixed the exact error equation has the extra source
``−(n+1) ω s^E E_{χ^E}[1{B > 0} 1{Δ(S_p, x) > 0} (e(S_p) − e(S_p⊖x))]`` (the error of the *marginal*
value at another firm). The chains leave it out: :mod:`lotj.accuracy.exact_check` measures what that
costs on the exact economies (docs/accuracy.md).

Sampling (per step, for a batch of chains): uniformisation at the state's own bound
``Λ̄(S) = δ_f + γ^E + Σ_i (δ_r + δ_m + (λ + ψ^E) 1{Δ_i < 0}) + (n+1) ω`` (meetings only below the cap),
which holds every meeting, hired or not (the separations are V's decisions at S itself, not random): the
error satisfies ``(ρ + Λ̄) e(S) = −R(S) + Σ_k r_k e(S_k) + (Λ̄ − Λ) e(S)``, so

    ê(S₀) = Σ_k W_k · (−R(S_k)) / (ρ + Λ̄(S_k)),     W_{k+1} = W_k (Λ̄(S_k) − δ_f) / (ρ + Λ̄(S_k)),

with the next state drawn with probabilities ``r_k / (Λ̄ − δ_f)`` (death is integrated out as the weight
factor, not sampled; the remainder is a fictitious self-jump). This is the closed-form integral of
``e^{−ρt}`` over each exponential holding time. Given one meeting draw set the event probabilities and
the residual's meeting terms are averages over the draws, linear in them: a fresh draw set per step keeps
the estimate unbiased (no Jensen bias from a random total rate). Each chain stops once its weight is below
``tail_weight`` and leaves the batch, so later steps evaluate V only for the chains still running (slow
chains, of small firms with few events, need several times the average number of steps); the rest,
``|Σ_{k≥K} …| ≤ W_K · sup |R| / ρ``, is reported as :attr:`ChainResult.tail_bound` with the sup over the
residuals the chain met.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.economy.hjb import MeetingDraws, learned, v_residual
from lotj.economy.meetings import batch_meetings
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.surplus import own_surplus_from_values
from lotj.economy.value import ValueFunction

#: A source of meeting draws: one fresh draw set (Δ(S_p, x_j) included) per call.
DrawSource = Callable[[torch.Generator], MeetingDraws]

__all__ = ["ChainResult", "DrawSource", "chain_errors", "event_rates"]


class _Cached:
    """A value function whose ``values_and_neighbours`` returns values computed once (the residual and the
    event rates read the same evaluation); every other call goes to the wrapped function."""

    def __init__(self, vf: ValueFunction, out: tuple[Tensor, Tensor, Tensor | None]):
        self.vf, self.out = vf, out

    def values_and_neighbours(self, s, h_new=None, a_new=None):
        return self.out

    def value(self, s: FirmBatch) -> Tensor:
        return self.vf.value(s)


def _neighbours(vf: ValueFunction, s: FirmBatch, draws: MeetingDraws | None) -> tuple[Tensor, Tensor, Tensor | None]:
    h_new = None if draws is None else torch.cat([draws.h_n, draws.h_e])
    a_new = None if draws is None else torch.cat([draws.a_n, draws.a_e])
    joint = getattr(vf, "values_and_neighbours", None)
    if joint is not None:
        return joint(s, h_new, a_new)
    plus = None if draws is None else vf.addition_values(s, h_new, a_new)
    return vf.value(s), vf.removal_values(s), plus


@dataclass
class EventRates:
    """One step's residual and event rates for a batch of states (module docstring).

    ``residual [B]``: R = RHS − ρV; ``bound [B]``: Λ̄(S); ``learn [B]``: γ^E; ``remove [B, n_max]``: the
    rate of ``S⊖x_i`` (δ_r + δ_m, plus λ + ψ^E where Δ_i < 0; 0 on padding); ``add [B, M]``: the rate of
    ``S⊕x_m`` for each drawn worker (hire or poach decisions), unmatched draws first; ``cross [B]``: the
    cross-firm source ``(n+1) ω Σ_j s^E w_j 1{B_j > 0} 1{Δ(S_p, x_j) > 0} d_j`` for the marginal errors
    ``d_j = e(S_p) − e(S_p⊖x_j)`` of the employed draws (0 without them)."""

    residual: Tensor
    bound: Tensor
    learn: Tensor
    remove: Tensor
    add: Tensor
    cross: Tensor


def event_rates(
    vf: ValueFunction,
    p: EconomyParams,
    s: FirmBatch,
    rates: MeetingRates,
    draws: MeetingDraws | None,
    marginal: Tensor | None = None,
) -> EventRates:
    """The residual of V at ``s`` and the rates of the chain's events under V's decisions (module
    docstring), from one evaluation of V and its neighbours. ``marginal [M_E]``: the marginal errors
    ``d_j`` of the employed draws, for the cross-firm source."""
    meetings = draws is not None and float(rates.omega) > 0.0
    out = _neighbours(vf, s, draws if meetings else None)
    res = v_residual(_Cached(vf, out), p, s, rates, draws if meetings else None)
    v, v_minus, v_plus = out
    dt = v.dtype
    v_minus = torch.where(s.mask, v_minus, v.unsqueeze(-1).expand_as(v_minus))
    delta = own_surplus_from_values(p, s, v, v_minus)
    maskf = s.mask.to(dt)
    quit_rate = (p.lam + p.psi_e) * ((delta < 0) & s.mask).to(dt)
    remove = (p.delta_r + p.delta_m) * maskf + quit_rate
    bound = p.delta_f + p.gamma_e + remove.sum(-1)
    if meetings:
        assert draws is not None and v_plus is not None
        met = batch_meetings(p, s, rates, v, v_plus, draws, None)
        add = met.hire_rates()
        bound = bound + met.rate * (met.prob_n.sum() + met.prob_e.sum())
        cross = torch.zeros_like(v)
        if marginal is not None and marginal.numel():
            assert draws is not None
            pays = ((met.poach_gain > 0) & (draws.delta_p > 0).unsqueeze(0)).to(dt)  # [B, M_E]
            cross = met.rate * (pays * met.prob_e * marginal.to(dt)).sum(-1)
    else:
        add = v.new_zeros(v.shape[0], 0)
        cross = torch.zeros_like(v)
    learn = torch.full_like(v, p.gamma_e)
    return EventRates(res.residual, bound, learn, remove, add, cross)


def _pick(probs: Tensor, generator: torch.Generator, coupled: bool) -> Tensor:
    """One event per row of ``probs`` (``[B, K]``, unnormalised) by inverse CDF; with ``coupled`` rows ``i``
    and ``i + B/2`` use the same uniform."""
    probs = probs.detach().cpu().to(torch.float64)
    b = probs.shape[0]
    if coupled:
        u = torch.rand(b // 2, generator=generator, dtype=torch.float64).repeat(2)
    else:
        u = torch.rand(b, generator=generator, dtype=torch.float64)
    cdf = probs.cumsum(-1)
    target = (u * cdf[:, -1]).unsqueeze(-1)
    return torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp(max=probs.shape[1] - 1)


def apply_event(
    p: EconomyParams, s: FirmBatch, pick: Tensor, n_add: int, draws: MeetingDraws | None
) -> tuple[FirmBatch, Tensor]:
    """Move each chain's firm by its picked event, in the order both chains use: ``0`` learning (``S → H(S)``),
    ``1..n_max`` the removal of that slot's worker, ``n_max + 1..n_max + n_add`` the arrival of that meeting
    draw (unmatched draws first, then employed); any other index leaves the firm as it is. Returns the new
    firms and which chains moved."""
    n_max = s.h.shape[-1]
    is_learn = pick == 0
    is_remove = (pick >= 1) & (pick <= n_max)
    is_add = (pick > n_max) & (pick <= n_max + n_add)
    if bool(is_learn.any()):
        s.h = torch.where(is_learn.unsqueeze(-1), learned(p, s).h, s.h)
    if bool(is_remove.any()):
        s = s.remove((pick - 1).clamp(0, n_max - 1), is_remove)
    if bool(is_add.any()):
        assert draws is not None
        m = (pick - 1 - n_max).clamp(0, max(n_add - 1, 0))
        s, _ = s.add(torch.cat([draws.h_n, draws.h_e])[m], torch.cat([draws.a_n, draws.a_e])[m], is_add)
    return s, is_learn | is_remove | is_add


@dataclass
class ChainResult:
    """Per-chain estimates ``error [B]`` of ``e(S₀) = V_net(S₀) − V(S₀)``, the value ``value [B]`` =
    V_net(S₀), the truncation ``tail_bound [B]`` (module docstring), the number of steps taken and how
    many events (not self-jumps) the chains saw on average."""

    error: Tensor
    value: Tensor
    tail_bound: Tensor
    steps: int
    events_per_chain: float
    final: FirmBatch | None = None  #: the chains' states when they stopped (a diagnostic)


def _store(into: FirmBatch, rows: Tensor, states: FirmBatch) -> None:
    """Write ``states`` into the rows ``rows`` of ``into`` (the chains that stopped)."""
    for k in ("h", "a", "mask"):  # z and q are the firm's types: no event changes them
        getattr(into, k)[rows] = getattr(states, k)


@torch.no_grad()
def chain_errors(
    vf: ValueFunction,
    p: EconomyParams,
    start: FirmBatch,
    rates: MeetingRates,
    draw_source: DrawSource | None,
    generator: torch.Generator,
    *,
    marginal: Tensor | None = None,
    tail_weight: float = 1e-2,
    max_steps: int = 20000,
    coupled: bool = False,
) -> ChainResult:
    """One chain of events from each state of ``start`` (module docstring), all advanced together.

    ``draw_source(generator)`` gives a fresh meeting draw set each step (None when there are no meetings).
    Random choices come from ``generator`` (CPU). ``marginal [M_E]``: marginal errors ``d_j`` of the
    employed draws (which ``draw_source`` must then give in the same order every step): the source becomes
    ``−R − cross`` (:func:`event_rates`; :mod:`lotj.accuracy.estimate` iterates on it). Returns
    :class:`ChainResult`. With ``coupled`` the batch is two halves whose chain ``i`` and ``i + B/2`` share
    their random numbers (the event is picked by inverse CDF from one uniform): common random numbers, so the
    difference of the two halves' estimates (a marginal error) has far less noise than either."""
    final = start.clone()
    b = final.batch_size
    dev, dt = final.h.device, final.h.dtype
    weight = torch.ones(b, dtype=dt, device=dev)
    error = torch.zeros(b, dtype=dt, device=dev)
    sup_r = torch.zeros(b, dtype=dt, device=dev)
    value0 = vf.value(start) if b else torch.zeros(0, dtype=dt, device=dev)
    run = torch.arange(b, device=dev)[weight >= tail_weight]  # the chains still running (coupled: whole pairs)
    s = final.clone()
    moves = 0.0
    steps = 0
    while steps < max_steps and run.numel() > 0:
        draws = draw_source(generator) if draw_source is not None else None
        if draws is not None:
            draws = draws.to(dev, dt)
        ev = event_rates(vf, p, s, rates, draws, marginal)
        source = -ev.residual - ev.cross
        w = weight[run]
        error[run] += w * source / (p.rho + ev.bound)
        sup_r[run] = torch.maximum(sup_r[run], source.abs())
        w = w * (ev.bound - p.delta_f) / (p.rho + ev.bound)
        weight[run] = w
        # next event: learning, a removal per slot, an addition per draw, or a self-jump
        alive = (ev.bound - p.delta_f).clamp_min(1e-300)
        real = torch.cat([ev.learn.unsqueeze(-1), ev.remove, ev.add], -1)
        stay = (alive - real.sum(-1)).clamp_min(0.0)
        probs = torch.cat([real, stay.unsqueeze(-1)], -1)
        pick = _pick(probs, generator, coupled).to(dev)
        s, moved = apply_event(p, s, pick, ev.add.shape[-1], draws)
        moves += float(moved.to(dt).sum()) / b
        steps += 1
        keep = w >= tail_weight
        if coupled:  # a pair runs while either of its chains does, so the halves stay aligned
            half = keep.numel() // 2
            keep = (keep[:half] | keep[half:]).repeat(2)
        if not bool(keep.all()):
            _store(final, run[~keep], s.index(~keep))
            run, s = run[keep], s.index(keep)
    _store(final, run, s)
    tail = weight * sup_r / p.rho
    return ChainResult(error, value0, tail, steps, moves, final)
