"""Time for ``python -m lotj.train conf=smoke`` to reach a held-out scale-free residual of ``solver.tol``.

Runs the same training as the command line (``lotj.train.run.train``) with the given overrides,
then prints the held-out curve from ``metrics.csv`` (epoch, wall time, ``val/residual``,
``val/residual_mc``, ``train/loss``) and the summary: the time to reach the tolerance, or the best
figure reached when it was not.

    python benchmarks/train_smoke.py [key=value ...]      (e.g. trainer.num_threads=1 solver.max_epochs=60)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lotj.config import load_config
from lotj.train.logging import metric_history
from lotj.train.run import train


def main(argv: list[str]) -> None:
    cfg = load_config(["conf=smoke", "out_dir=runs/bench-smoke", "logging.progress_bar=false", *argv])
    summary = train(cfg)
    print(f"{'epoch':>5} {'wall s':>8} {'val/residual':>13} {'val/resid_mc':>13} {'train/loss':>11}")
    for row in metric_history(Path(cfg.out_dir)):
        print(
            f"{int(row['epoch']):>5} {row.get('time/elapsed_s', float('nan')):>8.1f} "
            f"{row.get('val/residual', float('nan')):>13.4g} {row.get('val/residual_mc', float('nan')):>13.4g} "
            f"{row.get('train/loss', float('nan')):>11.4g}"
        )
    print(json.dumps(summary, indent=2))
    if summary["time_to_tol_s"] is not None:
        print(f"reached {cfg.solver.tol:g} after {summary['time_to_tol_s']:.0f} s of training")
    else:
        print(
            f"did not reach {cfg.solver.tol:g}: best held-out residual {summary['best_residual']:.4g} "
            f"(from {summary['initial_residual']:.3g}) in {summary['wall_time_s']:.0f} s"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
