"""Malformed panels are refused with an error naming the problem (MEASUREMENT.md rule 3); what only warns."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from test_measure_moments import tiny_panel

from lotj.measure import PanelError, PanelWarning, check_panel, measure


def _set(panel: pd.DataFrame, row: int, col: str, value) -> pd.DataFrame:
    out = panel.copy()
    out.loc[row, col] = value
    return out


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p.drop(columns="employed"), r"lacks the required column\(s\) \['employed'\]"),
        (lambda p: p.drop(columns=["worker_id", "year"]), r"\['worker_id', 'year'\]"),
        (lambda p: p.assign(worker_id=p["worker_id"].astype(str)), "'worker_id' must hold integers"),
        (lambda p: p.assign(year=p["year"] + 0.5), "'year' must hold integers"),
        (lambda p: p.assign(employed=p["employed"].map({True: "yes", False: "no"})), "'employed' must be boolean"),
        (lambda p: p.assign(h=p["h"].astype(str)), "'h' must be numeric"),
        (lambda p: p.assign(wage=p["wage"].astype(str)), "'wage' must be numeric"),
        (lambda p: pd.concat([p, p.iloc[[3]]], ignore_index=True), r"duplicate \(worker_id, year\) rows.*worker 4"),
        (lambda p: p.assign(employed=p["employed"].astype("boolean").mask(p.index == 2)), "'employed' has 1 null"),
        (lambda p: _set(p, 0, "firm_id", pd.NA), "1 employed rows have a null 'firm_id'"),
        (lambda p: _set(p, 0, "q", pd.NA), "null, non-finite or non-positive 'q'"),
        (lambda p: _set(p, 1, "h", 0.0), "non-positive 'h'"),
        (lambda p: _set(p, 1, "a", -1.0), "non-positive 'a'"),
        (lambda p: _set(p, 2, "h", np.inf), "non-finite or non-positive 'h'"),
        (lambda p: _set(p, 2, "wage", pd.NA), "null or non-finite 'wage'"),
        (lambda p: p.assign(worker_id=p["worker_id"].astype("Int64").mask(p.index == 0)), "'worker_id' has 1 null"),
    ],
)
def test_malformed_panels_are_refused(make, match):
    with pytest.raises(PanelError, match=match):
        measure(make(tiny_panel()), 0.1, 0.1)


def test_what_only_warns_or_is_allowed():
    panel = tiny_panel()
    # a firm_size column that disagrees with the rows warns; the moments use the rows' count
    bad = panel.assign(firm_size=panel["firm_size"] + 1)
    with pytest.warns(PanelWarning, match="15 employed rows have a 'firm_size'"):
        m_bad = measure(bad, 0.1, 0.1).moments
    assert m_bad == measure(panel, 0.1, 0.1).moments
    # non-employed rows may hold anything in the firm columns; 0/1 employment and float ids are accepted
    other = panel.assign(employed=panel["employed"].astype(int), worker_id=panel["worker_id"].astype(float))
    other.loc[~panel["employed"], "h"] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checked = check_panel(other)
    assert checked.frame["employed"].dtype == bool
    assert measure(other, 0.1, 0.1).moments == measure(panel, 0.1, 0.1).moments
    # real data without h, a, z, q or firm_size: the decomposition is null with its reason, the rest computed
    real = panel.drop(columns=["h", "a", "z", "q", "firm_size"])
    m = measure(real, 0.1, 0.1)
    assert m.moments["h_growth_decomposition"] is None
    assert "lacks" in m.analysis["nulls"]["h_growth_decomposition"]
    assert m.moments["theta1_plus"] == measure(panel, 0.1, 0.1).moments["theta1_plus"]
    assert m.moments["en_rate"] == pytest.approx(1 / 9)


def test_empty_samples_give_nulls():
    panel = tiny_panel()
    one_year = panel[panel["year"] == 1]
    m = measure(one_year, 0.1, 0.1).moments
    assert m["en_rate"] is None and m["ne_rate"] is None
    assert m["mean_rank_change"] is None and m["var_firm_mean_rank_change"] is None
    assert m["regression_n"] == 0 and m["theta1_plus"] is None and m["regression_rmse"] is None
    assert m["employment_rate"] == pytest.approx(5 / 7)
    nobody = panel.assign(employed=False, firm_id=pd.array([pd.NA] * len(panel), dtype="Int64"))
    m = measure(nobody, 0.1, 0.1).moments
    assert m["employment_rate"] == 0.0 and m["ne_rate"] == 0.0
    assert m["firm_size_mean"] is None and m["h_growth_decomposition"] is None and m["regression_n"] == 0
