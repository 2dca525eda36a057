"""``SimulatorCallback`` in a Lightning fit: burn-in, refreshes, convergence stop, resumption.

The LightningModule stand-in exposes ``value_function()`` with a learnable V of the accept-all
family (:func:`reference.accept_all_value`) and logs a decreasing ``val/residual``; the
DataModule stand-in records the snapshots it is refreshed with and keeps its Ω in its state.
"""

from __future__ import annotations

import json
import math

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from reference import accept_all_value
from torch.utils.data import DataLoader, TensorDataset

from lotj.config import load_config
from lotj.economy.params import EconomyParams
from lotj.economy.value import SetFunctionValue
from lotj.errors import ConfigError
from lotj.sim.distributions import EconomySnapshot
from lotj.sim.simulator import Simulator
from lotj.train.sim_callback import SimulatorCallback


class StandInModule(pl.LightningModule):
    """V(S) = Σ_i (U(h_i) + c (1 + 0.2 log z)) with c learned towards 1 from 0.5."""

    def __init__(self, cfg):
        super().__init__()
        self.p = cfg.economy
        self.c = torch.nn.Parameter(torch.tensor(0.5, dtype=torch.float64))

    def value_function(self):
        return SetFunctionValue(accept_all_value(self.p, c=float(self.c.detach()), eps=0.2))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = ((self.c - 1.0) ** 2 * x.mean()).sum()
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/residual", (self.c - 1.0).abs().detach() / 10.0)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.3)


class StandInData(pl.LightningDataModule):
    """Records refreshes; its Ω is a draw of firm sizes from the refreshed χ, kept in its state."""

    def __init__(self):
        super().__init__()
        self.snapshots: list[EconomySnapshot] = []
        self.omega = torch.zeros(0)
        self.gen = torch.Generator().manual_seed(0)

    def refresh(self, snapshot: EconomySnapshot) -> None:
        self.snapshots.append(snapshot)
        self.omega = snapshot.sample_firms(16, self.gen).size().to(torch.float64)

    def settle(self, snapshots: list[EconomySnapshot]) -> None:
        self.settled_on = list(snapshots)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(4, dtype=torch.float64)), batch_size=2)

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(1, dtype=torch.float64)), batch_size=1)

    def state_dict(self):
        return {"omega": self.omega, "gen": self.gen.get_state(), "refreshes": len(self.snapshots)}

    def load_state_dict(self, state):
        self.omega = state["omega"]
        self.gen.set_state(state["gen"])


def config(**over):
    args = ["conf=smoke", "sim.n_firms=120", "sim.dt=0.05", "sim.years_per_epoch=1.0", "sim.burn_in_years=2.0"]
    return load_config(args + [f"{k}={v}" for k, v in over.items()])


class StatelessData(StandInData):
    """A DataModule that keeps nothing in checkpoints: the callback refreshes it on resume."""

    def state_dict(self):
        return {}


def fit(cfg, max_epochs, root, ckpt_path=None, checkpoint=False, data_cls=StandInData, device="cpu"):
    torch.manual_seed(cfg.seed)
    module, data = StandInModule(cfg), data_cls()
    sim = Simulator.from_config(cfg, device=device)
    cb = SimulatorCallback(sim, data, cfg)
    callbacks = [cb] + ([ModelCheckpoint(dirpath=root, save_last=True)] if checkpoint else [])
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        precision="64-true",
        deterministic="warn" if torch.device(device).type == "cuda" else False,
        logger=pl.loggers.CSVLogger(root),
        callbacks=callbacks,
        enable_checkpointing=checkpoint,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return cb, data, trainer


def test_burn_in_refreshes_and_logged_statistics(tmp_path):
    cfg = config(**{"sim.tol": 1e-9})
    cb, data, trainer = fit(cfg, 3, tmp_path)
    assert cb.simulator.clock == pytest.approx(2.0 + 3 * 1.0)  # burn-in, then one year per epoch
    assert len(data.snapshots) == 1 + 3
    assert data.snapshots[-1].n_workers() == round(cfg.economy.n_w * 120)
    for k in ("sim/e", "sim/omega", "sim/firm_size_mean", "sim/en_rate", "sim/cap_refused_share"):
        assert k in trainer.callback_metrics, k
    assert 0.0 < float(trainer.callback_metrics["sim/e"]) < 1.0
    assert cb.status == "not converged"  # sim.tol = 1e-9 never holds
    summary = cb.summary()
    json.dumps(summary)  # serialisable as summary.json
    assert summary["sim_status"] == "not converged" and summary["sim_refreshes"] == 3
    assert summary["sim_years"] == pytest.approx(1.0)
    for k in ("sim_e", "sim_omega", "sim_s_n", "sim_firm_size_p90", "sim_en_rate", "sim_cap_refused_share"):
        assert summary[k] is not None and math.isfinite(summary[k]), k


