"""Training V with Lightning (lotj.train): the run, its outputs, its refusals and its failure modes.

- a few epochs of ``conf=smoke`` lower the held-out scale-free residual at least tenfold;
- the run writes config.yaml, metrics.csv, checkpoints/last.ckpt and summary.json;
- bad input (a negative rate, an unknown key) stops before training with a clear message;
- a NaN stops the run, names the epoch, and keeps the last good checkpoint;
- ``OmegaDataModule.refresh`` replaces χ, χ^N, χ^E and the meeting rates;
- W&B runs offline without a key, and never touches the network.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lotj.config import load_config
from lotj.economy.firms import FirmBatch
from lotj.economy.value import ValueFunction
from lotj.errors import ConfigError
from lotj.sim.distributions import EconomySnapshot
from lotj.train.__main__ import main
from lotj.train.datamodule import unpack
from lotj.train.logging import wandb_mode
from lotj.train.run import build_datamodule, build_module, train

REPO = Path(__file__).resolve().parents[1]

# V alone on the initial economy: the joint loop and the W stage are tested in test_sim_train.py
V_ONLY = ["sim.enabled=false", "solver.stages=[v]"]

TINY = [
    *V_ONLY,
    "sim.n_firms=150",
    "solver.n_omega=256",
    "solver.n_heldout=64",
    "solver.batch_size=32",
    "solver.steps_per_epoch=3",
    "solver.m_n=4",
    "solver.m_e=4",
    "solver.m_eval=8",
    "logging.logger=none",
    "logging.progress_bar=false",
    "accuracy.enabled=false",  # the error estimate of V: tests/test_accuracy.py, test_sim_train.py
]


def tiny(tmp_path: Path, *extra: str):
    return load_config(["conf=smoke", *TINY, f"out_dir={tmp_path}", *extra])


# ------------------------------------------------------------------ the smoke run
class Capture(Callback):
    """Keeps the trained LightningModule."""

    module = None

    def on_train_end(self, trainer, pl_module):
        self.module = pl_module


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    cfg = load_config(
        [
            "conf=smoke",
            *V_ONLY,
            f"out_dir={out}",
            "solver.max_epochs=4",
            "logging.logger=none",
            "logging.progress_bar=false",
        ]
    )
    capture = Capture()
    summary = train(cfg, callbacks=[capture])
    return cfg, summary, capture.module


def test_smoke_training_lowers_heldout_residual_tenfold(smoke_run):
    _, summary, _ = smoke_run
    assert summary["status"] == "ok"
    assert summary["initial_residual"] > 0.5  # the separable guess is far from the solution
    assert summary["residual"] <= summary["initial_residual"] / 10, summary


def test_run_writes_its_outputs(smoke_run):
    cfg, summary, _ = smoke_run
    out = Path(cfg.out_dir)
    written = load_config(
        [
            "conf=smoke",
            *V_ONLY,
            f"out_dir={out}",
            "solver.max_epochs=4",
            "logging.logger=none",
            "logging.progress_bar=false",
        ]
    )
    from lotj.config import config_from_yaml

    assert config_from_yaml(out / "config.yaml") == written
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    for key in ("loss", "residual", "epochs", "wall_time_s", "device", "status", "checkpoint"):
        assert key in summary
    assert summary["epochs"] == 4 and summary["device"] == "cpu"
    # sim.enabled=false: no simulator, no panel
    assert not (out / "panel.parquet").exists() and not any(k.startswith("sim_") for k in summary)
    assert Path(summary["checkpoint"]) == out / "checkpoints" / "last.ckpt"
    assert Path(summary["checkpoint"]).is_file()
    text = (out / "metrics.csv").read_text().splitlines()
    header = text[0].split(",")
    for name in ("train/loss", "val/residual", "val/residual_mc", "val/residual_state", "val/negative_v"):
        assert name in header
    import csv

    rows = list(csv.DictReader((out / "metrics.csv").open()))
    epochs_with_residual = {int(r["epoch"]) for r in rows if r["val/residual"]}
    epochs_with_loss = {int(r["epoch"]) for r in rows if r["train/loss"]}
    assert epochs_with_residual == epochs_with_loss == {0, 1, 2, 3}
    last = [float(r["val/residual"]) for r in rows if r["val/residual"]][-1]
    assert last == pytest.approx(summary["residual"], rel=1e-6)


def test_residual_final_is_the_trained_network_on_four_fresh_heldout_sets(smoke_run):
    from lotj.train.run import FINAL_HELDOUT_SETS, final_heldout_batches
    from lotj.train.vmodule import evaluate_heldout

    cfg, summary, trained = smoke_run
    # far below the separable guess on states it never trained on
    assert 0 < summary["residual_final"] < summary["initial_residual"] / 5
    dm = build_datamodule(cfg)  # sim.enabled=false: the same initial market and held-out firms
    batches = final_heldout_batches(cfg, dm)
    assert sum(int(b["firm_id"].numel()) for b in batches) == FINAL_HELDOUT_SETS * cfg.solver.n_heldout
    per_set = len(batches) // FINAL_HELDOUT_SETS
    sets = [torch.cat([b["firm_id"] for b in batches[k * per_set : (k + 1) * per_set]]) for k in range(4)]
    assert all(not torch.equal(sets[0], other) for other in sets[1:])  # four different samples
    again = evaluate_heldout(trained, batches)
    assert again["val/residual"] == pytest.approx(summary["residual_final"], rel=1e-9)
    assert again["val/l2"] == pytest.approx(summary["l2_final"], rel=1e-9)


def test_checkpoint_restores_the_value_function(smoke_run):
    from lotj.train.vmodule import VModule

    cfg, summary, trained = smoke_run
    module = VModule.load_from_checkpoint(summary["checkpoint"])
    vf = module.value_function()
    assert isinstance(vf, ValueFunction)
    dm = build_datamodule(cfg)
    s = dm.snapshot.sample_firms(64, torch.Generator().manual_seed(0))
    h_new, a_new = dm.snapshot.sample_unmatched(5, torch.Generator().manual_seed(1))
    with torch.no_grad():
        v = vf.value(s)
        assert not v.requires_grad
        assert torch.allclose(v, trained.value_function().value(s), rtol=1e-12)
        assert torch.allclose(
            vf.addition_values(s, h_new, a_new), trained.value_function().addition_values(s, h_new, a_new), rtol=1e-12
        )
    # trained values differ from the separable guess the network started from
    assert not torch.allclose(v, module.net.scale(s), rtol=1e-2)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("arg", "needle"),
    [("economy.delta_m=-0.1", "economy.delta_m"), ("solver.lrr=0.1", "did you mean 'solver.lr'")],
)
def test_bad_config_stops_before_training(tmp_path, capsys, arg, needle):
    out = tmp_path / "never"
    code = main(["conf=smoke", arg, f"out_dir={out}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "configuration error" in err and needle in err
    assert not out.exists()  # nothing was written: training never started
    with pytest.raises(ConfigError):
        load_config(["conf=smoke", arg])


def test_command_line_refuses_a_negative_rate(tmp_path):
    out = tmp_path / "never"
    proc = subprocess.run(
        [sys.executable, "-m", "lotj.train", "conf=smoke", "economy.rho=-0.05", f"out_dir={out}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "economy.rho" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


# ------------------------------------------------------------------ NaN and tolerance
class PoisonAt(Callback):
    """Sets one network weight to NaN at the start of a given epoch."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                next(pl_module.net.head.parameters()).view(-1)[0] = math.nan


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny(tmp_path, "solver.max_epochs=5")
    summary = train(cfg, callbacks=[PoisonAt(2)])
    assert summary["status"] == "nan"
    assert "epoch 2" in summary["message"]
    assert summary["epochs"] == 2  # epochs 0 and 1 completed
    ckpt = torch.load(summary["checkpoint"], weights_only=False)
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values() if t.is_floating_point())
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "nan"


