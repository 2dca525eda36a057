"""WorkerValueNet with the frozen V's surplus as an input (``wnet.surplus_input``; docs/wages.md).

The surplus the network is given at every state where the W residual evaluates W (the own state, every
``S⊖x_j``, every ``S⊕x_m``, the plain form of one worker and its coworker set) must be
``V(S') − V(S'⊖x_i) − U(x_i)`` at that state ``S'``: checked against V evaluated naively on explicitly
built neighbour sets.
"""

import pytest
import torch

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.surplus import surplus
from lotj.economy.worker_value import wage_curves
from lotj.nets import ValueNet, WorkerValueNet

P = EconomyParams(n_max=6)


def _value_net(seed=0):
    torch.manual_seed(seed)
    vf = ValueNet(P, embed_dim=8, phi_width=16, rho_width=16, type_width=8)
    with torch.no_grad():  # a V whose every channel matters (the zero-initialised last layers are separable)
        for net in (vf.head, vf.firm_type, vf.worker_value):
            for prm in net[-1].parameters():
                prm.add_(0.3 * torch.randn_like(prm))
    vf.requires_grad_(False)
    return vf


def _net(vf, seed=1, perturb=True, **kw):
    torch.manual_seed(seed)
    net = WorkerValueNet(P, embed_dim=8, phi_width=16, head_width=32, surplus_input=True, **kw).attach_value(vf)
    if perturb:
        with torch.no_grad():
            for prm in net.head[-1].parameters():
                prm.add_(0.3 * torch.randn_like(prm))
    return net


def _firms(gen, count=5):
    n = P.n_max
    h = torch.exp(0.3 * torch.randn(count, n, generator=gen))
    a = torch.exp(0.05 * torch.randn(count, n, generator=gen))
    mask = torch.rand(count, n, generator=gen) < 0.7
    mask[0] = False
    mask[0, 2] = True  # a lone worker
    mask[1] = True  # a full firm
    mask[2] = False
    mask[2, [1, 4]] = True  # two workers: S⊖x_j leaves a lone worker
    z = torch.exp(0.3 * torch.randn(count, generator=gen))
    q = torch.exp(0.01 * torch.randn(count, generator=gen))
    s = FirmBatch(z, q, torch.where(mask, h, 1.0), torch.where(mask, a, 1.0), mask)
    w = torch.where(mask, 0.1 + 1.5 * torch.rand(count, n, generator=gen) * h, 0.0)
    return s, w


def _with_slot_removed(s, j):
    keep = s.mask.clone()
    keep[:, j] = False
    return FirmBatch(s.z, s.q, s.h, s.a, keep)


def _with_worker_added(s, h_new, a_new):
    """S⊕x_m for each firm (one new worker per firm, ``[B]``) in an extra last slot."""
    one = torch.ones(s.batch_size, 1, dtype=torch.bool)
    return FirmBatch(
        s.z,
        s.q,
        torch.cat([s.h, h_new.unsqueeze(-1)], -1),
        torch.cat([s.a, a_new.unsqueeze(-1)], -1),
        torch.cat([s.mask, one], -1),
    )


def test_surplus_inputs_equal_naive_v_at_every_neighbour_kind(gen):
    vf = _value_net()
    net = _net(vf)
    s, _ = _firms(gen)
    m = s.mask
    b, i = m.nonzero(as_tuple=True)
    # own state
    assert torch.allclose(net.own_surplus(s, b, i), surplus(vf, P, s)[b, i], rtol=1e-11, atol=1e-11)
    # coworker-left states S⊖x_j: Δ(S⊖x_j, x_i) for every real pair i ≠ j
    eye = torch.eye(s.n_max, dtype=torch.bool)
    pair = m.unsqueeze(-1) & m.unsqueeze(-2) & ~eye
    pb, pi, pj = pair.nonzero(as_tuple=True)
    got = net.removal_surplus(s, pb, pi, pj)
    ref = torch.stack([surplus(vf, P, _with_slot_removed(s, j)) for j in range(s.n_max)], -1)  # [B, i, j]
    assert torch.allclose(got, ref[pb, pi, pj], rtol=1e-11, atol=1e-11)
    # arrival states S⊕x_m, shared and per-firm new workers
    h_new = torch.exp(0.3 * torch.randn(s.batch_size, 3, generator=gen))
    a_new = torch.exp(0.05 * torch.randn(s.batch_size, 3, generator=gen))
    for hn, an in ((h_new, a_new), (h_new[0], a_new[0])):
        got = net.addition_surplus(s, b, i, hn, an)  # [R, M]
        hb, ab = (hn, an) if hn.dim() == 2 else (hn.expand(s.batch_size, -1), an.expand(s.batch_size, -1))
        ref = torch.stack([surplus(vf, P, _with_worker_added(s, hb[:, k], ab[:, k]))[:, :-1] for k in range(3)], -1)
        assert torch.allclose(got, ref[b, i], rtol=1e-11, atol=1e-11)
    # the surplus moves with the state (a wrong neighbour would not be caught otherwise)
    assert (ref[b, i, 0] - net.own_surplus(s, b, i)).abs().max() > 1e-3


def test_surplus_input_reaches_the_output(gen):
    """W changes when V's surplus changes with everything else fixed: the input is used."""
    vf, vf2 = _value_net(0), _value_net(5)
    net = _net(vf)
    s, w = _firms(gen)
    before = net.values(s, w)
    net.attach_value(vf2)
    assert (net.values(s, w) - before)[s.mask].abs().max() > 1e-3


