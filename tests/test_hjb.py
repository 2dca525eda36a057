"""The V residual of MODEL.md section 4 (lotj.economy.hjb).

- Oracles: in degenerate economies with a known V, the exact V makes the residual vanish:
  (a) only ρ and production: V = F/ρ; (b) plus firm death with δ_r = 0: V = (F + δ_f ΣU)/(ρ + δ_f);
  (c) only ρ and γ^E: V = Σ_k γ^k F(H^k S)/(ρ+γ)^(k+1) (and its n = 1 closed form). Rates not named are
  zero, so the no-meeting rule gives ω = s^N = s^E = 0.
- An independent per-firm Python loop of the whole equation (every rate non-zero, the size cap binding
  for some firms, void meetings) agrees with the vectorised residual term by term.
- The unbiased squared residual: E[R₁R₂] is the square of the exact-expectation residual, E[R₁²] is not;
  stratified draws are unbiased.
"""

from __future__ import annotations

import math

import pytest
import torch

from lotj.economy.firms import FirmBatch
from lotj.economy.hjb import MeetingDraws, learned, make_draws, scale_free_residual, v_residual
from lotj.economy.params import EconomyParams, MeetingRates, meeting_rates
from lotj.economy.technology import production
from lotj.economy.value import SetFunctionValue
from lotj.sim.distributions import EconomySnapshot
from lotj.sim.meeting_draws import sample_draws

F64 = torch.float64

RATES = ("delta_r", "delta_f", "delta_m", "lam", "gamma_e", "psi_e", "psi_n")


def quiet(**active) -> EconomyParams:
    """Every rate zero except those given (ρ defaults to 0.05)."""
    kw = {name: 0.0 for name in RATES}
    kw.update(rho=0.05, n_max=6, eta=0.9, b=0.2, theta_plus=0.3, theta_minus=0.1, mu_q=-0.05, mu_a=-0.05)
    kw.update(active)
    return EconomyParams(**kw).validate()


def random_firms(p: EconomyParams, count: int, seed: int, width: int | None = None) -> FirmBatch:
    """Firms of every size 0..n_max (cycled) with log-normal h, a, z, q; padding h = a = 1."""
    g = torch.Generator().manual_seed(seed)
    width = width or p.n_max
    n = torch.arange(count) % (p.n_max + 1)
    mask = torch.arange(width).unsqueeze(0) < n.unsqueeze(1)
    h = torch.exp(0.3 * torch.randn(count, width, generator=g, dtype=F64))
    a = torch.exp(-0.05 + 0.02 * torch.randn(count, width, generator=g, dtype=F64))
    z = torch.exp(0.3 * torch.randn(count, generator=g, dtype=F64))
    q = torch.exp(-0.05 + 0.02 * torch.randn(count, generator=g, dtype=F64))
    one = torch.ones_like(h)
    return FirmBatch(z, q, torch.where(mask, h, one), torch.where(mask, a, one), mask)


def no_meetings(p: EconomyParams) -> MeetingRates:
    rates = meeting_rates(p, employment_rate=0.7, mean_n_plus_one=4.0)
    assert (rates.omega, rates.s_n, rates.s_e) == (0.0, 0.0, 0.0)  # MODEL.md section 10
    return rates


def relative(res, p) -> float:
    return float((res.residual.abs() / (p.rho * res.value.abs()).clamp_min(1e-300)).max())


# ---------------------------------------------------------------------------- oracles
def test_oracle_production_only():
    p = quiet()
    s = random_firms(p, 28, seed=1)
    vf = SetFunctionValue(lambda z, q, h, a, mask: production(z, h, mask, p.eta) / p.rho)
    res = v_residual(vf, p, s, no_meetings(p))
    nonempty = s.size() > 0
    assert float(res.residual.abs().max()) < 1e-12
    assert relative(type(res)(res.residual[nonempty], res.value[nonempty]), p) < 1e-12
    # a wrong V is caught: 1% too high leaves a residual of -ρ V/100
    wrong = SetFunctionValue(lambda z, q, h, a, mask: 1.01 * production(z, h, mask, p.eta) / p.rho)
    bad = v_residual(wrong, p, s, no_meetings(p))
    assert torch.allclose(bad.residual, -0.01 * p.rho * bad.value / 1.01, rtol=1e-9, atol=1e-12)


