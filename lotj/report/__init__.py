"""``report.md`` of a run: one page an economist reads (docs/measurement.md, "The report").

:func:`build_report` measures the run's panel (:func:`lotj.measure.measure`, θ± from its ``config.yaml``),
writes the measurement (``moments.json``, ``analysis.json``, ``targets.csv``, ``tables/``), draws the figures
(:mod:`lotj.report.figures`, PNG with a CSV of their data under ``figures/``) and writes ``report.md``: the
run's accuracy and convergence, the targets, regression (6), the decomposition of h growth, sorting,
learning opportunities, the markdown by tenure and wages by the cause of their last reset.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from lotj.measure.decomposition import COMPONENTS
from lotj.measure.moments import Measurement, measure
from lotj.measure.output import run_thetas, write_measurement
from lotj.measure.regression import COEFFICIENTS
from lotj.report import figures


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int,)) and not isinstance(x, bool):
        return f"{x:,}"
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _table(frame: pd.DataFrame, digits: int = 4) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v if not pd.isna(v) else None, digits) for v in row) + " |")
    return "\n".join(lines)


def measure_run_dir(run_dir: str | Path, *, progress: bool | None = None) -> Measurement:
    """Measure ``run_dir/panel.parquet`` with the run's θ±."""
    run = Path(run_dir)
    tp = tm = None
    if (run / "config.yaml").is_file():
        tp, tm = run_thetas(run)
    return measure(pd.read_parquet(run / "panel.parquet", engine="pyarrow"), tp, tm, progress=progress)


def build_report(
    run_dir: str | Path, m: Measurement | None = None, *, data_median_wage: float | None = None
) -> dict[str, Path]:
    """Write the measurement, the figures and ``report.md`` into ``run_dir``; returns the paths written
    (``report`` and one per figure)."""
    run = Path(run_dir)
    m = m if m is not None else measure_run_dir(run)
    write_measurement(m, run, data_median_wage)
    targets = pd.read_csv(run / "targets.csv")
    fig_dir = run / "figures"
    figs: dict[str, Path | None] = {
        "convergence": figures.convergence(run, fig_dir),
        "moments_vs_data": figures.moments_vs_data(targets, fig_dir),
        "firm_sizes": figures.firm_sizes(m.tables.get("firm_sizes", pd.DataFrame()), m.moments, fig_dir),
        "wages": figures.wages(m.tables.get("wages", pd.DataFrame()), m.moments, fig_dir),
        "sorting": figures.sorting(m.tables.get("sorting"), fig_dir),
        "learning_opportunities": figures.learning(m.tables.get("learning_opportunities"), fig_dir),
        "markdown_by_tenure": figures.markdown_by_tenure(m.tables.get("markdown_by_tenure"), fig_dir),
    }
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    text = _report_text(run, m, targets, summary, figs)
    (run / "report.md").write_text(text)
    return {"report": run / "report.md", **{k: v for k, v in figs.items() if v is not None}}


def _img(figs: dict[str, Path | None], name: str, run: Path) -> str:
    p = figs.get(name)
    return (
        f"![{name}]({p.relative_to(run).as_posix()})  (data: `{p.relative_to(run).with_suffix('.csv').as_posix()}`)\n"
        if p
        else ""
    )


