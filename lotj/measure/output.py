"""Where a measurement goes: ``moments.json`` (exactly MEASUREMENT.md's keys), ``analysis.json`` (regression (6)
with standard errors, sorting, the reasons for nulls), ``targets.csv`` (:mod:`lotj.measure.targets`) and one
CSV per table under ``tables/``; and how a run directory supplies θ± (its ``config.yaml``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from lotj.measure.moments import Measurement
from lotj.measure.targets import targets_table


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_measurement(m: Measurement, out_dir: str | Path, data_median_wage: float | None = None) -> dict[str, Path]:
    """Write ``moments.json``, ``analysis.json``, ``targets.csv`` and ``tables/*.csv`` into ``out_dir``."""
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    paths = {
        "moments": out / "moments.json",
        "analysis": out / "analysis.json",
        "targets": out / "targets.csv",
    }
    paths["moments"].write_text(json.dumps(_jsonable(m.moments), indent=2))
    paths["analysis"].write_text(json.dumps(_jsonable(m.analysis), indent=2))
    targets_table(m.moments, data_median_wage).to_csv(paths["targets"], index=False)
    for name, table in m.tables.items():
        if name == "wages":  # one row per worker-year: the report bins it
            continue
        table.to_csv(out / "tables" / f"{name}.csv", index=False)
        paths[name] = out / "tables" / f"{name}.csv"
    return paths


def run_thetas(run_dir: str | Path) -> tuple[float, float]:
    """θ⁺, θ⁻ of the economy of a run directory, from its ``config.yaml``."""
    from lotj.config import config_from_yaml

    cfg = config_from_yaml(Path(run_dir) / "config.yaml")
    return float(cfg.economy.theta_plus), float(cfg.economy.theta_minus)
