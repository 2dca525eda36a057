"""Chain targets for W on a discrete economy: the W network of a finished run refitted to its chain targets,
against the exact W after every set (docs/accuracy.md, "Chain targets for W").

    python benchmarks/w_chain_targets.py RUN_DIR [rounds=8] [steps=600] [points=9] [lr=3e-4]
    # RUN_DIR: a `python -m lotj.train conf=exact_small 'solver.stages=[v,w]'` run

Reads the run's V and W, solves the exact economy, and runs
:func:`lotj.accuracy.worker_targets.fit_worker_targets` with the exact meeting terms (the network's V read as a
table, the exact χ^N and χ^E, poachers from the exact Π): each set is the W validation's grid with ``points``
wages per (state, worker) pair spanning its bargaining set; the error is measured on the validation's own
grid (5 wages per pair, :func:`lotj.validate.wages.wage_grid`) against the exact W given the network's V and
against the equilibrium W. Prints one line per set and the seconds it took. The run directory is not changed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from lotj.accuracy.exact_check import TableValue, exact_meeting_draws, exact_rates
from lotj.accuracy.wage_validation import systematic_poachers
from lotj.accuracy.worker_targets import WorkerPoints, fit_worker_targets
from lotj.exact.worker_value import exact_worker_values
from lotj.validate.report import run_networks
from lotj.validate.values import exact_solution, network_values
from lotj.validate.wages import exact_wage_solution, network_w, pair_wages, wage_grid


def grid_points(curve, points: int) -> WorkerPoints:
    return WorkerPoints(*pair_wages(curve, *wage_grid(curve, points)))


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    run = Path(argv[0])
    opts = dict(a.split("=", 1) for a in argv[1:])
    cfg, vf, wf = run_networks(run)
    if wf is None:
        print(f"{run}: no w_net.pt (run it with 'solver.stages=[v,w]')")
        return 2
    torch.set_num_threads(max(1, int(cfg.trainer.num_threads)))
    sol = exact_solution(cfg)
    ew = exact_wage_solution(sol)
    p, space, market = sol.params, sol.space, sol.market
    v_net = network_values(vf, sol.states)
    table, draws = TableValue(space, v_net), exact_meeting_draws(space, market, v_net)
    given = exact_worker_values(space, p, v_net, market, w_start=1.0)
    pair_te, wage_te = wage_grid(ew.curve, 5)

    def errors() -> tuple[float, float]:
        w = network_w(wf, ew.curve, pair_te, wage_te)
        scale = np.maximum(np.abs(w), ew.curve.problem.u[pair_te])
        vs_given = np.abs(w - given.value(pair_te, wage_te)) / scale
        vs_exact = np.abs(w - ew.curve.value(pair_te, wage_te)) / scale
        return float(vs_given.mean()), float(vs_exact.mean())

    train = grid_points(ew.curve, int(opts.get("points", 9)))
    print(f"set 0: W mean error {errors()[0]:.3e} (given the network's V), {errors()[1]:.3e} (exact W)", flush=True)
    t0 = time.perf_counter()

    def report(k: int) -> None:
        g, e = errors()
        print(f"set {k + 1}: W mean error {g:.3e} (given the network's V), {e:.3e} (exact W), "
              f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip

    out = fit_worker_targets(
        wf,
        table,
        p,
        lambda g: train,
        exact_rates(market),
        lambda g: draws,
        systematic_poachers(space, market, 64),
        torch.Generator().manual_seed(cfg.seed + 3),
        rounds=int(opts.get("rounds", 8)),
        steps=int(opts.get("steps", 600)),
        lr=float(opts.get("lr", 3e-4)),
        after_round=report,
    )
    print({k: round(v, 4) for k, v in out.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
