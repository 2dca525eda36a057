"""The step's compact bookkeeping (lotj/sim/events.py, lotj/sim/population.py; docs/simulator.md "Cost"):
the one-pass selection of the drawn events, the admission rule restricted to its first events, and the
population updates that take the workers' firms from the caller."""

from __future__ import annotations

import torch

from lotj.economy.params import EconomyParams
from lotj.sim.events import EventDraws, StepProbabilities, admit_in_time_order, draw_destinations
from lotj.sim.population import Population
from lotj.sim.simulator import Simulator
from lotj.sim.stats import COUNTERS


def reference_events(draws: EventDraws, u: torch.Tensor, employed: torch.Tensor) -> dict[str, torch.Tensor]:
    """Kind by kind from the same uniforms: places inside the segment; breaks and λ shocks on the job;
    meetings of unmatched places thinned from max(p^E, p^N) to p^N, every meeting of an employed place kept
    (the simulator thins those by the status at the meeting's time)."""
    cum, base = draws._positions(1.0 - u[:, 0], draws.inv_log, draws.starts)
    pos = cum - base[draws.kind]
    out = {}
    top = max(draws.meet_max, 1e-300)
    for k, name in enumerate(("retire", "brk", "reneg", "meet", "death", "learn")):
        s, r = draws.start_list[k], draws.rows[k]
        assert r == 0 or int(pos[s + r - 1]) >= draws.places[k], "segment too short for the reference"
        p, uk = pos[s : s + r], u[s : s + r]
        keep = p < draws.places[k]
        p, uk = p[keep], uk[keep]
        if name in ("brk", "reneg"):
            on_job = employed[p]
            p, uk = p[on_job], uk[on_job]
        if name == "meet":
            emp = employed[p]
            take = emp | (uk[:, 2] < draws.probs.meet_n / top)
            p, uk = p[take], uk[take]
        out[name], out[name + "_u"] = p, uk
    return out


def test_one_pass_selection_equals_the_kind_by_kind_rule():
    p = EconomyParams(delta_f=0.5, psi_n=2.0)
    draws = EventDraws(StepProbabilities.from_params(p, 0.05), 700, 140, "cpu")
    gen = torch.Generator().manual_seed(11)
    employed = torch.rand(700, generator=gen) < 0.6
    sizes = torch.randint(0, 5, (140,), generator=gen)
    for _ in range(50):
        state = gen.get_state()
        ev = draws.draw(employed, sizes, gen)
        ref_gen = torch.Generator().manual_seed(0)
        ref_gen.set_state(state)
        u = torch.rand(draws.total, 4, generator=ref_gen, dtype=torch.float64)
        ref = reference_events(draws, u, employed)
        for name, got, t in (
            ("retire", ev.retire, ev.retire_t),
            ("brk", ev.brk, ev.brk_t),
            ("reneg", ev.reneg, ev.reneg_t),
            ("meet", ev.meeters, ev.meet_t),
        ):
            assert torch.equal(got, ref[name]), name
            assert torch.equal(t, ref[name + "_u"][:, 1]), name
        assert torch.equal(ev.death, ref["death"]) and torch.equal(ev.learn, ref["learn"])
        assert torch.equal(ev.dest, draw_destinations(sizes, ref["meet_u"][:, 3]))


def test_admission_of_the_first_events_only():
    gen = torch.Generator().manual_seed(4)
    cap, n_firms, k = 3, 20, 120
    start = torch.randint(0, cap + 1, (n_firms,), generator=gen)
    firm = torch.randint(0, n_firms, (k,), generator=gen)
    time = torch.rand(k, generator=gen, dtype=torch.float64)
    step = torch.randint(-1, 2, (k,), generator=gen)
    step[firm.argsort()[: n_firms // 2]] = -1
    full, admitted, rank = admit_in_time_order(firm, time, step, start, cap)
    for n in (0, 1, 37, k):
        f, a, r = admit_in_time_order(firm, time, step, start, cap, n)
        assert torch.equal(f, full[:n]) and torch.equal(a, admitted[:n]) and torch.equal(r, rank[:n])


def test_population_updates_keep_both_views():
    p = EconomyParams(n_max=6)
    pop = Simulator(p, 60, 0.02, seed=2).pop
    gen = torch.Generator().manual_seed(3)
    employed = (pop.firm >= 0).nonzero().squeeze(1)
    leaving = employed[torch.randperm(employed.numel(), generator=gen)[:40]]
    half = leaving.numel() // 2
    pop.detach(leaving[:half])
    pop.detach(leaving[half:], pop.firm[leaving[half:]])  # firms given by the caller
    pop.check()
    assert bool((pop.firm[leaving] == -1).all())
    before = pop.next_worker_id
    h, a = torch.full((half,), 1.5, dtype=pop.h.dtype), torch.full((half,), 0.9, dtype=pop.a.dtype)
    pop.renew_workers(leaving[:half], h, a)
    assert pop.next_worker_id == before + half
    assert torch.equal(pop.worker_id[leaving[:half]], torch.arange(before, before + half))
    assert bool((pop.h[leaving[:half]] == 1.5).all()) and bool((pop.a[leaving[:half]] == 0.9).all())
    pop.check()
    free = (pop.slot_worker < 0).nonzero()[:5]
    workers = leaving[:5]
    pop.attach(workers, free[:, 0], free[:, 1])
    pop.check()
    assert torch.equal(pop.firm[workers], free[:, 0]) and torch.equal(pop.slot[workers], free[:, 1])
    assert isinstance(Population.from_state_dict(pop.state_dict(), "cpu"), Population)


def test_a_kept_snapshot_is_a_copy_that_later_steps_leave_alone():
    """Market windows keep old snapshots: a firm death (which rewrites z, q of its row in place) or
    any other event after the snapshot must not show in it."""
    from reference import crowding_value

    from lotj.economy.value import SetFunctionValue

    p = EconomyParams(n_max=6, delta_f=0.5, gamma_e=0.5)  # many deaths and learning events
    sim = Simulator(p, 200, 0.02, seed=4)
    vf = SetFunctionValue(crowding_value(p))
    sim.advance(vf, 0.5)
    snap = sim.snapshot()
    kept = [t.clone() for t in (snap.firms.z, snap.firms.q, snap.firms.h, snap.firms.a, snap.firms.mask)]
    kept += [snap.unmatched_h.clone(), snap.unmatched_a.clone()]
    sim.advance(vf, 1.0)
    assert sim.acc.counts[COUNTERS.index("deaths")] > 0
    after = (
        snap.firms.z,
        snap.firms.q,
        snap.firms.h,
        snap.firms.a,
        snap.firms.mask,
        snap.unmatched_h,
        snap.unmatched_a,
    )
    for old, new in zip(kept, after):
        assert torch.equal(old, new)
    assert not torch.equal(sim.snapshot().firms.z, snap.firms.z)  # the economy itself did move on
