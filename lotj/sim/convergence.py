"""Convergence of the joint loop: V's residual and the stationarity of χ (MODEL.md section 6).

After every refresh of the simulated distribution the loop records the tracked statistics
``e``, ``ω``, the mean firm size (firms with n ≥ 1) and the mean ``log h``, and the held-out
scale-free residual of V. The change of a statistic between consecutive refreshes is
``|x_t − x_{t−1}| / |x_{t−1}|`` for ``e``, ``ω`` and the mean size, and ``|x_t − x_{t−1}|`` for
the mean ``log h``, which is already in log points (a relative change of the geometric mean of
h; its level is near 0, where a relative change means nothing).

The firm-size distribution hangs on hiring and poaching decisions and moves slowly: a change of a
few percent a refresh can go on for decades of simulated time (docs/simulator.md). So the mean firm
size is also tested against its sampling error: over the last ``drift_window`` refreshes, every
refresh's mean size must lie within ``DRIFT_Z`` of its own standard errors (``firm_size_se``,
:mod:`lotj.sim.stats`) of the window's average (``size_drift`` is the largest such distance, in
standard errors; infinite until the window is full). A distribution that still drifts fails it.

The simulated statistics have **settled** when the largest change was below ``sim_tol`` at each of
the last ``patience`` refreshes and the mean firm size does not drift. The run has **converged** at a
refresh when they have settled and the residual there is below ``solver_tol``. A run that reaches its
epoch limit first ends **not converged**.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: The statistics whose change decides stationarity, as named in :class:`lotj.sim.stats.SimStatistics`.
TRACKED = ("e", "omega", "firm_size_mean", "mean_log_h")
#: Tracked statistics compared in absolute (log-point) rather than relative terms.
ABSOLUTE = ("mean_log_h",)

#: a refresh's mean firm size more than this many of its standard errors from the window's average: drift
DRIFT_Z = 2.0

CONVERGED = "converged"
NOT_CONVERGED = "not converged"


def size_drift(means: list[float], ses: list[float], window: int) -> float:
    """The largest distance, in standard errors, of the last ``window`` mean firm sizes from their
    average (module docstring); infinite while fewer than ``window`` refreshes exist or an error is missing."""
    if window < 1 or len(means) < window:
        return math.inf
    x, se = means[-window:], ses[-window:]
    if not all(math.isfinite(v) for v in (*x, *se)) or min(se) <= 0.0:
        return math.inf
    avg = sum(x) / window
    return max(abs(xi - avg) / si for xi, si in zip(x, se))


def change(name: str, new: float, old: float) -> float:
    """The change of one tracked statistic between refreshes (module docstring)."""
    if not (math.isfinite(new) and math.isfinite(old)):
        return math.inf
    if name in ABSOLUTE:
        return abs(new - old)
    if old == 0.0:
        return 0.0 if new == 0.0 else math.inf
    return abs(new - old) / abs(old)


@dataclass
class ConvergenceTracker:
    """Counts consecutive refreshes whose tracked statistics changed by less than ``sim_tol`` and tests the
    mean firm size for drift over the last ``drift_window`` refreshes (module docstring)."""

    sim_tol: float
    solver_tol: float
    patience: int
    drift_window: int = 5
    previous: dict[str, float] | None = None
    streak: int = 0
    refreshes: int = 0
    last_change: float = math.inf
    last_residual: float = math.inf
    status: str = NOT_CONVERGED
    last_drift: float = math.inf
    history: list[dict[str, float]] = field(default_factory=list)

    def update(self, stats: dict[str, float], residual: float | None) -> bool:
        """Record one refresh; returns True when the run has converged (module docstring).
        ``residual`` None (not measured) never counts as below tolerance."""
        current = {k: float(stats[k]) for k in TRACKED}
        if self.previous is None:
            self.last_change = math.inf
        else:
            self.last_change = max(change(k, current[k], self.previous[k]) for k in TRACKED)
        self.streak = self.streak + 1 if self.last_change < self.sim_tol else 0
        self.last_residual = math.inf if residual is None or not math.isfinite(residual) else float(residual)
        self.previous = current
        self.refreshes += 1
        se = float(stats["firm_size_se"])
        self.history.append({**current, "firm_size_se": se, "change": self.last_change, "residual": self.last_residual})
        self.last_drift = size_drift(
            [h["firm_size_mean"] for h in self.history], [h["firm_size_se"] for h in self.history], self.drift_window
        )
        done = self.settled and self.last_residual < self.solver_tol
        if done:
            self.status = CONVERGED
        return done

    @property
    def settled(self) -> bool:
        """Whether the simulated statistics have settled: the change streak and no size drift (module docstring)."""
        return self.streak >= self.patience and self.last_drift <= DRIFT_Z

    def state_dict(self) -> dict:
        return {
            "previous": self.previous,
            "streak": self.streak,
            "refreshes": self.refreshes,
            "last_change": self.last_change,
            "last_residual": self.last_residual,
            "status": self.status,
            "last_drift": self.last_drift,
            "history": [dict(h) for h in self.history],
        }

    def load_state_dict(self, state: dict) -> None:
        self.previous = None if state["previous"] is None else dict(state["previous"])
        self.streak = int(state["streak"])
        self.refreshes = int(state["refreshes"])
        self.last_change = float(state["last_change"])
        self.last_residual = float(state["last_residual"])
        self.status = str(state["status"])
        self.last_drift = float(state.get("last_drift", math.inf))
        self.history = [dict(h) for h in state["history"]]
