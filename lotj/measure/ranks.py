"""Flows, wage ranks and rank changes of stayers (MEASUREMENT.md; MODEL.md sections 8 and 10).

- employment, EN and NE rates: single ratios of counts pooled over all year pairs (t, t + 1) of a
  worker's rows; a retiree (no row at t + 1) and a year gap give no pair;
- wage rank ``r = 100·(rank(method="average") − 0.5)/N_year`` within each year among the employed;
- a stayer at t: employed at t − 1 and t with the same firm_id, ``Δr = r_t − r_{t−1}``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lotj.measure.stats import corr, is_constant, mean, quantile, ratio, var


def next_year_pairs(worker: np.ndarray, year: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(prev, cur)`` of every pair of rows of one worker in years t − 1 and t."""
    if len(worker) < 2:
        e = np.zeros(0, dtype=np.int64)
        return e, e
    order = np.lexsort((year, worker))
    w, y = worker[order], year[order]
    ok = (w[1:] == w[:-1]) & (y[1:] == y[:-1] + 1)
    return order[:-1][ok], order[1:][ok]


def flow_moments(frame: pd.DataFrame) -> dict[str, float | None]:
    """``employment_rate`` (share of rows employed), ``en_rate``, ``ne_rate`` (module docstring)."""
    e = frame["employed"].to_numpy(dtype=bool)
    prev, cur = next_year_pairs(frame["worker_id"].to_numpy(), frame["year"].to_numpy())
    e0, e1 = e[prev], e[cur]
    return {
        "employment_rate": ratio(e.sum(), len(e)),
        "en_rate": ratio((e0 & ~e1).sum(), e0.sum()),
        "ne_rate": ratio((~e0 & e1).sum(), (~e0).sum()),
    }


def wage_ranks(emp: pd.DataFrame) -> np.ndarray:
    """Within-year percentile ranks of ``wage`` among the employed rows ``emp``, in (0, 100)."""
    if not len(emp):
        return np.zeros(0)
    by_year = emp.groupby("year")["wage"]
    rank = by_year.rank(method="average").to_numpy()
    count = by_year.transform("size").to_numpy()
    return 100.0 * (rank - 0.5) / count


def stayer_pairs(emp: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(prev, cur)`` in ``emp`` of each stayer's rows at t − 1 and t (same firm_id)."""
    prev, cur = next_year_pairs(emp["worker_id"].to_numpy(), emp["year"].to_numpy())
    firm = emp["firm_id"].to_numpy()
    same = firm[prev] == firm[cur]
    return prev[same], cur[same]


def wage_moments(emp: pd.DataFrame) -> dict[str, float | None]:
    """Gaps of wage levels over employed worker-years, in model units and as multiples of the median."""
    w = emp["wage"].to_numpy(dtype=float)
    p25, p50, p75 = quantile(w, 0.25), quantile(w, 0.5), quantile(w, 0.75)
    if p50 is None:
        return {k: None for k in ("wage_p50_p25", "wage_p75_p50", "wage_p50_p25_rel", "wage_p75_p50_rel")}
    return {
        "wage_p50_p25": p50 - p25,
        "wage_p75_p50": p75 - p50,
        "wage_p50_p25_rel": ratio(p50 - p25, p50),
        "wage_p75_p50_rel": ratio(p75 - p50, p50),
    }


def rank_moments(emp: pd.DataFrame, r: np.ndarray, prev: np.ndarray, cur: np.ndarray) -> dict[str, float | None]:
    """The rank moments of MEASUREMENT.md: the between-firm share of Var(r), corr(size, r), and those of
    the stayers' Δr, over workers and over firm-years with at least one stayer."""
    fy = emp["fy"].to_numpy()
    n = emp["n"].to_numpy(dtype=float)
    out: dict[str, float | None] = {}
    if len(r) and not is_constant(r):
        fy_mean = (np.bincount(fy, weights=r) / np.bincount(fy))[fy]
        out["between_firm_share_rank"] = var(fy_mean) / var(r)
    else:
        out["between_firm_share_rank"] = None
    out["corr_size_rank"] = corr(n, r)
    dr = r[cur] - r[prev]
    r0 = r[prev]
    out["mean_rank_change"] = mean(dr)
    out["var_rank_change"] = var(dr)
    if len(dr):
        _, code = np.unique(fy[cur], return_inverse=True)
        cnt = np.bincount(code)
        firm_dr = np.bincount(code, weights=dr) / cnt
        firm_r0 = np.bincount(code, weights=r0) / cnt
    else:
        firm_dr = firm_r0 = np.zeros(0)
    out["var_firm_mean_rank_change"] = var(firm_dr)
    out["corr_firm_level_growth"] = corr(firm_r0, firm_dr)
    out["corr_worker_level_growth"] = corr(r0, dr)
    return out
