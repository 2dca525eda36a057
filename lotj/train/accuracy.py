"""The V stage's a posteriori error estimate and the convergence rule it certifies (docs/accuracy.md).

:func:`v_error_summary` runs :func:`lotj.accuracy.estimate.estimate_on_market` on the final market's held-out
Ω states and returns ``summary.json``'s ``v_error_*`` keys, and ``convergence``: ``"converged"`` only when the
estimated V error's one-sided 95% upper bound (``v_error_upper``) is at or below ``solver.tol`` and the
simulated statistics have settled (``sim.tol`` for ``sim.patience`` refreshes); ``"not converged"`` otherwise.
The held-out scale-free residual stays in the summary (``residual``, ``residual_final``) as a diagnostic.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lotj.accuracy.estimate import estimate_on_market
from lotj.config import Config

__all__ = ["certify", "v_error_summary"]


def certify(figures: dict[str, float], tol: float, settled: bool) -> str:
    """``"converged"`` iff ``v_error_upper ≤ tol`` and the statistics settled (module docstring)."""
    upper = figures.get("v_error_upper", math.inf)
    return "converged" if settled and math.isfinite(upper) and upper <= tol else "not converged"


def v_error_summary(cfg: Config, vf: Any, market: Any, settled: bool) -> dict[str, Any]:
    """The ``v_error_*`` figures of ``vf`` on ``market`` (a :class:`lotj.sim.market.Market`) and the
    ``convergence`` status (module docstring)."""
    acc = cfg.accuracy
    with torch.no_grad():
        est = estimate_on_market(
            vf,
            cfg.economy,
            market,
            n_states=acc.n_states,
            m_n=acc.m_n,
            m_e=acc.m_e,
            seed=cfg.seed + 5,
            cross_iterations=acc.cross_iterations,
            cross_reps=acc.cross_reps,
            tail_weight=acc.tail_weight,
        )
    figures = est.figures()
    out: dict[str, Any] = {k: (v if math.isfinite(v) else None) for k, v in figures.items()}
    out["convergence"] = certify(figures, cfg.solver.tol, settled)
    return out
