"""The W stage alone, rerun on the frozen V of a finished run (docs/validation.md, "W and the wages").

Loads the run's config and V (``checkpoints/last.ckpt``), continues the V stage's simulator from the path the
checkpoint saved (as ``python -m lotj.train`` continues it into the W stage), runs
:func:`lotj.train.wstage.run_w_stage` with the run's ``wsolver`` settings and any overrides, and writes into
``out=DIR`` a run directory that ``python -m lotj.validate run=DIR`` reads: ``config.yaml`` (with the
overrides), ``checkpoints/last.ckpt`` (a link to the run's), ``w_net.pt``, ``panel.parquet`` and
``w_stage.json`` (the stage's summary keys and wall time). The stage's own error estimate
(``accuracy.enabled``) is skipped, and so is the validation's estimator check (``accuracy.enabled: false`` in
the written config): the comparison with the exact W is the measurement. So several W settings are compared on
the same V.

Usage: ``python benchmarks/w_stage_rerun.py run=DIR out=DIR [threads=1] [wsolver.key=value ...]``, then
``python -m lotj.validate run=DIR``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from _options import split_options
from omegaconf import OmegaConf

from lotj.config import Config, config_from_yaml, to_yaml
from lotj.sim.simulator import Simulator
from lotj.train.wstage import run_w_stage
from lotj.validate.report import run_networks


def _with_overrides(cfg: Config, overrides: list[str]) -> Config:
    node = OmegaConf.merge(OmegaConf.structured(cfg), OmegaConf.from_dotlist(overrides))
    return config_from_yaml(OmegaConf.to_yaml(node))


def main(argv: list[str]) -> None:
    opts, rest = split_options(argv, {"run": "", "out": "", "threads": "1"})
    if not opts["run"] or not opts["out"]:
        raise SystemExit("usage: python benchmarks/w_stage_rerun.py run=DIR out=DIR [wsolver.key=value ...]")
    torch.set_num_threads(int(opts["threads"]))
    run, out = Path(opts["run"]), Path(opts["out"])
    cfg, vf, _ = run_networks(run)
    cfg = _with_overrides(cfg, rest)
    cfg = replace(cfg, out_dir=str(out), accuracy=replace(cfg.accuracy, enabled=False))
    if isinstance(vf, torch.nn.Module):
        vf.requires_grad_(False)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    sim = Simulator.from_config(cfg)
    sim.load_state_dict(ckpt["callbacks"]["SimulatorCallback"]["simulator"])
    del ckpt
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)
    link = out / "checkpoints" / "last.ckpt"
    if not link.exists():
        link.symlink_to((run / "checkpoints" / "last.ckpt").resolve())
    (out / "config.yaml").write_text(to_yaml(cfg))
    start = time.perf_counter()
    summary = run_w_stage(cfg, vf, simulator=sim, out_dir=out)
    summary["w_stage_wall_seconds"] = time.perf_counter() - start
    (out / "w_stage.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    keys = (
        "w_residual",
        "w_epochs",
        "w_seconds",
        "w_simulation_seconds",
        "w_chain_target_seconds",
        "w_chain_fit_seconds",
    )
    print(", ".join(f"{k} {summary.get(k)}" for k in keys), f"wall {summary['w_stage_wall_seconds']:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
