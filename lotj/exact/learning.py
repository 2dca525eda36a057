"""The closed-workforce learning economy, exactly (MODEL.md sections 2 and 4).

With every rate but ρ and γ^E at zero (no deaths, retirements, breaks, renegotiation shocks or
meetings), the workforce never changes and the V equation of MODEL.md section 4 reduces to
``ρ V(S) = F(S) + γ (V(H(S)) − V(S))``, whose solution is the series

    V(S) = Σ_{k ≥ 0} γ^k F(H^k S) / (ρ + γ)^(k+1),

with ``F`` and ``H`` from :mod:`lotj.economy.technology`. For one worker ``H^k S`` has
``h (a q)^k`` and ``V = F / (ρ + γ (1 − a q))``.

Convergence and the stopping rule. With ``0 ≤ θ⁺ ≤ 1`` and ``θ⁻ ≥ 0`` a learning step moves
each worker's ``log h`` at most to the top worker's ``log h`` plus ``log a_i + log q``, so the
largest ``h`` of a firm grows at most by ``ā q`` per step (``ā`` its largest ``a``), and
``F ≤ z n^(1/η) h_max``. Hence after ``K`` terms the rest of the series is at most
``z n^(1/η) h_max(K) γ^K / (ρ + γ)^(K+1) / (1 − r)`` with ``r = γ ā q / (ρ + γ)``: the series
converges when ``r < 1`` (``γ (ā q − 1) < ρ``, the condition lotj checks at configuration,
MODEL.md section 10) and :func:`closed_workforce_values` sums until that bound is below
``rtol`` times the partial sum. Outside that range of θ it stops when terms fall below ``rtol``
relative and refuses when they do not within ``max_terms``.

The economy has no stationary χ (firms never change size and h drifts), so the check uses firms
drawn from G_f and G_w and their learning iterates :func:`learning_states`; the validation holds
out a draw made with its own seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch, sample_initial_firms
from lotj.economy.params import EconomyParams
from lotj.economy.technology import learning_step, production
from lotj.errors import ConfigError
from lotj.exact.linalg import one_thread

_CLOSED_ZERO = ("delta_f", "delta_r", "delta_m", "lam", "psi_e", "psi_n")


def check_closed_workforce(p: EconomyParams) -> None:
    """Refuse parameters that are not a closed-workforce learning economy (only ρ, γ^E, F, H active)."""
    active = [f"{name} = {getattr(p, name)}" for name in _CLOSED_ZERO if getattr(p, name) != 0.0]
    if active:
        raise ConfigError(
            "the closed-workforce learning economy needs every rate but rho and gamma_e at 0; active: "
            + ", ".join(f"economy.{a}" for a in active)
        )
    if p.gamma_e <= 0:
        raise ConfigError(f"economy.gamma_e = {p.gamma_e}: the learning economy needs gamma_e > 0")


@dataclass
class SeriesResult:
    values: Tensor  #: V(S), ``[B]``
    terms: int  #: terms summed
    tail_bound: float  #: largest bound on the omitted tail, relative to V (rigorous when ``bounded``)
    bounded: bool  #: whether the tail bound of the module docstring applies (0 ≤ θ⁺ ≤ 1, θ⁻ ≥ 0)


def closed_workforce_values(
    p: EconomyParams, s: FirmBatch, rtol: float = 1e-12, max_terms: int = 200_000
) -> SeriesResult:
    """V(S) of the closed-workforce economy by its series (module docstring), in float64."""
    check_closed_workforce(p)
    with one_thread():
        return _series(p, s, rtol, max_terms)


def _series(p: EconomyParams, s: FirmBatch, rtol: float, max_terms: int) -> SeriesResult:
    s = s.to("cpu")
    z, q = s.z.double(), s.q.double()
    h, a, mask = s.h.double(), s.a.double(), s.mask
    rate = p.gamma_e / (p.rho + p.gamma_e)
    a_max = torch.where(mask, a, torch.zeros_like(a)).amax(-1)
    ratio = rate * a_max * q  # bound on the growth of each term
    bounded = 0.0 <= p.theta_plus <= 1.0 and p.theta_minus >= 0.0
    n = mask.sum(-1).double()
    if bounded and bool((ratio[n > 0] >= 1.0).any()):
        k = int(torch.argmax(torch.where(n > 0, ratio, torch.zeros_like(ratio))))
        raise ConfigError(
            "the learning series diverges: gamma_e*(a*q - 1) >= rho for a firm with q = "
            f"{float(q[k]):.6g} and largest a = {float(a_max[k]):.6g} (need gamma_e*(a*q - 1) < rho = {p.rho})"
        )
    size_factor = torch.where(n > 0, n.clamp_min(1.0).pow(1.0 / p.eta), torch.zeros_like(n))
    total = torch.zeros_like(z)
    weight = 1.0 / (p.rho + p.gamma_e)  # γ^k / (ρ+γ)^(k+1)
    for k in range(max_terms):
        term = weight * production(z, h, mask, p.eta)
        total = total + term
        if bounded:
            h_max = torch.where(mask, h, torch.zeros_like(h)).amax(-1)
            tail = z * size_factor * h_max * weight * rate / (1.0 - ratio) * a_max * q
            rel = torch.where(total > 0, tail / total.clamp_min(1e-300), torch.zeros_like(tail))
        else:
            rel = torch.where(total > 0, term / total.clamp_min(1e-300), torch.zeros_like(term))
        worst = float(rel.max()) if rel.numel() else 0.0
        if worst < rtol:
            return SeriesResult(total, k + 1, worst, bounded)
        h = learning_step(h, a, q, mask, p.theta_plus, p.theta_minus)
        weight *= rate
    raise ConfigError(
        f"the learning series did not converge in {max_terms} terms (last relative term {worst:.3g}); "
        "lower gamma_e, mu_a or mu_q"
    )


def learning_states(
    p: EconomyParams,
    count: int,
    max_iterates: int,
    generator: torch.Generator | None = None,
    mean_size: float | None = None,
) -> FirmBatch:
    """Firms drawn as the initial economy draws them (G_f, G_w, Poisson(``mean_size``) workers capped at
    ``n_max``; MODEL.md section 1), empty ones left out (their V is 0), each moved by ``k`` learning
    steps, ``k`` uniform on ``0..max_iterates``: the states ``H^k S`` the learning economy visits."""
    out: list[FirmBatch] = []
    have = 0
    while have < count:
        batch = sample_initial_firms(p, 2 * (count - have) + 16, generator, mean_size=mean_size)
        batch = batch.index(batch.size() > 0)
        out.append(batch)
        have += batch.batch_size
    s = FirmBatch.cat(out).index(torch.arange(count))
    steps = torch.randint(0, max_iterates + 1, (count,), generator=generator)
    h = s.h
    for k in range(1, max_iterates + 1):
        moved = learning_step(h, s.a, s.q, s.mask, p.theta_plus, p.theta_minus)
        h = torch.where((steps >= k).unsqueeze(-1), moved, h)
    return FirmBatch(s.z, s.q, h, s.a, s.mask)


@dataclass
class LearningCheck:
    """Held-out states of the learning economy with their exact V."""

    states: FirmBatch
    values: np.ndarray
    terms: int
    tail_bound: float
    solve_seconds: float
    seed: int
    max_iterates: int

    @property
    def n_states(self) -> int:
        return self.states.batch_size

    def summary(self) -> dict:
        return {
            "n_states": self.n_states,
            "solve_seconds": self.solve_seconds,
            "series_terms": self.terms,
            "tail_bound": self.tail_bound,
            "seed": self.seed,
            "max_iterates": self.max_iterates,
            "mean_value": float(self.values.mean()),
        }


def learning_check(
    p: EconomyParams, count: int, seed: int, max_iterates: int, mean_size: float | None = None
) -> LearningCheck:
    """A draw of ``count`` learning-economy states (seed ``seed``) and their exact V."""
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    with one_thread():
        states = learning_states(p, count, max_iterates, gen, mean_size)
    res = closed_workforce_values(p, states)
    return LearningCheck(
        states,
        res.values.numpy(),
        res.terms,
        res.tail_bound,
        time.perf_counter() - start,
        seed,
        max_iterates,
    )


def lone_worker_value(p: EconomyParams, z: float, h: float, a: float, q: float) -> float:
    """Closed form for one worker: ``V = z h / (ρ + γ (1 − a q))`` (module docstring)."""
    denom = p.rho + p.gamma_e * (1.0 - a * q)
    if denom <= 0:
        raise ConfigError(f"lone-worker value is infinite: rho + gamma_e*(1 - a*q) = {denom:.4g} <= 0")
    return z * h / denom
