"""The step's compact bookkeeping (lotj/sim/events.py, lotj/sim/population.py; docs/simulator.md "Cost"):
the one-pass selection of the drawn events, the admission rule restricted to its first events, and the
population updates that take the workers' firms from the caller."""

from __future__ import annotations

import math

import torch

from lotj.economy.params import EconomyParams
from lotj.sim.events import EventDraws, StepProbabilities, admit_in_time_order
from lotj.sim.population import Population
from lotj.sim.simulator import Simulator
from lotj.sim.stats import COUNTERS

#: The kinds in the order of their segments in the uniform tensor, with their probability's name in
#: StepProbabilities and whether their places are firms (else worker seats): docs/simulator.md, "Cost".
KINDS = (
    ("retire", "retire", False),
    ("brk", "brk", False),
    ("reneg", "reneg", False),
    ("meet", None, False),
    ("death", "death", True),
    ("learn", "learn", True),
)


def reference_events(
    probs: StepProbabilities, u: torch.Tensor, employed: list[bool], n_firms: int, rows: list[int]
) -> dict[str, list]:
    """An independent reading of the documented draw, one row at a time in plain Python: kind ``k`` owns
    ``rows[k]`` consecutive rows of ``u``; its events fall at places ``g₁ − 1, g₁ + g₂ − 1, …`` with
    gaps ``g = ⌊log(1 − u₀) / log(1 − p)⌋ + 1`` (geometric: each place fires with probability p); an event
    past the last place is dropped; breaks and λ shocks count for employed seats only; meetings are drawn
    at max(p^E, p^N) and an unmatched seat keeps one iff ``u₂ < p^N / max(p^E, p^N)`` (an employed seat keeps
    every row: the simulator thins it later). Returns each kind's places and rows of ``u``."""
    top = max(probs.meet_e, probs.meet_n)
    out: dict[str, list] = {}
    start = 0
    for (name, attr, over_firms), r in zip(KINDS, rows):
        p = top if attr is None else getattr(probs, attr)
        places = n_firms if over_firms else len(employed)
        kept, kept_u = [], []
        pos = -1
        for i in range(start, start + r):
            ui = u[i].tolist()
            pos += math.floor(math.log(1.0 - ui[0]) * (1.0 / math.log1p(-p))) + 1
            if pos >= places:
                continue
            if name in ("brk", "reneg") and not employed[pos]:
                continue
            if name == "meet" and not employed[pos] and not ui[2] < probs.meet_n / top:
                continue
            kept.append(pos)
            kept_u.append(ui)
        assert r == 0 or pos >= places, "segment too short for the reference"
        out[name], out[name + "_u"] = kept, kept_u
        start += r
    return out


def reference_destination(sizes: list[int], u: float) -> int:
    """The firm met: the first k with u · Σ(n + 1) < Σ_{j ≤ k} (n_j + 1) (probability ∝ n_k + 1)."""
    total = sum(n + 1 for n in sizes)
    cum = 0
    for k, n in enumerate(sizes):
        cum += n + 1
        if u * total < cum:
            return k
    return len(sizes) - 1


def test_one_pass_selection_equals_the_kind_by_kind_rule():
    p = EconomyParams(delta_f=0.5, psi_n=2.0)
    draws = EventDraws(StepProbabilities.from_params(p, 0.05), 700, 140, "cpu")
    gen = torch.Generator().manual_seed(11)
    employed = torch.rand(700, generator=gen) < 0.6
    sizes = torch.randint(0, 5, (140,), generator=gen)
    n_events = 0
    for _ in range(50):
        state = gen.get_state()
        ev = draws.draw(employed, sizes, gen)
        ref_gen = torch.Generator().manual_seed(0)
        ref_gen.set_state(state)
        u = torch.rand(draws.total, 4, generator=ref_gen, dtype=torch.float64)
        ref = reference_events(draws.probs, u, employed.tolist(), 140, draws.rows)
        for name, got, t in (
            ("retire", ev.retire, ev.retire_t),
            ("brk", ev.brk, ev.brk_t),
            ("reneg", ev.reneg, ev.reneg_t),
            ("meet", ev.meeters, ev.meet_t),
        ):
            assert got.tolist() == ref[name], name
            assert t.tolist() == [row[1] for row in ref[name + "_u"]], name
        assert ev.death.tolist() == ref["death"] and ev.learn.tolist() == ref["learn"]
        assert ev.dest.tolist() == [reference_destination(sizes.tolist(), row[3]) for row in ref["meet_u"]]
        n_events += len(ref["meet"]) + len(ref["brk"]) + len(ref["death"])
    assert n_events > 500  # the comparison saw many events of every kind


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