def test_a_non_finite_gradient_anywhere_stops_the_step(tmp_path):
    """One NaN or inf in any parameter's gradient raises before the optimizer step; finite ones pass."""
    from lotj.train.vmodule import NonFiniteError

    cfg = tiny(tmp_path)
    module = build_module(cfg, build_datamodule(cfg))
    params = [p for p in module.parameters()]
    for p in params:
        p.grad = torch.zeros_like(p)
    module.on_before_optimizer_step(None)
    params[0].grad = None  # a parameter without a gradient is skipped
    module.on_before_optimizer_step(None)
    for bad in (math.nan, math.inf):
        params[-1].grad.view(-1)[-1] = bad
        with pytest.raises(NonFiniteError, match="gradient"):
            module.on_before_optimizer_step(None)
        params[-1].grad.zero_()


def test_training_stops_at_tolerance(tmp_path):
    cfg = tiny(tmp_path, "solver.max_epochs=5", "solver.tol=100.0")
    summary = train(cfg)
    assert summary["status"] == "ok" and summary["epochs"] == 1
    assert summary["time_to_tol_s"] is not None and summary["message"] == "reached tolerance"


def test_resume_continues_from_last_checkpoint(tmp_path):
    first = train(tiny(tmp_path / "a", "solver.max_epochs=1"))
    second = train(tiny(tmp_path / "b", "solver.max_epochs=2", f"resume={first['checkpoint']}"))
    assert second["status"] == "ok"
    ckpt = torch.load(second["checkpoint"], weights_only=False)
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 6


