"""Firm-years and firm sizes (MEASUREMENT.md conventions and rule 1).

A firm-year is a (firm_id, year) pair with at least one employed row; its size n is the number of
its employed rows (the manager is not a row; MODEL.md section 10). The ``firm_size`` column is only
checked against this count (:func:`lotj.measure.checks.check_panel`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lotj.measure.stats import mean, quantile


def employed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The employed rows of a checked panel, positionally indexed, with ``firm_id`` as int64, the
    firm-year code ``fy`` (0..F−1) and the firm-year's size ``n`` counted from the rows."""
    emp = frame.loc[frame["employed"].to_numpy(dtype=bool)].reset_index(drop=True)
    emp["firm_id"] = emp["firm_id"].astype("int64")
    if len(emp):
        fy = emp.groupby(["firm_id", "year"], sort=True).ngroup().to_numpy()
    else:
        fy = np.zeros(0, dtype=np.int64)
    emp["fy"] = fy
    emp["n"] = np.bincount(fy)[fy] if len(fy) else np.zeros(0, dtype=np.int64)
    return emp


def firm_year_sizes(emp: pd.DataFrame) -> np.ndarray:
    """The size of every firm-year (in ``fy`` order)."""
    return np.bincount(emp["fy"].to_numpy()) if len(emp) else np.zeros(0, dtype=np.int64)


def size_moments(emp: pd.DataFrame) -> dict[str, float | None]:
    """``firm_size_mean, firm_size_p50, firm_size_p90`` over firm-years, unweighted (MODEL.md section 8)."""
    n = firm_year_sizes(emp).astype(float)
    return {"firm_size_mean": mean(n), "firm_size_p50": quantile(n, 0.5), "firm_size_p90": quantile(n, 0.9)}
