"""Wage bargaining and the worker-value residual (MODEL.md section 5).

Worker ``i`` of firm ``S`` has value ``W_i(S)`` (the present value of its wages). Its HJB
(MODEL.md section 5) is

    ρ W_i = w_i + γ^E (W_i(H(S)) − W_i) + δ_f (U_i − W_i)
          + Σ_{j≠i} [ (δ_r + δ_m) + λ 1{Δ_j < 0} + ψ^E E_Π D_j(S_p) ] (W_i(S⊖x_j) − W_i)
          + (n+1) ω s^E E_{χ^E} 1{B(S, S_p, x_m) > 0} (W_i(S⊕x_m) − W_i)
          + (n+1) ω s^N E_{χ^N} 1{Δ(S⊕x_m, x_m) > 0} (W_i(S⊕x_m) − W_i)
          + δ_m (U_i − W_i) − δ_r W_i + λ Q_i(S) + ψ^E E_Π P_i(S, S_p)

with ``D_j(S_p) = 1{Δ(S, x_j) < 0 or B(S_p, S, x_j) > 0}``. The three coworker-departure rows of
MODEL.md section 5 (retirement and match break; quits at ``Δ < 0``; poached away) share the
neighbour ``S⊖x_j`` and are summed with their rates.

Bargaining outcomes (:func:`renegotiation_outcome`, :func:`meeting_outcome`) return the event and
the worker's value right after it (the *target* ``T``); the gains are ``Q_i = T − W_i`` and
``P_i = T − W_i``, so the residual and the wage resets of the simulator use one set of rules.

Settled details (MODEL.md section 10) applied here:

- A firm at the size cap ``n_max`` makes no offer: its hire terms are zero, and a poacher at the cap
  neither poaches nor triggers a counter-offer (``P = 0`` when ``Δ_k ≥ 0``); a worker with ``Δ_k < 0``
  still separates at that meeting, into non-employment (``P = U − W``).
- A poacher drawn equal to the worker's own firm is a void meeting: no offer is made, as by a poacher
  at the cap (so a worker with ``Δ < 0`` still separates, which keeps W consistent with V, whose quit
  term ``(λ + ψ^E) max{−Δ, 0}`` does not depend on the poacher). It needs firm identities (indices into
  the simulated economy) for the states and the draws; without them the residual treats the draws as
  coming from a continuum of firms, in which the own firm has measure zero (a snapshot of ``N_f``
  firms draws it with probability of order ``1/N_f``).
- No meetings (``ψ^N = ψ^E = 0``): ``ω = s^N = s^E = 0``.

Expectations are Monte Carlo means over draws shared by a batch: ``M_N`` draws from χ^N and ``M_E``
draws from χ^E (with ``Δ(S_p, x_m)`` at their own firm), the :class:`lotj.economy.hjb.MeetingDraws` of
the V residual, and ``M_Π`` poachers from Π; or, on a discrete economy, exact sums: every distinct
worker and poacher once with its probability weight (the draws' ``weight_n``, ``weight_e`` and the
poachers' ``poacher_weight``; :func:`poacher_mean` is ``E_Π``). Everything that depends on V only is computed once per
batch, without gradient (V is frozen), by :func:`wage_v_terms`; :func:`w_residual_from_terms` adds W.

:func:`frozen_state_value` solves the equation with every neighbour difference set to zero: the exact W
of a lone worker without learning or hires, and the oracle of the entry wage ``b h − ψ^E E_Π[min{Δ_p⁺, Δ_k}]``
(docs/wages.md, "Negative entry wages"). :func:`initial_wage_range` gives the training wages, optionally
covering the whole bargaining set.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.economy.hjb import MeetingDraws, learned
from lotj.economy.meetings import batch_meetings, void_meetings
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.surplus import hire_surplus_from_values, own_surplus_from_values, poach_gain
from lotj.economy.technology import production_from_pool
from lotj.economy.value import ValueFunction
from lotj.economy.worker_value import WorkerValueFunction


class Reset(IntEnum):
    """What an event does to a worker's contract (MODEL.md section 5); the target T is the worker's value after it."""

    NONE = 0  #: nothing happens (T = W)
    SEPARATE = 1  #: the match ends, the worker becomes unmatched (T = U)
    POACHED = 2  #: the worker moves to the poacher (T = max{Δ_k, 0} + U, at S_p⊕x_i)
    COUNTER_OFFER = 3  #: the firm matches the outside offer (T = max{Δ_p, 0} + U, at S)
    MEETING_CUT = 4  #: at a meeting, the firm's participation binds (T = Δ_k + U, at S)
    RENEG_RAISE = 5  #: at renegotiation, W < U (T = U)
    RENEG_CUT = 6  #: at renegotiation, W > U + Δ (T = U + Δ)
    HIRE = 7  #: hired from non-employment (T = U, at S⊕x)


def renegotiation_outcome(W: Tensor, U: Tensor, delta: Tensor) -> tuple[Tensor, Tensor]:
    """Own renegotiation shock (rate λ; MODEL.md section 5, A4 and A6): ``(event, T)``, broadcast shapes.

    ``Δ < 0``: separation, T = U. Otherwise the value moves to the nearest edge of the bargaining set
    ``[U, U + Δ]``: T = U if W < U (raise), T = U + Δ if W > U + Δ (cut), T = W inside.
    """
    W, U, delta = torch.broadcast_tensors(W, U, delta)
    sep = delta < 0
    raise_ = ~sep & (W < U)
    cut = ~sep & ~raise_ & (W > U + delta)
    event = torch.full(W.shape, int(Reset.NONE), dtype=torch.long, device=W.device)
    event = torch.where(sep, int(Reset.SEPARATE), event)
    event = torch.where(raise_, int(Reset.RENEG_RAISE), event)
    event = torch.where(cut, int(Reset.RENEG_CUT), event)
    target = torch.where(sep | raise_, U, torch.where(cut, U + delta, W))
    return event, target


def renegotiation_gain(W: Tensor, U: Tensor, delta: Tensor) -> Tensor:
    """``Q_i(S)`` (MODEL.md section 5), four regimes: ``U − W`` if ``Δ < 0``; else ``clip(W, U, U + Δ) − W``."""
    return renegotiation_outcome(W, U, delta)[1] - W


def meeting_outcome(
    W: Tensor, U: Tensor, delta_k: Tensor, delta_p: Tensor, poacher_full: Tensor | bool = False
) -> tuple[Tensor, Tensor]:
    """The worker's own outside meeting (rate ψ^E; MODEL.md section 5, Proposition 2, and section 10):
    ``(event, T)`` with ``Δ_k = Δ(S, x_i)``, ``Δ_p = Δ(S_p⊕x_i, x_i)``; all arguments broadcast.

    In the order of the table of MODEL.md section 5:

    1. ``Δ_k < 0``: the match ends; the worker goes to the poacher if ``Δ_p > 0`` and the poacher is
       below the cap (POACHED), else to non-employment (SEPARATE); T = U either way.
    2. a poacher at the cap (``poacher_full``) makes no offer: nothing happens (T = W).
    3. ``Δ_k < Δ_p``: POACHED, paid its full surplus at k: T = Δ_k + U.
    4. ``W > Δ_k + U``: the firm's participation binds: MEETING_CUT, T = Δ_k + U.
    5. ``W < max{Δ_p, 0} + U``: the outside offer is competitive: COUNTER_OFFER, T = max{Δ_p, 0} + U.
    6. otherwise nothing happens (T = W).
    """
    W, U, delta_k, delta_p = torch.broadcast_tensors(W, U, delta_k, delta_p)
    full = torch.as_tensor(poacher_full, device=W.device).expand(W.shape)
    neg = delta_k < 0
    to_poacher_neg = neg & (delta_p > 0) & ~full
    open_ = ~neg & ~full
    moves = open_ & (delta_k < delta_p)
    cut = open_ & ~moves & (W > delta_k + U)
    outside = delta_p.clamp_min(0.0) + U
    counter = open_ & ~moves & ~cut & (W < outside)

    event = torch.full(W.shape, int(Reset.NONE), dtype=torch.long, device=W.device)
    event = torch.where(neg, int(Reset.SEPARATE), event)
    event = torch.where(to_poacher_neg | moves, int(Reset.POACHED), event)
    event = torch.where(cut, int(Reset.MEETING_CUT), event)
    event = torch.where(counter, int(Reset.COUNTER_OFFER), event)
    target = torch.where(neg, U, torch.where(moves | cut, delta_k + U, torch.where(counter, outside, W)))
    return event, target


def outside_meeting_gain(
    W: Tensor, U: Tensor, delta_k: Tensor, delta_p: Tensor, poacher_full: Tensor | bool = False
) -> Tensor:
    """``P_i(S, S_p)`` (MODEL.md section 5, every row of the table; cap rule of section 10): ``T − W``
    with T from :func:`meeting_outcome`."""
    return meeting_outcome(W, U, delta_k, delta_p, poacher_full)[1] - W


def poached_target(U: Tensor, delta_k: Tensor) -> Tensor:
    """Value of a poached worker at the poacher's ``S_p⊕x_i`` (MODEL.md section 5): ``max{Δ_k, 0} + U``."""
    return delta_k.clamp_min(0.0) + U