# ------------------------------------------------------------------ data module
def test_refresh_replaces_the_distributions(tmp_path):
    cfg = tiny(tmp_path)
    dm = build_datamodule(cfg)
    old_rates = dm.rates
    n_firms, width = 40, cfg.economy.n_max
    z = torch.full((n_firms,), 2.5, dtype=torch.float64)
    q = torch.full((n_firms,), 0.99, dtype=torch.float64)
    mask = torch.arange(width).unsqueeze(0) < 2
    mask = mask.expand(n_firms, width).clone()
    h = torch.where(mask, 1.7, 1.0).to(torch.float64)
    a = torch.ones(n_firms, width, dtype=torch.float64)
    unmatched_h = torch.full((20,), 0.6, dtype=torch.float64)
    snap = EconomySnapshot(FirmBatch(z, q, h, a, mask), unmatched_h, torch.ones(20, dtype=torch.float64))
    dm.refresh(snap)
    assert dm.snapshot is snap
    assert dm.rates == snap.meeting_rates(cfg.economy) != old_rates
    batch = unpack(next(iter(dm.train_dataloader())))
    assert bool((batch.states.z == 2.5).all())
    assert bool((batch.draws[0].h_n == 0.6).all())
    rows = torch.arange(batch.draws[0].slot.numel())
    assert bool((batch.draws[0].s_p.h[rows, batch.draws[0].slot] == 1.7).all())
    assert float(batch.rates.omega) == pytest.approx(dm.rates.omega)
    held = unpack(dm.heldout_batches()[0])
    assert bool((held.states.z == 2.5).all()) and len(held.draws) == 2
    # training and held-out states come from disjoint firms, and the split survives a refresh
    assert not set(dm.train_firms.tolist()) & set(dm.heldout_firms.tolist())
    split = dm.heldout_firms.clone()
    dm.refresh(snap)
    assert torch.equal(dm.heldout_firms, split)
    assert set(unpack(dm.heldout_batches()[0]).firm_id.tolist()) <= set(split.tolist())


def _uniform_snapshot(p, z: float, employed_h: float, unmatched: int, n_firms: int = 30) -> EconomySnapshot:
    """Every firm of productivity ``z`` with two workers of skill ``employed_h``; ``unmatched`` idle workers."""
    width = p.n_max
    mask = (torch.arange(width).unsqueeze(0) < 2).expand(n_firms, width).clone()
    firms = FirmBatch(
        torch.full((n_firms,), z, dtype=torch.float64),
        torch.ones(n_firms, dtype=torch.float64),
        torch.where(mask, employed_h, 1.0).to(torch.float64),
        torch.ones(n_firms, width, dtype=torch.float64),
        mask,
    )
    return EconomySnapshot(
        firms, torch.full((unmatched,), 0.6, dtype=torch.float64), torch.ones(unmatched, dtype=torch.float64)
    )


def test_market_window_pools_the_last_cross_sections(tmp_path):
    """With solver.market_window = 2 the market (rates and meeting draws) is that of the last two
    snapshots pooled; Ω's states come from the newest alone; a checkpoint restores the window."""
    cfg = tiny(tmp_path, "solver.market_window=2", "solver.exact_sums=true")
    dm = build_datamodule(cfg)  # set up on the documented initial economy, which is never pooled
    p = cfg.economy
    old, new = _uniform_snapshot(p, 2.5, 1.7, 20), _uniform_snapshot(p, 0.8, 1.2, 40)
    dm.refresh(old)
    assert dm.history == [old] and dm.rates == old.meeting_rates(p)
    dm.refresh(new)
    employed = 2 * 60
    pooled_rates = EconomySnapshot(
        FirmBatch.cat([old.firms, new.firms]),
        torch.cat([old.unmatched_h, new.unmatched_h]),
        torch.cat([old.unmatched_a, new.unmatched_a]),
    ).meeting_rates(p)
    assert dm.rates == pooled_rates != new.meeting_rates(p)
    assert pooled_rates.s_n == pytest.approx(
        p.psi_n * 60 / (p.psi_n * 60 + p.psi_e * employed)
    )  # 60 unmatched, 120 employed in the pool
    batch = unpack(next(iter(dm.train_dataloader())))
    assert bool((batch.states.z == 0.8).all())  # Ω from the newest
    d = batch.draws[0]
    rows = torch.arange(d.slot.numel())
    employed_h = d.s_p.h[rows, d.slot]
    assert sorted(employed_h.tolist()) == [1.2, 1.7] and d.weight_e.tolist() == pytest.approx([0.5, 0.5])
    state = dm.state_dict()
    again = build_datamodule(cfg)
    again.load_state_dict(state)
    assert again.rates == dm.rates and len(again.history) == 2 and again.refreshes == dm.refreshes
    dm.refresh(new)  # the oldest leaves the window
    assert dm.rates == new.meeting_rates(p)


