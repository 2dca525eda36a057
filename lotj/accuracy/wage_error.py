"""The global error of W and of the wages it sets, estimated along the worker's chains (docs/accuracy.md).

**W.** For tracked workers ``(S, i, w)`` the error ``e_W = W_net − W`` is estimated by
:func:`lotj.accuracy.worker_chains.worker_chain_errors`, twice, with independent randomness (two
continuations per worker: ``ê₁ ê₂`` is unbiased for ``e_W²``). Figures relative to ``max{|W_net|, U}`` (the
scale of the W validation, :mod:`lotj.validate.wages`), as the V figures (:func:`lotj.accuracy.estimate.
error_figures`): ``w_error_mean`` (mean ``|ē|``, conservative: chain noise biases it up), ``w_error_rms``
(unbiased in the square), ``w_error_p90``, ``w_error_signed`` (``W_net`` above the truth: positive), each
with its standard error, ``w_error_upper`` (one-sided 95% bound of the mean) and ``w_error_noise``.

**Wages.** A wage set at a reset solves ``W_net(S', w) = T`` at the post-event state ``S'``. The true W
gives ``W(S', w_true) = T``; with ``W_net = W + e_W``, to first order

    w_net − w_true ≈ −e_W(S', w_net) / ∂W/∂w,

with the network's slope ``∂W_net/∂w`` (a finite difference) for ``∂W/∂w``. This is the wage error that
W's own error causes. The target ``T`` (``U``, ``U + Δ``, ``max{Δ_p, 0} + U``, ``max{Δ_k, 0} + U``) carries V's
error too, ``e_T`` (zero for a hire and a raise, a marginal error of V otherwise), which shifts the wage by
``+e_T / ∂W/∂w``; it is V's, bounded by the V estimate (``v_error_*``), and not in these figures.
Reported as shares of the median wage, by cause: ``hire`` (hire from non-employment), ``poach`` (poached:
at the poacher's ``S_p⊕x``), ``counter`` (counter-offer), ``reneg`` (renegotiation raises and cuts, and the
cut at a meeting where the firm's participation binds): weighted mean (``_mean``, with ``_se`` and the 95%
bound ``_upper``) and 90th percentile (``_p90``) of ``|w_net − w_true| / |median wage|``, each event weighted
by its rate; and ``_rms``, the square root of the rate-weighted mean of ``ê₁ê₂ / (∂W/∂w)²``, unbiased in the
square (the mean and the percentile of ``|ē|`` carry the chain noise, which inflates them).

The reset events of a run (:func:`reset_events`) are those the simulator would set at its firms as they are,
by the rules of :mod:`lotj.economy.wages` (:mod:`lotj.sim.wage_tracking`): every employed worker's
renegotiation (weight λ) and outside meeting with one poacher from Π (weight ψ^E), and one unmatched worker
from χ^N meeting each firm (weight ``(n+1) ω s^N``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lotj.accuracy.chains import DrawSource
from lotj.accuracy.estimate import Z95, error_figures
from lotj.accuracy.worker_chains import PoacherSource, WorkerChainResult, poacher_parts, worker_chain_errors
from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.surplus import surplus
from lotj.economy.value import ValueFunction
from lotj.economy.wages import Reset, at_cap, meeting_outcome, poacher_hire_surplus, renegotiation_outcome
from lotj.economy.worker_value import WorkerValueFunction, wage_curves
from lotj.sim.wage_inversion import invert_wage

__all__ = [
    "GROUPS",
    "ResetEvents",
    "WError",
    "estimate_w_error",
    "reset_events",
    "wage_error_figures",
    "wage_slopes",
    "w_error_figures",
]

#: The causes of a wage reset, grouped as the figures report them (module docstring).
GROUPS: dict[str, tuple[int, ...]] = {
    "hire": (int(Reset.HIRE),),
    "poach": (int(Reset.POACHED),),
    "counter": (int(Reset.COUNTER_OFFER),),
    "reneg": (int(Reset.RENEG_RAISE), int(Reset.RENEG_CUT), int(Reset.MEETING_CUT)),
}


def w_error_figures(
    error1: Tensor, error2: Tensor, scale: Tensor, bootstrap: int = 200, seed: int = 0
) -> dict[str, float]:
    """The ``w_error_*`` figures (module docstring) from two continuations per worker and each worker's scale
    ``max{|W_net|, U}``."""
    out = error_figures(error1, error2, scale, bootstrap, seed)
    return {"w_error_" + k[len("v_error_") :]: v for k, v in out.items()}


@dataclass
class WError:
    """Two continuations ``error1, error2 [B]`` of ``e_W`` at tracked workers, their ``scale [B]``, the
    truncation bound (largest, relative to the median scale), and the cost."""

    error1: Tensor
    error2: Tensor
    scale: Tensor
    tail_bound: float
    steps: int
    seconds: float
    chains: int

    def figures(self) -> dict[str, float]:
        out = w_error_figures(self.error1, self.error2, self.scale)
        out.update(w_error_tail=self.tail_bound, w_error_seconds=self.seconds, w_error_chains=float(self.chains))
        return out


def estimate_w_error(
    wf: WorkerValueFunction,
    vf: ValueFunction,
    p: EconomyParams,
    states: FirmBatch,
    slot: Tensor,
    wage: Tensor,
    rates: MeetingRates,
    draw_source: DrawSource | None,
    poacher_source: PoacherSource | None,
    generator: torch.Generator,
    *,
    tail_weight: float = 1e-2,
) -> WError:
    """Two independent chain estimates of ``e_W`` at each tracked worker ``(states[b], slot[b], wage[b])``."""
    t0 = time.perf_counter()
    runs: list[WorkerChainResult] = []
    for _ in range(2):
        runs.append(
            worker_chain_errors(
                wf, vf, p, states, slot, wage, rates, draw_source, poacher_source, generator, tail_weight=tail_weight
            )
        )
    scale = runs[0].scale
    med = float(scale.median().clamp_min(1e-300)) if scale.numel() else 1.0
    tail = max((float(r.tail_bound.max()) for r in runs if r.tail_bound.numel()), default=0.0) / med
    steps = max(r.steps for r in runs)
    return WError(runs[0].error, runs[1].error, scale, tail, steps, time.perf_counter() - t0, 2 * states.batch_size)


# ------------------------------------------------------------------------------------------- wages


@dataclass
class ResetEvents:
    """Wage resets: ``cause [E]`` (:class:`lotj.economy.wages.Reset` codes), the post-event ``states`` and the
    worker's ``slot [E]`` there, the ``target [E]`` T and the event's rate ``weight [E]``."""

    cause: Tensor
    states: FirmBatch
    slot: Tensor
    target: Tensor
    weight: Tensor

    def index(self, idx: Tensor) -> ResetEvents:
        return ResetEvents(self.cause[idx], self.states.index(idx), self.slot[idx], self.target[idx], self.weight[idx])

    @property
    def count(self) -> int:
        return int(self.cause.numel())


@torch.no_grad()
def reset_events(
    wf: WorkerValueFunction,
    vf: ValueFunction,
    p: EconomyParams,
    s: FirmBatch,
    w: Tensor,
    rates: MeetingRates,
    unmatched: tuple[Tensor, Tensor] | None,
    poachers: FirmBatch | tuple[FirmBatch, Tensor] | None,
    generator: torch.Generator,
) -> ResetEvents:
    """The wage resets at the firms ``s`` with wages ``w`` ``[F, n_max]`` (module docstring): each employed
    worker's renegotiation and its meeting with one of ``poachers`` (drawn per worker), and for each firm below
    the cap a meeting with one of the ``unmatched`` workers ``(h, a)`` (drawn per firm). ``poachers`` may be
    ``(poachers, weight)`` (exact sums): then each worker's poacher is drawn by the weights."""
    f, n = s.h.shape
    dev, dt = s.h.device, s.h.dtype
    W = wf.values(s, w)
    u = p.unemployment_coef * s.h
    delta = surplus(vf, p, s)
    rows = torch.arange(f, device=dev).unsqueeze(-1).expand(f, n)
    slots = torch.arange(n, device=dev).unsqueeze(0).expand(f, n)
    causes, states, slot_l, targets, weights = [], [], [], [], []

    def keep(mask: Tensor, cause: Tensor, st: FirmBatch, sl: Tensor, tg: Tensor, wt: float | Tensor) -> None:
        idx = mask.nonzero().squeeze(-1)
        if idx.numel():
            causes.append(cause[idx])
            states.append(st.index(idx))
            slot_l.append(sl[idx])
            targets.append(tg[idx])
            wts = torch.as_tensor(wt, dtype=dt, device=dev).expand(mask.shape)
            weights.append(wts[idx])

    real = s.mask
    fr, sr = rows[real], slots[real]
    own = s.index(fr)
    ev, tg = renegotiation_outcome(W[real], u[real], delta[real])
    keep((ev != int(Reset.NONE)) & (ev != int(Reset.SEPARATE)), ev, own, sr, tg, p.lam)  # a separation sets no wage
    poachers, poacher_weight = poacher_parts(poachers)
    if poachers is not None and poachers.batch_size and p.psi_e > 0:
        if poacher_weight is None:
            pick = torch.randint(poachers.batch_size, (int(fr.numel()),), generator=generator).to(dev)
        else:
            pick = torch.multinomial(
                poacher_weight.double().cpu(), int(fr.numel()), replacement=True, generator=generator
            ).to(dev)
        d_p = poacher_hire_surplus(vf, p, s, poachers)[real]  # [R, M]
        d_p = d_p.gather(-1, pick.unsqueeze(-1)).squeeze(-1)
        full = at_cap(p, poachers)[pick]
        ev, tg = meeting_outcome(W[real], u[real], delta[real], d_p, full)
        moving = ev == int(Reset.POACHED)
        at = poachers.index(pick)
        free, _ = at.first_free_slot()
        moved, _ = at.add(
            own.h[torch.arange(fr.numel(), device=dev), sr], own.a[torch.arange(fr.numel(), device=dev), sr]
        )
        sl = torch.where(moving, free, sr)
        st = FirmBatch(
            *(
                torch.where(moving.view(-1, *([1] * (x.dim() - 1))), y, x)
                for x, y in (
                    (own.z, moved.z),
                    (own.q, moved.q),
                    (own.h, moved.h),
                    (own.a, moved.a),
                    (own.mask, moved.mask),
                )
            )
        )
        resets = (ev != int(Reset.NONE)) & (ev != int(Reset.SEPARATE))
        keep(resets, ev, st, sl, tg, p.psi_e)
    if unmatched is not None and unmatched[0].numel() and float(rates.omega) > 0:
        h_n, a_n = unmatched
        pick = torch.randint(h_n.numel(), (f,), generator=generator).to(dev)
        free, room = s.first_free_slot()
        plus, _ = s.add(h_n.to(dev, dt)[pick], a_n.to(dev, dt)[pick])
        gain = surplus(vf, p, plus)[torch.arange(f, device=dev), free]
        hired = room & (gain > 0)
        t = p.unemployment_coef * h_n.to(dev, dt)[pick]
        rate = (s.size().to(dt) + 1.0) * float(rates.omega) * float(rates.s_n)
        keep(hired, torch.full((f,), int(Reset.HIRE), device=dev), plus, free, t, rate)
    if not causes:
        empty = torch.zeros(0, dtype=dt, device=dev)
        return ResetEvents(
            torch.zeros(0, dtype=torch.long, device=dev), s.index(empty.long()), empty.long(), empty, empty
        )
    return ResetEvents(
        torch.cat(causes).long(),
        FirmBatch.cat(states),
        torch.cat(slot_l),
        torch.cat(targets),
        torch.cat(weights),
    )