def hire_target(U: Tensor) -> Tensor:
    """Value of a worker hired from non-employment, at ``S⊕x`` (MODEL.md section 5): ``U`` (take it or leave it)."""
    return U


def leave_indicator(delta_j: Tensor, hire_surplus_p: Tensor, poacher_full: Tensor | bool = False) -> Tensor:
    """``D_j(S_p) = 1{Δ(S, x_j) < 0 or B(S_p, S, x_j) > 0}`` (MODEL.md section 5), as a boolean.

    ``hire_surplus_p`` is ``Δ(S_p⊕x_j, x_j)``; a poacher at the cap makes no offer (B counts as 0,
    MODEL.md section 10), but ``Δ_j < 0`` still separates."""
    b = poach_gain(hire_surplus_p, delta_j)
    full = torch.as_tensor(poacher_full, device=b.device)
    return (delta_j < 0) | ((b > 0) & ~full)


# ------------------------------------------------------------------------------- the residual


def poacher_mean(x: Tensor, weight: Tensor | None = None) -> Tensor:
    """``E_Π`` over the last axis of ``x`` (``[..., M_Π]``, one entry per poacher; MODEL.md section 5, the terms
    ``ψ^E E_Π D_j(S_p)`` and ``ψ^E E_Π P_i(S, S_p)``): the plain mean over Monte Carlo poachers (``weight``
    None), else ``Σ_p weight_p x_p`` with ``weight`` ``[M_Π]`` the poachers' probabilities under Π (exact sums,
    :func:`lotj.sim.meeting_draws.exact_poachers`; they sum to one)."""
    if weight is None:
        return x.mean(-1)
    return (x * weight.to(x.dtype)).sum(-1)


