"""The W residual (MODEL.md section 5): closed-form oracles in degenerate economies, and every term
against a slow per-worker Python loop."""

import math

import pytest
import torch

from lotj.economy.firms import FirmBatch
from lotj.economy.hjb import MeetingDraws
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.value import SetFunctionValue
from lotj.economy.wages import scale_free_w_residual, w_residual, w_residual_from_terms, wage_v_terms
from lotj.economy.worker_value import SetFunctionWorkerValue

NO_MEETINGS = MeetingRates(0.0, 0.0, 0.0)


def _params(**kw) -> EconomyParams:
    base = dict(rho=0.05, delta_r=0.0, delta_f=0.0, delta_m=0.127, lam=0.0, gamma_e=0.0, psi_e=0.0, psi_n=0.0, b=0.141)
    base.update(kw)
    return EconomyParams(**base)


def _lone(h, z, n_max=3, q=1.0, a=1.0):
    """Firms with one worker each (slot 0): h, z are lists."""
    b = len(h)
    hh = torch.ones(b, n_max)
    hh[:, 0] = torch.tensor(h)
    aa = torch.ones(b, n_max)
    aa[:, 0] = a
    mask = torch.zeros(b, n_max, dtype=torch.bool)
    mask[:, 0] = True
    return FirmBatch(torch.tensor(z), torch.full((b,), q), hh, aa, mask)


def _wages(s, w):
    out = torch.zeros_like(s.h)
    out[:, 0] = torch.tensor(w)
    return out


def _lone_value(p):
    """V(S) = (z h + δ_m U)/(ρ + δ_m) for one worker, 0 for an empty firm (only ρ, δ_m, λ active, Δ ≥ 0)."""

    def fn(z, q, h, a, mask):
        h1 = torch.where(mask, h, torch.zeros_like(h)).sum(-1)
        n = mask.sum(-1)
        v1 = (z * h1 + p.delta_m * p.unemployment_coef * h1) / (p.rho + p.delta_m)
        return torch.where(n == 1, v1, torch.zeros_like(v1))

    return SetFunctionValue(fn)


def _plain_w(formula):
    """A worker value that depends on the worker's own (h, a, w) and the firm's q only."""
    return SetFunctionWorkerValue(lambda hi, ai, wi, z, q, h, a, m: formula(hi, ai, wi, q))


# ----------------------------------------------------------------------------------- oracles


def test_oracle_rho_delta_m_only():
    """Only ρ and δ_m: U = b h/ρ and W = (w + δ_m U)/(ρ + δ_m) for a lone worker."""
    p = _params()
    s = _lone([0.8, 1.3, 2.0], [1.2, 0.7, 1.0])
    w = _wages(s, [0.05, 0.5, 3.0])
    u = p.b / p.rho
    wf = _plain_w(lambda h, a, w, q: (w + p.delta_m * u * h) / (p.rho + p.delta_m))
    r, W = w_residual(wf, _lone_value(p), p, s, w, NO_MEETINGS, None, None)
    assert r[:, 0].abs().max() < 1e-12 * W[:, 0].abs().max()
    assert (r[:, 1:] == 0).all()  # padding
    # a wrong W leaves a residual
    wrong = _plain_w(lambda h, a, w, q: (w + p.delta_m * u * h) / (p.rho + p.delta_m) * 1.01)
    r_bad, _ = w_residual(wrong, _lone_value(p), p, s, w, NO_MEETINGS, None, None)
    assert (r_bad[:, 0].abs() > 1e-4).all()


def _lone_lambda_oracle(p, h, z, w):
    """Only ρ, δ_m, λ; lone worker with V = (z h + δ_m U)/(ρ + δ_m), so U + Δ = (z h + δ_m U)/(ρ + δ_m).
    Inside the bargaining set (b h ≤ w ≤ z h) W = (w + δ_m U)/(ρ + δ_m); below, renegotiation raises
    the value to U, above it cuts it to U + Δ: W = (w + δ_m U + λ T)/(ρ + δ_m + λ)."""
    u = p.b * h / p.rho
    top = (z * h + p.delta_m * u) / (p.rho + p.delta_m)
    if w < p.b * h:
        return (w + p.delta_m * u + p.lam * u) / (p.rho + p.delta_m + p.lam)
    if w > z * h:
        return (w + p.delta_m * u + p.lam * top) / (p.rho + p.delta_m + p.lam)
    return (w + p.delta_m * u) / (p.rho + p.delta_m)