@torch.no_grad()
def wage_slopes(wf: WorkerValueFunction, s: FirmBatch, slot: Tensor, wage: Tensor, rel_step: float = 1e-4) -> Tensor:
    """``∂W_net/∂w`` of the worker in ``slot[b]`` of ``s[b]`` at ``wage[b]``, by a central difference."""
    rows = torch.arange(s.batch_size, device=s.h.device)
    active = torch.zeros_like(s.mask)
    active[rows, slot] = True
    w = torch.zeros_like(s.h)
    w[rows, slot] = wage.to(w.dtype)
    curve = wage_curves(wf, s, w, active)
    h = rel_step * (wage.abs() + s.h[rows, slot])
    return (curve(wage + h) - curve(wage - h)) / (2.0 * h)


@torch.no_grad()
def network_reset_wages(wf: WorkerValueFunction, p: EconomyParams, events: ResetEvents) -> Tensor:
    """The wages the network sets at ``events`` (``W_net(S', w) = T``, the simulator's inversion)."""
    s = events.states
    rows = torch.arange(s.batch_size, device=s.h.device)
    active = torch.zeros_like(s.mask)
    active[rows, events.slot] = True
    t = torch.zeros_like(s.h)
    t[rows, events.slot] = events.target.to(t.dtype)
    new, _ = invert_wage(wf, p, s, torch.zeros_like(t), t, active)
    return new[rows, events.slot]


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return float(x[order][min(np.searchsorted(cw, q * cw[-1]), len(x) - 1)])


