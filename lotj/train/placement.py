"""Where the simulated economy lives: on the device the Trainer puts the networks on.

The simulator decides with V (and, in the W stage, with W) at every step, so it is built on the
networks' device: decisions then need no copy of the population between devices. Lightning moves a
module back to the CPU when ``fit`` or ``validate`` ends; :func:`to_simulator` puts the networks back
beside the simulator before it simulates outside a ``fit``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from lotj.config import Config
from lotj.errors import ConfigError


def simulation_device(cfg: Config) -> torch.device:
    """The device of the Trainer's accelerator for this process (the module is still on the CPU
    before ``fit``): a GPU for ``trainer.accelerator`` gpu or cuda, or auto where torch sees one;
    else the CPU. Raises ConfigError when a GPU is asked for and torch sees none."""
    accelerator = str(cfg.trainer.accelerator).lower()
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator = {cfg.trainer.accelerator!r}, but torch sees no GPU here "
                "(torch.cuda.is_available() is False)"
            )
    elif not (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", gpu_index(cfg.trainer.devices))


def gpu_index(devices: object) -> int:
    """The GPU Lightning gives this process for ``trainer.devices``: the listed index of the process's
    local rank (``[k]`` or ``"k,"`` name GPU k), else the local rank itself (``LOCAL_RANK``, set by
    Lightning's launcher, or ``SLURM_LOCALID`` under srun; 0 for a single process). Runs of several GPUs
    with the simulator (one simulated economy per process) have not been tested."""
    rank = int(os.environ.get("LOCAL_RANK") or os.environ.get("SLURM_LOCALID") or 0)
    if isinstance(devices, str) and "," in devices:
        devices = [int(d) for d in devices.split(",") if d.strip()]
    if isinstance(devices, Sequence) and not isinstance(devices, str) and len(devices) > 0:
        return int(devices[min(rank, len(devices) - 1)])
    return rank


def to_simulator(device: torch.device, *functions: object) -> None:
    """Move the networks among ``functions`` (``torch.nn.Module``; others are left alone) to ``device``."""
    for f in functions:
        if isinstance(f, torch.nn.Module):
            f.to(device)
