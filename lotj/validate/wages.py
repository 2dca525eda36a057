"""Validation of W and the wages against the exact ones of a discrete economy (docs/validation.md).

The exact side is :mod:`lotj.exact.worker_value` (W of every pair ``(S, j)`` at every wage) and
:mod:`lotj.exact.wages` (the wage of every reset and the stationary wage distribution). Compared:

- **W**: the network's ``W(S, j; w)`` against the exact one at every pair and a grid of wages spanning
  each pair's bargaining set (from the wage that gives ``U`` to the one that gives ``U + Δ``, widened by
  a tenth of its width on each side): relative error ``|W_net − W| / max{|W|, U}`` (the scale of
  :func:`lotj.economy.wages.worker_residual_scale`), mean and max.
- **Wages by cause**: for every reset wage set in equilibrium (the exact chain's origins with positive
  flow), the network's wage: its target from the network's V (``U``, ``U + Δ``, ``max{Δ_p, 0} + U`` or
  ``max{Δ_k, 0} + U``) inverted with the network's W by :func:`lotj.sim.wage_inversion.invert_wage`, the
  simulator's wage back-out. Absolute error as a share of the exact median wage (of the stationary
  distribution), flow-weighted mean and max, per cause.
- **The wage distribution**: the quartiles and the share of negative wages of the employed worker-years
  of the run's panel against the exact stationary ones (quartile errors as shares of the exact median,
  the negative share in percentage points). Beside them, not a target: the exact stationary weights
  with the network's reset wages (:func:`network_wage_quantiles`), which tells an error of the wages
  apart from an error of how the simulated panel weights them.
- **The split**: the exact W given the network's V (its decisions and surpluses) and the market, on the
  same grid and for the same resets. The network against it is the W solver's own error; it against the
  exact W is what W inherits from V.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.value import ValueFunction
from lotj.economy.worker_value import WorkerValueFunction
from lotj.exact.bellman import Surpluses
from lotj.exact.equilibrium import ExactSolution
from lotj.exact.market import Market
from lotj.exact.wages import BOTTOM, CAUSES, COUNTER, POACHED, TOP, ExactWages, exact_wages, weighted_quantile
from lotj.exact.worker_value import WageCurve, exact_worker_values
from lotj.sim.wage_inversion import invert_wage
from lotj.validate.values import network_values, placement

#: Wages per pair in the W comparison grid, and the widening of each pair's bargaining-set wages.
GRID_POINTS = 11
GRID_MARGIN = 0.1
#: Quartiles compared.
QUARTILES = (0.25, 0.5, 0.75)
#: A simulated quantile is compared with the exact quantiles in the band q ± QUANTILE_BAND: the exact
#: distribution is discrete and its CDF can be flat right at a quartile (exact_small: the CDF is 0.24999
#: from w = -0.76 to w = -0.54, so the 25th percentile of any sample jumps between the two).
QUANTILE_BAND = 0.0025


def exact_wage_solution(sol: ExactSolution) -> ExactWages:
    """The exact W and wages of the equilibrium ``sol``."""
    curve = exact_worker_values(sol.space, sol.params, sol.v, sol.market, w_start=float(np.median(sol.space.u_type)))
    return exact_wages(curve, sol.dist)


# --------------------------------------------------------------------------- network evaluation


def pair_batch(curve: WageCurve, pair: np.ndarray) -> tuple[FirmBatch, np.ndarray]:
    """The states of ``pair`` as a FirmBatch and the slot of the pair's worker (workers in type order)."""
    prob = curve.problem
    space = prob.space
    states, types = prob.pairs.state[pair], prob.pairs.wtype[pair]
    counts = space.counts[states]
    slot = np.where(types > 0, np.cumsum(counts, 1)[np.arange(len(pair)), np.maximum(types - 1, 0)], 0)
    return space.firm_batch(states), slot


def _to(batch: FirmBatch, t: torch.Tensor, fn: Any) -> tuple[FirmBatch, torch.Tensor]:
    device, dtype = placement(fn)
    if device is None:
        return batch, t
    moved = FirmBatch(*(x.to(device, dtype) for x in (batch.z, batch.q, batch.h, batch.a)), batch.mask.to(device))
    return moved, t.to(device, dtype)


