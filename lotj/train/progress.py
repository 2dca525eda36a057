"""What a run tells its user while it runs: the start-up phases, a whole-run estimate, a line per epoch.

A baseline run on a CPU takes hours, and Lightning's bar (on standard output) shows only the current epoch.
So a run also says, on standard error:

- each start-up phase (drawing the initial economy, the burn-in under the initial guess of V) when it
  starts and how long it took;
- after the first few training steps (:data:`EARLY_STEPS`; a baseline epoch takes minutes on a CPU), a
  first estimate of the whole run from the step time and the burn-in's simulation pace;
- after the first epoch, the whole run's estimated time: the V stage's remaining epochs at the first
  epoch's pace (training, held-out residual and the simulated years of each epoch), the chain-target sets
  and the final error estimate of V (:func:`chain_stage_estimate`), the panel's simulated years at the
  simulator's measured pace, and the W stage's training and simulation (:func:`w_stage_estimate`); on a
  CPU, when that is long, where a GPU would help;
- after every epoch, a run-level line: epoch k of K, time elapsed, estimated time remaining.

The estimates are extrapolations from the first epochs (an epoch's cost changes little during a run; the
W stage's is scaled from V's, so it is the roughest part) and are refined at every epoch.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lotj.config import Config
from lotj.train.chain_targets import is_round, set_tail_weight

#: training steps after which a first whole-run estimate is printed (when an epoch has at least 4 times as many)
EARLY_STEPS = 10
#: a CPU run whose whole estimate exceeds this many seconds is told where a GPU would help
GPU_HINT_SECONDS = 30 * 60
#: cost of a W training step per firm state of its batch, relative to a V step's per state: W's residual covers
#: every worker of a state on a grid of wages, with poachers from Π (the smoke preset on a 2-core CPU: 145 s for
#: 400 W steps of 64 states against 8.5 s per V epoch of 100 steps of 128 states, a ratio of about 9)
W_STEP_COST_RATIO = 9.0
#: cost of a simulated year with wages, relative to one without: the W stage tracks wages and backs them out at
#: every reset (the smoke preset: 0.86 s per year with wages against 0.20 s without)
WAGE_SIMULATION_COST_RATIO = 4.0
#: cost of one chain of the V error estimate or of a chain-target set (every step until its weight falls below
#: accuracy.tail_weight), relative to a V training step per firm state: the smoke preset on a 2-core CPU, 0.023 s
#: per training step of 128 states against 55 s for the final estimate's 768 chains (a ratio of about 400) and
#: 113-124 s for a 512-state set's 1,152 chains (about 570); once a set is done its measured time is used
CHAIN_COST_RATIO = 500.0


def chain_count(cfg: Config, states: int, cross_iterations: int, cross_reps: int) -> int:
    """Chains of one error estimate at ``states`` states: two continuations, each with its cross-firm rounds
    (lotj.accuracy.estimate)."""
    return 2 * (states + cross_iterations * 2 * cross_reps * cfg.accuracy.m_e)


def chain_stage_estimate(
    cfg: Config, v_step_seconds: float, epochs_done: int, set_seconds: float | None = None
) -> float:
    """Seconds of the chain-target sets still to come after ``epochs_done`` epochs (``solver.chain_states``) and
    of the final V error estimate (``accuracy.enabled``): at :data:`CHAIN_COST_RATIO`, or, once a set has been
    estimated, at the measured ``set_seconds`` per set's chains."""
    s, acc = cfg.solver, cfg.accuracy
    # a set's chains run ln(1/w) discount lengths (w: the weight at which they stop, solver.chain_horizon) against
    # the final estimate's ln(1/accuracy.tail_weight)
    horizon = math.log(1.0 / set_tail_weight(cfg)) / math.log(1.0 / acc.tail_weight)
    per_chain = CHAIN_COST_RATIO * v_step_seconds / max(s.batch_size, 1)
    if set_seconds is not None and s.chain_states > 0:
        per_chain = set_seconds / chain_count(cfg, s.chain_states, 1, 1) / horizon
    per_set_chain = per_chain * horizon
    seconds = 0.0
    if s.chain_states > 0:
        rounds = sum(is_round(e, s.chain_start, s.chain_every, s.max_epochs) for e in range(epochs_done, s.max_epochs))
        seconds += rounds * chain_count(cfg, s.chain_states, 1, 1) * per_set_chain
    if acc.enabled:
        seconds += chain_count(cfg, acc.n_states, acc.cross_iterations, acc.cross_reps) * per_chain
    return seconds


