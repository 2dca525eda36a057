"""Own renegotiation Q_i and own outside meetings P_i (MODEL.md section 5), by hand."""

import pytest
import torch

from lotj.economy.wages import (
    Reset,
    hire_target,
    leave_indicator,
    meeting_outcome,
    outside_meeting_gain,
    poached_target,
    renegotiation_gain,
    renegotiation_outcome,
)

U = 10.0


def _t(*xs):
    return [torch.tensor(float(x)) for x in xs]


@pytest.mark.parametrize(
    "W, delta, Q, event",
    [
        (12.0, -1.0, -2.0, Reset.SEPARATE),  # Δ < 0: the match ends, value U
        (8.0, -1.0, 2.0, Reset.SEPARATE),  # Δ < 0 with W < U: still separation (U − W)
        (8.0, 3.0, 2.0, Reset.RENEG_RAISE),  # W < U: raised to U
        (14.0, 3.0, -1.0, Reset.RENEG_CUT),  # W > U + Δ = 13: cut to 13
        (11.5, 3.0, 0.0, Reset.NONE),  # inside [10, 13]
        (10.0, 3.0, 0.0, Reset.NONE),  # lower edge
        (13.0, 3.0, 0.0, Reset.NONE),  # upper edge
        (10.0, 0.0, 0.0, Reset.NONE),  # Δ = 0 is not a separation
    ],
)
def test_renegotiation_four_regimes(W, delta, Q, event):
    W_, U_, d_ = _t(W, U, delta)
    assert renegotiation_gain(W_, U_, d_).item() == pytest.approx(Q, abs=1e-12)
    ev, target = renegotiation_outcome(W_, U_, d_)
    assert ev.item() == int(event)
    assert target.item() == pytest.approx(W + Q, abs=1e-12)


@pytest.mark.parametrize(
    "W, dk, dp, full, P, event",
    [
        # row 1: Δ_k < 0: U − W; to the poacher if it gains (Δ_p > 0) and has room, else unmatched
        (12.0, -1.0, 5.0, False, -2.0, Reset.POACHED),
        (12.0, -1.0, -0.5, False, -2.0, Reset.SEPARATE),
        (12.0, -1.0, 5.0, True, -2.0, Reset.SEPARATE),  # poacher at the cap: still separates (section 10)
        (8.0, -1.0, 5.0, False, 2.0, Reset.POACHED),
        # row 2: 0 ≤ Δ_k < Δ_p: moves, paid its full surplus at k: Δ_k + U − W
        (11.0, 3.0, 4.0, False, 2.0, Reset.POACHED),
        (14.0, 3.0, 4.0, False, -1.0, Reset.POACHED),
        (11.0, 0.0, 0.5, False, -1.0, Reset.POACHED),
        # row 3: Δ_k ≥ Δ_p and W > Δ_k + U: firm participation binds
        (14.0, 3.0, 2.0, False, -1.0, Reset.MEETING_CUT),
        (14.0, 3.0, -2.0, False, -1.0, Reset.MEETING_CUT),
        # row 4: W < max{Δ_p, 0} + U: counter-offer
        (11.0, 3.0, 2.0, False, 1.0, Reset.COUNTER_OFFER),
        (9.0, 3.0, -2.0, False, 1.0, Reset.COUNTER_OFFER),  # W < U: the outside option alone
        (11.0, 3.0, 3.0, False, 2.0, Reset.COUNTER_OFFER),  # Δ_p = Δ_k: no move (needs Δ_p > Δ_k); matched
        # row 5: otherwise nothing
        (12.5, 3.0, 2.0, False, 0.0, Reset.NONE),
        (12.0, 3.0, 2.0, False, 0.0, Reset.NONE),  # W = max{Δ_p,0} + U exactly
        (13.0, 3.0, 2.0, False, 0.0, Reset.NONE),  # W = Δ_k + U exactly
        (10.5, 3.0, -2.0, False, 0.0, Reset.NONE),
        # a poacher at the cap makes no offer: with Δ_k ≥ 0 nothing happens (MODEL.md section 10)
        (11.0, 3.0, 4.0, True, 0.0, Reset.NONE),
        (14.0, 3.0, 2.0, True, 0.0, Reset.NONE),
        (9.0, 3.0, 2.0, True, 0.0, Reset.NONE),
    ],
)
def test_outside_meeting_every_row(W, dk, dp, full, P, event):
    W_, U_, dk_, dp_ = _t(W, U, dk, dp)
    full_ = torch.tensor(full)
    assert outside_meeting_gain(W_, U_, dk_, dp_, full_).item() == pytest.approx(P, abs=1e-12)
    ev, target = meeting_outcome(W_, U_, dk_, dp_, full_)
    assert ev.item() == int(event)
    assert target.item() == pytest.approx(W + P, abs=1e-12)


