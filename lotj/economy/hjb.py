"""The HJB residual of the joint value V (MODEL.md section 4), from any :class:`ValueFunction`.

For a batch of firm states ``S`` the residual is ``R(S) = RHS(S) − ρ V(S)`` with

    RHS(S) = F(S)
           − δ_f ( V(S) − Σ_i U(x_i) )                                   firm death
           + γ^E ( V(H(S)) − V(S) )                                      learning
           + (n+1) ω [ s^N E_{x~χ^N} max{Δ(S⊕x, x), 0}                   meet unmatched
                     + s^E E_{(x,S_p)~χ^E} B(S, S_p, x) ]                meet employed (poach)
           + Σ_i [ (δ_r + δ_m)( V(S⊖x_i) − V(S) ) + δ_m U(x_i) ]         retirement, match break
           + Σ_i (λ + ψ^E) max{ −Δ(S, x_i), 0 }                          quits, being poached

Expectations are Monte Carlo averages over :class:`MeetingDraws`, shared by every firm of the
batch: the drawn workers' φ is computed once, and ``Δ(S_p, x_j)`` of each drawn employed worker
at its own firm once per batch (:func:`make_draws`). Every removal and addition neighbour comes
from ``vf.removal_values`` / ``vf.addition_values`` (pooled for the network), or from
``vf.values_and_neighbours(s, h_new, a_new)`` when the value function offers it (one encoding of S
for all three); only the learning neighbour ``H(S)`` is a fresh set evaluation.

Settled details (MODEL.md section 10) implemented here:

- a firm at the size cap (``n = n_max``) makes no offer: both meeting terms are zero;
- no meetings (``ψ^N = ψ^E = 0``) gives ``ω = s^N = s^E = 0`` (:func:`lotj.economy.params.meeting_rates`),
  and a zero ``ω`` skips the meeting terms (no draws needed);
- a poacher drawn equal to the worker's own firm is a void meeting: when states and draws carry
  firm identities (indices into the simulated economy), ``B = 0`` for such pairs;
- the quit term ``(λ + ψ^E) max{−Δ, 0}`` does not depend on the poacher, so it holds at the cap too.

Unbiased squared residual: with two independent draw sets, ``R₁ R₂`` is an unbiased estimate of
``(E R)²`` (the expectation over draws), whereas ``R₁²`` adds the Monte Carlo variance of the
meeting terms. Only the meeting terms depend on the draws, so the deterministic part is computed
once and shared (:func:`v_residual` with ``draws2``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.economy.meetings import batch_meetings
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.surplus import employed_surplus, own_surplus_from_values, poach_gain, surplus
from lotj.economy.technology import learning_step, production
from lotj.economy.value import ValueFunction

__all__ = [
    "MeetingDraws",
    "VResidual",
    "learned",
    "make_draws",
    "poach_gain",
    "scale_free_residual",
    "surplus",
    "v_residual",
]


@dataclass
class MeetingDraws:
    """Monte Carlo draws for the two meeting integrals of MODEL.md section 4, shared by a batch.

    ``h_n, a_n`` (``[M_N]``): unmatched workers from χ^N. ``h_e, a_e`` (``[M_E]``): employed workers
    from χ^E, with ``delta_p`` = Δ(S_p, x_j), the surplus at their current firm, and optionally
    ``firm_e``: the index of that firm in the simulated economy (for void meetings).

    ``weight_n`` (``[M_N]``) and ``weight_e`` (``[M_E]``), optional: probability weights of the draws
    (each summing to one). The expectations are then weighted sums, exact when the draws are the
    support of a discrete χ^N or χ^E (:func:`lotj.sim.meeting_draws.exact_draws`); None means equally
    weighted Monte Carlo draws."""

    h_n: Tensor
    a_n: Tensor
    h_e: Tensor
    a_e: Tensor
    delta_p: Tensor
    firm_e: Tensor | None = None
    weight_n: Tensor | None = None
    weight_e: Tensor | None = None

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> MeetingDraws:
        def mv(t: Tensor | None, keep_dtype: bool = False) -> Tensor | None:
            if t is None:
                return None
            return t.to(device) if keep_dtype or dtype is None else t.to(device=device, dtype=dtype)

        return MeetingDraws(
            mv(self.h_n),
            mv(self.a_n),
            mv(self.h_e),
            mv(self.a_e),
            mv(self.delta_p),
            mv(self.firm_e, True),
            mv(self.weight_n),
            mv(self.weight_e),
        )


def make_draws(
    vf: ValueFunction,
    p: EconomyParams,
    h_n: Tensor,
    a_n: Tensor,
    s_p: FirmBatch,
    slot: Tensor,
    firm_e: Tensor | None = None,
    weight_n: Tensor | None = None,
    weight_e: Tensor | None = None,
) -> MeetingDraws:
    """Assemble :class:`MeetingDraws` from raw draws: the unmatched workers ``(h_n, a_n)`` and the
    employed workers given as their firms ``s_p`` and slots (with optional probability weights).
    Computes Δ(S_p, x_j) with the current V once (:func:`lotj.economy.surplus.employed_surplus`);
    gradients flow through it."""
    rows = torch.arange(s_p.batch_size, device=s_p.z.device)
    if s_p.batch_size:
        delta_p = employed_surplus(vf, p, s_p, slot)
    else:
        delta_p = s_p.z[:0]
    return MeetingDraws(h_n, a_n, s_p.h[rows, slot], s_p.a[rows, slot], delta_p, firm_e, weight_n, weight_e)


def learned(p: EconomyParams, s: FirmBatch) -> FirmBatch:
    """H(S): the firm after a learning event (MODEL.md section 2), every worker updated at once."""
    h = learning_step(s.h, s.a, s.q, s.mask, p.theta_plus, p.theta_minus)
    return FirmBatch(s.z, s.q, h, s.a, s.mask)


@dataclass
class VResidual:
    """The V residual of a batch. ``residual`` = RHS − ρV with the first draw set, ``residual2`` with
    the second (when given), ``value`` = V(S), ``terms`` the right-hand-side terms (first draw set),
    keyed by the names of MODEL.md section 4, and ``diagonal`` = −∂R/∂V(S) holding every neighbour
    value fixed: ρ + δ_f + γ^E + n(δ_r + δ_m) + (λ + ψ^E)·#{i: Δ_i < 0} + (n+1)ω[s^N P(hire) + s^E P(B > 0)]
    (the total rate at which the state is left, ≥ ρ > 0). ``residual / diagonal`` is the Bellman
    (fixed-point) error in value units, which the semi-gradient loss uses (docs/solver.md)."""

    residual: Tensor
    value: Tensor
    residual2: Tensor | None = None
    terms: dict[str, Tensor] = field(default_factory=dict)
    diagonal: Tensor | None = None


def _meetings_active(rates: MeetingRates) -> bool:
    omega = rates.omega
    return bool(omega.abs().max() > 0) if isinstance(omega, Tensor) else omega != 0.0


def v_residual(
    vf: ValueFunction,
    p: EconomyParams,
    s: FirmBatch,
    rates: MeetingRates,
    draws: MeetingDraws | None = None,
    draws2: MeetingDraws | None = None,
    firm_id: Tensor | None = None,
    detach_neighbours: bool = False,
) -> VResidual:
    """The V residual ``R(S) = RHS(S) − ρV(S)`` of MODEL.md section 4 (see the module docstring).

    ``rates``: ω, s^N, s^E (floats or 0-d tensors). ``draws``: the meeting draws (may be None only
    when ω = 0). ``draws2``: an independent second draw set for the unbiased squared residual
    ``R₁R₂``. ``firm_id`` (``[B]``, optional): the simulated firm each state belongs to, for void
    meetings. Gradients flow through every V evaluation; with ``detach_neighbours`` only through
    V(S) itself (every neighbour value, and Δ(S_p, x_j) of the draws if the caller detached it, held
    fixed: the semi-gradient of docs/solver.md).
    """
    u_coef = p.unemployment_coef
    mask = s.mask
    dt = s.h.dtype
    u_i = torch.where(mask, u_coef * s.h, torch.zeros_like(s.h))
    sum_u = u_i.sum(-1)
    flow = production(s.z, s.h, mask, p.eta)

    def fixed(t: Tensor) -> Tensor:
        return t.detach() if detach_neighbours else t

    meetings = _meetings_active(rates)
    if meetings and draws is None:
        raise ValueError("v_residual: meetings are active (omega > 0) but no draws were given")
    sets = [] if not meetings else ([draws] if draws2 is None else [draws, draws2])
    h_new = torch.cat([d for ds in sets for d in (ds.h_n, ds.h_e)]) if sets else None
    a_new = torch.cat([d for ds in sets for d in (ds.a_n, ds.a_e)]) if sets else None
    joint = getattr(vf, "values_and_neighbours", None)
    if joint is not None:  # one encoding of S for V, its removals and its additions (lotj.nets.ValueNet)
        v, v_minus, v_plus_all = joint(s, h_new, a_new)
    else:
        v, v_minus = vf.value(s), vf.removal_values(s)
        v_plus_all = vf.addition_values(s, h_new, a_new) if sets else None
    v_minus = fixed(v_minus)
    v_minus = torch.where(mask, v_minus, v.unsqueeze(-1).expand_as(v_minus))
    delta = own_surplus_from_values(p, s, v, v_minus)
    maskf = mask.to(dt)
    n = maskf.sum(-1)

    terms: dict[str, Tensor] = {"flow": flow, "death": -p.delta_f * (v - sum_u)}
    if p.gamma_e != 0.0:
        terms["learning"] = p.gamma_e * (fixed(vf.value(learned(p, s))) - v)
    else:
        terms["learning"] = torch.zeros_like(v)
    terms["separation"] = ((p.delta_r + p.delta_m) * (v_minus - v.unsqueeze(-1)) * maskf).sum(-1) + p.delta_m * sum_u
    negative = ((delta < 0) & mask).to(dt).sum(-1)
    terms["quits"] = (p.lam + p.psi_e) * ((-delta).clamp_min(0.0) * maskf).sum(-1)
    deterministic = sum(terms.values()) - p.rho * v
    diagonal = p.rho + p.delta_f + p.gamma_e + (p.delta_r + p.delta_m) * n + (p.lam + p.psi_e) * negative

    residual2 = None
    if sets:
        assert draws is not None and v_plus_all is not None
        width = [ds.h_n.shape[0] + ds.h_e.shape[0] for ds in sets]
        chunks = torch.split(fixed(v_plus_all), width, dim=-1)
        # the meetings, read as the W equation reads them (lotj.economy.meetings); zero at the cap
        met = batch_meetings(p, s, rates, v, chunks[0], draws, firm_id)
        meet_n, meet_e = met.value_terms()  # meet unmatched, meet employed (poach)
        terms["meet_unmatched"], terms["meet_employed"] = meet_n, meet_e
        residual = deterministic + meet_n + meet_e
        diagonal = diagonal + met.hire_rates().sum(-1).detach()  # + (n+1)ω[s^N P(hire) + s^E P(B > 0)]
        if draws2 is not None:
            meet_n2, meet_e2 = batch_meetings(p, s, rates, v, chunks[1], draws2, firm_id).value_terms()
            residual2 = deterministic + meet_n2 + meet_e2
    else:
        terms["meet_unmatched"] = torch.zeros_like(v)
        terms["meet_employed"] = torch.zeros_like(v)
        residual = deterministic
        if draws2 is not None:
            residual2 = deterministic
    return VResidual(residual, v, residual2, terms, diagonal.detach())


def scale_free_residual(residual: Tensor, value: Tensor, rho: float, residual2: Tensor | None = None) -> Tensor:
    """The scale-free residual of docs/solver.md: ``RMS(R) / RMS(ρV)`` over the given states.

    With a second independent draw set, the mean square ``mean(R²)`` is replaced by the unbiased
    ``mean(R₁R₂)`` (an estimate of the squared residual of the exact expectation, free of the
    Monte Carlo variance of the meeting terms), whose absolute value is taken before the square root:
    when noise dominates, the estimate can be negative, and it then reads at the noise level, never 0."""
    ms = (residual * residual).mean() if residual2 is None else (residual * residual2).mean()
    return ms.abs().sqrt() / (rho * value).pow(2).mean().sqrt()
