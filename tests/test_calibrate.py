"""tune.calibrate without Ray or solves: the searched space, the objective, the weights, the inference.

- a covariance searched as a correlation is never outside its bounds, and every candidate's Σ is PSD;
- every candidate either passes the config checks or is recorded as refused, with the check's message;
- the objective and the batch-mean variances equal hand-computed values;
- the finite-difference Jacobian of linear moments is exact, and the standard errors and the weak
  identification flag are those of the SMM sandwich computed by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lotj.config import load_config
from lotj.economy.params import EconomyParams
from lotj.errors import ConfigError
from lotj.measure.targets import TARGETS
from tune.calibrate import inference
from tune.calibrate.evaluate import CalibrationContext, candidate_config, evaluate, warm_start
from tune.calibrate.objective import Objective, floored_variances, moment_covariance, weighting_matrix
from tune.calibrate.space import (
    COVARIANCES,
    Parameter,
    at_bounds,
    economy_values,
    nearest,
    parse_parameter,
    start_point,
)
from tune.calibrate.spec import load_target_file, merge_options

SOURCE = load_target_file("source", [])


def sample(params: list[Parameter], rng: np.random.Generator) -> dict[str, float]:
    """A candidate drawn uniformly (log-uniformly for log parameters) within the bounds."""
    out = {}
    for p in params:
        u = rng.uniform()
        out[p.name] = math.exp(math.log(p.lower) + u * math.log(p.upper / p.lower)) if p.log else p.lower + u * p.width
    return out


def test_correlation_searched_covariances_stay_within_bounds_and_psd():
    _, _, params, _ = SOURCE
    corr = {p.covariance: p for p in params if p.covariance}
    assert set(corr) == set(COVARIANCES)
    rng = np.random.default_rng(7)
    base = EconomyParams()
    for _ in range(500):
        candidate = sample(params, rng)
        econ = economy_values(candidate, params, base)
        e = EconomyParams(**{k: v for k, v in econ.items()})
        for cov_name, p in corr.items():
            _, sd1, sd2 = COVARIANCES[cov_name]
            implied = econ[cov_name] / (econ[sd1] * econ[sd2])
            assert p.lower - 1e-12 <= implied <= p.upper + 1e-12
            assert math.isclose(implied, candidate[p.name], rel_tol=1e-9)
        for sigma in (e.sigma_w, e.sigma_f):
            assert np.linalg.eigvalsh(sigma).min() >= -1e-15 * np.abs(sigma).max()


def test_correlation_uses_the_preset_sd_when_not_searched():
    params = [parse_parameter("cov_log_zq", {"corr": [-0.5, 0.5]})]
    econ = economy_values({"corr_log_zq": 0.25}, params, EconomyParams(sd_log_z=0.4, sd_log_q=0.02))
    assert econ == {"cov_log_zq": pytest.approx(0.25 * 0.4 * 0.02)}
    # the source's start point: corr = 1.69e-4 / (0.342 × 0.013)
    start = start_point(params, EconomyParams())
    assert start["corr_log_zq"] == pytest.approx(1.69e-4 / (0.342 * 0.013))


@pytest.mark.parametrize(
    "name, spec, why",
    [
        ("cov_log_zq", {"corr": [-1.2, 0.5]}, "must lie in"),
        ("cov_log_zq", [0.1, 0.5], "searched as a correlation"),
        ("psi_n", [0.5, 0.1], "lower < upper"),
        ("psi_n", {"corr": [0.0, 0.5]}, "only a covariance"),
        ("sd_log_a", {"bounds": [0.0, 0.1], "log": True}, "lower bound > 0"),
    ],
)
def test_bad_parameter_specs_are_refused(name, spec, why):
    with pytest.raises(ConfigError, match=why):
        parse_parameter(name, spec)
    with pytest.raises(ConfigError, match="not an internally calibrated"):
        parse_parameter("rho", [0.01, 0.1])  # external (MODEL.md section 7)


def context(tmp_path: Path, params: list[Parameter], keys: list[str] | None = None) -> CalibrationContext:
    keys = keys or ["en_rate"]
    return CalibrationContext(
        conf="smoke",
        overrides=[],
        params=params,
        objective=Objective(keys, [0.1] * len(keys), np.eye(len(keys)).tolist()),
        calibration_dir=str(tmp_path),
        base_economy={k: v for k, v in vars(EconomyParams()).items() if not isinstance(v, (list, type(None)))},
        train_fn="tests.test_calibrate:no_solve",
    )


def no_solve(cfg, **kwargs):
    raise AssertionError("a refused candidate must not be solved")


def test_every_candidate_passes_the_config_checks_or_is_recorded_refused(tmp_path):
    _, _, params, _ = SOURCE
    ctx = context(tmp_path, params)
    rng = np.random.default_rng(3)
    refused = passed = 0
    for i in range(60):
        candidate = sample(params, rng)
        try:
            cfg = candidate_config(candidate, ctx, tmp_path / "run")
        except ConfigError as exc:
            refused += 1
            record = evaluate(candidate, ctx, f"c{i}", "search", init_from="")
            assert record["status"] == "refused" and record["reason"] == str(exc)
            assert record["score"] == ctx.failure_score
            assert json.loads((tmp_path / "records" / f"c{i}.json").read_text())["status"] == "refused"
            continue
        passed += 1
        for name, value in economy_values(candidate, params, EconomyParams()).items():
            assert getattr(cfg.economy, name) == pytest.approx(value, rel=1e-12)
    # the source's bounds reach economies whose γ^E(aq − 1) exceeds the discount on the support (MODEL.md §10)
    assert refused > 0 and passed > 0


def test_warm_start_from_the_nearest_finished_trial(tmp_path):
    params = [Parameter("psi_n", 0.1, 1.0), Parameter("sd_log_a", 0.001, 0.1, log=True)]
    ctx = context(tmp_path, params)
    (tmp_path / "records").mkdir()
    for key, status, psi_n, sd_a in [("a", "ok", 0.2, 0.01), ("b", "ok", 0.5, 0.002), ("c", "failed", 0.45, 0.0021)]:
        run = tmp_path / "runs" / key / "checkpoints"
        run.mkdir(parents=True)
        (run / "last.ckpt").write_text("")
        rec = {"key": key, "status": status, "params": {"psi_n": psi_n, "sd_log_a": sd_a}, "run_dir": str(run.parent)}
        (tmp_path / "records" / f"{key}.json").write_text(json.dumps(rec))
    # on the unit cube (log for sd_log_a): (0.4, 0.002) is 0.11 from b, 0.60 from a; c failed
    assert warm_start({"psi_n": 0.4, "sd_log_a": 0.002}, ctx) == str(tmp_path / "runs" / "b")
    assert nearest({"psi_n": 0.4, "sd_log_a": 0.002}, [], params) is None


def test_objective_by_hand():
    obj = Objective(["a", "b"], [1.0, 2.0], [[4.0, 0.0], [0.0, 1.0]])
    assert obj.value({"a": 1.5, "b": 1.0}) == pytest.approx(4 * 0.25 + 1 * 1.0)
    assert obj.contributions({"a": 1.5, "b": 1.0}) == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}
    off = Objective(["a", "b"], [1.0, 2.0], [[4.0, 1.0], [1.0, 1.0]])
    assert off.value({"a": 1.5, "b": 1.0}) == pytest.approx(4 * 0.25 + 2 * 1.0 * 0.5 * -1.0 + 1.0)
    assert math.isnan(obj.value({"a": 1.5, "b": None})) and obj.missing({"a": 1.5}) == ["b"]


def test_batch_mean_variances_floor_and_weights_by_hand():
    blocks = np.array([[1.0, 10.0], [3.0, 10.0], [2.0, np.nan]])
    cov = moment_covariance(blocks)
    assert cov[0, 0] == pytest.approx(1.0 / 3)  # var(1, 2, 3) = 1, over 3 blocks
    assert cov[1, 1] == 0.0 and cov[0, 1] == 0.0  # pairwise complete: the constant moment's two blocks
    var = floored_variances(cov, np.array([2.0, 10.0]), np.array([2.0, 12.0]), 0.01)
    assert var[0] == pytest.approx(1.0 / 3) and var[1] == pytest.approx((0.01 * 12.0) ** 2)
    assert np.allclose(weighting_matrix(cov, var, "diagonal"), np.diag(1 / var))
    w = weighting_matrix(cov, var, "optimal")
    assert np.allclose(w, np.diag(1 / var))  # uncorrelated moments: the optimal weights are the diagonal ones


def test_source_targets_are_model_md_section_8_and_quantile_gaps_need_a_median():
    options, targets, _, left_out = SOURCE
    source = dict(TARGETS)
    assert {k: source[k] for k in targets} == targets
    assert set(source) - set(targets) == {"wage_p50_p25", "wage_p75_p50"} == set(left_out)
    _, with_median, _, none_left = load_target_file("source", ["data_median_wage=2.0"])
    assert with_median["wage_p50_p25_rel"] == pytest.approx(3.090 / 2) and not none_left
    assert with_median["wage_p75_p50_rel"] == pytest.approx(6.165 / 2)
    with pytest.raises(ConfigError, match="sampler"):
        merge_options({}, ["sampler=random"])


def test_given_points_must_lie_within_the_bounds(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("options:\n  points: [{psi_n: 0.9}]\ntargets: {en_rate: 0.1}\nparameters:\n  psi_n: [0.1, 0.5]\n")
    with pytest.raises(ConfigError, match="outside the bounds of \\['psi_n'\\]"):
        load_target_file(str(path), [])
    _, _, params, _ = load_target_file(str(path), ["points=[{psi_n: 0.3}]"])
    assert params == [Parameter("psi_n", 0.1, 0.5)]


def test_the_preset_start_point_is_a_valid_config():
    _, _, params, _ = SOURCE
    start = start_point(params, EconomyParams())
    cfg = load_config(
        ["conf=smoke", *[f"economy.{k}={v!r}" for k, v in economy_values(start, params, EconomyParams()).items()]]
    )
    assert cfg.economy.cov_log_zq == pytest.approx(1.69e-4) and cfg.economy.psi_n == 0.314


def test_jacobian_and_standard_errors_of_linear_moments_by_hand():
    params = [Parameter("x", 0.0, 1.0), Parameter("y", 0.0, 2.0), Parameter("z", 0.0, 1.0)]
    a = np.array([[2.0, 0.0, 0.0], [0.0, 0.5, 0.0], [1.0, 1.0, 0.0]])  # z moves no moment

    def m(theta: dict[str, float]) -> np.ndarray:
        return a @ np.array([theta["x"], theta["y"], theta["z"]])

    best = {"x": 0.3, "y": 1.95, "z": 0.5}
    points = inference.fd_points(best, params, 0.05)
    assert points[1][1] == pytest.approx(-0.1)  # y + 0.1 leaves [0, 2]: a backward step
    g = inference.jacobian(m(best), [m(p) for p, _ in points], [h for _, h in points])
    assert np.allclose(g, a)
    omega = np.diag([0.04, 0.01, 0.09])
    w = np.linalg.inv(omega)
    inf = inference.infer(g, w, omega, params, data_size_ratio=1.0, threshold=1.0)
    # W = Ω⁻¹, r = 1: Var = (1 + 1)(A'Ω⁻¹A)⁻¹ over the identified (x, y); z is not identified
    ab = a[:, :2]
    expected = np.sqrt(np.diag(2 * np.linalg.inv(ab.T @ w @ ab)))
    assert np.allclose(inf.se[:2], expected) and math.isinf(inf.se[2])
    assert inf.reach[2] == 0.0 and inf.weak == ["z"]
    # reach of x: sqrt(G_x' W G_x) × width = sqrt(4/0.04 + 1/0.09) × 1
    assert inf.reach[0] == pytest.approx(math.sqrt(4 / 0.04 + 1 / 0.09))
    # a data set four times the simulated panel: (1 + 4) Ω/4 instead of (1 + 1) Ω
    quarter = inference.standard_errors(ab, w, omega, 4.0)
    assert np.allclose(quarter, expected * math.sqrt(5 / 4 / 2))


def test_startup_trials_decide_when_the_sampler_starts_modelling():
    """With ``startup_trials`` trials seen, TPE models them; before, it draws uniformly from the box.

    Four parameters on [0, 1]; the start point (all 0.2) scores 0 and three far points score high. The next six
    proposals, each told its mean distance to the start: with 4 startup trials TPE already models what it saw
    and proposes nearer the start; with the default 10 these are still uniform draws (mean distance 0.34 in
    expectation). Over eight sampler seeds (48 proposals) the two means are about five standard errors apart;
    with 11 startup trials the proposals are the default's draw for draw."""
    import optuna

    from tune.calibrate.search import distributions, make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = [Parameter(f"x{i}", 0.0, 1.0) for i in range(4)]
    dists = distributions(params)
    seen = [({p.name: 0.2 for p in params}, 0.0)] + [({p.name: v for p in params}, 5.0) for v in (0.7, 0.85, 0.95)]

    def proposals(dotlist: list[str]) -> np.ndarray:
        options = merge_options({}, dotlist)
        study = optuna.create_study(sampler=make_sampler(options, seen[0][0]), direction="minimize")
        for values, score in seen:
            study.add_trial(optuna.trial.create_trial(params=values, distributions=dists, value=score))
        out = []
        for _ in range(6):
            trial = study.ask(dists)
            out.append([trial.params[p.name] for p in params])
            study.tell(trial, float(np.mean(np.abs(np.array(out[-1]) - 0.2))))
        return np.array(out)

    with pytest.raises(ConfigError, match="startup_trials"):
        merge_options({}, ["startup_trials=-1"])
    seeds = range(8)
    modelled = np.mean([np.abs(proposals(["startup_trials=4", f"seed={s}"]) - 0.2).mean() for s in seeds])
    uniform = np.mean([np.abs(proposals([f"seed={s}"]) - 0.2).mean() for s in seeds])
    assert modelled < 0.3 < uniform, (modelled, uniform)
    assert np.array_equal(proposals(["startup_trials=11"]), proposals([]))


def test_a_best_point_at_a_bound_is_flagged():
    params = [Parameter("delta_m", 0.05, 0.3), Parameter("sd_log_a", 0.002, 0.03, log=True), Parameter("b", 0.0, 1.0)]
    # delta_m 0.0502 is 0.08% of its range above the lower bound; sd_log_a 0.0297 is within 1% of the upper
    # bound on the log scale (log(0.03/0.0297)/log(15) = 0.37%); b 0.02 is 2% inside: not flagged
    lines = at_bounds({"delta_m": 0.0502, "sd_log_a": 0.0297, "b": 0.02}, params)
    assert len(lines) == 2
    assert lines[0].startswith("delta_m = 0.0502 is at its lower bound 0.05")
    assert lines[1].startswith("sd_log_a = 0.0297 is at its upper bound 0.03")
    assert at_bounds({"delta_m": 0.0502, "sd_log_a": 0.0297, "b": 0.02}, params, share=0.0005) == []
    assert len(at_bounds({"delta_m": 0.3, "sd_log_a": 0.002, "b": 0.5}, params)) == 2
