"""The meetings of a batch of firms: one mechanism for the V and the W equations (MODEL.md sections 3–5).

Firm ``k`` with ``n`` workers receives meetings at rate ``(n+1) ω`` (MODEL.md section 3). The met worker
is unmatched with probability ``s^N``, drawn from χ^N, or employed with probability ``s^E``, drawn with
its firm from χ^E. Both HJBs integrate over the same meetings:

    V:  (n+1) ω [ s^N E_{χ^N} max{Δ(S⊕x, x), 0} + s^E E_{χ^E} B(S, S_p, x) ]
    W:  (n+1) ω [ s^N E_{χ^N} 1{Δ(S⊕x, x) > 0} + s^E E_{χ^E} 1{B(S, S_p, x) > 0} ] (W_i(S⊕x) − W_i(S))

so :func:`batch_meetings` computes, once, what both read: each draw's probability (the draw weights
of :class:`lotj.economy.hjb.MeetingDraws`, or ``1/M`` for equally weighted Monte Carlo draws, times
``s^N`` or ``s^E``), each draw's gain for the firm, and the firm's meeting rate. Because V and W read
their meetings from this one place, they cannot weight draws or void meetings differently.

Settled details (MODEL.md section 10):

- a firm at the size cap makes no offer: its meeting rate for offers is zero (:attr:`BatchMeetings.rate`);
- a χ^E draw from the firm itself is a void meeting (gain 0). It needs firm identities (indices into the
  simulated economy); a negative index is no simulated firm (exploration states beyond χ, pooled exact
  draws), which voids nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.surplus import hire_surplus_from_values, poach_gain

if TYPE_CHECKING:  # the draw type lives with the V residual, which imports this module
    from lotj.economy.hjb import MeetingDraws


@dataclass
class BatchMeetings:
    """The meetings of a batch of ``B`` firms with ``M_N`` unmatched and ``M_E`` employed draws.

    ``rate [B]``: ``(n+1) ω``, zero at the cap (no offer); ``hire_gain [B, M_N]``: Δ(S⊕x, x) of each
    unmatched draw (hire iff > 0); ``poach_gain [B, M_E]``: B(S, S_p, x) of each employed draw (≥ 0,
    0 for a void meeting; poach iff > 0); ``prob_n [M_N]``, ``prob_e [M_E]``: the probability that a
    meeting is with that draw (``s^N`` or ``s^E`` times the draw's weight)."""

    rate: Tensor
    hire_gain: Tensor
    poach_gain: Tensor
    prob_n: Tensor
    prob_e: Tensor

    def value_terms(self) -> tuple[Tensor, Tensor]:
        """The V equation's meeting terms ``(n+1) ω s^N E max{Δ(S⊕x,x), 0}`` and ``(n+1) ω s^E E B``, ``[B]``."""
        meet_n = self.rate * (self.hire_gain.clamp_min(0.0) * self.prob_n).sum(-1)  # meet unmatched
        meet_e = self.rate * (self.poach_gain * self.prob_e).sum(-1)  # meet employed (poach)
        return meet_n, meet_e

    def hire_rates(self) -> Tensor:
        """The rate at which the firm hires each drawn worker, ``[B, M_N + M_E]`` (unmatched draws first):
        ``(n+1) ω s^N w_m 1{Δ(S⊕x_m, x_m) > 0}`` and ``(n+1) ω s^E w_m 1{B(S, S_p, x_m) > 0}``; their sum
        is the firm's total hiring rate (the W equation's coworker-arrival terms, and V's diagonal)."""
        hired = torch.cat([(self.hire_gain > 0) * self.prob_n, (self.poach_gain > 0) * self.prob_e], -1)
        return self.rate.unsqueeze(-1) * hired.to(self.rate.dtype)


def draw_probabilities(weight: Tensor | None, count: int, like: Tensor) -> Tensor:
    """The probability of each of ``count`` draws: its weight, or ``1/count`` when the draws are equally
    weighted Monte Carlo draws (``weight`` None)."""
    if weight is None:
        return like.new_full((count,), 1.0 / max(count, 1))
    return weight.to(device=like.device, dtype=like.dtype)


def void_meetings(firm_id: Tensor | None, firm_e: Tensor | None) -> Tensor | None:
    """``[B, M_E]``: the drawn employed worker's firm is the meeting firm itself (a void meeting, MODEL.md
    section 10). A negative index is no simulated firm and voids nothing. None without identities."""
    if firm_id is None or firm_e is None:
        return None
    return (firm_id.unsqueeze(-1) == firm_e.unsqueeze(0)) & (firm_id >= 0).unsqueeze(-1)


def batch_meetings(
    p: EconomyParams,
    s: FirmBatch,
    rates: MeetingRates,
    v: Tensor,
    v_plus: Tensor,
    draws: MeetingDraws,
    firm_id: Tensor | None = None,
) -> BatchMeetings:
    """The meetings of the batch ``s`` (module docstring). ``v``: V(S) ``[B]``; ``v_plus``: V(S⊕x) for the
    concatenated draws ``[x_n..., x_e...]``, ``[B, M_N + M_E]``; ``firm_id [B]`` (optional): each state's
    firm in the simulated economy, for void meetings. Gradients flow through ``v`` and ``v_plus``."""
    m_n, m_e = draws.h_n.shape[0], draws.h_e.shape[0]
    n = s.size()
    rate = (n + 1).to(v.dtype) * rates.omega * (n < p.n_max).to(v.dtype)  # (n+1) ω, no offer at the cap
    hire_gain = hire_surplus_from_values(p, v, v_plus[:, :m_n], draws.h_n)  # Δ(S⊕x, x)
    gain_e = poach_gain(hire_surplus_from_values(p, v, v_plus[:, m_n:], draws.h_e), draws.delta_p.unsqueeze(0))
    void = void_meetings(firm_id, draws.firm_e)
    if void is not None:
        gain_e = torch.where(void, torch.zeros_like(gain_e), gain_e)
    prob_n = rates.s_n * draw_probabilities(draws.weight_n, m_n, v)
    prob_e = rates.s_e * draw_probabilities(draws.weight_e, m_e, v)
    return BatchMeetings(rate, hire_gain, gain_e, prob_n, prob_e)
