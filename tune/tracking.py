"""W&B for sweeps: one run per trial, one group per sweep, never a prompt or a hang.

The training function already logs to W&B with ``logging.logger=wandb`` (``lotj.train.logging``), so a
trial only names its run. The driver decides the mode once with :func:`lotj.train.logging.wandb_mode`
(an explicit ``WANDB_MODE`` wins; ``offline`` without an API key or when the W&B host does not
answer) and each trial exports it, with the run's identity, as W&B's environment variables before
training: ``WANDB_MODE``, ``WANDB_NAME`` (the Tune trial name), ``WANDB_RUN_ID`` (the Tune trial id,
so a resumed trial continues its run), ``WANDB_RESUME=allow`` and ``WANDB_JOB_TYPE=tune``. The group
is the config's ``logging.group``, which the sweep sets to its name. ``WANDB_MODE`` is used rather than
Lightning's ``WandbLogger(offline=True)``, which sets a mode Ray's W&B integration rejects.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping


def trial_run_env(mode: str, name: str, run_id: str, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Export the W&B settings of one trial's run; returns them."""
    settings = {
        "WANDB_MODE": mode,
        "WANDB_NAME": name,
        "WANDB_RUN_ID": run_id,
        "WANDB_RESUME": "allow",
        "WANDB_JOB_TYPE": "tune",
        "WANDB_SILENT": environ.get("WANDB_SILENT", "true"),
    }
    environ.update(settings)
    return settings


def teardown() -> None:
    """Stop W&B's service process of this worker after the run finished (avoids errors at worker exit)."""
    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()
