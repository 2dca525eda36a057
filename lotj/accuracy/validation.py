"""The error estimator checked against the true error on the exact economies (docs/accuracy.md).

:func:`estimator_check` estimates the error of a value function with the chains of :mod:`lotj.accuracy` and
compares it with the truth:

- a discrete economy (:class:`lotj.exact.ExactSolution`): the network's values on every state, read as a
  table (:class:`lotj.accuracy.exact_check.TableValue`), chains with the exact χ^N and χ^E as weighted
  draws and the cross-firm iteration on every employed (state, type) pair; the truth is
  ``V_net − V_exact`` (and, beside it, the error under the network's own decisions, which the estimator
  targets: :func:`lotj.accuracy.exact_check.exact_errors`);
- the closed-workforce learning economy (:class:`lotj.exact.LearningCheck`): chains of learning events from
  the held-out states (no meetings); the truth is ``V_net − V_exact`` there.

``agrees``: the estimated mean relative error is within twice its standard error of the true one, or
within 20% of it where that is larger (the issue's acceptance).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from lotj.accuracy.chains import chain_errors
from lotj.accuracy.estimate import error_figures, estimate_v_error
from lotj.accuracy.exact_check import TableValue, exact_employed, exact_errors, exact_meeting_draws, exact_rates
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.value import ValueFunction
from lotj.exact.equilibrium import ExactSolution
from lotj.exact.learning import LearningCheck

__all__ = ["estimator_check"]


def _agreement(est: dict[str, float], true_mean: float) -> dict[str, Any]:
    gap = abs(est["v_error_mean"] - true_mean)
    allowed = max(2.0 * est["v_error_mean_se"], 0.2 * true_mean)
    return {"true_mean": true_mean, "gap": gap, "allowed": allowed, "agrees": bool(gap <= allowed)}


def _values(vf: ValueFunction, states) -> np.ndarray:
    with torch.no_grad():
        return vf.value(states).detach().double().cpu().numpy()


def estimator_check(
    vf: ValueFunction,
    p: EconomyParams,
    exact: ExactSolution | LearningCheck,
    *,
    reps: int = 2,
    cross_iterations: int = 3,
    cross_reps: int = 2,
    tail_weight: float = 1e-2,
    seed: int = 0,
) -> dict[str, Any]:
    """The estimate of ``vf``'s error against the truth on an exact economy (module docstring): the
    estimated figures, the true ones, and whether they agree."""
    gen = torch.Generator().manual_seed(int(seed))
    if isinstance(exact, ExactSolution):
        space = exact.space
        v_net = _values(vf, exact.states)
        table = TableValue(space, v_net)
        draws = exact_meeting_draws(space, exact.market, v_net)
        start = space.firm_batch(np.tile(np.arange(space.n_states), reps))
        est = estimate_v_error(
            table,
            p,
            start,
            exact_rates(exact.market),
            lambda g: draws,
            gen,
            employed=exact_employed(space, exact.market),
            cross_iterations=cross_iterations,
            cross_reps=cross_reps,
            tail_weight=tail_weight,
        )
        # the two continuations of each state, averaged over the repeats: one figure per state
        e1 = est.error1.view(reps, -1).mean(0)
        e2 = est.error2.view(reps, -1).mean(0)
        figures = error_figures(e1, e2, torch.as_tensor(v_net))
        true = v_net - exact.v
        own = exact_errors(space, p, exact.market, v_net).error
        out = {
            "estimated": figures,
            "true_mean": float(np.mean(np.abs(true) / np.abs(v_net))),
            "true_rms": float(np.sqrt(np.mean((true / v_net) ** 2))),
            "true_signed": float(np.mean(true / np.abs(v_net))),
            "own_decisions_mean": float(np.mean(np.abs(own) / np.abs(v_net))),
            "seconds": est.seconds,
            "chains": est.chains,
        }
    else:
        v_net = _values(vf, exact.states)
        states = exact.states
        rates = MeetingRates(0.0, 0.0, 0.0)
        t0 = time.perf_counter()
        runs = [chain_errors(vf, p, states, rates, None, gen, tail_weight=tail_weight) for _ in range(2)]
        figures = error_figures(runs[0].error, runs[1].error, torch.as_tensor(v_net))
        true = v_net - np.asarray(exact.values, dtype=np.float64)
        out = {
            "estimated": figures,
            "true_mean": float(np.mean(np.abs(true) / np.abs(v_net))),
            "true_rms": float(np.sqrt(np.mean((true / v_net) ** 2))),
            "true_signed": float(np.mean(true / np.abs(v_net))),
            "seconds": time.perf_counter() - t0,
            "chains": 2 * states.batch_size,
        }
    out.update(_agreement(out["estimated"], out["true_mean"]))
    out = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}
    return out