def _report_text(run: Path, m: Measurement, targets: pd.DataFrame, summary: dict, figs: dict) -> str:
    mo, an = m.moments, m.analysis
    out: list[str] = [f"# Run report: `{run.name}`\n"]
    p = an.get("panel", {})
    out.append(
        f"Panel: {_fmt(p.get('rows'))} worker-years ({_fmt(p.get('employed_rows'))} employed), "
        f"{_fmt(p.get('firm_years'))} firm-years, years {p.get('years', [None])[0]}–{p.get('years', [None])[-1]}; "
        f"θ⁺ = {_fmt(an.get('theta_plus'))}, θ⁻ = {_fmt(an.get('theta_minus'))}.\n"
    )
    out.append("## Accuracy and convergence\n")
    keys = [
        ("status", "status"),
        ("residual_final", "held-out scale-free residual of V (final network, 4 fresh sets)"),
        ("residual", "held-out residual of V, last epoch"),
        ("l2_final", "held-out mean squared residual of V (unscaled)"),
        ("epochs", "V epochs"),
        ("w_residual", "held-out scale-free residual of W"),
        ("w_epochs", "W epochs"),
        ("wage_inversion_not_converged_share", "wage inversions not converged (share)"),
        ("total_time_s", "total time (s)"),
    ]
    rows = [(label, summary.get(k)) for k, label in keys if k in summary]
    if rows:
        out.append(_table(pd.DataFrame(rows, columns=["quantity", "value"])) + "\n")
    out.append(_img(figs, "convergence", run))
    out.append("## Targets (MODEL.md section 8)\n")
    out.append(
        "Model against the source's data values; gap = model − data. The wage quantile gaps are in the "
        "source's wage units and are compared only median-scaled with a data median (MODEL.md section 10).\n"
    )
    out.append(_table(targets[["target", "data", "model", "gap", "rel_gap", "note"]]) + "\n")
    out.append(_img(figs, "moments_vs_data", run))
    out.append("## Regression (6)\n")
    reg = an.get("regression")
    if reg:
        rows = [(k, reg["coef"].get(k), reg["se_crv1_firm"].get(k)) for k in COEFFICIENTS]
        out.append(_table(pd.DataFrame(rows, columns=["coefficient", "estimate", "s.e. (clustered by firm)"])) + "\n")
        out.append(
            f"Variance of the firm effects α_k: {_fmt(reg['var_firm_effects'])}; RMSE: {_fmt(reg['rmse'])}; "
            f"n = {_fmt(reg['n'])} stayers in {_fmt(reg['n_firms'])} firms "
            f"({_fmt(reg['dropped_singletons'])} singleton observations dropped); identified: "
            f"{_fmt(reg['identified'])}.\n"
        )
    else:
        out.append(f"Not computed: {an.get('nulls', {}).get('theta1_plus', 'no wages')}.\n")
    out.append("## Decomposition of human-capital growth (MODEL.md section 9.1)\n")
    d = mo.get("h_growth_decomposition")
    if d:
        frame = pd.DataFrame([[d[r][c] for c in COMPONENTS] for r in COMPONENTS], columns=list(COMPONENTS))
        frame.insert(0, "", list(COMPONENTS))
        out.append(_table(frame, 3) + "\n")
        out.append("Diagonal: Var(c)/Var(total); above it: 2 Cov(c, c')/Var(total); the entries sum to 1.\n")
    else:
        out.append(f"Not computed: {an.get('nulls', {}).get('h_growth_decomposition')}.\n")
    out.append("## Distributions\n")
    out.append(_img(figs, "firm_sizes", run))
    out.append(_img(figs, "wages", run))
    out.append("## Sorting and learning opportunities (MODEL.md section 9.3)\n")
    if an.get("sorting"):
        out.append(_table(pd.DataFrame(list(an["sorting"].items()), columns=["correlation", "value"]), 3) + "\n")
    out.append(_img(figs, "sorting", run))
    out.append(_img(figs, "learning_opportunities", run))
    out.append("## Markdown W/J by tenure\n")
    out.append(_img(figs, "markdown_by_tenure", run) or f"Not computed: {an['nulls'].get('markdown_by_tenure')}.\n")
    out.append("## Wages by the cause of their last reset\n")
    t = m.tables.get("wages_by_reset_cause")
    out.append(
        _table(t, 3) + "\n"
        if t is not None and not t.empty
        else f"Not computed: {an['nulls'].get('wages_by_reset_cause')}.\n"
    )
    nulls = {k: v for k, v in an.get("nulls", {}).items()}
    if nulls:
        out.append("## Null statistics\n")
        out.append(_table(pd.DataFrame(list(nulls.items()), columns=["statistic", "reason"])) + "\n")
    return "\n".join(out)
