"""Every moment of MEASUREMENT.md from one annual panel, and the analyses of MODEL.md section 9.

:func:`measure` checks the panel (:mod:`lotj.measure.checks`) and returns a :class:`Measurement`:

- ``moments``: exactly the keys of MEASUREMENT.md (:data:`MOMENT_KEYS`), None where undefined;
- ``analysis``: what moments.json leaves out: regression (6) with standard errors, the number of firms and
  the singleton drop; sorting correlations; the reason for every null moment; the panel's size;
- ``tables``: DataFrames behind the figures (firm-size and wage distributions, sorting, learning
  opportunities by h decile, markdown by tenure, wages by the cause of the last reset, firm effects).

Wage- and rank-based moments need a ``wage`` column (MEASUREMENT.md rule 4); the decomposition needs h, a, q
and θ±; the markdown needs ``W`` and ``J``; wages by cause need ``last_reset``. Without them those are null
(or absent tables) with the reason in ``analysis["nulls"]``, and the rest is computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lotj.measure.checks import Panel, check_panel
from lotj.measure.decomposition import h_growth_decomposition
from lotj.measure.ranks import flow_moments, rank_moments, stayer_pairs, wage_moments, wage_ranks
from lotj.measure.regression import regression6
from lotj.measure.sizes import employed_rows, firm_year_sizes, size_moments
from lotj.measure.sorting import learning_opportunities, sorting
from lotj.measure.stats import finite_or_none
from lotj.measure.tenure import markdown_by_tenure, tenure_columns, wages_by_reset_cause

#: the keys of moments.json, in MEASUREMENT.md's order
MOMENT_KEYS: tuple[str, ...] = (
    "employment_rate",
    "en_rate",
    "ne_rate",
    "firm_size_mean",
    "firm_size_p50",
    "firm_size_p90",
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
    "h_growth_decomposition",
)
#: the keys that need wages (MEASUREMENT.md rule 4)
WAGE_KEYS: tuple[str, ...] = MOMENT_KEYS[6:24]


@dataclass
class Measurement:
    """The result of :func:`measure` (module docstring)."""

    moments: dict[str, Any]
    analysis: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (finite_or_none(v) if isinstance(v, (float, np.floating)) else v) for k, v in d.items()}


class _Progress:
    """A tqdm bar over the measurement's stages (shown for long panels only)."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="lotj.measure", leave=False)

    def step(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(name)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


#: panels with at least this many rows show a progress bar (``progress=None``)
PROGRESS_ROWS = 200_000


def measure(
    panel: pd.DataFrame | Panel,
    theta_plus: float | None = None,
    theta_minus: float | None = None,
    *,
    analyses: bool = True,
    progress: bool | None = None,
) -> Measurement:
    """Measure ``panel`` (module docstring). ``theta_plus``, ``theta_minus``: the economy's θ± for the
    decomposition of h growth (null without them). ``analyses=False``: moments.json only (faster)."""
    checked = panel if isinstance(panel, Panel) else check_panel(panel)
    frame = checked.frame
    show = len(frame) >= PROGRESS_ROWS if progress is None else progress
    bar = _Progress(6 if analyses else 4, show)
    nulls: dict[str, str] = {}
    moments: dict[str, Any] = dict.fromkeys(MOMENT_KEYS)
    analysis: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}

    moments.update(flow_moments(frame))
    emp = employed_rows(frame)
    moments.update(size_moments(emp))
    bar.step("flows and sizes")

    has_wage = "wage" in frame.columns
    prev = cur = r = None
    reg = None
    if has_wage:
        r = wage_ranks(emp)
        prev, cur = stayer_pairs(emp)
        moments.update(wage_moments(emp))
        moments.update(rank_moments(emp, r, prev, cur))
        bar.step("ranks")
        reg = regression6(emp, r, prev, cur)
        moments.update(reg.moments())
        if reg.n == 0 or not reg.identified:
            nulls["regression"] = reg.note
        bar.step("regression (6)")
    else:
        for k in WAGE_KEYS:
            nulls[k] = "the panel has no 'wage' column"
        bar.step("ranks")
        bar.step("regression (6)")

    has_hq = checked.has("h", "a", "q")
    thetas = theta_plus is not None and theta_minus is not None
    if has_hq and thetas:
        moments["h_growth_decomposition"] = h_growth_decomposition(emp, float(theta_plus), float(theta_minus))
        if moments["h_growth_decomposition"] is None:
            nulls["h_growth_decomposition"] = "no employed rows, or the total of the components is constant"
    elif not has_hq:
        nulls["h_growth_decomposition"] = f"the panel lacks {[c for c in ('h', 'a', 'q') if c not in frame.columns]}"
    else:
        nulls["h_growth_decomposition"] = "theta_plus and theta_minus of the economy were not given"
    bar.step("decomposition")
    for k, v in moments.items():
        if v is None and k not in nulls:
            nulls[k] = "empty sample or a constant side (MEASUREMENT.md rule 5)"
    moments = _clean(moments)

    analysis["panel"] = {
        "rows": len(frame),
        "employed_rows": len(emp),
        "workers": int(frame["worker_id"].nunique()),
        "firm_years": int(emp["fy"].max() + 1) if len(emp) else 0,
        "years": sorted(int(y) for y in frame["year"].unique()),
        "year_gaps": checked.year_gaps,
        "missing_columns": checked.missing,
        "stayers": None if prev is None else len(prev),
    }
    analysis["theta_plus"], analysis["theta_minus"] = theta_plus, theta_minus
    if reg is not None:
        analysis["regression"] = {
            "coef": reg.coef,
            "se_crv1_firm": reg.se,
            "n": reg.n,
            "n_firms": reg.n_firms,
            "dropped_singletons": reg.dropped_singletons,
            "identified": reg.identified,
            "smallest_singular_value": reg.smallest_singular_value,
            "var_firm_effects": reg.var_firm_effects,
            "rmse": reg.rmse,
            "note": reg.note,
        }
        if reg.firm_effects is not None:
            tables["firm_effects"] = reg.firm_effects.reset_index()
    tables["firm_sizes"] = (
        pd.Series(firm_year_sizes(emp), name="n")
        .value_counts()
        .sort_index()
        .rename_axis("firm_size")
        .rename("firm_years")
        .reset_index()
    )
    if has_wage and len(emp):
        tables["wages"] = pd.DataFrame({"wage": emp["wage"].to_numpy(dtype=float), "rank": r})

    if analyses:
        _analyses(frame, emp, theta_plus, theta_minus, analysis, tables, nulls)
        bar.step("sorting and learning")
        bar.step("markdowns")
    analysis["nulls"] = nulls
    bar.close()
    return Measurement(moments=moments, analysis=analysis, tables=tables)


