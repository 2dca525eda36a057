"""Wage inversion W(w*) = T (MODEL.md section 5): analytic W, the network, hires, non-monotone W."""

import torch

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.worker_value import SetFunctionWorkerValue
from lotj.nets import WorkerValueNet
from lotj.sim.wage_inversion import invert_wage, solve_monotone

P = EconomyParams(n_max=5)


def _firms(gen, count=40, n_max=5):
    h = torch.exp(0.3 * torch.randn(count, n_max, generator=gen))
    a = torch.exp(0.05 * torch.randn(count, n_max, generator=gen))
    mask = torch.rand(count, n_max, generator=gen) < 0.6
    mask[:, 0] = True
    z = torch.exp(0.3 * torch.randn(count, generator=gen))
    q = torch.exp(0.01 * torch.randn(count, generator=gen))
    return FirmBatch(z, q, torch.where(mask, h, 1.0), torch.where(mask, a, 1.0), mask)


def _analytic(hi, ai, wi, z, q, h, a, mask):
    """Increasing in w with kinks and curvature; depends on coworkers and on z."""
    co = torch.where(mask, torch.log(h), torch.zeros_like(h)).sum(-1)
    u = P.unemployment_coef * hi
    return u + (wi - P.b * hi) / 0.3 + 0.4 * z * torch.tanh(wi / hi) + 2.0 * torch.relu(wi - hi) + 0.2 * hi * co


def test_inversion_hits_random_targets(gen):
    s = _firms(gen)
    wf = SetFunctionWorkerValue(_analytic)
    w_old = torch.where(s.mask, 0.5 * s.h, 0.0)
    target = P.unemployment_coef * s.h * (0.5 + 2.5 * torch.rand(s.h.shape, generator=gen))
    active = s.mask & (torch.rand(s.h.shape, generator=gen) < 0.7)
    w_new, res = invert_wage(wf, P, s, w_old, target, active)
    got = wf.values(s, w_new)
    assert ((got[active] - target[active]).abs() <= 1e-6 * target[active].abs()).all()
    assert res.converged.all() and res.share_non_monotone == 0.0
    assert torch.equal(w_new[~active], w_old[~active])  # only the reset slots move


def test_hire_from_non_employment_lands_at_U(gen):
    s = _firms(gen, count=30, n_max=P.n_max)
    s.mask[:, -1] = False  # room for the hire
    h_new = torch.exp(0.2 * torch.randn(30, generator=gen))
    a_new = torch.ones(30)
    s_plus, added = s.add(h_new, a_new)
    assert added.all()
    slot = s.first_free_slot()[0]
    active = torch.zeros_like(s.mask)
    active[torch.arange(30), slot] = True
    u = P.unemployment_coef * s_plus.h
    torch.manual_seed(5)
    net = WorkerValueNet(P, embed_dim=8, phi_width=16, head_width=32)
    with torch.no_grad():
        for prm in net.head[-1].parameters():
            prm.add_(0.2 * torch.randn_like(prm))
    w0 = torch.where(s_plus.mask, s_plus.h, 0.0)
    w_new, res = invert_wage(net, P, s_plus, w0, u, active)
    W = net.values(s_plus, w_new)
    assert ((W[active] - u[active]).abs() <= 1e-6 * u[active]).all()
    assert res.converged.all() and res.share_non_monotone == 0.0


def test_far_targets_widen_the_bracket():
    fn = lambda x: 3.0 * x + torch.sinh(x / 5.0)  # noqa: E731  steep far from 0
    target = torch.tensor([-500.0, -1.0, 0.0, 2.0, 1.0e4])
    res = solve_monotone(fn, target, torch.zeros(5), torch.ones(5), rtol=1e-12)
    assert res.bracketed.all() and res.converged.all()
    assert torch.allclose(fn(res.wage), target, rtol=1e-10, atol=1e-10)


def test_non_monotone_states_are_reported():
    # W dips on [1, 1.5] for the second and fourth states only
    dip = torch.tensor([0.0, 3.0, 0.0, 3.0])
    fn = lambda x: x - dip * torch.exp(-((x - 1.25) ** 2) / 0.01)  # noqa: E731
    target = torch.tensor([0.5, 0.2, 2.0, 2.0])
    res = solve_monotone(fn, target, torch.full((4,), -1.0), torch.full((4,), 3.0), grid=40)
    assert res.non_monotone.tolist() == [False, True, False, True]
    assert res.share_non_monotone == 0.5
    assert res.converged.all()  # a root is still found
    assert torch.allclose(fn(res.wage), target, atol=1e-9)
