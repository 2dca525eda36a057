"""Decisions at a firm in time order within a step (docs/simulator.md, step 5; MODEL.md section 4).

Two meetings at one firm in one step are decided one after the other: the second sees the worker
offered at the first. Without it a firm near its best size over-hires at a coarse step."""

from __future__ import annotations

import pytest
import torch
from reference import crowding_value

from lotj.economy.params import EconomyParams
from lotj.economy.value import SetFunctionValue
from lotj.nets import ValueNet
from lotj.sim.events import count_before, earlier_flagged, time_order
from lotj.sim.phases import OpenMeetings
from lotj.sim.simulator import SPECULATIVE_RANK, Simulator


def test_time_order_sorts_by_firm_then_time_and_marks_each_firms_first_event():
    firm = torch.tensor([2, 0, 2, 0, 1])
    time = torch.tensor([0.9, 0.5, 0.1, 0.2, 0.3], dtype=torch.float64)
    order, first = time_order(firm, time)
    assert order.tolist() == [3, 1, 4, 2, 0]
    assert first.tolist() == [0, 0, 2, 3, 3]


def test_earlier_flagged_events_at_the_same_firm_by_hand():
    # sorted events of firms 0 0 0 1 1 2, flagged (offers) at positions 0, 2, 3
    first = torch.tensor([0, 0, 0, 3, 3, 5])
    flag = torch.tensor([True, False, True, True, False, False])
    assert count_before(first, flag).tolist() == [0, 1, 1, 0, 1, 0]
    row, pos = earlier_flagged(first, flag, torch.tensor([1, 2, 4, 5]))
    # position 1 sees 0; position 2 sees 0 (1 is not flagged); position 4 sees 3; position 5 sees none
    assert row.tolist() == [0, 1, 2]
    assert pos.tolist() == [0, 0, 3]


def best_size_value(p: EconomyParams, best: int) -> SetFunctionValue:
    """``V(S) = ΣU + c·min(n, best) − c·max(n − best, 0)``: a hire adds ``c`` up to ``best`` workers and
    costs ``c`` beyond, so ``Δ(S⊕x, x) > 0`` iff the firm has fewer than ``best`` workers."""
    u, c = p.unemployment_coef, 1.0

    def fn(z, q, h, a, mask):
        n = mask.sum(-1).to(h.dtype)
        return u * torch.where(mask, h, torch.zeros_like(h)).sum(-1) + c * (
            torch.clamp(n, max=best) - torch.clamp(n - best, min=0)
        )

    return SetFunctionValue(fn)


@pytest.mark.parametrize("dt", [0.5, 0.1])
def test_a_firm_never_hires_beyond_its_best_size_at_a_coarse_step(dt, device):
    """Only hires from non-employment and no separation: every firm grows to exactly ``best`` and stops.
    At dt = 0.5 a firm of 2 meets about (n + 1)·ω·dt ≈ 1.3 workers per step; judged on one state,
    two hires in a step took it to 4."""
    best = 3
    p = EconomyParams(
        n_max=8, psi_n=2.0, psi_e=0.0, delta_m=0.0, delta_r=0.0, delta_f=0.0, lam=0.0, gamma_e=0.0, n_w=4.0
    )
    sim = Simulator(p, 200, dt, seed=3, initial_mean_size=0.0, device=device)
    sim.advance(best_size_value(p, best), 6.0)
    sizes = sim.pop.size
    assert int(sizes.max()) == best
    assert float((sizes == best).double().mean()) > 0.95  # the hires did happen
    assert sim.statistics().counts["hires"] == int(sizes.sum())


def test_the_network_decides_in_time_order_as_the_explicit_sets_do(device):
    """The pooled path (kept pools plus the earlier offers' terms) and the explicit sets of any value
    function give the same path at a step coarse enough for several meetings per firm."""
    p = EconomyParams(n_max=8)
    torch.manual_seed(0)
    net = ValueNet(p, embed_dim=8, phi_width=16, phi_depth=2, rho_width=16, rho_depth=2).to(torch.float64)
    net = net.to(device)
    with torch.no_grad():
        for module in (net.head[-1], net.worker_value[-1], net.firm_type[-1]):
            for prm in module.parameters():
                prm.normal_(0.0, 0.1)
    paths = []
    for vf in (net, SetFunctionValue(net.set_function)):
        sim = Simulator(p, 200, 0.1, seed=8, device=device)
        sim.advance(vf, 3.0)
        sim.pop.check()
        paths.append((sim.pop.firm.clone(), sim.pop.h.clone(), sim.statistics().counts))
    assert paths[0][2]["after_offer"] > 50  # meetings after an earlier offer at their firm, decided again
    assert torch.equal(paths[0][0], paths[1][0])
    torch.testing.assert_close(paths[0][1], paths[1][1], rtol=0, atol=0)
    assert paths[0][2] == paths[1][2]


