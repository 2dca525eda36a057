"""Simulator benchmarks (docs/simulator.md). Prints figures; not a test.

Throughput (default): simulated firm-years per second with decisions from ``lotj.nets.ValueNet``
of the preset's network size, at the preset's ``sim.n_firms``, and how it scales with the number
of firms::

    python benchmarks/simulate.py                      # conf=smoke, 1e3 / 1e4 / 1e5 firms
    python benchmarks/simulate.py --firms 1000 --years 5 --dt 0.05 --precision 32
    python benchmarks/simulate.py --firms 1000 --set net.embed_dim=16 --set net.phi_width=32
    python benchmarks/simulate.py --device cuda --firms 1000 10000 100000 1000000 --precision 32   # on a GPU
    python benchmarks/simulate.py --firms 1000 10000 --compare   # also every value every step, per-step encoding

``--precision 32`` decides on a single-precision copy of the (double) network
(``Simulator.decision_dtype``; the default is the config's ``sim.decision_precision``, so
``--set sim.decision_precision=32`` does the same). Agreement of single- and double-precision decisions on a large
sample of decision states::

    python benchmarks/simulate.py --agreement --firms 10000

dt check: independent replications at ``dt`` and ``dt/2``; for every statistic the mean, its
standard error over replications, and the difference in units of the standard error of the
difference::

    python benchmarks/simulate.py --dt-check --dt 0.02 --reps 8 --firms 2000

The value function of the dt check is ``--value crowding`` (``tests/reference.py: crowding_value``:
hires refused by low-z firms, a job ladder, quits), ``--value net`` (the untrained ValueNet with
a random head: V = ΣU + (F + c z)/r · (1 + head)) or ``--value trained --checkpoint RUN/checkpoints/last.ckpt``
(the network of a training run, with that run's economy)::

    python -m lotj.train conf=smoke out_dir=runs/smoke
    python benchmarks/simulate.py --dt-check --value trained --checkpoint runs/smoke/checkpoints/last.ckpt --dt 0.05
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import torch

from lotj.config import config_from_yaml, load_config
from lotj.economy.value import SetFunctionValue
from lotj.nets import ValueNet, franchise_guess
from lotj.sim.pooled import PerStepEncoding
from lotj.sim.simulator import Simulator
from lotj.train.sim_callback import SUMMARY

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the analytic value functions of the tests
from reference import crowding_value  # noqa: E402

#: The statistics of the dt check: the run summary's (lotj.train.sim_callback.SUMMARY) less s^N and s^E,
#: which follow from e, and the window's length.
DT_STATS = tuple(k for k in SUMMARY if k not in ("s_n", "s_e", "years"))


def make_net(cfg, seed: int, random_head: float) -> ValueNet:
    """A ValueNet of the config's size; ``random_head`` > 0 draws the last head layer with that sd."""
    torch.manual_seed(seed)
    p = cfg.economy
    snap = Simulator(p, 200, 0.02, seed=seed).snapshot()
    n = cfg.net
    franchise = franchise_guess(snap.firms, p.eta)
    net = ValueNet(p, n.embed_dim, n.phi_width, n.phi_depth, n.rho_width, n.rho_depth, n.activation, franchise)
    net = net.to(torch.float64)
    if random_head > 0:
        with torch.no_grad():
            for prm in net.head[-1].parameters():
                prm.normal_(0.0, random_head)
    return net


def trained_net(checkpoint: str):
    """The ValueNet of a training run's checkpoint and that run's config (``config.yaml`` beside
    ``checkpoints/``)."""
    from lotj.train.vmodule import VModule

    path = Path(checkpoint)
    config = path.parent.parent / "config.yaml"
    if not path.is_file() or not config.is_file():
        raise SystemExit(f"--checkpoint {checkpoint}: needs RUN/checkpoints/last.ckpt and RUN/config.yaml")
    cfg = config_from_yaml(config)
    module = VModule(cfg).to(torch.float64)
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=False)["state_dict"])
    return cfg, module.net.eval()


