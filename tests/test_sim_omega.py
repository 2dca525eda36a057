"""Ω, the simulated χ and its one-event neighbours (MODEL.md section 6), and χ^E draws with Δ."""

from __future__ import annotations

import math
from collections import Counter

import torch

from lotj.economy.params import EconomyParams
from lotj.economy.surplus import surplus
from lotj.economy.technology import learning_step
from lotj.economy.value import SetFunctionValue
from lotj.sim.omega import OMEGA_EVENTS, sample_omega
from lotj.sim.reference import crowding_value
from lotj.sim.samplers import employed_with_surplus
from lotj.sim.simulator import Simulator

P = EconomyParams(n_max=6)


def economy():
    sim = Simulator(P, 300, 0.05, seed=1, initial_mean_size=4.0)
    return sim.snapshot()


def multiset(h: torch.Tensor, mask: torch.Tensor) -> list[float]:
    return sorted(h[mask].tolist())


def test_every_state_is_its_source_firm_after_at_most_one_event(gen):
    snap = economy()
    out = sample_omega(P, snap, 2000, gen)
    s, src, ev = out.states, out.source, out.event
    base = snap.firms.index(src)
    workers = set(snap.unmatched_h.tolist()) | set(snap.firms.h[snap.firms.mask].tolist())
    learned = learning_step(base.h, base.a, base.q, base.mask, P.theta_plus, P.theta_minus)
    assert torch.equal(s.z, base.z) and torch.equal(s.q, base.q)
    assert bool((s.size() <= P.n_max).all())
    for k in range(2000):
        name = OMEGA_EVENTS[int(ev[k])]
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


def test_event_shares_follow_the_weights_where_events_can_happen(gen):
    snap = economy()
    weights = (0.1, 0.2, 0.3, 0.4)
    out = sample_omega(P, snap, 20000, gen, weights=weights)
    n = snap.firms.index(out.source).size()
    possible = {1: (n > 0), 2: (n < P.n_max), 3: (n > 0)}
    for code, w in enumerate(weights):
        if code == 0:
            continue
        eligible = float(possible[code].double().mean())
        share = float((out.event == code).double().mean())
        expected = w * eligible
        assert abs(share - expected) < 3.29 * math.sqrt(expected * (1 - expected) / 20000), OMEGA_EVENTS[code]


def test_subset_of_firms_is_respected(gen):
    snap = economy()
    held_out = torch.arange(0, 300, 3)
    out = sample_omega(P, snap, 500, gen, firms=held_out)
    assert bool(torch.isin(out.source, held_out).all())


def test_employed_draws_carry_their_surplus_at_their_own_firm(gen):
    snap = economy()
    vf = SetFunctionValue(crowding_value(P))
    draws = employed_with_surplus(vf, P, snap, 400, gen)
    full = surplus(vf, P, snap.firms)  # Δ(S, x_i) of every worker of every firm
    # each draw's (h, Δ) is one of its firm's workers and that worker's Δ
    for k in range(400):
        f = int(draws.firm[k])
        hit = (snap.firms.h[f] == draws.h[k]) & snap.firms.mask[f]
        assert bool(hit.any())
        torch.testing.assert_close(draws.delta[k], full[f][hit][0])


def test_poachers_are_drawn_in_proportion_to_size_plus_one(gen):
    snap = economy()
    _, idx = snap.sample_poachers(40000, gen)
    n = snap.firms.size().double()
    drawn = snap.firms.size()[idx]
    for size in range(P.n_max + 1):
        expected = float(((n == size) * (n + 1)).sum() / (n + 1).sum())
        share = float((drawn == size).double().mean())
        assert abs(share - expected) < 3.29 * math.sqrt(expected * (1 - expected) / 40000) + 1e-12, size
