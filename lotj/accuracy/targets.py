"""Chain targets: what V should be at a set of states, estimated along the firm's chains of events.

The error estimate of :mod:`lotj.accuracy.estimate` gives, at a state ``S``, ``ê(S) ≈ V_net(S) − V(S)``
with the decisions held at the network's (docs/accuracy.md). So ``y(S) = V_net(S) − ê(S)`` estimates the
value of the network's own decisions at ``S`` (MODEL.md §4, equation (4), solved for V along the chain):

    y(S) = V_net(S) + E[ ∫₀^∞ e^{−ρt} R(S_t) dt ]

with the chain of the V equation's events started at ``S`` and ``R`` the network's residual. It is a
Monte Carlo policy evaluation with the network as control variate: the integrand is the residual, small
where the network is nearly right, so the target's noise shrinks as V improves. Unlike the residual,
which sees one state and its neighbours, a target carries the error the network makes at every state
the chain visits, so the slow error modes (those neighbouring states share: a level that is wrong for
all large firms, say) that a residual-trained network leaves almost untouched are corrected directly.

Fitting the network to ``y`` on a set of states and re-estimating under the new decisions is
approximate policy iteration; the V stage does it every ``solver.chain_every`` epochs
(:class:`lotj.train.chain_targets.ChainTargets`, docs/solver.md, "Chain targets").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lotj.accuracy.estimate import VErrorEstimate, estimate_v_error, market_sources
from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.value import ValueFunction

__all__ = ["ChainTargetSet", "chain_targets", "targets_from_estimate"]


@dataclass
class ChainTargetSet:
    """States ``[B]``, their targets ``y [B]`` (the mean of two independent chain estimates), the network's
    values when they were estimated, the per-state noise (half the gap of the two estimates: the standard
    error of ``y``), and the seconds the estimate took."""

    states: FirmBatch
    target: Tensor
    value: Tensor
    noise: Tensor
    seconds: float

    @property
    def mean_error(self) -> float:
        """Mean ``|V_net − y| / |V_net|`` over the states: an error estimate of the network at these states
        (biased upward by the noise; :mod:`lotj.accuracy.estimate` has the unbiased figures)."""
        return float(((self.value - self.target) / self.value.abs().clamp_min(1e-300)).abs().mean())

    def to(self, device: torch.device | str, dtype: torch.dtype) -> ChainTargetSet:
        return ChainTargetSet(
            self.states.to(device, dtype),
            self.target.to(device, dtype),
            self.value.to(device, dtype),
            self.noise.to(device, dtype),
            self.seconds,
        )


@torch.no_grad()
def chain_targets(
    vf: ValueFunction,
    p: EconomyParams,
    market,
    firms: Tensor,
    count: int,
    generator: torch.Generator,
    *,
    m_n: int,
    m_e: int,
    cross_iterations: int = 1,
    tail_weight: float = 0.02,
) -> ChainTargetSet:
    """Targets at ``count`` Ω states of the firm rows ``firms`` of a :class:`lotj.sim.market.Market`
    (module docstring): two chains per state, the cross-firm term iterated ``cross_iterations`` times."""
    states, _ = market.omega_states(count, firms, generator)
    source, employed = market_sources(vf, p, market, m_n, m_e, generator)
    est = estimate_v_error(
        vf,
        p,
        states,
        market.rates,
        source,
        generator,
        employed=employed,
        cross_iterations=cross_iterations,
        cross_reps=1,
        tail_weight=tail_weight,
    )
    return targets_from_estimate(states, est)


def targets_from_estimate(states: FirmBatch, est: VErrorEstimate) -> ChainTargetSet:
    """The targets ``y = V_net − (ê₁ + ê₂)/2`` of an error estimate at ``states`` (module docstring)."""
    error = 0.5 * (est.error1 + est.error2)
    return ChainTargetSet(states, est.value - error, est.value, 0.5 * (est.error1 - est.error2).abs(), est.seconds)