def test_oracle_adding_lambda():
    p = _params(lam=1.0)
    h, z = 1.3, 1.1  # b h = 0.1833, z h = 1.43
    wages = [0.05, 0.1833, 0.19, 0.8, 1.43, 1.5, 3.0]
    s = _lone([h] * len(wages), [z] * len(wages))
    w = _wages(s, wages)
    oracle = torch.tensor([_lone_lambda_oracle(p, h, z, x) for x in wages])

    def table(hi, ai, wi, q):  # the oracle as a function of w (h and z are fixed here)
        return torch.stack([torch.tensor(_lone_lambda_oracle(p, h, z, float(x))) for x in wi])

    r, W = w_residual(_plain_w(table), _lone_value(p), p, s, w, NO_MEETINGS, None, None)
    assert torch.allclose(W[:, 0], oracle, rtol=1e-14)
    assert r[:, 0].abs().max() < 1e-12 * oracle.abs().max()
    # the λ-free formula is the answer exactly inside b h ≤ w ≤ z h and leaves λ Q outside
    u = p.b * h / p.rho
    plain = _plain_w(lambda hi, ai, wi, q: (wi + p.delta_m * p.b * hi / p.rho) / (p.rho + p.delta_m))
    r2, W2 = w_residual(plain, _lone_value(p), p, s, w, NO_MEETINGS, None, None)
    inside = torch.tensor([p.b * h <= x <= z * h for x in wages])
    assert r2[inside, 0].abs().max() < 1e-12
    top = (z * h + p.delta_m * u) / (p.rho + p.delta_m)
    q_expected = torch.where(W2[:, 0] < u, u - W2[:, 0], top - W2[:, 0])
    assert torch.allclose(r2[~inside, 0], p.lam * q_expected[~inside], rtol=1e-12)


def test_oracle_counter_offers_lone_worker():
    """ρ, δ_m, λ and ψ^E; every poacher offers Δ_p ∈ (0, Δ_k). The value solves, region by region,
    ρW = w + δ_m(U − W) + λ(T_Q − W) + ψ^E(T_P − W) with the targets written out by hand:
    W < U: T_Q = U, T_P = U + Δ_p; U ≤ W < U + Δ_p: T_Q = W, T_P = U + Δ_p (counter-offer);
    U + Δ_p ≤ W ≤ U + Δ_k: T_Q = T_P = W; W > U + Δ_k: T_Q = T_P = U + Δ_k."""
    p = _params(lam=0.7, psi_e=1.048)
    r_v = 0.3
    h, z, z_p = 1.2, 1.5, 0.6

    def v_fn(z_, q_, h_, a_, mask_):  # V = F/r_v + Σ U with linear production
        hs = torch.where(mask_, h_, torch.zeros_like(h_)).sum(-1)
        return z_ * hs / r_v + p.unemployment_coef * hs

    u = p.b * h / p.rho
    dk, dp = z * h / r_v, z_p * h / r_v

    def oracle(w):
        cands = [
            ((w + p.delta_m * u + p.lam * u + p.psi_e * (u + dp)) / (p.rho + p.delta_m + p.lam + p.psi_e), -1e9, u),
            ((w + p.delta_m * u + p.psi_e * (u + dp)) / (p.rho + p.delta_m + p.psi_e), u, u + dp),
            ((w + p.delta_m * u) / (p.rho + p.delta_m), u + dp, u + dk),
            ((w + p.delta_m * u + (p.lam + p.psi_e) * (u + dk)) / (p.rho + p.delta_m + p.lam + p.psi_e), u + dk, 1e9),
        ]
        hits = [c for c, lo, hi in cands if lo <= c <= hi]
        assert hits, w
        return hits[0]

    wages = [-0.5, 0.0, 0.17, 0.4, 0.9, 1.5, 1.79, 2.5, 6.0]
    values = [oracle(x) for x in wages]
    assert all(b > a for a, b in zip(values, values[1:]))  # increasing in w
    s = _lone([h] * len(wages), [z] * len(wages))
    w = _wages(s, wages)
    wf = _plain_w(lambda hi, ai, wi, q: torch.stack([torch.tensor(oracle(float(x))) for x in wi]))
    poachers = FirmBatch.empty(torch.full((4,), z_p), torch.ones(4), 3)
    r, W = w_residual(wf, SetFunctionValue(v_fn), p, s, w, NO_MEETINGS, None, poachers)
    assert r[:, 0].abs().max() < 1e-12 * max(abs(v) for v in values)
    # the region below U + Δ_p really is a counter-offer region: dropping ψ^E breaks the identity there
    p0 = _params(lam=0.7, psi_e=0.0)
    r0, _ = w_residual(wf, SetFunctionValue(v_fn), p0, s, w, NO_MEETINGS, None, None)
    assert (r0[:3, 0].abs() > 1e-3).all()