def test_oracle_firm_death():
    p = quiet(delta_f=0.02, delta_r=0.0)
    s = random_firms(p, 28, seed=2)
    u = p.b / p.rho  # U = b h / ρ with δ_r = 0

    def v(z, q, h, a, mask):
        sum_u = u * torch.where(mask, h, torch.zeros_like(h)).sum(-1)
        return (production(z, h, mask, p.eta) + p.delta_f * sum_u) / (p.rho + p.delta_f)

    res = v_residual(SetFunctionValue(v), p, s, no_meetings(p))
    nonempty = s.size() > 0
    assert relative(type(res)(res.residual[nonempty], res.value[nonempty]), p) < 1e-12
    assert float(res.residual.abs().max()) < 1e-12
    assert float(res.terms["death"].abs().max()) > 1e-3  # the term is active


def learning_series(p: EconomyParams, terms: int):
    """V(S) = Σ_k γ^k F(H^k S) / (ρ+γ)^(k+1), summed numerically."""
    g, r = p.gamma_e, p.rho + p.gamma_e

    def v(z, q, h, a, mask):
        s = FirmBatch(z, q, h, a, mask)
        total = torch.zeros_like(z)
        for k in range(terms):
            total = total + (g**k) * production(s.z, s.h, s.mask, p.eta) / r ** (k + 1)
            s = learned(p, s)
        return total

    return v


def test_oracle_learning_closed_workforce():
    # a q < 1 on the whole support, so F(H^k S) shrinks and the series converges fast
    p = quiet(gamma_e=1.0)
    assert math.exp(p.max_log_aq()) < 1 + p.rho / p.gamma_e
    s = random_firms(p, 28, seed=3)
    v = learning_series(p, terms=1500)
    res = v_residual(SetFunctionValue(v), p, s, no_meetings(p))
    nonempty = s.size() > 0
    assert relative(type(res)(res.residual[nonempty], res.value[nonempty]), p) < 1e-10
    assert float(res.terms["learning"].abs().max()) > 1e-3
    # coworker learning matters: H is not a per-worker scaling for n > 1 (θ± ≠ 0)
    big = s.size() > 2
    hs = learned(p, s).h
    ratio = torch.where(s.mask, hs / s.h, torch.ones_like(hs))
    assert float((ratio.max(-1).values - ratio.min(-1).values)[big].min()) > 1e-4


def test_oracle_learning_lone_worker_closed_form():
    """For n = 1: V = F / (ρ + γ(1 − a q)), which the series reproduces."""
    p = quiet(gamma_e=1.0)
    s = random_firms(p, 14, seed=4)
    one = s.index(s.size() == 1)
    h1, a1 = one.h[:, 0], one.a[:, 0]
    closed = one.z * h1 / (p.rho + p.gamma_e * (1 - a1 * one.q))
    series = learning_series(p, terms=1500)(one.z, one.q, one.h, one.a, one.mask)
    assert torch.allclose(series, closed, rtol=1e-12)

    def v(z, q, h, a, mask):
        return z * h[:, 0] / (p.rho + p.gamma_e * (1 - a[:, 0] * q))

    res = v_residual(SetFunctionValue(v), p, one, no_meetings(p))
    assert relative(res, p) < 1e-12


# ------------------------------------------------- independent per-firm loop reference
P_LOOP = EconomyParams(
    rho=0.05,
    delta_r=0.04,
    delta_f=0.03,
    delta_m=0.1,
    lam=0.7,
    gamma_e=0.8,
    psi_e=0.9,
    psi_n=0.4,
    b=0.3,
    eta=0.85,
    theta_plus=0.2,
    theta_minus=0.05,
    mu_q=-0.05,
    mu_a=-0.05,
    n_max=4,
)
COEF = {"A": 6.0, "Q": 3.0, "C": 1.3, "D": 40.0, "E": 2.5}