def pair_wages(curve: WageCurve, pair: np.ndarray, wage: np.ndarray) -> tuple[FirmBatch, torch.Tensor, torch.Tensor]:
    """The states of ``pair`` (:func:`pair_batch`), the slot of each pair's worker and the wage table ``[B, n_max]``
    with ``wage[r]`` in that slot (0 elsewhere): W of row ``r``'s worker at its wage is ``W[r, slot[r]]``."""
    batch, slot = pair_batch(curve, pair)
    w = torch.zeros(batch.h.shape, dtype=torch.float64)
    w[torch.arange(batch.batch_size), torch.as_tensor(slot)] = torch.as_tensor(wage, dtype=torch.float64)
    return batch, torch.as_tensor(slot), w


def network_w(wf: WorkerValueFunction, curve: WageCurve, pair: np.ndarray, wage: np.ndarray, chunk: int = 4096):
    """The network's ``W(S, j; w)`` of each ``(pair[r], wage[r])``, float64."""
    out = []
    with torch.no_grad():
        for start in range(0, len(pair), chunk):
            sel = slice(start, start + chunk)
            batch, slot, w = pair_wages(curve, pair[sel], wage[sel])
            rows = torch.arange(batch.batch_size)
            batch, w = _to(batch, w, wf)
            vals = wf.values(batch, w)[rows.to(w.device), slot.to(w.device)]
            out.append(vals.detach().to("cpu", torch.float64).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def network_wages(
    wf: WorkerValueFunction, p: EconomyParams, curve: WageCurve, pair: np.ndarray, target: np.ndarray, chunk: int = 4096
) -> np.ndarray:
    """The wages that solve the network's ``W(S, j; w) = target`` at ``pair``, by the simulator's inversion."""
    out = []
    with torch.no_grad():
        for start in range(0, len(pair), chunk):
            sel = slice(start, start + chunk)
            batch, slot = pair_batch(curve, pair[sel])
            rows = torch.arange(batch.batch_size)
            slot_t = torch.as_tensor(slot)
            t = torch.zeros(batch.h.shape, dtype=torch.float64)
            t[rows, slot_t] = torch.as_tensor(target[sel], dtype=torch.float64)
            active = torch.zeros(batch.h.shape, dtype=torch.bool)
            active[rows, slot_t] = True
            batch, t = _to(batch, t, wf)
            w0 = torch.zeros_like(t)
            new, _ = invert_wage(wf, p, batch, w0, t, active.to(t.device))
            out.append(new[rows.to(t.device), slot_t.to(t.device)].detach().to("cpu", torch.float64).numpy())
    return np.concatenate(out) if out else np.zeros(0)


# --------------------------------------------------------------------------- the comparisons


def wage_grid(
    curve: WageCurve, points: int = GRID_POINTS, margin: float = GRID_MARGIN
) -> tuple[np.ndarray, np.ndarray]:
    """``(pair, wage)`` of the comparison grid (module docstring), ``points`` wages per pair."""
    prob = curve.problem
    pairs = np.arange(len(prob.pairs))
    lo = curve.invert(pairs, prob.u)
    hi = curve.invert(pairs, prob.u + np.maximum(prob.delta, 0.0))
    width = np.maximum(hi - lo, 0.05 * prob.u)
    frac = np.linspace(-margin, 1.0 + margin, points)
    wages = lo[:, None] + frac[None, :] * width[:, None]
    return np.repeat(pairs, points), wages.ravel()


def _rel(a: np.ndarray, b: np.ndarray, u: np.ndarray) -> dict[str, float]:
    err = np.abs(a - b) / np.maximum(np.abs(b), u)
    return {"mean": float(err.mean()), "max": float(err.max())}


def network_targets(ew: ExactWages, v_net: np.ndarray) -> np.ndarray:
    """The target of every origin of ``ew`` with the surpluses of the V table ``v_net`` (module docstring)."""
    org, prob = ew.origins, ew.curve.problem
    s = Surpluses.of(prob.space, v_net)
    pairs = prob.pairs
    j = pairs.wtype[org.pair]
    u = prob.u[org.pair]
    own = s.own[pairs.state[org.pair], j]
    target = u.copy()
    top = org.kind == TOP
    target[top] = u[top] + own[top]
    counter = org.kind == COUNTER
    target[counter] = np.maximum(s.hire[org.other[counter], j[counter]], 0.0) + u[counter]
    poached = org.kind == POACHED
    src = org.other[poached]
    target[poached] = np.maximum(s.own[pairs.state[src], pairs.wtype[src]], 0.0) + u[poached]
    assert np.all((org.kind == BOTTOM) | top | counter | poached)
    return target


def compare_wages_by_cause(ew: ExactWages, wages: np.ndarray) -> dict[str, dict[str, float]]:
    """Per cause, the exact reset wages (min, flow-weighted median, max, flow) and the error of ``wages``
    (one per origin) as a share of the exact median wage: flow-weighted mean and max."""
    median = ew.median
    out = {}
    for name, (origin, flow) in ew.reset_flows().items():
        if len(origin) == 0:
            out[name] = {"resets": 0}
            continue
        exact = ew.origins.wage[origin]
        err = np.abs(wages[origin] - exact) / abs(median)
        out[name] = {
            "resets": int(len(origin)),
            "flow": float(flow.sum()),
            "exact_min": float(exact.min()),
            "exact_median": float(weighted_quantile(exact, flow, 0.5)),
            "exact_max": float(exact.max()),
            "exact_negative_share": float(flow[exact < 0].sum() / flow.sum()),
            "mean_abs_error_share": float(err @ flow / flow.sum()),
            "max_abs_error_share": float(err.max()),
        }
    return out


def network_wage_quantiles(ew: ExactWages, wages: np.ndarray) -> dict[str, float]:
    """The exact stationary weights with ``wages`` (one per origin) in place of the exact reset wages."""
    w = wages[ew.chain.node_origin]
    q = weighted_quantile(w, ew.chain.mass, np.asarray(QUARTILES))
    out = {f"p{round(100 * x)}": float(v) for x, v in zip(QUARTILES, q)}
    out["negative_share"] = float(ew.chain.mass[w < 0].sum() / ew.chain.mass.sum())
    return out


def panel_wages(panel: pd.DataFrame) -> np.ndarray:
    """The wages of the employed worker-years of an annual panel (finite values)."""
    if panel is None or len(panel) == 0 or "wage" not in panel:
        return np.zeros(0)
    emp = panel["employed"].to_numpy(dtype=bool)
    w = panel.loc[emp, "wage"].astype(float).to_numpy()
    return w[np.isfinite(w)]


def compare_distribution(ew: ExactWages, wages: np.ndarray) -> dict[str, Any]:
    """Quartiles and negative share of simulated ``wages`` against the exact stationary distribution."""
    exact = ew.quantiles(QUARTILES)
    median = ew.median
    out: dict[str, Any] = {"exact": exact, "exact_negative_share": ew.negative_share, "n_wages": int(len(wages))}
    if len(wages) == 0:
        return out
    net = {f"p{round(100 * x)}": float(np.quantile(wages, x)) for x in QUARTILES}
    out["network"] = net
    out["quantile_error_share_raw"] = {k: abs(net[k] - exact[k]) / abs(median) for k in exact}
    # the distance from the exact band [Q(q − b), Q(q + b)] (QUANTILE_BAND)
    band = {}
    for x in QUARTILES:
        k = f"p{round(100 * x)}"
        lo, hi = weighted_quantile(ew.node_wage, ew.chain.mass, np.array([x - QUANTILE_BAND, x + QUANTILE_BAND]))
        band[k] = max(lo - net[k], net[k] - hi, 0.0) / abs(median)
        out.setdefault("exact_band", {})[k] = [float(lo), float(hi)]
    out["quantile_error_share"] = band
    out["network_negative_share"] = float((wages < 0).mean())
    out["negative_share_error_pp"] = 100.0 * abs(out["network_negative_share"] - ew.negative_share)
    return out


def compare_w(
    wf: WorkerValueFunction,
    vf: ValueFunction,
    sol: ExactSolution,
    ew: ExactWages,
    panel: pd.DataFrame | None = None,
    market: Market | None = None,
) -> dict[str, Any]:
    """The W section of the validation report (module docstring). ``market``: the market of the split's
    exact W given the network's V (default: the equilibrium's)."""
    p, curve, org = sol.params, ew.curve, ew.origins
    pair, wage = wage_grid(curve)
    u = curve.problem.u[pair]
    w_exact = curve.value(pair, wage)
    w_net = network_w(wf, curve, pair, wage)
    v_net = network_values(vf, sol.states)
    used = np.unique(np.concatenate([o for o, _ in ew.reset_flows().values()]))
    targets = network_targets(ew, v_net)
    wages = np.full(len(org), np.nan)
    wages[used] = network_wages(wf, p, curve, org.pair[used], targets[used])
    report: dict[str, Any] = {
        "exact": ew.summary(),
        "grid_points": int(len(pair)),
        "w_rel_error": _rel(w_net, w_exact, u),
        "wages_by_cause": compare_wages_by_cause(ew, wages),
        "exact_weights_with_network_wages": network_wage_quantiles(ew, np.where(np.isnan(wages), org.wage, wages)),
    }
    if panel is not None:
        report["distribution"] = compare_distribution(ew, panel_wages(panel))
    # the split: exact W given the network's V (decisions, surpluses) and the market
    given = exact_worker_values(sol.space, p, v_net, sol.market if market is None else market, w_start=1.0)
    w_given = given.value(pair, wage)
    wages_given = np.full(len(org), np.nan)
    wages_given[used] = given.invert(org.pair[used], targets[used])
    report["split"] = {
        "w_network_vs_given_v": _rel(w_net, w_given, u),
        "w_given_v_vs_exact": _rel(w_given, w_exact, u),
        "wages_network_vs_given_v": _wage_gap(wages[used], wages_given[used], ew.median),
        "wages_given_v_vs_exact": _wage_gap(wages_given[used], org.wage[used], ew.median),
    }
    return report


def _wage_gap(a: np.ndarray, b: np.ndarray, median: float) -> dict[str, float]:
    err = np.abs(a - b) / abs(median)
    return {"mean": float(err.mean()), "max": float(err.max())} if len(err) else {"mean": math.nan, "max": math.nan}


def format_w(section: dict[str, Any]) -> list[str]:
    """The printed lines of the W section."""
    ex = section["exact"]
    q = ex["quantiles"]
    lines = [
        f"  exact W: {ex['pairs']} pairs, {ex['curve_segments']} affine pieces; {ex['origins']} reset wages, "
        f"{ex['chain_nodes']} (pair, wage) nodes",
        f"  exact wages: p25 {q['p25']:.4g}, p50 {q['p50']:.4g}, p75 {q['p75']:.4g}, negative share "
        f"{ex['negative_share']:.3%}",
    ]
    w = section["w_rel_error"]
    lines.append(
        f"  W relative error over {section['grid_points']} (pair, wage) points: "
        f"mean {w['mean']:.3e}, max {w['max']:.3e}"
    )
    lines.append(
        f"  {'cause':<14} {'exact min':>10} {'median':>10} {'max':>10} {'err mean':>9} {'err max':>9}"
        "  (errors: share of the exact median wage)"
    )
    for name in CAUSES:
        row = section["wages_by_cause"].get(name, {})
        if not row.get("resets"):
            lines.append(f"  {name:<14} (none)")
            continue
        lines.append(
            f"  {name:<14} {row['exact_min']:>10.4g} {row['exact_median']:>10.4g} {row['exact_max']:>10.4g} "
            f"{row['mean_abs_error_share']:>9.2e} {row['max_abs_error_share']:>9.2e}"
        )
    if "distribution" in section and "network" in section["distribution"]:
        d = section["distribution"]
        lines.append(
            "  panel wages: "
            + ", ".join(f"{k} {d['network'][k]:.4g} (exact {d['exact'][k]:.4g})" for k in d["exact"])
            + f"; negative {d['network_negative_share']:.2%} (exact {d['exact_negative_share']:.2%})"
        )
    n = section["exact_weights_with_network_wages"]
    lines.append(
        f"  exact weights, network wages: p25 {n['p25']:.4g}, p50 {n['p50']:.4g}, p75 {n['p75']:.4g}, "
        f"negative {n['negative_share']:.2%}"
    )
    s = section["split"]
    lines.append(
        f"  split: W network vs exact W given its V mean {s['w_network_vs_given_v']['mean']:.2e}; that vs exact "
        f"{s['w_given_v_vs_exact']['mean']:.2e}; wages {s['wages_network_vs_given_v']['mean']:.2e} and "
        f"{s['wages_given_v_vs_exact']['mean']:.2e} (shares of the median)"
    )
    return lines


def load_worker_net(cfg, vf: ValueFunction, path) -> WorkerValueFunction:
    """The W network a run saved (``w_net.pt``), with the frozen V attached when it reads the surplus."""
    from lotj.train.wstage import build_worker_net

    net = build_worker_net(cfg)
    net.load_state_dict(torch.load(path, map_location="cpu"))
    if net.surplus_input:
        net.attach_value(vf)
    return net.eval()