def _random_firms(g, count, n_max, p_fill=0.6, z=None, full_rows=()):
    h = torch.exp(0.3 * torch.randn(count, n_max, generator=g))
    a = torch.exp(0.01 * torch.randn(count, n_max, generator=g))
    mask = torch.rand(count, n_max, generator=g) < p_fill
    mask[:, 0] = True
    for k in full_rows:
        mask[k] = True
    z_ = torch.exp(0.3 * torch.randn(count, generator=g)) if z is None else z
    q = torch.exp(-0.016 + 0.013 * torch.randn(count, generator=g))
    return FirmBatch(z_, q, torch.where(mask, h, 1.0), torch.where(mask, a, 1.0), mask)


def test_oracle_all_rates_coworker_free():
    """Every rate active, θ± = 0: with wages inside the bargaining set and every outside offer below the
    current value, W_i = w_i/r + β_i h_i, r = ρ + δ_f + δ_m + δ_r, β_i = (δ_f + δ_m) u / (r − γ^E(a_i q − 1)),
    u = b/(ρ + δ_r), solves the W equation for any firm (W then ignores coworkers)."""
    p = _params(
        delta_r=0.05,
        delta_f=0.01,
        lam=1.0,
        gamma_e=1.0,
        psi_e=1.048,
        psi_n=0.3,
        theta_plus=0.0,
        theta_minus=0.0,
        n_max=4,
    )
    g = torch.Generator().manual_seed(3)
    s = _random_firms(g, 6, 4, z=torch.full((6,), 2.0), full_rows=(1,))
    r_v = 0.4

    def v_fn(z, q, h, a, mask):  # V = F/r_v + Σ U: Δ(S, x_i) = marginal product / r_v > 0
        hs = torch.where(mask, h.pow(p.eta), torch.zeros_like(h)).sum(-1)
        f = torch.where(hs > 0, z * hs.clamp_min(1e-30).pow(1 / p.eta), torch.zeros_like(hs))
        return f / r_v + p.unemployment_coef * torch.where(mask, h, torch.zeros_like(h)).sum(-1)

    vf = SetFunctionValue(v_fn)
    poachers = _random_firms(g, 5, 4, z=torch.full((5,), 0.05), full_rows=(2,))
    draws = MeetingDraws(
        torch.tensor([0.9, 1.3]),
        torch.tensor([1.0, 1.01]),
        torch.tensor([1.1]),
        torch.tensor([0.99]),
        torch.tensor([0.2]),
    )
    rates = MeetingRates(0.8, 0.3, 0.7)
    terms = wage_v_terms(vf, p, s, rates, draws, poachers)
    assert (terms.delta[s.mask] > 0).all() and terms.hire_rate.gt(0).any()
    rr = p.rho + p.delta_f + p.delta_m + p.delta_r
    u = p.unemployment_coef

    def beta(a, q):
        return (p.delta_f + p.delta_m) * u / (rr - p.gamma_e * (a * q - 1.0))

    # aim at the middle of [U + max_p Δ_p, U + Δ_k]
    low = terms.delta_p.clamp_min(0).amax(-1)
    assert (low < terms.delta)[s.mask].all()
    target = u * s.h + 0.5 * (low + terms.delta)
    w = rr * (target - beta(s.a, s.q.unsqueeze(-1)) * s.h)
    wf = _plain_w(lambda hi, ai, wi, q: wi / rr + beta(ai, q) * hi)
    r, W = w_residual_from_terms(wf, p, s, w, terms)
    assert r.abs().max() < 1e-12 * W[s.mask].abs().max()
    assert scale_free_w_residual(r, W, s.mask, p.rho) < 1e-12


