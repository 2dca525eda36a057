"""What the local refinement adds to the search at the same number of solves, on an economy of known parameters.

    python benchmarks/calibrate_refine.py [--seeds 2] [--trials 16] [--split 6] [--out runs/bench/refine] [key=value]

The economy is the slow recovery test's (``tests/test_calibrate_run.py``): the tiny smoke economy, here with
2,000 firms and a 10-year panel (``key=value`` overrides change that), its six targets the moments of the
economy solved at ψ^N = 0.314, δ_m = 0.127, and the calibration starting from (0.40, 0.18), every solve cold
with the preset's seed. For each sampler seed it runs two calibrations of ``trials + 1`` solves each:

- ``search``: ``trials`` trials of TPE;
- ``search+refine``: ``split`` trials of TPE, then ``trials − split`` solves of the DFO-LS refinement.

and prints, for each: the best objective ``g'Wg``, the parameters found, their distance to the true ones as
a share of each range, and the wall time. One solve at a time (``calibrate.max_concurrent=1``): the
refinement's solves are sequential, and the two arms are compared at equal cost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_calibrate_run import BOUNDS, RECOVERY, RECOVERY_TARGETS, START, TRUE  # noqa: E402

#: steadier moments than the test's 200 firms and 6 years: the refinement's linear models need them
LARGER = ["sim.n_firms=2000", "sim.panel_years=10"]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "RAY_DEDUP_LOGS": "0"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def targets_file(path: Path, moments: dict, trials: int, refine: int, seed: int) -> Path:
    lines = ["options:", "  sampler: tpe", f"  seed: {seed}", f"  num_trials: {trials}", "  max_concurrent: 1"]
    lines += ["  warm_start: false", f"  refine_evals: {refine}", "  jacobian: false", "targets:"]
    lines += [f"  {k}: {moments[k]!r}" for k in RECOVERY_TARGETS]
    lines += ["parameters:"] + [f"  {k}: [{lo}, {hi}]" for k, (lo, hi) in BOUNDS.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--split", type=int, default=6)
    parser.add_argument("--out", default="runs/bench/refine")
    args, overrides = parser.parse_known_args()
    if not 1 <= args.split < args.trials:
        raise SystemExit("--split must be in [1, trials)")
    economy = [*RECOVERY, *LARGER, *overrides]
    out = Path(args.out).resolve()
    truth = out / "truth"
    if not (truth / "moments.json").is_file():
        cmd = [sys.executable, "-m", "lotj.train", *economy, *[f"economy.{k}={v}" for k, v in TRUE.items()]]
        done = run([*cmd, f"out_dir={truth}", "logging.progress_bar=false"])
        if done.returncode != 0:
            raise SystemExit(f"the solve at the true parameters failed:\n{done.stderr[-3000:]}")
    moments = json.loads((truth / "moments.json").read_text())
    rows = []
    for seed in range(args.seeds):
        arms = (("search", args.trials, 0), ("search+refine", args.split, args.trials - args.split))
        for arm, trials, refine in arms:
            name = f"{arm.replace('+', '_')}_{seed}"
            target = targets_file(out / f"{name}.yaml", moments, trials, refine, seed)
            argv = [*economy, *[f"economy.{k}={v}" for k, v in START.items()], f"calibrate={target}"]
            argv += [f"calibrate.out_dir={out}", f"calibrate.name={name}", "calibrate.num_cpus=1"]
            if (out / name / "calibration.yaml").is_file():
                argv = [f"resume={out / name}"]
            start = time.perf_counter()
            done = run([sys.executable, "-m", "tune.calibrate", *argv])
            wall = time.perf_counter() - start
            best_path = out / name / "best.json"
            best = json.loads(best_path.read_text()) if best_path.is_file() else None
            if done.returncode != 0 or not best:
                print(f"{name}: the calibration failed (status {done.returncode})\n{done.stderr[-2000:]}")
                continue
            errors = {k: abs(best["params"][k] - v) / (BOUNDS[k][1] - BOUNDS[k][0]) for k, v in TRUE.items()}
            rows.append({"seed": seed, "arm": arm, "objective": best["objective"], "best": best["key"],
                         **{k: best["params"][k] for k in TRUE}, **{f"err_{k}": e for k, e in errors.items()},
                         "wall_s": wall})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    names = list(TRUE)
    print(f"\ntrue: {TRUE}; start: {START}; {args.trials + 1} solves per calibration")
    print("| seed | arm | best objective | " + " | ".join(names) + " | " + " | ".join(f"error {n}" for n in names)
          + " | wall (s) |")  # fmt: skip
    print("|---" * (4 + 2 * len(names)) + "|")
    for r in rows:
        cells = [str(r["seed"]), r["arm"], f"{r['objective']:.4g}", *[f"{r[n]:.4f}" for n in names]]
        cells += [f"{r[f'err_{n}']:.1%}" for n in names] + [f"{r['wall_s']:.0f}"]
        print("| " + " | ".join(cells) + " |")
    (out / "benchmark.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
