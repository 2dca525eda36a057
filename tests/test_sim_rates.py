"""Event rates and conservation of the simulated economy (MODEL.md sections 1–3).

Poisson tests: each count is a sum of independent Bernoulli draws with a known mean μ, so its
standard deviation is at most √μ; a test passes when ``|count − μ| < 4.42 √μ``, a two-sided test
at significance 1e-5 for each count, so that a correct simulator fails a test of up to ten counts with
probability below 1e-4 whatever the seed and the device's random stream (the seeds are not chosen:
the CPU and GPU streams differ). The counts are thousands, so the band is a few percent of each rate.
"""

from __future__ import annotations

import math

import pytest
import torch
from reference import accept_all_value, crowding_value

from lotj.economy.params import EconomyParams
from lotj.economy.value import SetFunctionValue
from lotj.errors import ConfigError
from lotj.sim.events import StepProbabilities
from lotj.sim.simulator import Simulator

Z = 4.42  # two-sided 1e-5 (module docstring)


def assert_poisson(count: float, mean: float, what: str) -> None:
    assert abs(count - mean) < Z * math.sqrt(mean), f"{what}: {count} events, expected {mean:.1f}"


@pytest.mark.parametrize("value", ["crowding", "accept_all"])
def test_conservation_at_every_step(value, device):
    """Workers = round(N_w·N_f) at every step; each worker in at most one slot and never both
    employed and unmatched; firm sizes equal the mask counts. A cap of 4 makes conflicts frequent."""
    p = EconomyParams(n_max=4, psi_n=3.0, lam=5.0, gamma_e=2.0, delta_f=0.2)
    fn = crowding_value(p) if value == "crowding" else accept_all_value(p, eps=0.3)
    sim = Simulator(p, 120, 0.05, seed=11, device=device)
    vf = SetFunctionValue(fn)
    total = round(p.n_w * 120)
    for _ in range(60):
        sim.run_steps(vf, 1)
        sim.pop.check()
        snap = sim.snapshot()
        assert sim.pop.n_workers == total == snap.n_workers()
        assert torch.equal(snap.firms.mask.sum(1), sim.pop.sizes())
        assert int(sim.pop.sizes().max()) <= p.n_max
        employed = sim.pop.employed()
        assert int(employed.sum()) + snap.unmatched_h.numel() == total
    c = sim.statistics().counts
    for k in ("hires", "poaches", "deaths", "cap_blocked", "cap_refused"):
        assert c[k] > 0, k
    if value == "crowding":
        assert c["reneg_separations"] + c["meeting_separations"] > 0


def test_firms_die_at_rate_delta_f_only(device):
    off = dict(delta_r=0.0, delta_m=0.0, lam=0.0, gamma_e=0.0, psi_e=0.0, psi_n=0.0)
    p = EconomyParams(delta_f=0.3, **off)
    sim = Simulator(p, 400, 0.02, seed=12, device=device)
    ids0 = sim.pop.firm_id.clone()
    st = sim.advance(SetFunctionValue(accept_all_value(p)), 5.0)
    steps = 5 * 50
    prob = StepProbabilities.from_params(p, 0.02).death
    assert_poisson(st.counts["deaths"], 400 * steps * prob, "firm deaths")
    # survival: the share of firms that never died is exp(−δ_f T), a binomial over 400 firms
    survived = float((sim.pop.firm_id == ids0).double().mean())
    s = math.exp(-0.3 * 5)
    assert abs(survived - s) < Z * math.sqrt(s * (1 - s) / 400)
    assert st.counts["deaths"] == int(sim.pop.firm_id.max()) + 1 - 400  # one new id per death
    for k, v in st.counts.items():
        if k != "deaths":
            assert v == 0, k


def test_event_counts_match_their_rates(device):
    p = EconomyParams(n_max=64, delta_f=0.05)
    dt = 0.02
    sim = Simulator(p, 500, dt, seed=13, device=device)
    st = sim.advance(SetFunctionValue(accept_all_value(p, eps=0.3)), 4.0)
    pr = StepProbabilities.from_params(p, dt)
    steps = st.exposure["steps"]
    emp, un = st.exposure["employed_steps"], st.exposure["unmatched_steps"]
    workers = sim.pop.n_workers
    c = st.counts
    free = (1 - pr.retire) * (1 - pr.death)  # an employed worker's other events need no retirement, no death
    assert_poisson(c["retirements"], workers * steps * pr.retire, "retirements")
    assert_poisson(c["deaths"], 500 * steps * pr.death, "deaths")
    assert_poisson(c["learning"], 500 * steps * pr.learn, "learning events")
    assert_poisson(c["breaks"], emp * pr.brk * free, "match breaks")
    assert_poisson(c["reneg_shocks"], emp * pr.reneg * free * (1 - pr.brk), "renegotiation shocks")
    assert_poisson(c["meetings_e"] + c["void_meetings"], emp * pr.meet_e * free * (1 - pr.brk), "employed meetings")
    assert_poisson(c["meetings_n"], un * pr.meet_n * (1 - pr.retire), "unmatched meetings")
    # every hire is accepted: an unmatched worker's meeting ends in a hire unless the cap refuses it
    refused_n = c["meetings_n"] - c["hires"]
    assert 0 <= refused_n <= c["cap_blocked"] + c["cap_refused"]


