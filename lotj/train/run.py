"""One solve: ``train(cfg)`` (what ``python -m lotj.train`` runs).

Builds the pieces from the config (:func:`build_datamodule`, :func:`build_module`,
:func:`build_trainer`), trains V with a Lightning Trainer jointly with the simulated economy
(:class:`lotj.train.sim_callback.SimulatorCallback`, unless ``sim.enabled=false``), simulates the
annual panel under the trained V, then runs the W stage when ``solver.stages`` has ``w``
(:func:`lotj.train.wstage.run_w_stage`, continuing the same simulator). It writes into ``cfg.out_dir``:

- ``config.yaml``: the resolved config;
- ``metrics.csv``: per epoch ``train/loss``, ``val/residual``, ``val/residual_mc``, ``train/lr``,
  ``time/elapsed_s``, ``sim/*`` (and whatever extra callbacks log); a resumed run rewrites it from
  the resumed epoch on (the summary does not read it: :class:`RunRecord`);
- ``checkpoints/last.ckpt``: the state at the end of the last completed epoch (network, optimiser,
  simulator, DataModule, :class:`RunRecord`), from which ``resume=`` continues the same path;
- ``panel.parquet``: the annual panel (docs/panel.md), with the wage columns after a W stage;
- ``w/metrics.csv``, ``w_net.pt``: the W stage's metrics and network (docs/wages.md);
- ``moments.json``, ``analysis.json``, ``targets.csv``, ``tables/``, ``figures/``, ``report.md``: the measurement
  of the panel (:func:`lotj.measure.after_run.measure_run`, docs/measurement.md);
- ``summary.json``: the dict :func:`train` returns (see :func:`train`).

A non-finite loss, gradient, parameter or held-out residual stops the run (status ``"nan"``) with a
message naming the epoch; ``last.ckpt`` then holds the last good epoch.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar

from lotj.config import Config, to_yaml
from lotj.errors import ConfigError
from lotj.nets import franchise_guess
from lotj.sim.panel import write_panel
from lotj.sim.simulator import Simulator
from lotj.train.chain_targets import ChainTargets
from lotj.train.datamodule import OmegaDataModule
from lotj.train.logging import build_loggers, finish_wandb, quiet_foreign_notices
from lotj.train.placement import simulation_device, to_simulator
from lotj.train.progress import RunProgress
from lotj.train.sim_callback import SimulatorCallback
from lotj.train.vmodule import NonFiniteError, VModule, evaluate_heldout
from lotj.train.warm_start import load_v_weights


def build_datamodule(cfg: Config) -> OmegaDataModule:
    """The Ω DataModule on the initial economy (set up: its snapshot exists)."""
    dm = OmegaDataModule(cfg)
    dm.setup("fit")
    return dm


def build_module(cfg: Config, datamodule: OmegaDataModule | None = None) -> VModule:
    """The VModule, its network's separable guess set from the DataModule's χ (or ``net.franchise``),
    in the run's precision."""
    franchise = 1.0
    if datamodule is not None and datamodule.snapshot is not None:
        franchise = franchise_guess(datamodule.snapshot.firms, cfg.economy.eta)
    module = VModule(cfg, franchise=franchise)
    return module.to(torch.float64 if cfg.trainer.precision == "64-true" else torch.float32)


class ToleranceStop(Callback):
    """Stop once ``val/residual < solver.tol`` and every other callback with a ``converged`` attribute
    reports True (the simulator's convergence of χ plugs in that way)."""

    def __init__(self, tol: float):
        self.tol = tol

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get("val/residual")
        if value is None or not float(value) < self.tol:
            return
        others = [cb for cb in trainer.callbacks if cb is not self and hasattr(cb, "converged")]
        if all(bool(cb.converged) for cb in others):
            trainer.should_stop = True


