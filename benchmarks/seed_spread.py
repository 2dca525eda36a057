"""Is a preset's answer a property of the model or of the seed? Solve it with K seeds and compare.

    python benchmarks/seed_spread.py conf=smoke --seeds 3 [--jobs 2] [--out runs/seed_spread/smoke] [overrides]

Runs ``python -m lotj.train`` once per seed (``seed=0..K-1``, one torch thread each, ``--jobs`` at a time)
into ``OUT/seed_k`` (a seed whose ``summary.json`` already exists is not run again: ``--reuse``), then
prints, for each statistic of ``summary.json`` (the simulated economy's ``sim_*``; the wage figures
after a W stage):

- the mean over seeds and the seed-to-seed standard deviation;
- the within-run sampling error: the standard error of the statistic in one run, from its value in each
  year of that run's panel (batch means over the panel's years: a lower bound where the years are
  correlated, as firm sizes are), averaged over the runs;
- the spread in units of that error (``spread / SE``): about 1 when seeds agree as well as one run can
  tell, much more when the answer depends on the seed;

and V's pairwise relative difference on common states: each seed's final network evaluated on the firms
of seed 0's last panel year, ``mean |V_i − V_j| / mean(|V_i|, |V_j|)`` for every pair. The table is also
written to ``OUT/seed_spread.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

#: statistics compared across seeds: summary key -> the per-year panel statistic that estimates its error
PANEL_STATISTICS = {
    "sim_e": "employment rate",
    "sim_firm_size_mean": "mean firm size",
    "sim_firm_size_p50": "median firm size",
    "sim_firm_size_p90": "p90 firm size",
    "sim_en_rate": "EN rate",
    "sim_ne_rate": "NE rate",
}
#: compared across seeds without a panel-based standard error
OTHER_STATISTICS = ("sim_omega", "wage_p50", "wage_p75", "residual_final")


def run_seed(seed: int, out: Path, overrides: list[str], reuse: bool) -> Path:
    """One solve into ``out/seed_<seed>``; returns that directory."""
    run_dir = out / f"seed_{seed}"
    if reuse and (run_dir / "summary.json").is_file():
        return run_dir
    cmd = [sys.executable, "-m", "lotj.train", *overrides, f"seed={seed}", f"out_dir={run_dir}"]
    cmd += ["trainer.num_threads=1", "logging.progress_bar=false"]
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "disabled")}
    log = (out / f"seed_{seed}.log").open("w")
    print(f"seed {seed}: {' '.join(cmd[2:])}", flush=True)
    done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"seed {seed} failed (exit {done.returncode}); see {out / f'seed_{seed}.log'}")
    return run_dir


def yearly_statistics(panel: pd.DataFrame) -> pd.DataFrame:
    """Each statistic of :data:`PANEL_STATISTICS` in each year of an annual panel (docs/panel.md)."""
    rows = []
    employed = panel[panel["employed"]]
    present = panel[["worker_id", "year", "employed"]]
    nxt = present.assign(year=present["year"] - 1).rename(columns={"employed": "employed_next"})
    pairs = present.merge(nxt, on=["worker_id", "year"])
    for year, group in employed.groupby("year"):
        sizes = group.groupby("firm_id").size().to_numpy(dtype=float)
        row = {
            "year": year,
            "sim_e": float(panel.loc[panel["year"] == year, "employed"].mean()),
            "sim_firm_size_mean": sizes.mean(),
            "sim_firm_size_p50": float(np.quantile(sizes, 0.5)),
            "sim_firm_size_p90": float(np.quantile(sizes, 0.9)),
        }
        p = pairs[pairs["year"] == year]
        emp, un = p[p["employed"]], p[~p["employed"]]
        row["sim_en_rate"] = float((~emp["employed_next"]).mean()) if len(emp) else np.nan
        row["sim_ne_rate"] = float(un["employed_next"].mean()) if len(un) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def common_states(run_dir: Path):
    """The firms with workers in the last year of a run's panel, as a FirmBatch."""
    import torch

    from lotj.config import config_from_yaml
    from lotj.economy.firms import FirmBatch

    cfg = config_from_yaml((run_dir / "config.yaml").read_text())
    panel = pd.read_parquet(run_dir / "panel.parquet")
    last = panel[(panel["year"] == panel["year"].max()) & panel["employed"]]
    firms = list(last.groupby("firm_id"))
    n_max = cfg.economy.n_max
    f64 = torch.float64
    z, q = torch.zeros(len(firms), dtype=f64), torch.zeros(len(firms), dtype=f64)
    h, a = torch.ones(len(firms), n_max, dtype=f64), torch.ones(len(firms), n_max, dtype=f64)
    mask = torch.zeros(len(firms), n_max, dtype=torch.bool)
    for k, (_, g) in enumerate(firms):
        n = len(g)
        z[k], q[k] = float(g["z"].iloc[0]), float(g["q"].iloc[0])
        h[k, :n], a[k, :n] = torch.tensor(g["h"].to_numpy()), torch.tensor(g["a"].to_numpy())
        mask[k, :n] = True
    return FirmBatch(z, q, h, a, mask)


