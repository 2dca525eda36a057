"""WorkerValueNet: permutation symmetry, pooled neighbours against explicit sets, monotone in the wage."""

import torch

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.worker_value import SetFunctionWorkerValue, WorkerValueFunction
from lotj.nets import WorkerValueNet


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    net = WorkerValueNet(EconomyParams(n_max=6), embed_dim=8, phi_width=16, head_width=32, **kw)
    # move the head off its initial (coworker-free) point so that every input matters
    with torch.no_grad():
        for prm in net.head[-1].parameters():
            prm.add_(0.3 * torch.randn_like(prm))
    return net


def _firms(gen, count=5, n_max=6):
    h = torch.exp(0.3 * torch.randn(count, n_max, generator=gen))
    a = torch.exp(0.05 * torch.randn(count, n_max, generator=gen))
    mask = torch.rand(count, n_max, generator=gen) < 0.7
    mask[0] = False
    mask[0, 2] = True  # a lone worker
    mask[1] = True  # a full firm
    z = torch.exp(0.3 * torch.randn(count, generator=gen))
    q = torch.exp(0.01 * torch.randn(count, generator=gen))
    s = FirmBatch(z, q, torch.where(mask, h, 1.0), torch.where(mask, a, 1.0), mask)
    w = torch.where(mask, 0.1 + 1.5 * torch.rand(count, n_max, generator=gen) * h, 0.0)
    return s, w


def test_protocol_and_permutation_equivariance(gen):
    net = _net()
    assert isinstance(net, WorkerValueFunction)
    s, w = _firms(gen)
    perm = torch.randperm(s.n_max, generator=gen)
    sp = FirmBatch(s.z, s.q, s.h[:, perm], s.a[:, perm], s.mask[:, perm])
    wp = w[:, perm]
    assert torch.allclose(net.values(sp, wp), net.values(s, w)[:, perm], rtol=1e-12)
    rm = net.removal_values(s, w)
    assert torch.allclose(net.removal_values(sp, wp), rm[:, perm][:, :, perm], rtol=1e-12)
    h_new, a_new = torch.tensor([0.8, 1.4]), torch.tensor([1.0, 1.02])
    assert torch.allclose(net.addition_values(sp, wp, h_new, a_new), net.addition_values(s, w, h_new, a_new)[:, perm])
    # padding content is irrelevant
    s2 = FirmBatch(s.z, s.q, torch.where(s.mask, s.h, 3.0), torch.where(s.mask, s.a, 0.5), s.mask)
    v, v2 = net.values(s, w), net.values(s2, torch.where(s.mask, w, 9.0))
    assert torch.allclose(v[s.mask], v2[s.mask], rtol=1e-12)


def test_pooled_neighbours_equal_explicit_sets(gen, check_pooled_neighbours):
    net = _net(1)
    s, w = _firms(gen)
    _, pair = check_pooled_neighbours(net, s, w, gen)
    # the coworker set matters: removing a coworker changes W
    assert (net.removal_values(s, w)[pair] - net.values(s, w).unsqueeze(-1).expand_as(pair)[pair]).abs().max() > 1e-4


def test_strictly_increasing_in_the_wage(gen):
    net = _net(2, kinks=5)
    with torch.no_grad():  # slopes that rise and fall by large factors
        net.head[-1].bias[6:12] = torch.tensor([-3.0, 2.0, -4.0, 3.0, -5.0, 0.0])
    s, _ = _firms(gen)
    grid = torch.linspace(-2.0, 6.0, 400)
    vals = torch.stack([net.values(s, torch.full_like(s.h, x)) for x in grid])  # [G, B, n]
    diffs = vals[1:] - vals[:-1]
    assert (diffs[:, s.mask] > 0).all()


def test_initial_guess_is_the_no_reset_value(gen):
    p = EconomyParams(n_max=6)
    net = WorkerValueNet(p, embed_dim=8, phi_width=16, head_width=32)
    s, w = _firms(gen)
    expected = p.unemployment_coef * s.h + (w - p.b * s.h) / p.outflow_rate
    # the initial kinks have equal slopes on both sides: m(ω) = ω − b exactly
    assert torch.allclose(net.values(s, w)[s.mask], expected[s.mask], rtol=1e-12)


def test_wage_curves_equal_values_at_the_active_slots(gen):
    from lotj.economy.worker_value import wage_curves

    net = _net(3)
    s, w = _firms(gen)
    active = s.mask & (torch.rand(s.h.shape, generator=gen) < 0.6)
    x = w[active] * 1.3 + 0.1
    fast = wage_curves(net, s, w, active)(x)
    w2 = w.clone()
    w2[active] = x
    assert torch.allclose(fast, net.values(s, w2)[active], rtol=1e-12)
    generic = wage_curves(SetFunctionWorkerValue(net.worker_fn), s, w, active)(x)
    assert torch.allclose(fast, generic, rtol=1e-10)
