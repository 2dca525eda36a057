"""The step's event draws and the in-step admission rule (MODEL.md sections 1–3, 10; docs/simulator.md)."""

from __future__ import annotations

import math

import pytest
import torch

from lotj.economy.params import EconomyParams
from lotj.sim.events import EventDraws, StepProbabilities, admit_in_time_order

Z = 3.29  # two-sided 0.1%


def reference_admission(firm, time, step, start_size, cap):
    """Event by event in time order at each firm: an offer is admitted iff the firm is below the cap."""
    size = {int(f): int(start_size[int(f)]) for f in firm}
    full = [False] * len(firm)
    admitted = [False] * len(firm)
    rank = [-1] * len(firm)
    taken = dict.fromkeys(size, 0)
    for i in sorted(range(len(firm)), key=lambda i: (int(firm[i]), float(time[i]))):
        f = int(firm[i])
        full[i] = size[f] >= cap
        if int(step[i]) < 0:
            size[f] -= 1
        elif int(step[i]) > 0 and not full[i]:
            size[f] += 1
            admitted[i] = True
            rank[i] = taken[f]
            taken[f] += 1
    return full, admitted, rank


def test_admission_in_time_order_matches_the_event_by_event_rule():
    gen = torch.Generator().manual_seed(3)
    cap, n_firms = 4, 30
    start = torch.randint(0, cap + 1, (n_firms,), generator=gen)
    firm, step = [], []
    for f in range(n_firms):
        firm += [f] * int(start[f])  # up to one departure per worker present
        step += [-1] * int(start[f])
    departures = torch.tensor(firm)
    keep = torch.rand(departures.numel(), generator=gen) < 0.4
    arrivals = torch.randint(0, n_firms, (150,), generator=gen)
    firm = torch.cat([departures[keep], arrivals])
    step = torch.cat([torch.full((int(keep.sum()),), -1), torch.randint(0, 2, (150,), generator=gen)])
    time = torch.rand(firm.numel(), generator=gen, dtype=torch.float64)
    full, admitted, rank = admit_in_time_order(firm, time, step, start, cap)
    ref_full, ref_admitted, ref_rank = reference_admission(firm, time, step, start, cap)
    assert full.tolist() == ref_full
    assert admitted.tolist() == ref_admitted
    assert rank[admitted].tolist() == [r for r, a in zip(ref_rank, ref_admitted) if a]
    assert bool(full.any()) and bool(admitted.any()) and bool((~admitted & (step > 0)).any())


@pytest.mark.parametrize("sds,extra", [(6.0, 8.0), (0.0, 0.0)])
def test_event_draws_are_independent_bernoulli_draws(sds, extra):
    """Counts of every kind match n·p over many steps, positions are distinct and in range; with no
    margin (sds = extra = 0) about half the steps extend a segment and the counts stay exact."""
    p = EconomyParams(delta_f=0.5, psi_n=2.0)
    probs = StepProbabilities.from_params(p, 0.05)
    n_workers, n_firms = 600, 120
    draws = EventDraws(probs, n_workers, n_firms, "cpu", sds=sds, extra=extra)
    gen = torch.Generator().manual_seed(5)
    employed = torch.rand(n_workers, generator=gen) < 0.6
    sizes = torch.randint(0, 5, (n_firms,), generator=gen)
    steps = 400
    totals = dict.fromkeys(("death", "learn", "retire", "brk", "reneg", "meet_rows_e", "meet_e", "meet_n"), 0)
    for _ in range(steps):
        ev = draws.draw(employed, sizes, gen)
        for x, n in ((ev.death, n_firms), (ev.learn, n_firms), (ev.retire, n_workers), (ev.meeters, n_workers)):
            assert x.numel() == x.unique().numel() and (x.numel() == 0 or (0 <= int(x.min()) and int(x.max()) < n))
        assert bool(employed[ev.brk].all()) and bool(employed[ev.reneg].all())
        assert bool(((ev.meet_t >= 0) & (ev.meet_t < 1)).all())
        totals["death"] += ev.death.numel()
        totals["learn"] += ev.learn.numel()
        totals["retire"] += ev.retire.numel()
        totals["brk"] += ev.brk.numel()
        totals["reneg"] += ev.reneg.numel()
        on_job = employed[ev.meeters]
        assert bool((ev.meet_u[~on_job] < draws.thin_n).all())
        totals["meet_rows_e"] += int(on_job.sum())
        totals["meet_e"] += int((on_job & (ev.meet_u < draws.thin_e)).sum())  # the simulator's thinning
        totals["meet_n"] += int((~on_job).sum())
    n_e, n_n = int(employed.sum()), int((~employed).sum())
    expected = {
        "death": n_firms * probs.death,
        "learn": n_firms * probs.learn,
        "retire": n_workers * probs.retire,
        "brk": n_e * probs.brk,
        "reneg": n_e * probs.reneg,
        "meet_rows_e": n_e * max(probs.meet_e, probs.meet_n),  # thinned by the caller
        "meet_e": n_e * probs.meet_e,
        "meet_n": n_n * probs.meet_n,
    }
    for k, mu in expected.items():
        mean = mu * steps
        assert abs(totals[k] - mean) < Z * math.sqrt(mean), (k, totals[k], mean)
