"""V's error against wall time, for each way of training V, on one economy in one run (docs/accuracy.md).

    python benchmarks/v_time_to_accuracy.py conf=smoke [--options residual chain] [--every 5]
        [--out runs/v_time/smoke] [key=value ...]

Each option trains the preset's V stage (``solver.stages=[v]``, the simulator's joint loop, one after the
other in this process, so they share the machine) and keeps a copy of the value network, and of the market
it trained on, at the end of every ``--every`` epochs and of the last one, with the wall time since the start
of training. The copies are taken outside the clock. After training, each copy's error is measured:

- on an economy with an exact solution (``lotj.validate``'s ``exact_small`` and ``exact_learning`` kinds), the
  true error: mean and max of ``|V_net − V|/V`` over the exact states (every state of a discrete economy, the
  held-out learning states otherwise), as ``python -m lotj.validate`` reports it;
- otherwise the a posteriori estimate of :mod:`lotj.accuracy` on the copy's own market (``v_error_mean``,
  ``v_error_rms``, ``v_error_upper``), the figures a run stopped at that epoch would report; ``--estimate``
  adds it on an exact economy too.

On an exact economy the last copy of each option also gets ``lotj.validate``'s estimator check: the chain
estimate of its error on the exact states against the true error relative to V_net (``est_mean``,
``est_mean_se``, ``est_true_mean``, ``agrees``: within twice the standard error or 20%).

The options:

- ``residual``: the scale-free squared HJB residual alone (``solver.chain_states=0``);
- ``chain``: the residual and chain targets (``lotj.train.chain_targets``): the preset's sets when it has
  them, else ``solver.chain_states=512`` from half-way through training every sixth of it;
- ``nstep``: the residual and n-step chain targets, ``solver.chain_horizon=0.5`` (chains stopped at weight
  one half, the frozen network beyond): sets of 512 states from a third of the way through training, every
  fifteenth of it, each about a sixth of a whole-chain set's cost;
- ``correction``: the residual alone for the preset's epochs, then the correction stage (``solver.correction_start``,
  docs/solver.md) for half as many again: the network frozen and a second one, scaled by
  ``solver.correction_scale``, trained on the residual of the sum;
- ``longer``: the residual alone for as many epochs as ``correction`` in all (its schedule stretched over them),
  the baseline for what the second network adds.

Overrides after the options apply to every option (``solver.max_epochs=20``). Prints one line per copy and
writes ``curve.csv`` (option, epoch, wall_s, figures) and ``curve.png`` (error against wall time, log scale)
into ``--out``; ``--keep`` keeps the rows of options not run this time (the curves of one figure should still
come from one machine under the same load).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd

from lotj.config import Config, load_config

OPTIONS = ("residual", "chain", "nstep", "correction", "longer")


def option_config(cfg: Config, option: str, out: Path) -> Config:
    """The preset's V stage with ``option``'s way of training (module docstring), writing into ``out/option``."""
    s = cfg.solver
    if option == "residual":
        solver = replace(s, chain_states=0)
    elif option == "chain":
        if s.chain_states > 0:
            solver = s
        else:
            solver = replace(s, chain_states=512, chain_start=s.max_epochs // 2, chain_every=max(1, s.max_epochs // 6))
    elif option == "nstep":
        n = s.max_epochs
        start, every = max(1, n // 3), max(1, n // 15)
        solver = replace(s, chain_states=512, chain_horizon=0.5, chain_start=start, chain_every=every)
    elif option == "correction":
        solver = replace(s, chain_states=0, correction_start=s.max_epochs, max_epochs=s.max_epochs + s.max_epochs // 2)
    elif option == "longer":
        solver = replace(s, chain_states=0, max_epochs=s.max_epochs + s.max_epochs // 2)
    else:
        raise SystemExit(f"unknown option {option!r}: choose from {', '.join(OPTIONS)}")
    return replace(
        cfg,
        solver=replace(solver, stages=["v"]),
        accuracy=replace(cfg.accuracy, enabled=False),
        out_dir=str(out / option),
    )


class Snapshots(pl.Callback):
    """A copy of V's network and of the market at the end of every ``every`` epochs and of the last, with the
    training wall time; the copying is kept off the clock."""

    def __init__(self, every: int, max_epochs: int):
        self.every, self.max_epochs = every, max_epochs
        self.rows: list[dict[str, Any]] = []
        self.start = 0.0
        self.off_clock = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        done = trainer.current_epoch + 1
        if done % self.every and done != self.max_epochs:
            return
        t = time.perf_counter()
        net = pl_module.value_function()
        self.rows.append(
            {
                "epoch": done,
                "wall_s": t - self.start - self.off_clock,
                "net": copy.deepcopy(net).cpu(),
                "market": copy.deepcopy(trainer.datamodule.source),
            }
        )
        self.off_clock += time.perf_counter() - t


def train_option(cfg: Config, every: int) -> tuple[list[dict[str, Any]], dict]:
    """Train V with ``cfg`` and return the snapshots and the run's summary."""
    from lotj.train.run import train

    snaps = Snapshots(every, cfg.solver.max_epochs)
    # the snapshots run before the chain-target sets of the same epoch (the caller's callbacks come first),
    # so a set's time is on the clock of the next copy, the first to be fitted to it
    summary = train(cfg, callbacks=[snaps], enable_checkpointing=False)
    return snaps.rows, summary


