"""The figure of a counterfactual set: mean and variance of h and w of each economy relative to the baseline."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

#: The panels of the figure: (statistic, title).
PANELS = (("h_mean", "mean of h"), ("h_var", "variance of h"), ("w_mean", "mean of w"), ("w_var", "variance of w"))


def plot_relative(table: pd.DataFrame, path: Path) -> Path:
    """Bars of ``X_rel`` per economy with the seed scatter ``X_rel_sd`` as error bars, one panel per statistic
    (MODEL.md section 9.2); a dashed line at the baseline's 1. An economy without the statistic (failed, not
    run, or w without a W stage) has no bar and is labelled so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table["economy"])
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.2 * len(PANELS), 3.6), sharey=False)
    for ax, (key, title) in zip(axes, PANELS):
        values = pd.to_numeric(table[f"{key}_rel"], errors="coerce").to_numpy(dtype=float)
        errors = pd.to_numeric(table[f"{key}_rel_sd"], errors="coerce").to_numpy(dtype=float)
        shown = np.isfinite(values)
        scatter = np.isfinite(errors) & shown
        ax.bar(x[shown], values[shown], yerr=np.where(scatter, errors, np.nan)[shown] if scatter.any() else None)
        below = ax.get_xaxis_transform()  # x in data, y in axes coordinates
        for i in np.flatnonzero(~shown):
            ax.text(x[i], 0.02, "missing", rotation=90, ha="center", va="bottom", fontsize=7, transform=below)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_title(title)
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
        ax.set_xlim(-0.6, len(names) - 0.4)
        finite = values[shown]
        if finite.size and all(math.isfinite(v) for v in finite):
            ax.set_ylim(0.0, max(1.1, float(finite.max()) * 1.1))
    axes[0].set_ylabel("relative to the baseline (= 1)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
