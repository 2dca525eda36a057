"""The measurement at the end of ``python -m lotj.train`` (:func:`measure_run`).

Measures the run's ``panel.parquet`` with the economy's θ±, writes the measurement into the run directory
(:func:`lotj.measure.output.write_measurement`; ``python -m lotj.report`` adds ``report.md`` and its figures
later), and returns the keys added to ``summary.json``: ``moments`` (moments.json's dict) and
``measure_seconds``; or ``measure_error`` when the panel cannot be measured (the run itself is not failed
for it). With ``logging.logger=wandb`` the moments, the targets table and the report's figures
(:func:`lotj.report.build_report`) go to the run's W&B run (resumed by its id; offline when W&B is, nothing
when ``WANDB_MODE=disabled``).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any


def measure_run(cfg: Any, out_dir: str | Path, loggers: list | None = None) -> dict[str, Any]:
    """Measure and report the run in ``out_dir`` (module docstring). ``cfg``: the run's :class:`lotj.config.Config`;
    ``loggers``: the run's Lightning loggers (a W&B logger among them gives the run id to log to)."""
    from lotj.measure.moments import measure
    from lotj.measure.output import write_measurement

    out = Path(out_dir)
    start = time.perf_counter()
    try:
        import pandas as pd

        panel = pd.read_parquet(out / "panel.parquet", engine="pyarrow")
        m = measure(panel, cfg.economy.theta_plus, cfg.economy.theta_minus, progress=False)
        write_measurement(m, out)
    except Exception as exc:  # a measurement problem must not lose the solved run
        warnings.warn(f"lotj.measure: the run's panel was not measured: {exc}", stacklevel=2)
        return {"measure_error": f"{type(exc).__name__}: {exc}"}
    if getattr(cfg.logging, "logger", "") == "wandb":
        log_to_wandb(cfg, out, m, loggers or [])
    return {"moments": m.moments, "measure_seconds": time.perf_counter() - start}


def log_to_wandb(cfg: Any, out: Path, m: Any, loggers: list) -> None:
    """Log the moments, targets.csv and the report's figures to the run's W&B run (module docstring)."""
    import os

    import pandas as pd

    run_id = next((lg.version for lg in loggers if type(lg).__name__ == "WandbLogger"), None)
    if os.environ.get("WANDB_MODE") == "disabled":
        return
    import wandb

    kwargs: dict[str, Any] = {"project": cfg.logging.project, "dir": str(out), "resume": "allow"}
    if run_id:
        kwargs["id"] = str(run_id)
    if cfg.logging.group:
        kwargs["group"] = cfg.logging.group
    try:
        from lotj.report import build_report

        paths = build_report(out, m)
        moments = m.moments
        run = wandb.init(**kwargs, settings=wandb.Settings(init_timeout=60, silent=True, console="off"))
        flat = {f"moments/{k}": v for k, v in moments.items() if isinstance(v, (int, float))}
        targets = pd.read_csv(out / "targets.csv")
        run.log(
            {
                **flat,
                "measure/targets": wandb.Table(dataframe=targets.astype({"note": str})),
                **{f"figures/{k}": wandb.Image(str(p)) for k, p in paths.items() if p.suffix == ".png"},
            }
        )
        run.finish()
    except Exception as exc:  # W&B is a convenience: the files in out_dir are the record
        warnings.warn(f"lotj.measure: nothing logged to W&B: {exc}", stacklevel=2)
