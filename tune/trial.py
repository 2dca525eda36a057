"""What runs inside one Ray Tune trial.

Each trial builds its config exactly as the command line does
(``load_config([f"conf={conf}", *shared_overrides, *trial_overrides])``), so a refused value is that
trial's error, then calls the one training function, ``lotj.train.run.train``, with

- a callback that reports every epoch's metrics to Tune together with a checkpoint,
- ``LightningEnvironment()``: the Trainer must not take a Slurm allocation as its own (no requeue
  handlers, no ranks read from ``SLURM_PROCID``),
- ``enable_checkpointing=False``: Tune keeps the checkpoints,
- with ``logging.logger=wandb``, W&B's run name, id and mode in the environment and the sweep's
  group in ``logging.group`` (one run per trial, one group per sweep; ``tune.tracking``).

A trial fails (and the sweep goes on) when training raises, returns status ``nan``, or reports a
non-finite loss or metric.
"""

from __future__ import annotations

import importlib
import json
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from tune.spec import trial_overrides
from tune.tracking import teardown, trial_run_env

#: The file inside every Tune checkpoint of a trial (a Lightning checkpoint).
CHECKPOINT_FILE = "model.ckpt"
#: What the trial writes beside its run directory: the dict the training function returned.
SUMMARY_FILE = "lotj_summary.json"
#: The trial's run directory (the ``out_dir`` of its config) inside the Tune trial directory.
RUN_SUBDIR = "run"


class TrialDiverged(RuntimeError):
    """Training produced a non-finite loss or metric (or returned status ``nan``)."""


@dataclass
class TrialContext:
    """What every trial of a sweep shares; passed to the trainable with ``tune.with_parameters``."""

    conf: str
    overrides: list[str]
    experiment_dir: str  #: the Tune experiment directory (absolute, on storage every node sees)
    metric: str
    wandb_mode: str = "disabled"  #: online | offline | disabled, decided once by the driver
    wandb_group: str = ""  #: ``logging.group`` of every trial (the sweep's name unless the config sets one)
    train_fn: str = "lotj.train.run:train"  #: module:function of the training function (``python -m lotj.train``'s)


def trial_dirname(trial: Any) -> str:
    """Short trial folder names (``trial_<id>``); Tune's default repeats every sampled value."""
    return f"trial_{trial.trial_id}"


def metric_name(name: str) -> str:
    """Lightning's metric names as Tune keys: ``val/residual`` -> ``val_residual``."""
    return name.replace("/", "_")


class TuneReportCallback(Callback):
    """At each training epoch end: report the logged metrics and a checkpoint to Tune.

    ``on_train_epoch_end`` runs after the epoch's validation, so the held-out residual of the
    epoch is among the metrics. A non-finite metric or loss raises :class:`TrialDiverged`.
    """

    def __init__(self, metric: str, config_yaml: str) -> None:
        self.metric = metric
        self.config_yaml = config_yaml

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from ray import tune as ray_tune

        if trainer.sanity_checking:
            return
        metrics: dict[str, float] = {}
        for name, value in trainer.callback_metrics.items():
            if hasattr(value, "numel") and value.numel() != 1:
                continue
            metrics[metric_name(name)] = float(value)
        metrics["epoch"] = trainer.current_epoch + 1
        watched = [k for k in metrics if k == self.metric or "loss" in k]
        bad = {k: metrics[k] for k in watched if not math.isfinite(metrics[k])}
        if bad:
            raise TrialDiverged(f"non-finite {bad} at epoch {metrics['epoch']}")
        with tempfile.TemporaryDirectory(prefix="lotj-ckpt-") as tmp:
            trainer.save_checkpoint(Path(tmp) / CHECKPOINT_FILE)
            (Path(tmp) / "config.yaml").write_text(self.config_yaml)
            ray_tune.report(metrics, checkpoint=ray_tune.Checkpoint.from_directory(tmp))


def resolve(target: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _restore_checkpoint(out_dir: Path) -> str:
    """The latest Tune checkpoint of this trial (after a resumed sweep), copied into the run directory."""
    from ray import tune as ray_tune

    checkpoint = ray_tune.get_checkpoint()
    if checkpoint is None:
        return ""
    with checkpoint.as_directory() as folder:
        source = Path(folder) / CHECKPOINT_FILE
        if not source.is_file():
            return ""
        target = out_dir / "restored.ckpt"
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return str(target)


def _jsonable(summary: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if hasattr(value, "item") and not isinstance(value, (list, dict)):
            value = value.item()
        out[key] = value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)
    return out


def check_summary(summary: dict[str, Any], metric_keys: tuple[str, ...] = ("loss", "residual")) -> None:
    """Raise :class:`TrialDiverged` when the training function reports a NaN run."""
    if str(summary.get("status", "")).lower() == "nan":
        raise TrialDiverged(f"training ended with status 'nan': {summary.get('message') or 'non-finite values'}")
    for key in metric_keys:
        value = summary.get(key)
        if isinstance(value, (int, float)) and not math.isfinite(value):
            raise TrialDiverged(f"training returned {key} = {value}")


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """The Tune trainable: one training run with the trial's sampled overrides."""
    from lightning.pytorch.plugins.environments import LightningEnvironment
    from ray import tune as ray_tune

    from lotj.config import load_config, to_yaml

    tune_context = ray_tune.get_context()
    trial_dir = Path(context.experiment_dir) / Path(tune_context.get_trial_dir()).name
    out_dir = trial_dir / RUN_SUBDIR
    argv = [f"conf={context.conf}", *context.overrides, *trial_overrides(config), f"out_dir={out_dir}"]
    resume = _restore_checkpoint(out_dir)
    if resume:
        argv.append(f"resume={resume}")
    if context.wandb_group:
        argv.append(f"logging.group={context.wandb_group}")
    cfg = load_config(argv)

    wandb_info: dict[str, str] = {}
    if cfg.logging.logger == "wandb":
        name, run_id = tune_context.get_trial_name(), tune_context.get_trial_id()
        trial_run_env(context.wandb_mode, name, run_id)
        wandb_info = {"id": run_id, "name": name, "group": cfg.logging.group, "mode": context.wandb_mode}
    train = resolve(context.train_fn)
    callbacks = [TuneReportCallback(context.metric, to_yaml(cfg))]
    try:
        summary = train(
            cfg,
            callbacks=callbacks,
            plugins=[LightningEnvironment()],
            enable_checkpointing=False,
        )
    finally:
        teardown()
    summary = _jsonable(dict(summary or {}))
    if wandb_info:
        summary["wandb"] = wandb_info
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str))
    check_summary(summary)
