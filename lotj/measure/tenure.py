"""Tenure, the markdown W/J by tenure and wages by the cause of their last reset (MODEL.md sections 5 and 9.3).

Tenure is computed from the panel itself, as on real data: a worker's spell at a firm is a run of
consecutive years employed at that firm; ``tenure`` = year − the spell's first year (0 in the year it
joined). A spell whose first year has no year before it in the panel (the panel's first year, or after a
gap in the years) may have started earlier: ``tenure_censored`` flags it (its tenure is a lower bound).
Both are null on non-employed rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: tenure at and above which spells are pooled in the tables (years)
TENURE_TOP = 10


def tenure_columns(panel: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """``(tenure, tenure_censored)`` of every row of ``panel`` (module docstring), Int64 and boolean."""
    size = len(panel)
    worker = panel["worker_id"].to_numpy()
    year = panel["year"].to_numpy().astype(np.int64)
    emp = panel["employed"].to_numpy(dtype=bool)
    firm = panel["firm_id"].astype("Int64").to_numpy(dtype=np.int64, na_value=-1)
    order = np.lexsort((year, worker))
    w, y, e, f = worker[order], year[order], emp[order], firm[order]
    cont = np.r_[False, (w[1:] == w[:-1]) & (y[1:] == y[:-1] + 1) & e[1:] & e[:-1] & (f[1:] == f[:-1])]
    spell = np.cumsum(~cont)
    start = np.flatnonzero(~cont)
    first_year = y[start][spell - 1]
    censored_start = ~np.isin(y[start] - 1, np.unique(year))
    ten = np.empty(size, dtype=np.int64)
    cen = np.empty(size, dtype=bool)
    ten[order] = y - first_year
    cen[order] = censored_start[spell - 1]
    tenure = pd.array(ten, dtype="Int64")
    censored = pd.array(cen, dtype="boolean")
    tenure[~emp] = pd.NA
    censored[~emp] = pd.NA
    return pd.Series(tenure, index=panel.index, name="tenure"), pd.Series(censored, index=panel.index)


def with_tenure(panel: pd.DataFrame) -> pd.DataFrame:
    """``panel`` with the columns ``tenure`` and ``tenure_censored`` (module docstring)."""
    out = panel.copy()
    out["tenure"], out["tenure_censored"] = tenure_columns(panel)
    return out


def _summary(values: pd.Series) -> pd.Series:
    v = values.to_numpy(dtype=float)
    return pd.Series(
        {
            "rows": len(v),
            "mean": v.mean(),
            "p25": np.quantile(v, 0.25),
            "p50": np.quantile(v, 0.5),
            "p75": np.quantile(v, 0.75),
        }
    )


def markdown_by_tenure(emp: pd.DataFrame) -> pd.DataFrame:
    """The markdown W/J (rows with J > 0) by tenure (top-coded at :data:`TENURE_TOP`) and censoring:
    rows, mean and quartiles. Needs the columns ``W`` and ``J`` and the tenure columns."""
    W, J = emp["W"].to_numpy(dtype=float), emp["J"].to_numpy(dtype=float)
    ok = np.isfinite(W) & np.isfinite(J) & (J > 0)
    frame = pd.DataFrame(
        {
            "tenure": np.minimum(emp["tenure"].to_numpy(dtype=np.int64)[ok], TENURE_TOP),
            "censored": emp["tenure_censored"].to_numpy(dtype=bool)[ok],
            "markdown": W[ok] / J[ok],
        }
    )
    if not len(frame):
        return pd.DataFrame()
    return frame.groupby(["tenure", "censored"])["markdown"].apply(_summary).unstack().reset_index()


def wages_by_reset_cause(emp: pd.DataFrame) -> pd.DataFrame:
    """The wage distribution of employed rows by the cause of their wage's last reset (``last_reset``;
    ``initial``: the wage the worker was given when wages started): rows, share, mean and quartiles of
    the wage and of the wage over the median wage of all employed rows."""
    wage = emp["wage"].to_numpy(dtype=float)
    cause = emp["last_reset"].astype("string").fillna("unknown")
    med = np.median(wage) if len(wage) else np.nan
    frame = pd.DataFrame({"cause": cause.to_numpy(), "wage": wage, "wage_rel": wage / med})
    if not len(frame):
        return pd.DataFrame()
    g = frame.groupby("cause")
    out = g["wage"].apply(_summary).unstack()
    out["share"] = out["rows"] / len(frame)
    out["wage_rel_p50"] = g["wage_rel"].median()
    return out.reset_index()