def test_outcomes_broadcast_and_vectorise():
    W = torch.tensor([[12.0], [11.0], [14.0]])  # [3, 1]
    dp = torch.tensor([4.0, 2.0, -1.0])  # [3] poachers
    P = outside_meeting_gain(W, torch.tensor(U), torch.tensor(3.0), dp, torch.tensor([False, False, True]))
    expected = torch.tensor([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [-1.0, -1.0, 0.0]])
    assert torch.allclose(P, expected)


def test_targets_and_the_wage_ladder():
    # poached: max{Δ_k, 0} + U at the poacher; hire from non-employment: U
    assert poached_target(torch.tensor(U), torch.tensor(3.0)).item() == 13.0
    assert poached_target(torch.tensor(U), torch.tensor(-3.0)).item() == 10.0
    assert hire_target(torch.tensor(U)).item() == 10.0
    # a counter-offer always raises the value, a meeting cut always lowers it
    g = torch.Generator().manual_seed(0)
    W = 8 + 8 * torch.rand(1000, generator=g)
    dk = -1 + 6 * torch.rand(1000, generator=g)
    dp = -3 + 9 * torch.rand(1000, generator=g)
    ev, T = meeting_outcome(W, torch.tensor(U), dk, dp)
    assert (T[ev == Reset.COUNTER_OFFER] > W[ev == Reset.COUNTER_OFFER]).all()
    assert (T[ev == Reset.MEETING_CUT] < W[ev == Reset.MEETING_CUT]).all()
    # after any reset that keeps the worker at k, its value lies in the bargaining set [U, U + Δ_k]
    stay = (ev == Reset.COUNTER_OFFER) | (ev == Reset.MEETING_CUT)
    assert ((T[stay] >= U - 1e-12) & (T[stay] <= U + dk[stay] + 1e-12)).all()
    ev_r, T_r = renegotiation_outcome(W, torch.tensor(U), dk)
    moved = (ev_r == Reset.RENEG_RAISE) | (ev_r == Reset.RENEG_CUT)
    assert ((T_r[moved] >= U - 1e-12) & (T_r[moved] <= U + dk[moved] + 1e-12)).all()


@pytest.mark.parametrize(
    "delta_j, hire_p, full, leaves",
    [
        (-1.0, -5.0, False, True),  # Δ_j < 0: leaves whatever the poacher offers
        (-1.0, 2.0, True, True),  # ... even if the poacher is at the cap
        (2.0, 3.0, False, True),  # B = 3 − 2 > 0: poached
        (2.0, 2.0, False, False),  # B = 0: stays
        (2.0, 3.0, True, False),  # poacher at the cap makes no offer
        (0.0, 0.5, False, True),  # B = 0.5 − max{0, 0}
    ],
)
def test_leave_indicator_D_j(delta_j, hire_p, full, leaves):
    d = leave_indicator(torch.tensor(delta_j), torch.tensor(hire_p), torch.tensor(full))
    assert bool(d) is leaves
