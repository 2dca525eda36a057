"""The local least-squares refinement of a calibration (tune.calibrate.refine), on synthetic moment functions.

A synthetic evaluator stands for the equilibrium solve: its moments are smooth known functions of the
candidate plus a small noise seeded by the candidate (the same candidate always gives the same moments, as
common random numbers make a solve), so the parameters the targets imply are known exactly.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from tune.calibrate.objective import Objective
from tune.calibrate.refine import candidate_key, record_residuals, refine, residuals
from tune.calibrate.space import Parameter, from_unit, unit_vector

PARAMS = [Parameter("psi_n", 0.1, 1.0), Parameter("sd_log_a", 0.001, 0.1, log=True)]
TRUE = {"psi_n": 0.42, "sd_log_a": 0.0123}
KEYS = ["en_rate", "ne_rate", "employment_rate"]
NOISE = 1e-5


def model_moments(c: dict[str, float]) -> dict[str, float]:
    """Three smooth moments of two parameters (identified: the Jacobian has rank 2 everywhere)."""
    x, y = c["psi_n"], math.log(c["sd_log_a"])
    return {"en_rate": x + 0.05 * y, "ne_rate": 0.3 * x * x - 0.2 * y, "employment_rate": math.tanh(x + 0.1 * y)}


def noisy(c: dict[str, float]) -> dict[str, float]:
    seed = zlib.crc32(repr(sorted((k, round(v, 12)) for k, v in c.items())).encode())
    shocks = np.random.default_rng(seed).normal(0.0, NOISE, len(KEYS))
    return {k: v + e for (k, v), e in zip(model_moments(c).items(), shocks)}


OBJECTIVE = Objective(KEYS, [model_moments(TRUE)[k] for k in KEYS], np.diag([1e4, 4e4, 1e4]).tolist())


def record(key: str, c: dict[str, float], origin: str = "search", status: str = "ok") -> dict:
    moments = noisy(c) if status == "ok" else {}
    q = OBJECTIVE.value(moments) if status == "ok" else math.nan
    return {"key": key, "origin": origin, "params": dict(c), "status": status, "moments": moments,
            "objective": q, "score": q if status == "ok" else 1e6}  # fmt: skip


class Solver:
    """The evaluator: records every solve; fails (status ``failed``) where ``fails`` says so."""

    def __init__(self, fails=lambda c: False):
        self.calls: list[dict[str, float]] = []
        self.fails = fails

    def __call__(self, c: dict[str, float], key: str) -> dict:
        assert key == candidate_key(unit_vector(c, PARAMS))
        self.calls.append(c)
        return record(key, c, "refine", "failed" if self.fails(c) else "ok")


START = record("start", {"psi_n": 0.6, "sd_log_a": 0.03}, origin="start")


def test_residuals_square_to_the_objective():
    moments = {"en_rate": 0.3, "ne_rate": 0.1, "employment_rate": 0.5}
    g = np.array([moments[k] for k in KEYS]) - np.array(OBJECTIVE.data)
    r = residuals(OBJECTIVE, moments)
    assert r == pytest.approx(np.array([100.0, 200.0, 100.0]) * g, rel=1e-12)  # √W_kk g_k by hand
    full = Objective(KEYS, OBJECTIVE.data, [[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]])
    r = residuals(full, moments)
    assert r @ r == pytest.approx(full.value(moments), rel=1e-12)
    # a failed record stands for the failure score, whatever its moments
    failed = record("x", START["params"], status="failed")
    assert record_residuals(failed, OBJECTIVE, 1e6) @ record_residuals(failed, OBJECTIVE, 1e6) == pytest.approx(1e6)


def test_from_unit_inverts_unit_vector():
    c = {"psi_n": 0.37, "sd_log_a": 0.004}
    back = from_unit(unit_vector(c, PARAMS), PARAMS)
    assert back["psi_n"] == pytest.approx(0.37, rel=1e-12) and back["sd_log_a"] == pytest.approx(0.004, rel=1e-12)
    assert from_unit(np.array([0.0, 1.0]), PARAMS) == pytest.approx({"psi_n": 0.1, "sd_log_a": 0.1}, rel=1e-12)


def test_refinement_recovers_the_parameters_from_the_search_best():
    solver = Solver()
    result = refine(START, [START], PARAMS, OBJECTIVE, solver, max_evals=40, progress=None)
    assert 0 < result.evaluations <= 40 and result.solved == len(solver.calls) == result.evaluations
    best = next(c for c in solver.calls if candidate_key(unit_vector(c, PARAMS)) == result.best_key)
    # the noise (1e-5 on moments of slope ~1) allows errors of a few 1e-5 in psi_n
    assert best["psi_n"] == pytest.approx(TRUE["psi_n"], abs=2e-3)
    assert best["sd_log_a"] == pytest.approx(TRUE["sd_log_a"], rel=2e-2)
    assert result.best_objective < 1e-2 * START["objective"]
    for c in solver.calls:  # DFO-LS's box is the bounds
        assert all(p.lower <= c[p.name] <= p.upper for p in PARAMS)


def test_a_resumed_refinement_retraces_its_steps_without_solving_them_again():
    whole = Solver()
    full = refine(START, [START], PARAMS, OBJECTIVE, whole, max_evals=14, progress=None)
    first = Solver()
    refine(START, [START], PARAMS, OBJECTIVE, first, max_evals=6, progress=None)
    recorded = {candidate_key(unit_vector(c, PARAMS)): record(candidate_key(unit_vector(c, PARAMS)), c, "refine")
                for c in first.calls}  # fmt: skip
    second = Solver()
    resumed = refine(START, [START], PARAMS, OBJECTIVE, second, max_evals=14, recorded=recorded, progress=None)
    assert resumed.solved == full.evaluations - len(first.calls) == len(second.calls)
    assert [c for c in second.calls] == whole.calls[len(first.calls) :]
    assert (resumed.best_key, resumed.best_objective) == (full.best_key, full.best_objective)


def test_failed_solves_are_scored_and_the_refinement_goes_on():
    def fails(c):  # a band just below the start: the first steps towards the optimum land in it
        return 0.5 < c["psi_n"] < 0.56

    solver = Solver(fails)
    result = refine(START, [START], PARAMS, OBJECTIVE, solver, max_evals=40, progress=None)
    assert any(fails(c) for c in solver.calls)
    assert result.best_objective < 1e-2 * START["objective"]  # it went round or through the band


def test_the_search_trials_inside_the_first_trust_region_are_not_solved_again():
    # a start with two finished neighbours inside the first trust region (radius 0.1 of each range): DFO-LS's
    # first model is theirs, so its first solve is a model step, not a coordinate step from the start
    near = [record("a", from_unit(unit_vector(START["params"], PARAMS) + [0.05, 0.0], PARAMS)),
            record("b", from_unit(unit_vector(START["params"], PARAMS) + [0.0, -0.05], PARAMS))]  # fmt: skip
    solver = Solver()
    refine(START, [START, *near], PARAMS, OBJECTIVE, solver, max_evals=1, progress=None)
    cold = Solver()
    refine(START, [START], PARAMS, OBJECTIVE, cold, max_evals=1, progress=None)
    u0 = unit_vector(START["params"], PARAMS)
    step = unit_vector(solver.calls[0], PARAMS) - u0
    coordinate = unit_vector(cold.calls[0], PARAMS) - u0
    assert np.count_nonzero(np.abs(coordinate) > 1e-9) == 1  # without neighbours: a coordinate step
    assert np.count_nonzero(np.abs(step) > 1e-9) == 2  # with them: a step of the model, in both coordinates


def test_bad_budgets_are_refused():
    with pytest.raises(ValueError, match="max_evals"):
        refine(START, [START], PARAMS, OBJECTIVE, Solver(), max_evals=0, progress=None)
    with pytest.raises(ValueError, match="tol"):
        refine(START, [START], PARAMS, OBJECTIVE, Solver(), max_evals=5, tol=0.2, radius=0.1, progress=None)


def test_fewer_first_directions_step_sooner():
    """Six parameters, eight moments linear on the unit cube, six solves from a start at 0.8 (optimum 0.4).

    With a full first model DFO-LS spends all six solves on coordinate steps around the start and none is
    better than the start; with ``directions=3`` it takes Gauss-Newton steps after three and adds directions as
    it goes, and ends below a tenth of the start's objective (the figure after six solves moves with the
    rounding of the solver's linear algebra: 3.3% with numpy 2.4 and scipy 1.17, below 1% with earlier
    releases). Its evaluation at the start is the start's record, not a solve."""
    params = [Parameter(f"p{i}", 0.0, 1.0) for i in range(6)]
    keys = [f"m{i}" for i in range(8)]
    jac = np.random.default_rng(0).normal(0.0, 1.0, (8, 6))
    objective = Objective(keys, [0.0] * 8, np.eye(8).tolist())

    def rec(key: str, c: dict[str, float], origin: str) -> dict:
        moments = dict(zip(keys, jac @ (unit_vector(c, params) - 0.4)))
        q = objective.value(moments)
        return {"key": key, "origin": origin, "params": c, "status": "ok", "moments": moments, "objective": q,
                "score": q}  # fmt: skip

    start = rec("start", from_unit(np.full(6, 0.8), params), "start")
    solves: list[str] = []

    def solve(c: dict[str, float], key: str) -> dict:
        solves.append(key)
        return rec(key, c, "refine")

    def best_after(directions: int | None) -> float:
        solves.clear()
        result = refine(start, [start], params, objective, solve, max_evals=6, radius=0.25,
                        directions=directions, progress=None)  # fmt: skip
        assert result.evaluations == result.solved == len(solves) == 6 and "start" not in solves
        return result.best_objective

    full, fewer = best_after(None), best_after(3)
    assert full == start["objective"] and fewer < 1e-1 * start["objective"], (full, fewer)
    with pytest.raises(ValueError, match="directions"):
        refine(start, [start], params, objective, lambda c, key: rec(key, c, "refine"), max_evals=8, directions=7)
