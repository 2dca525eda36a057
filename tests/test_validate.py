"""lotj.validate: the comparison of a value function and simulated statistics with the exact solution.

Fast tests feed the exact V itself (zero error) and perturbed versions (which must miss a target),
and run the whole report path with the exact V standing in for the network, on a reduced simulation
with looser, stated tolerances. The runs that train the network are marked slow (the real targets)
or run reduced, against targets that the untrained network misses (a test shows it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lotj.validate as validate
from lotj.config import load_config
from lotj.economy.firms import FirmBatch
from lotj.economy.value import SetFunctionValue
from lotj.errors import ConfigError
from lotj.exact import closed_workforce_values, solve_equilibrium
from lotj.exact.linalg import one_thread
from lotj.validate import (
    Targets,
    build_report,
    check_targets,
    compare_statistics,
    compare_values,
    economy_kind,
    run_validation,
)

#: Reduced simulation for the fast end-to-end check: 4000 firms, 10 years of burn-in, 20 measured
#: years, dt = 0.02. Sampling error of EN/NE is then about 1-1.5% (one standard error), and the
#: time step adds about 0.5%, so the stated tolerances are 3% (e, ω), 4% (mean size), 6% (EN, NE).
REDUCED_SIM = ["sim.n_firms=4000", "sim.burn_in_years=10", "sim.panel_years=20", "sim.dt=0.02"]
REDUCED_TARGETS = Targets(e=0.03, omega=0.03, mean_size=0.04, en_rate=0.06, ne_rate=0.06)


@pytest.fixture(scope="module")
def small():
    cfg = load_config(["conf=exact_small"])
    return cfg, solve_equilibrium(cfg.economy)


def _scaled(vf, factor):
    return SetFunctionValue(lambda z, q, h, a, mask: vf.value(FirmBatch(z, q, h, a, mask)) * factor(z, h, mask))


def _exact_stats(sol) -> dict:
    return {
        "e": sol.e,
        "omega": sol.omega,
        "firm_size_mean": sol.mean_size,
        "en_rate": sol.en_rate,
        "ne_rate": sol.ne_rate,
    }


def test_the_exact_v_has_zero_error(small):
    _, sol = small
    out = compare_values(sol.value_function(), sol)
    assert out["n_states"] == 70
    assert out["mean_rel_error"] == 0.0 and out["max_rel_error"] == 0.0
    assert out["exact_hjb_residual_max"] < 1e-12
    assert len(out["per_state"]) == 70


def test_a_uniformly_perturbed_v_misses_the_mean_target(small):
    _, sol = small
    vf = _scaled(sol.value_function(), lambda z, h, m: torch.full_like(z, 1.003))
    out = compare_values(vf, sol)
    assert out["mean_rel_error"] == pytest.approx(3e-3, rel=1e-9)
    # a scaled V no longer solves the HJB: its exact residual is far above rounding
    assert out["exact_hjb_residual_mean"] > 1e-4
    report = {"kind": "equilibrium", "values": out, "statistics": compare_statistics(_exact_stats(sol), sol)}
    missed = check_targets(report)
    assert len(missed) == 1 and missed[0].startswith("V mean relative error")


def test_one_bad_state_misses_the_max_target_only(small):
    _, sol = small
    big = float(sol.space.z.max())

    def only(err):  # the high-z firm with four h = 1.4 workers is off by err
        return lambda z, h, m: 1 + err * ((z == big) & ((h * m).sum(1) - 5.6).abs().lt(1e-9)).double()

    stats = compare_statistics(_exact_stats(sol), sol)
    out = compare_values(_scaled(sol.value_function(), only(0.009)), sol)
    assert out["max_rel_error"] == pytest.approx(0.009, rel=1e-9)
    assert out["mean_rel_error"] == pytest.approx(0.009 / 70, rel=1e-9)
    assert check_targets({"kind": "equilibrium", "values": out, "statistics": stats}) == []
    out = compare_values(_scaled(sol.value_function(), only(0.02)), sol)
    assert out["worst_state"] == "firm type 2 (z=1.5, q=1) with workers {3: 4}"
    missed = check_targets({"kind": "equilibrium", "values": out, "statistics": stats})
    assert len(missed) == 1 and missed[0].startswith("V max relative error")


def test_statistics_compare_and_miss_by_name(small):
    _, sol = small
    stats = _exact_stats(sol)
    out = compare_statistics(stats, sol)
    assert all(row["rel_error"] == 0.0 for row in out.values())
    assert out["mean_size"]["exact"] == sol.mean_size
    values = compare_values(sol.value_function(), sol)
    stats["e"] *= 1.015  # beyond 1%
    stats["en_rate"] *= 1.015  # within 2%
    stats["ne_rate"] = float("nan")  # a missing figure is a miss
    missed = check_targets({"kind": "equilibrium", "values": values, "statistics": compare_statistics(stats, sol)})
    assert [m.split(" ")[0] for m in missed] == ["e", "ne_rate"]
    with pytest.raises(KeyError, match="omega"):
        compare_statistics({"e": 0.5}, sol)


def test_economy_kinds():
    assert economy_kind(load_config(["conf=exact_small"]).economy) == "equilibrium"
    assert economy_kind(load_config(["conf=exact_learning"]).economy) == "learning"
    with pytest.raises(ConfigError, match="closed-workforce"):
        economy_kind(load_config(["conf=smoke"]).economy)


def test_report_path_with_the_exact_v_on_a_reduced_simulation(small, tmp_path):
    """The whole validation run with the exact V in place of the network: the simulated statistics
    must match the exact ones within the reduced tolerances (REDUCED_SIM, REDUCED_TARGETS)."""
    cfg = load_config(["conf=exact_small", f"out_dir={tmp_path}", *REDUCED_SIM, "accuracy.enabled=false"])
    _, sol = small
    with one_thread():  # thousands of small steps: one thread is faster on a shared CPU
        report = run_validation(cfg, REDUCED_TARGETS, vf=sol.value_function(), reference_simulation=False)
    assert report["passed"], report["missed"]
    written = json.loads((tmp_path / "validation.json").read_text())
    assert written["values"]["max_rel_error"] == 0.0
    assert written["exact"]["n_states"] == 70
    assert set(written["statistics"]) == {"e", "omega", "mean_size", "en_rate", "ne_rate"}
    assert "PASSED" in validate.format_report(written)


def _series_value(p):
    def fn(z, q, h, a, mask):
        return closed_workforce_values(p, FirmBatch(z, q, h, a, mask)).values

    return SetFunctionValue(fn)


def test_learning_validation_with_the_exact_series(tmp_path):
    # 32 held-out states: the estimator's chains evaluate the exact series (slow, pure Python) at every step
    cfg = load_config(["conf=exact_learning", f"out_dir={tmp_path}", "solver.n_heldout=32"])
    report = run_validation(cfg, vf=_series_value(cfg.economy))
    assert report["kind"] == "learning" and report["passed"]
    assert report["values"]["n_states"] == 32 and report["values"]["mean_rel_error"] < 1e-12
    # the error estimator finds no error in the exact V (its residual is rounding)
    assert report["estimator"]["estimated"]["v_error_mean"] < 1e-9 and report["estimator"]["true_mean"] < 1e-12
    # a 1% error misses the held-out target by name
    exact = validate.exact_solution(cfg)
    bad = _scaled(_series_value(cfg.economy), lambda z, h, m: torch.full_like(z, 1.01))
    missed = build_report(cfg, bad, exact)["missed"]
    assert len(missed) == 1 and "held-out" in missed[0]


def test_command_line_exit_status_names_the_miss(tmp_path, monkeypatch, capsys):
    # the error estimator's check is test_learning_validation_with_the_exact_series's: here only the exit statuses
    argv = ["conf=exact_learning", f"out_dir={tmp_path}", "solver.n_heldout=32", "accuracy.enabled=false"]
    p = load_config(argv).economy
    monkeypatch.setattr(validate.values, "train_network", lambda cfg, *_: _series_value(p))
    assert validate.main(argv) == 0
    assert "PASSED" in capsys.readouterr().out
    monkeypatch.setattr(
        validate.values, "train_network", lambda cfg, *_: _scaled(_series_value(p), lambda z, h, m: 1 + 0 * z + 0.01)
    )
    assert validate.main(argv) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "V mean relative error on held-out states" in err
    assert json.loads((tmp_path / "validation.json").read_text())["passed"] is False
    assert validate.main(["conf=smoke"]) == 2


def test_the_training_residual_vanishes_at_the_exact_v(small):
    """The network is trained on lotj.economy.hjb.v_residual; at the exact V, with the Monte Carlo
    draws replaced by exact sums (one draw at a time, weighted by χ^N and χ^E), it must vanish: the
    two independent implementations of MODEL.md section 4 solve the same equation."""
    from lotj.economy import hjb
    from lotj.economy.params import MeetingRates
    from lotj.exact.bellman import Surpluses

    cfg, sol = small
    p, space, market = cfg.economy, sol.space, sol.market
    vf, states = sol.value_function(), space.firm_batch()
    rates = MeetingRates(market.omega, market.s_n, market.s_e)
    none = torch.zeros(0, dtype=torch.float64)

    def residual(h_n, a_n, h_e, a_e, d_p):
        return hjb.v_residual(vf, p, states, rates, hjb.MeetingDraws(h_n, a_n, h_e, a_e, d_p))

    total = residual(none, none, none, none, none).residual.clone()  # every term but the meetings
    for j in range(space.n_worker_types):
        x = (torch.tensor([space.h[j]]), torch.tensor([space.a[j]]))
        total += market.chi_n[j] * residual(*x, none, none, none).terms["meet_unmatched"]
    own = Surpluses.of(space, sol.v).own
    for s_p, j in zip(*np.nonzero(market.chi_e > 0)):
        x = (torch.tensor([space.h[j]]), torch.tensor([space.a[j]]), torch.tensor([own[s_p, j]]))
        total += market.chi_e[s_p, j] * residual(none, none, *x).terms["meet_employed"]
    assert (total.abs() / (p.rho * torch.as_tensor(sol.v))).max() < 1e-10


# ------------------------------------------------------------------------ with training


#: A reduced training run: 4 epochs of 30 steps on a small Ω, 2000 simulated firms.
REDUCED_TRAINING = [
    "solver.max_epochs=4",
    "solver.steps_per_epoch=30",
    "solver.batch_size=128",
    "solver.m_n=32",
    "solver.m_e=32",
    "solver.n_omega=1024",
    "solver.n_heldout=256",
    "sim.n_firms=2000",
    "sim.dt=0.02",
    "sim.burn_in_years=5",
    "sim.panel_years=10",
    "sim.settle_years=3",  # the final market, briefly: 3 years before the last epoch
    "sim.settle_epochs=1",
    "wsolver.chain_states=128",  # the preset's W chain-target sets, small
    "logging.logger=none",
    "logging.progress_bar=false",
    "trainer.num_threads=1",
]
#: Its targets: ones that the reduced training meets and the untrained network (the same network at
#: its initial separable guess, seeded as the run seeds it) misses. Measured on this config (seeds 0, 1, 2;
#: relative errors vs exact, trained | untrained):
#:   V mean 0.062 0.099 0.077 | 0.257        V max 0.17 0.31 0.21 | 0.76
#:   e      0.004 0.009 0.004 | 0.062-0.072  mean size 0.009 0.016 0.008 | 0.41-0.43
#:   ω      0.001 0.002 0.001 | 0.013-0.016  NE 0.011 0.028 0.023 | 0.105-0.17
#:   EN     0.004 0.003 0.016 | 0.020-0.045
#: Each target sits between, about 1.5-4x above the worst trained figure and 1.5-5x below the untrained
#: one: 15% V mean, 45% V max, 3% e, 0.7% ω, 8% mean size, 7% NE. EN cannot tell them apart with 2000
#: firms over 10 years (about 2.5% sampling error): its 15% only catches a pipeline wrong in kind.
REDUCED_TRAINING_TARGETS = Targets(
    v_mean=0.15, v_max=0.45, e=0.03, omega=0.007, mean_size=0.08, en_rate=0.15, ne_rate=0.07
)


def _untrained_network(cfg):
    """The network a run starts from (lotj.train.run.train seeds, then builds the module)."""
    import lightning as L

    from lotj.train.run import build_datamodule, build_module

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    return build_module(cfg, build_datamodule(cfg)).value_function()


def test_the_untrained_network_misses_the_reduced_training_targets(tmp_path):
    """The reduced targets tell training from none: the untrained network misses V (mean and max), the
    employment rate and the mean firm size by several-fold margins (REDUCED_TRAINING_TARGETS)."""
    cfg = load_config(["conf=exact_small", f"out_dir={tmp_path}", *REDUCED_TRAINING])
    exact = validate.exact_solution(cfg)
    with one_thread():
        vf = _untrained_network(cfg)
        stats = validate.simulate_statistics(cfg, vf)
    report = build_report(cfg, vf, exact, stats, targets=REDUCED_TRAINING_TARGETS)
    assert not report["passed"]
    missed = report["missed"]
    for name in ("V mean relative error", "V max relative error", "e relative error", "mean_size relative error"):
        assert any(m.startswith(name) for m in missed), (name, missed)
    assert report["values"]["mean_rel_error"] > 1.5 * REDUCED_TRAINING_TARGETS.v_mean


def test_reduced_training_run_meets_the_targets_the_untrained_network_misses(tmp_path):
    """The whole command on exact_small, reduced (REDUCED_TRAINING, REDUCED_TRAINING_TARGETS)."""
    cfg = load_config(["conf=exact_small", f"out_dir={tmp_path}", *REDUCED_TRAINING])
    with one_thread():
        report = run_validation(cfg, REDUCED_TRAINING_TARGETS, reference_simulation=False, wages=False)
    assert report["passed"], report["missed"]
    assert report["values"]["n_states"] == 70


@pytest.mark.slow
@pytest.mark.parametrize("conf", ["exact_small", "exact_learning"])
def test_validation_meets_the_targets(conf, tmp_path):
    """The targets, with training: python -m pytest -m slow tests/test_validate.py. V and the statistics must
    meet theirs. The W network does not yet meet all of its own on exact_small (docs/validation.md, "W and
    the wages"): those misses mark the test xfail, named, until they are met, when it passes."""
    try:
        report = run_validation(load_config([f"conf={conf}", f"out_dir={tmp_path}"]))
    except validate.ValidationFailed:  # raised after the report is written: read it and sort the misses
        report = json.loads((tmp_path / "validation.json").read_text())
    w_labels = ("W ", "wage", "negative-wage")
    w_missed = [m for m in report["missed"] if m.startswith(w_labels) or " wages, " in m]
    assert [m for m in report["missed"] if m not in w_missed] == []
    if w_missed:
        pytest.xfail("W and wage targets missed: " + "; ".join(w_missed))


@pytest.mark.slow
def test_simulator_under_the_exact_v_meets_the_statistics_targets(small, tmp_path):
    """The simulator run by the preset (20000 firms, dt = 0.01, 40 measured years) reproduces the exact
    statistics under the exact V within the targets: simulation error leaves room for the network."""
    cfg = load_config(["conf=exact_small", f"out_dir={tmp_path}"])
    _, sol = small
    with one_thread():
        stats = validate.simulate_statistics(cfg, sol.value_function())
    missed = check_targets(
        {
            "kind": "equilibrium",
            "values": compare_values(sol.value_function(), sol),
            "statistics": compare_statistics(stats, sol),
        }
    )
    assert missed == []
    assert np.isfinite(stats["firm_size_share_at_cap"]) and stats["firm_size_share_at_cap"] < 0.02


def test_command_line_refuses_an_economy_without_a_pure_equilibrium(tmp_path, capsys):
    argv = ["conf=exact_small", f"out_dir={tmp_path}", "economy.eta=0.7", "economy.b=0.5"]
    assert validate.main(argv) == 2
    assert "no pure equilibrium" in capsys.readouterr().err


def _population(space, chi_counts: np.ndarray, u_counts: np.ndarray):
    """Firms with ``chi_counts[s]`` rows in state ``s`` and ``u_counts[j]`` unmatched workers of type j."""
    states = np.repeat(np.arange(space.n_states), chi_counts)
    firms = space.firm_batch(states)
    types = np.repeat(np.arange(space.n_worker_types), u_counts)
    return firms, torch.as_tensor(space.h[types]), torch.as_tensor(space.a[types])


def test_distribution_of_a_population_counts_states_and_unmatched_types(small):
    from lotj.exact.market import Distribution

    _, sol = small
    space = sol.space
    rng = np.random.default_rng(0)
    chi_counts = rng.integers(0, 5, space.n_states)
    u_counts = np.array([3, 0, 7])
    firms, h, a = _population(space, chi_counts, u_counts)
    perm = torch.randperm(firms.batch_size, generator=torch.Generator().manual_seed(1))
    dist = Distribution.of_population(space, firms.index(perm), h, a)  # row order is irrelevant
    n = chi_counts.sum()
    np.testing.assert_allclose(dist.chi, chi_counts / n, rtol=0, atol=1e-15)
    np.testing.assert_allclose(dist.u, u_counts / n, rtol=0, atol=1e-15)
    # workers per firm: employed (Σ n χ) plus unmatched
    assert dist.employed(space) + dist.u.sum() == pytest.approx((chi_counts @ space.size + u_counts.sum()) / n)
    with pytest.raises(ValueError, match="worker"):
        Distribution.of_population(space, firms, h * 1.1 + 0.05, a)


def test_market_split_separates_the_solver_error_from_the_market_sampling_error(small):
    _, sol = small
    space = sol.space
    # a population whose empirical law is the equilibrium's rounded to 1e5 firms: its market is
    # close to, not equal to, the exact one
    n = 100_000
    chi_counts = np.round(sol.dist.chi * n).astype(int)
    u_counts = np.round(sol.dist.u * chi_counts.sum()).astype(int)
    firms, h, a = _population(space, chi_counts, u_counts)
    exact_v = sol.value_function()
    split = validate.market_split(exact_v, sol, firms, h, a)
    gap = split["market_v_vs_equilibrium_v"]
    assert 0 < gap["mean"] < 1e-3  # rounding the law to 1e5 firms moves V a little
    # the equilibrium V is off the market's V by exactly that gap (relative to the market's V)
    assert split["network_vs_market_v"]["max"] == pytest.approx(gap["max"], rel=0.05)
    # a V 1% too high everywhere is 1% off the market's V, whatever the market
    high = _scaled(exact_v, lambda z, h, m: 1.01 + 0 * z)
    off = validate.market_split(high, sol, firms, h, a)["network_vs_market_v"]
    assert off["mean"] == pytest.approx(0.01, abs=2e-3)
    assert split["e"] == pytest.approx(sol.e, rel=1e-3)
