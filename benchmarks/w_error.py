"""The estimated global error of W and of the wages (docs/accuracy.md) of a finished run, and its cost.

    python benchmarks/w_error.py RUN_DIR [key=value ...]     # e.g. runs/smoke accuracy.wage_events=128

Reads ``RUN_DIR/config.yaml``, ``RUN_DIR/checkpoints/last.ckpt`` (V and the market it trained on) and
``RUN_DIR/w_net.pt`` (W). The run's simulated economy is not saved, so the economy is restarted from the
market's snapshot, its wages started at the middle of each bargaining set and simulated for
``wsolver.burn_in_years`` under V with W setting wages (as the W stage does before its panel); then
:func:`lotj.train.waccuracy.w_error_summary` runs on it with the W stage's market (the snapshot, Monte Carlo
draws) and the run's median wage (``wage_p50`` of ``summary.json``). Prints the ``w_error_*`` and
``wage_error_*`` figures, ``w_convergence`` and the seconds. Overrides apply to the run's config.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from lotj.sim.market import Market
from lotj.sim.simulator import Simulator
from lotj.sim.wage_tracking import track_wages
from lotj.train.waccuracy import w_error_summary
from lotj.validate.wages import load_worker_net

sys.path.insert(0, str(Path(__file__).resolve().parent))
from v_error import load_run  # noqa: E402


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    run = Path(argv[0])
    cfg, module, dm, _ = load_run(run, argv[1:])
    torch.set_num_threads(max(1, int(cfg.trainer.num_threads)))
    vf = module.value_function()
    wf = load_worker_net(cfg, vf, run / "w_net.pt")
    snapshot = dm.source.snapshot
    market = Market(cfg.economy, seed=cfg.seed, heldout_fraction=0.2, split_seed=cfg.seed, device=None)
    market.refresh(snapshot, dm.source.rates)
    sim = Simulator(cfg.economy, snapshot.n_firms, cfg.sim.dt, seed=cfg.seed + 3, snapshot=snapshot)
    tracker = track_wages(sim, wf, vf)
    t0 = time.perf_counter()
    sim.advance(vf, cfg.wsolver.burn_in_years)
    sim_s = time.perf_counter() - t0
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    t0 = time.perf_counter()
    out = w_error_summary(cfg, wf, vf, sim, tracker, market, summary.get("wage_p50"))
    out["wall_s"] = time.perf_counter() - t0
    out["burn_in_s"] = sim_s
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
