"""The permutation-invariant value network (lotj.nets.ValueNet).

- the pooled removal / addition neighbours equal a naive recomputation that re-encodes every
  neighbour set (SetFunctionValue over the same network) to 1e-10 relative in float64 (the two paths
  differ by rounding, about 1e-15), and so does the whole V residual;
- V is invariant to permutations of the workers and to the amount and content of padding;
- empty firms: finite values, S⊕x of an empty firm is the lone-worker firm, S⊖x of a lone worker
  is the empty firm;
- at initialisation V is the separable guess ΣU + (F + c₀z)/r; the firm-type heads depend on (z, q)
  only and the worker channel adds Σ_i j(x_i) z/r exactly.
"""

from __future__ import annotations

import pytest
import torch

from lotj.economy.firms import FirmBatch, sample_initial_firms, sample_workers
from lotj.economy.hjb import make_draws, v_residual
from lotj.economy.params import EconomyParams
from lotj.economy.technology import production
from lotj.economy.value import SetFunctionValue, ValueFunction
from lotj.nets import ValueNet, franchise_guess
from lotj.sim.distributions import initial_snapshot
from lotj.sim.meeting_draws import sample_draws

F64 = torch.float64


@pytest.fixture(scope="module")
def p() -> EconomyParams:
    return EconomyParams(n_max=8)


def trained_like(p: EconomyParams, seed: int = 0) -> ValueNet:
    """A network whose head is not at its zero initialisation (so that every path is exercised)."""
    torch.manual_seed(seed)
    net = ValueNet(p, embed_dim=8, phi_width=16, phi_depth=2, rho_width=16, rho_depth=2, franchise=3.0).to(F64)
    with torch.no_grad():
        for head in (net.head, net.firm_type, net.worker_value):
            for prm in head.parameters():
                prm.normal_(0.0, 0.3)
    return net


def firms(p: EconomyParams, count: int, seed: int) -> FirmBatch:
    g = torch.Generator().manual_seed(seed)
    s = sample_initial_firms(p, count, g, mean_size=4.0)
    s.mask[:3] = False  # a few empty firms
    s.h[:3] = 1.0
    s.a[:3] = 1.0
    return s


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / b.abs().clamp_min(1e-12)).max())


def test_network_is_a_value_function(p):
    assert isinstance(trained_like(p), ValueFunction)


def test_pooled_neighbours_equal_naive_recomputation(p):
    net = trained_like(p)
    naive = SetFunctionValue(net.set_function)
    s = firms(p, 40, seed=1)
    with torch.no_grad():
        rm_pooled, rm_naive = net.removal_values(s), naive.removal_values(s)
        assert rel_err(rm_pooled[s.mask], rm_naive[s.mask]) < 1e-10
        h_new, a_new = sample_workers(p, 7, torch.Generator().manual_seed(2))
        assert rel_err(net.addition_values(s, h_new, a_new), naive.addition_values(s, h_new, a_new)) < 1e-10
        hb, ab = sample_workers(p, 40 * 3, torch.Generator().manual_seed(3))
        hb, ab = hb.view(40, 3), ab.view(40, 3)
        assert rel_err(net.addition_values(s, hb, ab), naive.addition_values(s, hb, ab)) < 1e-10


def test_pooled_residual_equals_naive_residual(p):
    net = trained_like(p, seed=4)
    naive = SetFunctionValue(net.set_function)
    g = torch.Generator().manual_seed(5)
    snap = initial_snapshot(p, 60, g)
    s = snap.sample_firms(32, g)
    d = sample_draws(snap, 6, 6, g)
    rates = snap.meeting_rates(p)
    out = []
    for vf in (net, naive):
        draws = make_draws(vf, p, d.h_n, d.a_n, d.s_p, d.slot, d.firm_e)
        out.append(v_residual(vf, p, s, rates, draws, firm_id=torch.arange(32)))
    # the residual is a difference of terms of the size of ρV: its rounding is relative to that scale
    with torch.no_grad():
        scale = float((p.rho * net.value(s)).abs().max())
    assert float((out[0].residual - out[1].residual).abs().max()) < 1e-10 * scale
    for name in out[0].terms:
        assert torch.allclose(out[0].terms[name], out[1].terms[name], rtol=1e-10, atol=1e-10 * scale), name


def test_permutation_invariance(p):
    net = trained_like(p)
    s = firms(p, 30, seed=6)
    g = torch.Generator().manual_seed(7)
    perm = torch.stack([torch.randperm(p.n_max, generator=g) for _ in range(30)])
    shuffled = FirmBatch(s.z, s.q, s.h.gather(1, perm), s.a.gather(1, perm), s.mask.gather(1, perm))
    with torch.no_grad():
        assert torch.allclose(net.value(s), net.value(shuffled), rtol=1e-12)
        # removal values follow their worker
        assert torch.allclose(net.removal_values(s).gather(1, perm), net.removal_values(shuffled), rtol=1e-12)


def test_padding_invariance(p):
    net = trained_like(p)
    s = firms(p, 30, seed=8)
    wide = FirmBatch(
        s.z,
        s.q,
        torch.cat([s.h, 7.0 * torch.ones(30, 5, dtype=F64)], 1),  # padding content is ignored
        torch.cat([s.a, 0.3 * torch.ones(30, 5, dtype=F64)], 1),
        torch.cat([s.mask, torch.zeros(30, 5, dtype=torch.bool)], 1),
    )
    garbage = FirmBatch(s.z, s.q, torch.where(s.mask, s.h, 5.0), torch.where(s.mask, s.a, 2.0), s.mask)
    with torch.no_grad():
        v = net.value(s)
        assert torch.allclose(v, net.value(wide), rtol=1e-12)
        assert torch.allclose(v, net.value(garbage), rtol=1e-12)