@pytest.mark.parametrize("crowding", [0.002, 0.05])
def test_offers_equal_a_loop_over_each_firms_meetings_in_time_order(crowding, device):
    """``Simulator._decide`` against a per-firm Python loop on explicit sets: each meeting, in time order,
    is decided on the decision state plus the workers offered before it at the same firm, or on the
    decision state alone where those fill the firm (the cap rule of the arrivals settles it). Firms get
    1–6 meetings, so the second to fourth meetings (valued in the step's evaluation) and the later ones
    (evaluated apart) are all exercised; the small crowding makes nearly every hire pay, so the offers
    fill firms, the larger one makes later offers depend on the earlier ones."""
    p = EconomyParams(n_max=8)
    vf = SetFunctionValue(crowding_value(p, crowding=crowding))
    sim = Simulator(p, 60, 0.02, seed=2, device=device)
    sim.advance(vf, 2.0)
    pop = sim.pop
    gen = torch.Generator().manual_seed(1)
    firms = (pop.size < p.n_max).nonzero().squeeze(1)[:20]
    o_d = firms.repeat_interleave(torch.randint(1, 7, (firms.numel(),), generator=gen).to(device))
    seats = torch.randperm(pop.n_workers, generator=gen).to(device)
    seats = seats[~torch.isin(pop.firm[seats], firms)][: o_d.numel()]  # nobody meets its own firm
    o_w, o_t = seats, torch.rand(o_d.numel(), generator=gen, dtype=torch.float64).to(device)
    di = torch.unique(o_w[pop.firm[o_w] >= 0])
    own_row = torch.searchsorted(di, o_w)
    own_row = torch.where(pop.firm[o_w] >= 0, own_row, -1)
    delta_di, offers = sim._decide(vf, di, OpenMeetings(o_w, o_d, *time_order(o_d, o_t)), own_row)
    own_o, delta_o, offer = offers.own_delta, offers.delta_hire, offers.offer

    u = p.unemployment_coef

    def value(firm, workers):
        s = pop.firm_batch(firm.view(1))
        for w in workers:
            s, added = s.add(pop.h[w].view(1), pop.a[w].view(1))
            assert bool(added)
        return vf.value(s)[0]

    seen = {"after": 0, "late": 0, "full": 0}
    for k in firms.tolist():
        at_k = (o_d == k).nonzero().squeeze(1)
        offered = []
        for rank, m in enumerate(at_k[torch.argsort(o_t[at_k])].tolist()):
            w = o_w[m]
            own = 0.0
            if pop.firm[w] >= 0:
                j = pop.firm[w]
                s = pop.firm_batch(j.view(1))
                own = float(vf.value(s)[0] - vf.value(s.remove(pop.slot[w].view(1)))[0] - u * pop.h[w])
                torch.testing.assert_close(own_o[m].cpu(), torch.tensor(own, dtype=own_o.dtype))
            seen["after"] += bool(offered)
            seen["late"] += bool(offered) and rank > SPECULATIVE_RANK  # evaluated apart
            firm = torch.tensor(k, device=pop.h.device)
            if int(pop.size[k]) + len(offered) >= p.n_max:  # the offers fill the firm: the decision state
                seen["full"] += 1
                offered_here = []
            else:
                offered_here = offered
            delta = value(firm, [*offered_here, w]) - value(firm, offered_here) - u * pop.h[w]
            torch.testing.assert_close(delta_o[m], delta, rtol=1e-12, atol=1e-12)
            assert bool(offer[m]) == bool(delta > max(own, 0.0))
            if bool(offer[m]):
                offered.append(w)
    assert seen["after"] > 10 and seen["late"] > 0
    if crowding < 0.01:
        assert seen["full"] > 0
