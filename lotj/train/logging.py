"""Loggers of a training run: Lightning's CSVLogger always, W&B when ``logging.logger=wandb``.

``metrics.csv`` is written into ``out_dir`` in every case (CSVLogger with no name/version
subfolders). With ``logging.logger=wandb`` a :class:`~lightning.pytorch.loggers.WandbLogger` is
added, in the mode :func:`wandb_mode` decides: an explicit ``WANDB_MODE`` wins; otherwise ``online``
only with an API key (``WANDB_API_KEY`` or a netrc entry from ``wandb login``) and a W&B host that
answers within 3 s, else ``offline`` (runs under ``out_dir/wandb``, uploadable with ``wandb sync``).
It never prompts and never waits on the network for long. ``logging.logger=none`` keeps the CSV only.
"""

from __future__ import annotations

import csv
import logging
import netrc
import os
import socket
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger, Logger

from lotj.config import Config

DEFAULT_WANDB_HOST = "https://api.wandb.ai"


#: Lightning's notices that tell a lotj user nothing: its tips to install its cloud products, and how it
#: counts an epoch's batches (the W stage's cosine schedule asks for that count)
_FOREIGN_NOTICES = ("💡 Tip", "Loading `train_dataloader` to estimate number of stepping batches")


class _DropAdvertisements(logging.Filter):
    """Drops the notices of :data:`_FOREIGN_NOTICES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_FOREIGN_NOTICES)


def quiet_foreign_notices() -> None:
    """Silence what Lightning and torch print that tells a lotj user nothing about their run: Lightning's
    notices of :data:`_FOREIGN_NOTICES`; torch's deprecation of ``LeafSpec``, which Lightning's own pytree
    helper still uses (nothing in lotj does); and Lightning's caution that an ``IterableDataset`` with a
    length may repeat data across loader workers (lotj's DataModules load in the main process, and the
    length is each epoch's number of steps). Lightning's device lines and every other warning stay.
    Idempotent."""
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropAdvertisements) for f in log.filters):
        log.addFilter(_DropAdvertisements())
    leafspec = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
    warnings.filterwarnings("ignore", message=leafspec, category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")


def _wandb_host(environ: Mapping[str, str]) -> tuple[str, int]:
    url = urlparse(environ.get("WANDB_BASE_URL") or DEFAULT_WANDB_HOST)
    return url.hostname or "api.wandb.ai", url.port or (80 if url.scheme == "http" else 443)


def has_wandb_key(environ: Mapping[str, str] = os.environ) -> bool:
    """An API key in ``WANDB_API_KEY`` or in the netrc file that ``wandb login`` writes."""
    if environ.get("WANDB_API_KEY"):
        return True
    host, _ = _wandb_host(environ)
    try:
        return netrc.netrc(environ.get("NETRC") or None).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wandb_mode(environ: Mapping[str, str] = os.environ, probe=_reachable) -> str:
    """``WANDB_MODE`` if set; ``online`` with a key and a reachable host; else ``offline``."""
    if environ.get("WANDB_MODE"):
        return environ["WANDB_MODE"]
    if not has_wandb_key(environ):
        return "offline"
    return "online" if probe(*_wandb_host(environ)) else "offline"


def build_loggers(cfg: Config, extra: Logger | list[Logger] | None = None) -> list[Logger]:
    """CSV (always) + W&B (``logging.logger=wandb``) + any ``extra`` logger(s) given by the caller."""
    out = Path(cfg.out_dir)
    loggers: list[Logger] = [CSVLogger(save_dir=str(out), name="", version="")]
    if cfg.logging.logger == "wandb":
        loggers.append(_wandb_logger(cfg))
    if extra is not None:
        loggers.extend(extra if isinstance(extra, list) else [extra])
    return loggers


def _wandb_logger(cfg: Config) -> Logger:
    mode = wandb_mode()
    os.environ["WANDB_MODE"] = mode
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb
    from lightning.pytorch.loggers import WandbLogger
    from omegaconf import OmegaConf

    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {
        "project": cfg.logging.project,
        "save_dir": cfg.out_dir,
        "mode": mode,
        "settings": wandb.Settings(init_timeout=60, silent=True, console="off"),
        "config": OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True),
    }
    if cfg.logging.group:
        kwargs["group"] = cfg.logging.group
    return WandbLogger(**kwargs)


def finish_wandb(loggers: list[Logger]) -> None:
    """Close the W&B run(s) this module started (flushes offline files)."""
    from lightning.pytorch.loggers import WandbLogger

    for lg in loggers:
        if isinstance(lg, WandbLogger) and lg._experiment is not None:
            lg.experiment.finish()


def metric_history(out: Path) -> list[dict[str, float]]:
    """Per-epoch rows of a run directory's ``metrics.csv`` (merged across the rows Lightning writes per epoch)."""
    path = Path(out) / "metrics.csv"
    if not path.is_file():
        return []

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