# ----------------------------------------------------------------- against a per-worker loop

N_MAX = 4


def _v_list(p, z, q, hs):
    """A V with mixed-sign surpluses: F/r_v + Σ U − κ n² + 0.2 z log(1 + Σ h) (python floats)."""
    if not hs:
        return 0.3 * z
    f = z * sum(x**p.eta for x in hs) ** (1 / p.eta)
    n = len(hs)
    return f / 0.35 + p.unemployment_coef * sum(hs) - 0.6 * n * n + 0.2 * z * math.log1p(sum(hs)) + 0.3 * z


def _v_tensor(p):
    def fn(z, q, h, a, mask):
        hm = torch.where(mask, h, torch.zeros_like(h))
        he = torch.where(mask, h.clamp_min(1e-30).pow(p.eta), torch.zeros_like(h)).sum(-1)
        f = torch.where(he > 0, z * he.clamp_min(1e-30).pow(1 / p.eta), torch.zeros_like(he))
        n = mask.sum(-1).to(h.dtype)
        v = f / 0.35 + p.unemployment_coef * hm.sum(-1) - 0.6 * n * n + 0.2 * z * torch.log1p(hm.sum(-1)) + 0.3 * z
        return torch.where(n > 0, v, 0.3 * z)

    return fn


def _w_list(p, hi, ai, wi, z, q, hs, as_):
    """A worker value that depends on coworkers and nonlinearly on w (python floats)."""
    co = sum(math.log(x) * y for x, y in zip(hs, as_)) / (1 + len(hs))
    return (
        p.unemployment_coef * hi
        + (wi - p.b * hi) / 0.3
        + 0.4 * math.tanh(wi) * z
        + 0.7 * hi * co
        + 0.05 * len(hs) * q
        + 0.1 * ai * math.log(hi)
    )


def _w_tensor(p):
    def fn(hi, ai, wi, z, q, h, a, mask):
        lh = torch.where(mask, torch.log(h) * a, torch.zeros_like(h)).sum(-1)
        n_co = mask.sum(-1).to(h.dtype)
        co = lh / (1 + n_co)
        return (
            p.unemployment_coef * hi
            + (wi - p.b * hi) / 0.3
            + 0.4 * torch.tanh(wi) * z
            + 0.7 * hi * co
            + 0.05 * n_co * q
            + 0.1 * ai * torch.log(hi)
        )

    return fn


def _learn_list(p, q, hs, as_):
    n = len(hs)
    out = []
    for i, hi in enumerate(hs):
        g = math.log(as_[i]) + math.log(q)
        if n > 1:
            up = sum(math.log(hj / hi) for hj in hs if hj > hi)
            down = sum(math.log(hj / hi) for hj in hs if hj < hi)
            g += (p.theta_plus * up + p.theta_minus * down) / (n - 1)
        out.append(hi * math.exp(g))
    return out


