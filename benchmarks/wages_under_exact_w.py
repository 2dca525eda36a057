"""The simulator's wages under the exact V and the exact W, against the exact stationary wage law (docs/validation.md).

Simulates a discrete economy (default conf=exact_small) under its exact equilibrium V with wages set by
its exact W (:func:`lotj.exact.table.table_worker_value_function`), through the simulator's own wage
back-out (lotj.sim.wage_tracking), and prints the annual panel's wage quartiles and share of negative
wages beside the exact ones (lotj.exact.wages). No network is involved: what remains is the
simulator's error (time step, sampling) and that of how the panel weights wages. Prints figures; not a test.

    python benchmarks/wages_under_exact_w.py                          # 3000 firms, dt 0.02, 20 panel years
    python benchmarks/wages_under_exact_w.py --firms 10000 --years 40 --set sim.dt=0.01
"""

from __future__ import annotations

import argparse
import time

import torch

from lotj.config import load_config
from lotj.exact import solve_equilibrium
from lotj.exact.table import table_worker_value_function
from lotj.sim.simulator import Simulator
from lotj.sim.wage_tracking import track_wages
from lotj.validate.wages import compare_distribution, exact_wage_solution, panel_wages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conf", default="exact_small")
    ap.add_argument("--firms", type=int, default=3000)
    ap.add_argument("--dt", type=float, default=0.02)
    ap.add_argument("--burn-in", type=float, default=20.0, help="years under V before wages are tracked")
    ap.add_argument("--wage-burn-in", type=float, default=15.0, help="years with wages before the panel")
    ap.add_argument("--years", type=int, default=20, help="panel years")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config([f"conf={args.conf}", f"sim.n_firms={args.firms}", f"sim.dt={args.dt}", *args.set])
    start = time.perf_counter()
    sol = solve_equilibrium(cfg.economy)
    ew = exact_wage_solution(sol)
    vf, wf = sol.value_function(), table_worker_value_function(ew.curve)
    sim = Simulator.from_config(cfg)
    sim.advance(vf, args.burn_in)
    tracker = track_wages(sim, wf, vf)
    sim.advance(vf, args.wage_burn_in)
    tracker.reset_counts()
    panel = sim.simulate_panel(vf, args.years)
    d = compare_distribution(ew, panel_wages(panel))
    print(f"{args.conf}: {args.firms} firms, dt {args.dt}, {args.years} panel years ({d['n_wages']} worker-years)")
    for k, exact in d["exact"].items():
        print(f"  {k}: panel {d['network'][k]:.6g}  exact {exact:.6g}  band {d['exact_band'][k]}")
    print(f"  negative share: panel {d['network_negative_share']:.4%}  exact {d['exact_negative_share']:.4%}")
    print(f"  mean: panel {panel_wages(panel).mean():.6g}  exact {ew.mean:.6g}")
    print(f"  resets: {tracker.counts}")
    print(f"  {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
