"""Pooled statistics with the null rules of MEASUREMENT.md (rule 5): population variances (ddof 0), Pearson
correlations that are null with fewer than 2 points or a constant side, numpy's default (linear) quantiles,
null on an empty sample."""

from __future__ import annotations

import math

import numpy as np

#: a side of a correlation is constant when its standard deviation is at most this times its largest |x|
CONSTANT_RTOL = 1e-12


def finite_or_none(x: float | None) -> float | None:
    """``x`` as a float, or None when it is None or not finite (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def var(x: np.ndarray) -> float | None:
    """Population variance (ddof 0); None on an empty sample."""
    return float(np.var(x)) if len(x) else None


def quantile(x: np.ndarray, p: float) -> float | None:
    """numpy's default (linear) quantile; None on an empty sample."""
    return float(np.quantile(x, p)) if len(x) else None


def is_constant(x: np.ndarray) -> bool:
    """std(x) ≤ 1e-12·max|x| (MEASUREMENT.md rule 5); an all-zero side is constant."""
    return bool(np.std(x) <= CONSTANT_RTOL * np.max(np.abs(x)))


def corr(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation; None with fewer than 2 points or when either side is constant."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(x) < 2 or is_constant(x) or is_constant(y):
        return None
    dx, dy = x - x.mean(), y - y.mean()
    return finite_or_none(np.mean(dx * dy) / math.sqrt(np.mean(dx * dx) * np.mean(dy * dy)))


def ratio(num: float, den: float) -> float | None:
    """``num / den``; None when ``den`` is 0 (an empty sample of a rate)."""
    return float(num) / float(den) if den else None
