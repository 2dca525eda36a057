"""Typed configuration: presets, merge order, and every bad-input case (lotj/config.py)."""

import pytest

from lotj.config import Config, config_from_yaml, load_config, to_yaml
from lotj.economy.params import EconomyParams
from lotj.errors import ConfigError


def test_baseline_is_the_source_calibration():
    c = load_config(["conf=baseline"])
    e = c.economy
    assert (e.rho, e.delta_r, e.lam, e.gamma_e) == (0.05, 0.05, 1.0, 1.0)
    assert (e.n_w, e.b, e.eta, e.mu_q) == (5.371, 0.141, 0.939, -0.016)
    assert (e.sd_log_z, e.sd_log_q, e.cov_log_zq, e.delta_m) == (0.342, 0.013, 1.69e-4, 0.127)
    assert (e.sd_log_h, e.sd_log_a, e.cov_log_ha) == (0.157, 0.008, 4.2315e-7)
    assert (e.theta_plus, e.theta_minus, e.delta_f, e.psi_e, e.psi_n) == (0.165, 0.034, 0.001, 1.048, 0.314)


def test_merge_order_schema_preset_cli():
    smoke = load_config(["conf=smoke"])
    assert smoke.economy.n_max == 16  # preset beats schema (32)
    over = load_config(["conf=smoke", "economy.n_max=12", "economy.eta=0.9"])
    assert over.economy.n_max == 12 and over.economy.eta == 0.9  # CLI beats preset
    assert over.economy.rho == 0.05  # schema default where nobody says otherwise
    assert over.out_dir == "runs/smoke"


