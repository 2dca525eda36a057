"""The W stage's data and training: Ω states with wages, refresh with simulated wages, a falling residual."""

import lightning as L
import numpy as np
import pytest
import torch

from lotj.config import WSolverConfig, load_config
from lotj.economy.params import EconomyParams
from lotj.economy.surplus import surplus
from lotj.economy.wages import initial_wage_range
from lotj.nets import ValueNet, WorkerValueNet, franchise_guess
from lotj.sim.distributions import initial_snapshot
from lotj.train.wdatamodule import WDataModule, batch_firms
from lotj.train.wmodule import WModule

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
    with torch.no_grad():
        delta = surplus(vf, P, s)
    lo, hi = initial_wage_range(P, s, 0.25, delta)  # wage_range=surplus: the wages of the bargaining set
    m = s.mask
    assert ((batch["w"][m] >= lo[m]) & (batch["w"][m] <= hi[m])).all()
    # down to the entry wage of a hire at W = U, b h − ψ^E E_Π[min{Δ_p⁺, Δ_k}] ≥ b h − ψ^E Δ⁺
    assert (lo[m] <= (P.b * s.h - P.psi_e * delta.clamp_min(0.0))[m]).all()
    flow_lo, _ = initial_wage_range(P, s, 0.25)
    assert (batch["w"][m] < flow_lo[m]).any()
    assert batch["h_n"].numel() == 4 and batch["h_e"].numel() == 4 and batch["p_z"].numel() == 8
    assert "h_n2" not in batch  # one draw set for the biased loss
    val = dm.val_batches[0]
    assert "h_n2" in val and "p_z2" in val  # held-out batches: a second, independent set
    # Δ(S_p, x) of the χ^E draws is the surplus at their own firm
    row = dm.delta_table[batch["firm_e"]]
    assert torch.isin(batch["delta_e"], row).all()
    # training and held-out states come from disjoint firms
    assert not set(dm.train_ids.tolist()) & set(dm.val_ids.tolist())


def _trainer() -> L.Trainer:
    """Four quiet epochs, no checkpoints or logs, gradients clipped at 1."""
    return L.Trainer(
        max_epochs=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
    )


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


def test_explore_puts_exploration_states_in_the_training_pool_only(economy):
    """``wsolver.explore``: that share of the training pool are exploration states (firm −1: all sizes, no
    simulated firm), which carry wages from the initial range even where the others keep simulated ones; the
    held-out pool stays on the simulated firms."""
    snap, vf = economy
    dm = WDataModule(P, vf, snap, _cfg(wage_mix=1.0, explore=0.25), seed=2)
    sim_w = torch.where(snap.firms.mask, 7.25 + torch.arange(P.n_max).float(), torch.nan)
    dm.refresh(snap, sim_w)
    ids, s, w = dm.train_ids, dm.train_states, dm.train_wages
    explored = ids == -1
    assert int(explored.sum()) == round(0.25 * len(ids))
    assert set(s.mask[explored].sum(-1).tolist()) == set(range(P.n_max + 1))  # every size 0..n_max
    assert not torch.isin(w[explored][s.mask[explored]], sim_w[snap.firms.mask]).any()
    kept = snap.firms.mask[ids[~explored]] & s.mask[~explored]
    assert (w[~explored][kept] == sim_w[ids[~explored]][kept]).float().mean() > 0.9  # wage_mix = 1
    assert (dm.val_ids >= 0).all()
    with pytest.raises(ValueError, match="explore"):
        load_config(["conf=smoke", "wsolver.explore=1.5"])


def test_training_lowers_the_heldout_residual(economy):
    snap, vf = economy
    cfg = _cfg()
    dm = WDataModule(P, vf, snap, cfg, seed=3)
    torch.manual_seed(3)
    net = WorkerValueNet(P, embed_dim=8, phi_width=16, head_width=32)
    module = WModule(P, net, vf, lr=cfg.lr, lr_decay=cfg.lr_decay)
    trainer = _trainer()
    before = trainer.validate(module, datamodule=dm, verbose=False)[0]["w/val_residual"]
    trainer.fit(module, datamodule=dm)
    after = float(trainer.callback_metrics["w/val_residual"])
    assert after < 0.3 * before, (before, after)
    assert torch.isfinite(trainer.callback_metrics["w/train_loss"])
    # V stayed frozen
    assert all(not prm.requires_grad for prm in vf.parameters())


