"""The global error of V, estimated along the firm's chains of events (docs/accuracy.md).

For a set of evaluation states (held-out Ω states of a solve, or every state of a discrete economy) the
error ``e(S) = V_net(S) − V(S)`` is estimated by :func:`lotj.accuracy.chains.chain_errors`, twice, with
independent randomness (two continuations per state): the product ``ê₁ ê₂`` is an unbiased estimate of
``e²`` (Maliar, Maliar and Winant's all-in-one expectation), so the mean square error carries no chain
noise.

Cross-firm term (:mod:`lotj.accuracy.chains`). The exact error equation is ``(ρ − L) e = −R − C e`` with
``(C e)(S) = (n+1) ω s^E E_{χ^E}[1{B > 0} 1{Δ(S_p, x) > 0} (e(S_p) − e(S_p⊖x))]``. On the exact economy
``exact_small`` leaving it out overstates a planted ``c·n·z`` error by 60% on average; the iteration
``e⁽ᵏ⁾ = (ρ − L)⁻¹(−R − C e⁽ᵏ⁻¹⁾)`` contracts with factor 0.30 there (the spectral radius of
``(ρ − L)⁻¹ C``). :func:`estimate_v_error` runs it on the marginal errors ``d_j = e(S_p) − e(S_p⊖x_j)``
of a fixed set of employed meeting draws: chains from the ``2J`` states ``S_p, S_p⊖x_j`` give
``d⁽ᵏ⁾`` from ``d⁽ᵏ⁻¹⁾`` (``d⁽⁰⁾ = 0``), and the evaluation chains use ``d⁽ᴷ⁾``. Each of the two
continuations has its own independent iteration, so ``E[ê₁ ê₂] = E[ê₁] E[ê₂]`` still holds; what is
left is the truncation ``≈ 0.3^K`` of the cross term's share.

Figures (relative to |V_net(S)|, over the evaluation states, each with its standard error over states):

- ``v_error_mean``: mean ``|ē|/V`` with ``ē = (ê₁ + ê₂)/2``; the chain noise in ``ē`` biases it upward
  (a conservative figure; ``v_error_noise`` is that noise's RMS);
- ``v_error_rms``: ``sqrt(mean(ê₁ ê₂ / V²))``, unbiased in the square;
- ``v_error_p90``: the 90th percentile of ``|ē|/V`` (bootstrap standard error);
- ``v_error_signed``: mean ``ē/V`` (V_net above the truth: positive);
- ``v_error_upper``: ``v_error_mean + 1.645 × its standard error``, the one-sided 95% upper bound that the
  convergence rule compares with ``solver.tol``.

Standard errors are over states; those of the mean and signed figures add the spread between the two
continuations' means, which carries the noise every state of a continuation shares (its marginal errors).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lotj.accuracy.chains import DrawSource, chain_errors
from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.value import ValueFunction

__all__ = [
    "EmployedDraws",
    "VErrorEstimate",
    "error_figures",
    "estimate_on_market",
    "estimate_v_error",
    "marginal_errors",
    "market_sources",
]

#: one-sided 95% normal quantile
Z95 = 1.6448536269514722


@dataclass
class EmployedDraws:
    """The fixed employed meeting draws of an estimate: their firms ``s_p`` and slots (``[J]``), in the order
    the draw source gives them every step."""

    s_p: FirmBatch
    slot: Tensor


@dataclass
class VErrorEstimate:
    """Per-state continuations ``error1, error2 [B]`` (of ``e = V_net − V``), ``value [B]`` = V_net, the
    truncation bound (largest over chains, relative to the median |V|), the cost, and the figures of the
    module docstring (:meth:`figures`)."""

    error1: Tensor
    error2: Tensor
    value: Tensor
    tail_bound: float
    steps: int
    seconds: float
    chains: int

    def figures(self, bootstrap: int = 200, seed: int = 0) -> dict[str, float]:
        out = error_figures(self.error1, self.error2, self.value, bootstrap, seed)
        out.update(v_error_tail=self.tail_bound, v_error_seconds=self.seconds, v_error_chains=float(self.chains))
        return out


def error_figures(
    error1: Tensor, error2: Tensor, value: Tensor, bootstrap: int = 200, seed: int = 0
) -> dict[str, float]:
    """The figures of the module docstring from two independent continuations per state."""
    v = value.detach().double().abs().clamp_min(1e-300).cpu().numpy()
    r1 = error1.detach().double().cpu().numpy() / v
    r2 = error2.detach().double().cpu().numpy() / v
    n = r1.size
    rbar = 0.5 * (r1 + r2)
    absr = np.abs(rbar)
    sq = r1 * r2

    def se(x: np.ndarray, x1: np.ndarray | None = None, x2: np.ndarray | None = None) -> float:
        """Standard error of mean(x) over states, plus (given each continuation's own version) the spread
        between the continuations' means: the part of the noise the states share (the marginal errors of
        the cross-firm iteration, one set per continuation)."""
        if n < 2:
            return math.inf
        var = float(x.var(ddof=1)) / n
        if x1 is not None and x2 is not None:
            var += 0.25 * float(x1.mean() - x2.mean()) ** 2
        return math.sqrt(var)

    ms, ms_se = float(sq.mean()), se(sq)
    rms = math.sqrt(max(ms, 0.0))
    rms_se = ms_se / (2.0 * rms) if rms > 0.5 * math.sqrt(ms_se) else math.sqrt(ms_se)
    rng = np.random.default_rng(seed)
    p90 = float(np.quantile(absr, 0.9))
    boot = [float(np.quantile(absr[rng.integers(0, n, n)], 0.9)) for _ in range(bootstrap)] if n > 1 else [p90]
    mean_abs, mean_abs_se = float(absr.mean()), se(absr, np.abs(r1), np.abs(r2))
    return {
        "v_error_mean": mean_abs,
        "v_error_mean_se": mean_abs_se,
        "v_error_upper": mean_abs + Z95 * mean_abs_se,
        "v_error_rms": rms,
        "v_error_rms_se": rms_se,
        "v_error_p90": p90,
        "v_error_p90_se": float(np.std(boot, ddof=1)) if len(boot) > 1 else math.inf,
        "v_error_signed": float(rbar.mean()),
        "v_error_signed_se": se(rbar, r1, r2),
        "v_error_noise": float(math.sqrt(np.mean((r1 - r2) ** 2) / 4.0)),
        "v_error_states": float(n),
    }


def _repeat(s: FirmBatch, reps: int) -> FirmBatch:
    return FirmBatch.cat([s] * reps) if reps > 1 else s


def marginal_errors(
    vf: ValueFunction,
    p: EconomyParams,
    employed: EmployedDraws,
    rates: MeetingRates,
    draw_source: DrawSource,
    generator: torch.Generator,
    *,
    iterations: int,
    reps: int = 1,
    tail_weight: float = 1e-2,
) -> tuple[Tensor, int]:
    """``d_j ≈ e(S_p) − e(S_p⊖x_j)`` for the employed draws, by ``iterations`` rounds of the cross-term
    iteration (module docstring), each from ``reps`` chains per state, the chains from ``S_p`` and ``S_p⊖x_j``
    coupled by common random numbers; returns ``d [J]`` and the chains run."""
    j = employed.slot.numel()
    d = torch.zeros(j, dtype=employed.s_p.h.dtype, device=employed.s_p.h.device)
    pairs = FirmBatch.cat([_repeat(employed.s_p, reps), _repeat(employed.s_p.remove(employed.slot), reps)])
    chains = 0
    for _ in range(iterations):
        res = chain_errors(
            vf, p, pairs, rates, draw_source, generator, marginal=d, tail_weight=tail_weight, coupled=True
        )
        e = res.error.view(2, reps, j).mean(1)
        d = e[0] - e[1]
        chains += pairs.batch_size
    return d, chains


def estimate_v_error(
    vf: ValueFunction,
    p: EconomyParams,
    states: FirmBatch,
    rates: MeetingRates,
    draw_source: DrawSource | None,
    generator: torch.Generator,
    *,
    employed: EmployedDraws | None = None,
    cross_iterations: int = 3,
    cross_reps: int = 1,
    tail_weight: float = 1e-2,
) -> VErrorEstimate:
    """Two independent chain estimates of ``e(S)`` at each state of ``states`` (module docstring).

    ``draw_source``: fresh meeting draws per step, whose employed part is ``employed`` (fixed) when the
    cross-firm term is iterated; without ``employed`` (or with ``cross_iterations = 0``) the term is left out.
    """
    t0 = time.perf_counter()
    cont: list[Tensor] = []
    steps, chains, tail, value = 0, 0, 0.0, None
    for _ in range(2):
        d = None
        if employed is not None and cross_iterations > 0 and draw_source is not None:
            d, n_chains = marginal_errors(
                vf,
                p,
                employed,
                rates,
                draw_source,
                generator,
                iterations=cross_iterations,
                reps=cross_reps,
                tail_weight=tail_weight,
            )
            chains += n_chains
        res = chain_errors(vf, p, states, rates, draw_source, generator, marginal=d, tail_weight=tail_weight)
        cont.append(res.error)
        steps = max(steps, res.steps)
        chains += states.batch_size
        value = res.value
        scale = float(res.value.abs().median().clamp_min(1e-300))
        tail = max(tail, float(res.tail_bound.max()) / scale)
    assert value is not None
    return VErrorEstimate(cont[0], cont[1], value, tail, steps, time.perf_counter() - t0, chains)


def market_sources(
    vf: ValueFunction, p: EconomyParams, market, m_n: int, m_e: int, generator: torch.Generator
) -> tuple[DrawSource, EmployedDraws]:
    """The draw source and the fixed employed draws of an estimate on a :class:`lotj.sim.market.Market`:
    ``m_e`` employed workers from χ^E drawn once (with Δ(S_p, x_j) under ``vf``), and ``m_n`` fresh unmatched
    workers from χ^N each step; with the market's exact sums, the exact weighted draws throughout."""
    fixed = market.draws(m_n, m_e, generator)
    with torch.no_grad():
        if fixed.row_e is not None:
            meet = fixed.with_surplus_table(market.surplus_table(vf))
        else:
            meet = fixed.with_surplus(vf, p)
    employed = EmployedDraws(fixed.s_p, fixed.slot)
    if market.exact_sums or m_n == 0:
        return (lambda g: meet), employed

    def source(g: torch.Generator):
        fresh = market.draws(m_n, 1, g)
        return type(meet)(fresh.h_n, fresh.a_n, meet.h_e, meet.a_e, meet.delta_p, None, fresh.weight_n, meet.weight_e)

    return source, employed


def estimate_on_market(
    vf: ValueFunction,
    p: EconomyParams,
    market,
    *,
    n_states: int,
    m_n: int,
    m_e: int,
    seed: int,
    cross_iterations: int = 2,
    cross_reps: int = 1,
    tail_weight: float = 1e-2,
) -> VErrorEstimate:
    """The error estimate of ``vf`` on ``n_states`` held-out Ω states of a :class:`lotj.sim.market.Market`
    (its rates, χ^N and χ^E), from a generator seeded with ``seed`` (module docstring)."""
    gen = torch.Generator().manual_seed(int(seed))
    states, _ = market.omega_states(n_states, market.heldout_firms, gen)
    source, employed = market_sources(vf, p, market, m_n, m_e, gen)
    return estimate_v_error(
        vf,
        p,
        states,
        market.rates,
        source,
        gen,
        employed=employed,
        cross_iterations=cross_iterations,
        cross_reps=cross_reps,
        tail_weight=tail_weight,
    )
