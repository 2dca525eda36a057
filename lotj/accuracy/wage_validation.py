"""The W and wage error estimators checked against the true errors on a discrete economy (docs/accuracy.md).

:func:`w_estimator_check` estimates the error of a W network (:mod:`lotj.accuracy.worker_chains`,
:mod:`lotj.accuracy.wage_error`) on an exact economy (:class:`lotj.exact.ExactSolution`) and compares it with
the truth (:mod:`lotj.exact.worker_value`):

- V is the network's, read as a table (:class:`lotj.accuracy.exact_check.TableValue`); the meeting terms are
  the exact χ^N and χ^E as weighted draws; poachers from the exact Π, ``m_pi`` a step by systematic sampling
  (one uniform, ``m_pi`` equally spaced points of Π's distribution function: unbiased, with far less noise
  than independent draws);
- the W error at the W validation's grid (every pair, ``points`` wages spanning its bargaining set: the grid
  of :func:`lotj.validate.wages.wage_grid`), each ``reps`` times; relative to ``max{|W_net|, U}``;
- the truth: ``W_net − W_given``, ``W_given`` the exact W given the network's V and the exact market (what
  the chains estimate; :func:`lotj.exact.worker_value.exact_worker_values`), and beside it ``W_net − W_exact``
  (the equilibrium W: it adds what W inherits from V's error, which no W estimate sees);
- the wages: at every reset wage the economy sets with positive flow (:class:`lotj.exact.wages.ExactWages`),
  the network's wage (its target from the network's V, inverted with the network's W; at most ``max_resets``
  per group of causes, drawn uniformly, each keeping its flow), the estimated wage
  error ``−ē_W / ∂W_net/∂w`` against the true ``w_net − w_given`` (``w_given`` inverts the same target with
  ``W_given``), as shares of the exact median wage, flow-weighted, by cause.

``agrees``: the estimated mean relative W error is within twice its standard error of the true one, or
within 20% of it where that is larger (the issue's acceptance, as for V).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from lotj.accuracy.exact_check import TableValue, exact_meeting_draws, exact_rates
from lotj.accuracy.wage_error import GROUPS, estimate_w_error, w_error_figures, wage_error_figures, wage_slopes
from lotj.economy.firms import FirmBatch
from lotj.economy.value import ValueFunction
from lotj.economy.worker_value import WorkerValueFunction
from lotj.exact.equilibrium import ExactSolution
from lotj.exact.market import Market
from lotj.exact.states import StateSpace
from lotj.exact.wages import CAUSES, ExactWages
from lotj.exact.worker_value import exact_worker_values
from lotj.validate.values import network_values
from lotj.validate.wages import network_targets, network_w, network_wages, pair_batch, wage_grid

__all__ = ["systematic_poachers", "w_estimator_check"]

#: The exact economy's reset causes by the groups of :data:`lotj.accuracy.wage_error.GROUPS`.
_CAUSE_GROUP = {
    "hire": "hire",
    "poached": "poach",
    "counter_offer": "counter",
    "reneg_raise": "reneg",
    "reneg_cut": "reneg",
    "meeting_cut": "reneg",
}


def systematic_poachers(space: StateSpace, market: Market, count: int):
    """A poacher source: ``count`` states from the exact Π by systematic sampling (module docstring)."""
    pi = torch.as_tensor(np.asarray(market.pi, dtype=np.float64))
    cdf = torch.cumsum(pi, 0)

    def source(g: torch.Generator) -> FirmBatch:
        u = torch.rand(1, generator=g, dtype=torch.float64)
        pos = (torch.arange(count, dtype=torch.float64) + u) / count * cdf[-1]
        idx = torch.searchsorted(cdf, pos).clamp(max=len(pi) - 1)
        return space.firm_batch(idx.numpy())

    return source


def _repeat(s: FirmBatch, reps: int) -> FirmBatch:
    return FirmBatch.cat([s] * reps) if reps > 1 else s


def _agreement(est_mean: float, est_se: float, true_mean: float) -> dict[str, Any]:
    gap = abs(est_mean - true_mean)
    allowed = max(2.0 * est_se, 0.2 * true_mean)
    return {"true_mean": true_mean, "gap": gap, "allowed": allowed, "agrees": bool(gap <= allowed)}


def w_estimator_check(
    wf: WorkerValueFunction,
    vf: ValueFunction,
    sol: ExactSolution,
    ew: ExactWages,
    *,
    points: int = 5,
    reps: int = 2,
    m_pi: int = 128,
    tail_weight: float = 1e-2,
    max_resets: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The estimate of ``wf``'s error, and of its wages', against the truth on an exact economy (module
    docstring)."""
    gen = torch.Generator().manual_seed(int(seed))
    p, space, market = sol.params, sol.space, sol.market
    v_net = network_values(vf, sol.states)
    table = TableValue(space, v_net)
    draws = exact_meeting_draws(space, market, v_net)
    poachers = systematic_poachers(space, market, m_pi)
    rates = exact_rates(market)
    given = exact_worker_values(space, p, v_net, market, w_start=1.0)

    def chains(pair: np.ndarray, wage: np.ndarray):
        batch, slot = pair_batch(ew.curve, pair)
        est = estimate_w_error(
            wf,
            table,
            p,
            _repeat(batch, reps),
            torch.as_tensor(slot).repeat(reps),
            torch.as_tensor(wage, dtype=torch.float64).repeat(reps),
            rates,
            lambda g: draws,
            poachers,
            gen,
            tail_weight=tail_weight,
        )
        e1 = est.error1.view(reps, -1).mean(0)
        e2 = est.error2.view(reps, -1).mean(0)
        return e1, e2, est, batch, slot

    # W on the validation grid
    pair, wage = wage_grid(ew.curve, points)
    e1, e2, est, _, _ = chains(pair, wage)
    w_net = network_w(wf, ew.curve, pair, wage)
    u = ew.curve.problem.u[pair]
    scale = np.maximum(np.abs(w_net), u)
    figures = w_error_figures(e1, e2, torch.as_tensor(scale))
    true_given = w_net - given.value(pair, wage)
    true_exact = w_net - ew.curve.value(pair, wage)
    out: dict[str, Any] = {
        "estimated": figures,
        "true_mean": float(np.mean(np.abs(true_given) / scale)),
        "true_rms": float(np.sqrt(np.mean((true_given / scale) ** 2))),
        "true_signed": float(np.mean(true_given / scale)),
        "true_mean_vs_exact_w": float(np.mean(np.abs(true_exact) / scale)),
        "seconds": est.seconds,
        "chains": est.chains,
        "grid_points": int(len(pair)),
    }
    out.update(_agreement(figures["w_error_mean"], figures["w_error_mean_se"], out["true_mean"]))

    # the wages of every reset with positive flow
    org = ew.origins
    flows = ew.reset_flows()
    origin = np.concatenate([o for o, _ in flows.values()])
    flow = np.concatenate([f for _, f in flows.values()])
    cause_name = np.concatenate([[name] * len(o) for name, (o, _) in flows.items()])
    group_code = {g: codes[0] for g, codes in GROUPS.items()}
    cause = np.array([group_code[_CAUSE_GROUP[c]] for c in cause_name], dtype=np.int64)
    # at most max_resets per group, uniformly at random (each keeps its flow weight)
    rng = np.random.default_rng(seed)
    chosen = []
    for codes in GROUPS.values():
        idx = np.nonzero(np.isin(cause, codes))[0]
        chosen.append(idx if len(idx) <= max_resets else np.sort(rng.choice(idx, max_resets, replace=False)))
    sub = np.concatenate(chosen)
    origin, flow, cause = origin[sub], flow[sub], cause[sub]
    targets = network_targets(ew, v_net)
    w_reset = network_wages(wf, p, ew.curve, org.pair[origin], targets[origin])
    we1, we2, west, batch, slot = chains(org.pair[origin], w_reset)
    slope = wage_slopes(wf, batch, torch.as_tensor(slot), torch.as_tensor(w_reset)).double().numpy()
    median = ew.median
    est_w = wage_error_figures(cause, flow, we1.double().numpy(), we2.double().numpy(), slope, median)
    true_w = np.abs(w_reset - given.invert(org.pair[origin], targets[origin])) / abs(median)
    true_exact_w = np.abs(w_reset - org.wage[origin]) / abs(median)
    wages: dict[str, Any] = {"estimated": est_w, "seconds": west.seconds, "resets": int(len(origin))}
    out["seconds"] = est.seconds + west.seconds
    for g in list(GROUPS) + ["all"]:
        sel = np.isin(cause, GROUPS[g]) if g != "all" else np.ones(len(cause), dtype=bool)
        if not sel.any():
            continue
        fw = flow[sel] / flow[sel].sum()
        key = "wage_error" if g == "all" else f"wage_error_{g}"
        row = {
            "estimated_mean": est_w[f"{key}_mean"],
            "estimated_se": est_w[f"{key}_mean_se"],
            "true_mean": float(fw @ true_w[sel]),
            "true_mean_vs_exact_wages": float(fw @ true_exact_w[sel]),
        }
        row.update(_agreement(row["estimated_mean"] or math.nan, row["estimated_se"] or 0.0, row["true_mean"]))
        wages[g] = row
    out["wages"] = wages
    assert set(_CAUSE_GROUP) == set(CAUSES)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}