@pytest.mark.parametrize("surplus_input, set_kinks", [(False, False), (True, False), (True, True)])
def test_w_stage_summary(tmp_path, economy, surplus_input, set_kinks):
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
            f"wnet.surplus_input={str(surplus_input).lower()}",
            f"wnet.set_kinks={str(set_kinks).lower()}",
            "logging.progress_bar=false",
            # a cheap error estimate of W and the wages (docs/accuracy.md; checked in tests/test_w_accuracy.py)
            "accuracy.n_states=8",
            "accuracy.wage_events=4",
            "accuracy.m_pi=4",
            "accuracy.tail_weight=0.2",
        ]
    )
    summary = run_w_stage(cfg, vf, snap, out_dir=tmp_path)
    # a W trained for 10 steps is far from its solution: estimated, and not certified
    assert summary["w_error_mean"] > 0 and summary["w_error_states"] == 8
    assert summary["w_convergence"] == "not converged"
    assert summary["wage_error_events"] and summary["wage_error_seconds"] > 0
    for key in ("w_residual", "wage_mean", "wage_p25", "wage_p50", "wage_p75", "markdown_mean"):
        assert summary[key] is not None and summary[key] == summary[key], key
    assert summary["wage_p25"] <= summary["wage_p50"] <= summary["wage_p75"]
    shares = [v for k, v in summary.items() if k.startswith("reset_share_")]
    assert len(shares) == 6 and abs(sum(shares) - 1) < 1e-9
    assert all(0.0 <= share <= 1.0 for share in shares)
    panel = read_panel(tmp_path / "panel.parquet")
    assert {"wage", "W", "J", "markdown"} <= set(panel.columns)
    employed = panel[panel["employed"]]
    assert employed["wage"].notna().all() and panel.loc[~panel["employed"], "wage"].isna().all()
    # the summary is the written panel's: wage quartiles and the mean markdown W/J of employed worker-years
    wages = employed["wage"].astype(float).to_numpy()
    for key, q in (("wage_p25", 25), ("wage_p50", 50), ("wage_p75", 75)):
        assert summary[key] == pytest.approx(float(np.percentile(wages, q)), rel=1e-12), key
    assert summary["wage_mean"] == pytest.approx(float(wages.mean()), rel=1e-12)
    W, J = employed["W"].astype(float).to_numpy(), employed["J"].astype(float).to_numpy()
    markdown = np.where(J > 0, W / np.where(J > 0, J, 1.0), np.nan)  # MODEL.md section 5: none where J <= 0
    np.testing.assert_allclose(employed["markdown"].astype(float).to_numpy(), markdown, rtol=1e-12)
    assert summary["markdown_mean"] == pytest.approx(float(markdown[np.isfinite(markdown)].mean()), rel=1e-9)
    # the saved W loads back in its form (with the set kinks, 19 more head outputs)
    from lotj.validate.wages import load_worker_net

    wf = load_worker_net(cfg, vf, tmp_path / "w_net.pt")
    assert wf.set_kinks == set_kinks and wf.surplus_input == surplus_input


def test_warm_start_fits_the_frozen_state_oracle(economy):
    """The warm start regresses W on the frozen-state oracle (docs/wages.md): the held-out distance to the
    oracle falls several-fold, and the entry wage of a hire (the wage that gives W = U) moves from the
    initial guess ``b h`` towards the oracle's Postel-Vinay–Robin entry wage."""
    from lotj.economy.wages import frozen_state_values_from_terms
    from lotj.sim.wage_inversion import invert_wage
    from lotj.train.wmodule import terms_of_batch

    snap, vf = economy
    cfg = _cfg(warm_start_steps=10**6, lr=1e-2)
    dm = WDataModule(P, vf, snap, cfg, seed=4)
    torch.manual_seed(4)
    net = WorkerValueNet(P, embed_dim=8, phi_width=16, head_width=32)
    module = WModule.from_config(P, net, vf, cfg)
    batch = dm.val_batches[0]
    s, terms = terms_of_batch(vf, P, batch)
    m = s.mask
    u = P.unemployment_coef * s.h

    def distance():
        with torch.no_grad():
            target = frozen_state_values_from_terms(P, batch["w"], terms[0])
            W = net.values(s, batch["w"])
        return float(((W - target).abs() / torch.maximum(target.abs(), u))[m].mean())

    def entry_wage_gap():
        with torch.no_grad():
            w_net, _ = invert_wage(net, P, s, batch["w"], u, m)
            oracle = frozen_state_values_from_terms(P, w_net, terms[0])
        return float(((oracle - u).abs() / u)[m].mean())  # the oracle's value at the network's entry wage

    before, gap_before = distance(), entry_wage_gap()
    trainer = _trainer()
    trainer.fit(module, datamodule=dm)
    after, gap_after = distance(), entry_wage_gap()
    assert after < 0.3 * before, (before, after)
    assert gap_after < 0.5 * gap_before, (gap_before, gap_after)