def values_on(run_dir: Path, states) -> np.ndarray:
    """The run's final V (its last checkpoint) on ``states``."""
    import torch

    from lotj.train.vmodule import VModule

    module = VModule.load_from_checkpoint(str(run_dir / "checkpoints" / "last.ckpt"), map_location="cpu")
    module.eval().double()
    with torch.no_grad():
        return module.value_function().value(states).numpy()


def spread_table(run_dirs: list[Path]) -> dict:
    summaries = [json.loads((d / "summary.json").read_text()) for d in run_dirs]
    years = [yearly_statistics(pd.read_parquet(d / "panel.parquet")) for d in run_dirs]
    table = {}
    for key in (*PANEL_STATISTICS, *OTHER_STATISTICS):
        values = [s.get(key) for s in summaries]
        if any(v is None for v in values):
            continue
        row = {"values": values, "mean": float(np.mean(values)), "spread": float(np.std(values, ddof=1))}
        if key in PANEL_STATISTICS:
            ses = [float(y[key].std(ddof=1) / np.sqrt(y[key].notna().sum())) for y in years]
            row["within_run_se"] = float(np.mean(ses))
            row["spread_over_se"] = row["spread"] / row["within_run_se"] if row["within_run_se"] > 0 else None
        table[key] = row
    states = common_states(run_dirs[0])
    v = [values_on(d, states) for d in run_dirs]
    pairs = {}
    for i, j in itertools.combinations(range(len(v)), 2):
        rel = np.abs(v[i] - v[j]) / (0.5 * (np.abs(v[i]) + np.abs(v[j])))
        pairs[f"{i},{j}"] = {"mean": float(rel.mean()), "max": float(rel.max())}
    return {"statistics": table, "v_pairwise": pairs, "n_common_states": int(states.batch_size)}


def print_table(result: dict) -> None:
    print(f"{'statistic':24s} {'values':>30s} {'mean':>9s} {'spread':>9s} {'within SE':>10s} {'spread/SE':>10s}")
    for key, row in result["statistics"].items():
        vals = " ".join(f"{x:.4g}" for x in row["values"])
        se = row.get("within_run_se")
        ratio = row.get("spread_over_se")
        print(
            f"{key:24s} {vals:>30s} {row['mean']:9.4g} {row['spread']:9.3g} "
            f"{'' if se is None else f'{se:10.3g}'} {'' if ratio is None else f'{ratio:10.2f}'}"
        )
    print(f"V pairwise relative difference on {result['n_common_states']} common states (seed 0's last year):")
    for pair, d in result["v_pairwise"].items():
        print(f"  seeds {pair}: mean {d['mean']:.2e}, max {d['max']:.2e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default="")
    parser.add_argument("--reuse", action="store_true", help="keep the runs whose summary.json exists")
    args, overrides = parser.parse_known_args(argv)
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 to measure a spread")
    if not any(o.startswith("conf=") for o in overrides):
        overrides.insert(0, "conf=smoke")
    preset = next(o for o in overrides if o.startswith("conf=")).split("=", 1)[1]
    out = Path(args.out or f"runs/seed_spread/{preset}")
    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        run_dirs = list(pool.map(lambda k: run_seed(k, out, overrides, args.reuse), range(args.seeds)))
    result = spread_table(run_dirs)
    (out / "seed_spread.json").write_text(json.dumps(result, indent=2))
    print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