@dataclass
class WageVTerms:
    """Everything the W residual of a batch needs from the frozen V (no W, no gradient).

    Shapes: ``u``, ``delta``, ``leave_prob``: ``[B, n_max]``; ``h_new, a_new``: ``[M]`` the drawn new
    workers (the χ^N draws, then the χ^E draws); ``hire_rate``: ``[B, M]`` the rate at which firm k hires
    each drawn worker, ``(n+1) ω s^N w_m 1{Δ(S⊕x,x) > 0}`` or ``(n+1) ω s^E w_m 1{B(S,S_p,x) > 0}`` with
    ``w_m`` the draw's weight (``1/M`` for Monte Carlo draws; zero at the cap and for void meetings), from
    :func:`lotj.economy.meetings.batch_meetings`, the V equation's meetings;
    ``delta_p``: ``[B, n_max, M_Π]`` ``Δ(S_p⊕x_i, x_i)``; ``no_offer``: ``[B, M_Π]``
    the poacher makes no offer (at the cap, or the worker's own firm: a void meeting);
    ``s_learn``: the learning neighbour ``H(S)``; ``poacher_weight``: ``[M_Π]`` the poachers' probabilities
    under Π (exact sums), None for equally weighted Monte Carlo poachers (:func:`poacher_mean`).
    """

    u: Tensor
    delta: Tensor
    h_new: Tensor
    a_new: Tensor
    hire_rate: Tensor
    leave_prob: Tensor
    delta_p: Tensor
    no_offer: Tensor
    s_learn: FirmBatch
    poacher_weight: Tensor | None = None


def at_cap(p: EconomyParams, s: FirmBatch) -> Tensor:
    """Firms at the size cap (MODEL.md section 10), ``[B]``."""
    return s.size() >= p.n_max


