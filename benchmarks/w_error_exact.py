"""The W and wage error estimators of a finished discrete-economy run against the truth (docs/accuracy.md).

    python benchmarks/w_error_exact.py RUN_DIR [points=5] [reps=2]   # a conf=exact_small 'solver.stages=[v,w]' run

Reads the run's V (``checkpoints/last.ckpt``) and W (``w_net.pt``), solves the exact economy and prints
:func:`lotj.accuracy.wage_validation.w_estimator_check` (what ``python -m lotj.validate`` reports as
``w_estimator``), with its cost, without the validation's simulations.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from lotj.accuracy.wage_validation import w_estimator_check
from lotj.validate.report import run_networks
from lotj.validate.values import exact_solution
from lotj.validate.wages import exact_wage_solution


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
    t0 = time.perf_counter()
    out = w_estimator_check(
        wf, vf, sol, ew, points=int(opts.get("points", 5)), reps=int(opts.get("reps", 2)), seed=cfg.seed
    )
    out["wall_s"] = time.perf_counter() - t0
    print(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
