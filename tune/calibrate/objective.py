"""The simulated-method-of-moments objective and its weighting matrix (MODEL.md section 8).

The objective of a candidate θ is ``Q(θ) = g' W g`` with ``g = m(θ) − d``: the model moments of its solved
economy (``moments.json``, ``lotj.measure``) minus the data targets. The weighting matrix is estimated once,
at the start point, from the solved economy's simulated panel:

- ``diagonal`` (default): ``W = diag(1 / var(m_k))``, each moment's sampling variance;
- ``optimal``: ``W = Ω⁻¹`` with Ω the moments' covariance, regularised halfway towards its diagonal
  (``(Ω + diag Ω) / 2``): with few blocks the raw covariance is singular.

The covariance comes from the solved start economy (``calibrate.weight_source``):

- ``replications`` (default): the covariance of the moments of ``weight_replications`` independent panels,
  each simulated on from the start run's solved networks with its own random stream
  (``tune.calibrate.replicate``);
- ``blocks``: batch means over the start run's own panel, cut into disjoint blocks of ``weight_block_years``
  consecutive years, each measured on its own (``lotj.measure.measure``); the covariance of the block
  moments divided by the number of blocks stands for that of the whole panel's. It costs no simulation,
  but years of one path are positively correlated, so it understates the variance (docs/calibration.md).

Each standard deviation is floored at ``weight_floor × max(|data|, |model|, 1e-3)``: a moment that does not
vary (a median firm size of 1) would otherwise get an infinite weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Objective:
    """Targets ``d`` (in a fixed key order) and the weighting matrix ``W``; picklable for Ray workers."""

    keys: list[str]
    data: list[float]
    weights: list[list[float]]  #: W, K×K

    def gap(self, moments: dict) -> np.ndarray:
        """``g = m − d``; NaN where a moment is null or non-finite."""
        model = np.array([as_number(moments.get(k)) for k in self.keys])
        return model - np.array(self.data)

    def missing(self, moments: dict) -> list[str]:
        """Target keys whose model moment is null or non-finite."""
        return [k for k, g in zip(self.keys, self.gap(moments)) if not math.isfinite(g)]

    def value(self, moments: dict) -> float:
        """``Q = g' W g``; NaN when a target moment is missing."""
        g = self.gap(moments)
        if not np.all(np.isfinite(g)):
            return math.nan
        return float(g @ np.array(self.weights) @ g)

    def contributions(self, moments: dict) -> dict[str, float]:
        """Each target's share of Q under the diagonal of W: ``W_kk g_k²``."""
        g = self.gap(moments)
        w = np.diag(np.array(self.weights))
        return {k: float(w_k * g_k**2) for k, w_k, g_k in zip(self.keys, w, g)}


def as_number(value) -> float:
    """A moment as a float: NaN for a null, a flag or a non-finite value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def year_blocks(panel: pd.DataFrame, block_years: int) -> list[pd.DataFrame]:
    """Disjoint blocks of ``block_years`` consecutive panel years (a last incomplete block is dropped)."""
    years = sorted(panel["year"].unique())
    blocks = [years[i : i + block_years] for i in range(0, len(years) - block_years + 1, block_years)]
    return [panel[panel["year"].isin(b)] for b in blocks]


def block_moments(panel: pd.DataFrame, keys: list[str], block_years: int, theta: tuple[float, float]) -> np.ndarray:
    """The target moments of each block (rows) measured like the whole panel; NaN where null."""
    from lotj.measure import measure

    rows = []
    for block in year_blocks(panel, block_years):
        m = measure(block.reset_index(drop=True), *theta, analyses=False, progress=False).moments
        rows.append([as_number(m.get(k)) for k in keys])
    return np.array(rows, dtype=float).reshape(-1, len(keys))


def moment_covariance(blocks: np.ndarray, batch_means: bool = True) -> np.ndarray:
    """Covariance of the whole panel's moments from the rows of ``blocks``: with ``batch_means``, rows are
    blocks of one panel and the covariance is ``cov(blocks) / n_blocks``; without, rows are whole panels
    (replications) and it is their sample covariance.

    Pairwise-complete: a row with a null moment leaves out only the pairs it lacks. NaN where fewer
    than two rows have the moment."""
    k = blocks.shape[1]
    out = np.full((k, k), math.nan)
    for i in range(k):
        for j in range(i, k):
            ok = np.isfinite(blocks[:, i]) & np.isfinite(blocks[:, j])
            if ok.sum() >= 2:
                c = np.cov(blocks[ok, i], blocks[ok, j], ddof=1)[0, 1] / (ok.sum() if batch_means else 1)
                out[i, j] = out[j, i] = c
    return out


def floored_variances(cov: np.ndarray, data: np.ndarray, model: np.ndarray, floor: float) -> np.ndarray:
    """The diagonal of ``cov``, each at least ``(floor × max(|data|, |model|, 1e-3))²`` (module docstring)."""
    scale = np.maximum(np.maximum(np.abs(data), np.nan_to_num(np.abs(model))), 1e-3)
    var = np.nan_to_num(np.diag(cov), nan=0.0)
    return np.maximum(var, (floor * scale) ** 2)


def weighting_matrix(cov: np.ndarray, variances: np.ndarray, kind: str) -> np.ndarray:
    """``diagonal``: ``diag(1/variances)``; ``optimal``: the inverse of the covariance with the floored
    variances on its diagonal, regularised halfway towards that diagonal (module docstring)."""
    if kind == "diagonal":
        return np.diag(1.0 / variances)
    omega = np.nan_to_num(cov, nan=0.0)
    np.fill_diagonal(omega, variances)
    regular = 0.5 * (omega + np.diag(variances))
    return np.linalg.inv(regular)


def moment_errors(cov: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """The moments' covariance Ω used for standard errors: the estimated covariance with the floored variances."""
    omega = np.nan_to_num(cov, nan=0.0)
    np.fill_diagonal(omega, variances)
    return omega