def exact_side(cfg: Config) -> Any:
    """The exact solution of a discrete or closed learning economy, else None."""
    from lotj.validate.values import economy_kind, exact_solution

    try:
        economy_kind(cfg.economy)
    except ValueError:
        return None
    return exact_solution(cfg)


def measure(cfg: Config, row: dict[str, Any], exact: Any, estimate: bool, check: bool = False) -> dict[str, float]:
    """The copy's true error (when ``exact``), its estimated error (when ``estimate``) and the estimator check
    against the truth (when ``check`` and ``exact``)."""
    out: dict[str, float] = {}
    net = row["net"]
    if exact is not None:
        from lotj.validate.values import compare_values

        cmp = compare_values(net, exact, per_state_limit=0)
        out["true_mean"] = cmp["mean_rel_error"]
        out["true_max"] = cmp["max_rel_error"]
        if check:
            from lotj.accuracy.validation import estimator_check

            chk = estimator_check(net, cfg.economy, exact, seed=cfg.seed)
            out["est_mean"] = chk["estimated"]["v_error_mean"]
            out["est_mean_se"] = chk["estimated"]["v_error_mean_se"]
            out["est_true_mean"] = chk["true_mean"]  # relative to V_net, as the estimate is
            out["agrees"] = float(chk["agrees"])
    if estimate:
        from lotj.train.accuracy import v_error_summary

        t = time.perf_counter()
        est = v_error_summary(cfg, net, row["market"], settled=True)
        for k in ("v_error_mean", "v_error_rms", "v_error_upper", "v_error_signed", "v_error_mean_se"):
            v = est.get(k)
            out[k] = math.nan if v is None else float(v)
        out["estimate_s"] = time.perf_counter() - t
    return out


def plot(df: pd.DataFrame, column: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for option, g in df.groupby("option", sort=False):
        ax.plot(g["wall_s"] / 60, g[column], marker="o", label=option)
    ax.set_yscale("log")
    ax.set_xlabel("training wall time (minutes)")
    ax.set_ylabel(column)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--options", nargs="+", default=list(OPTIONS), choices=OPTIONS)
    ap.add_argument("--every", type=int, default=0, help="epochs between copies (default: a twelfth of training)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default runs/v_time/<conf>)")
    ap.add_argument("--estimate", action="store_true", help="also estimate the error on an exact economy")
    ap.add_argument("--keep", action="store_true", help="keep the other options' rows of an existing curve.csv")
    args, overrides = ap.parse_known_args(argv)
    if not any(o.startswith("conf=") for o in overrides):
        overrides.append("conf=smoke")
    os.environ.setdefault("WANDB_MODE", "disabled")
    cfg = load_config(overrides + ["logging.progress_bar=false"])
    out = args.out or Path("runs") / "v_time" / (cfg.conf or "config")
    out.mkdir(parents=True, exist_ok=True)
    every = args.every or max(1, cfg.solver.max_epochs // 12)
    exact = exact_side(cfg)
    estimate = exact is None or args.estimate
    rows = []
    if args.keep and (out / "curve.csv").is_file():
        old = pd.read_csv(out / "curve.csv")
        rows = old[~old["option"].isin(args.options)].to_dict("records")
    for option in args.options:
        ocfg = option_config(cfg, option, out)
        print(f"{option}: training {ocfg.solver.max_epochs} epochs (copies every {every})", flush=True)
        snaps, summary = train_option(ocfg, every)
        if summary.get("status") != "ok":
            print(f"{option}: {summary.get('status')}: {summary.get('message')}", flush=True)
        for row in snaps:
            figures = measure(ocfg, row, exact, estimate, check=row is snaps[-1])
            rows.append({"option": option, "epoch": row["epoch"], "wall_s": row["wall_s"], **figures})
            shown = "  ".join(f"{k} {v:.3e}" for k, v in figures.items() if k != "estimate_s")
            print(f"{option:9s} epoch {row['epoch']:4d}  {row['wall_s']:8.1f} s  {shown}", flush=True)
        pd.DataFrame(rows).to_csv(out / "curve.csv", index=False)
    df = pd.DataFrame(rows)
    column = "true_mean" if exact is not None else "v_error_rms"
    plot(df, column, out / "curve.png", f"{cfg.conf}: V's error against training time")
    print(f"wrote {out / 'curve.csv'} and {out / 'curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
