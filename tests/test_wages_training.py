"""The W stage's data and training: Ω states with wages, refresh with simulated wages, a falling residual."""

import inspect

import lightning as L
import pytest
import torch

from lotj.config import WSolverConfig, load_config
from lotj.economy.params import EconomyParams
from lotj.economy.wages import initial_wage_range
from lotj.nets import ValueNet, franchise_guess
from lotj.sim import simulator as simulator_module
from lotj.sim.distributions import initial_snapshot
from lotj.train.wdatamodule import WDataModule, batch_firms
from lotj.train.wmodule import WModule
from lotj.worker_net import WorkerValueNet

P = EconomyParams(n_max=6)


@pytest.fixture(scope="module")
def economy():
    torch.manual_seed(0)
    snap = initial_snapshot(P, 120, torch.Generator().manual_seed(0))
    vf = ValueNet(P, embed_dim=8, phi_width=16, rho_width=16, franchise=franchise_guess(snap.firms, P.eta))
    return snap, vf


def _cfg(**kw):
    base = dict(batch_size=16, steps_per_epoch=12, m_n=4, m_e=4, m_pi=8, n_states=128, n_heldout=48, lr=3e-3)
    base.update(kw)
    return WSolverConfig(**base)


def test_batches_hold_states_wages_and_two_heldout_draw_sets(economy):
    snap, vf = economy
    dm = WDataModule(P, vf, snap, _cfg(), seed=1)
    batch = next(iter(dm.train_dataloader()))
    s = batch_firms(batch)
    assert s.batch_size == 16 and batch["w"].shape == s.h.shape
    lo, hi = initial_wage_range(P, s, 0.25)
    m = s.mask
    assert ((batch["w"][m] >= lo[m]) & (batch["w"][m] <= hi[m])).all()
    assert batch["h_n"].numel() == 4 and batch["h_e"].numel() == 4 and batch["p_z"].numel() == 8
    assert "h_n2" not in batch  # one draw set for the biased loss
    val = dm.val_batches[0]
    assert "h_n2" in val and "p_z2" in val  # held-out batches: a second, independent set
    # Δ(S_p, x) of the χ^E draws is the surplus at their own firm
    row = dm.delta_table[batch["firm_e"]]
    assert torch.isin(batch["delta_e"], row).all()
    # training and held-out states come from disjoint firms
    assert not set(dm.train_ids.tolist()) & set(dm.val_ids.tolist())


def test_refresh_uses_simulated_wages(economy):
    snap, vf = economy
    dm = WDataModule(P, vf, snap, _cfg(wage_mix=0.5), seed=2)
    sim_w = torch.where(snap.firms.mask, 7.25 + torch.arange(P.n_max).float(), torch.nan)
    dm.refresh(snap, sim_w)
    s, ids, w = dm.train_states, dm.train_ids, dm.train_wages
    orig = snap.firms.mask[ids] & s.mask
    from_sim = (w == sim_w[ids]) & orig
    share = from_sim.any(-1)[orig.any(-1)].float().mean()
    assert 0.35 < share < 0.65  # about wage_mix of the states carry the simulated wages
    # states either keep every original worker's simulated wage or none
    rows = from_sim.any(-1)
    assert (from_sim[rows] == orig[rows]).all()


def test_training_lowers_the_heldout_residual(economy):
    snap, vf = economy
    cfg = _cfg()
    dm = WDataModule(P, vf, snap, cfg, seed=3)
    torch.manual_seed(3)
    net = WorkerValueNet(P, embed_dim=8, phi_width=16, head_width=32)
    module = WModule(P, net, vf, lr=cfg.lr, lr_decay=cfg.lr_decay)
    trainer = L.Trainer(
        max_epochs=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
    )
    before = trainer.validate(module, datamodule=dm, verbose=False)[0]["w/val_residual"]
    trainer.fit(module, datamodule=dm)
    after = float(trainer.callback_metrics["w/val_residual"])
    assert after < 0.3 * before, (before, after)
    assert torch.isfinite(trainer.callback_metrics["w/train_loss"])
    # V stayed frozen
    assert all(not prm.requires_grad for prm in vf.parameters())


@pytest.mark.skipif(
    "wage_tracker" not in inspect.getsource(simulator_module), reason="the simulator does not call WageTracker yet"
)
def test_w_stage_summary(tmp_path, economy):
    from lotj.sim.panel import read_panel
    from lotj.train.wstage import run_w_stage

    snap, vf = economy
    cfg = load_config(
        [
            "conf=smoke",
            "economy.n_max=6",
            "sim.panel_years=2",
            "wsolver.max_epochs=2",
            "wsolver.steps_per_epoch=5",
            "wsolver.batch_size=16",
            "wsolver.n_states=64",
            "wsolver.n_heldout=32",
            "wsolver.refresh_years=0.2",
            "wsolver.burn_in_years=0.5",
            "wnet.head_width=16",
            "logging.progress_bar=false",
        ]
    )
    summary = run_w_stage(cfg, vf, snap, out_dir=tmp_path)
    for key in ("w_residual", "wage_mean", "wage_p25", "wage_p50", "wage_p75", "markdown_mean"):
        assert summary[key] is not None and summary[key] == summary[key], key
    assert summary["wage_p25"] <= summary["wage_p50"] <= summary["wage_p75"]
    shares = [v for k, v in summary.items() if k.startswith("reset_share_")]
    assert len(shares) == 6 and abs(sum(shares) - 1) < 1e-9
    panel = read_panel(tmp_path / "panel.parquet")
    assert {"wage", "W", "J", "markdown"} <= set(panel.columns)
    assert panel.loc[panel["employed"], "wage"].notna().all()
