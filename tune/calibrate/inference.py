"""At the best point: the Jacobian of the moments, the standard errors it implies, weak identification.

The Jacobian ``G = ∂m/∂θ`` (K moments × P searched coordinates) is a forward difference per coordinate,
``(m(θ + h_j e_j) − m(θ)) / h_j`` with ``h_j = fd_step × (upper_j − lower_j)`` (backward where the step would
leave the bounds), with ``m(θ)`` solved again beside them. Every one of these solves starts from the best
trial's networks (cold with ``warm_start: false``) with the same seed: common random numbers and a common
start, so a difference is the parameter's effect, not fresh sampling noise or another start.

Standard errors (the usual simulated-method-of-moments sandwich, e.g. Gouriéroux–Monfort; estimagic's
``estimate_msm``):

    Var(θ̂) = (1 + 1/S) (G'WG)⁻¹ G'W Ω_d W G (G'WG)⁻¹,     Ω_d = Ω / r,  S = 1 / r

with Ω the covariance of the model moments at the simulated panel's size (``tune.calibrate.objective``),
``r = data_size_ratio`` (data sample size over the simulated panel's: the data moments' covariance is Ω/r)
and S the simulated-to-data size ratio. A parameter's *reach* ``sqrt(G_j' W G_j) × (upper_j − lower_j)`` is by
how many standard errors the moments move when it crosses its whole range: below ``weak_identification``
the targets barely move it and it is flagged (its standard error is then large or infinite).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tune.calibrate.space import Parameter


@dataclass
class Inference:
    jacobian: np.ndarray  #: K×P
    se: np.ndarray  #: P standard errors (inf where the parameter is not identified)
    reach: np.ndarray  #: P, in standard errors of the moments over the parameter's range
    weak: list[str]  #: coordinates flagged as weakly identified


def fd_points(best: dict[str, float], params: list[Parameter], fd_step: float) -> list[tuple[dict[str, float], float]]:
    """One shifted candidate per coordinate and its signed step (backward at the upper bound)."""
    out = []
    for p in params:
        h = fd_step * p.width
        shifted = dict(best)
        shifted[p.name] = best[p.name] + h if best[p.name] + h <= p.upper else best[p.name] - h
        out.append((shifted, shifted[p.name] - best[p.name]))
    return out


def jacobian(base: np.ndarray, shifted: list[np.ndarray], steps: list[float]) -> np.ndarray:
    """``G[:, j] = (m(θ + h_j e_j) − m(θ)) / h_j``."""
    return np.column_stack([(m - base) / h for m, h in zip(shifted, steps)])


def standard_errors(g: np.ndarray, w: np.ndarray, omega: np.ndarray, data_size_ratio: float) -> np.ndarray:
    """The sandwich of the module docstring; ``inf`` for coordinates that ``G'WG`` cannot separate."""
    r = data_size_ratio
    bread = g.T @ w @ g
    p = bread.shape[0]
    if not np.all(np.isfinite(bread)) or np.linalg.matrix_rank(bread) < p:
        se = np.full(p, math.inf)
        ok = [j for j in range(p) if np.any(g[:, j] != 0)]
        if ok and np.linalg.matrix_rank(bread[np.ix_(ok, ok)]) == len(ok):
            se[ok] = standard_errors(g[:, ok], w, omega, r)
        return se
    inv = np.linalg.inv(bread)
    var = (1.0 + r) * inv @ (g.T @ w @ (omega / r) @ w @ g) @ inv
    return np.sqrt(np.clip(np.diag(var), 0.0, None))


def reach(g: np.ndarray, w: np.ndarray, params: list[Parameter]) -> np.ndarray:
    """``sqrt(G_j' W G_j) × width_j`` per coordinate (module docstring)."""
    return np.array([math.sqrt(max(float(g[:, j] @ w @ g[:, j]), 0.0)) * p.width for j, p in enumerate(params)])


def infer(g: np.ndarray, w: np.ndarray, omega: np.ndarray, params: list[Parameter], data_size_ratio: float,
          threshold: float) -> Inference:  # fmt: skip
    se = standard_errors(g, w, omega, data_size_ratio)
    r = reach(g, w, params)
    weak = [p.name for p, rj in zip(params, r) if not rj >= threshold]
    return Inference(g, se, r, weak)
