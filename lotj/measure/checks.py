"""Panel checks (MEASUREMENT.md, rules 1–4): the columns a statistic needs, their dtypes and nulls.

:func:`check_panel` refuses a malformed panel with a :class:`PanelError` that names the column and the
problem, and returns a :class:`Panel`: the rows as plain numpy-backed columns, with the list of optional
columns the panel lacks (their statistics are null, with the reason, and the rest is still computed).
A ``firm_size`` column that disagrees with the rows' own count, or a gap in the panel's years, only
warns: firm size is counted from the rows, and a year gap gives no pairs across it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lotj.errors import ConfigError

#: columns every panel needs
REQUIRED = ("worker_id", "firm_id", "year", "employed")
#: columns some statistics need: without them those statistics are null (with the reason)
OPTIONAL = ("h", "a", "z", "q", "firm_size", "wage", "W", "J", "markdown", "last_reset")
#: columns that must hold integers (nullable for firm_id and firm_size)
INTEGER = ("worker_id", "firm_id", "year", "firm_size")
#: columns that must be numeric
NUMERIC = ("h", "a", "z", "q", "wage", "W", "J", "markdown")


class PanelError(ConfigError):
    """A panel that cannot be measured: a missing column, a wrong dtype, a duplicate (worker, year) row, a
    null ``employed``, or an employed row without what MEASUREMENT.md rule 3 requires."""


class PanelWarning(UserWarning):
    """Something in a panel that does not stop the measurement (a firm_size column that disagrees with the
    rows, a gap in the years)."""


@dataclass
class Panel:
    """A checked panel: ``frame`` with ``employed`` as bool, ``firm_id`` as Int64 and float columns as
    float64 (NaN for nulls); ``missing``: the optional columns it lacks; ``year_gaps``: the missing years
    between its first and last."""

    frame: pd.DataFrame
    missing: list[str] = field(default_factory=list)
    year_gaps: list[int] = field(default_factory=list)

    def has(self, *cols: str) -> bool:
        return all(c in self.frame.columns for c in cols)


def _integer_column(s: pd.Series, name: str, nullable: bool) -> pd.Series:
    if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
        raise PanelError(f"column {name!r} must hold integers, not dtype {s.dtype}")
    if not nullable and s.isna().any():
        raise PanelError(f"column {name!r} has {int(s.isna().sum())} null values")
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.astype("Float64")
        bad = v.notna() & (v != v.round())
        if bool(bad.any()):
            raise PanelError(f"column {name!r} must hold integers; {int(bad.sum())} values are not whole numbers")
    return s.astype("Int64" if nullable else "int64")


def _float_column(s: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
        raise PanelError(f"column {name!r} must be numeric, not dtype {s.dtype}")
    return pd.Series(s.astype("Float64").to_numpy(dtype=float, na_value=np.nan), index=s.index, name=name)


def check_panel(panel: pd.DataFrame) -> Panel:
    """Check ``panel`` against MEASUREMENT.md (module docstring) and return the :class:`Panel` to measure."""
    if not isinstance(panel, pd.DataFrame):
        raise PanelError(f"a panel is a pandas DataFrame, not {type(panel).__name__}")
    absent = [c for c in REQUIRED if c not in panel.columns]
    if absent:
        raise PanelError(f"the panel lacks the required column(s) {absent}; it has {list(panel.columns)}")
    df = panel.reset_index(drop=True).copy()
    df["worker_id"] = _integer_column(df["worker_id"], "worker_id", nullable=False)
    df["year"] = _integer_column(df["year"], "year", nullable=False)
    df["firm_id"] = _integer_column(df["firm_id"], "firm_id", nullable=True)
    if "firm_size" in df.columns:
        df["firm_size"] = _integer_column(df["firm_size"], "firm_size", nullable=True)

    emp = df["employed"]
    if emp.isna().any():
        raise PanelError(f"column 'employed' has {int(emp.isna().sum())} null values")
    if pd.api.types.is_bool_dtype(emp.dtype):
        df["employed"] = emp.astype(bool)
    elif pd.api.types.is_numeric_dtype(emp.dtype) and emp.isin([0, 1]).all():
        df["employed"] = emp.astype(bool)
    else:
        raise PanelError(f"column 'employed' must be boolean (or 0/1), not dtype {emp.dtype}")

    for c in NUMERIC:
        if c in df.columns:
            df[c] = _float_column(df[c], c)

    dup = df.duplicated(["worker_id", "year"])
    if bool(dup.any()):
        first = df.loc[dup, ["worker_id", "year"]].iloc[0]
        raise PanelError(
            f"{int(dup.sum())} duplicate (worker_id, year) rows, e.g. worker {first['worker_id']} in {first['year']}"
        )

    e = df["employed"].to_numpy()
    _require_on_employed(df, e)

    missing = [c for c in OPTIONAL if c not in df.columns]
    gaps: list[int] = []
    if len(df):
        years = np.unique(df["year"].to_numpy())
        gaps = sorted(set(range(int(years[0]), int(years[-1]) + 1)) - set(years.tolist()))
        if gaps:
            warnings.warn(
                f"the panel has no rows in year(s) {gaps}: no pairs are formed across them", PanelWarning, stacklevel=2
            )
    if "firm_size" in df.columns and e.any():
        _warn_firm_size(df, e)
    return Panel(frame=df, missing=missing, year_gaps=gaps)


def _require_on_employed(df: pd.DataFrame, e: np.ndarray) -> None:
    """MEASUREMENT.md rule 3: an employed row has a firm, q, positive finite h, a, q and a finite wage."""
    n_bad = int((e & df["firm_id"].isna().to_numpy()).sum())
    if n_bad:
        raise PanelError(f"{n_bad} employed rows have a null 'firm_id'")
    for c in ("h", "a", "q"):
        if c in df.columns:
            v = df[c].to_numpy()[e]
            bad = ~(np.isfinite(v) & (v > 0))
            if bad.any():
                raise PanelError(f"{int(bad.sum())} employed rows have a null, non-finite or non-positive {c!r}")
    if "wage" in df.columns:
        bad = ~np.isfinite(df["wage"].to_numpy()[e])
        if bad.any():
            raise PanelError(f"{int(bad.sum())} employed rows have a null or non-finite 'wage'")


def _warn_firm_size(df: pd.DataFrame, e: np.ndarray) -> None:
    """MEASUREMENT.md rule 1: the firm_size column should equal the count of the firm-year's employed rows."""
    rows = df.loc[e, ["firm_id", "year", "firm_size"]]
    counted = rows.groupby(["firm_id", "year"])["firm_id"].transform("size").to_numpy()
    given = rows["firm_size"].to_numpy(dtype=float, na_value=np.nan)
    off = ~(given == counted)
    if off.any():
        warnings.warn(
            f"{int(off.sum())} employed rows have a 'firm_size' that differs from the number of employed rows of "
            "their (firm_id, year); the moments use the rows' count",
            PanelWarning,
            stacklevel=3,
        )
