"""Two W-stage training configurations on one economy, scored on one common held-out set (docs/wages.md).

Trains :class:`lotj.nets.WorkerValueNet` twice on the W residual of a config's economy (default
``conf=smoke``), once with the overrides ``a=...`` and once with ``b=...`` (space-separated ``key=value``
config overrides, applied on top of the others), with the same frozen V, seed and economy, and scores
both after every epoch on the same held-out states: firms disjoint from the training firms, with wages
drawn over the whole bargaining set (``wsolver.wage_range=surplus``: from the entry wage of a worker
hired at ``W = U`` up to the wage of ``W = U + Δ``). Printed per epoch: wall time, the held-out
scale-free residual ``sqrt(mean(R₁R₂)) / RMS(ρW)`` and the per-worker one
``sqrt(mean(R₁R₂ / (ρ max{W, U})²))``; after each training, the held-out residual by the workers' position
``(W − U)/Δ`` in their bargaining set; at the end, the best and final values of each.

V: as in ``w_stage_time_to_accuracy.py`` (``v=PATH`` or the initial guess V₀).

Usage: ``python benchmarks/w_compare.py [threads=1] [v=PATH] a="k=v ..." b="k=v ..." [key=value ...]``.
"""

from __future__ import annotations

import math
import sys
import time

import lightning as L
import torch
from _options import frozen_value, options_and_config, w_trainer

from lotj.config import load_config
from lotj.economy.wages import worker_residual_scale
from lotj.nets import ValueNet
from lotj.sim.distributions import initial_snapshot
from lotj.train.wdatamodule import WDataModule
from lotj.train.wmodule import WModule, residual_of_batch, terms_of_batch
from lotj.train.wstage import build_worker_net


class _Clock(L.Callback):
    def __init__(self, name: str) -> None:
        self.name, self.start = name, time.perf_counter()
        self.rows: list[tuple[int, float, float, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        m = trainer.callback_metrics
        row = (trainer.current_epoch, time.perf_counter() - self.start)
        self.rows.append((*row, float(m["w/val_residual"]), float(m["w/val_worker_residual"])))
        print(
            f"[{self.name}] epoch {row[0]:3d}  {row[1]:7.1f} s  held-out residual {self.rows[-1][2]:.3e}"
            f"  per-worker {self.rows[-1][3]:.3e}",
            flush=True,
        )


def _breakdown(name: str, module: WModule, vf: ValueNet, p, common: WDataModule) -> None:
    """The held-out residual by the worker's position ``(W − U)/Δ`` in its bargaining set: each bin's share of
    the workers, its share of the summed ``R₁R₂`` (the headline), and its per-worker RMS."""
    cols = []
    with torch.no_grad():
        for batch in common.val_dataloader():
            s, term_sets = terms_of_batch(vf, p, batch)
            r1, r2, W, m = residual_of_batch(module.net, vf, p, batch)
            u, d = term_sets[0].u, term_sets[0].delta
            sq = r1 * (r1 if r2 is None else r2)
            rel = sq / worker_residual_scale(p, s.h, W).pow(2)
            cols.append(torch.stack([sq[m], rel[m], ((W - u) / d.clamp_min(1e-12))[m], d[m]], -1))
    sq, rel, pos, d = torch.cat(cols).T
    edges = [-math.inf, -0.5, -0.05, 0.05, 0.5, 0.95, 1.05, 1.5, math.inf]
    for lo, hi in zip(edges[:-1], edges[1:]):
        k = (pos >= lo) & (pos < hi) & (d > 0)
        if k.any():
            print(
                f"[{name}] (W-U)/Δ in [{lo:5}, {hi:5}): workers {float(k.double().mean()):.3f}  "
                f"share of R1R2 {float(sq[k].sum() / sq.sum()):.3f}  per-worker {float(rel[k].mean().abs().sqrt()):.3f}"
            )
    if (d <= 0).any():
        print(f"[{name}] Δ <= 0: workers {float((d <= 0).double().mean()):.3f}")


def main(argv: list[str]) -> None:
    opts, cfg = options_and_config(argv, {"threads": "1", "v": "", "a": "", "b": ""})
    rest = [x for x in argv if x.partition("=")[0] not in opts]
    if not any(x.startswith("conf=") for x in rest):
        rest.append("conf=smoke")
    p = cfg.economy
    snap = initial_snapshot(p, cfg.sim.n_firms, torch.Generator().manual_seed(cfg.seed))
    vf = frozen_value(cfg, snap, opts["v"])
    common_cfg = load_config([*rest, "wsolver.wage_range=surplus"]).wsolver
    common = WDataModule(p, vf, snap, common_cfg, seed=cfg.seed)
    print(f"conf={cfg.conf} threads={torch.get_num_threads()} V={'file ' + opts['v'] if opts['v'] else 'V0'}")
    results = {}
    for name in ("a", "b"):
        run_cfg = load_config([*rest, *opts[name].split()])
        ws = run_cfg.wsolver
        print(f"[{name}] {opts[name] or '(config as given)'}")
        torch.manual_seed(run_cfg.seed)
        dm = WDataModule(p, vf, snap, ws, seed=run_cfg.seed)
        module = WModule.from_config(p, build_worker_net(run_cfg), vf, ws)
        clock = _Clock(name)
        trainer = w_trainer(ws, [clock])
        trainer.fit(module, train_dataloaders=dm.train_dataloader(), val_dataloaders=common.val_dataloader())
        results[name] = clock.rows
        _breakdown(name, module, vf, p, common)
    for name, rows in results.items():
        best = min(rows, key=lambda r: r[2])
        best_w = min(rows, key=lambda r: r[3])
        last = rows[-1]
        print(
            f"[{name}] final residual {last[2]:.3e} per-worker {last[3]:.3e} ({last[1]:.0f} s); "
            f"best residual {best[2]:.3e} (epoch {best[0]}), best per-worker {best_w[3]:.3e} (epoch {best_w[0]})"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
