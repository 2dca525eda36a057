"""The results table of a sweep directory, and its best trial.

Built from what Tune persisted in ``DIR/trials`` (``ray.tune.ExperimentAnalysis``), so it can be
(re)written for a finished, failed, interrupted or still running sweep without Ray:
``python -m tune.results DIR``. One row per trial:

============  =================================================================================
trial_id      Tune's trial id
status        completed | stopped (by the scheduler) | failed | unfinished (sweep interrupted)
error         the error's last line for failed trials
<keys>        one column per sampled config key (``net.rho_width``, ``solver.lr``, ...)
epochs        epochs reported
<metrics>     the last reported value of each metric (``val_residual``, ``train_loss``, ...)
train_status  the status the training function returned; wall_time_s its wall time
checkpoint    the trial's latest checkpoint (a Lightning checkpoint file)
trial_dir     the trial's directory; its run directory (config, metrics, logs) is trial_dir/run
============  =================================================================================
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from tune.trial import CHECKPOINT_FILE, SUMMARY_FILE

#: The Tune experiment inside a sweep directory.
EXPERIMENT = "trials"
#: Result keys Tune adds by itself (not metrics of the run).
_TUNE_KEYS = {
    "training_iteration", "time_total_s", "time_this_iter_s", "timestamp", "date", "time_since_restore",
    "iterations_since_restore", "timesteps_since_restore", "timesteps_total", "episodes_total", "config",
    "checkpoint_dir_name", "should_checkpoint", "done", "trial_id", "pid", "hostname", "node_ip", "experiment_tag",
    "epoch",
}  # fmt: skip
_STATUS = {"TERMINATED": "completed", "ERROR": "failed"}


def _error_line(trial_path: Path) -> str:
    path = trial_path / "error.txt"
    if not path.is_file():
        return ""
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _summary(trial_path: Path) -> dict[str, Any]:
    path = trial_path / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _status(tune_status: str, summary: dict[str, Any]) -> str:
    if tune_status == "TERMINATED" and not summary:
        return "stopped"
    return _STATUS.get(tune_status, "unfinished")


def results_table(sweep_dir: Path | str, metric: str, mode: str = "min") -> pd.DataFrame:
    """One row per trial of the sweep in ``sweep_dir``, best first, failed trials last."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(Path(sweep_dir).resolve() / EXPERIMENT))
    rows = []
    for trial in analysis.trials:
        path = Path(trial.path)
        summary = _summary(path)
        last = dict(trial.last_result or {})
        row: dict[str, Any] = {"trial_id": trial.trial_id, "status": _status(trial.status, summary)}
        row["error"] = _error_line(path) if trial.status == "ERROR" else ""
        row.update({key: value for key, value in sorted(trial.config.items())})
        row["epochs"] = last.get("epoch", 0)
        row[metric] = last.get(metric, math.nan)
        row.update({k: v for k, v in sorted(last.items()) if k not in _TUNE_KEYS and k != metric})
        row["train_status"] = summary.get("status", "")
        row["wall_time_s"] = summary.get("wall_time_s", math.nan)
        checkpoint = trial.checkpoint
        row["checkpoint"] = str(Path(checkpoint.path) / CHECKPOINT_FILE) if checkpoint is not None else ""
        row["trial_dir"] = str(path)
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    head = ["trial_id", "status", "error", *sorted({k for t in analysis.trials for k in t.config}), "epochs", metric]
    tail = ["train_status", "wall_time_s", "checkpoint", "trial_dir"]
    middle = sorted(set(table.columns) - set(head) - set(tail))
    table = table[head + middle + tail]
    table[metric] = pd.to_numeric(table[metric], errors="coerce")
    table["_failed"] = table["status"] == "failed"
    table = table.sort_values(["_failed", metric], ascending=[True, mode == "min"], na_position="last")
    return table.drop(columns="_failed").reset_index(drop=True)


def best_trial(table: pd.DataFrame, metric: str, mode: str = "min") -> dict[str, Any] | None:
    """The row with the best finite metric among trials that did not fail (None if there is none)."""
    if table.empty:
        return None
    ok = table[(table["status"] != "failed") & table[metric].apply(lambda v: isinstance(v, float) and math.isfinite(v))]
    if ok.empty:
        return None
    index = ok[metric].idxmin() if mode == "min" else ok[metric].idxmax()
    return ok.loc[index].to_dict()


def write_results(sweep_dir: Path | str, metric: str, mode: str = "min") -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """Write ``results.csv``, ``results.parquet`` and ``best.json`` into the sweep directory."""
    sweep_dir = Path(sweep_dir)
    table = results_table(sweep_dir, metric, mode)
    table.to_csv(sweep_dir / "results.csv", index=False)
    table.astype({c: str for c in table.columns if table[c].dtype == object}).to_parquet(
        sweep_dir / "results.parquet", index=False
    )
    best = best_trial(table, metric, mode)
    (sweep_dir / "best.json").write_text(json.dumps(best, indent=2, default=str) if best else "null\n")
    return table, best


def main(argv: list[str] | None = None) -> int:
    """``python -m tune.results DIR``: rewrite and print the results table of a sweep directory."""
    from tune.spec import load_spec

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tune.results SWEEP_DIR", file=sys.stderr)
        return 2
    spec = load_spec(Path(argv[0]) / "sweep.yaml")
    table, best = write_results(argv[0], spec.options.metric, spec.options.mode)
    with pd.option_context("display.max_columns", 20, "display.width", 160):
        print(table.drop(columns=["trial_dir"]).to_string(index=False))
    if best:
        print(f"best trial {best['trial_id']}: {spec.options.metric} = {best[spec.options.metric]:.6g}")
        print(f"best checkpoint: {best['checkpoint']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