def throughput(cfg, args) -> None:
    dtype = torch.float32 if args.precision == 32 else torch.float64
    net = args.trained if args.trained is not None else make_net(cfg, 0, args.random_head)
    net = net.to(args.device)
    on_gpu = args.device.type == "cuda"

    def sync() -> None:  # GPU work is asynchronous: time it to its end
        if on_gpu:
            torch.cuda.synchronize(args.device)

    n_params = sum(x.numel() for x in net.parameters())
    n = cfg.net
    print(
        f"ValueNet: {n_params} parameters (phi {n.phi_depth}x{n.phi_width} -> {n.embed_dim}, head "
        f"{n.rho_depth}x{n.rho_width}, {n.activation}), {dtype}, torch threads {torch.get_num_threads()}, "
        f"dt {args.dt}, n_max {cfg.economy.n_max}, device {args.device}"
        + (f" ({torch.cuda.get_device_name(args.device)})" if on_gpu else "")
    )
    head = ("decisions", "firms", "years", "wall s", "cpu s", "firm-yr/s wall", "firm-yr/s cpu", "V needed/firm-yr")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (10, 8, 6, 8, 8, 15, 14, 16))) + "  V made/firm-yr")
    variants = [("pools", net)]
    if args.compare:  # every value evaluated at every step, then per-step encoding (no kept pools)
        variants += [("every", net), ("per-step", PerStepEncoding(net))]
    for firms in args.firms:
        for name, vf in variants:
            sim = Simulator(cfg.economy, firms, args.dt, seed=0, threads=args.threads, device=args.device)
            sim.decision_dtype = dtype
            sim.reuse_values = name == "pools"
            if name == "per-step":
                vf = PerStepEncoding(copy.deepcopy(net).to(dtype))
            sim.advance(vf, args.warmup)
            years = args.years if firms <= 20000 else max(1.0, args.years / 5)
            sync()
            w0, c0, made = time.perf_counter(), time.process_time(), sim.head_evaluations
            st = sim.advance(vf, years)
            sync()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            fy = firms * years
            evals = st.counts["value_evaluations"] / fy
            print(
                f"{name:>10} {firms:>8} {years:>6.1f} {wall:>8.2f} {cpu:>8.2f} {fy / wall:>15.0f} {fy / cpu:>14.0f} "
                f"{evals:>16.1f} {(sim.head_evaluations - made) / fy:>16.1f}"
            )


def agreement(cfg, args) -> None:
    """Share of decisions that differ between a single- and a double-precision copy of the network,
    on every employed worker's Δ(S, x_i) and on one meeting per worker at a random firm below the cap,
    after ``--warmup`` simulated years (the network of ``--checkpoint``, else the untrained one of the
    throughput runs)."""
    net = args.trained if args.trained is not None else make_net(cfg, 0, args.random_head)
    firms = args.firms[0]
    sim = Simulator(cfg.economy, firms, args.dt, seed=0)
    sim.advance(net, args.warmup)
    pop = sim.pop
    gen = torch.Generator().manual_seed(1)
    deciders = (pop.firm >= 0).nonzero().squeeze(1)
    dests = torch.randint(0, firms, (pop.n_workers,), generator=gen)
    keep = (pop.size[dests] < cfg.economy.n_max) & (pop.firm != dests)  # below the cap, not the own firm
    movers, dests = torch.arange(pop.n_workers)[keep], dests[keep]
    out = {}
    for dtype in (torch.float64, torch.float32):
        out[dtype] = sim.surpluses(net, deciders, movers, dests, dtype)
    (d64, k64), (d32, k32) = out[torch.float64], out[torch.float32]
    emp = pop.firm[movers] >= 0
    own = torch.zeros(pop.n_workers, dtype=torch.float64)
    own[deciders] = d64
    thr64 = torch.where(emp, own[movers].clamp_min(0.0), torch.zeros_like(k64))
    own[deciders] = d32
    thr32 = torch.where(emp, own[movers].clamp_min(0.0), torch.zeros_like(k32))
    sep = ((d64 < 0) != (d32 < 0)).sum().item()
    offer = ((k64 > thr64) != (k32 > thr32)).sum().item()
    rel = ((d32 - d64).abs() / d64.abs().clamp_min(1e-12)).median().item()
    print(
        f"precision agreement: {firms} firms after {args.warmup:g} years; separations (Δ < 0) differ for {sep} of "
        f"{d64.numel()} employed workers; offers differ for {offer} of {k64.numel()} meetings; median relative "
        f"error of Δ in single precision {rel:.1e}"
    )