def poacher_hire_surplus(vf: ValueFunction, p: EconomyParams, s: FirmBatch, poachers: FirmBatch) -> Tensor:
    """``Δ(S_p⊕x_i, x_i)`` for every worker slot ``i`` of every firm of ``s`` and every poacher ``p``:
    ``[B, n_max, M_Π]`` (0 on padding), from one V addition pass per poacher over the batch's real workers."""
    b, n = s.h.shape
    m = poachers.batch_size
    out = s.h.new_zeros(b, n, m)
    if m == 0 or not bool(s.mask.any()):
        return out
    h_real, a_real = s.h[s.mask], s.a[s.mask]
    d = hire_surplus_from_values(p, vf.value(poachers), vf.addition_values(poachers, h_real, a_real), h_real)
    return out.index_put((s.mask,), d.T.to(out.dtype))


def wage_v_terms(
    vf: ValueFunction,
    p: EconomyParams,
    s: FirmBatch,
    rates: MeetingRates,
    draws: MeetingDraws | None,
    poachers: FirmBatch | None,
    firm_id: Tensor | None = None,
    poacher_id: Tensor | None = None,
    poacher_weight: Tensor | None = None,
) -> WageVTerms:
    """The V-side inputs of the W residual for the batch ``s`` (V is frozen: computed without gradient).

    ``draws``: χ^N and χ^E draws (:class:`lotj.economy.hjb.MeetingDraws`; may be None when ω = 0);
    ``poachers``: ``M_Π`` firms from Π (may be None when ψ^E = 0). ``firm_id`` ``[B]``, ``draws.firm_e``
    and ``poacher_id`` ``[M_Π]`` (optional) identify firms of the simulated economy: a χ^E draw from the
    firm itself, or a poacher equal to the worker's own firm, is a void meeting (MODEL.md section 10):
    no offer is made, exactly as by a poacher at the cap (the V residual treats it the same way).
    ``poacher_weight`` ``[M_Π]``: the poachers' probabilities under Π (exact sums; :func:`poacher_mean`), None
    for Monte Carlo poachers.
    """
    b, n = s.h.shape
    dev, dt = s.h.device, s.h.dtype
    if p.psi_e > 0 and (poachers is None or poachers.batch_size == 0):
        raise ValueError("psi_e > 0 needs at least one poacher draw from Π for E_Π D_j and E_Π P_i")
    with torch.no_grad():
        v = vf.value(s)
        delta = own_surplus_from_values(p, s, v, vf.removal_values(s))
        u = p.unemployment_coef * s.h
        omega = float(rates.omega)
        if draws is not None and omega > 0:
            h_new, a_new = torch.cat([draws.h_n, draws.h_e]), torch.cat([draws.a_n, draws.a_e])
        else:
            h_new, a_new = s.h.new_zeros(0), s.h.new_zeros(0)
        if h_new.numel():
            # hire an unmatched worker iff Δ(S⊕x, x) > 0; poach iff B(S, S_p, x) > 0 (MODEL.md section 4), with
            # the draws weighted and void meetings dropped exactly as in the V equation
            met = batch_meetings(p, s, rates, v, vf.addition_values(s, h_new, a_new), draws, firm_id)
            hire_rate = met.hire_rates()
        else:
            hire_rate = s.h.new_zeros(b, 0)
        if poachers is not None and poachers.batch_size and p.psi_e > 0:
            delta_p = poacher_hire_surplus(vf, p, s, poachers)
            no_offer = at_cap(p, poachers).unsqueeze(0).expand(b, -1)
            own_firm = void_meetings(firm_id, poacher_id)  # the poacher is the worker's own firm
            if own_firm is not None:
                no_offer = no_offer | own_firm
            leave = leave_indicator(delta.unsqueeze(-1), delta_p, no_offer.unsqueeze(1))
            leave_prob = poacher_mean(leave.to(dt), poacher_weight)
        else:  # ψ^E = 0: the poaching terms have weight zero
            delta_p = s.h.new_zeros(b, n, 0)
            no_offer = torch.zeros(b, 0, dtype=torch.bool, device=dev)
            leave_prob = torch.zeros_like(delta)
            poacher_weight = None
        s_learn = learned(p, s)
    return WageVTerms(u, delta, h_new, a_new, hire_rate, leave_prob, delta_p, no_offer, s_learn, poacher_weight)


