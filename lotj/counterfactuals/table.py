"""The table of a counterfactual set (MODEL.md section 9.2): ``runs.csv``, ``counterfactuals.csv`` and ``.md``.

Read from the run directories alone (``python -m lotj.counterfactuals.table DIR`` rewrites it without Ray):

- ``runs.csv``: one row per economy and seed: its state (``done``, ``failed``, ``unfinished``, ``pending``,
  ``not run`` when its baseline failed), the error, the solve's accuracy figures and convergence status
  (``summary.json``), the statistics of h and w (:data:`STATS`, from ``panel.parquet``), the main moments and
  the h-growth decomposition (``moments.json``);
- ``counterfactuals.csv``: one row per economy. Each statistic X is given as ``X`` (its mean over the solved
  seeds), ``X_rel`` (the mean over seeds of X divided by the baseline's X *of the same seed*, so the baseline
  is exactly 1 and the common random numbers cancel) and ``X_rel_sd`` (the standard deviation of that ratio
  over seeds: the seed scatter; empty with one seed). ``status`` is the worst state of its seeds,
  ``convergence`` says whether every seed's solve met the certified convergence rule (docs/accuracy.md).

Statistics (employed worker-years of the stationary annual panel, population variances): ``h_mean``, ``h_var``,
``w_mean``, ``w_var``; ``h_mean_all``, ``h_var_all`` over all workers. ``panel_first_year``: the year of the
simulation clock the panel starts (a counterfactual's is the baseline's unless it trained longer: the age of
the economy matters for h, whose distribution settles slowly; ``lotj.counterfactuals.runner``). Without a W
stage the panel has no wages: the w statistics are empty and ``w_status`` says ``missing (no W stage)``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lotj.counterfactuals.economies import BASELINE
from lotj.counterfactuals.runner import ERROR_FILE, run_dir, run_state
from lotj.counterfactuals.spec import SPEC_FILE, SetSpec, load_spec
from lotj.measure.decomposition import COMPONENTS

#: Statistics of h and w, relative to the baseline in the table.
STATS = ("h_mean", "h_var", "w_mean", "w_var", "h_mean_all", "h_var_all")
#: The solve's figures carried from summary.json (docs/accuracy.md, docs/solver.md, docs/wages.md).
FIGURES = (
    "epochs",
    "residual_final",
    "v_error_mean",
    "v_error_upper",
    "v_error_rms",
    "w_epochs",
    "w_residual",
    "sim_status",
    "total_time_s",
)
#: Main moments carried from moments.json (MEASUREMENT.md).
MOMENTS = (
    "employment_rate",
    "en_rate",
    "ne_rate",
    "firm_size_mean",
    "firm_size_p90",
    "wage_p50_p25_rel",
    "wage_p75_p50_rel",
    "between_firm_share_rank",
    "mean_rank_change",
    "var_rank_change",
    "theta1_plus",
    "theta1_minus",
    "var_firm_effects",
    "regression_rmse",
)
#: The h-growth decomposition's upper-triangular entries as columns ``dec_<row>__<column>``.
DECOMPOSITION = tuple(f"dec_{ci}__{cj}" for i, ci in enumerate(COMPONENTS) for j, cj in enumerate(COMPONENTS) if j >= i)
#: Worst first: the state an economy's row takes from its seeds.
_STATE_ORDER = ("failed", "unfinished", "not run", "pending", "done")


def panel_stats(panel: pd.DataFrame) -> dict[str, float | None]:
    """:data:`STATS` of an annual panel (module docstring); w statistics None without a ``wage`` column."""
    emp = panel[panel["employed"].astype(bool)]
    h_emp = emp["h"].to_numpy(dtype=float)
    h_all = panel["h"].to_numpy(dtype=float)
    out: dict[str, float | None] = {
        "h_mean": float(h_emp.mean()) if h_emp.size else None,
        "h_var": float(h_emp.var()) if h_emp.size else None,
        "h_mean_all": float(h_all.mean()) if h_all.size else None,
        "h_var_all": float(h_all.var()) if h_all.size else None,
        "w_mean": None,
        "w_var": None,
    }
    if "wage" in emp.columns and emp.size:
        w = emp["wage"].to_numpy(dtype=float, na_value=np.nan)
        w = w[np.isfinite(w)]
        if w.size:
            out["w_mean"], out["w_var"] = float(w.mean()), float(w.var())
    return out


def _error_line(path: Path) -> str:
    lines = [x.strip() for x in (path / ERROR_FILE).read_text(errors="replace").splitlines() if x.strip()]
    return lines[-1] if lines else "error"


def run_row(spec: SetSpec, set_dir: Path, economy: str, seed: int, baseline_state: str) -> dict[str, Any]:
    """One row of ``runs.csv``."""
    path = run_dir(set_dir, economy, seed)
    state = run_state(path)
    if economy != BASELINE and state == "pending" and baseline_state == "failed":
        state = "not run"
    row: dict[str, Any] = {"economy": economy, "seed": seed, "state": state, "error": ""}
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").is_file() else {}
    if state == "failed":
        row["error"] = _error_line(path) if (path / ERROR_FILE).is_file() else str(summary.get("message", ""))
    elif state == "not run":
        row["error"] = f"not solved: the baseline of seed {seed} failed"
    row["convergence"] = summary.get("convergence", "not estimated" if summary else "")
    for key in FIGURES:
        row[key] = summary.get(key)
    panel = pd.read_parquet(path / "panel.parquet") if state == "done" and (path / "panel.parquet").is_file() else None
    stats = panel_stats(panel) if panel is not None else {}
    for key in STATS:
        row[key] = stats.get(key)
    row["panel_first_year"] = int(panel["year"].min()) if panel is not None else None
    row["w_status"] = "" if not stats else ("solved" if stats["w_mean"] is not None else "missing (no W stage)")
    moments = json.loads((path / "moments.json").read_text()) if (path / "moments.json").is_file() else {}
    for key in MOMENTS:
        row[key] = moments.get(key)
    dec = moments.get("h_growth_decomposition") or {}
    for ci in COMPONENTS:
        for cj in COMPONENTS[COMPONENTS.index(ci) :]:
            row[f"dec_{ci}__{cj}"] = (dec.get(ci) or {}).get(cj)
    return row


def runs_table(spec: SetSpec, set_dir: Path) -> pd.DataFrame:
    """``runs.csv``: every economy and seed, the baseline first."""
    baseline = {seed: run_state(run_dir(set_dir, BASELINE, seed)) for seed in spec.seeds}
    rows = [run_row(spec, set_dir, e.name, s, baseline[s]) for e in spec.economies for s in spec.seeds]
    return pd.DataFrame(rows)


def _mean(values: pd.Series) -> float:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return float(v.mean()) if len(v) else math.nan


def economy_row(runs: pd.DataFrame, economy: str, overrides: str) -> dict[str, Any]:
    """One row of ``counterfactuals.csv`` (module docstring)."""
    own = runs[runs["economy"] == economy]
    base = runs[runs["economy"] == BASELINE].set_index("seed")
    done = own[own["state"] == "done"]
    states = list(own["state"])
    row: dict[str, Any] = {
        "economy": economy,
        "overrides": overrides,
        "status": "ok" if all(s == "done" for s in states) else next(s for s in _STATE_ORDER if s in states),
        "seeds_solved": f"{len(done)}/{len(own)}",
        "error": "; ".join(sorted({e for e in own["error"] if isinstance(e, str) and e})),
    }
    conv = [c for c in done["convergence"]]
    if not conv:
        row["convergence"] = ""
    elif all(c == "converged" for c in conv):
        row["convergence"] = "converged"
    elif any(c == "not converged" for c in conv):
        row["convergence"] = f"not converged ({sum(c == 'not converged' for c in conv)}/{len(conv)} seeds)"
    else:
        row["convergence"] = "not estimated"
    for key in STATS:
        row[key] = _mean(done[key])
        ratios = []
        for _, r in done.iterrows():
            solved = r["seed"] in base.index and base.loc[r["seed"], "state"] == "done"
            ref = base.loc[r["seed"], key] if solved else None
            if r[key] is not None and ref is not None and pd.notna(r[key]) and pd.notna(ref) and ref != 0:
                ratios.append(float(r[key]) / float(ref))
        row[f"{key}_rel"] = float(np.mean(ratios)) if ratios else math.nan
        row[f"{key}_rel_sd"] = float(np.std(ratios, ddof=1)) if len(ratios) > 1 else math.nan
    statuses = {s for s in done["w_status"] if s}
    row["w_status"] = "solved" if statuses == {"solved"} else ("; ".join(sorted(statuses)) or "")
    for key in (*FIGURES, "panel_first_year"):
        row[key] = _mean(done[key]) if key != "sim_status" else ", ".join(sorted({str(s) for s in done[key]}))
    for key in (*MOMENTS, *DECOMPOSITION):
        row[key] = _mean(done[key])
    return row


def economies_table(spec: SetSpec, runs: pd.DataFrame) -> pd.DataFrame:
    """``counterfactuals.csv``: one row per economy, the baseline first."""
    return pd.DataFrame([economy_row(runs, e.name, e.describe()) for e in spec.economies])


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _rel(row: pd.Series, key: str) -> str:
    value, sd = row[f"{key}_rel"], row[f"{key}_rel_sd"]
    if not (isinstance(value, float) and math.isfinite(value)):
        return "missing" if key.startswith("w_") and "missing" in str(row["w_status"]) else "—"
    return f"{value:.4f} ± {sd:.4f}" if isinstance(sd, float) and math.isfinite(sd) else f"{value:.4f}"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(spec: SetSpec, table: pd.DataFrame) -> str:
    """``counterfactuals.md``: the relative table, accuracy, decomposition and moments, and what failed."""
    seeds = len(spec.seeds)
    lines = [
        f"# Counterfactual economies: conf={spec.conf}, set={Path(spec.set).stem}, {seeds} seed(s) {spec.seeds}",
        "",
        "Mean and variance of h and of w over employed worker-years of the stationary annual panel, relative to",
        "the baseline of the same seed (= 1); ± the standard deviation over seeds"
        + (" (one seed: no scatter)." if seeds == 1 else "."),
        "",
    ]
    rel = [
        [r["economy"], r["status"], r["convergence"] or "—", *[_rel(r, k) for k in STATS[:4]], _fmt(r["h_mean"])]
        for _, r in table.iterrows()
    ]
    lines += _md_table(
        ["economy", "status", "convergence", "mean h", "var h", "mean w", "var w", "mean h (level)"], rel
    )
    problems = table[(table["status"] != "ok") | table["convergence"].str.startswith("not converged")]
    if len(problems):
        lines += ["", "Not solved, or not converged (never dropped):", ""]
        for _, r in problems.iterrows():
            error = f"; {r['error']}" if r["error"] else ""
            lines.append(f"- `{r['economy']}`: {r['status']}, {r['convergence'] or 'no solve'}{error}")
    if any("missing" in str(s) for s in table["w_status"]):
        lines += ["", "w missing: these solves had no W stage (`solver.stages` without `w`): the panel has no wages."]
    lines += ["", "## Economies", ""]
    lines += _md_table(["economy", "overrides"], [[r["economy"], f"`{r['overrides']}`"] for _, r in table.iterrows()])
    lines += ["", "## Accuracy of each solve (means over solved seeds; docs/accuracy.md)", ""]
    lines += _md_table(
        ["economy", "seeds solved", *FIGURES, "panel_first_year"],
        [
            [r["economy"], r["seeds_solved"], *[_fmt(r[k]) for k in (*FIGURES, "panel_first_year")]]
            for _, r in table.iterrows()
        ],
    )
    lines += ["", "## h-growth decomposition (MODEL.md section 9.1; entries sum to 1)", ""]
    short = {"log_a": "a", "log_q": "q", "theta_plus": "θ⁺", "theta_minus": "θ⁻"}
    names = [k.removeprefix("dec_").split("__") for k in DECOMPOSITION]
    header = ["economy", *[short[a] if a == b else f"{short[a]}×{short[b]}" for a, b in names]]
    lines += _md_table(header, [[r["economy"], *[_fmt(r[k], 3) for k in DECOMPOSITION]] for _, r in table.iterrows()])
    lines += ["", "## Main moments (MEASUREMENT.md)", ""]
    lines += _md_table(["moment", *table["economy"]], [[k, *[_fmt(v) for v in table[k]]] for k in MOMENTS])
    return "\n".join(lines) + "\n"


def write_table(set_dir: Path | str) -> pd.DataFrame:
    """Write ``runs.csv``, ``counterfactuals.csv``, ``counterfactuals.md`` and ``counterfactuals.png`` into the
    set directory; return the economies' table."""
    from lotj.counterfactuals.figure import plot_relative

    set_dir = Path(set_dir)
    spec = load_spec(set_dir / SPEC_FILE)
    runs = runs_table(spec, set_dir)
    runs.to_csv(set_dir / "runs.csv", index=False)
    table = economies_table(spec, runs)
    table.to_csv(set_dir / "counterfactuals.csv", index=False)
    (set_dir / "counterfactuals.md").write_text(markdown(spec, table))
    plot_relative(table, set_dir / "counterfactuals.png")
    return table


def main(argv: list[str] | None = None) -> int:
    """``python -m lotj.counterfactuals.table DIR``: rewrite and print a set's table."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m lotj.counterfactuals.table SET_DIR", file=sys.stderr)
        return 2
    write_table(argv[0])
    print((Path(argv[0]) / "counterfactuals.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
