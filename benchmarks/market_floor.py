"""How far a simulated market puts V from the equilibrium, with perfect decisions (docs/validation.md).

The network's residual reads the market (e, ω, s^N, χ^N, χ^E) of a finite simulated economy. On a
discrete economy this script measures what that alone costs: it simulates the economy under the
*exact* equilibrium V (so every decision is the equilibrium's), pools the cross-sections of the
last ``--years`` years as the training pipeline does (``solver.market_window``), solves the V
equation exactly given that pooled market (``ExactSolution.values_given``), and prints the
relative distance of that V from the equilibrium V, mean and max over every state. No network
reaches a smaller error than this floor when it trains on such a market. Prints figures; not a test.

    python benchmarks/market_floor.py                               # conf=exact_small, 2e4 firms, 10 years
    python benchmarks/market_floor.py --firms 20000 100000 --years 10 30 --seeds 3

``--flips EPS ...`` measures the other suspect, decisions near indifference, with no simulation:
the equilibrium V times ``1 + EPS·N(0,1)`` state by state (a V as accurate as a good network's),
the decisions read from it, the exact stationary law under those decisions, and the exact V given
its market, against the equilibrium V::

    python benchmarks/market_floor.py --flips 1e-4 5e-4 2e-3 --seeds 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lotj.config import load_config
from lotj.economy.firms import FirmBatch
from lotj.exact.bellman import Policies, Surpluses
from lotj.exact.equilibrium import ExactSolution, solve_equilibrium
from lotj.exact.market import Distribution
from lotj.exact.stationary import stationary_distribution
from lotj.sim.simulator import Simulator


def pooled_distribution(sol: ExactSolution, snapshots: list) -> Distribution:
    """The empirical law of several cross-sections side by side (each counts alike)."""
    firms = FirmBatch.cat([s.firms for s in snapshots])
    h = torch.cat([s.unmatched_h for s in snapshots])
    a = torch.cat([s.unmatched_a for s in snapshots])
    return Distribution.of_population(sol.space, firms, h, a)


def floor(sol: ExactSolution, dist: Distribution) -> tuple[float, float, float]:
    """Mean and max relative distance of the exact V given ``dist``'s market from the equilibrium V,
    and that market's employment rate."""
    v, market = sol.values_given(dist)
    rel = np.abs(v / sol.v - 1.0)
    return float(rel.mean()), float(rel.max()), market.e


def flips(sol: ExactSolution, eps: float, seed: int) -> tuple[int, float, float]:
    """Decisions read from a V with relative noise ``eps``: how many differ from the equilibrium's,
    and how far the exact V given the stationary market under them is from the equilibrium V."""
    rng = np.random.default_rng(seed)
    space, p = sol.space, sol.params
    noisy = Policies.of(space, Surpluses.of(space, sol.v * (1.0 + eps * rng.standard_normal(sol.v.shape))))
    changed = sum(int((getattr(noisy, k) != getattr(sol.policies, k)).sum()) for k in ("hire", "quit", "poach"))
    dist = stationary_distribution(space, p, noisy, start=sol.dist).dist
    mean, worst, _ = floor(sol, dist)
    return changed, mean, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conf", default="exact_small")
    ap.add_argument("--firms", type=int, nargs="+", default=[20000])
    ap.add_argument("--years", type=int, nargs="+", default=[10], help="market windows (years) to pool")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument(
        "--pool-seeds",
        action="store_true",
        help="also pool the windows of all seeds (independent economies): what remains is bias, not noise",
    )
    ap.add_argument("--flips", type=float, nargs="+", default=[], help="relative V noise levels (no simulation)")
    ap.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config([f"conf={args.conf}", *args.set])
    p = cfg.economy
    sol = solve_equilibrium(p)
    if args.flips:
        print(f"decisions from a noisy V: conf={args.conf}, {sol.n_states} states")
        print(f"{'noise':>8} {'seed':>5} {'flipped':>8} {'V mean':>9} {'V max':>9}")
        for eps in args.flips:
            for seed in range(args.seeds):
                changed, mean, worst = flips(sol, eps, seed)
                print(f"{eps:>8.0e} {seed:>5} {changed:>8} {mean:>9.2e} {worst:>9.2e}")
        return
    vf = sol.value_function()
    print(
        f"market floor: conf={args.conf}, {sol.n_states} states, equilibrium e {sol.e:.5f}; simulated under "
        f"the exact V, dt {cfg.sim.dt}, {cfg.sim.burn_in_years:g} years of burn-in"
    )
    print(f"{'firms':>8} {'window':>7} {'seed':>5} {'e (sim)':>9} {'V mean':>9} {'V max':>9} {'seconds':>8}")
    for n_firms in args.firms:
        rows = []
        pooled: dict[int, list] = {w: [] for w in args.years}
        for seed in range(args.seeds):
            clock = time.perf_counter()
            sim = Simulator(p, n_firms, cfg.sim.dt, seed=cfg.seed + seed)
            sim.advance(vf, cfg.sim.burn_in_years)
            snapshots = []
            for _ in range(max(args.years)):
                sim.advance(vf, 1.0)
                snapshots.append(sim.snapshot())
            seconds = time.perf_counter() - clock
            for window in args.years:
                pooled[window] += snapshots[-window:]
                mean, worst, e = floor(sol, pooled_distribution(sol, snapshots[-window:]))
                rows.append((window, mean, worst))
                print(f"{n_firms:>8} {window:>7} {seed:>5} {e:>9.5f} {mean:>9.2e} {worst:>9.2e} {seconds:>8.1f}")
        if args.seeds > 1:
            for window in args.years:
                m = np.array([(a, b) for w, a, b in rows if w == window])
                mean, worst = m[:, 0].mean(), m[:, 1].mean()
                print(f"{n_firms:>8} {window:>7}  mean over seeds: V mean {mean:.2e}, V max {worst:.2e}")
                if args.pool_seeds:
                    mean, worst, e = floor(sol, pooled_distribution(sol, pooled[window]))
                    print(
                        f"{n_firms:>8} {window:>7}  all seeds pooled: e {e:.5f}, V mean {mean:.2e}, V max {worst:.2e}"
                    )


if __name__ == "__main__":
    main()