def frozen_state_value(
    p: EconomyParams,
    w: Tensor,
    u: Tensor,
    delta: Tensor,
    delta_p: Tensor,
    no_offer: Tensor,
    iterations: int = 120,
    poacher_weight: Tensor | None = None,
) -> Tensor:
    """The worker value when the firm's state changes only through the worker's own events (MODEL.md
    section 5 with every neighbour difference ``W_i(S') − W_i(S)`` set to zero): the root of

        ρ W = w + (δ_f + δ_m)(U − W) − δ_r W + λ Q(W) + ψ^E E_Π P(W, Δ_p),

    the mean over the poachers of ``delta_p`` (``[..., M_Π]``, with ``no_offer`` broadcasting against it),
    weighted by ``poacher_weight`` when given (:func:`poacher_mean`).
    For a lone worker whose ``h`` never changes and whose firm never hires (``γ^E = 0``, ``ω = 0``) this is the
    exact W, a closed form piecewise linear in ``w``; in general it is the oracle-informed first guess of W
    (the option value of the outside offers, which moves a hire's wage far from ``b h``, is all in it).

    The right-hand side minus ``ρW`` decreases in W with slope at most ``−r̄`` (Q and P have slopes 0 or
    −1), so the root is unique: it is found by bisection on a bracket that provably holds it."""
    rbar = p.outflow_rate
    w, u, delta = torch.broadcast_tensors(w, u, delta)

    def g(W: Tensor) -> Tensor:
        rhs = w + (p.delta_f + p.delta_m) * (u - W) - p.delta_r * W + p.lam * renegotiation_gain(W, u, delta)
        if delta_p.shape[-1] and p.psi_e > 0:
            gain = outside_meeting_gain(W.unsqueeze(-1), u.unsqueeze(-1), delta.unsqueeze(-1), delta_p, no_offer)
            rhs = rhs + p.psi_e * poacher_mean(gain, poacher_weight)
        return rhs - p.rho * W

    # g(U + A) < 0 < g(U − A) for A > (|w| + (ρ + δ_r) U)/r̄ (every target lies between U − A and U + A)
    span = (w.abs() + (p.rho + p.delta_r) * u.abs()) / rbar + delta.abs() + 1.0
    if delta_p.shape[-1]:
        span = span + delta_p.abs().amax(-1)
    lo, hi = u - span, u + span
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        pos = g(mid) > 0
        lo, hi = torch.where(pos, mid, lo), torch.where(pos, hi, mid)
    return 0.5 * (lo + hi)


def frozen_state_values_from_terms(p: EconomyParams, w: Tensor, terms: WageVTerms) -> Tensor:
    """:func:`frozen_state_value` of every worker of a batch from its V terms (:func:`wage_v_terms`),
    ``[B, n_max]`` (any finite value on padding)."""
    return frozen_state_value(
        p, w, terms.u, terms.delta, terms.delta_p, terms.no_offer.unsqueeze(1), poacher_weight=terms.poacher_weight
    )


