"""Throughput of the full V residual, forward and backward: pooled neighbours vs naive recomputation.

For firms of n = 4, 16, 64 workers and M = 64 draws per integral (M_N = M_E = 64), times one
training step's worth of work, ``v_residual(...)`` plus ``backward()`` of its squared mean, with

- pooled: :class:`lotj.nets.ValueNet` (every removal and addition neighbour from the pooled embedding);
- naive: :class:`lotj.economy.value.SetFunctionValue` over the same network (every neighbour set
  re-encoded),

and prints firm states per second of each and their ratio. Both compute the same numbers
(tests/test_nets.py). Timings on a shared machine are indicative: compare the ratio within a run.

    python benchmarks/residual_throughput.py [--conf baseline] [--sizes 4 16 64] [--draws 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from lotj.config import load_config
from lotj.economy.firms import FirmBatch, sample_firm_types, sample_workers
from lotj.economy.hjb import make_draws, v_residual
from lotj.economy.value import SetFunctionValue
from lotj.sim.distributions import EconomySnapshot
from lotj.sim.meeting_draws import sample_draws
from lotj.train.vmodule import build_net


def full_firms(p, count: int, n: int, gen: torch.Generator) -> FirmBatch:
    z, q = sample_firm_types(p, count, gen)
    h, a = sample_workers(p, count * n, gen)
    return FirmBatch(z, q, h.view(count, n), a.view(count, n), torch.ones(count, n, dtype=torch.bool))


def step(vf, p, s, rates, d) -> None:
    draws = make_draws(vf, p, d.h_n, d.a_n, d.s_p, d.slot, d.firm_e)
    res = v_residual(vf, p, s, rates, draws)
    (res.residual.pow(2).mean() / (p.rho * res.value.detach()).pow(2).mean()).backward()


def timed(fn, min_time: float, min_reps: int = 3) -> float:
    """Median seconds per call (after one warm-up call)."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conf", default="baseline", help="preset whose economy and net sizes are used")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--draws", type=int, default=64, help="M = M_N = M_E")
    ap.add_argument("--states", type=int, default=1024, help="workers per batch: batch = max(8, states // n)")
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds of timing per variant")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cfg = load_config([f"conf={args.conf}"])
    print(
        f"conf={args.conf}: net embed={cfg.net.embed_dim} phi={cfg.net.phi_width}x{cfg.net.phi_depth} "
        f"rho={cfg.net.rho_width}x{cfg.net.rho_depth}; M={args.draws}; float64; threads={torch.get_num_threads()}"
    )
    print(f"{'n':>4} {'batch':>6} {'pooled states/s':>16} {'naive states/s':>15} {'ratio':>7}")
    for n in args.sizes:
        p = dataclasses.replace(cfg.economy, n_max=2 * n)  # the cap does not bind: every meeting term is on
        gen = torch.Generator().manual_seed(n)
        batch = max(8, args.states // n)
        economy = full_firms(p, 256, n, gen)
        h_u, a_u = sample_workers(p, 2000, gen)
        snap = EconomySnapshot(economy, h_u, a_u)
        rates = snap.meeting_rates(p)
        s = full_firms(p, batch, n, gen)
        d = sample_draws(snap, args.draws, args.draws, gen)
        torch.manual_seed(0)
        net = build_net(dataclasses.replace(cfg, economy=p), franchise=4.0).to(torch.float64)
        naive = SetFunctionValue(net.set_function)
        t_pooled = timed(lambda net=net, p=p, s=s, rates=rates, d=d: step(net, p, s, rates, d), args.min_time)
        t_naive = timed(lambda naive=naive, p=p, s=s, rates=rates, d=d: step(naive, p, s, rates, d), args.min_time)
        print(f"{n:>4} {batch:>6} {batch / t_pooled:>16.0f} {batch / t_naive:>15.0f} {t_naive / t_pooled:>6.1f}x")


if __name__ == "__main__":
    main()