def chain_cfg_args(base: list[str]) -> list[str]:
    return [*base, "wsolver.chain_rounds=1", "wsolver.chain_states=32", "wsolver.chain_steps=20"]


def test_w_stage_chain_targets_run_and_move_w(tmp_path, economy):
    """``wsolver.chain_rounds``: after the residual training, sets of chain targets are fitted (here one set
    of 32 tracked workers and 20 steps): the summary says so, and W differs from the same stage without them, and
    from the same set with its wages drawn across the bargaining sets."""
    from lotj.train.wstage import run_w_stage

    snap, vf = economy
    base = [
        "conf=smoke", "economy.n_max=6", "sim.panel_years=1", "wsolver.max_epochs=1", "wsolver.steps_per_epoch=3",
        "wsolver.batch_size=16", "wsolver.n_states=64", "wsolver.n_heldout=32", "wsolver.refresh_years=0",
        "wsolver.burn_in_years=0.2", "wnet.head_width=16", "logging.progress_bar=false", "accuracy.enabled=false",
        "accuracy.tail_weight=0.2", "accuracy.m_pi=4",
    ]  # fmt: skip
    torch.manual_seed(5)
    plain = run_w_stage(load_config(base), vf, snap, out_dir=tmp_path / "plain")
    torch.manual_seed(5)
    chain_cfg = load_config(chain_cfg_args(base))
    chain = run_w_stage(chain_cfg, vf, snap, out_dir=tmp_path / "chain")
    assert "w_chain_rounds" not in plain
    assert chain["w_chain_rounds"] == 1 and chain["w_chain_target_seconds"] > 0 and np.isfinite(chain["w_chain_loss"])
    a = torch.load(tmp_path / "plain" / "w_net.pt")
    b = torch.load(tmp_path / "chain" / "w_net.pt")
    assert any(not torch.equal(a[k], b[k]) for k in a)
    # the same set with every tracked wage across its bargaining set (wsolver.chain_bargaining): other targets
    torch.manual_seed(5)
    run_w_stage(load_config([*chain_cfg_args(base), "wsolver.chain_bargaining=1"]), vf, snap, out_dir=tmp_path / "bar")
    c = torch.load(tmp_path / "bar" / "w_net.pt")
    assert any(not torch.equal(b[k], c[k]) for k in b)
    with pytest.raises(ValueError, match="chain_rounds"):
        load_config([*base, "wsolver.chain_rounds=-1"])


def test_settled_meetings_pin_the_w_market_while_its_states_follow_the_simulation(economy):
    """``wsolver.settle_years``: one cross-section a year under the frozen V; the W batches' meeting draws and
    rates come from those cross-sections pooled, through every later refresh, while Ω's states move on."""
    from lotj.economy.params import MeetingRates
    from lotj.sim.market import pooled_snapshot
    from lotj.sim.simulator import Simulator

    snap, vf = economy
    sim = Simulator(P, snap.n_firms, 0.05, seed=2, snapshot=snap)
    assert sim.yearly_snapshots(vf, 0) == []
    meetings = sim.yearly_snapshots(vf, 2)
    assert len(meetings) == 2 and sim.year == 2
    dm = WDataModule(P, vf, sim.snapshot(), _cfg(), seed=1, meetings=meetings)
    pooled = pooled_snapshot(meetings)
    assert dm.source.pooled.n_firms == 2 * snap.n_firms and dm.rates == pooled.meeting_rates(P)
    sim.advance(vf, 0.5)
    newest = sim.snapshot()
    dm.refresh(newest, rates=MeetingRates(0.5, 0.5, 0.5))
    assert dm.snapshot is newest and dm.rates == pooled.meeting_rates(P)
    # the employed draws come from the pooled rows: those of the second cross-section too
    rows = torch.cat([dm.source.draws(4, 64, torch.Generator().manual_seed(k)).row_e for k in range(4)])
    assert int(rows.max()) >= snap.n_firms
