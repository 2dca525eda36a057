"""Chain targets (lotj.accuracy.targets, lotj.train.chain_targets; docs/solver.md, "Chain targets").

- on the closed learning economy, where V* is known in closed form, a network off by a factor (1 + c) gets
  targets equal to V*: the chain recovers the truth from a wrong network; chains stopped at a weight
  (``solver.chain_horizon``) give the n-step target, V* plus the wrong network's error discounted over the n
  events;
- the schedule of the sets, the loss the module adds, the checkpoint round trip and the config's refusals.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from reference import lone_worker_value

from lotj.accuracy.estimate import estimate_v_error
from lotj.accuracy.targets import ChainTargetSet, targets_from_estimate
from lotj.config import load_config
from lotj.economy.firms import FirmBatch
from lotj.economy.params import MeetingRates
from lotj.errors import ConfigError
from lotj.train.chain_targets import ChainTargets, is_round, set_tail_weight
from lotj.train.vmodule import VModule


def _states() -> FirmBatch:
    z = torch.tensor([1.1, 0.9, 1.3, 1.0], dtype=torch.float64)
    q = torch.tensor([0.97, 1.0, 0.95, 0.99], dtype=torch.float64)
    h = torch.tensor([[0.8], [1.3], [1.0], [1.1]], dtype=torch.float64)
    a = torch.tensor([[1.01], [0.99], [1.02], [1.0]], dtype=torch.float64)
    return FirmBatch(z, q, h, a, torch.ones(4, 1, dtype=torch.bool))


@pytest.mark.parametrize("c", [0.05, -0.03])
def test_targets_of_a_wrong_network_are_the_true_values(c):
    p = load_config(["conf=exact_learning"]).economy
    s = _states()
    est = estimate_v_error(
        lone_worker_value(p, c), p, s, MeetingRates(0.0, 0.0, 0.0), None, torch.Generator(), tail_weight=1e-9
    )
    t = targets_from_estimate(s, est)
    truth = lone_worker_value(p, 0.0).value(s)
    np.testing.assert_allclose(t.target.numpy(), truth.numpy(), rtol=1e-6)
    assert t.mean_error == pytest.approx(abs(c) / (1 + c), rel=1e-5)
    assert float(t.noise.max()) < 1e-8 * float(truth.abs().max())  # learning only: both chains agree


@pytest.mark.parametrize("horizon", [0.5, 0.1])
def test_chains_stopped_at_a_horizon_give_the_n_step_target(horizon):
    """Learning alone at rate γ (no separations, no meetings): each event multiplies the lone worker's h by a·q
    and the weight by β = γ/(ρ + γ), so the chains stop after the first K with β^K < horizon, and the target is
    the K events' flows plus the wrong network at S_K: y = V*(S) + c β^K V*(S_K) = V*(S) (1 + c (β a q)^K)."""
    p = load_config(["conf=exact_learning"]).economy
    s, c = _states(), 0.05
    est = estimate_v_error(
        lone_worker_value(p, c), p, s, MeetingRates(0.0, 0.0, 0.0), None, torch.Generator(), tail_weight=horizon
    )
    t = targets_from_estimate(s, est)
    beta = p.gamma_e / (p.rho + p.gamma_e)
    k = int(np.ceil(np.log(horizon) / np.log(beta)))
    assert beta**k < horizon <= beta ** (k - 1)
    truth = lone_worker_value(p, 0.0).value(s).numpy()
    growth = (s.a[:, 0] * s.q).numpy()
    np.testing.assert_allclose(t.target.numpy(), truth * (1 + c * (beta * growth) ** k), rtol=1e-9)


def test_a_set_uses_the_solver_horizon(tmp_path, monkeypatch):
    seen = {}

    def fake(vf, p, market, firms, count, gen, **kw):
        seen.update(kw)
        s = _states()
        v = torch.ones(4, dtype=torch.float64)
        return ChainTargetSet(s, v, v, 0 * v, 0.0)

    monkeypatch.setattr("lotj.train.chain_targets.chain_targets", fake)
    for extra, expected in ([], 0.02), (["solver.chain_horizon=0.3"], 0.3):
        cfg, vm = _module(tmp_path, "solver.chain_states=8", "solver.chain_start=1", *extra)
        assert set_tail_weight(cfg) == expected
        cb = ChainTargets(cfg, datamodule=SimpleNamespace(source=None, train_firms=None))
        vm.log_dict = lambda *a, **k: None
        cb.on_train_epoch_end(SimpleNamespace(current_epoch=0), vm)
        assert seen["tail_weight"] == expected and cb.rounds == 1


def test_the_schedule_of_sets():
    rounds = [e for e in range(60) if is_round(e, start=20, every=10, max_epochs=60)]
    assert rounds == [19, 29, 39, 49]  # 0-based epochs whose end starts a set; not the last epoch
    assert [e for e in range(5) if is_round(e, start=1, every=2, max_epochs=6)] == [0, 2, 4]


def _module(tmp_path, *extra):
    cfg = load_config(["conf=smoke", f"out_dir={tmp_path}", "solver.batch_size=16", *extra])
    return cfg, VModule(cfg).double()


def test_the_chain_loss_is_the_scale_free_distance_to_the_targets(tmp_path):
    cfg, vm = _module(tmp_path)
    p = cfg.economy
    gen = torch.Generator().manual_seed(0)
    n = 6
    z = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    h = torch.rand(n, p.n_max, generator=gen, dtype=torch.float64) + 0.5
    mask = torch.arange(p.n_max).expand(n, -1) < torch.tensor([1, 2, 3, 4, 5, 6]).unsqueeze(-1)
    s = FirmBatch(z, torch.ones(n, dtype=torch.float64), h, torch.ones_like(h), mask)
    with torch.no_grad():
        v = vm.net.value(s)
    vm.chain_set = ChainTargetSet(s, 1.1 * v, v, torch.zeros_like(v), 0.0)
    # every state's V is 1/1.1 of its target: (V − y)² / y² = (0.1/1.1)² whichever states the batch draws
    assert float(vm.chain_loss()) == pytest.approx((0.1 / 1.1) ** 2, rel=1e-9)
    vm.chain_set = ChainTargetSet(s, v, v, torch.zeros_like(v), 0.0)
    assert float(vm.chain_loss()) == pytest.approx(0.0, abs=1e-24)


def test_the_set_survives_a_checkpoint(tmp_path):
    cfg, _ = _module(tmp_path, "solver.chain_states=8")
    cb = ChainTargets(cfg, datamodule=None)
    s = _states()
    v = torch.arange(1.0, 5.0, dtype=torch.float64)
    cb.current, cb.rounds, cb.seconds = ChainTargetSet(s, v + 1, v, 0.1 * v, 2.5), 3, 7.5
    back = ChainTargets(cfg, datamodule=None)
    back.load_state_dict(cb.state_dict())
    assert back.rounds == 3 and back.seconds == 7.5
    assert torch.equal(back.current.target, v + 1) and torch.equal(back.current.states.h, s.h)
    assert back.summary()["chain_mean_error"] == pytest.approx(cb.summary()["chain_mean_error"])


@pytest.mark.parametrize(
    "bad",
    [
        "solver.chain_states=-1",
        "solver.chain_start=0",
        "solver.chain_every=0",
        "solver.chain_weight=-1",
        "solver.chain_horizon=1",
        "solver.chain_horizon=-0.1",
    ],
)
def test_bad_chain_settings_are_refused(bad):
    with pytest.raises(ConfigError, match="chain_"):
        load_config(["conf=smoke", bad])
