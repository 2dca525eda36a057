"""The V residual (MODEL.md section 4, lotj.economy.hjb) where the loop and oracle tests do not look:
weighted draws (the exact sums of discrete economies), rates given as tensors, a void meeting at the
economy's firm 0, and the gradient the training follows."""

from __future__ import annotations

import pytest
import torch

from lotj.economy.firms import FirmBatch
from lotj.economy.hjb import MeetingDraws, v_residual
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.technology import production
from lotj.economy.value import SetFunctionValue

P = EconomyParams(n_max=4, eta=0.85, b=0.3, lam=0.8, gamma_e=0.6, psi_e=0.9, psi_n=0.5, delta_f=0.02)
RATES = MeetingRates(0.9, 0.35, 0.65)  # ω below one


def _value(theta: float | torch.Tensor = 1.0, kappa: float = 0.08):
    """V = Σ U + (θ F − κ n²)/r: hire surpluses of both signs."""

    def fn(z, q, h, a, mask):
        n = mask.sum(-1).to(h.dtype)
        sum_u = P.unemployment_coef * torch.where(mask, h, torch.zeros_like(h)).sum(-1)
        return sum_u + (theta * production(z, h, mask, P.eta) - kappa * n * n) / P.outflow_rate

    return SetFunctionValue(fn)


def _firms(seed: int, count: int = 12) -> FirmBatch:
    g = torch.Generator().manual_seed(seed)
    n = torch.arange(count) % (P.n_max + 1)
    mask = torch.arange(P.n_max).unsqueeze(0) < n.unsqueeze(1)
    h = torch.exp(0.3 * torch.randn(count, P.n_max, generator=g))
    z = torch.exp(0.4 * torch.randn(count, generator=g))
    one = torch.ones_like(h)
    return FirmBatch(z, torch.full((count,), 0.98), torch.where(mask, h, one), one.clone(), mask)


def _draws(h_n, h_e, delta_p, firm_e=None, weight_n=None, weight_e=None) -> MeetingDraws:
    h_n, h_e = torch.tensor(h_n), torch.tensor(h_e)
    return MeetingDraws(
        h_n, torch.ones_like(h_n), h_e, torch.ones_like(h_e), torch.tensor(delta_p), firm_e, weight_n, weight_e
    )


def test_weighted_draws_equal_the_same_draws_repeated():
    """E over draws with probability weights (exact sums over a discrete χ^N, χ^E) equals the plain mean
    over draws repeated in proportion to the weights."""
    s, vf = _firms(1), _value()
    weighted = _draws(
        [0.7, 1.4], [0.9, 1.6], [0.05, 3.0], weight_n=torch.tensor([0.25, 0.75]), weight_e=torch.tensor([2 / 3, 1 / 3])
    )
    repeated = _draws([0.7, 1.4, 1.4, 1.4], [0.9, 0.9, 1.6], [0.05, 0.05, 3.0])
    a, b = v_residual(vf, P, s, RATES, weighted), v_residual(vf, P, s, RATES, repeated)
    assert float(a.terms["meet_unmatched"].abs().max()) > 0 and float(a.terms["meet_employed"].abs().max()) > 0
    torch.testing.assert_close(a.residual, b.residual, rtol=1e-12, atol=1e-12)
    for name in a.terms:
        torch.testing.assert_close(a.terms[name], b.terms[name], rtol=1e-12, atol=1e-12, msg=name)
    torch.testing.assert_close(a.diagonal, b.diagonal, rtol=1e-12, atol=1e-12)


def test_rates_as_tensors_equal_rates_as_floats():
    s, vf = _firms(2), _value()
    draws = _draws([0.7, 1.4], [0.9, 1.6], [0.05, 3.0])
    as_tensors = MeetingRates(*(torch.tensor(float(x)) for x in (RATES.omega, RATES.s_n, RATES.s_e)))
    a, b = v_residual(vf, P, s, as_tensors, draws), v_residual(vf, P, s, RATES, draws)
    assert float(b.terms["meet_unmatched"].abs().max()) > 0
    torch.testing.assert_close(a.residual, b.residual, rtol=1e-12, atol=1e-12)


def test_a_void_meeting_does_not_depend_on_the_firm_s_label():
    """A χ^E draw from the firm itself is void (MODEL.md section 10) whatever the firm's index, 0 included;
    a state of no economy firm (id −1) voids nothing."""
    s, vf = _firms(3, count=10), _value()
    firm_e = torch.tensor([0, 3, 3, 7])
    draws = _draws([1.0], [0.9, 1.6, 1.2, 0.8], [0.05, 0.1, 0.2, 0.1], firm_e=firm_e)
    ids = torch.tensor([0, 3, -1, 0, 3, 5, 6, 7, -1, 0])
    relabel = {0: 11, 3: 0, 7: 3, 5: 5, 6: 6, -1: -1}  # a permutation of the labels, 0 moved elsewhere
    draws2 = _draws([1.0], [0.9, 1.6, 1.2, 0.8], [0.05, 0.1, 0.2, 0.1], firm_e=torch.tensor([11, 0, 0, 3]))
    ids2 = torch.tensor([relabel[int(i)] for i in ids])
    a = v_residual(vf, P, s, RATES, draws, firm_id=ids)
    b = v_residual(vf, P, s, RATES, draws2, firm_id=ids2)
    torch.testing.assert_close(a.residual, b.residual, rtol=1e-12, atol=1e-12)
    # and the void draws matter here: without ids every meeting is real
    c = v_residual(vf, P, s, RATES, draws)
    assert float((c.terms["meet_employed"] - a.terms["meet_employed"]).abs().max()) > 1e-6


def test_the_residual_gradient_is_the_full_derivative_unless_neighbours_are_detached():
    """Gradients flow through every V evaluation (V(S) and its neighbours): autograd matches a central
    difference in a parameter of V; ``detach_neighbours`` keeps only the path through V(S)."""
    s = _firms(4)
    draws = _draws([0.7, 1.4], [0.9, 1.6], [0.05, 3.0])

    def total(theta, detach=False):
        return v_residual(_value(theta), P, s, RATES, draws, detach_neighbours=detach).residual.sum()

    theta = torch.tensor(1.1, requires_grad=True)
    (full,) = torch.autograd.grad(total(theta), theta)
    eps = 1e-6
    fd = (total(torch.tensor(1.1 + eps)) - total(torch.tensor(1.1 - eps))) / (2 * eps)
    assert float(full) == pytest.approx(float(fd), rel=1e-6)
    (semi,) = torch.autograd.grad(total(theta, detach=True), theta)
    assert abs(float(semi) - float(fd)) > 1e-3 * abs(float(fd))
