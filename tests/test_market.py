"""The market (lotj.sim.market): one source of meeting draws for the V and the W equations.

- Exact sums pool firms (``firm_e = −1``), yet the W batches read each draw's Δ(S_p, x) at the firm
  state it stands for: equal to the Δ that the V path computes with the same V, and carried with the
  draws' probability weights into the W residual's :class:`MeetingDraws`.
- The market's pooled window: the rates are those of the pooled cross-sections, and the oldest
  leaves once the window is full.
- A pinned market (the W stage's ``wsolver.settle_years``) keeps its meeting terms on the pinned
  cross-sections while Ω's states follow the newest snapshot, also through a checkpoint.
- With exact sums the surplus table holds Δ at every row the exact draws read, the V path's Δ there.
"""

from __future__ import annotations

import pytest
import torch

from lotj.config import WSolverConfig
from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.surplus import surplus
from lotj.economy.value import SetFunctionValue
from lotj.sim.distributions import EconomySnapshot
from lotj.sim.market import Market, pooled_snapshot
from lotj.sim.meeting_draws import exact_draws, exact_poachers
from lotj.train.wdatamodule import WDataModule
from lotj.train.wmodule import _draws_of

F64 = torch.float64
WORKERS = [[0.7, 1.0, 0.3], [1.0, 0.95, 0.4], [1.4, 1.05, 0.3]]
FIRMS = [[0.6, 0.97, 0.5], [1.5, 1.02, 0.5]]
P = EconomyParams(
    rho=0.05, delta_r=0.05, delta_f=0.01, delta_m=0.12, lam=1.0, gamma_e=0.0, psi_e=1.0, psi_n=0.3,
    n_max=4, n_w=1.0, eta=0.9, b=0.2, worker_types=WORKERS, firm_types=FIRMS,
).validate()  # fmt: skip


def v_test(z, q, h, a, mask):
    """A non-separable V with surpluses of both signs."""
    hm = torch.where(mask, h, torch.zeros_like(h))
    n = mask.sum(-1).to(h.dtype)
    return 2.0 * z * hm.sum(-1).pow(0.9) - 0.4 * n**2 + 0.3 * (hm * torch.log(a)).sum(-1) + 3.0 * z + q


def discrete_snapshot(seed: int, count: int = 60) -> EconomySnapshot:
    """``count`` firms of the two types with 0..n_max workers of the three types in random slots, and
    25 unmatched workers."""
    g = torch.Generator().manual_seed(seed)
    types_w, types_f = torch.tensor(WORKERS, dtype=F64), torch.tensor(FIRMS, dtype=F64)
    kind_w = torch.randint(3, (count, P.n_max), generator=g)
    size = torch.randint(P.n_max + 1, (count,), generator=g)
    mask = torch.rand(count, P.n_max, generator=g).argsort(-1) < size.unsqueeze(1)
    h = torch.where(mask, types_w[kind_w, 0], torch.ones(count, P.n_max, dtype=F64))
    a = torch.where(mask, types_w[kind_w, 1], torch.ones(count, P.n_max, dtype=F64))
    kind_f = torch.randint(2, (count,), generator=g)
    kind_u = torch.randint(3, (25,), generator=g)
    firms = FirmBatch(types_f[kind_f, 0], types_f[kind_f, 1], h, a, mask)
    return EconomySnapshot(firms, types_w[kind_u, 0], types_w[kind_u, 1])


def test_w_batches_read_the_surplus_of_exact_draws_at_the_state_they_stand_for():
    snap, vf = discrete_snapshot(1), SetFunctionValue(v_test)
    cfg = WSolverConfig(batch_size=8, steps_per_epoch=2, m_n=4, m_e=4, m_pi=8, n_states=32, n_heldout=16)
    dm = WDataModule(P, vf, snap, cfg, seed=3, exact_sums=True)
    batch = next(iter(dm.train_dataloader()))
    assert bool((batch["firm_e"] == -1).all())  # exact sums pool firms: no identity
    # the V path: Δ(S_p, x_j) computed afresh with the same V on the draws' firm states
    with torch.no_grad():
        v_path = dm.source.draws(0, 0, torch.Generator()).with_surplus(vf, P)
    torch.testing.assert_close(batch["delta_e"], v_path.delta_p, rtol=1e-12, atol=1e-12)
    assert float(batch["delta_e"].abs().max()) > 0
    draws, *_ = _draws_of(batch, "")
    for w in (draws.weight_n, draws.weight_e):
        assert w is not None and float(w.sum()) == pytest.approx(1.0)
    torch.testing.assert_close(draws.weight_e, v_path.weight_e)


