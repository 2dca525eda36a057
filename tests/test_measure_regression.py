"""Regression (6) recovers a known data-generating process; the decomposition of h growth matches known
component variances; coworker sums agree with the pairwise definition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lotj.measure.coworkers import coworker_sums
from lotj.measure.decomposition import decomposition_table, learning_components
from lotj.measure.regression import COEFFICIENTS, RegressionSample, fit_regression


def dgp_sample(seed: int = 0, firms: int = 1500, per_firm: int = 16, sd_alpha: float = 2.0, sd_eps: float = 3.0):
    """Δr = α_k + x'θ + ε with α_k ~ N(0, sd_alpha²), ε ~ N(0, sd_eps²) and regressors shaped like (6)'s."""
    rng = np.random.default_rng(seed)
    theta = np.array([0.11, 0.05, 0.002, -0.001])
    firm = np.repeat(np.arange(firms), per_firm)
    up = rng.exponential(20.0, firm.size)
    down = -rng.exponential(20.0, firm.size)
    X = np.column_stack(
        [up, down, up**2 * rng.uniform(0.8, 1.2, firm.size), down**2 * rng.uniform(0.8, 1.2, firm.size)]
    )
    alpha = rng.normal(0.0, sd_alpha, firms)
    y = alpha[firm] + X @ theta + rng.normal(0.0, sd_eps, firm.size)
    return RegressionSample(y=y, X=X, firm=firm, firm_id=np.arange(firms) * 7), theta, alpha


def test_regression_recovers_the_dgp_within_sampling_error():
    sample, theta, alpha = dgp_sample()
    res = fit_regression(sample)
    assert res.identified and res.n == len(sample.y) and res.n_firms == 1500
    for k, t in zip(COEFFICIENTS, theta):
        assert abs(res.coef[k] - t) < 4.0 * res.se[k], k  # firm-clustered standard errors
    # E[Var(α̂)] = Var(α) + σ²/n_k (each α̂_k is a mean of n_k residuals) up to O(1/N); sd of a variance of K
    # normals: Var·sqrt(2/K)
    expected = np.var(alpha) + 3.0**2 / 16
    assert abs(res.var_firm_effects - expected) < 4.0 * expected * np.sqrt(2 / 1500)
    # RMSE without a dof correction: σ²·(N − K − 4)/N in expectation
    n = len(sample.y)
    assert res.rmse**2 == pytest.approx(9.0 * (n - 1500 - 4) / n, rel=4 * np.sqrt(2 / n))


def test_regression_equals_dummy_variable_ols_and_pyfixest_fixef():
    import pyfixest as pf

    sample, _, _ = dgp_sample(seed=1, firms=60, per_firm=5)
    res = fit_regression(sample)
    assert res.note == ""  # pyfixest's coefficients, in agreement with least squares
    D = (sample.firm[:, None] == np.arange(60)[None, :]).astype(float)
    beta = np.linalg.lstsq(np.hstack([sample.X, D]), sample.y, rcond=None)[0]
    assert [res.coef[k] for k in COEFFICIENTS] == pytest.approx(beta[:4], rel=1e-8, abs=1e-12)
    assert res.firm_effects.to_numpy() == pytest.approx(beta[4:], rel=1e-8, abs=1e-9)
    assert res.var_firm_effects == pytest.approx(np.var(beta[4:]), rel=1e-8)
    resid = sample.y - np.hstack([sample.X, D]) @ beta
    assert res.rmse == pytest.approx(np.sqrt(np.mean(resid**2)), rel=1e-9)
    data = pd.DataFrame(sample.X, columns=list(COEFFICIENTS)).assign(dr=sample.y, firm=sample.firm)
    fit = pf.feols("dr ~ " + " + ".join(COEFFICIENTS) + " | firm", data=data, vcov={"CRV1": "firm"})
    fe = pd.Series(fit.fixef()["C(firm)"]).sort_index(key=lambda i: i.astype(float))
    assert fe.to_numpy(dtype=float) == pytest.approx(beta[4:], rel=1e-6, abs=1e-6)


def test_a_sample_of_one_firm_gets_its_coefficients_without_standard_errors():
    """One firm: the within-firm OLS is identified, but firm-clustered standard errors need two clusters
    (pyfixest's variance is then not finite); the coefficients are still reported, the errors are null."""
    sample, _, _ = dgp_sample(seed=2, firms=1, per_firm=12)
    res = fit_regression(sample)
    assert res.identified and res.n == 12 and res.n_firms == 1
    X = np.hstack([sample.X, np.ones((12, 1))])
    beta = np.linalg.lstsq(X, sample.y, rcond=None)[0]
    assert [res.coef[k] for k in COEFFICIENTS] == pytest.approx(beta[:4], rel=1e-8, abs=1e-12)
    assert res.var_firm_effects == 0.0  # a single firm effect
    assert all(v is None for v in res.se.values()) and "two or more firms" in res.note


def test_collinear_regressors_are_not_identified_but_rmse_is_reported():
    sample, _, _ = dgp_sample(seed=2, firms=40, per_firm=6)
    X = sample.X.copy()
    X[:, 3] = 2.0 * X[:, 1] + 1e-13 * X[:, 0]  # θ2⁻'s regressor a multiple of θ1⁻'s (to rounding)
    res = fit_regression(RegressionSample(sample.y, X, sample.firm, sample.firm_id))
    assert not res.identified and res.smallest_singular_value <= 1e-9
    assert all(v is None for v in res.coef.values()) and res.var_firm_effects is None
    D = (sample.firm[:, None] == np.arange(40)[None, :]).astype(float)
    A = np.hstack([X[:, :3], D])
    resid = sample.y - A @ np.linalg.lstsq(A, sample.y, rcond=None)[0]
    assert res.rmse == pytest.approx(np.sqrt(np.mean(resid**2)), rel=1e-8)
    # a firm-level regressor (constant within each firm) is absorbed by α_k: not identified either
    X2 = sample.X.copy()
    X2[:, 2] = np.arange(40, dtype=float)[sample.firm] + 1.0
    assert not fit_regression(RegressionSample(sample.y, X2, sample.firm, sample.firm_id)).identified


def test_coworker_sums_equal_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(5)
    group = rng.integers(0, 30, 400)
    x = np.round(rng.normal(50, 20, 400), 0)  # many ties
    s = coworker_sums(group, x)
    for i in range(0, 400, 7):
        d = x[group == group[i]] - x[i]
        assert s.n[i] == (group == group[i]).sum()
        assert s.plus1[i] == pytest.approx(d[d > 0].sum(), abs=1e-9)
        assert s.plus2[i] == pytest.approx((d[d > 0] ** 2).sum(), abs=1e-8)
        assert s.minus1[i] == pytest.approx(d[d < 0].sum(), abs=1e-9)
        assert s.minus2[i] == pytest.approx((d[d < 0] ** 2).sum(), abs=1e-8)


def test_decomposition_matches_known_component_variances():
    """Firms of two workers whose log h differ by d: the lower one's θ⁺ term is θ⁺d, the upper one's θ⁻ term
    −θ⁻d, so Var = θ⁺²d²/4, θ⁻²d²/4 and Cov = +θ⁺θ⁻d²/4 exactly
    (E[tp·tm] = 0, means θ⁺d/2, −θ⁻d/2); log a, log q independent normals."""
    rng = np.random.default_rng(0)
    firms, d, tp, tm, sa, sq = 20000, 0.5, 0.4, 0.2, 0.2, 0.3
    fy = np.repeat(np.arange(firms), 2)
    h = np.exp(np.tile([-d / 2, d / 2], firms) + np.repeat(rng.normal(0, 1, firms), 2))
    emp = pd.DataFrame(
        {
            "fy": fy,
            "h": h,
            "a": np.exp(rng.normal(0, sa, 2 * firms)),
            "q": np.exp(np.repeat(rng.normal(0, sq, firms), 2)),
        }
    )
    comps = learning_components(emp, tp, tm)
    assert np.var(comps["theta_plus"]) == pytest.approx(tp**2 * d**2 / 4, rel=1e-12)
    assert np.cov(comps["theta_plus"], comps["theta_minus"], ddof=0)[0, 1] == pytest.approx(tp * tm * d**2 / 4)
    table = decomposition_table(comps)
    total = sa**2 + sq**2 + (tp + tm) ** 2 * d**2 / 4
    assert sum(v for row in table.values() for v in row.values()) == pytest.approx(1.0, abs=1e-12)
    tol = 4 * np.sqrt(2 / (2 * firms))  # relative sampling error of a variance
    assert table["log_a"]["log_a"] == pytest.approx(sa**2 / total, rel=tol)
    assert table["log_q"]["log_q"] == pytest.approx(sq**2 / total, rel=2 * tol)
    assert table["theta_plus"]["theta_plus"] == pytest.approx(tp**2 * d**2 / 4 / total, rel=2 * tol)
    assert table["theta_plus"]["theta_minus"] == pytest.approx(2 * tp * tm * d**2 / 4 / total, rel=2 * tol)
    assert abs(table["log_a"]["log_q"]) < 0.02 and abs(table["log_a"]["theta_plus"]) < 0.02
    assert table["theta_minus"]["log_q"] == 0.0
