"""Time of one V training step of a preset on each device, in one run.

A step is what the Trainer does per batch: the batch drawn by the DataModule (on the CPU, from the
initial economy of the preset), its transfer to the device, ``VModule.training_step`` (the full
residual with pooled neighbours and its weighted loss), backward, the finiteness check of the
gradients, clipping and the Adam update. The batch is timed apart from the rest. Prints figures;
not a test.

    python benchmarks/train_step.py --conf baseline --devices cpu cuda --steps 20 --cpu-steps 3
    python benchmarks/train_step.py --conf smoke --devices cpu
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch

from lotj.config import load_config
from lotj.train.run import build_datamodule, build_module


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(module, batches, device: torch.device, steps: int, warmup: int, cfg) -> list[float]:
    """Seconds of each of ``steps`` training steps after ``warmup`` untimed ones (batches reused in turn)."""
    vm = copy.deepcopy(module).to(device)
    opt = torch.optim.Adam(vm.parameters(), lr=cfg.solver.lr)
    out = []
    for i in range(warmup + steps):
        batch = batches[i % len(batches)]
        sync(device)
        t0 = time.perf_counter()
        b = {k: v.to(device) for k, v in batch.items()}
        opt.zero_grad(set_to_none=True)
        loss = vm.training_step(b, i)
        loss.backward()
        vm.on_before_optimizer_step(opt)
        if cfg.solver.grad_clip:
            torch.nn.utils.clip_grad_norm_(vm.parameters(), cfg.solver.grad_clip)
        opt.step()
        sync(device)
        if i >= warmup:
            out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conf", default="smoke", help="preset")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    ap.add_argument("--devices", nargs="+", default=["cpu"], help="cpu and/or cuda")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per device")
    ap.add_argument("--cpu-steps", type=int, default=None, help="timed steps on the CPU (default: --steps)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    devices = [torch.device(d) for d in args.devices]
    if any(d.type == "cuda" for d in devices) and not torch.cuda.is_available():
        raise SystemExit("--devices cuda: torch sees no GPU here")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*self.log.*")  # training_step logs; no Trainer here
    cfg = load_config(
        [f"conf={args.conf}", "sim.enabled=false", "solver.stages=[v]", "logging.logger=none", *args.overrides]
    )
    torch.manual_seed(cfg.seed)
    dm = build_datamodule(cfg)
    dm.setup()
    loader = iter(dm.train_dataloader())
    n_batches = min(cfg.solver.steps_per_epoch, 8)
    t0 = time.perf_counter()
    batches = [next(loader)]  # the first batch of a market also sorts its workers (once per refresh)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    batches += [next(loader) for _ in range(n_batches - 1)]
    batch_s = (time.perf_counter() - t0) / max(1, n_batches - 1)
    module = build_module(cfg, dm)
    s = cfg.solver
    n_params = sum(p.numel() for p in module.parameters())
    print(
        f"conf={args.conf}: n_max {cfg.economy.n_max}, batch {s.batch_size} states, m_n {s.m_n}, m_e {s.m_e}, "
        f"{'unbiased (2 draw sets), ' if s.unbiased else ''}network {n_params} parameters, "
        f"{cfg.trainer.precision}, torch {torch.__version__}, CPU threads {torch.get_num_threads()}"
    )
    print(f"batch drawn on the CPU: {1e3 * batch_s:.1f} ms (the first of a market sorts it: {1e3 * first_s:.1f} ms)")
    print(f"{'device':>28} {'steps':>6} {'median ms':>10} {'min ms':>8} {'states/s':>10}")
    for dev in devices:
        steps = args.cpu_steps if dev.type == "cpu" and args.cpu_steps is not None else args.steps
        times = time_steps(module, batches, dev, steps, args.warmup, cfg)
        med = statistics.median(times)
        name = f"cuda ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else "cpu"
        print(f"{name:>28} {steps:>6} {1e3 * med:>10.1f} {1e3 * min(times):>8.1f} {s.batch_size / med:>10.0f}")


if __name__ == "__main__":
    main()
