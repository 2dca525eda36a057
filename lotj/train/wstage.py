"""The W stage of a solve (MODEL.md section 6: "then W given χ, then back out wages along the simulated path").

:func:`run_w_stage` takes the converged, frozen V and the simulated economy of the V stage and

1. trains :class:`lotj.nets.WorkerValueNet` on the W residual (:class:`lotj.train.wmodule.WModule`,
   :class:`lotj.train.wdatamodule.WDataModule`), starting from wages in the documented initial range;
2. at every epoch end (:class:`WageRefreshCallback`, the W twin of the V stage's simulator callback)
   simulates ``wsolver.refresh_years`` with wages set by the current W and refreshes the training states
   with the simulated wages; training stops at ``wsolver.max_epochs`` or once the held-out scale-free
   residual is below ``wsolver.residual_tol``;
3. simulates ``wsolver.burn_in_years`` with the trained W (so that wages reflect their history), then the
   annual panel (``sim.panel_years``) with the wage columns ``wage, W, J, markdown``;
4. with ``accuracy.enabled``, estimates the global error of W and of the wages it sets
   (:func:`lotj.train.waccuracy.w_error_summary`: ``w_error_*``, ``wage_error_*``, ``w_convergence``);
5. returns the summary keys of the stage (:func:`wage_summary`).

The refresh callback's state (the simulator's path and the wage of every worker) is saved in a Lightning
checkpoint of the stage, so a resumed W stage keeps the simulated wages.

Lightning plumbing and bookkeeping only: the economics is in :mod:`lotj.economy.wages`,
:mod:`lotj.sim.wage_inversion` and :mod:`lotj.sim.wage_tracking`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping

from lotj.config import Config
from lotj.economy.params import MeetingRates
from lotj.economy.value import ValueFunction
from lotj.nets import WorkerValueNet
from lotj.sim.distributions import EconomySnapshot
from lotj.sim.panel import write_panel
from lotj.sim.simulator import Simulator, decision_dtype
from lotj.sim.wage_tracking import RESET_CAUSES, WageTracker, firm_wages, track_wages
from lotj.train.logging import quiet_foreign_notices
from lotj.train.placement import simulation_device, to_simulator
from lotj.train.warm_start import load_w_weights
from lotj.train.wdatamodule import WDataModule
from lotj.train.wmodule import WModule


def build_worker_net(cfg: Config) -> WorkerValueNet:
    """The W network of the config's ``wnet`` group, in the run's precision. With ``wnet.surplus_input`` it
    needs the frozen V (``WorkerValueNet.attach_value``; :class:`lotj.train.wmodule.WModule` attaches its V)."""
    n = cfg.wnet
    net = WorkerValueNet(
        cfg.economy,
        n.embed_dim,
        n.phi_width,
        n.phi_depth,
        n.head_width,
        n.head_depth,
        n.activation,
        n.kinks,
        surplus_input=n.surplus_input,
        set_kinks=n.set_kinks,
    )
    return net.to(torch.float64 if cfg.trainer.precision == "64-true" else torch.float32)


def simulated_rates(sim: Simulator) -> MeetingRates:
    """ω, s^N, s^E of the simulator's last statistics window (as the V stage used), else of its snapshot."""
    stats = sim.last_statistics
    if stats is not None and all(math.isfinite(x) for x in (stats.omega, stats.s_n, stats.s_e)):
        return MeetingRates(stats.omega, stats.s_n, stats.s_e)
    return sim.snapshot().meeting_rates(sim.params)


