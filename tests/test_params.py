"""Derived quantities (MODEL.md sections 2, 3, 10) and the empirical distributions."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import poisson, truncnorm

from lotj.economy.params import TRUNCATION_SD, EconomyParams, meeting_rates
from lotj.sim.distributions import initial_snapshot


def test_meeting_rates_by_hand():
    p = EconomyParams(n_w=5.0, psi_e=1.0, psi_n=0.5)
    r = meeting_rates(p, employment_rate=0.8, mean_n_plus_one=5.0)
    # ω · 5 = 5 (0.8·1 + 0.2·0.5) = 4.5  →  ω = 0.9 ; s^N = 0.1 / 0.9
    assert math.isclose(r.omega, 0.9, rel_tol=1e-12)
    assert math.isclose(r.s_n, 0.1 / 0.9, rel_tol=1e-12)
    assert math.isclose(r.s_n + r.s_e, 1.0, rel_tol=1e-12)


def test_no_meetings_means_zero_not_nan():
    p = EconomyParams(psi_e=0.0, psi_n=0.0)
    r = meeting_rates(p, 0.5, 3.0)
    assert (r.omega, r.s_n, r.s_e) == (0.0, 0.0, 0.0)


def test_unemployment_coefficient():
    assert math.isclose(EconomyParams(b=0.141, rho=0.05, delta_r=0.05).unemployment_coef, 1.41)


#: Two-sided 1e-5 normal quantile: a correct sampler fails a check with probability 1e-5, whatever the seed.
Z = 4.42


def _moment_check(x: torch.Tensor, mean: list[float], cov: np.ndarray, what: str) -> None:
    """Draws of a normal truncated at ±4 sd: means within Z standard errors (sd/√n); variances and the
    covariance within Z standard errors of a sample (co)variance, sqrt((σ_x² σ_y² + c²)/n), of the
    truncated law's, which is the configured one shrunk by the truncation (factor 0.99893 on a variance);
    and no draw outside the box."""
    n = x.shape[0]
    sd = np.sqrt(np.diag(cov))
    shrink = truncnorm.var(-TRUNCATION_SD, TRUNCATION_SD)
    assert abs(shrink - 0.99893) < 1e-5
    emp_mean, emp_cov = x.mean(0).numpy(), np.cov(x.numpy().T)
    for i in range(2):
        assert abs(emp_mean[i] - mean[i]) < Z * sd[i] / math.sqrt(n), (what, i, emp_mean[i], mean[i])
        assert np.all(np.abs(x[:, i].numpy() - mean[i]) <= TRUNCATION_SD * sd[i] + 1e-12), (what, i)
        for j in range(2):
            target = cov[i, j] * (shrink if i == j else 1.0)
            se = math.sqrt((cov[i, i] * cov[j, j] + cov[i, j] ** 2) / n)
            assert abs(emp_cov[i, j] - target) < Z * se, (what, i, j, emp_cov[i, j], target)


def test_initial_snapshot_draws_follow_the_configured_laws(gen):
    """The initial economy (MODEL.md section 10): workers (employed and unmatched) from G_w, firms from
    G_f, both truncated at ±4 sd; each firm's workforce min(Poisson(0.7 n_w), n_max); round(N_w N_f)
    workers in all."""
    p = EconomyParams(
        n_max=8, mu_h=0.1, sd_log_h=0.3, mu_a=0.02, sd_log_a=0.05, cov_log_ha=0.006,
        mu_z=-0.1, sd_log_z=0.342, mu_q=-0.016, sd_log_q=0.02, cov_log_zq=0.002,
    )  # fmt: skip
    n_firms = 6000
    snap = initial_snapshot(p, n_firms, gen)
    assert snap.n_workers() == round(p.n_w * n_firms)
    m = snap.firms.mask
    logs_w = torch.stack(
        [torch.cat([snap.firms.h[m], snap.unmatched_h]).log(), torch.cat([snap.firms.a[m], snap.unmatched_a]).log()], 1
    )
    _moment_check(logs_w, [p.mu_h, p.mu_a], p.sigma_w, "G_w")
    _moment_check(torch.stack([snap.firms.z.log(), snap.firms.q.log()], 1), [p.mu_z, p.mu_q], p.sigma_f, "G_f")
    # workforces: min(N, n_max) with N ~ Poisson(0.7 n_w); a cap of 8 binds for about 6% of firms
    lam = 0.7 * p.n_w
    k = np.arange(p.n_max + 1)
    pmf = poisson.pmf(k, lam)
    pmf[-1] += poisson.sf(p.n_max, lam)
    mean, var = float(k @ pmf), float((k**2) @ pmf - (k @ pmf) ** 2)
    sizes = snap.firms.size().double()
    assert abs(float(sizes.mean()) - mean) < Z * math.sqrt(var / n_firms)
    at_cap = float((sizes == p.n_max).double().mean())
    assert abs(at_cap - pmf[-1]) < Z * math.sqrt(pmf[-1] * (1 - pmf[-1]) / n_firms)
    assert snap.employment_rate() == pytest.approx(float(sizes.sum()) / round(p.n_w * n_firms), rel=1e-12)


def test_snapshot_samplers(gen):
    p = EconomyParams(n_max=16)
    snap = initial_snapshot(p, 500, gen)
    firms, slot = snap.sample_employed(1000, gen)
    assert firms.mask[torch.arange(1000), slot].all()  # χ^E draws are real workers
    # Π ∝ (n + 1): the mean size of drawn poachers is E[n(n+1)] / E[n+1] under χ
    _, idx = snap.sample_poachers(200_000, gen)
    n = snap.firms.size().double()
    expected = (n * (n + 1)).mean() / (n + 1).mean()
    drawn = n[idx].mean()
    sd = n.std() / math.sqrt(200_000)
    assert abs(drawn - expected) < Z * sd
    # unmatched draws come from the snapshot's unmatched pool, uniformly
    h, _ = snap.sample_unmatched(50_000, gen)
    assert torch.isin(h, snap.unmatched_h).all()
    pool = snap.unmatched_h
    assert abs(float(h.mean()) - float(pool.mean())) < Z * float(pool.std()) / math.sqrt(50_000)