def _loop_residual(p, rates, firms, wages, firm_ids, unmatched, employed, poachers, poacher_ids):
    """The W residual of MODEL.md section 5 worker by worker, with lists and if-statements."""
    u = p.unemployment_coef
    out = []
    for k, (z, q, hs, as_) in enumerate(firms):
        n = len(hs)
        v_s = _v_list(p, z, q, hs)
        delta = [v_s - _v_list(p, z, q, hs[:j] + hs[j + 1 :]) - u * hs[j] for j in range(n)]
        hs_learn = _learn_list(p, q, hs, as_)
        row = []
        for i in range(n):
            hi, ai, wi = hs[i], as_[i], wages[k][i]
            ui = u * hi

            def W_at(hs_set, as_set, i_pos, hi_=hi, ai_=ai, wi_=wi, z_=z, q_=q):
                co_h = [x for j, x in enumerate(hs_set) if j != i_pos]
                co_a = [x for j, x in enumerate(as_set) if j != i_pos]
                return _w_list(p, hi_, ai_, wi_, z_, q_, co_h, co_a)

            W0 = W_at(hs, as_, i)
            rhs = wi
            rhs += p.gamma_e * (
                _w_list(p, hs_learn[i], ai, wi, z, q, hs_learn[:i] + hs_learn[i + 1 :], as_[:i] + as_[i + 1 :]) - W0
            )
            rhs += p.delta_f * (ui - W0)
            # coworkers leave
            for j in range(n):
                if j == i:
                    continue
                hs_m = hs[:j] + hs[j + 1 :]
                as_m = as_[:j] + as_[j + 1 :]
                W_minus = W_at(hs_m, as_m, i if i < j else i - 1)
                rate = p.delta_r + p.delta_m
                if delta[j] < 0:
                    rate += p.lam
                leave = 0
                for (zp, qp, hp, _ap), pid in zip(poachers, poacher_ids):
                    no_offer = len(hp) >= p.n_max or pid == firm_ids[k]
                    d_p = _v_list(p, zp, qp, hp + [hs[j]]) - _v_list(p, zp, qp, hp) - u * hs[j]
                    if delta[j] < 0 or (not no_offer and d_p - max(delta[j], 0.0) > 0):
                        leave += 1
                rate += p.psi_e * leave / len(poachers)
                rhs += rate * (W_minus - W0)
            # coworkers arrive
            if n < p.n_max:
                for hm, am in unmatched:
                    if _v_list(p, z, q, hs + [hm]) - v_s - u * hm > 0:
                        w_plus = W_at(hs + [hm], as_ + [am], i)
                        rhs += (n + 1) * rates.omega * rates.s_n / len(unmatched) * (w_plus - W0)
                for hm, am, d_own, fid in employed:
                    b = max(_v_list(p, z, q, hs + [hm]) - v_s - u * hm - max(d_own, 0.0), 0.0)
                    if b > 0 and fid != firm_ids[k]:
                        w_plus = W_at(hs + [hm], as_ + [am], i)
                        rhs += (n + 1) * rates.omega * rates.s_e / len(employed) * (w_plus - W0)
            rhs += p.delta_m * (ui - W0) - p.delta_r * W0
            # own renegotiation
            if delta[i] < 0:
                Q = ui - W0
            elif W0 < ui:
                Q = ui - W0
            elif W0 > ui + delta[i]:
                Q = ui + delta[i] - W0
            else:
                Q = 0.0
            rhs += p.lam * Q
            # own outside meetings
            P_sum = 0.0
            for (zp, qp, hp, _ap), pid in zip(poachers, poacher_ids):
                no_offer = len(hp) >= p.n_max or pid == firm_ids[k]
                d_p = _v_list(p, zp, qp, hp + [hi]) - _v_list(p, zp, qp, hp) - ui
                if delta[i] < 0:
                    P = ui - W0
                elif no_offer:
                    P = 0.0
                elif delta[i] < d_p:
                    P = delta[i] + ui - W0
                elif W0 > delta[i] + ui:
                    P = delta[i] + ui - W0
                elif W0 < max(d_p, 0.0) + ui:
                    P = max(d_p, 0.0) + ui - W0
                else:
                    P = 0.0
                P_sum += P
            rhs += p.psi_e * P_sum / len(poachers)
            row.append(rhs - p.rho * W0)
        out.append(row)
    return out


def _to_lists(s):
    firms = []
    for k in range(s.batch_size):
        m = s.mask[k]
        firms.append((float(s.z[k]), float(s.q[k]), s.h[k][m].tolist(), s.a[k][m].tolist()))
    return firms


