"""What a calibration reports at its best point: the source-style table and the objective's trace.

``best_table.csv`` / ``best_table.md``: the layout of the source's calibration slide, parameters beside
targets row by row (a row pairs them by position only: every parameter moves every moment), columns
``parameter, value, se, target, data, model``. ``objective_trace.png``: each trial's objective against its
finish order (the refinement's solves as squares, failed and refused trials at the top as crosses), the best
so far, and the start point's objective for reference.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from tune.calibrate.space import Parameter


def best_table(best: dict[str, Any], params: list[Parameter], targets: dict[str, float],
               se: dict[str, float] | None = None) -> pd.DataFrame:  # fmt: skip
    """Parameters (searched coordinates, and the covariance a correlation sets) beside targets (module docstring)."""
    names: list[tuple[str, float]] = []
    for p in params:
        names.append((p.name, best["params"][p.name]))
        if p.covariance:
            names.append((p.covariance, best["economy"][p.covariance]))
    keys = list(targets)
    rows = []
    for i in range(max(len(names), len(keys))):
        row: dict[str, Any] = {"parameter": "", "value": None, "se": None, "target": "", "data": None, "model": None}
        if i < len(names):
            row["parameter"], row["value"] = names[i]
            row["se"] = (se or {}).get(names[i][0])
        if i < len(keys):
            row["target"], row["data"], row["model"] = keys[i], targets[keys[i]], best["moments"].get(keys[i])
        rows.append(row)
    return pd.DataFrame(rows)


def table_markdown(table: pd.DataFrame) -> str:
    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_best_table(out: Path, table: pd.DataFrame, note: str = "") -> None:
    table.to_csv(out / "best_table.csv", index=False)
    (out / "best_table.md").write_text(table_markdown(table) + (f"\n{note}\n" if note else ""))


def trace_figure(results: pd.DataFrame, path: Path) -> Path:
    """The objective over trials (module docstring); ``results``: the results table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    scored = results["score"] == results["objective"]
    good = results[scored & results["objective"].notna()]
    bad = results[~(scored & results["objective"].notna())]
    local = good["origin"] == "refine"
    ax.plot(good.loc[~local, "trial"], good.loc[~local, "objective"], "o", color="C0", label="trial objective")
    if local.any():
        ax.plot(good.loc[local, "trial"], good.loc[local, "objective"], "s", color="C2", label="refinement")
    if not good.empty:
        best = good.set_index("trial")["objective"].reindex(results["trial"]).cummin().ffill()
        ax.step(results["trial"], best, where="post", color="C1", label="best so far")
        start = results[results["origin"] == "start"]["objective"]
        if len(start) and math.isfinite(start.iloc[0]):
            ax.axhline(start.iloc[0], color="grey", ls="--", lw=1, label="start point")
        top = good["objective"].max() * 1.5
    else:
        top = 1.0
    if not bad.empty:
        ax.plot(bad["trial"], [top] * len(bad), "x", color="C3", label="failed / refused / unconverged")
    ax.set_yscale("log")
    ax.set_xlabel("trial (finish order)")
    ax.set_ylabel("objective g'Wg")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
