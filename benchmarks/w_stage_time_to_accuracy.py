"""Time for the W stage to reach a held-out scale-free residual (docs/wages.md, "Benchmarks").

Prints, epoch by epoch, the wall time and the held-out scale-free W residual ``sqrt(mean(R₁R₂)) / RMS(ρW)``
and the per-worker one ``sqrt(mean(R₁R₂ / (ρ max{W, U})²))`` (each worker by its own scale), then the time
at which the residual first fell below each of 1e-1, 3e-2, 1e-2, 3e-3 and 1e-3, and the best value.

Two measurements, chosen by ``stage=``:

- ``stage=run`` (default): the W stage as a training run does it (:func:`lotj.train.wstage.run_w_stage`,
  MODEL.md section 6): V frozen at a *trained* network, the simulator continued with wages, and the W
  stage's states refreshed from the simulated wages every ``wsolver.refresh_years`` of simulated time
  (the refreshes' simulation is inside the timed epochs, as in a run). V is the state dict at ``v=PATH``
  (``torch.save(value_net.state_dict(), PATH)``, the config's ``net`` sizes) or, without it, V trained
  first by the joint loop (:func:`lotj.validate.train_network`, the config's ``solver`` settings; not
  timed). The simulator starts from the config's initial economy and runs ``sim.burn_in_years`` under
  that V before the stage, standing in for the V stage's simulator, which a run continues.
- ``stage=frozen``: the W network's training alone, on states of the config's *initial* economy with
  their initial wages, never refreshed, and V from ``v=PATH`` or else the untrained separable guess
  ``V₀ = Σ U + (F + c z)/r`` (the W equation is well defined for any V, and V₀ has the scale of the
  converged V). This isolates the optimisation of W; its times are not those of a run.

Usage: ``python benchmarks/w_stage_time_to_accuracy.py [threads=2] [stage=run|frozen] [v=PATH] [conf=smoke]
[key=value ...]``.
"""

from __future__ import annotations

import sys
import time

import lightning as L
import torch
from _options import frozen_value, options_and_config, w_trainer

from lotj.sim.distributions import initial_snapshot
from lotj.train.wdatamodule import WDataModule
from lotj.train.wmodule import WModule
from lotj.train.wstage import build_worker_net

THRESHOLDS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3)


class _Clock(L.Callback):
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.rows: list[tuple[int, float, float, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = float(trainer.callback_metrics["w/val_residual"])
        worker = float(trainer.callback_metrics["w/val_worker_residual"])
        self.rows.append((trainer.current_epoch, time.perf_counter() - self.start, value, worker))
        print(
            f"epoch {trainer.current_epoch:3d}  {self.rows[-1][1]:8.1f} s  held-out residual {value:.3e}"
            f"  per-worker {worker:.3e}",
            flush=True,
        )


def _frozen_stage(cfg, opts: dict[str, str], clock: _Clock) -> str:
    """``stage=frozen``: the W network trained on the initial economy's states (module docstring)."""
    p, ws = cfg.economy, cfg.wsolver
    snap = initial_snapshot(p, cfg.sim.n_firms, torch.Generator().manual_seed(cfg.seed))
    vf = frozen_value(cfg, snap, opts["v"])
    dm = WDataModule(p, vf, snap, ws, seed=cfg.seed)
    module = WModule.from_config(p, build_worker_net(cfg), vf, ws)
    clock.start = time.perf_counter()
    w_trainer(ws, [clock]).fit(module, datamodule=dm)
    return "file " + opts["v"] if opts["v"] else "V0 (untrained)"


def _run_stage(cfg, opts: dict[str, str], clock: _Clock) -> str:
    """``stage=run``: the W stage of a run, under a trained V, with wage refreshes (module docstring)."""
    from lotj.sim.simulator import Simulator
    from lotj.train.wstage import run_w_stage

    sim = Simulator.from_config(cfg)
    if opts["v"]:
        vf, label = frozen_value(cfg, sim.snapshot(), opts["v"]), "file " + opts["v"]
    else:
        from lotj.validate import train_network

        start = time.perf_counter()
        vf = train_network(cfg)
        label = f"trained by the joint loop here ({time.perf_counter() - start:.1f} s, not timed below)"
    if isinstance(vf, torch.nn.Module):
        vf.requires_grad_(False)
    if cfg.sim.burn_in_years > 0:
        sim.advance(vf, cfg.sim.burn_in_years)
    clock.start = time.perf_counter()
    summary = run_w_stage(cfg, vf, simulator=sim, callbacks=[clock])
    print(f"stage summary: w_residual {summary['w_residual']:.3e}, epochs {summary['w_epochs']}, "
          f"simulation {summary['w_simulation_seconds']:.1f} s of {summary['w_seconds']:.1f} s")  # fmt: skip
    return label


def main(argv: list[str]) -> None:
    opts, cfg = options_and_config(argv, {"threads": "2", "v": "", "stage": "run"})
    if opts["stage"] not in ("run", "frozen"):
        raise SystemExit(f"stage={opts['stage']}: choose stage=run or stage=frozen")
    ws = cfg.wsolver
    torch.manual_seed(cfg.seed)
    print(
        f"conf={cfg.conf} stage={opts['stage']} threads={torch.get_num_threads()} "
        f"batch={ws.batch_size} steps/epoch={ws.steps_per_epoch} M_N={ws.m_n} M_E={ws.m_e} M_Pi={ws.m_pi} "
        f"unbiased={ws.unbiased} lr={ws.lr} decay={ws.lr_decay} schedule={ws.lr_schedule} lr_min={ws.lr_min} "
        f"loss_weight={ws.loss_weight} epochs={ws.max_epochs} refresh_years={ws.refresh_years}",
        flush=True,
    )
    clock = _Clock()
    label = (_run_stage if opts["stage"] == "run" else _frozen_stage)(cfg, opts, clock)
    print(f"V: {label}")
    for thr in THRESHOLDS:
        hit = next((row for row in clock.rows if row[2] < thr), None)
        print(f"residual < {thr:.0e}: " + (f"{hit[1]:.1f} s (epoch {hit[0]})" if hit else "not reached"))
    best = min(clock.rows, key=lambda row: row[2])
    print(f"best held-out residual {best[2]:.3e} at {best[1]:.1f} s (epoch {best[0]})")
    last = clock.rows[-1]
    print(f"final held-out residual {last[2]:.3e}, per-worker {last[3]:.3e} ({last[1]:.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
