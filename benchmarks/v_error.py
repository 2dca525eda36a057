"""The estimated global error of V (docs/accuracy.md) of a finished run, from its checkpoint, and its cost.

    python benchmarks/v_error.py RUN_DIR [key=value ...]     # e.g. runs/smoke accuracy.n_states=256

Reads ``RUN_DIR/config.yaml`` and ``RUN_DIR/checkpoints/last.ckpt`` (the network and the market it trained
on), runs :func:`lotj.train.accuracy.v_error_summary` and prints the ``v_error_*`` figures, the certified
``convergence`` and the seconds the estimate took. Overrides apply to the run's config (``accuracy.*``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from lotj.config import Config, config_from_yaml
from lotj.sim.convergence import ConvergenceTracker
from lotj.train.accuracy import v_error_summary
from lotj.train.datamodule import OmegaDataModule
from lotj.train.vmodule import VModule


def load_run(run_dir: Path, overrides: list[str]) -> tuple[Config, VModule, OmegaDataModule, bool]:
    cfg = config_from_yaml(run_dir / "config.yaml")
    if overrides:
        merged = OmegaConf.merge(OmegaConf.structured(cfg), OmegaConf.from_dotlist(overrides))
        cfg = OmegaConf.to_object(merged)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    module = VModule(cfg).to(torch.float64 if cfg.trainer.precision == "64-true" else torch.float32)
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    dm = OmegaDataModule(cfg)
    dm.load_state_dict(ckpt["OmegaDataModule"])
    settled = True
    for key, state in ckpt.get("callbacks", {}).items():
        if "SimulatorCallback" in key:
            tracker = ConvergenceTracker(cfg.sim.tol, cfg.solver.tol, cfg.sim.patience, cfg.sim.drift_window)
            tracker.load_state_dict(state["tracker"])
            settled = tracker.settled
    return cfg, module, dm, settled


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cfg, module, dm, settled = load_run(Path(argv[0]), argv[1:])
    torch.set_num_threads(max(1, int(cfg.trainer.num_threads)))
    t0 = time.perf_counter()
    out = v_error_summary(cfg, module.value_function(), dm.source, settled)
    out["wall_s"] = time.perf_counter() - t0
    out["statistics_settled"] = settled
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
