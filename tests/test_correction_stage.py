"""The correction stage (``solver.correction_start``; lotj.nets.CorrectedValueNet): V = V₁ + ε D.

- a ``correction_only`` network is zero at initialisation on every state and outputs the learned part only;
- before the stage the pair is V₁ exactly (values, neighbours, pooled terms) and D is not evaluated;
- during it the pair is V₁ + ε D on every path, its pooled neighbours equal explicit neighbour sets, the whole
  V residual equals the naive one, and it is invariant to permutations of the workers;
- in training only V₁ moves before the stage and only D during it; a checkpoint restores the stage;
- the two learning-rate schedules each run over their own stage;
- bad settings are refused;
- a whole run (joint loop, panel, W stage) takes the pair as it takes one network.
"""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lotj.config import load_config
from lotj.economy.firms import FirmBatch, sample_initial_firms, sample_workers
from lotj.economy.hjb import make_draws, v_residual
from lotj.economy.params import EconomyParams
from lotj.economy.value import SetFunctionValue
from lotj.errors import ConfigError
from lotj.nets import CorrectedValueNet, ValueNet
from lotj.sim.distributions import initial_snapshot
from lotj.sim.meeting_draws import sample_draws
from lotj.train.run import build_datamodule, build_module, train
from lotj.train.vmodule import VModule

sys.path.insert(0, str(Path(__file__).parent))
from test_train import learning_rates, tiny  # noqa: E402

F64 = torch.float64
EPS = 0.03


@pytest.fixture(scope="module")
def p() -> EconomyParams:
    return EconomyParams(n_max=8)


def _net(p: EconomyParams, seed: int, correction_only: bool = False, perturb: bool = True) -> ValueNet:
    torch.manual_seed(seed)
    net = ValueNet(p, 8, 16, 2, 16, 2, franchise=2.0, correction_only=correction_only).to(F64)
    if perturb:  # leave the zero initialisation so that every head matters
        with torch.no_grad():
            for head in (net.head, net.firm_type, net.worker_value):
                for prm in head.parameters():
                    prm.normal_(0.0, 0.3)
    return net


def pair(p: EconomyParams, correcting: bool = True) -> CorrectedValueNet:
    out = CorrectedValueNet(_net(p, 0), _net(p, 1, correction_only=True), EPS)
    out.set_stage(correcting)
    return out


def firms(p: EconomyParams, count: int, seed: int) -> FirmBatch:
    s = sample_initial_firms(p, count, torch.Generator().manual_seed(seed), mean_size=4.0)
    s.mask[:2] = False  # empty firms
    return s


def test_a_correction_network_starts_at_zero_and_holds_only_the_learned_part(p):
    s = firms(p, 30, 2)
    fresh = _net(p, 3, correction_only=True, perturb=False)
    with torch.no_grad():
        assert torch.equal(fresh.value(s), torch.zeros(30, dtype=F64))
        full, only = _net(p, 4), _net(p, 4, correction_only=True)
        separable = ValueNet(p, 8, 16, 2, 16, 2, franchise=2.0).to(F64)  # zero heads: ΣU + (F + c z)/r
        # the full output is the separable guess plus the learned part
        assert torch.allclose(full.value(s), separable.value(s) + only.value(s), rtol=1e-12, atol=1e-12)


def test_before_the_stage_the_pair_is_the_first_network_alone(p, monkeypatch):
    net = pair(p, correcting=False)
    s = firms(p, 25, 5)
    h_new, a_new = sample_workers(p, 4, torch.Generator().manual_seed(6))

    def fail(*args, **kwargs):
        raise AssertionError("D evaluated before the correction stage")

    for name in ("value", "values_and_neighbours", "worker_terms", "firm_terms", "value_from_pool"):
        monkeypatch.setattr(net.fine, name, fail)
    with torch.no_grad():
        assert torch.equal(net.value(s), net.base.value(s))
        for a, b in zip(net.values_and_neighbours(s, h_new, a_new), net.base.values_and_neighbours(s, h_new, a_new)):
            assert torch.equal(a, b)
        assert net.pool_width == net.base.pool_width
        terms = net.worker_terms(s.h, s.a)
        pool = torch.where(s.mask.unsqueeze(-1), terms, 0.0).sum(-2)
        v = net.value_from_pool(net.firm_terms(s.z, s.q), pool, s.mask.sum(-1))
        assert torch.allclose(v, net.base.value(s), rtol=1e-12)
    assert all(q.requires_grad for q in net.base.parameters())
    assert not any(q.requires_grad for q in net.fine.parameters())


