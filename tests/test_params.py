"""Derived quantities (MODEL.md sections 2, 3, 10) and the empirical distributions."""

import math

import torch

from lotj.economy.params import EconomyParams, meeting_rates
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


def test_initial_snapshot_accounting_and_samplers(gen):
    p = EconomyParams(n_max=16)
    snap = initial_snapshot(p, 500, gen)
    assert snap.n_workers() == round(p.n_w * 500)
    assert 0.5 < snap.employment_rate() < 0.9
    firms, slot = snap.sample_employed(1000, gen)
    assert firms.mask[torch.arange(1000), slot].all()  # χ^E draws are real workers
    # Π ∝ (n + 1): the mean size of drawn poachers is E[n(n+1)] / E[n+1] under χ
    _, idx = snap.sample_poachers(200_000, gen)
    n = snap.firms.size().double()
    expected = (n * (n + 1)).mean() / (n + 1).mean()
    drawn = n[idx].mean()
    sd = n.std() / math.sqrt(200_000)
    assert abs(drawn - expected) < 6 * sd
    h, a = snap.sample_unmatched(10, gen)
    assert h.shape == (10,) and torch.all(h > 0)
