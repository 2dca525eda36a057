"""Exact meeting sums and the exploration states of the training distribution (lotj.sim.omega, lotj.sim.meeting_draws).

- ``exact_draws`` pools equal workers and equal worker-in-firm states with their shares as weights: the
  weighted residual equals the residual whose draws are every unmatched and every employed worker of
  the economy once (the exact expectation over the snapshot), for any V, to rounding.
- Its firm states are canonical: the same multiset of workers in another slot order is the same state.
- ``explore_states`` draws firm types from G_f, workers from G_w and every size 0..n_max.
- Without learning (γ^E = 0), Ω holds no learning step (H(S) is no event's outcome).
"""

from __future__ import annotations

import pytest
import torch

from lotj.economy.firms import FirmBatch
from lotj.economy.hjb import make_draws, v_residual
from lotj.economy.params import EconomyParams
from lotj.economy.value import SetFunctionValue
from lotj.sim.distributions import EconomySnapshot
from lotj.sim.meeting_draws import MAX_EXACT_DRAWS, exact_draws
from lotj.sim.omega import explore_states, sample_omega

F64 = torch.float64
WORKERS = [[0.7, 1.0, 0.3], [1.0, 0.95, 0.4], [1.4, 1.05, 0.3]]
FIRMS = [[0.6, 0.97, 0.5], [1.5, 1.02, 0.5]]


def discrete(**kw) -> EconomyParams:
    base = dict(
        rho=0.05, delta_r=0.05, delta_f=0.01, delta_m=0.12, lam=1.0, gamma_e=0.0, psi_e=1.0, psi_n=0.3,
        n_max=4, n_w=1.0, eta=0.9, b=0.2, worker_types=WORKERS, firm_types=FIRMS,
    )  # fmt: skip
    base.update(kw)
    return EconomyParams(**base).validate()


def v_test(z, q, h, a, mask):
    """A non-separable V with surpluses of both signs (so every max{·, 0} is active somewhere)."""
    hm = torch.where(mask, h, torch.zeros_like(h))
    n = mask.sum(-1).to(h.dtype)
    return 2.0 * z * hm.sum(-1).pow(0.9) - 0.4 * n**2 + 0.3 * (hm * torch.log(a)).sum(-1) + 3.0 * z + q


def snapshot_with_repeats(p: EconomyParams, seed: int) -> EconomySnapshot:
    """A discrete economy: 60 firms of the two types with 0..n_max workers of the three types, each
    firm's workers in random slots, and 25 unmatched workers."""
    g = torch.Generator().manual_seed(seed)
    types_w = torch.tensor(WORKERS, dtype=F64)
    types_f = torch.tensor(FIRMS, dtype=F64)
    count, width = 60, p.n_max
    kind_w = torch.randint(3, (count, width), generator=g)
    size = torch.randint(width + 1, (count,), generator=g)
    slots = torch.rand(count, width, generator=g).argsort(-1)  # real workers in random slots
    mask = slots < size.unsqueeze(1)
    h = torch.where(mask, types_w[kind_w, 0], torch.ones(count, width, dtype=F64))
    a = torch.where(mask, types_w[kind_w, 1], torch.ones(count, width, dtype=F64))
    kind_f = torch.randint(2, (count,), generator=g)
    firms = FirmBatch(types_f[kind_f, 0], types_f[kind_f, 1], h, a, mask)
    kind_u = torch.randint(3, (25,), generator=g)
    return EconomySnapshot(firms, types_w[kind_u, 0], types_w[kind_u, 1])