def test_during_the_stage_every_path_is_the_first_network_plus_eps_d(p):
    net = pair(p)
    s = firms(p, 40, 7)
    h_new, a_new = sample_workers(p, 5, torch.Generator().manual_seed(8))
    naive = SetFunctionValue(net.set_function)
    with torch.no_grad():
        d = net.fine.value(s)
        assert float(d.abs().max()) > 0.1 * float(net.base.value(s).abs().max())  # D matters at this ε·D scale
        assert torch.allclose(net.value(s), net.base.value(s) + EPS * d, rtol=1e-12)
        v, minus, plus = net.values_and_neighbours(s, h_new, a_new)
        assert torch.allclose(v, net.value(s), rtol=1e-12)
        assert torch.allclose(minus[s.mask], naive.removal_values(s)[s.mask], rtol=1e-10)
        assert torch.allclose(plus, naive.addition_values(s, h_new, a_new), rtol=1e-10)
        # the simulator's kept pools: both networks' terms side by side
        assert net.pool_width == net.base.pool_width + net.fine.pool_width
        terms = net.worker_terms(s.h, s.a)
        pool = torch.where(s.mask.unsqueeze(-1), terms, 0.0).sum(-2)
        firm = net.firm_terms(s.z, s.q)
        assert torch.allclose(net.value_from_pool(firm, pool, s.mask.sum(-1)), v, rtol=1e-10)
        # sparse neighbours (the simulator's decisions) against explicit neighbour sets
        n = s.size()
        rem_row = (n > 0).nonzero().squeeze(-1)[:6]
        rem_slot = s.mask[rem_row].double().argmax(-1)
        add_row = (n < p.n_max).nonzero().squeeze(-1)[:5]
        _, v_minus, v_plus = net.sparse_neighbours(s, rem_row, rem_slot, add_row, h_new, a_new)
        assert torch.allclose(v_minus, naive.removal_values(s)[rem_row, rem_slot], rtol=1e-10)
        assert torch.allclose(v_plus, naive.addition_values(s, h_new, a_new)[add_row].diagonal(), rtol=1e-10)


def test_the_pairs_residual_equals_the_naive_residual_and_ignores_worker_order(p):
    net = pair(p)
    naive = SetFunctionValue(net.set_function)
    g = torch.Generator().manual_seed(9)
    snap = initial_snapshot(p, 60, g)
    s = snap.sample_firms(24, g)
    d = sample_draws(snap, 5, 5, g)
    rates = snap.meeting_rates(p)
    out = [
        v_residual(vf, p, s, rates, make_draws(vf, p, d.h_n, d.a_n, d.s_p, d.slot, d.firm_e), firm_id=torch.arange(24))
        for vf in (net, naive)
    ]
    with torch.no_grad():
        scale = float((p.rho * net.value(s)).abs().max())
        assert float((out[0].residual - out[1].residual).abs().max()) < 1e-10 * scale
        perm = torch.stack([torch.randperm(p.n_max, generator=g) for _ in range(24)])
        shuffled = FirmBatch(s.z, s.q, s.h.gather(1, perm), s.a.gather(1, perm), s.mask.gather(1, perm))
        assert torch.allclose(net.value(s), net.value(shuffled), rtol=1e-12)


def test_bad_pairs_are_refused(p):
    with pytest.raises(ValueError, match="correction_only"):
        CorrectedValueNet(_net(p, 0), _net(p, 1), EPS)
    with pytest.raises(ValueError, match="eps"):
        CorrectedValueNet(_net(p, 0), _net(p, 1, correction_only=True), 0.0)


class Weights(Callback):
    """The network's weights at the end of every epoch."""

    def __init__(self) -> None:
        self.by_epoch: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.by_epoch[trainer.current_epoch] = copy.deepcopy(pl_module.net.state_dict())