def _analyses(
    frame: pd.DataFrame,
    emp: pd.DataFrame,
    theta_plus: float | None,
    theta_minus: float | None,
    analysis: dict[str, Any],
    tables: dict[str, pd.DataFrame],
    nulls: dict[str, str],
) -> None:
    """Sorting, learning opportunities, markdown by tenure and wages by cause (MODEL.md section 9.3)."""
    if "h" in emp.columns:
        corrs, table = sorting(emp)
        analysis["sorting"] = _clean(corrs)
        tables["sorting"] = table
        tables["learning_opportunities"] = learning_opportunities(emp, theta_plus, theta_minus)
    else:
        nulls["sorting"] = nulls["learning_opportunities"] = "the panel has no 'h' column"
    tenure, censored = tenure_columns(frame)
    e = frame["employed"].to_numpy(dtype=bool)
    emp = emp.assign(tenure=tenure.to_numpy()[e], tenure_censored=censored.to_numpy()[e])
    if "W" in emp.columns and "J" in emp.columns:
        tables["markdown_by_tenure"] = markdown_by_tenure(emp)
    else:
        nulls["markdown_by_tenure"] = "the panel has no 'W' and 'J' columns (the W stage writes them)"
    if "last_reset" in emp.columns and "wage" in emp.columns:
        tables["wages_by_reset_cause"] = wages_by_reset_cause(emp)
    else:
        nulls["wages_by_reset_cause"] = "the panel has no 'last_reset' (or 'wage') column"


def measure_file(path: str, theta_plus: float | None = None, theta_minus: float | None = None, **kw) -> Measurement:
    """:func:`measure` of a Parquet panel (docs/panel.md)."""
    return measure(pd.read_parquet(path, engine="pyarrow"), theta_plus, theta_minus, **kw)