def test_the_market_pools_its_window_and_forgets_the_oldest():
    market = Market(P, seed=0, heldout_fraction=0.2, window=2)
    old, mid, new = (discrete_snapshot(s, 40) for s in (4, 5, 6))
    market.refresh(old)
    market.refresh(mid)
    assert market.rates == pooled_snapshot([mid, old]).meeting_rates(P)
    employed = int(mid.firms.mask.sum() + old.firms.mask.sum())
    unmatched = mid.unmatched_h.numel() + old.unmatched_h.numel()
    assert market.rates.s_n == pytest.approx(unmatched / (unmatched + employed * P.psi_e / P.psi_n))
    market.refresh(new)
    assert market.history == [new, mid] and market.pooled.n_firms == 80
    assert market.rates == pooled_snapshot([new, mid]).meeting_rates(P)


def test_a_pinned_market_keeps_its_meeting_terms_while_the_states_move():
    market = Market(P, seed=0, heldout_fraction=0.2, exact_sums=True)
    a, b, c, d = (discrete_snapshot(s, 40) for s in (7, 8, 9, 10))
    market.pin([a, b])
    market.refresh(c, rates=MeetingRates(0.1, 0.2, 0.8))  # the rates of a refresh are ignored once pinned
    pooled = pooled_snapshot([a, b])
    assert market.snapshot is c and market.pooled.n_firms == 80
    employed = int(a.firms.mask.sum() + b.firms.mask.sum())
    unmatched = a.unmatched_h.numel() + b.unmatched_h.numel()
    assert market.rates.s_n == pytest.approx(unmatched / (unmatched + employed * P.psi_e / P.psi_n))
    assert market.rates == pooled.meeting_rates(P)
    draws, poachers = market.draws(0, 0, torch.Generator()), market.poachers(0, torch.Generator())
    torch.testing.assert_close(draws.weight_e, exact_draws(pooled).weight_e)
    torch.testing.assert_close(poachers.weight, exact_poachers(pooled).weight)
    market.refresh(d)  # the states move on, the meeting terms stay (not even rebuilt)
    assert market.snapshot is d and market.draws(0, 0, torch.Generator()) is draws
    assert market.rates == pooled.meeting_rates(P)
    # through a checkpoint
    again = Market(P, seed=0, heldout_fraction=0.2, exact_sums=True)
    again.load_state_dict(market.state_dict())
    assert again.pooled.n_firms == 80 and again.rates == market.rates
    torch.testing.assert_close(again.snapshot.firms.h, d.firms.h)
    torch.testing.assert_close(again.draws(0, 0, torch.Generator()).weight_e, draws.weight_e)
    with pytest.raises(ValueError, match="at least one"):
        market.pin([])
    frozen = Market(P, seed=0, heldout_fraction=0.2)
    frozen.settle([a, b])
    with pytest.raises(RuntimeError, match="frozen"):
        frozen.pin([c])


def test_the_exact_surplus_table_holds_the_surplus_at_every_row_the_exact_draws_read():
    vf = SetFunctionValue(v_test)
    snaps = [discrete_snapshot(s, 50) for s in (11, 12, 13)]
    market = Market(P, seed=0, heldout_fraction=0.2, exact_sums=True)
    market.pin(snaps)
    table = market.surplus_table(vf)
    full = surplus(vf, P, market.pooled.firms)
    rows = market.draws(0, 0, torch.Generator()).row_e
    assert rows.numel() < market.pooled.n_firms  # the distinct states are fewer than the pooled rows
    torch.testing.assert_close(table[rows], full[rows], rtol=1e-12, atol=1e-12)
    # a Monte Carlo market reads any row: its table is complete
    mc = Market(P, seed=0, heldout_fraction=0.2)
    mc.pin(snaps)
    torch.testing.assert_close(mc.surplus_table(vf), full, rtol=1e-12, atol=1e-12)