def test_empty_firms(p):
    net = trained_like(p)
    z = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    q = torch.ones(3, dtype=F64)
    empty = FirmBatch.empty(z, q, p.n_max)
    h_new = torch.tensor([0.8, 1.3], dtype=F64)
    a_new = torch.tensor([1.0, 1.01], dtype=F64)
    with torch.no_grad():
        v0 = net.value(empty)
        assert torch.isfinite(v0).all() and bool((v0 != 0).all())
        added = net.addition_values(empty, h_new, a_new)
        for m in range(2):
            lone, ok = empty.add(h_new[m].expand(3), a_new[m].expand(3))
            assert bool(ok.all())
            assert torch.allclose(added[:, m], net.value(lone), rtol=1e-12)
            # removing the lone worker gives the empty firm back
            assert torch.allclose(net.removal_values(lone)[lone.mask], v0, rtol=1e-12)


def test_initial_network_is_the_separable_guess(p):
    net = ValueNet(p, embed_dim=8, phi_width=16, rho_width=16, franchise=2.5).to(F64)
    s = firms(p, 20, seed=9)
    sum_u = p.unemployment_coef * torch.where(s.mask, s.h, torch.zeros_like(s.h)).sum(-1)
    guess = sum_u + (production(s.z, s.h, s.mask, p.eta) + 2.5 * s.z) / p.outflow_rate
    with torch.no_grad():
        assert torch.allclose(net.value(s), guess, rtol=1e-12)
    assert franchise_guess(s, p.eta) == pytest.approx(
        float((production(s.z, s.h, s.mask, p.eta) / s.z).mean()), rel=1e-12
    )


def test_decisions_under_no_grad_build_no_graph(p):
    net = trained_like(p)
    s = firms(p, 10, seed=10)
    with torch.no_grad():
        outs = [net.value(s), net.removal_values(s), net.addition_values(s, s.h[0, :2], s.a[0, :2])]
    assert not any(o.requires_grad for o in outs)


def test_float32_network_accepts_float64_states(p):
    net = ValueNet(p, embed_dim=8, phi_width=16, rho_width=16).to(torch.float32)
    s = firms(p, 10, seed=11)
    with torch.no_grad():
        v32 = net.value(s)
    assert v32.dtype == torch.float32
    net64 = ValueNet(p, embed_dim=8, phi_width=16, rho_width=16).to(F64)
    net64.load_state_dict({k: t.to(F64) for k, t in net.state_dict().items()})
    with torch.no_grad():
        assert torch.allclose(v32.to(F64), net64.value(s), rtol=1e-5)


def test_output_channels(p):
    """V = ΣU + [F(1 + k(z,q)) + c z(1 + g(z,q))]/r + (F + c z)/r · head + z Σ_i j(x_i)/r."""
    net = trained_like(p, seed=12)
    s = firms(p, 16, seed=13)
    with torch.no_grad():
        base = net.value(s)
        for prm in net.worker_value[-1].parameters():
            prm.zero_()
        without_j = net.value(s)
        x = torch.stack([torch.log(s.h), torch.log(s.a)], -1)
        x = (x - net.worker_loc) / net.worker_scale
        # recompute Σ j with the perturbed net: difference equals z Σ j / r
    net2 = trained_like(p, seed=12)
    with torch.no_grad():
        j = net2.worker_value(x).squeeze(-1)
        sum_j = torch.where(s.mask, j, torch.zeros_like(j)).sum(-1)
        assert torch.allclose(base - without_j, s.z * sum_j / p.outflow_rate, rtol=1e-10, atol=1e-10)


def test_sparse_neighbours_equal_explicit_sets(gen):
    """The simulator's pooled path equals V on explicitly built S⊖x_i and S⊕x sets."""
    from lotj.economy.firms import sample_initial_firms, sample_workers
    from lotj.economy.params import EconomyParams
    from lotj.nets import ValueNet
    from lotj.sim.neighbours import neighbour_values

    p = EconomyParams(n_max=6)
    net = ValueNet(p, 8, 16, 2, 16, 2, "silu", 1.0).double()
    for prm in net.parameters():  # leave the warm start: make every head matter
        torch.nn.init.normal_(prm, std=0.3, generator=gen)
    s = sample_initial_firms(p, 40, gen, mean_size=3.0)
    n = s.size()
    has = (n > 0).nonzero().squeeze(-1)
    rem_row = has[torch.randint(has.numel(), (25,), generator=gen)]
    rem_slot = torch.stack([torch.multinomial(s.mask[r].double(), 1, generator=gen)[0] for r in rem_row])
    room = (n < p.n_max).nonzero().squeeze(-1)
    add_row = room[torch.randint(room.numel(), (30,), generator=gen)]
    h_new, a_new = sample_workers(p, 30, gen)
    fast = neighbour_values(net, s, rem_row, rem_slot, add_row, h_new, a_new)

    class Plain:  # the same network without the pooled path: explicit neighbour sets
        def value(self, b):
            return net.value(b)

    slow = neighbour_values(Plain(), s, rem_row, rem_slot, add_row, h_new, a_new)
    for f, sl in zip(fast, slow):
        assert torch.allclose(f, sl, rtol=1e-10, atol=1e-12)
