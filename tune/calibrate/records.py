"""The results table of a calibration: one row per trial, from its records (``DIR/records/*.json``).

Columns: ``trial`` (finish order, 0 = the start point), ``key``, ``origin`` (start | point | search | refine),
``status`` (ok | unconverged | failed | refused), ``reason``, one column per searched coordinate, then
``objective`` (``g' W g``; empty when there are no moments), ``score`` (what the sampler saw: the objective,
or ``failure_score``), one ``m.KEY`` column per target moment, the accuracy figures of the solve
(``acc.*``: residuals, ``v_error_*``, ``convergence``), ``init_from`` (the warm start), ``wall_time_s`` and
``run_dir``. Written as ``results.csv`` and ``results.parquet``; the best trial as ``best.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from tune.calibrate.evaluate import FINISHED, read_records


def results_table(records: list[dict[str, Any]], param_names: list[str], target_keys: list[str]) -> pd.DataFrame:
    """One row per record, in finish order (module docstring)."""
    rows = []
    for i, r in enumerate(records):
        row: dict[str, Any] = {"trial": i, "key": r["key"], "origin": r["origin"], "status": r["status"]}
        row["reason"] = r.get("reason", "")
        row.update({name: r["params"].get(name) for name in param_names})
        row["objective"] = r.get("objective", math.nan)
        row["score"] = r.get("score", math.nan)
        row.update({f"m.{k}": (r.get("moments") or {}).get(k) for k in target_keys})
        row.update({f"acc.{k}": v for k, v in (r.get("accuracy") or {}).items()})
        row.update(init_from=r.get("init_from", ""), wall_time_s=r.get("wall_time_s"), run_dir=r.get("run_dir", ""))
        rows.append(row)
    table = pd.DataFrame(rows)
    for col in ("objective", "score", *[f"m.{k}" for k in target_keys]):
        if col in table:
            table[col] = pd.to_numeric(table[col], errors="coerce")
    return table


def best_record(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The finished trial with the lowest score (unconverged ones count unless scored as failures)."""
    scored = [r for r in records if r["status"] in FINISHED and math.isfinite(r.get("objective", math.nan))]
    scored = [r for r in scored if r["score"] == r["objective"]]
    return min(scored, key=lambda r: r["score"]) if scored else None


def write_results(calibration_dir: Path, param_names: list[str], target_keys: list[str]) -> pd.DataFrame:
    """Write ``results.csv``, ``results.parquet`` and ``best.json`` from the records; returns the table."""
    records = read_records(calibration_dir)
    table = results_table(records, param_names, target_keys)
    table.to_csv(calibration_dir / "results.csv", index=False)
    if not table.empty:
        table.astype({c: str for c in table.columns if table[c].dtype == object}).to_parquet(
            calibration_dir / "results.parquet", index=False
        )
    best = best_record(records)
    (calibration_dir / "best.json").write_text(json.dumps(best, indent=2) if best else "null\n")
    return table