def v_tensor(z, q, h, a, mask):
    """A test V with surpluses of both signs: ΣU + A z (Σh^η)^(1/η) + Q n log q − C n² + D Σ h log a + E z."""
    p, c = P_LOOP, COEF
    hm = torch.where(mask, h, torch.zeros_like(h))
    n = mask.sum(-1).to(h.dtype)
    sum_u = p.unemployment_coef * hm.sum(-1)
    log_a = torch.where(mask, torch.log(a), torch.zeros_like(a))
    return (
        sum_u
        + c["A"] * production(z, h, mask, p.eta)
        + c["Q"] * n * torch.log(q)
        - c["C"] * n**2
        + c["D"] * (hm * log_a).sum(-1)
        + c["E"] * z
    )


def v_python(z: float, q: float, workers: list[tuple[float, float]]) -> float:
    p, c = P_LOOP, COEF
    n = len(workers)
    total_eta = sum(h**p.eta for h, _ in workers)
    flow = z * total_eta ** (1 / p.eta) if n else 0.0
    return (
        p.unemployment_coef * sum(h for h, _ in workers)
        + c["A"] * flow
        + c["Q"] * n * math.log(q)
        - c["C"] * n * n
        + c["D"] * sum(h * math.log(a) for h, a in workers)
        + c["E"] * z
    )


def learn_python(q: float, workers):
    p = P_LOOP
    n = len(workers)
    out = []
    for h_i, a_i in workers:
        g = math.log(a_i) + math.log(q)
        if n > 1:
            up = sum(math.log(h_j / h_i) for h_j, _ in workers if h_j > h_i)
            down = sum(math.log(h_j / h_i) for h_j, _ in workers if h_j < h_i)
            g += (p.theta_plus * up + p.theta_minus * down) / (n - 1)
        out.append((h_i * math.exp(g), a_i))
    return out


def residual_python(z, q, workers, firm, rates, unmatched, employed):
    """MODEL.md section 4, one firm at a time. ``employed``: (h, a, S_p workers, z_p, q_p, firm_p)."""
    p = P_LOOP
    U = lambda h: p.b * h / (p.rho + p.delta_r)  # noqa: E731
    v = v_python(z, q, workers)
    n = len(workers)
    out = {"flow": (z * sum(h**p.eta for h, _ in workers) ** (1 / p.eta)) if n else 0.0}
    out["death"] = -p.delta_f * (v - sum(U(h) for h, _ in workers))
    out["learning"] = p.gamma_e * (v_python(z, q, learn_python(q, workers)) - v)
    sep, quits = 0.0, 0.0
    for i, (h_i, _) in enumerate(workers):
        v_minus = v_python(z, q, workers[:i] + workers[i + 1 :])
        sep += (p.delta_r + p.delta_m) * (v_minus - v) + p.delta_m * U(h_i)
        quits += (p.lam + p.psi_e) * max(-(v - v_minus - U(h_i)), 0.0)
    out["separation"], out["quits"] = sep, quits
    meet_n = meet_e = 0.0
    gains = []
    if n < p.n_max:
        for h, a in unmatched:
            meet_n += max(v_python(z, q, workers + [(h, a)]) - v - U(h), 0.0) / len(unmatched)
        for h, a, wp, zp, qp, fp in employed:
            if fp == firm:
                continue  # a void meeting
            rest = list(wp)
            rest.remove((h, a))
            delta_p = v_python(zp, qp, wp) - v_python(zp, qp, rest) - U(h)
            hire = v_python(z, q, workers + [(h, a)]) - v - U(h)
            gains.append(max(hire - max(delta_p, 0.0), 0.0))
            meet_e += gains[-1] / len(employed)
    out["meet_unmatched"] = (n + 1) * rates.omega * rates.s_n * meet_n
    out["meet_employed"] = (n + 1) * rates.omega * rates.s_e * meet_e
    return sum(out.values()) - p.rho * v, out, gains


def workers_of(s: FirmBatch, k: int):
    return [(float(s.h[k, i]), float(s.a[k, i])) for i in range(s.n_max) if bool(s.mask[k, i])]


