"""The report's figures (matplotlib, PNG), each written with the data it plots as CSV beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lotj.measure.targets import TARGETS


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, data: pd.DataFrame, out: Path, name: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    data.to_csv(out / f"{name}.csv", index=False)
    return path


def metric_history(path: Path) -> pd.DataFrame:
    """Per-epoch rows of a Lightning ``metrics.csv`` (the rows Lightning writes per epoch merged)."""
    if not path.is_file():
        return pd.DataFrame()
    raw = pd.read_csv(path)
    if "epoch" not in raw.columns:
        return pd.DataFrame()
    raw = raw.dropna(subset=["epoch"]).drop(columns=[c for c in ("step",) if c in raw.columns])
    return raw.groupby("epoch").last().reset_index()


#: the simulated statistics whose convergence the report draws (χ's summaries; docs/simulator.md)
SIM_STATISTICS = (
    "sim/e",
    "sim/omega",
    "sim/s_n",
    "sim/en_rate",
    "sim/ne_rate",
    "sim/firm_size_mean",
    "sim/mean_log_h_employed",
    "sim/var_log_h_employed",
)


def convergence(run_dir: Path, out: Path) -> Path | None:
    """Held-out residuals of V (and W) by epoch, and the simulated statistics (``sim/*``) by epoch."""
    v = metric_history(run_dir / "metrics.csv")
    w = metric_history(run_dir / "w" / "metrics.csv")
    if v.empty and w.empty:
        return None
    plt = _plt()
    sim_cols = [c for c in SIM_STATISTICS if c in v.columns]
    fig, axes = plt.subplots(1, 2 if sim_cols else 1, figsize=(11 if sim_cols else 6, 4), squeeze=False)
    ax = axes[0, 0]
    for col, label in (("val/residual", "V: held-out residual"), ("train/loss", "V: training loss")):
        if col in v.columns:
            ax.plot(v["epoch"], v[col], label=label)
    if "w/val_residual" in w.columns:
        ax.plot(w["epoch"], w["w/val_residual"], label="W: held-out residual")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_title("convergence of V and W")
    ax.legend()
    if sim_cols:
        ax = axes[0, 1]
        for col in sim_cols:
            s = v[col]
            base = s.dropna().iloc[-1] if s.notna().any() else 1.0
            ax.plot(v["epoch"], s / base if base else s, label=col)
        ax.set_xlabel("epoch")
        ax.set_title("simulated statistics (relative to the last epoch)")
        ax.legend(fontsize=7)
    data = v
    if not w.empty:
        w_cols = w.add_prefix("w_stage:").rename(columns={"w_stage:epoch": "epoch"})
        data = w_cols if v.empty else v.merge(w_cols, on="epoch", how="outer")
    return _save(fig, data, out, "convergence")


def _target(key: str) -> float | None:
    return dict(TARGETS).get(key)


def firm_sizes(sizes: pd.DataFrame, moments: dict, out: Path) -> Path | None:
    """The distribution of firm-year sizes, with the model's and the data's mean, p50 and p90."""
    if sizes.empty:
        return None
    plt = _plt()
    share = sizes["firm_years"] / sizes["firm_years"].sum()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(sizes["firm_size"], share, color="C0", alpha=0.7, label="model")
    for i, (key, label) in enumerate((("firm_size_mean", "mean"), ("firm_size_p50", "p50"), ("firm_size_p90", "p90"))):
        if moments.get(key) is not None:
            ax.axvline(moments[key], color=f"C{i + 1}", ls="-", label=f"model {label}")
        ax.axvline(_target(key), color=f"C{i + 1}", ls="--", label=f"data {label}")
    ax.set_xlabel("workers per firm (firm-years)")
    ax.set_ylabel("share of firm-years")
    ax.legend(fontsize=7)
    return _save(fig, sizes.assign(share=share), out, "firm_sizes")


def wages(w: pd.DataFrame, moments: dict, out: Path) -> Path | None:
    """The wage distribution relative to the median, with the model's quartiles."""
    if w.empty:
        return None
    plt = _plt()
    rel = w["wage"].to_numpy() / np.median(w["wage"].to_numpy())
    counts, edges = np.histogram(rel, bins=60)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.stairs(counts / counts.sum(), edges, fill=True, alpha=0.6, label="model")
    q = np.quantile(rel, [0.25, 0.5, 0.75])
    for x, lab, color in zip(q, ("p25", "p50", "p75"), ("C1", "k", "C2")):
        ax.axvline(x, color=color, ls=":", lw=1, label=f"{lab} = {x:.3f}")
    ax.legend(fontsize=7)
    ax.set_xlabel("wage / median wage (employed worker-years)")
    ax.set_ylabel("share")
    ax.set_title(
        f"p50−p25 = {moments.get('wage_p50_p25_rel') or float('nan'):.3f}, "
        f"p75−p50 = {moments.get('wage_p75_p50_rel') or float('nan'):.3f} (× median)"
    )
    data = pd.DataFrame({"bin_left": edges[:-1], "bin_right": edges[1:], "share": counts / counts.sum()})
    return _save(fig, data, out, "wages")


def sorting(table: pd.DataFrame, out: Path) -> Path | None:
    """Mean h and a by decile of coworkers' mean h, z and q."""
    if table is None or table.empty:
        return None
    plt = _plt()
    variables = list(dict.fromkeys(table["variable"]))
    fig, axes = plt.subplots(1, len(variables), figsize=(4 * len(variables), 3.6), squeeze=False)
    for ax, var in zip(axes[0], variables):
        t = table[table["variable"] == var]
        ax.plot(t["x_mean"], t["h_mean"], "o-", label="mean h")
        if "a_mean" in t.columns:
            ax.plot(t["x_mean"], t["a_mean"], "s-", label="mean a")
        ax.set_xlabel(f"{var} (decile means)")
        ax.legend(fontsize=7)
    fig.suptitle("sorting of workers across firms")
    return _save(fig, table, out, "sorting")


def learning(table: pd.DataFrame, out: Path) -> Path | None:
    """Learning opportunities by h decile."""
    if table is None or table.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(table["h_decile"], table["gap_up"], "o-", label="mean Σ log(h_j/h_i)/(n−1), h_j > h_i")
    ax.plot(table["h_decile"], -table["gap_down"], "s-", label="mean Σ log(h_i/h_j)/(n−1), h_j < h_i")
    ax.plot(table["h_decile"], table["has_better_coworker"], "^-", label="share with a better coworker")
    ax.set_xlabel("decile of h")
    ax.set_title("learning opportunities")
    ax.legend(fontsize=7)
    return _save(fig, table, out, "learning_opportunities")


def markdown_by_tenure(table: pd.DataFrame, out: Path) -> Path | None:
    """Mean and quartiles of W/J by tenure, spells starting in the panel (uncensored) and left-censored."""
    if table is None or table.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for cens, style in ((False, "o-"), (True, "s--")):
        t = table[table["censored"] == cens]
        if t.empty:
            continue
        label = "left-censored spells" if cens else "spells begun in the panel"
        ax.plot(t["tenure"], t["mean"], style, label=f"mean, {label}")
        ax.fill_between(t["tenure"], t["p25"], t["p75"], alpha=0.15)
    ax.set_xlabel("tenure (years; last point pools the longer ones)")
    ax.set_ylabel("W / J")
    ax.set_title("markdown by tenure")
    ax.legend(fontsize=7)
    return _save(fig, table, out, "markdown_by_tenure")


def moments_vs_data(targets: pd.DataFrame, out: Path) -> Path | None:
    """Model against data for every comparable target: the model value over the data value."""
    t = targets[targets["comparable"].astype(bool)].copy()
    if t.empty:
        return None
    plt = _plt()
    t["model_over_data"] = [m / d if d else np.nan for m, d in zip(t["model"], t["data"])]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(t) + 1.5))
    y = np.arange(len(t))
    ax.barh(y, t["model_over_data"], color=["C2" if 0.8 <= v <= 1.25 else "C3" for v in t["model_over_data"]])
    ax.axvline(1.0, color="k", lw=1)
    ax.set_yticks(y, t["target"], fontsize=7)
    ax.set_xlabel("model / data (1 = on target)")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.invert_yaxis()
    return _save(fig, t, out, "moments_vs_data")
