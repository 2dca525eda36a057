"""The V stage's a posteriori error estimate and the convergence rule it certifies (docs/accuracy.md).

:func:`v_error_summary` runs :func:`lotj.accuracy.estimate.estimate_on_market` on the final market's held-out
Ω states and returns ``summary.json``'s ``v_error_*`` keys, and ``convergence``: ``"converged"`` only when the
estimated V error's one-sided 95% upper bound (``v_error_upper``) is at or below ``solver.tol`` and the
simulated statistics have settled (``sim.tol`` for ``sim.patience`` refreshes); ``"not converged"`` otherwise.
The held-out scale-free residual stays in the summary (``residual``, ``residual_final``) as a diagnostic.

:class:`VErrorCheck` runs the same estimate during training when the local figure stalls (the held-out
residual has not improved by ``STALL_GAIN`` for ``accuracy.stall_patience`` epochs), logs it (``v_error/*``)
and stops training once the certified rule holds.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch

from lotj.accuracy.estimate import estimate_on_market
from lotj.config import Config

__all__ = ["VErrorCheck", "certify", "v_error_summary"]

#: a held-out residual that has not fallen below (1 − STALL_GAIN) × its best for stall_patience epochs stalls
STALL_GAIN = 0.05


def certify(figures: dict[str, float], tol: float, settled: bool) -> str:
    """``"converged"`` iff ``v_error_upper ≤ tol`` and the statistics settled (module docstring)."""
    upper = figures.get("v_error_upper", math.inf)
    return "converged" if settled and math.isfinite(upper) and upper <= tol else "not converged"


def v_error_summary(cfg: Config, vf: Any, market: Any, settled: bool, seed_offset: int = 5) -> dict[str, Any]:
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
            seed=cfg.seed + seed_offset,
            cross_iterations=acc.cross_iterations,
            cross_reps=acc.cross_reps,
            tail_weight=acc.tail_weight,
        )
    figures = est.figures()
    out: dict[str, Any] = {k: (v if math.isfinite(v) else None) for k, v in figures.items()}
    out["convergence"] = certify(figures, cfg.solver.tol, settled)
    return out


class VErrorCheck(pl.Callback):
    """The error estimate when the held-out residual stalls (module docstring). ``datamodule``: the V stage's
    (its ``source`` is the market); ``sim_callback``: the simulator's, whose tracker says whether the
    statistics settled (None: nothing to settle). ``checks`` lists each estimate's epoch, figures and cost."""

    def __init__(self, cfg: Config, datamodule: Any, sim_callback: Any = None):
        self.cfg = cfg
        self.datamodule = datamodule
        self.sim_callback = sim_callback
        self.best = math.inf
        self.since = 0
        self.checks: list[dict[str, Any]] = []

    def _settled(self) -> bool:
        cb = self.sim_callback
        return cb is None or cb.tracker.settled

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/residual")
        if value is None or not math.isfinite(float(value)):
            return
        if float(value) < (1.0 - STALL_GAIN) * self.best:
            self.best, self.since = float(value), 0
            return
        self.since += 1
        if self.since < self.cfg.accuracy.stall_patience:
            return
        self.since = 0
        out = v_error_summary(self.cfg, pl_module.value_function(), self.datamodule.source, self._settled(), 7)
        out["epoch"] = int(trainer.current_epoch)
        self.checks.append(out)
        pl_module.log_dict(
            {f"v_error/{k[8:]}": float(out[k]) for k in ("v_error_mean", "v_error_upper") if out[k] is not None},
            on_step=False,
            on_epoch=True,
        )
        if out["convergence"] == "converged":
            trainer.should_stop = True

    def summary(self) -> dict[str, Any]:
        """``v_error_checks`` (estimates during training) and their total cost ``v_error_check_seconds``."""
        secs = sum(float(c.get("v_error_seconds") or 0.0) for c in self.checks)
        return {"v_error_checks": len(self.checks), "v_error_check_seconds": secs}
