"""The W side at the edges that table-driven tests pass by (MODEL.md section 5, docs/wages.md): a surplus
below one, a single meeting draw or poacher, a second residual draw unlike the first, a worker below
h = 1, and the documented initial wage range, each against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from lotj.economy.firms import FirmBatch
from lotj.economy.hjb import MeetingDraws
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.value import SetFunctionValue
from lotj.economy.wages import (
    Reset,
    initial_wage_range,
    meeting_outcome,
    poacher_hire_surplus,
    scale_free_w_residual,
    wage_v_terms,
)


def _firms(hs: list[list[float]], zs: list[float], n_max: int = 3) -> FirmBatch:
    h = torch.ones(len(hs), n_max)
    mask = torch.zeros(len(hs), n_max, dtype=torch.bool)
    for k, row in enumerate(hs):
        h[k, : len(row)] = torch.tensor(row)
        mask[k, : len(row)] = True
    return FirmBatch(torch.tensor(zs), torch.ones(len(hs)), h, torch.ones(len(hs), n_max), mask)


def _congested(p: EconomyParams, kappa: float = 0.05):
    """V = Σ U + (F − κ n²)/r: hire surpluses of both signs, none of them a round number."""

    def fn(z, q, h, a, mask):
        n = mask.sum(-1).to(h.dtype)
        h_eta = torch.where(mask, h.clamp_min(1e-30) ** p.eta, torch.zeros_like(h)).sum(-1)
        f = torch.where(h_eta > 0, z * h_eta.clamp_min(1e-300) ** (1 / p.eta), torch.zeros_like(z))
        return p.unemployment_coef * torch.where(mask, h, torch.zeros_like(h)).sum(-1) + (f - kappa * n * n) / (
            p.outflow_rate
        )

    return SetFunctionValue(fn)


def test_a_worker_whose_match_ends_goes_to_any_poacher_with_a_positive_surplus():
    """Row 1 of the table: Δ_k < 0 ends the match; the worker goes to the poacher iff Δ_p > 0 (however
    small) and the poacher is below the cap; T = U either way."""
    U = torch.full((5,), 2.0)
    W = torch.full((5,), 2.1)
    delta_p = torch.tensor([0.3, 1e-6, 0.0, -0.1, 0.3])
    full = torch.tensor([False, False, False, False, True])
    event, target = meeting_outcome(W, U, torch.full((5,), -0.2), delta_p, full)
    poached, separate = int(Reset.POACHED), int(Reset.SEPARATE)
    assert event.tolist() == [poached, poached, separate, separate, separate]
    assert torch.equal(target, U)


def test_initial_wage_range_is_the_documented_one():
    """Between b h and the flow marginal product F(S) − F(S⊖x_i) (ordered, at least 0.5 b h wide), widened
    by ``margin`` times its width; with the surplus Δ also down to b h − ψ^E Δ⁺ and up to b h + r̄ Δ⁺
    (r̄ = ρ + δ_f + δ_r + δ_m). Workers below and above h = 1, alone and with coworkers."""
    p = EconomyParams(n_max=3, eta=0.7, b=0.4, psi_e=1.3)
    hs, zs = [[0.6], [1.7, 0.5], [0.8, 1.2, 2.0], [3.0]], [0.2, 1.5, 1.0, 0.5]
    s = _firms(hs, zs)
    margin = 0.15
    delta = torch.tensor([[0.3, 0.0, 0.0], [-0.4, 2.0, 0.0], [0.05, 1.0, 0.7], [0.0, 0.0, 0.0]])
    r_bar = p.rho + p.delta_f + p.delta_r + p.delta_m
    assert p.outflow_rate == pytest.approx(r_bar, rel=1e-15)

    def prod(z, row):
        return z * sum(h**p.eta for h in row) ** (1 / p.eta) if row else 0.0

    lo, hi = initial_wage_range(p, s, margin)
    lo_d, hi_d = initial_wage_range(p, s, margin, delta)
    cases = {"flow": 0, "lo<bh": 0, "0.5bh binds": 0}
    for k, (row, z) in enumerate(zip(hs, zs)):
        for i, h in enumerate(row):
            mp = prod(z, row) - prod(z, row[:i] + row[i + 1 :])
            bh = p.b * h
            for with_delta, (got_lo, got_hi) in ((False, (lo, hi)), (True, (lo_d, hi_d))):
                a, b = min(bh, mp), max(bh, mp)
                if with_delta:
                    d = max(float(delta[k, i]), 0.0)
                    a, b = min(a, bh - p.psi_e * d), max(b, bh + r_bar * d)
                cases["lo<bh"] += a < bh
                cases["0.5bh binds"] += b < a + 0.5 * bh
                b = max(b, a + 0.5 * bh)
                width = b - a
                assert float(got_lo[k, i]) == pytest.approx(a - margin * width, rel=1e-12, abs=1e-14), (k, i)
                assert float(got_hi[k, i]) == pytest.approx(b + margin * width, rel=1e-12, abs=1e-14), (k, i)
            cases["flow"] += 1
    assert cases["lo<bh"] > 0 and cases["0.5bh binds"] > 0  # both orders and the minimum width occur


def test_one_meeting_draw_carries_the_whole_meeting_rate():
    """The hire rate of a draw set is ω s (n + 1) / M per hiring draw: one draw carries all of ω s^N (n + 1),
    exactly as two copies of it together."""
    p = EconomyParams(n_max=4, eta=0.8)
    vf = _congested(p)
    s = _firms([[1.0], [0.7, 1.3], [1.1, 0.9, 1.2]], [1.0, 1.4, 0.8], n_max=4)
    rates = MeetingRates(1.2, 0.3, 0.7)
    one = MeetingDraws(torch.tensor([1.1]), torch.tensor([1.0]), torch.tensor([0.9]), torch.tensor([1.0]),
                       torch.tensor([-5.0]))  # fmt: skip
    two = MeetingDraws(*(x.repeat(2) for x in (one.h_n, one.a_n, one.h_e, one.a_e, one.delta_p)))
    p0 = EconomyParams(n_max=4, eta=0.8, psi_e=0.0)
    t1 = wage_v_terms(vf, p0, s, rates, one, None)
    t2 = wage_v_terms(vf, p0, s, rates, two, None)
    assert (t1.hire_rate > 0).all()  # every firm hires both draws (a poacher worth −5 loses every worker)
    n1 = s.size().double() + 1.0
    torch.testing.assert_close(t1.hire_rate[:, 0], rates.omega * rates.s_n * n1, rtol=1e-12, atol=0)
    torch.testing.assert_close(t1.hire_rate[:, 1], rates.omega * rates.s_e * n1, rtol=1e-12, atol=0)
    torch.testing.assert_close(t2.hire_rate[:, :2].sum(-1), t1.hire_rate[:, 0], rtol=1e-12, atol=0)
    torch.testing.assert_close(t2.hire_rate[:, 2:].sum(-1), t1.hire_rate[:, 1], rtol=1e-12, atol=0)


def test_one_poacher_draw_is_read_like_any_other():
    """Δ(S_p⊕x_i, x_i) of a single poacher is the column of that poacher among several."""
    p = EconomyParams(n_max=3, eta=0.8)
    vf = _congested(p)
    s = _firms([[1.0, 0.6], [1.3]], [1.0, 1.5])
    poachers = _firms([[0.9], [], [1.1, 1.2]], [1.2, 2.0, 0.7])
    all_three = poacher_hire_surplus(vf, p, s, poachers)
    for j in range(3):
        alone = poacher_hire_surplus(vf, p, s, poachers.index(torch.tensor([j])))
        assert alone.shape == (2, 3, 1)
        torch.testing.assert_close(alone[..., 0], all_three[..., j], rtol=1e-12, atol=0)
    assert (all_three[s.mask] != 0).all()


def test_scale_free_w_residual_with_a_second_draw_is_the_mean_product():
    """sqrt|mean(R₁R₂)| / RMS(ρW) over real workers only (padding holds garbage on purpose)."""
    r1 = torch.tensor([[0.02, 0.01, 9.0]])
    r2 = torch.tensor([[0.01, 0.03, -7.0]])
    W = torch.tensor([[10.0, 20.0, 5.0]])
    mask = torch.tensor([[True, True, False]])
    got = scale_free_w_residual(r1, W, mask, 0.05, r2)
    want = math.sqrt((0.02 * 0.01 + 0.01 * 0.03) / 2) / math.sqrt((0.5**2 + 1.0**2) / 2)
    assert float(got) == pytest.approx(want, rel=1e-12)
    # one real worker: the means are over one worker
    one = torch.tensor([[True, False, False]])
    assert float(scale_free_w_residual(r1, W, one, 0.05, r2)) == pytest.approx(math.sqrt(0.0002) / 0.5, rel=1e-12)
    assert float(scale_free_w_residual(r1, W, one, 0.05)) == pytest.approx(0.02 / 0.5, rel=1e-12)
