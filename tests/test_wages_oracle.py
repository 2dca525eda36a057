"""The frozen-state oracle of W (MODEL.md section 5; docs/wages.md) and the economics of the entry wage:
a lone worker's closed form, the Postel-Vinay–Robin entry wage ``b h − ψ^E E_Π[min{Δ_p⁺, Δ_k}]``, the
slope of W in the wage, and the training pieces built on them (wage range, per-worker loss scale)."""

import pytest
import torch

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.value import SetFunctionValue
from lotj.economy.wages import (
    frozen_state_value,
    frozen_state_values_from_terms,
    initial_wage_range,
    w_residual_from_terms,
    wage_v_terms,
    worker_residual_scale,
)

NO_MEETINGS = MeetingRates(0.0, 0.0, 0.0)


def _params(**kw) -> EconomyParams:
    base = dict(rho=0.05, delta_r=0.05, delta_f=0.001, delta_m=0.127, lam=1.0, gamma_e=0.0, psi_e=1.048, psi_n=0.0)
    base.update(kw)
    return EconomyParams(**base)


def test_lone_worker_closed_form_with_counter_offers():
    """ρ, δ_m, λ, ψ^E and every poacher offering Δ_p ∈ (0, Δ_k): the four linear regions written by hand
    (as in tests/test_wages_residual.py) against the bisection of the frozen-state equation."""
    p = _params(delta_r=0.0, delta_f=0.0, lam=0.7)
    u, dk, dp = 3.384, 6.0, 2.4
    r = p.rho + p.delta_m

    def oracle(w):
        cands = [
            ((w + p.delta_m * u + p.lam * u + p.psi_e * (u + dp)) / (r + p.lam + p.psi_e), -1e9, u),
            ((w + p.delta_m * u + p.psi_e * (u + dp)) / (r + p.psi_e), u, u + dp),
            ((w + p.delta_m * u) / r, u + dp, u + dk),
            ((w + p.delta_m * u + (p.lam + p.psi_e) * (u + dk)) / (r + p.lam + p.psi_e), u + dk, 1e9),
        ]
        return next(c for c, lo, hi in cands if lo <= c <= hi)

    wages = torch.tensor([-6.0, -2.5, 0.0, 0.17, 0.4, 0.9, 1.5, 2.5, 6.0])
    W = frozen_state_value(
        p,
        wages,
        torch.full_like(wages, u),
        torch.full_like(wages, dk),
        torch.full((9, 3), dp),
        torch.zeros(3, dtype=bool),
    )
    expected = torch.tensor([oracle(float(x)) for x in wages])
    assert torch.allclose(W, expected, rtol=1e-12, atol=1e-12)


def _lone_batch(h, z, n_max=4):
    b = len(h)
    hh = torch.ones(b, n_max)
    hh[:, 0] = torch.tensor(h)
    mask = torch.zeros(b, n_max, dtype=torch.bool)
    mask[:, 0] = True
    return FirmBatch(torch.tensor(z), torch.ones(b), hh, torch.ones(b, n_max), mask)


def _linear_value(p, r_v):
    def fn(z, q, h, a, mask):  # V = z Σh / r_v + Σ U: Δ(S⊕x, x) = z h / r_v
        hs = torch.where(mask, h, torch.zeros_like(h)).sum(-1)
        return z * hs / r_v + p.unemployment_coef * hs

    return SetFunctionValue(fn)


class _Frozen:
    """W = the frozen-state oracle of each worker, from fixed V terms (lone workers: only ``values`` is used)."""

    def __init__(self, p, terms):
        self.p, self.terms = p, terms

    def values(self, s, w):
        return torch.where(s.mask, frozen_state_values_from_terms(self.p, w, self.terms), torch.zeros_like(w))

    def removal_values(self, s, w):  # lone workers have no coworker pairs (masked out)
        return torch.zeros(*w.shape, w.shape[-1])

    def addition_values(self, s, w, h_new, a_new):  # no hires (ω = 0)
        return torch.zeros(*w.shape, h_new.shape[-1])


def _lone_setup(p):
    """Lone workers at firms with Δ_k ≈ 9 (as in the smoke economy) and poachers of every kind: below the
    worker's firm, above it (the worker moves), worthless (Δ_p < 0), and one at the cap (no offer)."""
    wages = [-12.0, -9.5, -8.0, -3.0, 0.14, 1.0, 2.2, 2.4, 5.0]
    s = _lone_batch([1.0] * len(wages), [2.5] * len(wages))
    w = torch.zeros_like(s.h)
    w[:, 0] = torch.tensor(wages)
    vf = _linear_value(p, r_v=0.28)
    zp = torch.tensor([2.1, 2.4, 3.0, -0.3, 2.6])
    hp = torch.ones(5, p.n_max)
    mp = torch.zeros(5, p.n_max, dtype=torch.bool)
    mp[4] = True  # at the cap
    poachers = FirmBatch(zp, torch.ones(5), hp, torch.ones(5, p.n_max), mp)
    terms = wage_v_terms(vf, p, s, NO_MEETINGS, None, poachers)
    return s, w, terms