@pytest.mark.parametrize("seed", [1, 2])
def test_exact_sums_equal_every_worker_once(seed):
    p = discrete()
    snap = snapshot_with_repeats(p, seed)
    vf = SetFunctionValue(v_test)
    states = snapshot_with_repeats(p, seed + 10).firms
    rates = snap.meeting_rates(p)
    occ = snap.firms.mask.nonzero()
    every = make_draws(vf, p, snap.unmatched_h, snap.unmatched_a, snap.firms.index(occ[:, 0]), occ[:, 1])
    d = exact_draws(snap)
    assert d.h_n.numel() <= 3 and d.slot.numel() < occ.shape[0]  # pooled
    assert float(d.weight_n.sum()) == pytest.approx(1.0) and float(d.weight_e.sum()) == pytest.approx(1.0)
    pooled = make_draws(vf, p, d.h_n, d.a_n, d.s_p, d.slot, d.firm_e, d.weight_n, d.weight_e)
    a = v_residual(vf, p, states, rates, every)
    b = v_residual(vf, p, states, rates, pooled)
    for name in ("meet_unmatched", "meet_employed"):
        assert b.terms[name].abs().max() > 0
        torch.testing.assert_close(b.terms[name], a.terms[name], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(b.residual, a.residual, rtol=1e-12, atol=1e-12)


def test_exact_sums_pool_firm_states_whatever_the_slot_order():
    p = discrete()
    snap = snapshot_with_repeats(p, 3)
    f = snap.firms
    reversed_slots = FirmBatch(f.z, f.q, f.h.flip(-1), f.a.flip(-1), f.mask.flip(-1))
    both = EconomySnapshot(
        FirmBatch.cat([f, reversed_slots]),
        snap.unmatched_h,
        snap.unmatched_a,
    )
    once, twice = exact_draws(snap), exact_draws(both)
    assert twice.slot.numel() == once.slot.numel()
    assert sorted(twice.weight_e.tolist()) == pytest.approx(sorted(once.weight_e.tolist()))


def test_exact_sums_refuse_a_continuous_economy():
    g = torch.Generator().manual_seed(0)
    n = MAX_EXACT_DRAWS + 1
    h = torch.exp(0.3 * torch.randn(n, generator=g, dtype=F64))
    firms = FirmBatch(torch.ones(1, dtype=F64), torch.ones(1, dtype=F64), torch.ones(1, 2, dtype=F64),
                      torch.ones(1, 2, dtype=F64), torch.zeros(1, 2, dtype=torch.bool))  # fmt: skip
    with pytest.raises(ValueError, match="solver.exact_sums=false"):
        exact_draws(EconomySnapshot(firms, h, torch.ones_like(h)))


def test_exploration_states_cover_every_size_and_the_types():
    p = discrete()
    s, k = explore_states(p, 3000, torch.Generator().manual_seed(4))
    assert int(k.max()) == 0  # no learning, no learning steps
    sizes = torch.bincount(s.size(), minlength=p.n_max + 1)
    assert sizes.numel() == p.n_max + 1 and int(sizes.min()) > 3000 / (p.n_max + 1) * 0.8
    assert set(s.z.tolist()) == {0.6, 1.5}
    assert set(s.h[s.mask].tolist()) == {0.7, 1.0, 1.4}
    assert bool((s.h[~s.mask] == 1).all()) and bool((s.a[~s.mask] == 1).all())  # padding convention


def test_without_learning_omega_holds_no_learning_step():
    """With γ^E = 0 every Ω state of a discrete economy is a state of the economy (h stays on the types);
    with γ^E > 0 the learning step moves h off them."""
    snap = snapshot_with_repeats(discrete(), 5)
    g = torch.Generator().manual_seed(6)
    for gamma, off_grid in ((0.0, False), (0.5, True)):
        s, _ = sample_omega(discrete(gamma_e=gamma, theta_plus=0.3), snap, 2000, generator=g)
        h = s.h[s.mask]
        on_types = (h.unsqueeze(-1) - torch.tensor([0.7, 1.0, 1.4], dtype=F64)).abs().min(-1).values < 1e-12
        assert bool((~on_types).any()) == off_grid


def test_states_of_no_simulated_firm_never_meet_their_own_firm():
    """Exploration states carry firm index −1, pooled exact draws firm index −1: equal indices, but
    no simulated firm, so the meeting with an employed worker is not void (MODEL.md section 10)."""
    p = discrete()
    snap = snapshot_with_repeats(p, 7)
    vf = SetFunctionValue(v_test)
    states = snapshot_with_repeats(p, 8).firms
    d = exact_draws(snap)
    draws = make_draws(vf, p, d.h_n, d.a_n, d.s_p, d.slot, d.firm_e, d.weight_n, d.weight_e)
    no_firm = torch.full((states.batch_size,), -1)
    with_ids = v_residual(vf, p, states, snap.meeting_rates(p), draws, firm_id=no_firm)
    without = v_residual(vf, p, states, snap.meeting_rates(p), draws)
    assert with_ids.terms["meet_employed"].abs().max() > 0
    torch.testing.assert_close(with_ids.residual, without.residual, rtol=0, atol=0)