def test_residual_matches_independent_loop():
    p = P_LOOP.validate()
    s = random_firms(p, 20, seed=5)
    economy = random_firms(p, 10, seed=6)  # the firms of the employed draws (ids 0..9)
    g = torch.Generator().manual_seed(7)
    h_n = torch.exp(0.3 * torch.randn(5, generator=g, dtype=F64))
    a_n = torch.exp(-0.05 + 0.02 * torch.randn(5, generator=g, dtype=F64))
    occupied = economy.mask.nonzero()
    pick = occupied[torch.randperm(occupied.shape[0], generator=g)[:6]]
    firm_e, slot = pick[:, 0], pick[:, 1]
    firm_id = torch.arange(20) % 10  # every state shares its id with one economy firm: some meetings are void
    rates = meeting_rates(p, employment_rate=0.6, mean_n_plus_one=3.5)

    vf = SetFunctionValue(v_tensor)
    draws = make_draws(vf, p, h_n, a_n, economy.index(firm_e), slot, firm_e)
    res = v_residual(vf, p, s, rates, draws, firm_id=firm_id)

    unmatched = list(zip(h_n.tolist(), a_n.tolist()))
    employed = []
    for f, sl in zip(firm_e.tolist(), slot.tolist()):
        wp = workers_of(economy, f)
        employed.append(
            (float(economy.h[f, sl]), float(economy.a[f, sl]), wp, float(economy.z[f]), float(economy.q[f]), f)
        )
    at_cap = s.size() == p.n_max
    assert bool(at_cap.any()) and bool((~at_cap).any())
    void = firm_id.unsqueeze(-1) == firm_e.unsqueeze(0)
    assert bool(void.any())
    signs = {"neg_surplus": False, "pos_B": False, "zero_B": False}
    for k in range(20):
        expect, terms, gains = residual_python(
            float(s.z[k]), float(s.q[k]), workers_of(s, k), int(firm_id[k]), rates, unmatched, employed
        )
        for name, value in terms.items():
            assert float(res.terms[name][k]) == pytest.approx(value, rel=1e-9, abs=1e-9), (k, name)
        assert float(res.residual[k]) == pytest.approx(expect, rel=1e-9, abs=1e-9)
        signs["neg_surplus"] |= terms["quits"] > 0
        signs["pos_B"] |= terms["meet_employed"] > 0
        signs["zero_B"] |= any(b == 0.0 for b in gains)
    assert all(signs.values()), signs  # the test exercises every branch
    assert float(res.terms["meet_unmatched"][at_cap].abs().max()) == 0.0  # MODEL.md section 10
    assert float(res.terms["meet_employed"][at_cap].abs().max()) == 0.0
    assert float(res.terms["quits"][at_cap].abs().max()) > 0.0  # quits do not depend on the cap


def test_meeting_terms_need_draws_only_with_meetings():
    p = P_LOOP
    s = random_firms(p, 6, seed=8)
    with pytest.raises(ValueError, match="no draws"):
        v_residual(SetFunctionValue(v_tensor), p, s, MeetingRates(0.5, 0.5, 0.5))
    res = v_residual(SetFunctionValue(v_tensor), p, s, MeetingRates(0.0, 0.0, 0.0))
    assert float(res.terms["meet_unmatched"].abs().max()) == 0.0


