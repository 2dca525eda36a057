"""Wall time of a counterfactual set, and what the warm start saves.

    python benchmarks/counterfactuals.py                                   # conf=smoke, the source set, 2 CPUs
    python benchmarks/counterfactuals.py --cold no_q conf=smoke --seeds 2  # also solve no_q cold, to compare
    python benchmarks/counterfactuals.py --num-cpus 2 conf=smoke sim.n_firms=500 solver.max_epochs=20

Runs ``python -m lotj.counterfactuals ARGS sweep.num_cpus=N`` (baseline, then the counterfactuals two at a
time on 2 CPUs) and prints its wall time, each economy's epochs (V and W), solve time and convergence, and the
table. The warm start's saving is given two ways: against the baseline's cold solve (a neighbouring economy,
so an estimate), and, with ``--cold NAME``, against a cold solve of that same counterfactual economy with the
same config and seed (``python -m lotj.train``, no ``init_from``): the exact figure, at the cost of one more
solve. Run on an idle machine: the figures include any contention with other processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def threads_of(set_dir: Path, economy: str, seed: int) -> int:
    """The torch threads a solve of the set ran on (its ``config.yaml``)."""
    from lotj.config import config_from_yaml

    return config_from_yaml(set_dir / "economies" / economy / f"seed{seed}" / "config.yaml").trainer.num_threads


def run(argv: list[str]) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "RAY_DEDUP_LOGS": "0"}
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode not in (0, 1):  # 1: an economy failed or did not finish; the table says which
        raise SystemExit(f"{' '.join(argv)} failed with status {proc.returncode}:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    parser.add_argument("--out", default="runs/bench-counterfactuals", help="sweep.out_dir of the set")
    parser.add_argument("--cold", default="", help="also solve this counterfactual cold, for the exact saving")
    args, rest = parser.parse_known_args()
    if not any(a.startswith("conf=") for a in rest):
        rest.append("conf=smoke")
    name = f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    argv = [sys.executable, "-m", "lotj.counterfactuals", *rest, f"sweep.num_cpus={args.num_cpus}"]
    argv += [f"sweep.out_dir={args.out}", f"sweep.name={name}", "sweep.verbose=0"]
    wall, rc = run(argv)
    set_dir = (ROOT / args.out / name) if not Path(args.out).is_absolute() else Path(args.out) / name
    runs = pd.read_csv(set_dir / "runs.csv")
    table = pd.read_csv(set_dir / "counterfactuals.csv")
    print(f"set: {set_dir}")
    print(f"wall time of the set: {wall:.0f} s ({wall / 60:.1f} min) on {args.num_cpus} CPUs, exit status {rc}")
    shown = ["economy", "seed", "state", "epochs", "w_epochs", "total_time_s", "convergence", "residual_final"]
    print(runs[[c for c in shown if c in runs.columns]].to_string(index=False))
    base = runs[(runs["economy"] == "baseline") & (runs["state"] == "done")]
    warm = runs[(runs["economy"] != "baseline") & (runs["state"] == "done")]
    if len(base) and len(warm):
        threads = {  # the baseline round may run on more threads than the counterfactuals (lotj.counterfactuals)
            kind: sorted({threads_of(set_dir, row.economy, row.seed) for row in rows.itertuples()})
            for kind, rows in (("baseline", base), ("warm", warm))
        }
        line = (
            f"warm starts vs the baseline's cold solve: {warm['epochs'].mean():.1f} vs {base['epochs'].mean():.1f} "
            f"V epochs, {warm['total_time_s'].mean():.0f} vs {base['total_time_s'].mean():.0f} s a solve"
        )
        if threads["baseline"] == threads["warm"]:
            share = 1.0 - warm["total_time_s"].mean() / base["total_time_s"].mean()
            line += f" (saving {share:.0%}, an estimate: the baseline is a neighbouring economy)"
        else:
            line += (
                f" (the baseline on {threads['baseline']} torch threads, the counterfactuals on {threads['warm']}, "
                "side by side: compare the epochs, not the seconds)"
            )
        print(line)
    if args.cold:
        seed = int(runs["seed"].min())
        warm_dir = set_dir / "economies" / args.cold / f"seed{seed}"
        cold_dir = set_dir / "cold" / args.cold
        cfg = warm_dir / "config.yaml"
        from omegaconf import OmegaConf

        node = OmegaConf.load(cfg)
        node.init_from, node.out_dir = "", str(cold_dir)
        cold_dir.mkdir(parents=True, exist_ok=True)
        (cold_dir / "cold.yaml").write_text(OmegaConf.to_yaml(node))
        code = (
            "import json, sys; from lotj.config import config_from_yaml; from lotj.train.run import train; "
            f"s = train(config_from_yaml({str(cold_dir / 'cold.yaml')!r})); print(json.dumps(s['status']))"
        )
        cold_wall, _ = run([sys.executable, "-c", code])
        cold = json.loads((cold_dir / "summary.json").read_text())
        warm_summary = json.loads((warm_dir / "summary.json").read_text())
        share = 1.0 - warm_summary["total_time_s"] / cold["total_time_s"]
        print(
            f"{args.cold}, seed {seed}: warm {warm_summary['epochs']} V epochs, {warm_summary['total_time_s']:.0f} s; "
            f"cold {cold['epochs']} V epochs, {cold['total_time_s']:.0f} s: the warm start saves {share:.0%} "
            f"(cold convergence: {cold.get('convergence', 'not estimated')})"
        )
    print()
    print((set_dir / "counterfactuals.md").read_text())
    return 0 if len(table) else 1


if __name__ == "__main__":
    raise SystemExit(main())
