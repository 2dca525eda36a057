"""One training run of V: ``train(cfg)`` (what ``python -m lotj.train`` runs).

Builds the pieces from the config (:func:`build_datamodule`, :func:`build_module`,
:func:`build_trainer`), trains with a Lightning Trainer, and writes into ``cfg.out_dir``:

- ``config.yaml``: the resolved config;
- ``metrics.csv``: per epoch ``train/loss``, ``val/residual``, ``val/residual_mc``, ``train/lr``,
  ``time/elapsed_s`` (and whatever extra callbacks log);
- ``checkpoints/last.ckpt``: the state at the end of the last completed epoch;
- ``summary.json``: the dict :func:`train` returns (see :func:`train`).

A non-finite loss, gradient, parameter or held-out residual stops the run (status ``"nan"``) with a
message naming the epoch; ``last.ckpt`` then holds the last good epoch.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar

from lotj.config import Config, to_yaml
from lotj.nets import franchise_guess
from lotj.train.datamodule import OmegaDataModule
from lotj.train.logging import build_loggers, finish_wandb
from lotj.train.vmodule import NonFiniteError, VModule, evaluate_heldout


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


def build_trainer(
    cfg: Config,
    *,
    callbacks: list | None = None,
    logger: Any = None,
    plugins: list | None = None,
    enable_checkpointing: bool = True,
) -> tuple[L.Trainer, ModelCheckpoint | None, list]:
    """The Lightning Trainer of a run, its ModelCheckpoint (or None) and its loggers."""
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
        deterministic=False,
    )
    return trainer, ckpt, loggers


def _device_name(trainer: L.Trainer) -> str:
    dev = trainer.strategy.root_device
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return str(dev)


def _metric_history(out: Path) -> list[dict[str, float]]:
    """Per-epoch rows of metrics.csv (merged across the rows Lightning writes per epoch)."""
    path = out / "metrics.csv"
    if not path.is_file():
        return []
    import csv

    rows: dict[int, dict[str, float]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for k, v in row.items():
                if v not in ("", None) and k not in ("epoch", "step"):
                    rows.setdefault(epoch, {})[k] = float(v)
    return [{"epoch": e, **rows[e]} for e in sorted(rows)]


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


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
    """Train V from the config and return the run's summary (also written to ``out_dir/summary.json``).

    ``callbacks`` are appended to the Trainer's (the simulator's callback, a Tune reporter);
    ``logger`` is added to the CSV (and W&B) loggers; ``plugins`` go to the Trainer;
    ``datamodule``/``module`` replace the ones built from the config (so that a callback can be
    wired to the DataModule before training). Summary keys: ``status`` (``ok`` | ``nan``),
    ``message``, ``loss`` (last epoch's mean training loss), ``residual`` (last held-out scale-free
    residual), ``residual_mc``, ``residual_state``, ``negative_v`` (docs/solver.md), ``best_residual``,
    ``initial_residual`` (before training),
    ``epochs``, ``tol``, ``time_to_tol_s`` (wall time at the first epoch with ``residual <= tol``, or
    null), ``wall_time_s``, ``device``, ``checkpoint`` (path of ``last.ckpt`` or null), ``out_dir``.
    """
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(cfg))
    # the CSV logger warns about any file in out_dir (config.yaml is written first); it only rewrites metrics.csv
    warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)

    start = time.perf_counter()
    dm = datamodule if datamodule is not None else build_datamodule(cfg)
    vm = module if module is not None else build_module(cfg, dm)
    initial = evaluate_heldout(vm, dm.heldout_batches(torch.Generator().manual_seed(cfg.seed + 2)))["val/residual"]
    trainer, ckpt, loggers = build_trainer(
        cfg, callbacks=callbacks, logger=logger, plugins=plugins, enable_checkpointing=enable_checkpointing
    )
    vm._t0 = time.perf_counter()
    status, message = "ok", ""
    try:
        trainer.fit(vm, datamodule=dm, ckpt_path=cfg.resume or None)
    except NonFiniteError as exc:
        status, message = "nan", f"{exc}; the last good checkpoint is kept"
    finally:
        finish_wandb(loggers)
    wall = time.perf_counter() - start

    history = _metric_history(out)
    last = history[-1] if history else {}
    residuals = [r["val/residual"] for r in history if "val/residual" in r]
    reached = [r for r in history if r.get("val/residual", math.inf) <= cfg.solver.tol]
    ckpt_path = Path(ckpt.dirpath) / "last.ckpt" if ckpt is not None and ckpt.dirpath else None
    if status == "ok" and not message:
        message = "reached tolerance" if reached else "stopped at max_epochs"
    summary = {
        "status": status,
        "message": message,
        "loss": _finite(last.get("train/loss")),
        "residual": _finite(last.get("val/residual")),
        "residual_mc": _finite(last.get("val/residual_mc")),
        "residual_state": _finite(last.get("val/residual_state")),
        "negative_v": _finite(last.get("val/negative_v")),
        "best_residual": _finite(min(residuals)) if residuals else None,
        "initial_residual": _finite(initial),
        "epochs": len([r for r in history if "train/loss" in r]),
        "tol": cfg.solver.tol,
        "time_to_tol_s": _finite(reached[0].get("time/elapsed_s")) if reached else None,
        "wall_time_s": wall,
        "device": _device_name(trainer),
        "checkpoint": str(ckpt_path) if ckpt_path is not None and ckpt_path.is_file() else None,
        "out_dir": str(out),
    }
    if status == "nan":
        print(f"lotj.train: {message}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
