"""Warm starts (``init_from``, lotj.train.warm_start): a new solve whose V starts from another run's network.

- the warm-started network is the source run's, weight for weight, before it trains: its initial held-out
  residual on this run's economy is the source's final network's, far below a cold start's;
- the economy is this run's: another parameter value changes the initial residual of the same network;
- a wrong directory, another architecture, or ``resume`` together with ``init_from`` are refused clearly.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lotj.config import load_config
from lotj.errors import ConfigError
from lotj.train.run import build_datamodule, build_module, train
from lotj.train.warm_start import load_v_weights, w_weights

TINY = [
    "sim.enabled=false",
    "solver.stages=[v]",
    "sim.n_firms=150",
    "solver.n_omega=256",
    "solver.n_heldout=64",
    "solver.batch_size=32",
    "solver.steps_per_epoch=10",
    "solver.m_n=4",
    "solver.m_e=4",
    "solver.m_eval=8",
    "logging.logger=none",
    "logging.progress_bar=false",
    "accuracy.enabled=false",
]


def tiny(out: Path, *extra: str):
    return load_config(["conf=smoke", *TINY, f"out_dir={out}", *extra])


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("source")
    summary = train(tiny(out, "solver.max_epochs=3"))
    assert summary["status"] == "ok"
    return out, summary


def test_the_warm_network_is_the_source_network(source_run, tmp_path):
    out, _ = source_run
    cfg = tiny(tmp_path)
    dm = build_datamodule(cfg)
    cold = build_module(cfg, dm)
    warm = build_module(cfg, dm)
    load_v_weights(warm, out)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    for key, value in warm.state_dict().items():
        assert torch.equal(value, ckpt["state_dict"][key].to(value.dtype)), key
    assert any(not torch.equal(a, b) for a, b in zip(cold.state_dict().values(), warm.state_dict().values()))


def test_a_warm_start_begins_at_the_source_accuracy(source_run, tmp_path):
    out, source = source_run
    warm = train(tiny(tmp_path / "warm", "solver.max_epochs=1", f"init_from={out}"))
    cold = train(tiny(tmp_path / "cold", "solver.max_epochs=1"))
    assert warm["init_from"] == str(out)
    # same economy, same seed, same held-out states: the initial residual is the source's trained network's
    assert warm["initial_residual"] < 0.5 * cold["initial_residual"]
    assert warm["initial_residual"] == pytest.approx(source["residual_final"], rel=0.5)


def test_the_economy_is_the_warm_runs_own(source_run, tmp_path):
    out, _ = source_run
    same = train(tiny(tmp_path / "same", "solver.max_epochs=1", f"init_from={out}"))
    other = train(tiny(tmp_path / "other", "solver.max_epochs=1", f"init_from={out}", "economy.b=0.5"))
    assert other["initial_residual"] != pytest.approx(same["initial_residual"], rel=1e-3)


def test_refusals(source_run, tmp_path):
    out, _ = source_run
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(tiny(tmp_path / "a", "solver.max_epochs=1", f"init_from={tmp_path / 'nowhere'}"))
    with pytest.raises(ConfigError, match="another architecture"):
        train(tiny(tmp_path / "b", "solver.max_epochs=1", f"init_from={out}", "net.embed_dim=8"))
    with pytest.raises(ConfigError, match="resume and init_from"):
        train(tiny(tmp_path / "c", "solver.max_epochs=1", f"init_from={out}", f"resume={out}/checkpoints/last.ckpt"))
    assert w_weights(out) is None  # a V-only run has no W network to start from


def test_the_w_network_is_taken_from_w_net_pt(tmp_path):
    from lotj.train.warm_start import load_w_weights
    from lotj.train.wstage import build_worker_net

    cfg = tiny(tmp_path)
    torch.manual_seed(1)
    source = build_worker_net(cfg)
    (tmp_path / "run").mkdir()
    torch.save(source.state_dict(), tmp_path / "run" / "w_net.pt")
    torch.manual_seed(2)
    target = build_worker_net(cfg)
    assert load_w_weights(target, tmp_path / "run") == tmp_path / "run" / "w_net.pt"
    for key, value in target.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key
    assert load_w_weights(target, tmp_path) is None  # no w_net.pt: nothing to load
