"""The simulator's callback wired into ``lotj.train.run.train`` (the joint loop of MODEL.md section 6)."""

from __future__ import annotations

import csv
import math

import pytest

from lotj.config import load_config
from lotj.sim.simulator import Simulator
from lotj.train.run import build_datamodule, train
from lotj.train.sim_callback import SimulatorCallback

TINY = [
    "conf=smoke",
    "sim.n_firms=150",
    "sim.burn_in_years=2",
    "solver.steps_per_epoch=4",
    "solver.batch_size=32",
    "solver.n_omega=256",
    "solver.n_heldout=64",
    "solver.m_eval=16",
    "logging.progress_bar=false",
]


def joint_run(args: list[str]) -> tuple[dict, SimulatorCallback]:
    cfg = load_config(TINY + args)
    dm = build_datamodule(cfg)
    cb = SimulatorCallback(Simulator.from_config(cfg), dm, cfg)
    return train(cfg, callbacks=[cb], datamodule=dm), cb


def test_train_runs_the_joint_loop(tmp_path):
    summary, cb = joint_run(["solver.max_epochs=3", f"out_dir={tmp_path}"])
    assert summary["status"] == "ok"
    assert cb.tracker.refreshes == 3
    assert cb.simulator.clock == pytest.approx(2.0 + 3 * 1.0)
    # the DataModule trains on the simulated economy, not on the initial one
    dm_snapshot = cb.datamodule.snapshot
    assert dm_snapshot.n_employed() == cb.simulator.snapshot().n_employed()
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [float(r["sim/e"]) for r in rows if r.get("sim/e")]
    assert len(logged) == 3 and all(0.0 < e < 1.0 for e in logged)
    sim = cb.summary()
    assert sim["sim_status"] in ("converged", "not converged")
    assert all(math.isfinite(sim[k]) for k in ("sim_e", "sim_omega", "sim_s_n", "sim_firm_size_mean", "sim_en_rate"))


@pytest.mark.xfail(
    strict=True,
    reason="OmegaDataModule draws its splits and Ω from one running generator that Lightning's extra "
    "dataloader calls on resume (reload_dataloaders_every_n_epochs=1) advance differently; the "
    "simulator's own state resumes exactly (test_sim_callback.py)",
)
def test_resumed_joint_loop_ends_like_the_uninterrupted_one(tmp_path):
    full, full_cb = joint_run(["solver.max_epochs=4", f"out_dir={tmp_path / 'full'}"])
    joint_run(["solver.max_epochs=2", f"out_dir={tmp_path / 'part'}"])
    last = tmp_path / "part" / "checkpoints" / "last.ckpt"
    resumed, res_cb = joint_run(["solver.max_epochs=4", f"out_dir={tmp_path / 'part'}", f"resume={last}"])
    assert res_cb.summary() == full_cb.summary()
    for k in ("loss", "residual", "residual_mc", "best_residual", "status"):
        assert resumed[k] == full[k], k


@pytest.mark.slow
def test_the_smoke_joint_loop_converges(tmp_path):
    cfg = load_config(["conf=smoke", f"out_dir={tmp_path}", "logging.progress_bar=false"])
    dm = build_datamodule(cfg)
    cb = SimulatorCallback(Simulator.from_config(cfg), dm, cfg)
    summary = train(cfg, callbacks=[cb], datamodule=dm)
    assert summary["status"] == "ok"
    assert cb.status == "converged", cb.tracker.history[-3:]
    assert summary["residual"] < cfg.solver.tol
    assert cb.summary()["sim_cap_refused_share"] < 0.05
