"""V and W read their meetings from one mechanism (lotj.economy.meetings): weighted draws, void
meetings and exploration states are treated the same in both equations."""

import torch
from test_wages_residual import N_MAX, _random_firms, _v_tensor, _w_tensor
from test_wages_residual import _params as _wage_params

from lotj.economy.hjb import MeetingDraws, v_residual
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.value import SetFunctionValue
from lotj.economy.wages import w_residual
from lotj.economy.worker_value import SetFunctionWorkerValue

RATES = MeetingRates(1.3, 0.35, 0.65)


def _params() -> EconomyParams:
    return _wage_params(
        delta_r=0.05,
        delta_f=0.02,
        lam=1.0,
        gamma_e=1.0,
        psi_e=1.048,
        psi_n=0.314,
        theta_plus=0.165,
        theta_minus=0.034,
        n_max=N_MAX,
    )


def _economy(seed: int = 5):
    g = torch.Generator().manual_seed(seed)
    s = _random_firms(g, 6, N_MAX, full_rows=(3,))
    w = torch.where(s.mask, 0.2 + 1.2 * torch.rand(s.h.shape, generator=g), 0.0)
    poachers = _random_firms(g, 4, N_MAX)
    # three distinct unmatched and three distinct employed workers, with mixed-sign surpluses at their firms
    h_n, a_n = torch.tensor([0.7, 1.0, 1.6]), torch.tensor([1.0, 1.01, 0.99])
    h_e, a_e = torch.tensor([0.8, 1.2, 2.1]), torch.tensor([1.0, 1.0, 1.02])
    delta_e = torch.tensor([-0.4, 0.3, 2.5])
    return s, w, poachers, (h_n, a_n, h_e, a_e, delta_e)


def _duplicated(workers, counts_n, counts_e, firm_e=None):
    """Every worker repeated by its count, equally weighted: the same distribution as weights ∝ counts."""
    h_n, a_n, h_e, a_e, delta_e = workers
    rn, re = torch.tensor(counts_n), torch.tensor(counts_e)
    fe = None if firm_e is None else firm_e.repeat_interleave(re)
    return MeetingDraws(
        h_n.repeat_interleave(rn),
        a_n.repeat_interleave(rn),
        h_e.repeat_interleave(re),
        a_e.repeat_interleave(re),
        delta_e.repeat_interleave(re),
        fe,
    )


def _weighted(workers, counts_n, counts_e, firm_e=None):
    h_n, a_n, h_e, a_e, delta_e = workers
    wn = torch.tensor(counts_n, dtype=torch.float64)
    we = torch.tensor(counts_e, dtype=torch.float64)
    return MeetingDraws(h_n, a_n, h_e, a_e, delta_e, firm_e, wn / wn.sum(), we / we.sum())


def test_w_residual_with_weighted_draws_equals_every_worker_once():
    """Exact meeting sums (solver.exact_sums) weight each distinct worker by its mass; the W residual must
    equal the one from equally weighted draws that list each worker as often as its mass says."""
    p = _params()
    s, w, poachers, workers = _economy()
    vf, wf = SetFunctionValue(_v_tensor(p)), SetFunctionWorkerValue(_w_tensor(p))
    counts_n, counts_e = [1, 3, 2], [2, 1, 4]
    r_dup, W = w_residual(wf, vf, p, s, w, RATES, _duplicated(workers, counts_n, counts_e), poachers)
    r_wt, _ = w_residual(wf, vf, p, s, w, RATES, _weighted(workers, counts_n, counts_e), poachers)
    assert torch.allclose(r_wt, r_dup, rtol=0, atol=1e-12 * float(W.abs().max()))
    # the weights matter: equal weights on the distinct workers give another residual
    r_flat, _ = w_residual(wf, vf, p, s, w, RATES, _weighted(workers, [1, 1, 1], [1, 1, 1]), poachers)
    assert (r_flat - r_dup).abs().max() > 1e-3


def test_v_residual_with_weighted_draws_equals_every_worker_once():
    p = _params()
    s, _, _, workers = _economy()
    vf = SetFunctionValue(_v_tensor(p))
    counts_n, counts_e = [1, 3, 2], [2, 1, 4]
    r_dup = v_residual(vf, p, s, RATES, _duplicated(workers, counts_n, counts_e))
    r_wt = v_residual(vf, p, s, RATES, _weighted(workers, counts_n, counts_e))
    scale = float(r_dup.value.abs().max())
    assert torch.allclose(r_wt.residual, r_dup.residual, rtol=0, atol=1e-12 * scale)
    assert torch.allclose(r_wt.diagonal, r_dup.diagonal, rtol=0, atol=1e-12)


def test_exploration_states_void_nothing_in_w_or_v():
    """States and draws with firm index −1 (exploration states, pooled exact draws) belong to no simulated
    firm: no meeting between them is void, in W as in V, so both equal their residual without identities."""
    p = _params()
    s, w, poachers, workers = _economy()
    vf, wf = SetFunctionValue(_v_tensor(p)), SetFunctionWorkerValue(_w_tensor(p))
    no_firm = torch.full((s.batch_size,), -1)
    plain = _weighted(workers, [1, 1, 1], [1, 1, 1])
    explore = _weighted(workers, [1, 1, 1], [1, 1, 1], firm_e=torch.full((3,), -1))
    r_plain, W = w_residual(wf, vf, p, s, w, RATES, plain, poachers)
    r_explore, _ = w_residual(
        wf, vf, p, s, w, RATES, explore, poachers, firm_id=no_firm, poacher_id=torch.full((4,), -1)
    )
    assert torch.allclose(r_explore, r_plain, rtol=0, atol=1e-12 * float(W.abs().max()))
    v_plain = v_residual(vf, p, s, RATES, plain)
    v_explore = v_residual(vf, p, s, RATES, explore, firm_id=no_firm)
    assert torch.allclose(v_explore.residual, v_plain.residual, rtol=0, atol=1e-12 * float(v_plain.value.abs().max()))


def test_a_draw_from_the_firm_itself_is_void_in_both_equations():
    """A real simulated firm meeting its own worker: no poach in V (B = 0) and no arrival in W."""
    p = _params()
    s, w, poachers, workers = _economy()
    vf, wf = SetFunctionValue(_v_tensor(p)), SetFunctionWorkerValue(_w_tensor(p))
    firm_id = torch.arange(s.batch_size)
    # the best draw (Δ_p lowest, h highest) comes from firm 0 in one set, from a firm outside the batch in the other
    own = _weighted(workers, [1, 1, 1], [1, 1, 1], firm_e=torch.tensor([10, 11, 0]))
    other = _weighted(workers, [1, 1, 1], [1, 1, 1], firm_e=torch.tensor([10, 11, 12]))
    v_own = v_residual(vf, p, s, RATES, own, firm_id=firm_id)
    v_other = v_residual(vf, p, s, RATES, other, firm_id=firm_id)
    differs = (v_own.terms["meet_employed"] - v_other.terms["meet_employed"]).abs() > 1e-12
    assert differs.tolist() == [True] + [False] * (s.batch_size - 1)  # firm 0 would poach that worker
    r_own, _ = w_residual(wf, vf, p, s, w, RATES, own, poachers, firm_id=firm_id)
    r_other, _ = w_residual(wf, vf, p, s, w, RATES, other, poachers, firm_id=firm_id)
    assert torch.equal(r_own[1:], r_other[1:])
    # V and W agree that the meeting is void: W's firm 0 loses that arrival too
    assert bool(((r_own[0] - r_other[0]).abs() > 1e-12).any())