def test_a_settled_market_pools_every_snapshot_and_stays_frozen(tmp_path):
    """settle() pools all its snapshots even beyond solver.market_window, refuses later refreshes, and
    a checkpoint restores the frozen market."""
    cfg = tiny(tmp_path, "solver.market_window=1", "solver.exact_sums=true")
    dm = build_datamodule(cfg)
    p = cfg.economy
    snaps = [_uniform_snapshot(p, 2.5, 1.7, 20), _uniform_snapshot(p, 0.8, 1.2, 40), _uniform_snapshot(p, 1.1, 0.9, 10)]
    dm.settle(snaps)
    assert dm.settled and dm.history == snaps[::-1]
    pooled = EconomySnapshot(
        FirmBatch.cat([s.firms for s in snaps[::-1]]),
        torch.cat([s.unmatched_h for s in snaps[::-1]]),
        torch.cat([s.unmatched_a for s in snaps[::-1]]),
    ).meeting_rates(p)
    assert dm.rates == pooled != snaps[-1].meeting_rates(p)
    with pytest.raises(RuntimeError, match="frozen"):
        dm.refresh(snaps[0])
    again = build_datamodule(cfg)
    again.load_state_dict(dm.state_dict())
    assert again.settled and len(again.history) == 3 and again.rates == dm.rates


def test_module_exposes_the_network_as_value_function(tmp_path):
    cfg = tiny(tmp_path)
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm)
    vf = module.value_function()
    assert isinstance(vf, ValueFunction)
    assert vf is module.net and next(module.parameters()).dtype == torch.float64


# ------------------------------------------------------------------ W&B
def test_wandb_mode_never_goes_online_without_a_key(tmp_path):
    calls = []

    def probe(host, port):
        calls.append((host, port))
        return True

    no_netrc = {"NETRC": str(tmp_path / "none")}
    assert wandb_mode(no_netrc, probe) == "offline" and calls == []
    assert wandb_mode({**no_netrc, "WANDB_MODE": "disabled"}, probe) == "disabled"
    assert wandb_mode({**no_netrc, "WANDB_API_KEY": "x"}, lambda h, p: False) == "offline"
    assert wandb_mode({**no_netrc, "WANDB_API_KEY": "x"}, probe) == "online"