def dt_check(cfg, args) -> None:
    p = cfg.economy
    if args.value == "crowding":
        vf = SetFunctionValue(crowding_value(p))
    elif args.value == "trained":
        if args.trained is None:
            raise SystemExit("--value trained needs --checkpoint RUN/checkpoints/last.ckpt")
        vf = args.trained
    else:
        vf = make_net(cfg, 0, args.random_head)
    dts = (args.dt, args.dt / 2)
    results = {}
    for dt in dts:
        rows = []
        for rep in range(args.reps):
            sim = Simulator(p, args.firms[0], dt, seed=args.seed_base + rep)
            sim.advance(vf, args.burn_in)
            st = sim.advance(vf, args.years).scalars()
            rows.append([st[k] for k in DT_STATS])
        t = torch.tensor(rows, dtype=torch.float64)
        results[dt] = (t.mean(0), t.std(0) / math.sqrt(args.reps))
    print(
        f"dt check: value {args.value}, {args.firms[0]} firms, n_max {p.n_max}, {args.reps} replications "
        f"of {args.burn_in:g} burn-in + {args.years:g} measured years; mean ± standard error"
    )
    print(f"{'statistic':<24} {'dt=' + format(dts[0], 'g'):>22} {'dt=' + format(dts[1], 'g'):>22} {'diff / se':>10}")
    for i, k in enumerate(DT_STATS):
        (m1, s1), (m2, s2) = ((results[d][0][i], results[d][1][i]) for d in dts)
        se = math.sqrt(float(s1) ** 2 + float(s2) ** 2)
        z = float(m1 - m2) / se if se > 0 else (0.0 if float(m1) == float(m2) else math.inf)
        print(f"{k:<24} {float(m1):>12.5f} ± {float(s1):<7.5f} {float(m2):>12.5f} ± {float(s2):<7.5f} {z:>10.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conf", default="smoke", help="preset for the economy and the network size")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    ap.add_argument("--firms", type=int, nargs="+", default=None, help="numbers of firms (default: 1e3 1e4 1e5)")
    ap.add_argument("--years", type=float, default=5.0, help="measured years per run")
    ap.add_argument("--warmup", type=float, default=1.0, help="years simulated before timing")
    ap.add_argument("--dt", type=float, default=None, help="time step (default: the preset's sim.dt)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads while simulating")
    ap.add_argument("--device", default="cpu", help="where the throughput runs simulate and decide: cpu or cuda")
    ap.add_argument(
        "--precision",
        type=int,
        choices=(64, 32),
        default=None,
        help="precision of the decisions (default: the config's sim.decision_precision)",
    )
    ap.add_argument("--random-head", type=float, default=0.1, help="sd of the ValueNet head's last layer")
    ap.add_argument("--compare", action="store_true", help="also time every value at every step, and per-step encoding")
    ap.add_argument("--agreement", action="store_true", help="single vs double precision decisions")
    ap.add_argument("--dt-check", action="store_true", help="compare statistics at dt and dt/2")
    ap.add_argument("--seed-base", type=int, default=1000, help="dt check: replication r has seed seed-base + r")
    ap.add_argument("--value", choices=("crowding", "net", "trained"), default="crowding", help="V of the dt check")
    ap.add_argument(
        "--checkpoint", default=None, help="last.ckpt of a training run: its network and config (replace --conf)"
    )
    ap.add_argument("--reps", type=int, default=8, help="replications per dt in the dt check")
    ap.add_argument("--burn-in", type=float, default=30.0, help="burn-in years per replication in the dt check")
    args = ap.parse_args()
    args.device = torch.device(args.device)
    if args.device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no GPU here")
    if args.device.type == "cuda" and (args.agreement or args.dt_check):
        raise SystemExit("--device applies to the throughput runs; --agreement and --dt-check run on the CPU")
    torch.set_num_threads(args.threads)
    cfg = load_config([f"conf={args.conf}", *args.overrides])
    # a trained network brings its run's config: economy, network size, sim.dt and sim.n_firms
    args.trained = None
    if args.checkpoint:
        cfg, args.trained = trained_net(args.checkpoint)
    args.dt = args.dt or cfg.sim.dt
    args.precision = args.precision or cfg.sim.decision_precision
    if args.agreement:
        args.firms = args.firms or [10000]
        agreement(cfg, args)
    elif args.dt_check:
        args.firms = args.firms or [cfg.sim.n_firms]
        dt_check(cfg, args)
    else:
        args.firms = args.firms or [1000, 10000, 100000]
        throughput(cfg, args)


if __name__ == "__main__":
    main()