# -------------------------------------------------------------- unbiased squared residual
def small_economy(p: EconomyParams, seed: int) -> EconomySnapshot:
    firms = random_firms(p, 12, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    h = torch.exp(0.3 * torch.randn(15, generator=g, dtype=F64))
    a = torch.exp(-0.05 + 0.02 * torch.randn(15, generator=g, dtype=F64))
    return EconomySnapshot(firms, h, a)


def exact_draws(vf, p, snap: EconomySnapshot) -> MeetingDraws:
    """Every unmatched and every employed worker once: the exact expectation over the snapshot."""
    occ = snap.firms.mask.nonzero()
    return make_draws(vf, p, snap.unmatched_h, snap.unmatched_a, snap.firms.index(occ[:, 0]), occ[:, 1], occ[:, 0])


@pytest.mark.parametrize("stratified", [False, True])
def test_product_of_two_draw_sets_is_unbiased(stratified):
    p = P_LOOP
    snap = small_economy(p, seed=9)
    vf = SetFunctionValue(v_tensor)
    s = random_firms(p, 5, seed=10)
    s = s.index(s.size() < p.n_max)
    rates = meeting_rates(p, snap.employment_rate(), snap.mean_n_plus_one())
    exact = v_residual(vf, p, s, rates, exact_draws(vf, p, snap)).residual
    g = torch.Generator().manual_seed(11)
    kappa = p.gamma_e / p.outflow_rate
    prods, squares, means = [], [], []
    for _ in range(600):
        d1, d2 = (sample_draws(snap, 3, 3, g, stratified=stratified, kappa=kappa) for _ in range(2))
        m1 = make_draws(vf, p, d1.h_n, d1.a_n, d1.s_p, d1.slot, d1.firm_e)
        m2 = make_draws(vf, p, d2.h_n, d2.a_n, d2.s_p, d2.slot, d2.firm_e)
        res = v_residual(vf, p, s, rates, m1, m2)
        prods.append(res.residual * res.residual2)
        squares.append(res.residual**2)
        means.append(res.residual)
    prods, squares, means = torch.stack(prods), torch.stack(squares), torch.stack(means)
    se = prods.std(0) / math.sqrt(prods.shape[0])
    assert torch.all((prods.mean(0) - exact**2).abs() < 4 * se + 1e-9)  # unbiased for (E R)²
    assert torch.all((means.mean(0) - exact).abs() < 4 * means.std(0) / math.sqrt(600) + 1e-9)
    var = means.var(0)
    assert torch.all(squares.mean(0) - exact**2 > 0.5 * var)  # R₁² carries the Monte Carlo variance


def test_scale_free_residual_definition():
    r = torch.tensor([0.1, -0.2, 0.3])
    v = torch.tensor([10.0, 20.0, 30.0])
    rho = 0.05
    expect = math.sqrt((0.01 + 0.04 + 0.09) / 3) / math.sqrt((0.25 + 1.0 + 2.25) / 3)
    assert float(scale_free_residual(r, v, rho)) == pytest.approx(expect)
    r2 = torch.tensor([0.1, -0.2, -0.3])
    # mean R₁R₂ < 0 here (noise dominates): it reads at the noise level √|mean R₁R₂|, not 0
    expect2 = math.sqrt(abs((0.01 + 0.04 - 0.09) / 3)) / math.sqrt((0.25 + 1.0 + 2.25) / 3)
    assert expect2 > 0
    assert float(scale_free_residual(r, v, rho, r2)) == pytest.approx(expect2)
    # invariant to the units of value
    assert float(scale_free_residual(7 * r, 7 * v, rho)) == pytest.approx(expect)


class _Shifted:
    """V + t at the state itself only (removals and additions unshifted): ∂R/∂t = −diagonal."""

    def __init__(self, base, t):
        self.base, self.t = base, t

    def value(self, s):
        return self.base.value(s) + self.t

    def removal_values(self, s):
        return self.base.removal_values(s)

    def addition_values(self, s, h_new, a_new):
        return self.base.addition_values(s, h_new, a_new)


def test_diagonal_is_minus_the_derivative_in_own_value():
    p = P_LOOP
    s = random_firms(p, 15, seed=12)
    economy = random_firms(p, 6, seed=13)
    occ = economy.mask.nonzero()
    rates = meeting_rates(p, employment_rate=0.6, mean_n_plus_one=3.5)
    base = SetFunctionValue(v_tensor)
    h_n = torch.exp(0.3 * torch.randn(4, generator=torch.Generator().manual_seed(14), dtype=F64))
    draws = make_draws(base, p, h_n, torch.ones(4, dtype=F64), economy.index(occ[:, 0]), occ[:, 1], occ[:, 0])
    t = torch.zeros(15, dtype=F64, requires_grad=True)
    res = v_residual(_Shifted(base, t), p, s, rates, draws, detach_neighbours=True)
    (grad,) = torch.autograd.grad(res.residual.sum(), t)
    assert torch.allclose(-grad, res.diagonal, rtol=1e-12)
    assert bool((res.diagonal >= p.rho).all())
    # the semi-gradient residual is the same number as the full one
    full = v_residual(base, p, s, rates, draws)
    assert torch.allclose(full.residual, res.residual.detach(), rtol=1e-12, atol=1e-12)
