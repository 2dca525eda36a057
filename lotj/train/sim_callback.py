"""``SimulatorCallback``: the simulation half of the joint loop (MODEL.md section 6; docs/simulator.md).

- **fit start** (a fresh run): burn-in, ``sim.burn_in_years`` under the initial V, then
  ``datamodule.refresh(simulator.snapshot())``. A resumed run skips the burn-in; it refreshes the
  DataModule from the restored simulator only when the checkpoint holds no DataModule state
  (a stateful DataModule restores its own Ω).
- **train epoch end**: advance ``sim.years_per_epoch`` under ``pl_module.value_function()``,
  refresh the DataModule, log ``sim/*`` statistics, update the convergence tracker with
  ``val/residual`` from ``trainer.callback_metrics``, and set ``trainer.should_stop`` once converged.
- **final market** (``sim.settle_years`` and ``sim.settle_epochs`` > 0): at the end of epoch
  ``solver.max_epochs − sim.settle_epochs − 1`` it simulates ``sim.settle_years`` years under the current
  V and freezes the DataModule's market on one cross-section a year (``datamodule.settle``); the last
  ``sim.settle_epochs`` epochs train on it without further simulation. A run that stops earlier (the
  tolerance) never settles.
- **checkpoints**: the simulator's tensors, generator states and clock, and the tracker, are the
  callback's ``state_dict`` in the Lightning checkpoint; a run resumed from ``last.ckpt`` continues
  the same path. Checkpoints must be written at train-epoch end (Lightning's default when validation
  runs every epoch; ModelCheckpoint runs after this callback there), so that they hold the state
  after the epoch's simulation.

Lightning plumbing only: the economics is in :mod:`lotj.sim`.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from lotj.sim.convergence import CONVERGED, ConvergenceTracker
from lotj.sim.simulator import Simulator

#: Statistics logged as ``sim/<name>`` at every refresh.
LOGGED = (
    "e",
    "omega",
    "s_n",
    "firm_size_mean",
    "firm_size_p50",
    "firm_size_p90",
    "firm_size_share_at_cap",
    "en_rate",
    "ne_rate",
    "mean_log_h",
    "mean_log_h_employed",
    "var_log_h_employed",
    "cap_refused_share",
)

#: Statistics that :meth:`SimulatorCallback.summary` reports (``summary.json`` keys ``sim_<name>``).
SUMMARY = (
    "e",
    "omega",
    "s_n",
    "s_e",
    "firm_size_mean",
    "firm_size_p50",
    "firm_size_p90",
    "firm_size_share_at_cap",
    "firm_size_se",
    "en_rate",
    "ne_rate",
    "mean_log_h_employed",
    "var_log_h_employed",
    "mean_log_h_unmatched",
    "var_log_h_unmatched",
    "cap_refused_share",
    "years",
)


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


class SimulatorCallback(Callback):
    """Advance the simulated economy under the current V and refresh the DataModule (module docstring).

    ``datamodule`` needs ``refresh(snapshot)``; ``pl_module`` needs ``value_function()``. ``cfg`` is
    the run's :class:`lotj.config.Config` (groups ``sim`` and ``solver``).
    """

    def __init__(self, simulator: Simulator, datamodule: Any, cfg: Any):
        super().__init__()
        self.simulator = simulator
        self.datamodule = datamodule
        self.cfg = cfg
        self.tracker = ConvergenceTracker(cfg.sim.tol, cfg.solver.tol, cfg.sim.patience, cfg.sim.drift_window)
        self.burned_in = False
        self.simulation_seconds = 0.0
        self._restored = False
        self._datamodule_restored = False
        #: whether the final market was simulated (the remaining epochs simulate nothing)
        self.settled = False

    # ---------------------------------------------------------------- helpers
    def _value_function(self, pl_module: pl.LightningModule):
        return pl_module.value_function()

    def _advance(self, pl_module: pl.LightningModule, years: float):
        vf = self._value_function(pl_module)
        start = time.perf_counter()
        stats = self.simulator.advance(vf, years)
        self.simulation_seconds += time.perf_counter() - start
        return stats

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._restored:
            if not self.burned_in:
                if self.cfg.sim.burn_in_years > 0:
                    self._advance(pl_module, self.cfg.sim.burn_in_years)
                self.burned_in = True
            self.datamodule.refresh(self.simulator.snapshot())
        elif not self._datamodule_restored:
            self.datamodule.refresh(self.simulator.snapshot())

    def _settle(self, pl_module: pl.LightningModule):
        """The final market: ``sim.settle_years`` years, one cross-section a year, frozen in the DataModule."""
        start = time.perf_counter()
        snapshots = self.simulator.yearly_snapshots(self._value_function(pl_module), self.cfg.sim.settle_years)
        self.simulation_seconds += time.perf_counter() - start
        self.datamodule.settle(snapshots)
        self.settled = True
        return self.simulator.last_statistics

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.settled:
            return
        sim = self.cfg.sim
        if sim.settle_epochs > 0 and trainer.current_epoch + 1 >= self.cfg.solver.max_epochs - sim.settle_epochs:
            stats = self._settle(pl_module)
        else:
            stats = self._advance(pl_module, sim.years_per_epoch)
            self.datamodule.refresh(self.simulator.snapshot())
        scalars = stats.scalars()
        residual = trainer.callback_metrics.get("val/residual")
        residual = None if residual is None else float(residual)
        done = self.tracker.update(scalars, residual)
        logged = {f"sim/{k}": float(scalars[k]) for k in LOGGED}
        logged["sim/change"] = min(self.tracker.last_change, 1e30)
        logged["sim/streak"] = float(self.tracker.streak)
        logged["sim/size_drift"] = min(self.tracker.last_drift, 1e30)
        logged["sim/converged"] = float(done)
        pl_module.log_dict(logged, on_step=False, on_epoch=True)
        if done:
            trainer.should_stop = True

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "simulator": self.simulator.state_dict(),
            "tracker": self.tracker.state_dict(),
            "burned_in": self.burned_in,
            "simulation_seconds": self.simulation_seconds,
            "settled": self.settled,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.simulator.load_state_dict(state_dict["simulator"])
        self.tracker.load_state_dict(state_dict["tracker"])
        self.burned_in = bool(state_dict["burned_in"])
        self.simulation_seconds = float(state_dict["simulation_seconds"])
        self.settled = bool(state_dict.get("settled", False))
        self._restored = True

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._datamodule_restored = type(self.datamodule).__qualname__ in checkpoint

    # ---------------------------------------------------------------- results
    @property
    def converged(self) -> bool:
        """Whether the joint loop has converged (for stopping rules that poll callbacks: a rule that
        stops on the residual alone waits for this)."""
        return self.tracker.status == CONVERGED

    @property
    def status(self) -> str:
        """``"converged"`` or ``"not converged"`` (:mod:`lotj.sim.convergence`)."""
        return self.tracker.status

    def summary(self) -> dict[str, Any]:
        """The simulation's entries for ``summary.json``: the statistics of the simulator's last
        window (the last refresh, or the panel's years after :meth:`Simulator.simulate_panel`), the
        convergence status and the tracker's last measurements. No wall times (see
        :attr:`simulation_seconds`), so a resumed run reports the same dictionary."""
        stats = self.simulator.last_statistics or self.simulator.statistics()
        scalars = stats.scalars()
        out: dict[str, Any] = {f"sim_{k}": _finite_or_none(scalars[k]) for k in SUMMARY}
        out["sim_status"] = self.tracker.status
        out["sim_refreshes"] = self.tracker.refreshes
        out["sim_clock_years"] = self.simulator.clock
        out["sim_last_change"] = _finite_or_none(self.tracker.last_change)
        out["sim_size_drift"] = _finite_or_none(self.tracker.last_drift)
        out["sim_settled"] = self.tracker.settled
        out["sim_last_residual"] = _finite_or_none(self.tracker.last_residual)
        return out
