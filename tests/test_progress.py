"""What a run tells its user while it runs (lotj.train.progress): the whole-run estimate and the epoch lines."""

import io
import math
from types import SimpleNamespace

import pytest

from lotj.config import load_config
from lotj.train.progress import (
    CHAIN_COST_RATIO,
    GPU_HINT_SECONDS,
    W_STEP_COST_RATIO,
    WAGE_SIMULATION_COST_RATIO,
    RunProgress,
    chain_stage_estimate,
    format_seconds,
    w_stage_estimate,
)


def test_format_seconds():
    assert format_seconds(42.4) == "42 s"
    assert format_seconds(185) == "3 min 5 s"
    assert format_seconds(2 * 3600 + 7 * 60 + 30) == "2 h 07 min"
    assert format_seconds(4.24) == "4.2 s"
    assert format_seconds(-3) == "0.0 s"


def test_w_stage_estimate_by_hand():
    cfg = load_config(["conf=smoke"])
    ws, sim = cfg.wsolver, cfg.sim
    v_step, year = 0.2, 0.5
    training = ws.max_epochs * ws.steps_per_epoch * ws.batch_size * (v_step / cfg.solver.batch_size)
    years = ws.burn_in_years + ws.max_epochs * ws.refresh_years + sim.panel_years
    expected = training * W_STEP_COST_RATIO + years * year * WAGE_SIMULATION_COST_RATIO
    assert w_stage_estimate(cfg, v_step, year) == pytest.approx(expected, rel=1e-12)
    cfg_v = load_config(["conf=smoke", "solver.stages=[v]"])
    assert w_stage_estimate(cfg_v, v_step, year) == 0.0


def test_chain_stage_estimate_by_hand():
    """The final V error estimate: 2 × (128 states + 2 rounds × 2 × 2 pairs × 32 employed draws) = 768 chains;
    chain-target sets of 512 states at epochs 30, 40, 50 of 60 (none after the last), each 2 × (512 + 2 × 32) =
    1152 chains."""
    v_step = 0.0256
    per_chain = CHAIN_COST_RATIO * v_step / 128
    final = load_config(["conf=smoke", "solver.chain_states=0"])
    assert chain_stage_estimate(final, v_step, 0) == pytest.approx(768 * per_chain, rel=1e-12)
    off = load_config(["conf=smoke", "solver.chain_states=0", "accuracy.enabled=false"])
    assert chain_stage_estimate(off, v_step, 0) == 0.0
    sets = ["conf=smoke", "accuracy.enabled=false", "solver.chain_states=512", "solver.chain_start=30"]
    cfg = load_config([*sets, "solver.chain_every=10"])
    assert chain_stage_estimate(cfg, v_step, 0) == pytest.approx(3 * 1152 * per_chain, rel=1e-12)
    assert chain_stage_estimate(cfg, v_step, 30) == pytest.approx(2 * 1152 * per_chain, rel=1e-12)  # 30 is done
    assert chain_stage_estimate(cfg, v_step, 60) == 0.0
    # once a set has run, its measured time prices the rest (here 115 s a set), the final estimate included
    assert chain_stage_estimate(cfg, v_step, 30, set_seconds=115.0) == pytest.approx(2 * 115.0, rel=1e-12)
    both = load_config([*sets[1:], "conf=smoke", "solver.chain_every=10", "accuracy.enabled=true"])
    assert chain_stage_estimate(both, v_step, 50, set_seconds=115.0) == pytest.approx(768 / 1152 * 115.0, rel=1e-12)
    # n-step sets (solver.chain_horizon = 0.5) run ln 2 / ln 50 of a whole chain's steps; the final estimate runs
    # whole chains, priced from a measured n-step set by the same ratio
    ratio = math.log(2.0) / math.log(50.0)
    short = load_config(
        [*sets[1:], "conf=smoke", "solver.chain_every=10", "solver.chain_horizon=0.5", "accuracy.enabled=true"]
    )
    assert chain_stage_estimate(short, v_step, 0) == pytest.approx((3 * 1152 * ratio + 768) * per_chain, rel=1e-12)
    assert chain_stage_estimate(short, v_step, 50, set_seconds=20.0) == pytest.approx(
        768 / 1152 * 20.0 / ratio, rel=1e-12
    )


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _trainer(epoch: int, step: int, device: str = "cpu"):
    return SimpleNamespace(
        current_epoch=epoch, global_step=step, strategy=SimpleNamespace(root_device=SimpleNamespace(type=device))
    )