def test_wandb_logger_runs_offline(tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    cfg = tiny(tmp_path / "run", "solver.max_epochs=1", "logging.logger=wandb")
    summary = train(cfg)
    assert summary["status"] == "ok"
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert runs, "an offline W&B run directory"
    assert (tmp_path / "run" / "metrics.csv").is_file()


@pytest.mark.parametrize("option", ["solver.unbiased=true", "solver.gradient=semi", "solver.weighting=state"])
def test_loss_options_train(tmp_path, option):
    cfg = tiny(tmp_path, "solver.max_epochs=3", option)
    dm = build_datamodule(cfg)
    batch = next(iter(dm.train_dataloader()))
    assert len(unpack(batch).draws) == (2 if cfg.solver.unbiased else 1)
    summary = train(cfg, datamodule=dm)
    assert summary["status"] == "ok" and summary["epochs"] == 3
    # three epochs of 3 steps: the held-out residual is noisy from epoch to epoch (semi-gradient most of all)
    assert math.isfinite(summary["loss"]) and summary["best_residual"] < 0.9 * summary["initial_residual"]


def learning_rates(conf: dict, epochs: int, per_epoch: int) -> list[list[float]]:
    """Each parameter group's learning rate at the start of every epoch and after the last, stepping the optimiser
    and the scheduler of ``configure_optimizers()``'s ``conf`` ``per_epoch`` times an epoch."""
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    out = [[g["lr"] for g in opt.param_groups]]
    for _ in range(epochs):
        for _ in range(per_epoch):
            opt.step()
            sched.step()
        out.append([g["lr"] for g in opt.param_groups])
    return out


@pytest.mark.parametrize("schedule", ["exponential", "cosine"])
def test_learning_rate_schedule(tmp_path, schedule):
    cfg = tiny(
        tmp_path,
        "solver.max_epochs=4",
        "solver.steps_per_epoch=10",
        "solver.lr=1e-3",
        "solver.lr_decay=0.5",
        "solver.lr_min=0.1",
        f"solver.schedule={schedule}",
    )
    conf = build_module(cfg, build_datamodule(cfg)).configure_optimizers()
    assert conf["lr_scheduler"]["interval"] == ("step" if schedule == "cosine" else "epoch")
    lrs = [group[0] for group in learning_rates(conf, epochs=4, per_epoch=10 if schedule == "cosine" else 1)]
    if schedule == "cosine":
        # lr_min + (lr − lr_min)(1 + cos(π t/T))/2 at t = 0, 10, 20, 30, 40 of T = 40 steps
        floor = 1e-4
        expected = [floor + (1e-3 - floor) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)]
    else:
        expected = [1e-3 * 0.5**e for e in range(5)]
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_a_negative_heldout_product_mean_does_not_read_as_zero():
    from lotj.train.vmodule import heldout_metrics, new_accumulator

    acc = new_accumulator()
    # mean R₁R₂ = −1e-4 (noise-dominated), mean (ρV)² = 1
    acc.update({"r1r2": -1e-4 * 8, "r1r1": 4e-4 * 8, "scale": 8.0, "rel": 1e-4 * 8, "count": 8.0})
    metrics = heldout_metrics(acc)
    assert metrics["val/residual"] == pytest.approx(1e-2)
    assert metrics["val/residual"] > 0
    assert metrics["val/l2"] == pytest.approx(1e-4)  # |mean R₁R₂|, in the model's units


def test_l2_is_the_mean_squared_residual_in_the_models_units():
    from lotj.train.vmodule import heldout_metrics, new_accumulator

    acc = new_accumulator()
    # mean R₁R₂ = 0.02 over 4 states, mean (ρV)² = 50: the scale-free residual is √(0.02/50) = 0.02
    acc.update({"r1r2": 0.08, "r1r1": 0.12, "scale": 200.0, "rel": 0.0, "count": 4.0})
    metrics = heldout_metrics(acc)
    assert metrics["val/l2"] == pytest.approx(0.02)
    assert metrics["val/residual"] == pytest.approx(0.02)
    # doubling every value and residual (a change of units) quadruples l2 and leaves the residual
    acc2 = {k: (4 * v if k in ("r1r2", "r1r1", "scale") else v) for k, v in acc.items()}
    assert heldout_metrics(acc2)["val/l2"] == pytest.approx(0.08)
    assert heldout_metrics(acc2)["val/residual"] == pytest.approx(0.02)


# ------------------------------------------------------------------ the GPU
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_residual_and_its_gradient_on_cuda_equal_the_cpu_ones(tmp_path):
    """The same network, states and draws give the same residual (RHS − ρV, both draw sets), the same
    diagonal and the same loss gradient on the GPU as on the CPU, in double precision."""
    cfg = tiny(tmp_path)
    dm = build_datamodule(cfg)
    batch = next(iter(dm.train_dataloader()))
    module = build_module(cfg, dm)
    results = {}
    for dev in ("cpu", "cuda"):
        vm = copy.deepcopy(module).to(dev)
        vm.zero_grad()
        r = vm.residual({k: v.to(dev) for k, v in batch.items()})
        second = r.residual2 if r.residual2 is not None else r.residual
        (r.residual * second).mean().backward()
        grads = torch.cat([p.grad.flatten() for p in vm.parameters() if p.grad is not None])
        results[dev] = [x.detach().cpu() for x in (r.residual, second, r.value, r.diagonal, grads)]
    for name, a, b in zip(("residual", "residual2", "value", "diagonal", "gradient"), *results.values()):
        assert a.dtype == torch.float64 and a.shape == b.shape, name
        scale = a.abs().max()
        assert (a - b).abs().max() <= 1e-9 * scale, (name, float((a - b).abs().max() / scale))
