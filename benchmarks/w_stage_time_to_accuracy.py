"""Time for the W stage to reach a held-out scale-free residual (docs/wages.md, "Benchmarks").

Trains :class:`lotj.nets.WorkerValueNet` on the W residual of a config's economy (default
``conf=smoke``) with the W stage's DataModule and module, and prints, epoch by epoch, the wall time and
the held-out scale-free residual ``sqrt(mean(R₁R₂)) / RMS(ρW)`` and the per-worker one
``sqrt(mean(R₁R₂ / (ρ max{W, U})²))`` (each worker by its own scale), then the time at which the residual
first fell below each of 1e-1, 3e-2, 1e-2, 3e-3 and 1e-3, and the best value.

V is frozen: the state dict of a :class:`lotj.nets.ValueNet` from ``v=PATH`` (a file written with
``torch.save(value_net.state_dict(), PATH)``, built with the config's ``net`` sizes) or, without it, the
network's initial separable guess ``V₀ = Σ U + (F + c z)/r`` (the W equation is well defined for any V;
V₀ has the scale of the converged V). States come from the initial economy of the config (no wage
refresh: this measures the training of W, the stage's bottleneck).

Usage: ``python benchmarks/w_stage_time_to_accuracy.py [threads=2] [v=PATH] [conf=smoke] [key=value ...]``.
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


def main(argv: list[str]) -> None:
    opts, cfg = options_and_config(argv, {"threads": "2", "v": ""})
    p, ws = cfg.economy, cfg.wsolver
    torch.manual_seed(cfg.seed)
    snap = initial_snapshot(p, cfg.sim.n_firms, torch.Generator().manual_seed(cfg.seed))
    vf = frozen_value(cfg, snap, opts["v"])
    dm = WDataModule(p, vf, snap, ws, seed=cfg.seed)
    module = WModule.from_config(p, build_worker_net(cfg), vf, ws)
    clock = _Clock()
    trainer = w_trainer(ws, [clock])
    print(
        f"conf={cfg.conf} threads={torch.get_num_threads()} V={'file ' + opts['v'] if opts['v'] else 'V0'} "
        f"batch={ws.batch_size} steps/epoch={ws.steps_per_epoch} M_N={ws.m_n} M_E={ws.m_e} M_Pi={ws.m_pi} "
        f"unbiased={ws.unbiased} lr={ws.lr} decay={ws.lr_decay} schedule={ws.lr_schedule} lr_min={ws.lr_min} "
        f"loss_weight={ws.loss_weight} epochs={ws.max_epochs}"
    )
    trainer.fit(module, datamodule=dm)
    for thr in THRESHOLDS:
        hit = next((row for row in clock.rows if row[2] < thr), None)
        print(f"residual < {thr:.0e}: " + (f"{hit[1]:.1f} s (epoch {hit[0]})" if hit else "not reached"))
    best = min(clock.rows, key=lambda row: row[2])
    print(f"best held-out residual {best[2]:.3e} at {best[1]:.1f} s (epoch {best[0]})")
    last = clock.rows[-1]
    print(f"final held-out residual {last[2]:.3e}, per-worker {last[3]:.3e} ({last[1]:.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
