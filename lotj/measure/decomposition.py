"""The variance decomposition of human-capital growth (MODEL.md eq. 3 and section 9.1; MEASUREMENT.md).

Over employed worker-years, with the economy's θ⁺, θ⁻ and n the firm-year's size (the manager not counted):

    log_a       = log a_i,
    log_q       = log q_k,
    theta_plus  = θ⁺/(n−1) Σ_{h_j>h_i} (log h_j − log h_i),
    theta_minus = θ⁻/(n−1) Σ_{h_j<h_i} (log h_j − log h_i)      (both 0 when n = 1),

total = their sum. A component with a single value (a zero variance or θ) has entries exactly 0.
Entry [c][c] = Var(c)/Var(total), entry [c][c'] (c before c') = 2 Cov(c, c')/Var(total),
0 below the diagonal: the entries sum to 1. Null when there are no employed rows or Var(total) = 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lotj.measure.coworkers import coworker_sums
from lotj.measure.stats import is_constant

#: the components of h growth, in the table's order
COMPONENTS = ("log_a", "log_q", "theta_plus", "theta_minus")


def learning_components(emp: pd.DataFrame, theta_plus: float, theta_minus: float) -> pd.DataFrame:
    """The four components of h growth (module docstring) of every employed row, in ``emp``'s order."""
    log_h = np.log(emp["h"].to_numpy(dtype=float))
    sums = coworker_sums(emp["fy"].to_numpy(), log_h)
    d = np.maximum(sums.n - 1, 1).astype(float)  # n = 1: the sums are 0
    return pd.DataFrame(
        {
            "log_a": np.log(emp["a"].to_numpy(dtype=float)),
            "log_q": np.log(emp["q"].to_numpy(dtype=float)),
            "theta_plus": theta_plus * sums.plus1 / d,
            "theta_minus": theta_minus * sums.minus1 / d,
        }
    )


def decomposition_table(components: pd.DataFrame) -> dict[str, dict[str, float]] | None:
    """The 4×4 upper-triangular table as a dict of rows of columns (module docstring)."""
    if not len(components):
        return None
    c = components[list(COMPONENTS)].to_numpy(dtype=float)
    total = c.sum(axis=1)
    if is_constant(total):
        return None
    dev = c - c.mean(axis=0)
    # a component with one value (log q with sd_log_q = 0, the θ terms with θ = 0) has no variance: its entries
    # are exactly 0, not the rounding of its mean (about 1e-32 for log q = μ_q)
    dev[:, (c == c[0]).all(axis=0)] = 0.0
    cov = dev.T @ dev / len(c)  # population covariances
    v = float(np.var(total))
    table: dict[str, dict[str, float]] = {}
    for i, ci in enumerate(COMPONENTS):
        table[ci] = {}
        for j, cj in enumerate(COMPONENTS):
            if j < i:
                table[ci][cj] = 0.0
            elif j == i:
                table[ci][cj] = float(cov[i, i] / v)
            else:
                table[ci][cj] = float(2.0 * cov[i, j] / v)
    return table


def h_growth_decomposition(emp: pd.DataFrame, theta_plus: float, theta_minus: float) -> dict | None:
    """``h_growth_decomposition`` of moments.json."""
    return decomposition_table(learning_components(emp, theta_plus, theta_minus))
