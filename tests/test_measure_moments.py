"""Every key of moments.json (MEASUREMENT.md) against hand computation and an independent loop reference."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from measure_reference import reference_moments

from lotj.measure import MOMENT_KEYS, measure
from lotj.measure.moments import WAGE_KEYS

TP, TM = 0.3, 0.1


def tiny_panel() -> pd.DataFrame:
    """Three years, firms 10, 20, 30 (30 is a firm of one), ties in wages, a move (worker 3, year 2), an
    unemployment spell (5 in year 1, 6 in year 2, 8 throughout), a retirement (2 after year 2)."""
    #        worker firm year wage   h    a    q
    rows = [
        (1, 10, 1, 1.0, 1.0, 1.1, 1.2),
        (2, 10, 1, 2.0, 2.0, 0.9, 1.2),
        (3, 10, 1, 2.0, 1.5, 1.0, 1.2),
        (4, 20, 1, 3.0, 3.0, 1.2, 0.8),
        (5, None, 1, None, 1.0, 1.0, None),
        (6, 30, 1, 1.0, 0.5, 0.8, 1.0),
        (8, None, 1, None, 0.7, 1.0, None),
        (1, 10, 2, 1.5, 1.2, 1.1, 1.2),
        (2, 10, 2, 2.5, 2.1, 0.9, 1.2),
        (3, 20, 2, 3.0, 1.6, 1.0, 0.8),
        (4, 20, 2, 3.0, 3.1, 1.2, 0.8),
        (5, 30, 2, 1.0, 1.0, 1.0, 1.0),
        (6, None, 2, None, 0.5, 0.8, None),
        (8, None, 2, None, 0.7, 1.0, None),
        (1, 10, 3, 2.0, 1.4, 1.1, 1.2),
        (3, 20, 3, 3.5, 1.9, 1.0, 0.8),
        (4, 20, 3, 2.0, 3.1, 1.2, 0.8),
        (5, 30, 3, 1.2, 1.1, 1.0, 1.0),
        (6, 10, 3, 1.0, 0.5, 0.8, 1.2),
        (7, None, 3, None, 0.9, 1.0, None),
        (8, None, 3, None, 0.7, 1.0, None),
    ]
    df = pd.DataFrame(rows, columns=["worker_id", "firm_id", "year", "wage", "h", "a", "q"])
    df["employed"] = df["firm_id"].notna()
    df["firm_id"] = df["firm_id"].astype("Int64")
    df["q"] = df["q"].astype("Float64")
    df["z"] = df["q"] * 2
    df["wage"] = df["wage"].astype("Float64")
    df["firm_size"] = df.groupby(["firm_id", "year"])["worker_id"].transform("size").astype("Int64")
    df.loc[~df["employed"], "firm_size"] = pd.NA
    return df[["worker_id", "firm_id", "year", "employed", "h", "a", "z", "q", "firm_size", "wage"]]


def random_panel(n_firms: int = 25, workers: int = 90, years: int = 5, seed: int = 0) -> pd.DataFrame:
    """A small random panel with moves, non-employment, retirements and tied (rounded) wages."""
    rng = np.random.default_rng(seed)
    firm = rng.integers(-1, n_firms, workers)
    wid = np.arange(workers)
    h = np.exp(rng.normal(0, 0.4, workers))
    a = np.exp(rng.normal(0, 0.2, workers))
    q = np.exp(rng.normal(0, 0.2, n_firms))
    frames = []
    for t in range(years):
        move = rng.random(workers) < 0.25
        firm = np.where(move, rng.integers(-1, n_firms, workers), firm)
        retire = rng.random(workers) < 0.05
        wid = np.where(retire, wid.max() + 1 + np.arange(workers), wid)
        emp = firm >= 0
        wage = np.round(h * np.exp(rng.normal(0, 0.3, workers)), 1)
        f = pd.DataFrame(
            {
                "worker_id": wid,
                "firm_id": pd.array(np.where(emp, firm, 0), dtype="Int64"),
                "year": 2000 + t,
                "employed": emp,
                "h": h,
                "a": a,
                "q": pd.array(q[np.maximum(firm, 0)], dtype="Float64"),
                "wage": pd.array(wage, dtype="Float64"),
            }
        )
        f.loc[~emp, ["firm_id", "q", "wage"]] = pd.NA
        frames.append(f)
        h = h * np.exp(0.05 * rng.random(workers))
    return pd.concat(frames, ignore_index=True)


def assert_moments_equal(got: dict, want: dict, rel: float = 1e-9, abs_: float = 1e-9) -> None:
    assert list(got) == list(MOMENT_KEYS)
    for k in MOMENT_KEYS:
        g, w = got[k], want[k]
        if k == "h_growth_decomposition" and w is not None:
            assert g is not None and list(g) == list(w), k
            for ci in w:
                assert list(g[ci]) == list(w[ci])
                for cj in w[ci]:
                    assert g[ci][cj] == pytest.approx(w[ci][cj], rel=rel, abs=abs_), (ci, cj)
        elif w is None:
            assert g is None, (k, g)
        else:
            assert g == pytest.approx(w, rel=rel, abs=abs_), k


def test_tiny_panel_by_hand():
    m = measure(tiny_panel(), TP, TM).moments
    # 21 rows, 15 employed; EN: 5 employed in year 1 all present in 2, worker 6 leaves; in year 2 four of
    # five employed are present in 3 (worker 2 retires), none leaves. NE: 5 and 8 in year 1, 6 and 8 in 2.
    assert m["employment_rate"] == pytest.approx(15 / 21)
    assert m["en_rate"] == pytest.approx(1 / 9)
    assert m["ne_rate"] == pytest.approx(2 / 4)
    # firm-year sizes 3,1,1 | 2,2,1 | 2,2,1
    assert m["firm_size_mean"] == pytest.approx(15 / 9)
    assert m["firm_size_p50"] == pytest.approx(2.0)
    assert m["firm_size_p90"] == pytest.approx(2.2)  # position 7.2 of the sorted 1,1,1,1,2,2,2,2,3
    # 15 wages 1,1,1,1,1.2,1.5,2,2,2,2,2.5,3,3,3,3.5: p25 at position 3.5, p50 at 7, p75 at 10.5
    assert m["wage_p50_p25"] == pytest.approx(0.9)
    assert m["wage_p75_p50"] == pytest.approx(0.75)
    assert m["wage_p50_p25_rel"] == pytest.approx(0.45)
    assert m["wage_p75_p50_rel"] == pytest.approx(0.375)
    # ranks: year 1 w1 20 w2 60 w3 60 w4 90 w6 20; year 2 w5 10 w1 30 w2 50 w3 80 w4 80; year 3 w6 10 w5 30
    # w1 60 w4 60 w3 90. Stayers' Δr: 10, -10, -10 (year 2: w1, w2, w4); 30, 10, -20, 20 (year 3: w1, w3, w4, w5)
    assert m["mean_rank_change"] == pytest.approx(30 / 7)
    assert m["var_rank_change"] == pytest.approx(300 - (30 / 7) ** 2)
    # firm-years with stayers: mean Δr 0, -10, 30, -5, 20; mean r_{t-1} 40, 90, 30, 80, 10
    assert m["var_firm_mean_rank_change"] == pytest.approx(236.0)
    fr0, fdr = np.array([40, 90, 30, 80, 10.0]), np.array([0, -10, 30, -5, 20.0])
    assert m["corr_firm_level_growth"] == pytest.approx(np.corrcoef(fr0, fdr)[0, 1])
    r0, dr = np.array([20, 60, 90, 30, 80, 80, 10.0]), np.array([10, -10, -10, 30, 10, -20, 20.0])
    assert m["corr_worker_level_growth"] == pytest.approx(np.corrcoef(r0, dr)[0, 1])
    # regression (6): stayers w1, w2 (year 2, firm 10 had 3 workers) and w1, w3, w4 (year 3; firm 20 had 2);
    # w4 in year 2 and w5 were in firms of one. 5 rows, 2 firms, 4 regressors: not identified. Firm 10's
    # 3 rows are fitted exactly (2 demeaned rows); firm 20's w3 and w4 were tied at 80 in year 2, so their
    # regressors are 0 and their Δr = 10, -20 leave residuals ±15: rmse = sqrt(2·225/5)
    assert m["regression_n"] == 5
    for k in ("theta1_plus", "theta1_minus", "theta2_plus", "theta2_minus", "var_firm_effects"):
        assert m[k] is None
    assert m["regression_rmse"] == pytest.approx(math.sqrt(90.0))
    # firm-year mean ranks: year 1 (10) 46.67 (20) 90 (30) 20; year 2 (10) 40 (20) 80 (30) 10;
    # year 3 (10) 35 (20) 75 (30) 30
    r = np.array([20, 60, 60, 90, 20, 30, 50, 80, 80, 10, 60, 90, 60, 30, 10.0])
    fm = np.array([140 / 3] * 3 + [90, 20] + [40, 40, 80, 80, 10] + [35, 75, 75, 30, 35.0])
    assert m["between_firm_share_rank"] == pytest.approx(np.var(fm) / np.var(r))
    n = np.array([3, 3, 3, 1, 1, 2, 2, 2, 2, 1, 2, 2, 2, 1, 2.0])
    assert m["corr_size_rank"] == pytest.approx(np.corrcoef(n, r)[0, 1])
    # the decomposition sums to 1 and is zero below the diagonal
    d = m["h_growth_decomposition"]
    assert sum(v for row in d.values() for v in row.values()) == pytest.approx(1.0)
    assert d["theta_minus"]["log_a"] == 0.0 and d["log_q"]["log_a"] == 0.0
    json.dumps(m)  # JSON-ready


def test_tiny_panel_every_key_matches_the_loop_reference():
    panel = tiny_panel()
    assert_moments_equal(measure(panel, TP, TM).moments, reference_moments(panel, TP, TM))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_panels_match_the_loop_reference(seed):
    panel = random_panel(seed=seed)
    got = measure(panel, TP, TM).moments
    want = reference_moments(panel, TP, TM)
    assert want["theta1_plus"] is not None  # identified: the dummy-variable OLS is compared
    assert_moments_equal(got, want, rel=1e-7, abs_=1e-9)


def test_without_wages_the_wage_keys_are_null_and_the_rest_unchanged():
    panel = random_panel(seed=3)
    full = measure(panel, TP, TM)
    bare = measure(panel.drop(columns="wage"), TP, TM)
    for k in MOMENT_KEYS:
        if k in WAGE_KEYS:
            assert bare.moments[k] is None, k
            assert "wage" in bare.analysis["nulls"][k]
        else:
            assert bare.moments[k] == full.moments[k], k
    assert bare.moments["h_growth_decomposition"] is not None


def test_year_gap_gives_no_pairs_across_it():
    panel = tiny_panel()
    gap = panel.assign(year=panel["year"].where(panel["year"] < 3, 4))  # years 1, 2, 4
    with pytest.warns(UserWarning, match=r"year\(s\) \[3\]"):
        m = measure(gap, TP, TM).moments
    assert m["en_rate"] == pytest.approx(1 / 5)  # only the pairs (1, 2)
    assert m["ne_rate"] == pytest.approx(1 / 2)
    assert m["mean_rank_change"] == pytest.approx(-10 / 3)
    assert_moments_equal(m, reference_moments(gap, TP, TM))


def test_rank_is_invariant_to_monotone_wage_transforms_and_theta_scales_the_coworker_terms():
    panel = random_panel(seed=4)
    base = measure(panel, TP, TM).moments
    logged = measure(panel.assign(wage=np.log(panel["wage"].astype(float) + 1)), TP, TM).moments
    for k in ("between_firm_share_rank", "mean_rank_change", "theta1_plus", "var_firm_effects", "regression_rmse"):
        assert logged[k] == pytest.approx(base[k], rel=1e-9), k
    none = measure(panel, 0.0, 0.0).moments["h_growth_decomposition"]
    assert none["theta_plus"]["theta_plus"] == 0.0 and none["log_a"]["theta_minus"] == 0.0
    assert none["log_a"]["log_a"] + none["log_q"]["log_q"] + none["log_a"]["log_q"] == pytest.approx(1.0)
    assert math.isfinite(base["h_growth_decomposition"]["theta_plus"]["theta_plus"])


def test_a_component_without_variance_has_exactly_zero_entries():
    # the counterfactual without q dispersion: log q = μ_q for every firm. Its mean rounds (log q − mean(log q)
    # is about 1e-18, not 0), which left entries of 1e-32 instead of 0; the other entries still sum to 1
    from lotj.measure.decomposition import COMPONENTS, decomposition_table

    rng = np.random.default_rng(3)
    n = 997
    comps = pd.DataFrame(
        {
            "log_a": rng.normal(0.0, 0.01, n),
            "log_q": np.full(n, -0.016),
            "theta_plus": np.abs(rng.normal(0.0, 0.02, n)),
            "theta_minus": -np.abs(rng.normal(0.0, 0.005, n)),
        }
    )
    assert (comps["log_q"] - comps["log_q"].mean()).abs().max() > 0  # the rounding the table must not show
    table = decomposition_table(comps)
    assert all(table["log_q"][c] == 0.0 for c in COMPONENTS) and table["log_a"]["log_q"] == 0.0
    assert sum(v for row in table.values() for v in row.values()) == pytest.approx(1.0, abs=1e-12)
    assert table["log_a"]["log_a"] > 0 and table["theta_plus"]["theta_plus"] > 0
