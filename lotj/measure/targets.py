"""The calibration targets of MODEL.md section 8 against a run's moments: ``targets.csv``.

Each target has its moments.json key, the source's data value, the model's value and the gap
(model − data, and relative to |data| where data ≠ 0). The two wage quantile gaps are in the source's
own wage units, not the model's: they are compared only in the median-scaled form and only when a data
median wage is supplied (MODEL.md section 10); otherwise their gap is empty and marked not comparable.
"""

from __future__ import annotations

import math

import pandas as pd

#: (moments.json key, the source's data value), MODEL.md section 8 in its order
TARGETS: tuple[tuple[str, float], ...] = (
    ("firm_size_mean", 4.660),
    ("firm_size_p50", 1.0),
    ("firm_size_p90", 8.0),
    ("wage_p50_p25", 3.090),
    ("wage_p75_p50", 6.165),
    ("en_rate", 0.149),
    ("ne_rate", 0.311),
    ("employment_rate", 0.733),
    ("between_firm_share_rank", 0.843),
    ("mean_rank_change", 1.819),
    ("corr_size_rank", 0.038),
    ("var_rank_change", 73.354),
    ("var_firm_mean_rank_change", 54.773),
    ("var_firm_effects", 34.409),
    ("corr_firm_level_growth", 0.131),
    ("corr_worker_level_growth", 0.100),
    ("theta1_plus", 0.109),
    ("theta2_plus", 0.001),
    ("theta1_minus", 0.003),
    ("theta2_minus", 0.000),
)
#: targets in the source's wage units: compared median-scaled, with a data median only
WAGE_LEVEL_TARGETS = {"wage_p50_p25": "wage_p50_p25_rel", "wage_p75_p50": "wage_p75_p50_rel"}


def targets_table(
    moments: dict, data_median_wage: float | None = None, targets: tuple[tuple[str, float], ...] = TARGETS
) -> pd.DataFrame:
    """One row per target: ``target, data, model, gap, rel_gap, comparable, note`` (module docstring)."""
    rows = []
    for key, data in targets:
        model = moments.get(key)
        note = ""
        comparable = model is not None
        if key in WAGE_LEVEL_TARGETS:
            rel_key = WAGE_LEVEL_TARGETS[key]
            if data_median_wage is None:
                comparable = False
                note = f"in the source's wage units; model value in model units ({rel_key} = {moments.get(rel_key)})"
            else:
                key, data, model = rel_key, data / data_median_wage, moments.get(rel_key)
                comparable = model is not None
                note = f"median-scaled with the data median {data_median_wage:g}"
        if model is None:
            note = note or "null in moments.json (see analysis.json, nulls)"
        gap = model - data if comparable else None
        rel = gap / abs(data) if gap is not None and data != 0 else None
        rows.append(
            {
                "target": key,
                "data": data,
                "model": model,
                "gap": gap,
                "rel_gap": rel if rel is None or math.isfinite(rel) else None,
                "comparable": comparable,
                "note": note,
            }
        )
    return pd.DataFrame(rows)
