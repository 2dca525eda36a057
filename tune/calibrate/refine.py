"""The local phase: a derivative-free least-squares refinement from the search's best trial (DFO-LS).

The objective is a sum of squares, ``Q(θ) = g'Wg = ‖r(θ)‖²`` with ``r = L'g`` and ``W = LL'`` (the
Cholesky factor; ``r_k = √W_kk g_k`` for the diagonal weighting, ``tune.calibrate.objective``). DFO-LS
(Cartis, Fiala, Marteau and Roberts 2019, "Improving the flexibility and robustness of model-based
derivative-free optimization solvers") builds a linear model of every component ``r_k`` from the points
it has evaluated and minimises its Gauss–Newton model in a trust region: it uses the moments one by one,
where a sampler sees only their weighted sum, needs no derivatives (each evaluation is an equilibrium
solve) and is made for noisy objectives (``objfun_has_noise``: a slowly shrinking trust region, restarts,
and a stop when the steps are at the noise level).

- Coordinates: the unit cube of the bounds (log scale for a log parameter, ``Parameter.unit``), so that a
  trust radius means the same share of every range and the bounds are DFO-LS's box.
- Start: the best finished trial of the search. DFO-LS's first model is built from the finished trials
  already recorded (an evaluation database): those inside the first trust region cost no new solve. With
  ``directions`` (DFO-LS's reduced initialisation, which it offers from a bare start only) the first model
  has that many directions and grows as it goes; DFO-LS's evaluation at the start reads the start's record.
- Each evaluation is a trial like any other (``tune.calibrate.evaluate``, origin ``refine``), warm-started
  from the start trial's networks so that neighbouring candidates differ by their parameters, not by
  their starts (as for the Jacobian). A failed or refused candidate returns a residual of norm
  ``√failure_score`` (the score the sampler sees for it): DFO-LS stops at a non-finite one.
- Resumable: a candidate's key is its digest (``refine_<sha1 of its coordinates>``); an evaluation already
  recorded is read back, not solved again, so a resumed refinement retraces its steps to where it stopped
  (DFO-LS is deterministic given the same values; its random draws are seeded).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tune.calibrate.evaluate import FINISHED
from tune.calibrate.objective import Objective
from tune.calibrate.space import Parameter, from_unit, unit_vector

#: ``record = evaluate(candidate, key)``: one trial of the refinement
Evaluator = Callable[[dict[str, float], str], dict[str, Any]]


@dataclass
class RefineResult:
    """What the refinement did: its new evaluations, DFO-LS's exit and its best point."""

    evaluations: int  #: solves asked for by DFO-LS (recorded ones read back included)
    solved: int  #: of which solved in this session
    exit_flag: int
    message: str
    best_key: str  #: the refinement's best record (the start trial's key when nothing was better)
    best_objective: float


def residuals(objective: Objective, moments: dict[str, Any]) -> np.ndarray:
    """``r = L'g`` with ``W = LL'``, so that ``‖r‖² = g'Wg`` (module docstring); NaN where a moment is missing."""
    g = objective.gap(moments)
    w = np.array(objective.weights, dtype=float)
    if np.count_nonzero(w - np.diag(np.diag(w))) == 0:
        return np.sqrt(np.diag(w)) * g
    return np.linalg.cholesky(w).T @ g


def record_residuals(record: dict[str, Any], objective: Objective, failure_score: float) -> np.ndarray:
    """The residual vector a record stands for: ``r`` of its moments when it is scored by its objective,
    else a vector of norm ``√failure_score`` (a failed, refused, or unconverged-and-refused solve)."""
    scored = record["status"] in FINISHED and record.get("score") == record.get("objective")
    r = residuals(objective, record.get("moments") or {}) if scored else None
    if r is None or not np.all(np.isfinite(r)):
        k = len(objective.keys)
        return np.full(k, math.sqrt(failure_score / k))
    return r


def candidate_key(u: np.ndarray) -> str:
    """The key of the candidate at unit-cube point ``u``: a digest of its coordinates to 12 digits."""
    text = json.dumps([float(f"{x:.12g}") for x in np.asarray(u, dtype=float)])
    return "refine_" + hashlib.sha1(text.encode()).hexdigest()[:12]


