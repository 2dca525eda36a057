"""Sorting and learning opportunities (MODEL.md section 9.3), over employed worker-years.

- Sorting: how a worker's h and a co-move with its coworkers' mean h (the other employed rows of its
  firm-year; undefined for a firm of one), with its firm's z and with its q: Pearson correlations in
  levels and the means of h and a by decile of each of the three.
- Learning opportunities by h decile: the mean upward and downward coworker gaps
  ``gap_up = Σ_{h_j>h_i} log(h_j/h_i)/(n−1)`` and ``gap_down = Σ_{h_j<h_i} log(h_j/h_i)/(n−1)``
  (0 for a firm of one), the share of workers with a coworker of higher h, the coworker learning rate
  ``θ⁺ gap_up + θ⁻ gap_down`` of MODEL.md eq. 3, the mean q and the mean firm size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lotj.measure.coworkers import coworker_sums
from lotj.measure.stats import corr

#: the firm-side variables workers sort on
SORTING_VARIABLES = ("coworker_mean_h", "z", "q")


def coworker_mean_h(emp: pd.DataFrame) -> np.ndarray:
    """Mean h of the other employed rows of each row's firm-year (NaN for a firm of one)."""
    fy = emp["fy"].to_numpy()
    h = emp["h"].to_numpy(dtype=float)
    n = emp["n"].to_numpy()
    total = np.bincount(fy, weights=h)[fy] if len(h) else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 2, (total - h) / np.maximum(n - 1, 1), np.nan)


def _deciles(x: np.ndarray) -> np.ndarray:
    """Decile codes 0..9 of ``x`` (pooled; ties share a bin, so fewer bins may be used)."""
    return (
        pd.qcut(pd.Series(x).rank(method="first"), 10, labels=False).to_numpy()
        if len(x) >= 10
        else np.zeros(len(x), dtype=int)
    )


def sorting(emp: pd.DataFrame) -> tuple[dict[str, float | None], pd.DataFrame]:
    """Correlations of h and a with coworkers' mean h, z and q, and the binned means (module docstring)."""
    cols = {"coworker_mean_h": coworker_mean_h(emp)}
    for v in ("z", "q"):
        if v in emp.columns:
            cols[v] = emp[v].to_numpy(dtype=float)
    h = emp["h"].to_numpy(dtype=float)
    a = emp["a"].to_numpy(dtype=float) if "a" in emp.columns else None
    corrs: dict[str, float | None] = {}
    rows = []
    for name, x in cols.items():
        ok = np.isfinite(x)
        corrs[f"corr_h_{name}"] = corr(h[ok], x[ok])
        corrs[f"corr_a_{name}"] = corr(a[ok], x[ok]) if a is not None else None
        if not ok.any():
            continue
        b = _deciles(x[ok])
        frame = pd.DataFrame({"bin": b, "x": x[ok], "h": h[ok]})
        if a is not None:
            frame["a"] = a[ok]
        g = frame.groupby("bin")
        t = g.mean().rename(columns={"x": "x_mean", "h": "h_mean", "a": "a_mean"})
        t["n"] = g.size()
        t.insert(0, "variable", name)
        rows.append(t.reset_index())
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return corrs, table


def learning_opportunities(emp: pd.DataFrame, theta_plus: float | None, theta_minus: float | None) -> pd.DataFrame:
    """Learning opportunities by decile of h (module docstring)."""
    if not len(emp):
        return pd.DataFrame()
    h = emp["h"].to_numpy(dtype=float)
    sums = coworker_sums(emp["fy"].to_numpy(), np.log(h))
    d = np.maximum(sums.n - 1, 1).astype(float)
    frame = pd.DataFrame(
        {
            "h_decile": _deciles(h) + 1,
            "h": h,
            "gap_up": sums.plus1 / d,
            "gap_down": sums.minus1 / d,
            "has_better_coworker": (sums.plus1 > 0).astype(float),
            "n": sums.n.astype(float),
        }
    )
    if "q" in emp.columns:
        frame["q"] = emp["q"].to_numpy(dtype=float)
    if theta_plus is not None and theta_minus is not None:
        frame["coworker_learning"] = theta_plus * frame["gap_up"] + theta_minus * frame["gap_down"]
    g = frame.groupby("h_decile")
    out = g.mean().rename(columns={"h": "h_mean", "n": "firm_size_mean", "q": "q_mean"})
    out["rows"] = g.size()
    return out.reset_index()