class RunRecord(Callback):
    """The per-epoch metrics that the summary reads, kept in the checkpoint: Lightning's CSV logger
    rewrites ``metrics.csv`` when a run resumes, so a resumed run's summary (epochs, best residual,
    time to tolerance) comes from here and matches the uninterrupted run's."""

    KEYS = {
        "loss": "train/loss",
        "residual": "val/residual",
        "residual_mc": "val/residual_mc",
        "residual_state": "val/residual_state",
        "negative_v": "val/negative_v",
        "l2": "val/l2",
    }

    def __init__(self):
        self.rows: list[dict[str, float | None]] = []
        self._base = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._base = float(self.rows[-1].get("elapsed_s") or 0.0) if self.rows else 0.0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row: dict[str, float | None] = {"epoch": float(trainer.current_epoch)}
        for key, name in self.KEYS.items():
            row[key] = float(metrics[name]) if name in metrics else None
        t0 = getattr(pl_module, "_t0", None)
        row["elapsed_s"] = self._base + (time.perf_counter() - t0) if t0 is not None else None
        self.rows.append(row)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state_dict["rows"]]


def build_trainer(
    cfg: Config,
    *,
    callbacks: list | None = None,
    logger: Any = None,
    plugins: list | None = None,
    enable_checkpointing: bool = True,
) -> tuple[L.Trainer, ModelCheckpoint | None, list]:
    """The Lightning Trainer of a run, its ModelCheckpoint (or None) and its loggers."""
    quiet_foreign_notices()
    out = Path(cfg.out_dir)
    cbs: list = []
    ckpt = None
    if enable_checkpointing:
        ckpt = ModelCheckpoint(
            dirpath=str(out / "checkpoints"),
            filename="last",
            save_top_k=1,
            monitor=None,
            enable_version_counter=False,
        )
        cbs.append(ckpt)
    if cfg.logging.progress_bar:
        cbs.append(TQDMProgressBar(refresh_rate=max(1, cfg.solver.steps_per_epoch // 20)))
    if cfg.solver.stop_at_tol:
        cbs.append(ToleranceStop(cfg.solver.tol))
    cbs.extend(callbacks or [])
    loggers = build_loggers(cfg, logger)
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        precision=cfg.trainer.precision,
        max_epochs=cfg.solver.max_epochs,
        logger=loggers,
        callbacks=cbs,
        plugins=plugins,
        enable_checkpointing=enable_checkpointing,
        enable_progress_bar=cfg.logging.progress_bar,
        enable_model_summary=False,
        gradient_clip_val=cfg.solver.grad_clip or None,
        reload_dataloaders_every_n_epochs=1,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, cfg.solver.steps_per_epoch),
        default_root_dir=str(out),
        deterministic=cfg.trainer.deterministic,
    )
    return trainer, ckpt, loggers


def _device_name(trainer: L.Trainer) -> str:
    dev = trainer.strategy.root_device
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return str(dev)


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


#: held-out sets of ``solver.n_heldout`` states behind ``residual_final`` (four times an epoch's held-out sample)
FINAL_HELDOUT_SETS = 4


def final_heldout_batches(cfg: Config, dm: OmegaDataModule) -> list:
    """``FINAL_HELDOUT_SETS`` fresh held-out sets of Ω states, with their draws, from the DataModule's
    current (final) market, from generators keyed by the seed: ``summary.json``'s ``residual_final``.
    One epoch's held-out figure scatters (docs/solver.md, section 8); four sets steady it."""
    gens = [torch.Generator().manual_seed(cfg.seed + 3 + k) for k in range(FINAL_HELDOUT_SETS)]
    return [b for gen in gens for b in dm.heldout_batches(gen)]


def train(
    cfg: Config,
    *,
    callbacks: list | None = None,
    logger: Any = None,
    plugins: list | None = None,
    enable_checkpointing: bool = True,
    datamodule: OmegaDataModule | None = None,
    module: VModule | None = None,
) -> dict:
    """Solve from the config and return the run's summary (also written to ``out_dir/summary.json``).

    ``callbacks`` are appended to the Trainer's (a Tune reporter, or a
    :class:`~lotj.train.sim_callback.SimulatorCallback` of the caller's own, which is then used in
    place of the one built from the config); ``logger`` is added to the CSV (and W&B) loggers;
    ``plugins`` go to the Trainer; ``datamodule``/``module`` replace the ones built from the config
    (so that a callback can be wired to the DataModule before training).

    Summary keys: ``status`` (``ok`` | ``nan``), ``message``, ``loss`` (last epoch's mean training
    loss), ``residual`` (last held-out scale-free residual), ``residual_mc``, ``residual_state``,
    ``negative_v`` (docs/solver.md), ``best_residual``, ``residual_final`` (the final network on
    :data:`FINAL_HELDOUT_SETS` fresh held-out sets of the final market: a steadier figure than the last
    epoch's; :func:`final_heldout_batches`), ``l2`` and ``l2_final`` (the last epoch's and the final
    network's unscaled mean squared residual, ``val/l2``), ``initial_residual`` (before training),
    ``epochs`` (completed training epochs, a resumed run's included), ``tol``, ``time_to_tol_s``
    (training time at the first epoch with ``residual <= tol``, or null), ``wall_time_s`` (V stage),
    ``device``, ``checkpoint`` (path of ``last.ckpt`` or null), ``out_dir``; with the simulator, those
    of :meth:`SimulatorCallback.summary` (``sim_*``, over the panel's years) and ``time_simulation_s``;
    after a W stage, those of :func:`lotj.train.wstage.run_w_stage` (``w_*``, ``wage_*``, ...); with a panel,
    ``moments`` (moments.json) and ``measure_seconds`` (or ``measure_error``); with ``accuracy.enabled``, the
    estimated global error of V (``v_error_*``) and ``convergence``, the certified stop rule
    (:mod:`lotj.train.accuracy`, docs/accuracy.md);
    ``total_time_s`` (the whole solve).
    """
    out = _start_run(cfg)
    start = time.perf_counter()
    run = _build_run(
        cfg,
        out,
        callbacks=callbacks,
        logger=logger,
        plugins=plugins,
        enable_checkpointing=enable_checkpointing,
        datamodule=datamodule,
        module=module,
    )
    status, message = _fit_v(cfg, run)
    wall = time.perf_counter() - start
    final = _final_heldout_figures(cfg, run, status)
    summary = _v_summary(cfg, run, status, message, final, wall)
    if status == "ok":
        if run.sim_cb is not None:
            _simulate_panel(cfg, run, summary)
        if cfg.accuracy.enabled and run.record.rows:
            _estimate_v_error(cfg, run, summary)
        if "w" in cfg.solver.stages:
            _w_stage(cfg, run, summary)
        if (out / "panel.parquet").is_file():
            _measure(cfg, run, summary)
    summary["total_time_s"] = time.perf_counter() - start
    if status == "nan":
        print(f"lotj.train: {message}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


@dataclass
class _Run:
    """The pieces of one solve (:func:`_build_run`), which its stages read: the output folder, the progress
    report, the device of V outside fit and of the simulator, the DataModule and V's module, the simulator's
    callback (None: no simulator), the accuracy check during training (None: off), the per-epoch record, the
    Trainer with its checkpoint and loggers, and the initial guess's held-out residual."""

    out: Path
    progress: RunProgress
    device: torch.device
    dm: OmegaDataModule
    vm: VModule
    sim_cb: SimulatorCallback | None
    check: Callback | None
    record: RunRecord
    trainer: L.Trainer
    ckpt: ModelCheckpoint | None
    loggers: list
    initial: float

    @property
    def simulator(self) -> Simulator | None:
        return self.sim_cb.simulator if self.sim_cb is not None else None


def _start_run(cfg: Config) -> Path:
    """The output folder with ``config.yaml``, the seeds and the thread count of the run."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(cfg))
    # the CSV logger warns about any file in out_dir (config.yaml is written first); it only rewrites metrics.csv
    warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)
    return out


def _build_run(
    cfg: Config,
    out: Path,
    *,
    callbacks: list | None,
    logger: Any,
    plugins: list | None,
    enable_checkpointing: bool,
    datamodule: OmegaDataModule | None,
    module: VModule | None,
) -> _Run:
    """The run's pieces (:func:`train`'s arguments replace the ones built from the config), and the initial
    guess's held-out residual."""
    progress = RunProgress(cfg)
    device = simulation_device(cfg)  # the trainer's device: the simulator's, and V's outside fit
    if datamodule is None:
        with progress.phase(f"drawing the initial economy ({cfg.sim.n_firms} firms) and its Ω states"):
            datamodule = build_datamodule(cfg)
    dm = datamodule
    vm = _v_module(cfg, dm, module, device)
    with progress.phase("the initial guess's held-out residual"):
        initial = evaluate_heldout(vm, dm.heldout_batches(torch.Generator().manual_seed(cfg.seed + 2)))["val/residual"]
    extra, sim_cb, check = _run_callbacks(cfg, callbacks, dm, device, progress)
    record = RunRecord()
    trainer, ckpt, loggers = build_trainer(
        cfg, callbacks=[record, *extra], logger=logger, plugins=plugins, enable_checkpointing=enable_checkpointing
    )
    return _Run(out, progress, device, dm, vm, sim_cb, check, record, trainer, ckpt, loggers, initial)


def _v_module(cfg: Config, dm: OmegaDataModule, module: VModule | None, device: torch.device) -> VModule:
    """V's module (the caller's, else :func:`build_module`) on the run's device, with another run's V network
    when ``init_from`` is set (a warm start: that run's V, this run's economy; :mod:`lotj.train.warm_start`)."""
    vm = module if module is not None else build_module(cfg, dm)
    vm.to(device)
    if cfg.init_from:
        if cfg.resume:
            raise ConfigError("resume and init_from both set: resume continues a run, init_from starts a new one")
        load_v_weights(vm, cfg.init_from)
    return vm


def _run_callbacks(
    cfg: Config, callbacks: list | None, dm: OmegaDataModule, device: torch.device, progress: RunProgress
) -> tuple[list, SimulatorCallback | None, Callback | None]:
    """The caller's callbacks with the run's own: the progress report first, the simulator's callback (the
    caller's, else one built from the config when ``sim.enabled``) and V's error check when
    ``accuracy.stall_patience > 0``. Returns them, the simulator's callback and the check."""
    extra = list(callbacks or [])
    sim_cb = next((cb for cb in extra if isinstance(cb, SimulatorCallback)), None)
    if sim_cb is None and cfg.sim.enabled:
        sim_cb = SimulatorCallback(Simulator.from_config(cfg, device=device), dm, cfg)
        extra.insert(0, sim_cb)
    progress.sim_cb = sim_cb
    extra.insert(0, progress)  # before the simulator's callback: it announces the burn-in
    check = None
    if cfg.accuracy.enabled and cfg.accuracy.stall_patience > 0:
        from lotj.train.accuracy import VErrorCheck

        check = VErrorCheck(cfg, dm, sim_cb)
        extra.append(check)
    if cfg.solver.chain_states > 0:  # after the simulator's callback: each set is estimated on the refreshed market
        progress.chain_cb = ChainTargets(cfg, dm)
        extra.append(progress.chain_cb)
    return extra, sim_cb, check


def _fit_v(cfg: Config, run: _Run) -> tuple[str, str]:
    """Train V (resuming ``cfg.resume`` when set). Returns the status (``ok`` | ``nan``) and its message."""
    run.vm._t0 = time.perf_counter()
    status, message = "ok", ""
    try:
        run.trainer.fit(run.vm, datamodule=run.dm, ckpt_path=cfg.resume or None)
    except NonFiniteError as exc:
        status, message = "nan", f"{exc}; the last good checkpoint is kept"
    finally:
        finish_wandb(run.loggers)
    return status, message


def _final_heldout_figures(cfg: Config, run: _Run, status: str) -> dict[str, float]:
    """The final network on :func:`final_heldout_batches` (empty when the run failed or trained no epoch)."""
    run.vm.to(run.device)  # Lightning's teardown left V on the CPU
    if status != "ok" or not run.record.rows:
        return {}
    run.vm.eval()
    return evaluate_heldout(run.vm, final_heldout_batches(cfg, run.dm))


def _v_summary(cfg: Config, run: _Run, status: str, message: str, final: dict[str, float], wall: float) -> dict:
    """The V stage's keys of the summary (:func:`train`), from the per-epoch record and the final figures."""
    rows = run.record.rows
    last = rows[-1] if rows else {}
    residuals = [r["residual"] for r in rows if r.get("residual") is not None]
    reached = [r for r in rows if r.get("residual") is not None and r["residual"] <= cfg.solver.tol]
    ckpt = run.ckpt
    ckpt_path = Path(ckpt.dirpath) / "last.ckpt" if ckpt is not None and ckpt.dirpath else None
    if status == "ok" and not message:
        message = "reached tolerance" if reached else "stopped at max_epochs"
    summary = {
        "status": status,
        "message": message,
        "loss": _finite(last.get("loss")),
        "residual": _finite(last.get("residual")),
        "residual_mc": _finite(last.get("residual_mc")),
        "residual_state": _finite(last.get("residual_state")),
        "negative_v": _finite(last.get("negative_v")),
        "best_residual": _finite(min(residuals)) if residuals else None,
        "residual_final": _finite(final.get("val/residual")),
        "l2": _finite(last.get("l2")),
        "l2_final": _finite(final.get("val/l2")),
        "initial_residual": _finite(run.initial),
        "epochs": int(run.trainer.current_epoch),
        "tol": cfg.solver.tol,
        "time_to_tol_s": _finite(reached[0].get("elapsed_s")) if reached else None,
        "wall_time_s": wall,
        "device": _device_name(run.trainer),
        "checkpoint": str(ckpt_path) if ckpt_path is not None and ckpt_path.is_file() else None,
        "out_dir": str(run.out),
        "init_from": cfg.init_from or None,
    }
    for cb in run.trainer.callbacks:
        if isinstance(cb, ChainTargets):
            summary.update(cb.summary())
    return summary


def _simulate_panel(cfg: Config, run: _Run, summary: dict) -> None:
    """The annual panel under the trained V, continuing the simulator's path (the window of the ``sim_*``
    statistics); ``panel.parquet`` is written here unless a W stage follows (it writes the panel with wages)."""
    sim = run.simulator
    to_simulator(sim.device, run.vm)  # a caller's simulator may live elsewhere
    with torch.no_grad(), run.progress.phase(f"simulating the {cfg.sim.panel_years}-year panel under the trained V"):
        # with a W stage, the W stage's panel is the one that starts at sim.panel_from_year
        from_year = cfg.sim.panel_from_year if "w" not in cfg.solver.stages else 0
        panel = sim.simulate_panel(run.vm.value_function(), cfg.sim.panel_years, from_year)
    if "w" not in cfg.solver.stages:
        write_panel(panel, run.out / "panel.parquet")
    summary.update(run.sim_cb.summary())
    summary["time_simulation_s"] = run.sim_cb.simulation_seconds


def _estimate_v_error(cfg: Config, run: _Run, summary: dict) -> None:
    """V's estimated global error and the certified stop rule (:mod:`lotj.train.accuracy`, docs/accuracy.md)."""
    from lotj.train.accuracy import v_error_summary

    settled = run.sim_cb is None or run.sim_cb.tracker.settled
    with run.progress.phase("estimating V's global error along the firms' chains of events"):
        summary.update(v_error_summary(cfg, run.vm.value_function(), run.dm.source, settled))
    if run.check is not None:
        summary.update(run.check.summary())


def _w_stage(cfg: Config, run: _Run, summary: dict) -> None:
    """The W stage with V frozen (:func:`lotj.train.wstage.run_w_stage`): it continues the V stage's simulator
    (its path goes on) and writes ``panel.parquet`` with wages."""
    from lightning.pytorch.loggers import CSVLogger

    from lotj.train.wstage import run_w_stage

    with run.progress.phase("W stage: training W with V frozen, then simulating wages"):
        summary.update(
            run_w_stage(
                cfg,
                run.vm.value_function(),
                run.dm.snapshot,
                simulator=run.simulator,
                out_dir=run.out,
                logger=CSVLogger(str(run.out), name="w", version=""),
            )
        )


def _measure(cfg: Config, run: _Run, summary: dict) -> None:
    """The measurement of the panel: ``moments.json``, ``targets.csv`` and the rest (docs/measurement.md)."""
    from lotj.measure.after_run import measure_run

    with run.progress.phase("measuring the panel: moments.json, targets.csv"):
        summary.update(measure_run(cfg, run.out, run.loggers))
