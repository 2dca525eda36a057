"""The annual panel: one row per worker and year, written to Parquet (docs/panel.md).

The panel is the state of the economy at a fixed date each year (MODEL.md section 10), with
the columns a matched employer-employee data set has (MODEL.md section 8). Columns, in order:

==============  ========  ==========================================================
``worker_id``   int64     persistent worker id (a retiree's replacement gets a new id)
``firm_id``     Int64     persistent firm id; null when unmatched (a newborn firm gets a new id)
``year``        int64     simulated year (years since the simulation started)
``employed``    bool      matched with a firm at the date
``h``           float64   human capital
``a``           float64   learning ability
``z``           Float64   the firm's productivity; null when unmatched
``q``           Float64   the firm's learning environment; null when unmatched
``firm_size``   Int64     workers at the firm (the manager not counted); null when unmatched
==============  ========  ==========================================================

Rows are ordered by year, then worker seat. A wage column is added when wages are solved. The written
file also has the tenure columns of :func:`lotj.measure.tenure.with_tenure`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lotj.measure.tenure import with_tenure
from lotj.sim.population import Population

#: Panel columns and their pandas dtypes (docs/panel.md).
PANEL_COLUMNS: dict[str, str] = {
    "worker_id": "int64",
    "firm_id": "Int64",
    "year": "int64",
    "employed": "bool",
    "h": "float64",
    "a": "float64",
    "z": "Float64",
    "q": "Float64",
    "firm_size": "Int64",
}


def panel_rows(pop: Population, year: int) -> pd.DataFrame:
    """The rows of one annual date: every worker of ``pop``."""
    emp = pop.employed()
    firm = pop.firm.clamp_min(0)
    sizes = pop.sizes()

    def col(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy()

    emp_np = col(emp)
    frame = pd.DataFrame(
        {
            "worker_id": col(pop.worker_id),
            "firm_id": pd.array(col(pop.firm_id[firm]), dtype="Int64"),
            "year": np.full(pop.n_workers, int(year), dtype=np.int64),
            "employed": emp_np,
            "h": col(pop.h),
            "a": col(pop.a),
            "z": pd.array(col(pop.z[firm]), dtype="Float64"),
            "q": pd.array(col(pop.q[firm]), dtype="Float64"),
            "firm_size": pd.array(col(sizes[firm]), dtype="Int64"),
        }
    )
    unmatched = ~emp_np
    for name in ("firm_id", "z", "q", "firm_size"):
        frame.loc[unmatched, name] = pd.NA
    return frame


def concat_panel(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack annual rows into one panel with the documented dtypes."""
    if not frames:
        return pd.DataFrame({k: pd.Series(dtype=v) for k, v in PANEL_COLUMNS.items()})
    out = pd.concat(frames, ignore_index=True)
    return out.astype(PANEL_COLUMNS)


def write_panel(panel: pd.DataFrame, path: str | Path) -> Path:
    """Write the panel to Parquet (pyarrow); nulls are stored as Parquet nulls. A panel without them gets the
    columns ``tenure`` and ``tenure_censored``, computed from its rows (:func:`lotj.measure.tenure.with_tenure`)."""
    if "tenure" not in panel.columns:
        panel = with_tenure(panel)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    panel.to_parquet(path, engine="pyarrow", index=False)
    return path


def read_panel(path: str | Path) -> pd.DataFrame:
    """Read a panel written by :func:`write_panel`, with the documented dtypes."""
    return pd.read_parquet(path, engine="pyarrow").astype(PANEL_COLUMNS)
