"""The W stage's a posteriori error estimate of W and the wages, and its convergence rule (docs/accuracy.md).

:func:`w_error_summary` runs at the end of :func:`lotj.train.wstage.run_w_stage` (``accuracy.enabled``) on the
simulated economy as the stage leaves it (its firms, their workers and their simulated wages), with the W
stage's market (χ^N, χ^E, Π and the meeting rates of its last refresh):

- the W error (:func:`lotj.accuracy.wage_error.estimate_w_error`) at ``accuracy.n_states`` employed workers
  drawn uniformly, at their own wages: ``w_error_*``;
- the wage error (:func:`lotj.accuracy.wage_error.wage_error_figures`) at the resets the simulator would set
  at ``accuracy.n_states`` firms drawn uniformly (:func:`lotj.accuracy.wage_error.reset_events`), at most
  ``accuracy.wage_events`` per cause group: ``wage_error_<group>_*`` as shares of the panel's median wage;
- ``w_convergence``: ``"converged"`` iff every group's bound ``wage_error_<group>_upper`` is at or below
  ``wsolver.tol`` (:func:`lotj.accuracy.wage_error.wage_certify`).

Chains get ``accuracy.m_n`` unmatched and ``accuracy.m_e`` employed meeting draws (the market's exact sums
where it makes them) and ``accuracy.m_pi`` poachers, fresh every step; they stop at ``accuracy.tail_weight``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from lotj.accuracy.wage_error import (
    estimate_w_error,
    network_reset_wages,
    reset_events,
    wage_certify,
    wage_error_figures,
    wage_slopes,
)
from lotj.accuracy.worker_market import cap_events, unmatched_workers, worker_sources
from lotj.config import Config

__all__ = ["w_error_summary"]


def w_error_summary(
    cfg: Config, wf: Any, vf: Any, simulator: Any, tracker: Any, market: Any, median_wage: float | None
) -> dict[str, Any]:
    """The ``w_error_*``, ``wage_error_*`` and ``w_convergence`` keys (module docstring)."""
    acc, p = cfg.accuracy, cfg.economy
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed + 11)
    pop = simulator.pop
    dev = pop.h.device
    rates = market.rates
    draws, poachers = worker_sources(vf, market, acc.m_n, acc.m_e, acc.m_pi)
    out: dict[str, Any] = {}
    with torch.no_grad():
        # the W error at employed workers and their wages
        seats = pop.employed().nonzero().squeeze(-1)
        if seats.numel():
            pick = seats[torch.randint(seats.numel(), (acc.n_states,), generator=gen).to(seats.device)]
            firms, slot = pop.firm[pick], pop.slot[pick]
            s = pop.firm_batch(firms)
            west = estimate_w_error(
                wf, vf, p, s, slot, tracker.wage[pick], rates, draws, poachers, gen, tail_weight=acc.tail_weight
            )
            out.update(west.figures())
        # the wage error at the resets of firms drawn uniformly
        fidx = torch.randint(pop.n_firms, (acc.n_states,), generator=gen).to(dev)
        s = pop.firm_batch(fidx)
        from lotj.sim.wage_tracking import firm_wages

        _, w = firm_wages(pop, tracker, fidx)
        events = reset_events(
            wf, vf, p, s, w, rates, unmatched_workers(market, max(acc.m_n, 64), gen), poachers(gen), gen
        )
        events = cap_events(events, acc.wage_events, gen)
        if events.count:
            wage = network_reset_wages(wf, p, events)
            slope = wage_slopes(wf, events.states, events.slot, wage)
            est = estimate_w_error(
                wf,
                vf,
                p,
                events.states,
                events.slot,
                wage,
                rates,
                draws,
                poachers,
                gen,
                tail_weight=acc.tail_weight,
            )
            figs = wage_error_figures(
                events.cause.cpu().numpy(),
                events.weight.double().cpu().numpy(),
                est.error1.double().cpu().numpy(),
                est.error2.double().cpu().numpy(),
                slope.double().cpu().numpy(),
                float(median_wage) if median_wage is not None else math.nan,
            )
            out.update(figs)
    out["wage_error_seconds"] = time.perf_counter() - t0
    out["w_convergence"] = wage_certify(out, cfg.wsolver.tol)
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in out.items()}
