"""Ray Tune's overhead: an N-trial sweep with C concurrent trials vs N sequential ``python -m lotj.train`` runs.

    python benchmarks/sweep_overhead.py                       # 4 trials, 2 concurrent, conf=smoke
    python benchmarks/sweep_overhead.py --trials 4 --concurrent 2 conf=smoke solver.max_epochs=3

Every run is the same solve with a different seed (the sweep's space is ``seed: {grid: [0..N-1]}``), so
both sides do the same work. Prints wall times and the overhead per trial:

- sequential overhead per run = (wall of the N runs - their training time) / N: Python start-up and imports;
- sweep overhead per trial = (sweep wall - training time of its trials / C) / N: Ray start-up, trial
  start-up (a fresh worker imports torch and Lightning), per-epoch reports and checkpoints, results table.

"Training time" is the ``wall_time_s`` the training function returns. Run on an idle machine: the
figures include any contention with other processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed with status {proc.returncode}:\n{proc.stderr[-3000:]}")
    return elapsed


def sequential(n: int, overrides: list[str], out: Path, threads: int) -> tuple[float, list[float]]:
    """N ``python -m lotj.train`` runs one after the other: total wall and each run's training time."""
    train_times = []
    total = 0.0
    for seed in range(n):
        run_dir = out / "sequential" / str(seed)
        argv = [sys.executable, "-m", "lotj.train", *overrides, f"seed={seed}", f"out_dir={run_dir}"]
        total += timed([*argv, "logging.progress_bar=false", f"trainer.num_threads={threads}"])
        train_times.append(json.loads((run_dir / "summary.json").read_text())["wall_time_s"])
    return total, train_times


def swept(n: int, concurrent: int, overrides: list[str], out: Path) -> tuple[float, list[float], pd.DataFrame]:
    """One sweep of N trials, C at a time on C CPUs: total wall and each trial's training time."""
    space = out / "space.yaml"
    space.write_text(
        "sweep:\n  num_samples: 1\n  scheduler: {name: fifo}\n  resources: {cpu: 1, gpu: 0}\n"
        f"space:\n  seed: {{grid: {list(range(n))}}}\n"
    )
    argv = [sys.executable, "-m", "tune.sweep", *overrides, f"tune={space}", f"sweep.out_dir={out}", "sweep.name=sweep"]
    argv += [f"sweep.num_cpus={concurrent}", f"sweep.max_concurrent={concurrent}", "sweep.verbose=0"]
    total = timed(argv)
    table = pd.read_csv(out / "sweep" / "results.csv")
    return total, table["wall_time_s"].tolist(), table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--seq-threads", type=int, default=0, help="torch threads of the sequential runs (0: all)")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument(
        "overrides", nargs="*", default=["conf=smoke", "solver.max_epochs=2", "solver.steps_per_epoch=10"]
    )
    args = parser.parse_args()
    overrides = (
        args.overrides if any(o.startswith("conf=") for o in args.overrides) else ["conf=smoke", *args.overrides]
    )

    with tempfile.TemporaryDirectory(prefix="lotj-bench-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        seq_wall, seq_train = sequential(args.trials, overrides, out, args.seq_threads)
        sweep_wall, sweep_train, table = swept(args.trials, args.concurrent, overrides, out)

    n, c = args.trials, args.concurrent
    statuses = table["status"].value_counts().to_dict()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"config: {' '.join(overrides)}; {n} runs; CPUs: {os.cpu_count()}; load average after: {load}")
    print(f"sweep trial statuses: {statuses}")
    print(f"{'':44s}{'wall s':>10s}{'train s/run':>14s}{'overhead s/run':>16s}")
    seq_over = (seq_wall - sum(seq_train)) / n
    sweep_over = (sweep_wall - sum(sweep_train) / c) / n
    seq_label = f"{n} sequential lotj.train (threads={args.seq_threads or 'all'})"
    print(f"{seq_label:44s}{seq_wall:10.1f}{sum(seq_train) / n:14.2f}{seq_over:16.2f}")
    sweep_label = f"tune.sweep, {c} concurrent (1 thread each)"
    print(f"{sweep_label:44s}{sweep_wall:10.1f}{sum(sweep_train) / n:14.2f}{sweep_over:16.2f}")
    print(f"Ray's overhead per trial beyond a fresh process: {sweep_over - seq_over:.2f} s")
    print(f"speed-up of the sweep: {seq_wall / sweep_wall:.2f}x")


if __name__ == "__main__":
    main()
