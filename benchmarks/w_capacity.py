"""What the W network's form can represent: regression on the exact W given the run's V (docs/wages.md).

The W stage learns W from noisy targets; whether its error is the targets' or the form's is answered by fitting
the same network to noise-free ones. On a discrete economy (``conf=exact_small``) this script solves the exact
W given the finished run's V and market (the W solver's own reference, as ``split`` in ``validation.json``),
draws ``points`` (pair, wage) points uniformly over every pair's bargaining set under that W widened by a
quarter on each side, and fits the W network by Adam on the squared relative error (batches of ``batch``, a
cosine learning rate from ``lr``). Every fifth of the steps it prints the mean and max relative error on the
validation's grid (11 wages per pair from a tenth below the set to a tenth above it), and at the start and the
end that error by position in the set.

The network starts from the run's trained W (``init=run``, its weights copied into the configured form: new head
outputs start as initialised, so a form that adds outputs starting at the identity starts from the same W) or
afresh (``init=fresh``). Config overrides change the form (``wnet.set_kinks=true``).

Usage: ``python benchmarks/w_capacity.py run=DIR [steps=15000] [lr=3e-4] [batch=512] [points=100000]
[init=run|fresh] [seed=0] [threads=1] [wnet.key=value ...]``. The run needs ``w_net.pt`` for ``init=run``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _options import split_options
from omegaconf import OmegaConf

from lotj.config import config_from_yaml
from lotj.exact.worker_value import exact_worker_values
from lotj.train.wstage import build_worker_net
from lotj.validate.report import run_networks
from lotj.validate.values import exact_solution, network_values
from lotj.validate.wages import GRID_MARGIN, GRID_POINTS, exact_wage_solution, pair_wages, wage_grid

MARGIN = 0.25  # training wages from a quarter of the set's width below it to a quarter above it


def _w(net, batch, slot, w):
    return net.values(batch, w)[torch.arange(slot.numel()), slot]


def main(argv: list[str]) -> None:
    defaults = {"run": "", "steps": "15000", "lr": "3e-4", "batch": "512", "points": "100000", "init": "run"}
    opts, rest = split_options(argv, defaults | {"seed": "0", "threads": "1"})
    if not opts["run"] or opts["init"] not in ("run", "fresh"):
        raise SystemExit("usage: python benchmarks/w_capacity.py run=DIR [init=run|fresh] [steps=N] [wnet.key=value]")
    torch.set_num_threads(int(opts["threads"]))
    torch.manual_seed(int(opts["seed"]))
    cfg, vf, trained = run_networks(Path(opts["run"]))
    if opts["init"] == "run" and trained is None:
        raise SystemExit(f"{opts['run']} has no w_net.pt: use init=fresh or a run with a W stage")
    node = OmegaConf.merge(OmegaConf.structured(cfg), OmegaConf.from_dotlist(rest))
    cfg = config_from_yaml(OmegaConf.to_yaml(node))
    net = build_worker_net(cfg)
    if cfg.wnet.surplus_input:
        net.attach_value(vf)
    if opts["init"] == "run":
        state = net.state_dict()
        for key, val in trained.state_dict().items():
            if state[key].shape == val.shape:
                state[key] = val
            else:  # a form with more head outputs: the trained ones first, the new ones as initialised
                state[key][: val.shape[0]] = val
        net.load_state_dict(state)

    sol = exact_solution(cfg)
    curve = exact_wage_solution(sol).curve
    prob = curve.problem
    given = exact_worker_values(sol.space, cfg.economy, network_values(vf, sol.states), sol.market, w_start=1.0)
    pairs = np.arange(len(prob.pairs))
    lo = given.invert(pairs, prob.u)
    width = np.maximum(given.invert(pairs, prob.u + np.maximum(prob.delta, 0.0)) - lo, 0.05 * prob.u)

    rng = np.random.default_rng(int(opts["seed"]))
    n = int(opts["points"])
    pair = rng.integers(0, len(pairs), n)
    wage = lo[pair] + rng.uniform(-MARGIN, 1.0 + MARGIN, n) * width[pair]
    target = torch.as_tensor(given.value(pair, wage))
    scale = torch.maximum(target.abs(), torch.as_tensor(prob.u[pair]))
    train = pair_wages(curve, pair, wage)

    grid_pair, grid_wage = wage_grid(curve)
    grid = pair_wages(curve, grid_pair, grid_wage)
    grid_y = given.value(grid_pair, grid_wage)
    grid_scale = np.maximum(np.abs(grid_y), prob.u[grid_pair])
    positions = np.linspace(-GRID_MARGIN, 1.0 + GRID_MARGIN, GRID_POINTS)

    def error(by_position: bool = False) -> tuple[float, float]:
        with torch.no_grad():
            rel = (_w(net, *grid).numpy() - grid_y) / grid_scale
        if by_position:
            mean_abs = np.abs(rel).reshape(-1, GRID_POINTS).mean(0)
            print("  position in the set:  " + "  ".join(f"{f:+.2f}" for f in positions))
            print("  mean |error| (1e-3):  " + "  ".join(f"{e * 1e3:5.2f}" for e in mean_abs), flush=True)
        return float(np.abs(rel).mean()), float(np.abs(rel).max())

    steps, bs = int(opts["steps"]), int(opts["batch"])
    mean, top = error(by_position=True)
    print(f"start ({opts['init']}): W mean relative error {mean:.2e}, max {top:.2e}", flush=True)
    opt = torch.optim.Adam(net.parameters(), lr=float(opts["lr"]))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * k / steps)))
    gen = torch.Generator().manual_seed(int(opts["seed"]) + 1)
    t0 = time.perf_counter()
    for k in range(steps):
        idx = torch.randint(n, (bs,), generator=gen)
        batch, slot, w = train
        sub = (batch.index(idx), slot[idx], w[idx])
        loss = ((_w(net, *sub) - target[idx]) / scale[idx]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (k + 1) % max(steps // 5, 1) == 0:
            mean, top = error()
            print(f"step {k + 1}: W mean {mean:.2e}, max {top:.2e}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    error(by_position=True)


if __name__ == "__main__":
    main(sys.argv[1:])
