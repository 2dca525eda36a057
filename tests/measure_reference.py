"""An independent reference of MEASUREMENT.md for the tests: plain Python loops over rows, written from the
contract's text (no code of lotj.measure), with numpy only for the dummy-variable least squares of (6)."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd


def _mean(x):
    return sum(x) / len(x) if x else None


def _pvar(x):
    if not x:
        return None
    m = _mean(x)
    return sum((v - m) ** 2 for v in x) / len(x)


def _constant(x):
    return math.sqrt(_pvar(x)) <= 1e-12 * max(abs(v) for v in x)


def _corr(x, y):
    if len(x) < 2 or _constant(x) or _constant(y):
        return None
    mx, my = _mean(x), _mean(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y)) / len(x)
    return cov / math.sqrt(_pvar(x) * _pvar(y))


def _quantile(x, p):
    if not x:
        return None
    s = sorted(x)
    pos = p * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (pos - lo) * (s[hi] - s[lo])


def reference_moments(panel: pd.DataFrame, theta_plus: float, theta_minus: float) -> dict:
    rows = []
    for rec in panel.to_dict("records"):
        rows.append(
            {k: (None if v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v) for k, v in rec.items()}
        )
    has_wage = "wage" in panel.columns
    emp = [r for r in rows if r["employed"]]
    by = {(r["worker_id"], r["year"]): r for r in rows}
    out: dict = {"employment_rate": len(emp) / len(rows)}
    en = [0, 0]
    ne = [0, 0]
    for r in rows:
        nxt = by.get((r["worker_id"], r["year"] + 1))
        if nxt is None:
            continue
        if r["employed"]:
            en[1] += 1
            en[0] += not nxt["employed"]
        else:
            ne[1] += 1
            ne[0] += bool(nxt["employed"])
    out["en_rate"] = en[0] / en[1] if en[1] else None
    out["ne_rate"] = ne[0] / ne[1] if ne[1] else None
    fy = defaultdict(list)
    for r in emp:
        fy[(r["firm_id"], r["year"])].append(r)
    sizes = [float(len(v)) for v in fy.values()]
    out["firm_size_mean"] = _mean(sizes)
    out["firm_size_p50"] = _quantile(sizes, 0.5)
    out["firm_size_p90"] = _quantile(sizes, 0.9)

    # decomposition
    comps = []
    for r in emp:
        co = [o for o in fy[(r["firm_id"], r["year"])] if o is not r]
        n = len(co) + 1
        tp = tm = 0.0
        for o in co:
            d = math.log(o["h"]) - math.log(r["h"])
            if d > 0:
                tp += d
            elif d < 0:
                tm += d
        if n > 1:
            tp, tm = theta_plus * tp / (n - 1), theta_minus * tm / (n - 1)
        comps.append([math.log(r["a"]), math.log(r["q"]), tp, tm])
    names = ["log_a", "log_q", "theta_plus", "theta_minus"]
    total = [sum(c) for c in comps]
    if not comps or _constant(total):
        out["h_growth_decomposition"] = None
    else:
        vt = _pvar(total)
        table = {}
        for i, ci in enumerate(names):
            table[ci] = {}
            for j, cj in enumerate(names):
                xi = [c[i] for c in comps]
                xj = [c[j] for c in comps]
                mi, mj = _mean(xi), _mean(xj)
                cov = sum((a - mi) * (b - mj) for a, b in zip(xi, xj)) / len(xi)
                table[ci][cj] = 0.0 if j < i else (cov / vt if i == j else 2 * cov / vt)
        out["h_growth_decomposition"] = table

    wage_keys = [
        "wage_p50_p25",
        "wage_p75_p50",
        "wage_p50_p25_rel",
        "wage_p75_p50_rel",
        "between_firm_share_rank",
        "corr_size_rank",
        "mean_rank_change",
        "var_rank_change",
        "var_firm_mean_rank_change",
        "corr_firm_level_growth",
        "corr_worker_level_growth",
        "theta1_plus",
        "theta1_minus",
        "theta2_plus",
        "theta2_minus",
        "var_firm_effects",
        "regression_rmse",
        "regression_n",
    ]
    if not has_wage:
        out.update(dict.fromkeys(wage_keys))
        return out
    w = [r["wage"] for r in emp]
    p25, p50, p75 = (_quantile(w, p) for p in (0.25, 0.5, 0.75))
    out.update(
        wage_p50_p25=p50 - p25,
        wage_p75_p50=p75 - p50,
        wage_p50_p25_rel=(p50 - p25) / p50,
        wage_p75_p50_rel=(p75 - p50) / p50,
    )
    rank = {}
    for year in {r["year"] for r in emp}:
        ws = [r for r in emp if r["year"] == year]
        for r in ws:
            less = sum(o["wage"] < r["wage"] for o in ws)
            eq = sum(o["wage"] == r["wage"] for o in ws)
            rank[(r["worker_id"], year)] = 100 * (less + (eq + 1) / 2 - 0.5) / len(ws)
    rr = [rank[(r["worker_id"], r["year"])] for r in emp]
    fy_mean = {k: _mean([rank[(o["worker_id"], o["year"])] for o in v]) for k, v in fy.items()}
    out["between_firm_share_rank"] = _pvar([fy_mean[(r["firm_id"], r["year"])] for r in emp]) / _pvar(rr)
    out["corr_size_rank"] = _corr([float(len(fy[(r["firm_id"], r["year"])])) for r in emp], rr)
    stay = []  # (firm, year t, worker, r_{t-1}, dr)
    for r in emp:
        p = by.get((r["worker_id"], r["year"] - 1))
        if p is not None and p["employed"] and p["firm_id"] == r["firm_id"]:
            r0 = rank[(r["worker_id"], r["year"] - 1)]
            stay.append((r["firm_id"], r["year"], r["worker_id"], r0, rank[(r["worker_id"], r["year"])] - r0))
    dr = [s[4] for s in stay]
    out["mean_rank_change"] = _mean(dr)
    out["var_rank_change"] = _pvar(dr)
    firm_years = defaultdict(list)
    for s in stay:
        firm_years[(s[0], s[1])].append(s)
    fdr = [_mean([s[4] for s in v]) for v in firm_years.values()]
    fr0 = [_mean([s[3] for s in v]) for v in firm_years.values()]
    out["var_firm_mean_rank_change"] = _pvar(fdr)
    out["corr_firm_level_growth"] = _corr(fr0, fdr) if fdr else None
    out["corr_worker_level_growth"] = _corr([s[3] for s in stay], dr) if stay else None

    sample = []
    for firm, year, wid, r0, d in stay:
        co = [o for o in fy[(firm, year - 1)] if o["worker_id"] != wid]
        n = len(co) + 1
        if n < 2:
            continue
        x = [0.0, 0.0, 0.0, 0.0]
        for o in co:
            g = rank[(o["worker_id"], year - 1)] - r0
            if g > 0:
                x[0] += g / (n - 1)
                x[2] += g * g / (n - 1)
            elif g < 0:
                x[1] += g / (n - 1)
                x[3] += g * g / (n - 1)
        sample.append((firm, d, x))
    count = defaultdict(int)
    for s in sample:
        count[s[0]] += 1
    sample = [s for s in sample if count[s[0]] > 1]
    out["regression_n"] = len(sample)
    coef_keys = ["theta1_plus", "theta1_minus", "theta2_plus", "theta2_minus"]
    if not sample:
        out.update(dict.fromkeys(coef_keys + ["var_firm_effects", "regression_rmse"]))
        return out
    firms = sorted({s[0] for s in sample})
    X = np.array([s[2] for s in sample])
    y = np.array([s[1] for s in sample])
    D = np.array([[1.0 if s[0] == f else 0.0 for f in firms] for s in sample])
    Xd = X - D @ np.linalg.lstsq(D, X, rcond=None)[0]
    norm = np.linalg.norm(X, axis=0)
    scaled = np.where(norm > 0, Xd / np.where(norm > 0, norm, 1), 0.0)
    sv = np.linalg.svd(scaled, compute_uv=False)
    identified = len(sv) == 4 and sv.min() > 1e-9
    beta = np.linalg.lstsq(np.hstack([X, D]), y, rcond=None)[0]
    resid = y - np.hstack([X, D]) @ beta
    out["regression_rmse"] = math.sqrt(float(np.mean(resid**2)))
    if identified:
        out.update(dict(zip(coef_keys, beta[:4].tolist())))
        out["var_firm_effects"] = float(np.var(beta[4:]))
    else:
        out.update(dict.fromkeys(coef_keys + ["var_firm_effects"]))
    return out
