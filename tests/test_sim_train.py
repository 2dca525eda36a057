"""The simulator's callback wired into ``lotj.train.run.train`` (the joint loop of MODEL.md section 6)."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from lotj.config import load_config
from lotj.sim.simulator import Simulator
from lotj.train.run import build_datamodule, train
from lotj.train.sim_callback import SimulatorCallback

TINY = [
    "conf=smoke",
    "solver.stages=[v]",
    "sim.panel_years=2",  # after training, the panel simulates one more year
    "sim.n_firms=150",
    "sim.burn_in_years=2",
    "solver.steps_per_epoch=4",
    "solver.batch_size=32",
    "solver.n_omega=256",
    "solver.n_heldout=64",
    "solver.m_eval=16",
    "logging.progress_bar=false",
    "accuracy.enabled=false",  # on in test_train_runs_the_joint_loop, at a small cost
]
#: a short W stage on few states
TINY_W = [
    "wsolver.max_epochs=2",
    "wsolver.steps_per_epoch=4",
    "wsolver.batch_size=16",
    "wsolver.n_states=64",
    "wsolver.n_heldout=32",
    "wsolver.refresh_years=0.2",
    "wsolver.burn_in_years=0.5",
]
#: a cheap error estimate of V (docs/accuracy.md): few states and chains, short chains
CHEAP_ACCURACY = [
    "accuracy.enabled=true",
    "accuracy.n_states=16",
    "accuracy.m_e=4",
    "accuracy.cross_iterations=1",
    "accuracy.cross_reps=1",
    "accuracy.tail_weight=0.2",
]


def on(device) -> list[str]:
    """The trainer's accelerator for a test device: V and the simulator both on it (on the GPU with
    deterministic algorithms, so that a resumed run can equal the uninterrupted one bit for bit)."""
    return ["trainer.accelerator=gpu", "trainer.deterministic=warn"] if torch.device(device).type == "cuda" else []


def joint_run(args: list[str], device="cpu") -> tuple[dict, SimulatorCallback]:
    cfg = load_config(TINY + on(device) + args)
    dm = build_datamodule(cfg)
    cb = SimulatorCallback(Simulator.from_config(cfg, device=device), dm, cfg)
    return train(cfg, callbacks=[cb], datamodule=dm), cb


def test_train_runs_the_joint_loop(tmp_path, device):
    summary, cb = joint_run(["solver.max_epochs=3", f"out_dir={tmp_path}", *CHEAP_ACCURACY], device)
    assert summary["status"] == "ok"
    assert summary["device"].startswith(device.type)
    assert cb.tracker.refreshes == 3
    assert cb.simulator.clock == pytest.approx(2.0 + 3 * 1.0 + 1.0)  # burn-in, 3 epochs, the panel
    # the DataModule trains on the simulated economy, not on the initial one
    # (the initial economy, the burn-in, then one refresh per epoch; the panel comes after training)
    assert cb.datamodule.refreshes == 1 + 1 + 3
    assert cb.datamodule.snapshot is not None and cb.datamodule.snapshot.n_employed() > 0
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [float(r["sim/e"]) for r in rows if r.get("sim/e")]
    assert len(logged) == 3 and all(0.0 < e < 1.0 for e in logged)
    # twelve steps of training lower the held-out residual: measured, the best epoch reached 0.58-0.69 of
    # the untrained network's (seeds 0, 1); a loop that did not train would stay at 1
    assert summary["best_residual"] < 0.85 * summary["initial_residual"], summary
    sim = cb.summary()
    assert sim["sim_status"] in ("converged", "not converged")
    assert sim["sim_last_residual"] == summary["residual"]  # the tracker read the last epoch's residual
    # the meeting shares follow from e (MODEL.md section 3): s^N = (1 − e) ψ^N / (e ψ^E + (1 − e) ψ^N)
    p, e = load_config(TINY).economy, sim["sim_e"]
    assert sim["sim_s_n"] == pytest.approx((1 - e) * p.psi_n / (e * p.psi_e + (1 - e) * p.psi_n), rel=1e-9)
    assert sim["sim_s_n"] + sim["sim_s_e"] == pytest.approx(1.0, rel=1e-12)
    assert 1.0 <= sim["sim_firm_size_mean"] <= p.n_max and math.isfinite(sim["sim_en_rate"])
    # the a posteriori error estimate of V (docs/accuracy.md): a network trained for 12 steps is far from the
    # solution of its V equation, so the certified rule cannot hold, whatever the residual says
    assert summary["v_error_rms"] > 10 * summary["tol"] and summary["v_error_mean_se"] > 0
    assert summary["v_error_upper"] >= summary["v_error_mean"]
    assert summary["convergence"] == "not converged"


def test_resumed_joint_loop_ends_like_the_uninterrupted_one(tmp_path, device):
    """With a market pooled over two cross-sections: the one restored from the checkpoint (on the CPU)
    is pooled with the next one from the simulator (on its device)."""
    window = "solver.market_window=2"
    full, full_cb = joint_run(["solver.max_epochs=4", window, f"out_dir={tmp_path / 'full'}"], device)
    joint_run(["solver.max_epochs=2", window, f"out_dir={tmp_path / 'part'}"], device)
    last = tmp_path / "part" / "checkpoints" / "last.ckpt"
    resumed, res_cb = joint_run(
        ["solver.max_epochs=4", window, f"out_dir={tmp_path / 'part'}", f"resume={last}"], device
    )
    assert res_cb.summary() == full_cb.summary()
    keys = (
        *("loss", "residual", "residual_mc", "best_residual", "residual_final", "l2", "l2_final"),
        *("status", "epochs", "time_to_tol_s"),
    )
    for k in keys:
        assert resumed[k] == full[k], k


def test_resuming_a_checkpoint_that_does_not_fit_is_a_configuration_error(tmp_path, capsys):
    """A checkpoint whose simulator ran on a GPU cannot continue on the CPU (nor one with another
    sim.dt): the command line says why and exits with status 2, with no traceback."""
    from lotj.train.__main__ import main

    args = TINY + ["solver.max_epochs=1", "logging.logger=none"]
    assert main(args + [f"out_dir={tmp_path / 'a'}"]) == 0
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    (key,) = [k for k in ckpt["callbacks"] if "SimulatorCallback" in k]
    ckpt["callbacks"][key]["simulator"]["gen_device"] = "cuda"
    moved = tmp_path / "gpu.ckpt"
    torch.save(ckpt, moved)
    capsys.readouterr()
    assert main(args + ["solver.max_epochs=2", f"out_dir={tmp_path / 'b'}", f"resume={moved}"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "ran on cuda and this one is on cpu" in err
    assert main(args + ["solver.max_epochs=2", "sim.dt=0.02", f"out_dir={tmp_path / 'c'}", f"resume={last}"]) == 2
    assert "sim.dt = 0.02 differs from the checkpoint" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="the smoke run does not reach solver.tol under the residual-threshold convergence rule; the rule "
    "is being replaced by an accuracy-based one, and this test with it",
)
def test_the_smoke_joint_loop_converges(tmp_path):
    cfg = load_config(["conf=smoke", "solver.stages=[v]", f"out_dir={tmp_path}", "logging.progress_bar=false"])
    dm = build_datamodule(cfg)
    cb = SimulatorCallback(Simulator.from_config(cfg), dm, cfg)
    summary = train(cfg, callbacks=[cb], datamodule=dm)
    assert summary["status"] == "ok"
    assert cb.status == "converged", cb.tracker.history[-3:]
    assert summary["residual"] < cfg.solver.tol
    # not one lucky held-out sample: four fresh sets on the final market agree
    assert summary["residual_final"] < cfg.solver.tol, summary["residual_final"]
    assert cb.summary()["sim_cap_refused_share"] < 0.05


def test_train_adds_the_simulator_writes_the_panel_and_runs_the_w_stage(tmp_path, device):
    from lotj.sim.panel import read_panel

    cfg = load_config(
        TINY
        + on(device)
        + [
            "solver.stages=[v,w]",
            "solver.max_epochs=2",
            "sim.panel_years=2",
            *TINY_W,
            f"out_dir={tmp_path}",
        ]
    )
    summary = train(cfg)
    assert summary["status"] == "ok" and summary["epochs"] == 2
    # the simulator ran jointly with V (two refreshes), then the W stage continued it
    assert summary["sim_refreshes"] == 2 and summary["sim_status"] in ("converged", "not converged")
    assert isinstance(summary["time_simulation_s"], float)  # reported (its value is the machine's, not tested)
    # burn-in, two epochs, then a panel of two annual dates (the first one is the current date)
    assert summary["sim_clock_years"] == pytest.approx(2.0 + 2 * 1.0 + 1.0)
    for key in ("w_residual", "w_epochs", "wage_mean", "markdown_mean", "total_time_s"):
        assert key in summary, key
    panel = read_panel(tmp_path / "panel.parquet")
    assert {"wage", "W", "J", "markdown"} <= set(panel.columns)
    assert panel.loc[panel["employed"], "wage"].notna().all()
    # the summary's wages are those of the written panel's employed worker-years
    wages = panel.loc[panel["employed"], "wage"].astype(float)
    assert summary["wage_mean"] == pytest.approx(float(wages.mean()), rel=1e-12)
    assert summary["wage_p50"] == pytest.approx(float(wages.median()), rel=1e-12)
    assert (tmp_path / "w_net.pt").is_file() and (tmp_path / "w" / "metrics.csv").is_file()
    # the measurement of the panel (docs/measurement.md): moments.json's keys in the summary, from the written panel
    from lotj.measure import MOMENT_KEYS, measure

    assert list(summary["moments"]) == list(MOMENT_KEYS)
    assert json.loads((tmp_path / "moments.json").read_text()) == summary["moments"]
    assert summary["moments"] == measure(panel, cfg.economy.theta_plus, cfg.economy.theta_minus).moments
    assert summary["moments"]["regression_n"] is not None and (tmp_path / "targets.csv").is_file()
    causes = set(panel.loc[panel["employed"], "last_reset"])
    assert causes <= {"initial", "hire", "poached", "counter_offer", "meeting_cut", "reneg_raise", "reneg_cut"}
    assert panel["last_reset"].isna().equals(~panel["employed"]) and panel["tenure"].isna().equals(~panel["employed"])


def test_a_caller_s_simulator_callback_is_the_only_one(tmp_path):
    summary, cb = joint_run(["solver.max_epochs=1", f"out_dir={tmp_path}"])
    assert cb.tracker.refreshes == 1  # one callback advanced the economy, not two
    assert summary["sim_refreshes"] == 1 and (tmp_path / "panel.parquet").is_file()
    assert cb.simulator.clock == pytest.approx(2.0 + 1.0 + 1.0)  # burn-in, one epoch, the panel