def test_pooled_neighbours_equal_explicit_sets(gen, check_pooled_neighbours):
    net = _net(_value_net())
    s, w = _firms(gen)
    m, _ = check_pooled_neighbours(net, s, w, gen)
    active = m & (torch.rand(s.h.shape, generator=gen) < 0.6)
    x = w[active] * 1.3 + 0.1
    w2 = w.clone()
    w2[active] = x
    assert torch.allclose(wage_curves(net, s, w, active)(x), net.values(s, w2)[active], rtol=1e-12)


def test_initial_guess_and_monotone_in_the_wage(gen):
    vf = _value_net()
    s, w = _firms(gen)
    net = _net(vf, perturb=False)
    expected = P.unemployment_coef * s.h + (w - P.b * s.h) / P.outflow_rate
    assert torch.allclose(net.values(s, w)[s.mask], expected[s.mask], rtol=1e-10)
    net = _net(vf, seed=2, kinks=5)
    with torch.no_grad():  # slopes that rise and fall by large factors
        net.head[-1].bias[6:12] = torch.tensor([-3.0, 2.0, -4.0, 3.0, -5.0, 0.0])
        net.head[-1].bias[-2:] = torch.tensor([-3.0, 2.5])  # edge slopes at W = U and W = U + Δ
    grid = torch.linspace(-20.0, 20.0, 400)
    vals = torch.stack([net.values(s, torch.full_like(s.h, x)) for x in grid])
    assert ((vals[1:] - vals[:-1])[:, s.mask] > 0).all()


def test_needs_an_attached_value_function(gen):
    net = WorkerValueNet(P, embed_dim=8, phi_width=16, head_width=32, surplus_input=True)
    s, w = _firms(gen)
    with pytest.raises(RuntimeError, match="attach"):
        net.values(s, w)
    with pytest.raises(TypeError, match="pool interface"):
        net.attach_value(torch.nn.Linear(1, 1))
    # V is not a submodule: W's parameters and saved state do not include it
    net.attach_value(_value_net())
    assert not any(k.startswith("_frozen") or "log_c" in k for k in net.state_dict())


def test_wage_inversion_with_the_surplus_input(gen):
    """The simulator's inversion finds the wage that delivers a value at the edges and inside the set."""
    from lotj.sim.wage_inversion import invert_wage

    vf = _value_net()
    net = _net(vf, seed=4)
    with torch.no_grad():
        net.head[-1].bias[-2:] = torch.tensor([-1.0, 1.0])  # kinks at W = U and W = U + Δ
    s, w = _firms(gen, count=8)
    b, i = s.mask.nonzero(as_tuple=True)
    u = P.unemployment_coef * s.h
    delta = torch.zeros_like(u).index_put((b, i), net.own_surplus(s, b, i))
    for target in (u, u + delta.clamp_min(0.0), u + 0.4 * delta.clamp_min(0.0)):
        w_new, res = invert_wage(net, P, s, w, target, s.mask)
        W = net.values(s, w_new)
        assert ((W - target)[s.mask].abs() <= 1e-6 * u[s.mask]).all()
        assert res.converged.all() and res.share_non_monotone == 0.0


def test_set_kinks_start_as_the_plain_form_and_stay_monotone(gen):
    """``set_kinks``: with every δ_l = 0 the network is the plain one; with large δ_l of both signs W still rises
    strictly in the wage (every slope of the map is positive)."""
    vf = _value_net()
    s, w = _firms(gen)
    plain = _net(vf, seed=3)
    bent = _net(vf, seed=3, perturb=False, set_kinks=True)
    extra = bent.head[-1].bias.numel() - plain.head[-1].bias.numel()
    assert extra == len(WorkerValueNet.set_kinks_at())
    state = bent.state_dict()
    for key, val in plain.state_dict().items():
        if state[key].shape == val.shape:
            state[key] = val
        else:  # the head's last layer: the plain outputs first, then δ_l = 0
            state[key] = torch.cat([val, torch.zeros(extra, *val.shape[1:], dtype=val.dtype)])
    bent.load_state_dict(state)
    assert torch.allclose(bent.values(s, w)[s.mask], plain.values(s, w)[s.mask], rtol=1e-13, atol=1e-13)
    with torch.no_grad():  # log slope changes of ±3 at every kink, alternating
        bent.head[-1].bias[-extra:] = 3.0 * torch.tensor([(-1.0) ** k for k in range(extra)])
    assert (bent.values(s, w) - plain.values(s, w))[s.mask].abs().max() > 1e-2  # the kinks act
    grid = torch.linspace(-20.0, 20.0, 400)
    vals = torch.stack([bent.values(s, torch.full_like(s.h, x)) for x in grid])
    assert ((vals[1:] - vals[:-1])[:, s.mask] > 0).all()


def test_set_kinks_bend_at_their_fractions_of_the_set():
    """Hand-computed map: slope 2 between the kinks at 0.5 and 0.75 of the set, 1 elsewhere, so
    ``g(u) = u + max{u − 0.5, 0} − max{u − 0.75, 0}`` in units of the surplus."""
    net = WorkerValueNet(P, embed_dim=8, phi_width=16, head_width=32, surplus_input=True, set_kinks=True)
    at = list(WorkerValueNet.set_kinks_at())
    raw = torch.zeros(len(at), dtype=torch.float64)
    raw[at.index(0.5)] = torch.log(torch.tensor(2.0))
    raw[at.index(0.75)] = -torch.log(torch.tensor(2.0))
    scale = torch.tensor(1.7, dtype=torch.float64)
    u = torch.linspace(-1.0, 2.0, 61, dtype=torch.float64)
    expected = u + (u - 0.5).clamp_min(0.0) - (u - 0.75).clamp_min(0.0)
    got = net.set_bends(raw.expand(len(u), -1), scale * u, scale) / scale
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="surplus_input"):
        WorkerValueNet(P, embed_dim=8, phi_width=16, head_width=32, set_kinks=True)
