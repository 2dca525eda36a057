"""Where the simulated economy lives: on the device the Trainer puts the networks on.

The simulator decides with V (and, in the W stage, with W) at every step, so it is built on the
networks' device: decisions then need no copy of the population between devices. Lightning moves a
module back to the CPU when ``fit`` or ``validate`` ends; :func:`to_simulator` puts the networks back
beside the simulator before it simulates outside a ``fit``.
"""

from __future__ import annotations

import torch

from lotj.config import Config


def simulation_device(cfg: Config) -> torch.device:
    """The device of the Trainer's accelerator (the module is still on the CPU before ``fit``):
    ``cuda`` for ``trainer.accelerator`` gpu or cuda, or auto where torch sees a GPU; else the CPU."""
    accelerator = str(cfg.trainer.accelerator).lower()
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def to_simulator(device: torch.device, *functions: object) -> None:
    """Move the networks among ``functions`` (``torch.nn.Module``; others are left alone) to ``device``."""
    for f in functions:
        if isinstance(f, torch.nn.Module):
            f.to(device)
