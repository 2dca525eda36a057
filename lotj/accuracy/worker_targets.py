"""Chain targets for W: what W should be at tracked workers, estimated along the worker's chains of events.

The W twin of :mod:`lotj.accuracy.targets`. The estimate of :func:`lotj.accuracy.wage_error.estimate_w_error`
gives ``ê_W(S, i, w) ≈ W_net − W`` with V's decisions and W_net's reset regimes held fixed (MODEL.md §5, the W
equation solved along the worker's chain), so

    y(S, i, w) = W_net(S, i, w) − (ê₁ + ê₂)/2

estimates W itself. :func:`fit_worker_targets` alternates such sets with fits of the network to them
(approximate policy evaluation, each set from the network the previous fit left). On ``exact_small`` this took
a W network trained on its residual from 6.3e-2 to 7e-3 of the exact W in eight sets (docs/accuracy.md):
the W residual, like V's, leaves the error modes that neighbouring states share almost untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lotj.accuracy.chains import DrawSource
from lotj.accuracy.wage_error import estimate_w_error
from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.value import ValueFunction
from lotj.economy.wages import worker_residual_scale

__all__ = ["WorkerPoints", "fit_worker_targets", "worker_targets"]


@dataclass
class WorkerPoints:
    """Tracked workers: ``states [B]``, the worker's ``slot [B]`` and the whole wage matrix ``wages [B, n_max]``
    (the tracked worker's own wage at ``wages[b, slot[b]]``)."""

    states: FirmBatch
    slot: Tensor
    wages: Tensor

    @property
    def own_wage(self) -> Tensor:
        return self.wages[torch.arange(self.slot.numel(), device=self.slot.device), self.slot]

    def index(self, idx: Tensor) -> WorkerPoints:
        return WorkerPoints(self.states.index(idx), self.slot[idx], self.wages[idx])

    @staticmethod
    def cat(parts: list[WorkerPoints]) -> WorkerPoints:
        """The workers of ``parts``, one after the other."""
        if len(parts) == 1:
            return parts[0]
        return WorkerPoints(
            FirmBatch.cat([q.states for q in parts]),
            torch.cat([q.slot for q in parts]),
            torch.cat([q.wages for q in parts]),
        )

    def repeat(self, reps: int) -> WorkerPoints:
        """The same workers ``reps`` times over, copy after copy."""
        return WorkerPoints.cat([self] * reps)


def _w_of(wf, pts: WorkerPoints) -> Tensor:
    rows = torch.arange(pts.slot.numel(), device=pts.slot.device)
    return wf.values(pts.states, pts.wages)[rows, pts.slot]


@torch.no_grad()
def worker_targets(
    wf,
    vf: ValueFunction,
    p: EconomyParams,
    pts: WorkerPoints,
    rates: MeetingRates,
    draws: DrawSource | None,
    poachers: Callable[[torch.Generator], FirmBatch] | None,
    generator: torch.Generator,
    *,
    tail_weight: float = 1e-2,
    reps: int = 1,
) -> Tensor:
    """``y = W_net − ē`` at the tracked workers, ``ē`` the mean of ``2·reps`` independent chain estimates of
    ``e_W`` (module docstring)."""
    if reps < 1:
        raise ValueError(f"reps = {reps}: must be >= 1")
    pts_r = pts.repeat(reps) if reps > 1 else pts
    est = estimate_w_error(
        wf, vf, p, pts_r.states, pts_r.slot, pts_r.own_wage, rates, draws, poachers, generator, tail_weight=tail_weight
    )
    err = 0.5 * (est.error1 + est.error2)
    return _w_of(wf, pts) - err.view(reps, -1).mean(0)


def _target_scale(p: EconomyParams, pts: WorkerPoints, y: Tensor) -> Tensor:
    """Each target's own scale ``max{|y|, U(h_i)}``, ``[B]`` (the scale of the W validation's relative error:
    :func:`lotj.economy.wages.worker_residual_scale` without its ρ)."""
    rows = torch.arange(pts.slot.numel(), device=pts.slot.device)
    return worker_residual_scale(p, pts.states.h[rows, pts.slot], y) / p.rho


def fit_worker_targets(
    wf,
    vf: ValueFunction,
    p: EconomyParams,
    points: Callable[[torch.Generator], WorkerPoints],
    rates: MeetingRates,
    draws: DrawSource | None,
    poachers: Callable[[torch.Generator], FirmBatch] | None,
    generator: torch.Generator,
    *,
    rounds: int,
    steps: int,
    lr: float,
    batch_size: int = 256,
    tail_weight: float = 1e-2,
    reps: int = 1,
    loss: str = "batch",
    memory: int = 1,
    after_round: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """``rounds`` times: targets at a fresh set of tracked workers ``points(generator)`` (``reps`` pairs of chains
    each), then ``steps`` Adam steps over batches of that set on ``mean((W − y)²) / mean(y²)`` (``loss =
    "batch"``) or on ``mean(((W − y)/max{|y|, U})²)`` (``"state"``: every worker's relative error alike, so that
    the small values are fitted as tightly as the large). Returns the rounds, the seconds spent on targets and on
    fitting, the last fit's loss and how many targets it pooled. ``after_round(k)`` is called after each round (a
    progress report).

    ``memory``: the fit pools the targets of the last ``memory`` sets (0: every set so far). A target estimates
    the W of V's decisions and W_net's regimes whatever the network that drew it (``W_net − ê`` with
    ``E[ê] = W_net − W``), so an older set is as good a target as the newest wherever the regimes agree, and
    pooling K sets gives the fit K times the points with independent noise."""
    if loss not in ("batch", "state"):
        raise ValueError(f"loss = {loss!r}: allowed 'batch', 'state'")
    if memory < 0:
        raise ValueError(f"memory = {memory}: must be >= 0 (0: every set so far)")
    kept: list[tuple[WorkerPoints, Tensor, Tensor]] = []  # (workers, targets, scales) of the pooled sets
    params = [q for q in wf.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    t_targets = t_fit = 0.0
    fit, y = torch.tensor(float("nan")), torch.empty(0)
    for k in range(rounds):
        t0 = time.perf_counter()
        new = points(generator)
        y_new = worker_targets(wf, vf, p, new, rates, draws, poachers, generator, tail_weight=tail_weight, reps=reps)
        kept.append((new, y_new, _target_scale(p, new, y_new)))
        if memory > 0:
            kept = kept[-memory:]
        pool_pts, pool_y, pool_scale = zip(*kept, strict=True)
        pts, y = WorkerPoints.cat(list(pool_pts)), torch.cat(pool_y)
        scale = torch.cat(pool_scale) if loss == "state" else None
        t1 = time.perf_counter()
        for _ in range(steps):
            idx = torch.randint(y.numel(), (batch_size,), generator=generator).to(y.device)
            yb = y[idx]
            gap = _w_of(wf, pts.index(idx)) - yb
            fit = gap.pow(2).mean() / yb.pow(2).mean() if scale is None else (gap / scale[idx]).pow(2).mean()
            opt.zero_grad()
            fit.backward()
            opt.step()
        t_fit += time.perf_counter() - t1
        t_targets += t1 - t0
        if after_round is not None:
            after_round(k)
    return {
        "w_chain_rounds": float(rounds),
        "w_chain_target_seconds": t_targets,
        "w_chain_fit_seconds": t_fit,
        "w_chain_loss": float(fit.detach()),
        "w_chain_pool": float(y.numel()),
    }