def test_whole_run_estimate_after_the_first_epoch(monkeypatch):
    """A run of K epochs of 10 s each, 100 steps an epoch, whose burn-in simulated 5 years in 5 s: after the
    first epoch the estimate is the time spent plus (K − 1) epochs, the panel and the W stage; then one line
    per epoch with the time remaining; a long CPU run is told where a GPU helps."""
    cfg = load_config(["conf=smoke", "solver.max_epochs=400"])
    clock = _Clock()
    monkeypatch.setattr("lotj.train.progress.time.perf_counter", clock)
    sim_cb = SimpleNamespace(simulation_seconds=0.0, burned_in=False)
    out = io.StringIO()
    progress = RunProgress(cfg, sim_cb, stream=out)
    clock.now += 3.0  # drawing the economy
    progress.on_fit_start(_trainer(0, 0), None)
    clock.now += 5.0  # the burn-in
    sim_cb.simulation_seconds, sim_cb.burned_in = 5.0, True
    progress.on_train_epoch_start(_trainer(0, 0), None)
    clock.now += 10.0
    sim_cb.simulation_seconds += cfg.sim.years_per_epoch * 1.0  # one simulated year a second
    progress.on_train_epoch_start(_trainer(1, 100), None)
    text = out.getvalue()
    assert "burn-in: simulating 5 years of 1000 firms" in text and "burn-in: done in 5.0 s" in text
    year = (5.0 + cfg.sim.years_per_epoch) / (cfg.sim.burn_in_years + cfg.sim.years_per_epoch)
    remaining = 399 * 10.0 + cfg.sim.panel_years * year + w_stage_estimate(cfg, 10.0 / 100, year)
    remaining += chain_stage_estimate(cfg, 10.0 / 100, 1)
    assert progress.estimate_s == pytest.approx(18.0 + remaining, rel=1e-12)
    assert progress.estimate_s > GPU_HINT_SECONDS
    assert f"should take about {format_seconds(18.0 + remaining)} on CPU" in text
    assert "trainer.accelerator=gpu" in text and "sbatch slurm/train.sh conf=smoke" in text
    assert f"epoch 1/400 · elapsed 18 s · remaining about {format_seconds(remaining)}" in text
    # the second epoch took 20 s: the pace is the mean of the two, the step time 30 s / 200 steps
    clock.now += 20.0
    sim_cb.simulation_seconds += cfg.sim.years_per_epoch * 1.0
    progress.on_train_epoch_start(_trainer(2, 200), None)
    year = (5.0 + 2 * cfg.sim.years_per_epoch) / (cfg.sim.burn_in_years + 2 * cfg.sim.years_per_epoch)
    remaining = 398 * 15.0 + cfg.sim.panel_years * year + w_stage_estimate(cfg, 30.0 / 200, year)
    remaining += chain_stage_estimate(cfg, 30.0 / 200, 2)
    assert f"epoch 2/400 · elapsed 38 s · remaining about {format_seconds(remaining)}" in out.getvalue()


def test_a_short_run_gets_no_gpu_hint_and_a_quiet_run_says_nothing(monkeypatch):
    cfg = load_config(["conf=smoke", "solver.max_epochs=3", "accuracy.enabled=false"])
    clock = _Clock()
    monkeypatch.setattr("lotj.train.progress.time.perf_counter", clock)
    out = io.StringIO()
    progress = RunProgress(cfg, None, stream=out)
    progress.on_fit_start(_trainer(0, 0), None)
    progress.on_train_epoch_start(_trainer(0, 0), None)
    clock.now += 10.0
    progress.on_train_epoch_start(_trainer(1, 100), None)
    assert progress.estimate_s == pytest.approx(30.0)  # no simulator, no error estimate: the V epochs alone
    assert "gpu" not in out.getvalue().lower()
    quiet = load_config(["conf=smoke", "logging.progress_bar=false"])
    out2 = io.StringIO()
    RunProgress(quiet, None, stream=out2).say("anything")
    assert out2.getvalue() == ""