def test_the_final_market_is_simulated_once_before_the_last_epochs(tmp_path):
    """sim.settle_years = 3, sim.settle_epochs = 2 of 5 epochs: after burn-in, epochs 1 and 2 refresh
    one year each, the end of epoch 3 simulates 3 years (one snapshot a year) and freezes them, and
    the last two epochs simulate nothing."""
    cfg = config(**{"sim.tol": 1e-9, "solver.max_epochs": 5, "sim.settle_years": 3, "sim.settle_epochs": 2})
    cb, data, _ = fit(cfg, 5, tmp_path)
    assert cb.settled
    assert len(data.snapshots) == 1 + 2  # burn-in, then epochs 1 and 2
    assert len(data.settled_on) == 3
    assert cb.simulator.clock == pytest.approx(2.0 + 2 * 1.0 + 3.0)
    assert len(cb.tracker.history) == 3  # two refreshes and the final market


def test_the_run_stops_when_converged(tmp_path):
    cfg = config(**{"sim.tol": 0.5, "sim.patience": 2, "solver.tol": 0.02})
    cb, data, trainer = fit(cfg, 30, tmp_path)
    assert cb.status == "converged"
    assert trainer.current_epoch < 30
    assert cb.tracker.streak >= 2 and cb.tracker.last_residual < 0.02


def test_resumed_run_ends_like_the_uninterrupted_one(tmp_path, device):
    """The simulator's state (tensors, both generators, clock, tracker) round-trips through the
    checkpoint, on the GPU too (its generator state is saved and restored as a CPU byte tensor)."""
    cfg = config(**{"sim.tol": 1e-9})
    full, full_data, _ = fit(cfg, 4, tmp_path / "full", checkpoint=True, device=device)
    fit(cfg, 2, tmp_path / "part", checkpoint=True, device=device)
    last = str(tmp_path / "part" / "last.ckpt")
    resumed, res_data, _ = fit(cfg, 4, tmp_path / "part", ckpt_path=last, checkpoint=True, device=device)
    assert resumed.simulator.pop.h.device.type == device.type
    assert len(resumed.tracker.history) == 4  # the restored tracker carries the first two refreshes
    assert resumed.summary() == full.summary()
    assert resumed.tracker.history == full.tracker.history
    for k in ("h", "worker_id", "slot_worker", "firm_id"):
        assert torch.equal(getattr(resumed.simulator.pop, k), getattr(full.simulator.pop, k)), k
    assert torch.equal(res_data.omega, full_data.omega)
    assert len(res_data.snapshots) == 2  # no burn-in refresh on resume: epochs 3 and 4 only


def test_a_path_saved_on_one_kind_of_device_is_not_continued_on_another():
    """CPU and GPU generators give different streams: a GPU path is refused on the CPU (and back)
    with a clear error, before any state is replaced; a CPU path continues on the CPU."""
    p = EconomyParams(n_max=8)
    saved = Simulator(p, 50, 0.05, seed=3)
    saved.run_steps(SetFunctionValue(accept_all_value(p)), 3)
    state = saved.state_dict()
    assert state["gen_device"] == "cpu"
    target = Simulator(p, 50, 0.05, seed=4)
    before = target.pop.h.clone()
    with pytest.raises(ConfigError, match="ran on cuda and this one is on cpu"):
        target.load_state_dict({**state, "gen_device": "cuda"})
    # a checkpoint from before the device was recorded: a GPU generator's state is 16 bytes
    old = {k: v for k, v in state.items() if k != "gen_device"}
    with pytest.raises(ConfigError, match="ran on cuda"):
        target.load_state_dict({**old, "gen": torch.zeros(16, dtype=torch.uint8)})
    assert torch.equal(target.pop.h, before)
    target.load_state_dict(old)
    assert torch.equal(target.pop.h, saved.pop.h) and target.step_count == 3


def test_a_stateless_datamodule_is_refreshed_from_the_restored_simulator(tmp_path):
    cfg = config(**{"sim.tol": 1e-9})
    fit(cfg, 1, tmp_path, checkpoint=True, data_cls=StatelessData)
    cb, data, _ = fit(cfg, 2, tmp_path, ckpt_path=str(tmp_path / "last.ckpt"), checkpoint=True, data_cls=StatelessData)
    assert len(data.snapshots) == 2  # the restored economy at fit start, then epoch 2's refresh
    assert cb.tracker.refreshes == 2