def refine(
    start: dict[str, Any],
    records: list[dict[str, Any]],
    params: list[Parameter],
    objective: Objective,
    evaluate: Evaluator,
    *,
    max_evals: int,
    radius: float = 0.1,
    tol: float = 1e-3,
    failure_score: float = 1.0e6,
    seed: int = 0,
    directions: int | None = None,
    recorded: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[str], None] | None = print,
) -> RefineResult:
    """Minimise ``‖r(θ)‖²`` by DFO-LS from the record ``start`` (module docstring).

    ``records``: the finished trials so far (DFO-LS's first model uses those inside its trust region);
    ``evaluate(candidate, key)``: solves a candidate and returns its record; ``max_evals``: new
    evaluations at most; ``radius``, ``tol``: DFO-LS's first and last trust radii on the unit cube;
    ``directions``: the directions of its first model (DFO-LS's ``growing.ndirs_initial``; None: all ``P``):
    with fewer, it takes its first Gauss–Newton step after that many solves instead of ``P``, and adds the
    missing directions as it goes;
    ``recorded``: records of earlier refinement evaluations by key (read back instead of solved)."""
    import dfols

    if max_evals < 1:
        raise ValueError(f"refine: max_evals = {max_evals}: must be >= 1")
    if not 0 < tol < radius <= 0.5:
        raise ValueError(f"refine: need 0 < tol < radius <= 0.5, got tol={tol}, radius={radius}")
    if directions is not None and not 1 <= directions <= len(params):
        raise ValueError(f"refine: directions = {directions}: must be in [1, {len(params)}] (the parameters)")
    recorded = dict(recorded or {})
    seen: list[dict[str, Any]] = []
    solved = 0

    def objfun(u: np.ndarray) -> np.ndarray:
        nonlocal solved
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        key = candidate_key(u)
        record = recorded.get(key)
        if record is None:
            record = evaluate(from_unit(u, params), key)
            recorded[key] = record
            solved += 1
        r = record_residuals(record, objective, failure_score)
        if record is start:  # DFO-LS's evaluation at its start point: the start trial's own record
            return r
        seen.append(record)
        if progress is not None:
            q = float(r @ r)
            progress(f"tune.calibrate refine {len(seen)}/{max_evals}: {record['status']} objective {q:.6g} ({key})")
        return r

    start_u = unit_vector(start["params"], params)
    if directions is None:  # the first model from the finished trials inside the first trust region
        x0 = dfols.EvaluationDatabase()
        x0.append(start_u, record_residuals(start, objective, failure_score), make_starting_eval=True)
        for r in records:
            if r["key"] != start["key"] and r["status"] in FINISHED:
                x0.append(unit_vector(r["params"], params), record_residuals(r, objective, failure_score))
        budget = max_evals
    else:  # DFO-LS grows its first model only from a bare start: its evaluation there is the start's record
        x0 = np.clip(start_u, 0.0, 1.0)
        recorded.setdefault(candidate_key(x0), start)
        budget = max_evals + 1
    n = len(params)
    lower, upper = np.zeros(n), np.ones(n)
    state = np.random.get_state()  # DFO-LS draws from numpy's global generator (restarts, new directions)
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "maxfun <= npt": a small budget is the user's choice
            soln = dfols.solve(
                objfun, x0, bounds=(lower, upper), rhobeg=radius, rhoend=tol, maxfun=budget,
                objfun_has_noise=True, do_logging=False,
                user_params=None if directions is None else {"growing.ndirs_initial": directions},
            )  # fmt: skip
    finally:
        np.random.set_state(state)
    finished = [r for r in seen if r["status"] in FINISHED and r.get("score") == r.get("objective")]
    best = min(finished, key=lambda r: r["objective"], default=None)
    if best is None or best["objective"] >= start["objective"]:
        best = start
    return RefineResult(len(seen), solved, int(soln.flag), str(soln.msg), best["key"], float(best["objective"]))