class WageRefreshCallback(Callback):
    """At each train epoch end: simulate ``years`` with wages set by the current W, then refresh the
    DataModule's states with the simulated wages (module docstring)."""

    def __init__(
        self, simulator: Simulator, tracker: WageTracker, datamodule: WDataModule, vf: ValueFunction, years: float
    ):
        super().__init__()
        self.simulator, self.tracker, self.datamodule, self.vf, self.years = simulator, tracker, datamodule, vf, years
        self.simulation_seconds = 0.0

    def state_dict(self) -> dict[str, Any]:
        """The simulator's path and its wages (saved in a Lightning checkpoint of the W stage)."""
        return {
            "simulator": self.simulator.state_dict(),
            "wages": self.tracker.state_dict(),
            "simulation_seconds": self.simulation_seconds,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the saved path with its wages (a resumed W stage keeps the simulated wages)."""
        self.simulator.load_state_dict(state_dict["simulator"])
        self.tracker.load_state_dict(state_dict["wages"], self.simulator.pop)
        self.simulation_seconds = float(state_dict["simulation_seconds"])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.years <= 0:
            return
        start = time.perf_counter()
        was_training = pl_module.training
        pl_module.eval()
        self.simulator.advance(self.vf, self.years)
        pl_module.train(was_training)
        _, wages = firm_wages(self.simulator.pop, self.tracker)
        self.datamodule.refresh(self.simulator.snapshot(), wages, simulated_rates(self.simulator))
        self.simulation_seconds += time.perf_counter() - start
        counts = self.tracker.counts
        inv = max(counts["inversions"], 1)
        pl_module.log("w/non_monotone_share", counts["non_monotone"] / inv)
        pl_module.log("w/not_converged_share", counts["not_converged"] / inv)


def wage_summary(panel: pd.DataFrame, tracker: WageTracker) -> dict[str, float | None]:
    """Summary keys of the wages (MODEL.md section 5): over the employed worker-years of ``panel``, the wage
    mean and quartiles and the mean markdown ``W/J`` (finite values); over the resets the tracker counted,
    the share of each cause (``reset_share_<cause>``), and the shares of wage inversions that did not converge
    or met a W not monotone in w."""

    def val(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    emp = panel["employed"].to_numpy(dtype=bool) if len(panel) else np.zeros(0, dtype=bool)
    wages = panel.loc[emp, "wage"].astype(float).to_numpy() if len(panel) else np.zeros(0)
    wages = wages[np.isfinite(wages)]
    md = panel.loc[emp, "markdown"].astype(float).to_numpy() if len(panel) else np.zeros(0)
    md = md[np.isfinite(md)]
    out: dict[str, float | None] = {
        "wage_mean": val(wages.mean()) if wages.size else None,
        "wage_p25": val(np.percentile(wages, 25)) if wages.size else None,
        "wage_p50": val(np.percentile(wages, 50)) if wages.size else None,
        "wage_p75": val(np.percentile(wages, 75)) if wages.size else None,
        "markdown_mean": val(md.mean()) if md.size else None,
    }
    for name, share in tracker.reset_shares().items():
        out[f"reset_share_{name}"] = share
    c = tracker.counts
    inv = max(c["inversions"], 1)
    out["wage_resets"] = float(sum(c[name] for name in RESET_CAUSES.values()))
    out["wage_inversion_not_converged_share"] = c["not_converged"] / inv
    out["wage_non_monotone_share"] = c["non_monotone"] / inv
    return out


def run_w_stage(
    cfg: Config,
    v_function: ValueFunction,
    snapshot: EconomySnapshot | None = None,
    *,
    simulator: Simulator | None = None,
    out_dir: str | Path | None = None,
    callbacks: list[Callback] | None = None,
    logger: Any = False,
    plugins: Any = None,
    enable_checkpointing: bool = False,
) -> dict[str, Any]:
    """Solve W with V frozen and simulate wages (module docstring). Returns the stage's summary keys:
    ``w_residual`` (held-out scale-free W residual), ``w_epochs``, ``w_seconds``, ``w_simulation_seconds``
    and those of :func:`wage_summary`.

    ``simulator``: the V stage's simulator, continued with wages (its path goes on); without it a new one
    starts from ``snapshot``. ``out_dir``: where ``panel.parquet`` (with wages) and ``w_net.pt`` are written.
    """
    p, ws = cfg.economy, cfg.wsolver
    start = time.perf_counter()
    if simulator is None:
        if snapshot is None:
            raise ValueError("run_w_stage needs a snapshot or a simulator")
        simulator = Simulator(
            p, snapshot.n_firms, cfg.sim.dt, seed=cfg.seed, snapshot=snapshot, device=simulation_device(cfg)
        )
        simulator.decision_dtype = decision_dtype(cfg.sim.decision_precision)
    if not hasattr(simulator, "wage_tracker"):
        raise RuntimeError("this Simulator does not call a WageTracker; see docs/wages.md, 'Wiring'")
    if isinstance(v_function, torch.nn.Module):
        v_function.eval()
    net = build_worker_net(cfg)
    if cfg.init_from:  # a warm start from another run's W (lotj.train.warm_start)
        load_w_weights(net, cfg.init_from)
    to_simulator(simulator.device, v_function, net)  # V, W and the population on one device
    if net.surplus_input:
        net.attach_value(v_function)
    # wsolver.settle_years: the market the stage's meeting terms are pinned on. V is frozen, so the economy is
    # stationary and each year is a draw of the same χ, χ^N, χ^E (docs/wages.md). Simulated before wages are
    # tracked: under the untrained W they would be set by a random network for years, and the training states
    # carry simulated wages
    settle_start = time.perf_counter()
    meetings = simulator.yearly_snapshots(v_function, ws.settle_years)
    settle_seconds = time.perf_counter() - settle_start
    tracker = track_wages(simulator, net, v_function)
    dm = WDataModule(
        p,
        v_function,
        simulator.snapshot(),
        ws,
        rates=simulated_rates(simulator),
        seed=cfg.seed,
        exact_sums=ws.exact_sums,
        meetings=meetings,
    )
    module = WModule.from_config(p, net, v_function, ws)
    refresh = WageRefreshCallback(simulator, tracker, dm, v_function, ws.refresh_years)
    stop = EarlyStopping(monitor="w/val_residual", mode="min", stopping_threshold=ws.residual_tol, patience=10**9)
    quiet_foreign_notices()
    trainer = L.Trainer(
        max_epochs=ws.max_epochs,
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        deterministic=cfg.trainer.deterministic,
        gradient_clip_val=ws.grad_clip if ws.grad_clip > 0 else None,
        logger=logger,
        callbacks=[refresh, stop, *(callbacks or [])],
        plugins=plugins,
        enable_checkpointing=enable_checkpointing,
        enable_progress_bar=cfg.logging.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, ws.steps_per_epoch),
        default_root_dir=str(out_dir) if out_dir is not None else None,
    )
    trainer.fit(module, datamodule=dm)
    trainer.validate(module, datamodule=dm, verbose=False)
    residual = float(trainer.callback_metrics["w/val_residual"])
    train_seconds = time.perf_counter() - start
    to_simulator(simulator.device, v_function, net)  # Lightning's teardown left both on the CPU
    chain: dict[str, float] = {}
    if ws.chain_rounds > 0:  # chain-target sets after the residual training (lotj.train.wchain)
        from lotj.train.wchain import refine_w

        chain = refine_w(cfg, net, v_function, dm.source)

    net.eval()
    tracker.reset_counts()
    sim_start = time.perf_counter()
    if ws.burn_in_years > 0:
        simulator.advance(v_function, ws.burn_in_years)
    tracker.reset_counts()
    panel = simulator.simulate_panel(v_function, cfg.sim.panel_years, cfg.sim.panel_from_year)
    sim_seconds = refresh.simulation_seconds + settle_seconds + time.perf_counter() - sim_start

    summary: dict[str, Any] = {
        "w_residual": residual,
        "w_epochs": int(trainer.current_epoch),
        "w_seconds": train_seconds,
        "w_simulation_seconds": sim_seconds,
        **chain,
    }
    summary.update(wage_summary(panel, tracker))
    if cfg.accuracy.enabled:  # the a posteriori error of W and the wages (docs/accuracy.md)
        from lotj.train.waccuracy import w_error_summary

        summary.update(w_error_summary(cfg, net, v_function, simulator, tracker, dm.source, summary.get("wage_p50")))
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_panel(panel, out / "panel.parquet")
        torch.save({k: v.cpu() for k, v in net.state_dict().items()}, out / "w_net.pt")
    return summary