def format_seconds(seconds: float) -> str:
    """``4.2 s``, ``42 s``, ``3 min 5 s``, ``2 h 07 min``."""
    s = max(0.0, float(seconds))
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def w_stage_estimate(cfg: Config, v_step_seconds: float, sim_year_seconds: float) -> float:
    """Seconds the W stage should take: its training steps at the V step's cost per firm state (scaled by
    :data:`W_STEP_COST_RATIO`) and its simulated years (burn-in, refreshes, panel) at the simulator's pace
    (scaled by :data:`WAGE_SIMULATION_COST_RATIO`). Zero without a W stage."""
    if "w" not in cfg.solver.stages:
        return 0.0
    ws = cfg.wsolver
    per_state = v_step_seconds / max(cfg.solver.batch_size, 1)
    training = ws.max_epochs * ws.steps_per_epoch * ws.batch_size * per_state * W_STEP_COST_RATIO
    years = ws.burn_in_years + ws.max_epochs * ws.refresh_years + cfg.sim.panel_years
    return training + years * sim_year_seconds * WAGE_SIMULATION_COST_RATIO


class RunProgress(Callback):
    """The run-level progress of the V stage (module docstring). Put it before the
    :class:`~lotj.train.sim_callback.SimulatorCallback` in the Trainer's callbacks, so that it announces
    the burn-in before the simulator runs it; ``simulator_callback`` (optional) gives the simulator's
    measured pace for the estimate."""

    def __init__(self, cfg: Config, simulator_callback: Any = None, stream: TextIO | None = None):
        self.cfg = cfg
        self.sim_cb = simulator_callback
        #: the run's :class:`lotj.train.chain_targets.ChainTargets` (its sets' seconds), or None
        self.chain_cb: Any = None
        self.stream = stream
        self.run_start = time.perf_counter()
        self._fit_start: float | None = None
        self._epoch_starts: list[float] = []
        self._steps_at_start: list[int] = []
        self.estimate_s: float | None = None  #: the whole-run estimate printed after the first epoch
        self.early_estimate_s: float | None = None  #: the first estimate, after EARLY_STEPS steps
        self._hinted = False

    # ---------------------------------------------------------------- output
    def say(self, message: str) -> None:
        """One line on standard error, above any progress bar."""
        if not self.cfg.logging.progress_bar:
            return
        from tqdm import tqdm

        tqdm.write(f"lotj.train: {message}", file=self.stream or sys.stderr)

    @contextmanager
    def phase(self, what: str) -> Iterator[None]:
        """Announce a start-up phase, then say how long it took."""
        self.say(f"{what} ...")
        start = time.perf_counter()
        yield
        self.say(f"{what}: done in {format_seconds(time.perf_counter() - start)}")

    # ---------------------------------------------------------------- the pace
    def _simulated_year_seconds(self) -> float | None:
        """Seconds per simulated year so far (burn-in and the epochs' refreshes), or None."""
        if self.sim_cb is None or not getattr(self.sim_cb, "simulation_seconds", 0.0):
            return None
        sim = self.cfg.sim
        epochs = max(len(self._epoch_starts) - 1, 0)
        years = (sim.burn_in_years if self.sim_cb.burned_in else 0.0) + epochs * sim.years_per_epoch
        return self.sim_cb.simulation_seconds / years if years > 0 else None

    def remaining_seconds(self, epochs_done: int, epoch_seconds: float, v_step_seconds: float) -> float:
        """The V stage's remaining epochs, then the panel and the W stage."""
        cfg = self.cfg
        remaining = max(cfg.solver.max_epochs - epochs_done, 0) * epoch_seconds
        year = self._simulated_year_seconds()
        if year is not None:
            remaining += cfg.sim.panel_years * year + w_stage_estimate(cfg, v_step_seconds, year)
        cb = self.chain_cb
        set_seconds = cb.seconds / cb.rounds if cb is not None and cb.rounds > 0 else None
        return remaining + chain_stage_estimate(cfg, v_step_seconds, epochs_done, set_seconds)

    # ---------------------------------------------------------------- hooks
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()
        sim = self.cfg.sim
        if self.sim_cb is not None and not self.sim_cb.burned_in and sim.burn_in_years > 0:
            years, firms = f"{sim.burn_in_years:g}", sim.n_firms
            self.say(f"burn-in: simulating {years} years of {firms} firms under the initial guess of V ...")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        if not self._epoch_starts and self._fit_start is not None and self.sim_cb is not None:
            if self.sim_cb.simulation_seconds > 0 and self.cfg.sim.burn_in_years > 0:
                self.say(f"burn-in: done in {format_seconds(now - self._fit_start)}")
        self._epoch_starts.append(now)
        self._steps_at_start.append(int(trainer.global_step))
        if len(self._epoch_starts) >= 2:
            self._report(trainer, now)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self.early_estimate_s is not None or len(self._epoch_starts) != 1:
            return
        steps = int(trainer.global_step) - self._steps_at_start[0]
        if steps < EARLY_STEPS or self.cfg.solver.steps_per_epoch < 4 * EARLY_STEPS:
            return
        now = time.perf_counter()
        in_epoch = now - self._epoch_starts[0]
        step = in_epoch / steps
        year = self._simulated_year_seconds() or 0.0
        epoch = step * self.cfg.solver.steps_per_epoch + self.cfg.sim.years_per_epoch * year
        remaining = self.remaining_seconds(trainer.current_epoch, epoch, step) - in_epoch
        self.early_estimate_s = now - self.run_start + remaining
        self.say(
            f"{steps} steps took {format_seconds(in_epoch)}: a first estimate of the whole run is about "
            f"{format_seconds(self.early_estimate_s)} (refined after the first epoch)"
        )
        self._gpu_hint(trainer, self.early_estimate_s)

    def _gpu_hint(self, trainer: L.Trainer, estimate: float) -> None:
        """On a CPU, for a long run, once: where a GPU would help."""
        if self._hinted or trainer.strategy.root_device.type != "cpu" or estimate <= GPU_HINT_SECONDS:
            return
        self._hinted = True
        where = "a GPU is available here" if torch.cuda.is_available() else "on a GPU node"
        self.say(
            f"{where} this runs far faster: add trainer.accelerator=gpu, or submit "
            f"`sbatch slurm/train.sh conf={self.cfg.conf}` (docs/scaling.md)"
        )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        self._epoch_starts.append(now)
        self._steps_at_start.append(int(trainer.global_step))
        self.say(f"V stage: {trainer.current_epoch} epochs in {format_seconds(now - self._epoch_starts[0])}")

    def _report(self, trainer: L.Trainer, now: float) -> None:
        done = len(self._epoch_starts) - 1  # epochs completed in this fit (a resumed run starts later)
        # the pace of an epoch without its chain-target sets (counted apart, by chain_stage_estimate)
        chains = self.chain_cb.seconds if self.chain_cb is not None else 0.0
        epoch_seconds = max(now - self._epoch_starts[0] - chains, 0.0) / done
        steps = max(self._steps_at_start[-1] - self._steps_at_start[0], 1)
        v_step = (now - self._epoch_starts[0]) / steps
        k, total = trainer.current_epoch, self.cfg.solver.max_epochs  # epochs completed in all
        remaining = self.remaining_seconds(k, epoch_seconds, v_step)
        elapsed = now - self.run_start
        if done == 1:
            self.estimate_s = elapsed + remaining
            self.say(
                f"first epoch took {format_seconds(epoch_seconds)}; the whole run (V stage of up to {total} epochs, "
                f"panel{', W stage' if 'w' in self.cfg.solver.stages else ''}) should take about "
                f"{format_seconds(self.estimate_s)} on {trainer.strategy.root_device.type.upper()} "
                "(at most: a run that converges stops earlier)"
            )
            self._gpu_hint(trainer, self.estimate_s)
        self.say(f"epoch {k}/{total} · elapsed {format_seconds(elapsed)} · remaining about {format_seconds(remaining)}")