def w_residuals_from_terms(
    wf: WorkerValueFunction, p: EconomyParams, s: FirmBatch, w: Tensor, term_sets: list[WageVTerms]
) -> tuple[list[Tensor], Tensor]:
    """The W residual (MODEL.md section 5) of every worker of the batch for each set of V terms (one per
    independent draw set, all for the same states ``s``): ``([R_1, ...], W)``, each ``[B, n_max]``,
    ``R = right-hand side − ρ W`` and 0 on padding slots.

    The parts that do not depend on the draws (W at S, H(S) and every S⊖x_j; Q) are computed once; the
    additions of every set share one call of ``wf.addition_values``. Gradients flow into ``wf`` only.
    """
    n = s.n_max
    mask = s.mask
    W = wf.values(s, w)
    first = term_sets[0]
    u, delta = first.u, first.delta
    rhs = w + (p.delta_f + p.delta_m) * (u - W) - p.delta_r * W + p.lam * renegotiation_gain(W, u, delta)
    if p.gamma_e != 0.0:
        rhs = rhs + p.gamma_e * (wf.values(first.s_learn, w) - W)
    rhs_sets = [rhs] * len(term_sets)

    # coworkers leave (retirement and match break, quits at Δ_j < 0, poached away: D_j): neighbour S⊖x_j
    if n > 1:
        eye = torch.eye(n, dtype=torch.bool, device=s.h.device)
        pair = mask.unsqueeze(-1) & mask.unsqueeze(-2) & ~eye
        d_rm = torch.where(pair, wf.removal_values(s, w) - W.unsqueeze(-1), torch.zeros_like(pair, dtype=W.dtype))
        base = p.delta_r + p.delta_m + p.lam * (delta < 0).to(W.dtype)
        rhs_sets = [
            r + ((base + p.psi_e * ts.leave_prob).unsqueeze(-2) * d_rm).sum(-1) for r, ts in zip(rhs_sets, term_sets)
        ]

    # coworkers arrive (hires from non-employment and by poaching): neighbour S⊕x_m
    widths = [ts.hire_rate.shape[-1] for ts in term_sets]
    if sum(widths):
        h_new = torch.cat([ts.h_new for ts in term_sets])
        a_new = torch.cat([ts.a_new for ts in term_sets])
        d_add = wf.addition_values(s, w, h_new, a_new) - W.unsqueeze(-1)
        rates = torch.cat([ts.hire_rate for ts in term_sets], -1).unsqueeze(1)
        parts = torch.split(rates * d_add, widths, dim=-1)
        rhs_sets = [r + part.sum(-1) for r, part in zip(rhs_sets, parts)]

    # own outside meetings (P_i)
    out = []
    for r, ts in zip(rhs_sets, term_sets):
        if ts.delta_p.shape[-1]:
            gain = outside_meeting_gain(
                W.unsqueeze(-1), u.unsqueeze(-1), delta.unsqueeze(-1), ts.delta_p, ts.no_offer.unsqueeze(1)
            )
            r = r + p.psi_e * poacher_mean(gain, ts.poacher_weight)
        r = r - p.rho * W
        out.append(torch.where(mask, r, torch.zeros_like(r)))
    return out, W


def w_residual_from_terms(
    wf: WorkerValueFunction, p: EconomyParams, s: FirmBatch, w: Tensor, terms: WageVTerms
) -> tuple[Tensor, Tensor]:
    """The W residual (MODEL.md section 5) of every worker of the batch: ``(R, W)``, each ``[B, n_max]``,
    ``R = right-hand side − ρ W`` and 0 on padding slots.

    ``w``: wages ``[B, n_max]``; ``terms``: from :func:`wage_v_terms`. Gradients flow into ``wf`` only.
    """
    (r,), W = w_residuals_from_terms(wf, p, s, w, [terms])
    return r, W


def w_residual(
    wf: WorkerValueFunction,
    vf: ValueFunction,
    p: EconomyParams,
    s: FirmBatch,
    w: Tensor,
    rates: MeetingRates,
    draws: MeetingDraws | None,
    poachers: FirmBatch | None,
    firm_id: Tensor | None = None,
    poacher_id: Tensor | None = None,
    poacher_weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The W residual (MODEL.md section 5) with V frozen: ``(R, W)``, each ``[B, n_max]`` (0 on padding).
    Arguments as :func:`wage_v_terms` and :func:`w_residual_from_terms`."""
    terms = wage_v_terms(vf, p, s, rates, draws, poachers, firm_id, poacher_id, poacher_weight)
    return w_residual_from_terms(wf, p, s, w, terms)


def scale_free_w_residual(r: Tensor, W: Tensor, mask: Tensor, rho: float, r2: Tensor | None = None) -> Tensor:
    """The scale-free W residual ``RMS(R) / RMS(ρ W)`` over the real workers given (the W twin of
    :func:`lotj.economy.hjb.scale_free_residual`; docs/wages.md). With the residual ``r2`` of a second,
    independent draw set, the mean square is the unbiased ``mean(R₁ R₂)`` (free of the Monte Carlo
    variance of the meeting terms); its absolute value is used, so that a noise-dominated (negative)
    estimate reads at the noise level and never as 0 (which would pass any tolerance)."""
    m = mask.to(r.dtype)
    count = m.sum().clamp_min(1.0)
    ms_r = ((r * (r if r2 is None else r2)) * m).sum() / count
    ms_w = ((rho * W) ** 2 * m).sum() / count
    return ms_r.abs().sqrt() / ms_w.sqrt().clamp_min(1e-300)


def worker_residual_scale(p: EconomyParams, h: Tensor, W: Tensor) -> Tensor:
    """Each worker's own scale of the W residual, ``ρ·max{|W_i|, U(h_i)}`` (``[B, n_max]``; positive on
    padding too). Dividing a worker's residual by it bounds the relative error of its own W, whatever the
    other workers of the batch are worth: the per-state weighting of the W loss (``wsolver.loss_weight``)
    and the per-worker held-out residual (docs/wages.md)."""
    u = p.unemployment_coef * h.clamp_min(1e-30)
    return p.rho * torch.maximum(W.abs(), u)


# ------------------------------------------------------------------------- wages for training


def flow_marginal_product(p: EconomyParams, s: FirmBatch) -> Tensor:
    """``F(S) − F(S⊖x_i)`` for every worker, ``[B, n_max]`` (0 on padding): the worker's flow marginal product."""
    h_eta = torch.where(s.mask, s.h.clamp_min(1e-30).pow(p.eta), torch.zeros_like(s.h))
    total = h_eta.sum(-1, keepdim=True)
    f = production_from_pool(s.z, total.squeeze(-1), p.eta).unsqueeze(-1)
    f_minus = production_from_pool(s.z.unsqueeze(-1), (total - h_eta).clamp_min(0.0), p.eta)
    return torch.where(s.mask, f - f_minus, torch.zeros_like(f_minus))