@pytest.mark.parametrize("dt,n_firms,years", [(0.02, 2000, 20.0), (0.25, 6000, 30.0)])
def test_employment_rate_matches_the_two_state_chain(dt, n_firms, years, device):
    """Every hire accepted, nothing quit, the cap never binds: e = ψ^N/(ψ^N + δ_m + δ_r + δ_f), and
    annual EN/NE of workers present at both dates follow the chain with rates δ_m + δ_f and ψ^N.
    On-the-job meetings change no employment status under this V (moves are ties), so they are
    switched off; renegotiation shocks stay on and must separate no one.

    At a coarse step (dt = 0.25) this holds only because a worker's hazards follow its status within
    the step (a match that breaks can be re-formed, a new match can break, the workers of a dying
    firm can meet): without that, e was 1% low and EN 3.5% high, about 6 standard errors here."""
    p = EconomyParams(n_max=40, psi_e=0.0)
    sim = Simulator(p, n_firms, dt, seed=14, device=device)
    vf = SetFunctionValue(accept_all_value(p))
    sim.advance(vf, 12.0)
    st = sim.advance(vf, years)
    assert st.cap_refused_share == 0.0
    assert st.counts["hires"] == st.counts["meetings_n"] > 0
    assert st.counts["reneg_shocks"] > 0 and st.counts["reneg_separations"] == 0
    a, b = p.delta_m + p.delta_f, p.psi_n
    e = b / (b + a + p.delta_r)
    # sampling error of a time average over T years of W workers whose status has correlation time τ
    workers, tau = sim.pop.n_workers, 1.0 / (a + b + p.delta_r)
    sd_e = math.sqrt(e * (1 - e) / workers * 2 * tau / years)
    assert abs(st.e - e) < Z * sd_e, (st.e, e, sd_e)
    en = a / (a + b) * (1 - math.exp(-(a + b)))
    ne = b / (a + b) * (1 - math.exp(-(a + b)))
    n_e = st.e * workers * years * math.exp(-p.delta_r)
    n_n = (1 - st.e) * workers * years * math.exp(-p.delta_r)
    # annual transitions of one worker are close to independent across years (τ ≈ 2 years): allow √2
    assert abs(st.en_rate - en) < Z * math.sqrt(2 * en * (1 - en) / n_e), (st.en_rate, en)
    assert abs(st.ne_rate - ne) < Z * math.sqrt(2 * ne * (1 - ne) / n_n), (st.ne_rate, ne)


def test_the_consistency_check_catches_a_corrupted_economy():
    p = EconomyParams(n_max=8)
    sim = Simulator(p, 50, 0.05, seed=15)
    sim.pop.check()
    rows, cols = (sim.pop.slot_worker >= 0).nonzero(as_tuple=True)
    free = (sim.pop.slot_worker[rows[0]] < 0).nonzero()[0, 0]
    sim.pop.slot_worker[rows[0], free] = sim.pop.slot_worker[rows[0], cols[0]]  # one worker in two slots
    sim.pop.size[rows[0]] += 1
    with pytest.raises(AssertionError, match="two slots"):
        sim.pop.check()


def test_mean_log_h_follows_the_learning_rate_at_a_coarse_step():
    """With no coworker spillovers (θ = 0) a learning event adds log q to every worker's log h, so with
    every hire accepted the stationary mean log h solves a linear system in the employment chain:
    with a = δ_m + δ_f, b = ψ^N and new workers at mean log h 0,
    M_E = γ^E μ_q e / (a + δ_r − a b / (b + δ_r)) and M_N = a M_E / (b + δ_r), where M_E, M_N are
    E[log h; employed] and E[log h; unmatched]. At dt = 0.25 this holds only with a learning
    probability of γ^E·dt per step (with 1 − exp(−γ^E dt) the mean log h of the employed was 11.5%
    too low) and with learning at the start of every other step (always at the end, a worker learned
    from the events of its hiring step but not from those of its leaving step, so the employed had
    learned half a step early: 3% too high)."""
    p = EconomyParams(n_max=40, psi_e=0.0, theta_plus=0.0, theta_minus=0.0, mu_q=0.2, gamma_e=1.0, delta_r=0.2)
    a, b, dr = p.delta_m + p.delta_f, p.psi_n, p.delta_r
    e = b / (a + b + dr)
    m_e = p.gamma_e * p.mu_q * e / (a + dr - a * b / (b + dr))
    m_n = a * m_e / (b + dr)
    sim = Simulator(p, 2000, 0.25, seed=21)
    vf = SetFunctionValue(accept_all_value(p))
    sim.advance(vf, 40.0)
    st = sim.advance(vf, 20.0)
    # spread over seeds 0-11: standard deviations 0.8% (employed) and 1.4% (unmatched) of the target, and one
    # seed (321) was 3.3% off for the employed; the bands are 5 of those deviations, valid for any seed.
    # They catch the 11.5% error of the old learning probability, not the 3% one of learning at the end.
    assert st.mean_log_h_employed == pytest.approx(m_e / e, rel=0.04)
    assert st.mean_log_h_unmatched == pytest.approx(m_n / (1 - e), rel=0.07)


def test_a_step_longer_than_the_learning_clock_is_refused():
    with pytest.raises(ConfigError, match="learning event"):
        StepProbabilities.from_params(EconomyParams(gamma_e=1.0), 2.0)
