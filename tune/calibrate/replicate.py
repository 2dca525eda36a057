"""The model moments' sampling covariance by repeated simulation of the solved start economy.

The weighting matrix of the objective (``tune.calibrate.objective``) needs the sampling variance of each model
moment: how much the moment of one simulated panel of ``sim.panel_years`` years moves between panels drawn
from the same solved economy. With ``calibrate.weight_source=replications`` (the default) it is measured
directly. The start run's networks are frozen (V from ``checkpoints/last.ckpt``, W from ``w_net.pt``) and its
simulator is continued from the state the V stage left (the path the checkpoint saved), ``K`` times, each
with its own random stream:

1. wages are tracked from then on (every employed worker starts at the W stage's initial wage, and every
   reset of MODEL.md section 5 sets a new one), over ``weight_burn_in_years`` years, long enough for the
   replications to forget their common start and for the wages to renew;
2. a panel of ``sim.panel_years`` years is recorded and measured like the run's own (``lotj.measure``).

The ``K`` rows are independent draws of the panel's moments at the start point's parameters and decisions,
so their covariance is the sampling covariance the weights and the standard errors need. It leaves out the
solve's own noise (a new solve at the same parameters has other networks, docs/calibration.md). The
batch means over one panel's years (``weight_source=blocks``) cost nothing but understate the variance of a
persistent moment (its years are positively correlated).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

#: the replications' random streams: seed + STREAM_OFFSET + k, away from the solve's own (seed, seed + 1, ...)
STREAM_OFFSET = 7_000_003


def replicated_moments(
    run_dir: str | Path, keys: list[str], replications: int, burn_in_years: float, *, quiet: bool = False
) -> np.ndarray:
    """The target moments ``keys`` of ``replications`` independent panels of the solved run ``run_dir``
    (module docstring): ``[K, len(keys)]``, NaN where a panel leaves a moment null."""
    from lotj.measure import measure
    from lotj.sim.simulator import Simulator
    from lotj.sim.wage_tracking import track_wages
    from lotj.validate.report import run_networks
    from tune.calibrate.objective import as_number

    if replications < 2:
        raise ValueError(f"replications = {replications}: a covariance needs at least 2")
    run = Path(run_dir)
    cfg, vf, wf = run_networks(run)
    if wf is None:
        raise ValueError(
            f"{run} has no w_net.pt (no W stage): replications need its wages; solve with 'solver.stages=[v,w]' "
            "or use calibrate.weight_source=blocks"
        )
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    state = ckpt["callbacks"]["SimulatorCallback"]["simulator"]
    del ckpt
    theta = (cfg.economy.theta_plus, cfg.economy.theta_minus)
    previous = torch.get_num_threads()
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)
    rows = []
    start = time.perf_counter()
    try:
        for k in range(replications):
            sim = Simulator.from_config(cfg)
            sim.load_state_dict(state)
            stream = cfg.seed + STREAM_OFFSET + k
            sim.gen.manual_seed(stream)
            sim.cpu_gen.manual_seed(stream + 1)
            tracker = track_wages(sim, wf, vf)
            if burn_in_years > 0:
                sim.advance(vf, burn_in_years)
            tracker.reset_counts()
            panel = sim.simulate_panel(vf, cfg.sim.panel_years)
            moments = measure(panel, *theta, analyses=False, progress=False).moments
            rows.append([as_number(moments.get(key)) for key in keys])
            if not quiet:
                print(
                    f"tune.calibrate: weight replication {k + 1}/{replications} ({time.perf_counter() - start:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        torch.set_num_threads(previous)
    return np.array(rows, dtype=float).reshape(-1, len(keys))
