"""Tenure, the markdown by tenure, wages by cause of the last reset, sorting and learning opportunities, and the
commands ``python -m lotj.measure`` and ``python -m lotj.report``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_measure_moments import TM, TP, tiny_panel

from lotj.measure import measure, with_tenure
from lotj.measure.sizes import employed_rows
from lotj.measure.sorting import coworker_mean_h, learning_opportunities, sorting


def test_tenure_by_hand():
    t = with_tenure(tiny_panel()).set_index(["worker_id", "year"])
    want = {  # (worker, year): (tenure, censored)
        (1, 1): (0, True), (1, 2): (1, True), (1, 3): (2, True),
        (2, 1): (0, True), (2, 2): (1, True),
        (3, 1): (0, True), (3, 2): (0, False), (3, 3): (1, False),  # the move starts a new spell
        (4, 1): (0, True), (4, 2): (1, True), (4, 3): (2, True),
        (5, 2): (0, False), (5, 3): (1, False),
        (6, 1): (0, True), (6, 3): (0, False),  # back after a year off the job
    }  # fmt: skip
    for key, (ten, cen) in want.items():
        assert t.loc[key, "tenure"] == ten and bool(t.loc[key, "tenure_censored"]) == cen, key
    off = t[~t["employed"]]
    assert off["tenure"].isna().all() and off["tenure_censored"].isna().all() and len(off) == 6


def test_markdown_by_tenure_and_wages_by_cause():
    panel = tiny_panel()
    e = panel["employed"]
    panel["J"] = panel["wage"] * 2.0
    # markdown W/J = 0.5 + 0.1·tenure on every employed row; one row with J ≤ 0 is left out
    ten = with_tenure(panel)["tenure"].astype(float)
    panel["W"] = panel["J"] * (0.5 + 0.1 * ten)
    panel.loc[0, "J"] = -1.0
    panel["last_reset"] = pd.array(np.where(panel["year"] == 1, "initial", "hire"), dtype="string")
    panel.loc[~e, "last_reset"] = pd.NA
    m = measure(panel, TP, TM)
    md = m.tables["markdown_by_tenure"].set_index(["tenure", "censored"])
    assert md.loc[(2, True), "mean"] == pytest.approx(0.7) and md.loc[(2, True), "rows"] == 2  # w1 y3 and w4 y3
    assert md.loc[(0, True), "rows"] == 4  # year 1 without worker 1's row (J < 0)
    assert md.loc[(1, False), "p50"] == pytest.approx(0.6)
    wc = m.tables["wages_by_reset_cause"].set_index("cause")
    assert wc.loc["initial", "rows"] == 5 and wc.loc["hire", "share"] == pytest.approx(10 / 15)
    assert wc.loc["initial", "mean"] == pytest.approx((1 + 2 + 2 + 3 + 1) / 5)
    assert wc.loc["initial", "wage_rel_p50"] == pytest.approx(2.0 / 2.0)  # median 2 over the pooled median 2


def test_sorting_and_learning_opportunities():
    emp = employed_rows(tiny_panel())
    cw = coworker_mean_h(emp)
    # year 1, firm 10: h = 1, 2, 1.5 → coworkers' mean h of worker 1 is 1.75; firm 20 and 30 have one worker
    assert cw[0] == pytest.approx(1.75) and np.isnan(cw[3]) and np.isnan(cw[4])
    # a planted sorting: firms hold workers of similar h, so h and coworkers' mean h are strongly correlated
    rng = np.random.default_rng(0)
    level = np.repeat(rng.normal(0, 1, 400), 3)
    planted = pd.DataFrame(
        {
            "fy": np.repeat(np.arange(400), 3),
            "n": 3,
            "h": np.exp(level + 0.1 * rng.normal(0, 1, 1200)),
            "a": np.exp(rng.normal(0, 0.1, 1200)),
            "q": np.exp(np.repeat(rng.normal(0, 0.1, 400), 3)),
        }
    )
    corrs, table = sorting(planted)
    assert corrs["corr_h_coworker_mean_h"] > 0.9 and abs(corrs["corr_a_coworker_mean_h"]) < 0.1
    t = table[table["variable"] == "coworker_mean_h"]
    assert (np.diff(t["h_mean"].to_numpy()) > 0).all() and len(t) == 10
    lo = learning_opportunities(planted, 0.2, 0.1)
    # in firms of three distinct h, two of three workers have a better coworker; every pair's gap is counted once
    # upward and once downward; the learning rate is θ⁺ up + θ⁻ down
    w = lo["rows"] / lo["rows"].sum()
    assert (w * lo["has_better_coworker"]).sum() == pytest.approx(2 / 3)
    assert (lo["rows"] * lo["gap_up"]).sum() == pytest.approx(-(lo["rows"] * lo["gap_down"]).sum())
    assert lo["gap_up"].iloc[0] > lo["gap_up"].iloc[-1]  # low-h workers sit below more of their coworkers
    assert lo["coworker_learning"].to_numpy() == pytest.approx(0.2 * lo["gap_up"] + 0.1 * lo["gap_down"])


def test_measure_command_on_a_bare_panel_and_a_run_directory(tmp_path, capsys):
    from lotj.config import load_config, to_yaml
    from lotj.measure.__main__ import main

    panel = tiny_panel()
    panel.to_parquet(tmp_path / "p.parquet")
    assert (
        main(
            [
                str(tmp_path / "p.parquet"),
                "--theta-plus",
                str(TP),
                "--theta-minus",
                str(TM),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    got = json.loads((tmp_path / "o" / "moments.json").read_text())
    assert got == json.loads(json.dumps(measure(panel, TP, TM).moments))
    targets = pd.read_csv(tmp_path / "o" / "targets.csv").set_index("target")
    assert targets.loc["en_rate", "gap"] == pytest.approx(1 / 9 - 0.149)
    assert not targets.loc["wage_p50_p25", "comparable"] and np.isnan(targets.loc["wage_p50_p25", "gap"])
    # a run directory: θ± from its config.yaml
    run = tmp_path / "run"
    run.mkdir()
    cfg = load_config(["conf=smoke", "economy.theta_plus=0.2", "economy.theta_minus=0.05"])
    (run / "config.yaml").write_text(to_yaml(cfg))
    panel.to_parquet(run / "panel.parquet")
    assert main([str(run), "--no-progress"]) == 0
    got = json.loads((run / "moments.json").read_text())
    want = measure(panel, 0.2, 0.05).moments["h_growth_decomposition"]
    assert got["h_growth_decomposition"]["theta_plus"] == pytest.approx(want["theta_plus"], rel=1e-12)
    assert want["theta_plus"] != pytest.approx(measure(panel, TP, TM).moments["h_growth_decomposition"]["theta_plus"])
    # a malformed panel: status 2 and the problem
    panel.drop(columns="year").to_parquet(tmp_path / "bad.parquet")
    assert main([str(tmp_path / "bad.parquet")]) == 2
    assert "lacks the required column(s) ['year']" in capsys.readouterr().err


def test_report_command(tmp_path):
    from lotj.config import load_config, to_yaml
    from lotj.report.__main__ import main

    panel = tiny_panel()
    panel.to_parquet(tmp_path / "panel.parquet")
    (tmp_path / "config.yaml").write_text(to_yaml(load_config(["conf=smoke"])))
    pd.DataFrame({"epoch": [0, 1, 2], "step": [9, 19, 29], "val/residual": [1.0, 0.1, 0.01]}).to_csv(
        tmp_path / "metrics.csv", index=False
    )
    assert main([str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    for section in ("## Targets", "## Regression (6)", "## Decomposition of human-capital growth", "## Markdown"):
        assert section in text
    assert "| en_rate | 0.149 | 0.1111 |" in text  # the model's EN rate 1/9 beside the source's
    conv = pd.read_csv(tmp_path / "figures" / "convergence.csv")
    assert conv["val/residual"].tolist() == [1.0, 0.1, 0.01]
    assert (tmp_path / "figures" / "convergence.png").stat().st_size > 0
    sizes = pd.read_csv(tmp_path / "figures" / "firm_sizes.csv")
    assert sizes.set_index("firm_size")["firm_years"].to_dict() == {1: 4, 2: 4, 3: 1}
