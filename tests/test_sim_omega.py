"""Ω, the simulated χ and its one-event neighbours (MODEL.md section 6; lotj.sim.omega), and χ^E
draws with Δ."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import pytest
import torch
from reference import crowding_value

from lotj.economy.params import EconomyParams
from lotj.economy.surplus import surplus
from lotj.economy.technology import learning_step
from lotj.economy.value import SetFunctionValue
from lotj.sim.market import Market
from lotj.sim.omega import EVENTS, sample_omega, sample_omega_events
from lotj.sim.simulator import Simulator

P = EconomyParams(n_max=6)
NAMES = list(EVENTS)


def economy():
    sim = Simulator(P, 300, 0.05, seed=1, initial_mean_size=4.0)
    return sim.snapshot()


def multiset(h: torch.Tensor, mask: torch.Tensor) -> list[float]:
    return sorted(h[mask].tolist())


def test_every_state_is_its_source_firm_after_at_most_one_event(gen):
    snap = economy()
    s, src, ev = sample_omega_events(P, snap, 2000, generator=gen)
    base = snap.firms.index(src)
    workers = set(snap.unmatched_h.tolist()) | set(snap.firms.h[snap.firms.mask].tolist())
    learned = learning_step(base.h, base.a, base.q, base.mask, P.theta_plus, P.theta_minus)
    assert torch.equal(s.z, base.z) and torch.equal(s.q, base.q)
    assert bool((s.size() <= P.n_max).all())
    for k in range(2000):
        name = NAMES[int(ev[k])]
        now, was = multiset(s.h[k], s.mask[k]), multiset(base.h[k], base.mask[k])
        if name == "none":
            assert now == was
        elif name == "remove":
            assert len(now) == len(was) - 1 and all(now.count(x) <= was.count(x) for x in now)
        elif name == "add":
            extra = list((Counter(now) - Counter(was)).elements())
            assert len(now) == len(was) + 1 and len(extra) == 1 and extra[0] in workers
        else:
            assert torch.equal(s.mask[k], base.mask[k])
            torch.testing.assert_close(s.h[k][s.mask[k]], learned[k][base.mask[k]])


def test_sample_omega_is_sample_omega_events_without_the_events():
    snap = economy()
    held_out = torch.arange(0, 300, 3)
    s, src = sample_omega(P, snap, 500, held_out, torch.Generator().manual_seed(5))
    s2, src2, _ = sample_omega_events(P, snap, 500, held_out, torch.Generator().manual_seed(5))
    assert torch.equal(src, src2) and torch.equal(s.mask, s2.mask)
    assert torch.equal(s.h, s2.h) and torch.equal(s.a, s2.a)


@pytest.mark.parametrize("gamma_e", [1.0, 0.0])
def test_event_shares_follow_omega_where_events_can_happen(gen, gamma_e):
    """A quarter each (a third each of none, remove, add without learning), times the share of
    firms where the event can happen: not a removal or learning in an empty firm, nor an addition
    at the cap."""
    snap = economy()
    p = dataclasses.replace(P, gamma_e=gamma_e)
    _, src, ev = sample_omega_events(p, snap, 20000, generator=gen)
    n = snap.firms.index(src).size()
    possible = {"remove": n > 0, "add": n < P.n_max, "learn": n > 0}
    weight = 0.25 if gamma_e > 0 else 1.0 / 3.0
    for name, can in possible.items():
        expected = (weight if name != "learn" or gamma_e > 0 else 0.0) * float(can.double().mean())
        share = float((ev == NAMES.index(name)).double().mean())
        assert abs(share - expected) < 3.29 * math.sqrt(expected * (1 - expected) / 20000) + 1e-12, name


def test_additions_come_from_unmatched_and_employed_in_the_meeting_split(gen):
    """An added worker is an unmatched worker with probability s^N, an employed one otherwise."""
    snap = economy()
    s, src, ev = sample_omega_events(P, snap, 20000, generator=gen)
    base = snap.firms.index(src)
    added = (ev == NAMES.index("add")).nonzero().squeeze(-1)
    unmatched = set(snap.unmatched_h.tolist())
    employed = set(snap.firms.h[snap.firms.mask].tolist())
    assert not unmatched & employed  # continuous h: a worker's h says which distribution it came from
    from_n = 0
    for k in added.tolist():
        extra = list((Counter(multiset(s.h[k], s.mask[k])) - Counter(multiset(base.h[k], base.mask[k]))).elements())
        assert extra[0] in unmatched or extra[0] in employed
        from_n += extra[0] in unmatched
    s_n, m = snap.meeting_rates(P).s_n, added.numel()
    assert abs(from_n / m - s_n) < 3.29 * math.sqrt(s_n * (1 - s_n) / m)


def test_subset_of_firms_is_respected(gen):
    snap = economy()
    held_out = torch.arange(0, 300, 3)
    _, src = sample_omega(P, snap, 500, held_out, gen)
    assert bool(torch.isin(src, held_out).all())


def test_employed_draws_carry_their_surplus_at_their_own_firm(gen):
    snap = economy()
    vf = SetFunctionValue(crowding_value(P))
    market = Market(P, seed=0, heldout_fraction=0.2)
    market.refresh(snap)
    d = market.draws(0, 400, gen)
    with torch.no_grad():
        draws = d.with_surplus(vf, P)
    full = surplus(vf, P, snap.firms)  # Δ(S, x_i) of every worker of every firm
    # each draw's (h, Δ) is one of its firm's workers and that worker's Δ
    for k in range(400):
        f = int(d.firm_e[k])
        hit = (snap.firms.h[f] == draws.h_e[k]) & snap.firms.mask[f]
        assert bool(hit.any())
        torch.testing.assert_close(draws.delta_p[k], full[f][hit][0])


def test_poachers_are_drawn_in_proportion_to_size_plus_one(gen):
    snap = economy()
    _, idx = snap.sample_poachers(40000, gen)
    n = snap.firms.size().double()
    drawn = snap.firms.size()[idx]
    for size in range(P.n_max + 1):
        expected = float(((n == size) * (n + 1)).sum() / (n + 1).sum())
        share = float((drawn == size).double().mean())
        assert abs(share - expected) < 3.29 * math.sqrt(expected * (1 - expected) / 40000) + 1e-12, size


@pytest.mark.parametrize("stratified", [True, False])
def test_the_kept_market_order_draws_what_a_fresh_sort_draws(stratified):
    """The DataModule sorts a market's workers once (``market_order``) and keeps the order for every
    batch until the next refresh; the draws equal those of a fresh sort with the same generator, the
    stratified ones come from each stratum of the sorted workers, and a refresh replaces the order."""
    from lotj.config import load_config
    from lotj.sim.meeting_draws import market_order, sample_draws, worker_sort_key
    from lotj.train.datamodule import OmegaDataModule

    cfg = load_config(["conf=smoke", "sim.n_firms=200", f"solver.stratified={stratified}"])
    dm = OmegaDataModule(cfg)
    dm.setup()
    snap, kappa = dm.market, dm.kappa
    for seed in range(3):
        kept = dm.draws(8, 8, torch.Generator().manual_seed(seed))
        fresh = sample_draws(snap, 8, 8, torch.Generator().manual_seed(seed), stratified=stratified, kappa=kappa)
        for f in dataclasses.fields(kept):
            a, b = getattr(kept, f.name), getattr(fresh, f.name)
            if isinstance(a, torch.Tensor):
                assert torch.equal(a, b), f.name
            elif a is not None:
                assert all(torch.equal(x, y) for x, y in zip(dataclasses.astuple(a), dataclasses.astuple(b))), f.name
    order = dm._order
    assert order is not None and order.stratified == stratified
    dm.draws(8, 8, torch.Generator().manual_seed(0))
    assert dm._order is order  # kept across batches
    if stratified:
        # draw k of 8 lies in the k-th eighth of the workers sorted by the key
        d = dm.draws(8, 8, torch.Generator().manual_seed(5))
        key = worker_sort_key(snap.unmatched_h, snap.unmatched_a, kappa)
        rank = (key.unsqueeze(0) < worker_sort_key(d.h_n, d.a_n, kappa).unsqueeze(1)).sum(1)
        k, n = torch.arange(8), key.numel()
        assert torch.all((k * n // 8 <= rank) & (rank <= (k + 1) * n // 8)), (rank, n)
    else:
        assert torch.equal(order.employed, snap.firms.mask.reshape(-1).nonzero().squeeze(-1))
    with pytest.raises(ValueError, match="another choice of stratified"):
        sample_draws(snap, 8, 8, stratified=not stratified, kappa=kappa, order=order)
    if stratified:
        with pytest.raises(ValueError, match="or kappa"):
            sample_draws(snap, 8, 8, stratified=True, kappa=kappa + 1, order=order)
    # a new market (a simulated year on, pooled with the last one): the next draws are its own
    sim = Simulator(cfg.economy, 200, 0.05, seed=1, snapshot=snap)
    sim.advance(SetFunctionValue(crowding_value(cfg.economy)), 1.0)
    new = sim.snapshot()
    with pytest.raises(ValueError, match="another market"):
        sample_draws(new, 8, 8, stratified=stratified, kappa=kappa, order=order)
    for window in (1, 2):
        dm.window = window
        dm.refresh(new)
        assert dm.market.n_firms == 200 * window
        kept = dm.draws(8, 8, torch.Generator().manual_seed(7))
        fresh = sample_draws(dm.market, 8, 8, torch.Generator().manual_seed(7), stratified=stratified, kappa=kappa)
        assert torch.equal(kept.h_n, fresh.h_n) and torch.equal(kept.firm_e, fresh.firm_e)
        assert torch.equal(kept.slot, fresh.slot) and torch.equal(kept.s_p.h, fresh.s_p.h)
        assert torch.equal(dm._order.employed, market_order(dm.market, stratified=stratified, kappa=kappa).employed)
