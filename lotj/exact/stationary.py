"""The stationary distribution of firms and unmatched workers implied by the decisions (MODEL.md sections 1, 3, 4).

Given the decisions (:class:`lotj.exact.bellman.Policies`), firms move between states and
workers between firms and non-employment as a continuous-time Markov chain. A firm in state
``S`` with ``n`` workers, ``M = ∫(1 + n) dχ`` and ``Π(S') = (n' + 1) χ(S') / M``:

- hires an unmatched ``x_j`` at rate ``(n + 1) ψ^N u_j / M`` if it decides to (``= (n+1) ω s^N χ^N(x_j)``);
- poaches ``x_j`` from a firm in ``S_p`` at rate ``(n + 1) ψ^E c_j(S_p) χ(S_p) / M`` if ``B > 0``
  (``= (n+1) ω s^E χ^E(x_j, S_p)``); firms at the cap never do (MODEL.md section 10);
- loses each worker ``x_j`` at rate ``δ_r + δ_m`` (retirement, match break), plus ``λ + ψ^E``
  if ``Δ(S, x_j) < 0`` (renegotiation shock or any outside meeting ends the match), plus
  ``ψ^E Σ_{S'} Π(S') 1{B(S', S, x_j) > 0}`` if ``Δ ≥ 0`` (poached: the worker moves iff
  ``Δ(S'⊕x_j, x_j) > Δ(S, x_j)``, which is ``B > 0``);
- dies at rate ``δ_f`` and is replaced by an empty firm of type ``f`` with probability ``G_f(f)``.

Unmatched workers of type ``j`` (measure ``u_j``) arrive as new workers at rate ``δ_r N_w G_w(j)``
(every retiree is replaced), from separations into non-employment (match breaks, renegotiation
quits, meetings with ``Δ < 0`` whose poacher does not hire, firm deaths), and leave by
retirement (``δ_r``) and by being hired (``ψ^N Σ_{S'} Π(S') 1{hire x_j at S'}``).

The hiring and poaching rates depend on χ and u themselves, so the stationary distribution is
the root of a polynomial system: the firm flows balance, and the population is the economy's,

- firms of each type ``f`` have measure ``G_f(f)``: ``Σ_{S of type f} χ(S) = G_f(f)``;
- workers of each type ``j`` have measure ``N_w G_w(j)``: ``Σ_S c_j(S) χ(S) + u_j = N_w G_w(j)``.

These replace the balance of each type's empty firm and of each type's unmatched workers, which
they imply when ``δ_f > 0`` and ``δ_r > 0`` (deaths replace firms by draws from G_f, retirees are
replaced by draws from G_w, so any other population decays towards these). With ``δ_f = 0`` or
``δ_r = 0`` the flows alone leave the population undetermined (it is the initial one: firms drawn
from G_f, workers from G_w) and these equations pin it. :func:`stationary_distribution` solves the
system by Newton's method with the exact Jacobian (complex-step differentiation), to a residual of
1e-13.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lotj.economy.params import EconomyParams
from lotj.exact.bellman import Policies
from lotj.exact.linalg import lstsq
from lotj.exact.market import Distribution
from lotj.exact.states import StateSpace

#: Newton stops when the largest flow imbalance is below this (per unit of mass).
FLOW_TOL = 1e-13


class StationaryError(RuntimeError):
    """The stationary distribution could not be found."""


@dataclass
class FirmRates:
    """Transition rates of one firm and of one worker, given the distribution (module docstring).

    ``hire [N, J]``: rate at which a firm in ``S`` adds a type-``j`` worker (hiring plus poaching);
    ``leave [N, J]``: rate at which each type-``j`` worker leaves a firm in ``S`` (any destination);
    ``to_unmatched [N, J]``: the part of ``leave`` that ends in non-employment, without retirement;
    ``poached_to [N, J, N]``: rate at which a type-``j`` worker of a firm in ``S`` moves to a firm
    in ``S'`` (index ``[S, j, S']``); ``find_job [J, N]``: rate at which an unmatched type-``j``
    worker is hired by a firm in ``S'``.
    """

    hire: np.ndarray
    leave: np.ndarray
    to_unmatched: np.ndarray
    poached_to: np.ndarray
    find_job: np.ndarray


def firm_rates(space: StateSpace, p: EconomyParams, pol: Policies, chi: np.ndarray, u: np.ndarray) -> FirmRates:
    """The rates of the module docstring; works on complex arrays (for the exact Jacobian)."""
    size = space.size.astype(np.float64)
    mean_n1 = chi @ (size + 1.0)
    pi = (size + 1.0) * chi / mean_n1
    employed_at = space.counts * chi[:, None]  # [S_p, j]: type-j workers employed at S_p
    poach_in = p.psi_e * np.einsum("sjp,pj->sj", pol.poach, employed_at)
    hire = (size + 1.0)[:, None] / mean_n1 * (p.psi_n * u[None, :] * pol.hire + poach_in)
    # a type-j worker at S_p meets a poacher S' ~ Π and moves iff B(S', S_p, x_j) > 0
    poached_to = p.psi_e * np.transpose(pol.poach, (2, 1, 0)) * pi[None, None, :]  # [S_p, j, S']
    moves = poached_to.sum(2)
    quit = pol.quit
    leave = p.delta_r + p.delta_m + (p.lam + p.psi_e) * quit + np.where(quit, 0.0, moves)
    to_unmatched = p.delta_m + p.lam * quit + np.where(quit, p.psi_e - moves, 0.0)
    find_job = p.psi_n * pol.hire.T * pi[None, :]
    return FirmRates(hire, leave, to_unmatched, poached_to, find_job)


def flow_imbalance(space: StateSpace, p: EconomyParams, pol: Policies, x: np.ndarray) -> np.ndarray:
    """Inflow minus outflow of every firm state at ``x = (χ, u)``, except that the equation of each firm
    type's empty state is its measure minus ``G_f(f)`` and that of each unmatched type ``j`` the measure of
    type-``j`` workers minus ``N_w G_w(j)`` (module docstring)."""
    n_states = space.n_states
    chi, u = x[:n_states], x[n_states:]
    r = firm_rates(space, p, pol, chi, u)
    counts = space.counts
    out_rate = r.hire.sum(1) + (counts * r.leave).sum(1) + p.delta_f
    d_chi = -chi * out_rate
    gain_flow = chi[:, None] * r.hire  # [S, j] mass moving S -> S⊕x_j
    loss_flow = chi[:, None] * counts * r.leave  # [S, j] mass moving S -> S⊖x_j
    for j in range(space.n_worker_types):
        room = space.plus[:, j] >= 0
        np.add.at(d_chi, space.plus[room, j], gain_flow[room, j])
        has = space.minus[:, j] >= 0
        np.add.at(d_chi, space.minus[has, j], loss_flow[has, j])
    # births enter only the empty states, whose balance is replaced by the measure of their type
    for f, share in enumerate(space.p_f / space.p_f.sum()):
        d_chi[space.empty_state(f)] = chi[space.firm_type == f].sum() - share
    d_u = chi @ counts + u - p.n_w * space.p_w / space.p_w.sum()
    return np.concatenate([d_chi, d_u])


def _jacobian(space: StateSpace, p: EconomyParams, pol: Policies, x: np.ndarray) -> np.ndarray:
    """Exact Jacobian of :func:`flow_imbalance` by complex-step differentiation."""
    step = 1e-30
    jac = np.empty((len(x), len(x)))
    for k in range(len(x)):
        xc = x.astype(np.complex128)
        xc[k] += 1j * step
        jac[:, k] = flow_imbalance(space, p, pol, xc).imag / step
    return jac


def firm_generator(space: StateSpace, p: EconomyParams, pol: Policies, chi: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One firm's generator ``Q [N, N]`` with the rates frozen at ``(χ, u)``: hires and poaches of each
    worker type, the loss of one, and death into a newborn firm of a type drawn from G_f."""
    n_states = space.n_states
    r = firm_rates(space, p, pol, chi, u)
    q = np.zeros((n_states, n_states))
    for j in range(space.n_worker_types):
        room = space.plus[:, j] >= 0
        np.add.at(q, (np.nonzero(room)[0], space.plus[room, j]), r.hire[room, j])
        has = space.minus[:, j] >= 0
        np.add.at(q, (np.nonzero(has)[0], space.minus[has, j]), space.counts[has, j] * r.leave[has, j])
    for f in range(space.n_firm_types):
        q[:, space.empty_state(f)] += p.delta_f * space.p_f[f]
    q[np.diag_indices(n_states)] -= q.sum(1)
    return q