@pytest.mark.parametrize("n_max", [2, N_MAX])  # two workers: one coworker each (an off-by-one in n shows)
def test_vectorised_residual_matches_the_loop(n_max):
    p = _params(
        delta_r=0.05,
        delta_f=0.02,
        lam=1.0,
        gamma_e=1.0,
        psi_e=1.048,
        psi_n=0.314,
        theta_plus=0.165,
        theta_minus=0.034,
        n_max=n_max,
    )
    g = torch.Generator().manual_seed(11)
    s = _random_firms(g, 7, n_max, full_rows=(2, 5))
    assert (s.size() == n_max).any() and (s.size() < n_max).any()
    w = torch.where(s.mask, 0.2 + 1.2 * torch.rand(s.h.shape, generator=g), 0.0)
    firm_id = torch.arange(7)
    poachers = _random_firms(g, 5, n_max, full_rows=(1,))
    poachers.z[2] = 4.0  # a productive poacher: it would poach firm 1's workers, but it is firm 1 itself
    poacher_id = torch.tensor([10, 11, 1, 12, 13])  # so the meeting is void for firm 1
    h_n = torch.exp(0.3 * torch.randn(3, generator=g))
    a_n = torch.ones(3)
    h_e = torch.exp(0.3 * torch.randn(3, generator=g))
    a_e = torch.ones(3) * 1.005
    delta_e = torch.tensor([-0.5, 0.3, 4.0])
    firm_e = torch.tensor([0, 20, 4])  # draws from firms 0 and 4 are void for those firms
    draws = MeetingDraws(h_n, a_n, h_e, a_e, delta_e, firm_e)
    rates = MeetingRates(1.3, 0.35, 0.65)
    vf = SetFunctionValue(_v_tensor(p))
    wf = SetFunctionWorkerValue(_w_tensor(p))
    terms = wage_v_terms(vf, p, s, rates, draws, poachers, firm_id, poacher_id)
    # the test economy of four seats exercises every branch: negative and positive surpluses, hires and
    # non-hires, poachers better and worse than the own firm (two seats leave every surplus positive)
    d = terms.delta[s.mask]
    assert (d > 0).any() and ((d < 0).any() or n_max == 2)
    assert (terms.hire_rate > 0).any() and (terms.hire_rate[~(s.size() == n_max)] == 0).any()
    assert (terms.delta_p > terms.delta.unsqueeze(-1)).any() and (terms.delta_p < terms.delta.unsqueeze(-1)).any()
    r, _ = w_residual_from_terms(wf, p, s, w, terms)
    # the one-call form passes every argument on: the draws, the poachers and both firm identities
    r_direct, _ = w_residual(wf, vf, p, s, w, rates, draws, poachers, firm_id, poacher_id)
    assert torch.equal(r_direct, r)

    wages = [w[k][s.mask[k]].tolist() for k in range(7)]
    unmatched = list(zip(h_n.tolist(), a_n.tolist()))
    employed = list(zip(h_e.tolist(), a_e.tolist(), delta_e.tolist(), firm_e.tolist()))
    loop = _loop_residual(
        p, rates, _to_lists(s), wages, firm_id.tolist(), unmatched, employed, _to_lists(poachers), poacher_id.tolist()
    )
    for k in range(7):
        got = r[k][s.mask[k]]
        assert torch.allclose(got, torch.tensor(loop[k]), rtol=1e-10, atol=1e-10), (k, got, loop[k])
    assert (r[~s.mask] == 0).all()


def test_psi_e_needs_poachers():
    p = _params(psi_e=1.0)
    s = _lone([1.0], [1.0])
    with pytest.raises(ValueError, match="poacher"):
        w_residual(_plain_w(lambda h, a, w, q: w), _lone_value(p), p, s, _wages(s, [0.5]), NO_MEETINGS, None, None)


def test_noise_dominated_w_residual_never_reads_zero():
    """Two independent residual draws of opposite sign give a negative mean R₁R₂: the metric reads
    its magnitude (the noise level), not 0, so it cannot pass a tolerance by accident."""
    from lotj.economy.wages import scale_free_w_residual

    r1 = torch.tensor([[0.02, -0.01]])
    r2 = torch.tensor([[-0.02, 0.01]])
    W = torch.tensor([[10.0, 10.0]])
    mask = torch.tensor([[True, True]])
    got = scale_free_w_residual(r1, W, mask, 0.05, r2)
    # mean R₁R₂ = -(0.0004 + 0.0001)/2 = -0.00025 ; RMS(ρW) = 0.5
    assert torch.isclose(got, torch.tensor(0.00025**0.5 / 0.5))