def test_frozen_state_value_solves_the_lone_worker_residual():
    """γ^E = ω = 0: a lone worker's state changes only through its own events, so the oracle is the exact
    W and the residual of MODEL.md section 5 vanishes at every wage, in every bargaining region."""
    p = _params()
    s, w, terms = _lone_setup(p)
    r, W = w_residual_from_terms(_Frozen(p, terms), p, s, w, terms)
    assert r[:, 0].abs().max() < 1e-10 * W[:, 0].abs().max()
    assert (W[1:, 0] > W[:-1, 0]).all()  # increasing in the wage
    # the regions are all visited: below U, inside the set, above U + Δ
    u, dk = terms.u[0, 0], terms.delta[0, 0]
    assert W[0, 0] < u and W[-1, 0] > u + dk and ((W[:, 0] > u) & (W[:, 0] < u + dk)).any()


def test_entry_wage_is_the_postel_vinay_robin_wage():
    """A hire at W = U pays for the option value of its outside offers: the wage that delivers U is
    ``b h − ψ^E E_Π[min{Δ_p⁺, Δ_k}·(offer made)]``, negative when the surplus is large (the negative entry
    wages of the smoke run), and the slope of W in the wage just above U is ``1/(r̄ + ψ^E Pr(Δ_p > W − U))``."""
    p = _params()
    s, w, terms = _lone_setup(p)
    u, dk = terms.u[:1, 0], terms.delta[:1, 0]
    dp, no_offer = terms.delta_p[:1, 0], terms.no_offer[:1]
    open_ = (~no_offer).to(dp.dtype)
    gain = (torch.minimum(dp.clamp_min(0.0), dk.unsqueeze(-1)) * open_).mean(-1)
    w_entry = p.b * s.h[:1, 0] - p.psi_e * gain
    assert float(w_entry) < -5.0  # Δ_k ≈ 9: a large negative entry wage is the model's answer
    W = frozen_state_value(p, w_entry, u, dk, dp, no_offer)
    assert torch.allclose(W, u, rtol=1e-10)
    eps = 1e-4
    W_up = frozen_state_value(p, w_entry + eps, u, dk, dp, no_offer)
    offers = ((dp > 0).to(dp.dtype) * open_).mean(-1)
    slope = (W_up - W) / eps
    assert torch.allclose(slope, 1.0 / (p.outflow_rate + p.psi_e * offers), rtol=1e-6)


def test_the_surplus_wage_range_covers_the_bargaining_set():
    """With Δ, the training wages reach the entry wage of a hire (W = U) and the wage of W = U + Δ."""
    p = _params()
    s, w, terms = _lone_setup(p)
    lo_flow, hi_flow = initial_wage_range(p, s, 0.0)
    lo, hi = initial_wage_range(p, s, 0.0, terms.delta)
    m = s.mask
    d = terms.delta.clamp_min(0.0)
    assert (lo[m] <= (p.b * s.h - p.psi_e * d)[m] + 1e-12).all() and (lo[m] <= lo_flow[m]).all()
    assert (hi[m] >= (p.b * s.h + p.outflow_rate * d)[m] - 1e-12).all() and (hi[m] >= hi_flow[m]).all()
    # the oracle's value at the ends of the range spans [U, U + Δ]
    W_lo = frozen_state_value(p, lo[:, 0], terms.u[:, 0], terms.delta[:, 0], terms.delta_p[:, 0], terms.no_offer)
    W_hi = frozen_state_value(p, hi[:, 0], terms.u[:, 0], terms.delta[:, 0], terms.delta_p[:, 0], terms.no_offer)
    assert (W_lo <= terms.u[:, 0] + 1e-9).all() and (W_hi >= (terms.u + terms.delta)[:, 0] - 1e-9).all()


def test_worker_scale_weights_every_worker_by_its_own_value():
    p = _params()
    h = torch.tensor([[0.5, 2.0]])
    W = torch.tensor([[0.1, 20.0]])
    scale = worker_residual_scale(p, h, W)
    assert torch.allclose(scale, torch.tensor([[p.rho * p.unemployment_coef * 0.5, p.rho * 20.0]]))
    assert (worker_residual_scale(p, h, -W) > 0).all()


@pytest.mark.parametrize("bad", ["wsolver.loss_weight=rms", "wsolver.lr_schedule=step", "wsolver.wage_range=wide"])
def test_w_options_refused_by_name(bad):
    """Refused when the config loads, and again by the module and data module for a config built in code."""
    import dataclasses

    from lotj.config import load_config
    from lotj.errors import ConfigError
    from lotj.nets import WorkerValueNet
    from lotj.sim.distributions import initial_snapshot
    from lotj.train.wdatamodule import WDataModule
    from lotj.train.wmodule import WModule

    key, value = bad.split("=")
    with pytest.raises(ConfigError, match=key):
        load_config(["conf=smoke", bad])
    cfg = load_config(["conf=smoke", "wsolver.n_states=8", "wsolver.n_heldout=4"])
    ws = dataclasses.replace(cfg.wsolver, **{key.split(".")[1]: value})
    p = cfg.economy
    vf = _linear_value(p, 0.3)
    if key != "wsolver.wage_range":  # the module uses the loss and schedule options
        with pytest.raises(ConfigError, match=key):
            WModule.from_config(p, WorkerValueNet(p), vf, ws)
    if key == "wsolver.wage_range":  # the data module draws the wages
        with pytest.raises(ConfigError, match=key):
            WDataModule(p, vf, initial_snapshot(p, 20, torch.Generator().manual_seed(0)), ws)