def picard_step(space: StateSpace, p: EconomyParams, pol: Policies, dist: Distribution) -> Distribution:
    """One fixed-point step: freeze the rates at ``dist``, take the stationary law of that linear chain
    for χ (each firm type scaled to ``G_f``), then the unmatched workers of each type as the type's workers
    not employed in χ. A starting point for Newton."""
    n_states = space.n_states
    q = firm_generator(space, p, pol, dist.chi, dist.u)
    system = q.T.copy()
    system[0] = 1.0
    rhs = np.zeros(n_states)
    rhs[0] = 1.0
    chi = np.clip(lstsq(system, rhs), 0.0, None)
    for f, share in enumerate(space.p_f / space.p_f.sum()):  # with δ_f = 0 the frozen chain has one law per type
        of_type = space.firm_type == f
        mass = chi[of_type].sum()
        if mass > 0:
            chi[of_type] *= share / mass
        else:
            chi[space.empty_state(f)] = share
    u = np.clip(p.n_w * space.p_w / space.p_w.sum() - chi @ space.counts, 0.0, None)
    return Distribution(chi, u)


@dataclass
class StationaryResult:
    dist: Distribution
    newton_steps: int
    imbalance: float


def stationary_distribution(
    space: StateSpace,
    p: EconomyParams,
    pol: Policies,
    start: Distribution | None = None,
    picard_steps: int = 20,
    max_newton: int = 100,
    tol: float = FLOW_TOL,
) -> StationaryResult:
    """The stationary (χ, u) given the decisions (module docstring), from ``start`` (default: every
    firm empty and every worker unmatched) by ``picard_steps`` fixed-point steps and then Newton."""
    if p.delta_r <= 0 and p.delta_f <= 0:
        raise StationaryError("the exact solver needs delta_r > 0 or delta_f > 0 for a unique stationary law")
    dist = Distribution.initial(space, p.n_w) if start is None else start
    for _ in range(picard_steps):
        dist = picard_step(space, p, pol, dist)
    x = np.concatenate([dist.chi, dist.u])
    scale = max(1.0, p.n_w)
    norm = float(np.abs(flow_imbalance(space, p, pol, x)).max())
    for step in range(max_newton + 1):
        if norm <= tol * scale:
            return StationaryResult(Distribution(x[: space.n_states], x[space.n_states :]), step, norm)
        if step == max_newton:
            break
        jac = _jacobian(space, p, pol, x)
        delta = lstsq(jac, flow_imbalance(space, p, pol, x))
        t = 1.0
        while True:  # backtracking keeps the measures non-negative and the imbalance falling
            trial = x - t * delta
            if trial.min() >= -1e-14:
                trial_norm = float(np.abs(flow_imbalance(space, p, pol, trial)).max())
                if trial_norm < norm or t < 1e-6:
                    break
            t *= 0.5
            if t < 1e-12:
                raise StationaryError("Newton's method for the stationary distribution made no progress")
        x, norm = np.clip(trial, 0.0, None), trial_norm
    raise StationaryError(f"the stationary distribution did not converge: flow imbalance {norm:.3g}")