def wage_error_figures(
    cause: np.ndarray,
    weight: np.ndarray,
    error1: np.ndarray,
    error2: np.ndarray,
    slope: np.ndarray,
    median_wage: float,
) -> dict[str, float | None]:
    """The ``wage_error_<group>_*`` figures (module docstring) from the two continuations of ``e_W`` at each
    event, the slopes ``∂W/∂w`` and the median wage. Groups without events get None."""
    scale = abs(median_wage) if median_wage and math.isfinite(median_wage) else math.nan
    share = np.abs(0.5 * (error1 + error2) / slope) / scale
    square = error1 * error2 / slope**2 / scale**2  # unbiased for the squared share (two continuations)
    out: dict[str, float | None] = {}

    def put(name: str, sel: np.ndarray) -> None:
        if not sel.any() or not np.isfinite(scale):
            for k in ("mean", "mean_se", "upper", "p90", "rms", "events"):
                out[f"{name}_{k}"] = None if k != "events" else float(sel.sum())
            return
        x, w = share[sel], weight[sel] / weight[sel].sum()
        mean = float(w @ x)
        se = float(math.sqrt(np.sum(w**2 * (x - mean) ** 2))) if sel.sum() > 1 else math.inf
        out[f"{name}_mean"] = mean
        out[f"{name}_mean_se"] = se if math.isfinite(se) else None
        out[f"{name}_upper"] = mean + Z95 * se if math.isfinite(se) else None
        out[f"{name}_p90"] = _weighted_quantile(x, w, 0.9)
        out[f"{name}_rms"] = float(math.sqrt(max(float(w @ square[sel]), 0.0)))
        out[f"{name}_events"] = float(sel.sum())

    for group, codes in GROUPS.items():
        put(f"wage_error_{group}", np.isin(cause, codes))
    put("wage_error", np.isin(cause, sum(GROUPS.values(), ())))
    return out


def wage_certify(figures: dict[str, float | None], tol: float) -> str:
    """``"converged"`` iff every group's wage error bound (``wage_error_<group>_upper``) with events is at or
    below ``tol`` (``wsolver.tol``), and at least one group has events."""
    uppers = [figures.get(f"wage_error_{g}_upper") for g in GROUPS if figures.get(f"wage_error_{g}_events")]
    if not uppers or any(u is None or not math.isfinite(u) for u in uppers):
        return "not converged"
    return "converged" if max(uppers) <= tol else "not converged"  # type: ignore[type-var]