def test_roundtrip_through_yaml(tmp_path):
    c = load_config(["conf=smoke", "seed=3"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(c))
    back = config_from_yaml(path)
    assert isinstance(back, Config) and back == c
    # the same from the file's name and from its text (longer than any file name can be)
    assert config_from_yaml(str(path)) == c
    text = path.read_text()
    assert len(text) > 255 and config_from_yaml(text) == c  # 255: the longest file name


@pytest.mark.parametrize(
    "argv,pattern",
    [
        (["economy.etaa=0.9"], r"unknown config key 'economy.etaa'.*did you mean 'economy.eta'"),
        (["economy.eta=abc"], r"economy.eta"),
        (["conf=no_such_preset"], r"unknown preset conf='no_such_preset'.*available"),
        (["economy.delta_m=-0.1"], r"economy.delta_m.*>= 0"),
        (["economy.rho=0"], r"economy.rho.*> 0"),
        (["economy.sd_log_z=-0.3"], r"economy.sd_log_z.*standard deviation"),
        (["economy.cov_log_ha=0.01"], r"sigma_w.*not positive semi-definite"),
        (["economy.cov_log_zq=-0.01"], r"sigma_f.*not positive semi-definite"),
        (["economy.eta=0"], r"economy.eta.*> 0"),
        (["economy.n_w=0"], r"economy.n_w.*> 0"),
        (["economy.n_max=0"], r"economy.n_max.*>= 1"),
        (["economy.mu_a=0.3"], r"values would be infinite"),
        (["economy.gamma_e=10", "economy.sd_log_a=0.05"], r"values would be infinite"),
        (["solver.lr=-1"], r"solver.lr"),
        (["sim.dt=2.0"], r"sim.dt.*more than one learning event"),
        (["sim.settle_years=10"], r"sim.settle_years and sim.settle_epochs"),
        (["sim.settle_years=10", "sim.settle_epochs=500"], r"sim.settle_epochs.*below solver.max_epochs"),
        (["sim.decision_precision=16"], r"sim.decision_precision = 16: allowed \[64, 32\]"),
        (["solver.schedule=step"], r"solver.schedule.*allowed"),
        (["solver.lr_min=0"], r"solver.lr_min.*\(0, 1\]"),
        (["solver.lr_min=1.5"], r"solver.lr_min"),
        (["logging.logger=tensorboard"], r"logging.logger"),
        (["trainer.deterministic=sometimes"], r"trainer.deterministic = 'sometimes': allowed \[false, true, 'warn'\]"),
        (["trainer.deterministic=1"], r"trainer.deterministic = 1: allowed"),
        (["eta=0.9"], r"unknown config key 'eta'"),
        (["economy.eta"], r"expected key=value"),
    ],
)
def test_bad_input_is_refused_with_the_key(argv, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(["conf=smoke", *argv])


def test_zero_variances_pass():
    # the counterfactuals set a variance and its covariance to zero
    c = load_config(["economy.sd_log_q=0", "economy.cov_log_zq=0", "economy.sd_log_a=0", "economy.cov_log_ha=0"])
    assert c.economy.sigma_f[1, 1] == 0 and c.economy.sigma_w[1, 1] == 0


@pytest.mark.parametrize(
    "argv,cov",
    [
        # a covariance so small that the eigenvalue test alone would pass it (-(1e-7)² / 0.157² > -1e-12)
        (["economy.sd_log_a=0", "economy.cov_log_ha=1e-7"], "cov_log_ha"),
        (["economy.sd_log_a=0"], "cov_log_ha"),  # the source's cov_log_ha kept beside a zero sd_log_a
        (["economy.sd_log_q=0"], "cov_log_zq"),
        (["economy.sd_log_z=0", "economy.cov_log_zq=-1e-9"], "cov_log_zq"),
    ],
)
def test_zero_variance_with_nonzero_covariance_is_refused(argv, cov):
    # MODEL.md section 10: a counterfactual sets a variance *and its covariance* to zero
    with pytest.raises(ConfigError, match=rf"economy.{cov} = .*must be 0 when economy.sd_log_"):
        load_config(["conf=smoke", *argv])


def test_finite_value_check_boundary():
    # largest γ(a q − 1) on the ±4 sd support must stay below ρ + δ_f + δ_r + δ_m = 0.228
    c = load_config([])
    e = c.economy
    import math

    growth = e.gamma_e * (math.exp(e.mu_a + 4 * e.sd_log_a + e.mu_q + 4 * e.sd_log_q) - 1)
    assert growth < e.outflow_rate
    # μ_a just above the bound is refused, just below accepted
    bound = math.log(1 + e.outflow_rate / e.gamma_e) - (4 * e.sd_log_a + e.mu_q + 4 * e.sd_log_q)
    load_config([f"economy.mu_a={bound - 1e-4}"])
    with pytest.raises(ConfigError):
        load_config([f"economy.mu_a={bound + 1e-4}"])


def test_discrete_types_validated():
    with pytest.raises(ConfigError, match="probabilities sum"):
        load_config(["economy.worker_types=[[1.0,1.0,0.5],[2.0,1.0,0.4]]"])
    with pytest.raises(ConfigError, match="worker_types"):
        load_config(["economy.worker_types=[[1.0,-1.0,1.0]]"])
    c = load_config(["economy.firm_types=[[1.0,0.99,0.5],[2.0,1.0,0.5]]"])
    assert c.economy.firm_types == [[1.0, 0.99, 0.5], [2.0, 1.0, 0.5]]


def test_discrete_types_bound_values_by_their_a_and_q():
    """With discrete types the growth bound γ(a q − 1) < ρ + δ_f + δ_r + δ_m reads a and q from the types'
    second column, not their probabilities: a = 2 with γ = 1 gives growth 1 against an outflow of 0.228, so
    values would be infinite; the same economy with a = 1.1 (growth 0.1) is accepted. The bound is strict:
    at growth exactly equal to the outflow (a q = 2, γ = 1, ρ + δ_r = 1; all exact in binary) the series
    diverges and is refused."""
    w1, w2 = "economy.worker_types=[[1.0,1.0,1.0]]", "economy.worker_types=[[1.0,2.0,1.0]]"
    f1, f2 = "economy.firm_types=[[1.0,1.0,1.0]]", "economy.firm_types=[[1.0,2.0,1.0]]"
    for types in ((w2, f1), (w1, f2)):
        with pytest.raises(ConfigError, match="values would be infinite"):
            load_config(["economy.gamma_e=1.0", *types])
    load_config(["economy.gamma_e=1.0", "economy.worker_types=[[1.0,1.1,1.0]]", f1])
    rates = ["economy.rho=0.5", "economy.delta_r=0.5", "economy.delta_f=0.0", "economy.delta_m=0.0"]
    with pytest.raises(ConfigError, match="values would be infinite"):
        load_config(["economy.gamma_e=1.0", w2, f1, *rates])
    load_config(["economy.gamma_e=0.999", w2, f1, *rates])


def test_type_rows_need_positive_values_and_allow_a_zero_probability():
    """A type with h, a, z or q = 0 has no output or no learning, log of it is -inf: refused; a type listed
    with probability 0 is a legal (empty) row."""
    for bad in ("[[0.0,1.0,1.0]]", "[[1.0,0.0,1.0]]"):
        with pytest.raises(ConfigError, match="worker_types"):
            load_config([f"economy.worker_types={bad}"])
        with pytest.raises(ConfigError, match="firm_types"):
            load_config([f"economy.firm_types={bad}"])
    c = load_config(["economy.worker_types=[[1.0,1.0,1.0],[2.0,1.0,0.0]]"])
    assert c.economy.worker_types[1][2] == 0.0


def test_a_zero_benefit_is_an_economy():
    """b = 0 (no unemployment benefit) is allowed: U(h) = 0."""
    assert load_config(["economy.b=0"]).economy.unemployment_coef == 0.0
    with pytest.raises(ConfigError, match="economy.b"):
        load_config(["economy.b=-0.01"])


def test_learning_probability_at_one_event_per_step_and_the_advice_beyond():
    """γ^E·dt = 1 (at most one learning event a step, with certainty) is allowed; beyond it the error
    advises the largest dt that works, 1/γ^E."""
    p = EconomyParams(gamma_e=4.0)
    assert p.learning_probability(0.25) == 1.0
    assert p.learning_probability(0.125) == 0.5
    with pytest.raises(ConfigError, match=r"use sim.dt <= 0\.25$"):
        p.learning_probability(0.5)
