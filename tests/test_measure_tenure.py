"""The markdown W/J by tenure and the wages by the cause of their last reset (lotj.measure.tenure), by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lotj.measure.tenure import TENURE_TOP, markdown_by_tenure, wages_by_reset_cause


def test_markdown_by_tenure_by_hand():
    """Rows with J > 0 only (J = 0 and J < 0 have no markdown), tenure top-coded at TENURE_TOP: markdowns
    0.9 and 0.8 at tenure 0 (J = 0.5 and J = 1 count like any positive J), 0.75 at tenure 1 and at the top."""
    emp = pd.DataFrame(
        {
            "W": [0.45, 0.8, 1.5, 3.0, 1.0, 2.0],
            "J": [0.5, 1.0, 2.0, 4.0, 0.0, -1.0],
            "tenure": pd.array([0, 0, 1, TENURE_TOP + 2, 0, 0], dtype="Int64"),
            "tenure_censored": pd.array([False] * 6, dtype="boolean"),
        }
    )
    table = markdown_by_tenure(emp).set_index("tenure")
    assert table.index.tolist() == [0, 1, TENURE_TOP]
    assert table.loc[0, "rows"] == 2
    assert table.loc[0, "mean"] == pytest.approx(0.85)
    assert (table.loc[0, "p25"], table.loc[0, "p50"], table.loc[0, "p75"]) == pytest.approx((0.825, 0.85, 0.875))
    for t in (1, TENURE_TOP):
        assert table.loc[t, "rows"] == 1
        assert table.loc[t, ["mean", "p25", "p50", "p75"]].tolist() == pytest.approx([0.75] * 4)


def test_wages_by_reset_cause_by_hand():
    """Shares and quartiles by cause; a wage without a recorded cause is 'unknown'; wage_rel is the wage over
    the median wage of all employed rows (2.5 here)."""
    emp = pd.DataFrame(
        {"wage": [1.0, 2.0, 3.0, 4.0], "last_reset": pd.array(["hire", "hire", None, "counter_offer"], dtype="string")}
    )
    table = wages_by_reset_cause(emp).set_index("cause")
    assert sorted(table.index) == ["counter_offer", "hire", "unknown"]
    assert table.loc["hire", "share"] == 0.5 and table.loc["unknown", "share"] == 0.25
    assert (table.loc["hire", "p25"], table.loc["hire", "p75"]) == pytest.approx((1.25, 1.75))
    assert table.loc["hire", "wage_rel_p50"] == pytest.approx(1.5 / 2.5)
    assert table.loc["unknown", "mean"] == 3.0
    assert np.isclose(table.loc["counter_offer", "wage_rel_p50"], 4.0 / 2.5)
