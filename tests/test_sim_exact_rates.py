"""The simulator under the exact V of a discrete economy moves firms at the exact chain's rates.

On ``conf/exact_small`` (70 firm states) the exact solver gives V, the decisions and the
generator of one firm's continuous-time Markov chain (:mod:`lotj.exact.stationary`). The
simulator, run under that V, must move each firm between states at the chain's rates. The rates
depend on the distribution of firms and unmatched workers (hiring and poaching go through ``Π``,
``u`` and the employed workers at other firms), so the expected counts are taken from the
simulated economy itself at every step: ``E[S, S'] = Σ_t n_t(S) · exp(Q̂_t dt)[S, S']`` with ``Q̂_t``
the chain's generator at the simulated ``(χ̂_t, û_t)``. This separates the simulator's rules from
its finite-sample noise: with ``δ_f = 0.001`` the firm types drawn at the start stay for the whole
run, and a firm-type mix off ``G_f`` by one standard deviation moves the mean firm size by about
``0.3%`` at 20000 firms (docs/simulator.md, "Comparing with an exact solution").

Each one-event transition (a hire or poach of a type-``j`` worker, ``S → S⊕x_j``; a loss of one,
``S → S⊖x_j``) with at least 20 expected events is a Poisson count: each must lie within 4 standard
deviations (Bonferroni over about 100 counts at 0.5%), and their standardised squares must average
below ``1 + 4 √(2/k)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lotj.config import load_config
from lotj.exact import solve_equilibrium
from lotj.exact.linalg import expm
from lotj.exact.stationary import firm_generator
from lotj.sim.simulator import Simulator


def generator(space, p, pol, chi, u) -> np.ndarray:
    """One firm's generator at ``(χ, u)``: hires and poaches, losses, death into a newborn firm."""
    return firm_generator(space, p, pol, chi, u)


@pytest.fixture(scope="module")
def transitions():
    torch.set_num_threads(1)
    p = load_config(["conf=exact_small"]).economy
    sol = solve_equilibrium(p)
    space, pol, vf = sol.space, sol.policies, sol.value_function()
    n_firms, dt = 2000, 0.02
    sim = Simulator(p, n_firms, dt, seed=5)
    sim.advance(vf, 5.0)

    def states() -> np.ndarray:
        b = sim.pop.firm_batch(torch.arange(sim.pop.n_firms))
        return space.locate(b.z, b.q, b.h, b.a, b.mask)

    n = space.n_states
    observed, expected = np.zeros((n, n)), np.zeros((n, n))
    s0 = states()
    for _ in range(600):  # 12 years
        occ = np.bincount(s0, minlength=n).astype(np.float64)
        unmatched = sim.pop.h[sim.pop.firm < 0].numpy()
        u = np.array([np.isclose(unmatched, h).sum() for h in space.h], dtype=np.float64)
        q = generator(space, p, pol, occ / n_firms, u / n_firms)
        expected += occ[:, None] * expm(q * dt)
        sim.run_steps(vf, 1)
        s1 = states()
        np.add.at(observed, (s0, s1), 1.0)
        s0 = s1
    return space, observed, expected


def one_event(space) -> np.ndarray:
    """Mask of the transitions ``S → S⊕x_j`` and ``S → S⊖x_j``."""
    n = space.n_states
    mask = np.zeros((n, n), dtype=bool)
    for j in range(space.n_worker_types):
        for nb in (space.plus[:, j], space.minus[:, j]):
            ok = nb >= 0
            mask[np.nonzero(ok)[0], nb[ok]] = True
    return mask


def test_one_event_transitions_match_the_exact_chain(transitions):
    space, observed, expected = transitions
    mask = one_event(space) & (expected >= 20.0)
    k = int(mask.sum())
    assert k >= 60, f"only {k} transitions with 20 expected events"
    z = (observed[mask] - expected[mask]) / np.sqrt(expected[mask])
    worst = int(np.argmax(np.abs(z)))
    rows, cols = np.nonzero(mask)
    assert abs(z[worst]) < 4.0, (
        f"{space.describe(rows[worst])} -> {space.describe(cols[worst])}: "
        f"{observed[mask][worst]:.0f} events, expected {expected[mask][worst]:.1f}"
    )
    assert float((z**2).mean()) < 1.0 + 4.0 * math.sqrt(2.0 / k)


def test_hires_and_losses_by_worker_type_match_the_exact_chain(transitions):
    """Summed over firm states: every worker type joins and leaves firms of each type at the chain's rate."""
    space, observed, expected = transitions
    for f in range(space.n_firm_types):
        for j in range(space.n_worker_types):
            for what, nb in (("joins", space.plus[:, j]), ("leaves", space.minus[:, j])):
                rows = np.nonzero((nb >= 0) & (space.firm_type == f))[0]
                obs, exp = observed[rows, nb[rows]].sum(), expected[rows, nb[rows]].sum()
                assert abs(obs - exp) < 4.0 * math.sqrt(exp), (
                    f"worker type {j + 1} {what} firms of type {f + 1}: {obs:.0f} events, expected {exp:.1f}"
                )
