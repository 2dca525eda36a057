"""Chain targets (lotj.accuracy.targets, lotj.train.chain_targets; docs/solver.md, "Chain targets").

- on the closed learning economy, where V* is known in closed form, a network off by a factor (1 + c) gets
  targets equal to V*: the chain recovers the truth from a wrong network;
- the schedule of the sets, the loss the module adds, the checkpoint round trip and the config's refusals.
"""

from __future__ import annotations

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
from lotj.train.chain_targets import ChainTargets, is_round
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
    "bad", ["solver.chain_states=-1", "solver.chain_start=0", "solver.chain_every=0", "solver.chain_weight=-1"]
)
def test_bad_chain_settings_are_refused(bad):
    with pytest.raises(ConfigError, match="chain_"):
        load_config(["conf=smoke", bad])