def initial_wage_range(
    p: EconomyParams, s: FirmBatch, margin: float, delta: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The documented wage range of W's training states before any wage is simulated (docs/wages.md):
    between the flow benefit ``b h`` and the flow marginal product ``F(S) − F(S⊖x_i)`` (ordered; at least
    ``0.5 b h`` wide), widened by ``margin`` times its width on both sides. These are the wages that pay the
    worker its outside flow and its whole flow contribution.

    With the surplus ``delta = Δ(S, x_i)`` (``[B, n_max]``, from the frozen V) the range also covers the
    wages of the whole bargaining set ``U ≤ W ≤ U + Δ``: down to ``b h − ψ^E Δ⁺``, the wage of a worker
    hired at ``W = U`` whose every outside meeting raises it to its full surplus (the entry wage of the
    Postel-Vinay–Robin ladder when all firms bid for the worker), and up to ``b h + r̄ Δ⁺``, the wage that
    keeps ``W = U + Δ`` until the match ends (``r̄ = ρ + δ_f + δ_r + δ_m``)."""
    bh = p.b * s.h
    mp = flow_marginal_product(p, s)
    lo0, hi0 = torch.minimum(bh, mp), torch.maximum(bh, mp)
    if delta is not None:
        d = delta.clamp_min(0.0)
        lo0 = torch.minimum(lo0, bh - p.psi_e * d)
        hi0 = torch.maximum(hi0, bh + p.outflow_rate * d)
    hi0 = torch.maximum(hi0, lo0 + 0.5 * bh)
    width = hi0 - lo0
    return lo0 - margin * width, hi0 + margin * width


def draw_initial_wages(
    p: EconomyParams,
    s: FirmBatch,
    margin: float,
    generator: torch.Generator | None = None,
    delta: Tensor | None = None,
    flow_share: float = 0.0,
) -> Tensor:
    """Wages drawn uniformly from :func:`initial_wage_range` (with the surplus ``delta`` when given),
    ``[B, n_max]`` (0 on padding). With ``delta`` and ``flow_share > 0``, that share of the workers draw
    from the flow range (without ``delta``) instead, where most employed workers' wages lie."""
    lo, hi = initial_wage_range(p, s, margin, delta)
    u = torch.rand(s.h.shape, generator=generator, dtype=s.h.dtype).to(s.h.device)
    if delta is not None and flow_share > 0:
        lo_f, hi_f = initial_wage_range(p, s, margin)
        pick = torch.rand(s.h.shape, generator=generator, dtype=s.h.dtype).to(s.h.device) < flow_share
        lo, hi = torch.where(pick, lo_f, lo), torch.where(pick, hi_f, hi)
    return torch.where(s.mask, lo + u * (hi - lo), torch.zeros_like(lo))
