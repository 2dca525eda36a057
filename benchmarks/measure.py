"""Measurement benchmark (docs/measurement.md, "Cost"). Prints figures; not a test.

Seconds to compute everything in moments.json (:func:`lotj.measure.measure` with ``analyses=False``) and with
the analyses (sorting, learning opportunities, tenure), on a synthetic panel of ``--firms`` firms over
``--years`` years with ``--per-firm`` workers per firm, employed or not (default: 10⁴ firms, 20 years, 5
workers: 10⁶ worker-years, 70% of them employed), with moves, non-employment and retirements; the stages of
regression (6) are timed apart::

    python benchmarks/measure.py
    python benchmarks/measure.py --firms 1000 --years 10 --repeat 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from lotj.measure import measure
from lotj.measure.checks import check_panel
from lotj.measure.ranks import stayer_pairs, wage_ranks
from lotj.measure.regression import fit_regression, regression_sample
from lotj.measure.sizes import employed_rows


def synthetic_panel(firms: int, years: int, per_firm: float, seed: int = 0) -> pd.DataFrame:
    """A panel in the format of docs/panel.md: workers move (20% a year), lose their job (10%), retire (3%)."""
    rng = np.random.default_rng(seed)
    n = int(firms * per_firm)
    wid = np.arange(n)
    next_id = n
    firm = np.where(rng.random(n) < 0.85, rng.integers(0, firms, n), -1)
    h = np.exp(rng.normal(0, 0.5, n))
    a = np.exp(rng.normal(0, 0.2, n))
    z, q = np.exp(rng.normal(0, 0.3, firms)), np.exp(rng.normal(0, 0.2, firms))
    frames = []
    for t in range(years):
        if t:
            u = rng.random(n)
            firm = np.where(u < 0.2, rng.integers(0, firms, n), firm)
            firm = np.where((u >= 0.2) & (u < 0.3), -1, firm)
            retire = rng.random(n) < 0.03
            wid = np.where(retire, next_id + np.arange(n), wid)
            next_id += n
            h = np.where(retire, np.exp(rng.normal(0, 0.5, n)), h * np.exp(0.03 * a))
        emp = firm >= 0
        f = np.maximum(firm, 0)
        frames.append(
            pd.DataFrame(
                {
                    "worker_id": wid,
                    "firm_id": pd.array(np.where(emp, firm, 0), dtype="Int64"),
                    "year": t,
                    "employed": emp,
                    "h": h,
                    "a": a,
                    "z": pd.array(z[f], dtype="Float64"),
                    "q": pd.array(q[f], dtype="Float64"),
                    "wage": pd.array(h * z[f] * np.exp(rng.normal(0, 0.2, n)), dtype="Float64"),
                }
            )
        )
    panel = pd.concat(frames, ignore_index=True)
    emp = panel["employed"].to_numpy()
    for c in ("firm_id", "z", "q", "wage"):
        panel.loc[~emp, c] = pd.NA
    size = panel.groupby(["firm_id", "year"])["worker_id"].transform("size")
    panel["firm_size"] = size.astype("Int64").where(emp, pd.NA)
    return panel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--firms", type=int, default=10_000)
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--per-firm", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    panel = synthetic_panel(args.firms, args.years, args.per_firm)
    print(f"panel: {len(panel):,} rows, {args.firms:,} firms, {args.years} years")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        checked = check_panel(panel)
        t1 = time.perf_counter()
        emp = employed_rows(checked.frame)
        r = wage_ranks(emp)
        prev, cur = stayer_pairs(emp)
        t2 = time.perf_counter()
        sample = regression_sample(emp, r, prev, cur)
        t3 = time.perf_counter()
        res = fit_regression(sample)
        t4 = time.perf_counter()
        m = measure(panel, 0.165, 0.034, analyses=False, progress=False)
        t5 = time.perf_counter()
        measure(panel, 0.165, 0.034, analyses=True, progress=False)
        t6 = time.perf_counter()
        print(
            f"checks {t1 - t0:.2f} s | ranks and stayers {t2 - t1:.2f} s | regression (6) sample {t3 - t2:.2f} s, "
            f"fit {t4 - t3:.2f} s (n = {res.n:,})"
        )
        print(f"moments.json: {t5 - t4:.2f} s; with the analyses: {t6 - t5:.2f} s")
    print({k: v for k, v in m.moments.items() if k != "h_growth_decomposition"})


if __name__ == "__main__":
    main()
