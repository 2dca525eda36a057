"""The calibration on the smoke economy: how far 32 trials bring the objective below the source's parameters.

    python benchmarks/calibrate_smoke.py [--trials 32] [--refine 0] [--concurrent 2] [--out runs/bench] [key=value ...]

Runs ``python -m tune.calibrate conf=smoke calibrate=source`` (TPE, the Jacobian off) from the source's
parameters (the smoke preset's economy) with ``N = --trials`` solves after the start point: ``N − R`` trials of
the search and ``R = --refine`` of the local refinement from its best trial (``calibrate.refine_evals``), and
prints

- the objective ``g'Wg`` at the source's parameters (the start point, solved by lotj like every trial) and
  the best after N trials, their ratio (target: at least 2), and the wall time of the whole calibration;
- the saving from warm starts: the best warm-started trial solved again cold (``python -m lotj.train``, same config
  and seed, no ``init_from``), with the held-out V residual of each solve after every epoch, the epoch at
  which the warm solve reaches the cold solve's final residual, and both objectives;
- ``ratio_cold``: the start point's objective over that cold solve's, both points solved alike (cold, same
  epochs and seed). Where it is far below ``ratio``, the best trial's objective owes much to its solve (its
  warm start, the path of its networks) rather than to its parameters.

``key=value`` arguments are config overrides for every solve (``solver.max_epochs=10`` for a shorter run).
The figures go to ``OUT/NAME/benchmark.json`` as well.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: the best trial's own config solved again without init_from (a cold start), into another directory
COLD_SOLVE = """
import sys
from lotj.config import config_from_yaml
from lotj.train.run import train
cfg = config_from_yaml(sys.argv[1])
cfg.init_from, cfg.out_dir = "", sys.argv[2]
train(cfg)
"""


def residual_by_epoch(run_dir: Path) -> list[float]:
    """The held-out scale-free V residual after each epoch (metrics.csv)."""
    metrics = pd.read_csv(run_dir / "metrics.csv")
    column = "val/residual"
    return [float(v) for v in metrics.groupby("epoch")[column].last().dropna()] if column in metrics else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32, help="solves after the start point, refinement included")
    parser.add_argument("--refine", type=int, default=0, help="of which, solves of the local refinement")
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--name", default="calibrate_smoke")
    args, overrides = parser.parse_known_args()
    if not 0 <= args.refine < args.trials:
        parser.error(f"--refine {args.refine}: must be in [0, --trials)")
    search = args.trials - args.refine
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = (Path(args.out) / args.name).resolve()
    cmd = [sys.executable, "-m", "tune.calibrate", "conf=smoke", "calibrate=source", *overrides]
    cmd += [f"calibrate.num_trials={search}", f"calibrate.refine_evals={args.refine}"]
    cmd += [f"calibrate.max_concurrent={args.concurrent}"]
    cmd += ["calibrate.jacobian=false", f"calibrate.out_dir={out.parent}", f"calibrate.name={out.name}"]
    if (out / "calibration.yaml").is_file():
        cmd = [sys.executable, "-m", "tune.calibrate", f"resume={out}", f"calibrate.num_trials={search}",
               f"calibrate.refine_evals={args.refine}"]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    if not (out / "results.csv").is_file():
        print(f"calibration failed (status {proc.returncode})", file=sys.stderr)
        return 1
    table = pd.read_csv(out / "results.csv")
    best = json.loads((out / "best.json").read_text())
    source = table.loc[table["origin"] == "start", "objective"].iloc[0]
    figures: dict = {
        "trials": int((table["origin"] != "start").sum()),
        "search_trials": int(table["origin"].isin(["search", "point"]).sum()),
        "refine_solves": int((table["origin"] == "refine").sum()),
        "statuses": table["status"].value_counts().to_dict(),
        "objective_source": float(source),
        "objective_best": float(best["objective"]),
        "ratio": float(source / best["objective"]) if best["objective"] > 0 else math.inf,
        "best_trial": best["key"],
        "wall_time_s": wall,
        "mean_trial_wall_s": float(table["wall_time_s"].mean()),
    }
    warm = table[table["init_from"].notna() & (table["score"] == table["objective"])]
    if not warm.empty:
        row = warm.loc[warm["objective"].idxmin()]  # the best warm-started trial
        cold = out / "cold_best"
        config = Path(row["run_dir"]) / "config.yaml"
        if not (cold / "summary.json").is_file():
            subprocess.run([sys.executable, "-c", COLD_SOLVE, str(config), str(cold)], cwd=ROOT, env=env, check=True)
        warm_r, cold_r = residual_by_epoch(Path(row["run_dir"])), residual_by_epoch(cold)
        reached = next((i + 1 for i, r in enumerate(warm_r) if cold_r and r <= cold_r[-1]), None)
        sys.path.insert(0, str(ROOT))  # this checkout's tune package, also when run as a script
        from tune.calibrate.objective import Objective

        weights = json.loads((out / "weights.json").read_text())
        objective = Objective(weights["keys"], weights["data"], weights["weights"])
        cold_moments = json.loads((cold / "summary.json").read_text()).get("moments") or {}
        figures["warm_start"] = {
            "trial": row["key"],
            "warm_residual_by_epoch": warm_r,
            "cold_residual_by_epoch": cold_r,
            "warm_epochs_to_cold_final": reached,
            "objective_warm": float(row["objective"]),
            "objective_cold": objective.value(cold_moments) if cold_moments else None,
        }
        if cold_moments:  # the start point is a cold solve too: the ratio with both solved alike
            figures["ratio_cold"] = float(source / figures["warm_start"]["objective_cold"])
    (out / "benchmark.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