def _moved(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str) -> float:
    return sum(float((a[k] - b[k]).abs().sum()) for k in a if k.startswith(prefix))


def test_training_moves_the_first_network_then_only_the_second(tmp_path):
    cfg = tiny(tmp_path, "solver.max_epochs=4", "solver.correction_start=2", "solver.correction_scale=0.05")
    weights = Weights()
    summary = train(cfg, callbacks=[weights])
    assert summary["status"] == "ok" and summary["epochs"] == 4
    w = weights.by_epoch
    assert _moved(w[1], w[0], "base.") > 0 and _moved(w[1], w[0], "fine.") == 0
    for e in (2, 3):
        assert _moved(w[e], w[e - 1], "base.") == 0 and _moved(w[e], w[e - 1], "fine.") > 0
    assert float(w[3]["stage"]) == 1.0
    # the checkpoint restores the pair with its stage: V₁ + ε D, D no longer zero
    ckpt = torch.load(summary["checkpoint"], map_location="cpu", weights_only=False)
    module = VModule(ckpt["hyper_parameters"]["cfg"], ckpt["hyper_parameters"]["franchise"])
    module.load_state_dict(ckpt["state_dict"])
    net = module.net
    assert isinstance(net, CorrectedValueNet) and net.correcting
    s = firms(cfg.economy, 20, 10)
    with torch.no_grad():
        d = net.fine.value(s)
        assert float(d.abs().max()) > 0
        assert torch.allclose(net.value(s), net.base.value(s) + 0.05 * d, rtol=1e-12)


@pytest.mark.parametrize("schedule", ["exponential", "cosine"])
def test_each_network_has_its_schedule_over_its_own_stage(tmp_path, schedule):
    cfg = tiny(
        tmp_path,
        "solver.max_epochs=5",
        "solver.steps_per_epoch=4",
        "solver.correction_start=3",
        "solver.lr=1e-3",
        "solver.correction_lr=2e-3",
        "solver.lr_decay=0.5",
        "solver.lr_min=0.1",
        f"solver.schedule={schedule}",
    )
    conf = build_module(cfg, build_datamodule(cfg)).configure_optimizers()
    per_epoch = 4 if schedule == "cosine" else 1
    lrs = learning_rates(conf, epochs=5, per_epoch=per_epoch)

    def shape(k: int, length: int) -> float:  # the factor k units into a stage of `length`
        k = min(max(k, 0), length)
        if schedule == "cosine":
            return 0.1 + 0.9 * (1 + math.cos(math.pi * k / length)) / 2
        return 0.5**k

    unit = per_epoch
    for e, (first, second) in enumerate(lrs):  # at the start of epoch e
        assert first == pytest.approx(1e-3 * shape(e * unit, 3 * unit), rel=1e-12)
        assert second == pytest.approx(2e-3 * shape(e * unit - 3 * unit, 2 * unit), rel=1e-12)
    # the second network's rate restarts at correction_lr when its stage begins
    assert lrs[3][1] == pytest.approx(2e-3)


@pytest.mark.parametrize(
    "bad",
    ["solver.correction_start=-1", "solver.correction_start=4", "solver.correction_scale=0", "solver.correction_lr=-1"],
)
def test_bad_correction_settings_are_refused(tmp_path, bad):
    with pytest.raises(ConfigError, match="correction"):
        tiny(tmp_path, "solver.max_epochs=4", bad)


def test_a_whole_run_simulates_and_solves_w_on_the_pair(tmp_path):
    """The joint loop, the panel and the W stage all take the pair as they take one network."""
    from test_sim_train import TINY as JOINT
    from test_sim_train import TINY_W

    cfg = load_config(
        JOINT
        + [
            "solver.stages=[v,w]",
            "solver.max_epochs=2",
            "solver.correction_start=1",
            *TINY_W,
            "wsolver.max_epochs=1",
            f"out_dir={tmp_path}",
        ]
    )
    summary = train(cfg)
    assert summary["status"] == "ok" and summary["epochs"] == 2
    assert summary["sim_refreshes"] == 2
    assert math.isfinite(summary["w_residual"]) and (tmp_path / "panel.parquet").is_file()
