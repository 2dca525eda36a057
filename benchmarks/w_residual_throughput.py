"""Throughput of the W residual (MODEL.md section 5): worker states per second, forward and backward.

A batch of the smoke economy's Ω states (all workers of ``batch_size`` firm states, with wages) and its
meeting draws, the frozen V an untrained :class:`lotj.nets.ValueNet` (its cost does not depend on its
weights), W a :class:`lotj.nets.WorkerValueNet` with the ``wnet`` sizes of the config. Prints the
median over repetitions of:

- ``v_terms``: the V side of the residual (surpluses, hire indicators, poachers' Δ_p; no gradient);
- ``forward``: the W side of the residual (W at S, H(S), every S⊖x_j and S⊕x_m; P, Q; with
  ``wnet.surplus_input=true`` also the frozen V's surplus at each of those states);
- ``forward+backward``: the W side and the gradient of the squared residual.

Usage: ``python benchmarks/w_residual_throughput.py [threads=2] [reps=20] [conf=smoke] [key=value ...]``.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from _options import frozen_value, options_and_config

from lotj.economy.hjb import MeetingDraws
from lotj.economy.params import MeetingRates
from lotj.economy.wages import w_residual_from_terms, wage_v_terms
from lotj.nets import WorkerValueNet
from lotj.sim.distributions import initial_snapshot
from lotj.train.wdatamodule import WDataModule, batch_firms


def _median_time(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str]) -> None:
    opts, cfg = options_and_config(argv, {"threads": "2", "reps": "20"})
    p = cfg.economy
    gen = torch.Generator().manual_seed(cfg.seed)
    snap = initial_snapshot(p, cfg.sim.n_firms, gen)
    vf = frozen_value(cfg, snap)
    wn = cfg.wnet
    net = WorkerValueNet(
        p,
        wn.embed_dim,
        wn.phi_width,
        wn.phi_depth,
        wn.head_width,
        wn.head_depth,
        wn.activation,
        wn.kinks,
        surplus_input=wn.surplus_input,
    )
    if net.surplus_input:
        net.attach_value(vf)
    dm = WDataModule(p, vf, snap, cfg.wsolver, seed=cfg.seed)
    batch = next(iter(dm.train_dataloader()))
    s, poachers = batch_firms(batch), batch_firms(batch, "p_")
    draws = MeetingDraws(batch["h_n"], batch["a_n"], batch["h_e"], batch["a_e"], batch["delta_e"], batch["firm_e"])
    rates = MeetingRates(*(float(x) for x in batch["rates"]))
    workers = int(s.mask.sum())

    def v_side():
        return wage_v_terms(vf, p, s, rates, draws, poachers, batch["firm_id"], batch["poacher_id"])

    terms = v_side()

    def forward():
        with torch.no_grad():
            w_residual_from_terms(net, p, s, batch["w"], terms)

    def backward():
        net.zero_grad(set_to_none=True)
        r, _ = w_residual_from_terms(net, p, s, batch["w"], terms)
        (r * r).sum().backward()

    reps = int(opts["reps"])
    print(
        f"conf={cfg.conf} threads={torch.get_num_threads()} firm states={s.batch_size} workers={workers} "
        f"n_max={p.n_max} M_N={draws.h_n.numel()} M_E={draws.h_e.numel()} M_Pi={poachers.batch_size} "
        f"W params={sum(x.numel() for x in net.parameters())}"
    )
    for name, fn in (("v_terms", v_side), ("forward", forward), ("forward+backward", backward)):
        t = _median_time(fn, reps)
        print(f"{name:>18}: {t * 1e3:8.2f} ms/batch  {workers / t:10.0f} worker states/s")
    t = _median_time(lambda: (v_side(), backward()), reps)
    print(f"{'training step':>18}: {t * 1e3:8.2f} ms/batch  {workers / t:10.0f} worker states/s (V side + W fwd+bwd)")


if __name__ == "__main__":
    main(sys.argv[1:])
