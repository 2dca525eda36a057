"""One evaluation of the objective: a candidate's config, its warm start, its solve, its moments, its record.

A candidate becomes the config ``load_config([conf=..., *shared overrides, *economy.NAME=value])``:

- a candidate the config checks refuse (``lotj.config.validate``; for example ``γ^E (a q − 1)`` above
  ``ρ + δ_f + δ_r + δ_m`` on the support, MODEL.md section 10) is recorded ``refused`` with the check's message;
- otherwise it is solved by ``lotj.train.run.train`` into ``DIR/runs/KEY``, its networks starting from the
  nearest finished trial's on the unit cube of the bounds (``init_from``, ``lotj.train.warm_start``), with
  the config's own seed: every candidate sees the same random numbers where its economy allows;
- a solve that raises, ends non-finite (status ``nan``), leaves its panel unmeasured or a target moment
  null is ``failed``, with the reason; a solve whose ``convergence`` (docs/accuracy.md) is ``not converged`` is
  ``unconverged`` (scored as failed with ``require_convergence``); the rest are ``ok``.

A failed or refused trial's score is ``failure_score``, so the sampler learns to avoid its region.
"""

from __future__ import annotations

import importlib
import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tune.calibrate.objective import Objective
from tune.calibrate.space import Parameter, nearest, overrides

#: the figures of the solve's summary.json kept in the record (accuracy: docs/accuracy.md)
ACCURACY_KEYS = (
    "residual", "residual_final", "w_residual", "v_error_mean", "v_error_upper", "v_error_rms",
    "convergence", "epochs", "sim_status", "sim_firm_size_share_at_cap",
)  # fmt: skip
FINISHED = ("ok", "unconverged")
RECORDS = "records"
RUNS = "runs"


@dataclass
class CalibrationContext:
    """What every evaluation shares (passed to Ray workers)."""

    conf: str
    overrides: list[str]
    params: list[Parameter]
    objective: Objective
    calibration_dir: str
    base_economy: dict[str, Any]  #: the preset's economy (standard deviations of a correlation not searched)
    failure_score: float = 1.0e6
    require_convergence: bool = False
    warm_start: bool = True  #: start from the nearest finished trial's networks (else cold)
    train_fn: str = "lotj.train.run:train"
    extra_overrides: list[str] = field(default_factory=list)  #: per-process (threads, device)

    def economy_overrides(self, candidate: dict[str, float]) -> list[str]:
        return overrides(candidate, self.params, SimpleNamespace(**self.base_economy))


def record_path(calibration_dir: str | Path, key: str) -> Path:
    return Path(calibration_dir) / RECORDS / f"{key}.json"


def read_records(calibration_dir: str | Path, folder: str = RECORDS) -> list[dict[str, Any]]:
    """Every trial record of a calibration directory, in the order they finished."""
    records = [json.loads(p.read_text()) for p in sorted((Path(calibration_dir) / folder).glob("*.json"))]
    return sorted(records, key=lambda r: r.get("finished_at", 0.0))


def warm_start(candidate: dict[str, float], ctx: CalibrationContext) -> str:
    """The run directory of the nearest finished trial (with a checkpoint) on the unit cube; "" for none."""
    done = [
        r for r in read_records(ctx.calibration_dir)
        if r["status"] in FINISHED and (Path(r["run_dir"]) / "checkpoints" / "last.ckpt").is_file()
    ]  # fmt: skip
    index = nearest(candidate, [r["params"] for r in done], ctx.params)
    return "" if index is None else done[index]["run_dir"]


def candidate_config(candidate: dict[str, float], ctx: CalibrationContext, run_dir: Path, init_from: str = ""):
    """The config of a candidate's solve, through the config checks (raises ConfigError when refused)."""
    from lotj.config import load_config

    argv = [f"conf={ctx.conf}", *ctx.overrides, *ctx.extra_overrides, *ctx.economy_overrides(candidate)]
    argv.append(f"out_dir={run_dir}")
    if init_from:
        argv.append(f"init_from={init_from}")
    return load_config(argv)


def evaluate(
    candidate: dict[str, float],
    ctx: CalibrationContext,
    key: str,
    origin: str,
    init_from: str | None = None,
    plugins: list | None = None,
    folder: str = RECORDS,
) -> dict[str, Any]:
    """Evaluate ``candidate`` (module docstring); writes and returns its record ``DIR/<folder>/KEY.json``.

    ``init_from``: the run to start from (None: the nearest finished trial when ``ctx.warm_start``, else cold;
    "": a cold start)."""
    from lotj.errors import ConfigError

    start = time.perf_counter()
    run_dir = Path(ctx.calibration_dir) / RUNS / key
    record: dict[str, Any] = {
        "key": key,
        "origin": origin,
        "params": {p.name: float(candidate[p.name]) for p in ctx.params},
        "economy": {},
        "status": "",
        "reason": "",
        "objective": math.nan,
        "score": ctx.failure_score,
        "moments": {},
        "accuracy": {},
        "init_from": "",
        "run_dir": str(run_dir),
    }
    economy = ctx.economy_overrides(candidate)
    record["economy"] = {o.split("=", 1)[0].removeprefix("economy."): float(o.split("=", 1)[1]) for o in economy}
    if init_from is None:
        source = warm_start(candidate, ctx) if ctx.warm_start else ""
    else:
        source = init_from
    try:
        cfg = candidate_config(candidate, ctx, run_dir, source)
    except ConfigError as exc:
        record.update(status="refused", reason=str(exc))
        return _finish(record, ctx, folder, start)
    record["init_from"] = source
    try:
        summary = resolve(ctx.train_fn)(cfg, plugins=plugins) if plugins else resolve(ctx.train_fn)(cfg)
    except Exception as exc:  # a failed solve is a result of the calibration, not an error of it
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        record.update(status="failed", reason=f"the solve raised {last}")
        return _finish(record, ctx, folder, start)
    summary = dict(summary or {})
    record["accuracy"] = {k: summary.get(k) for k in ACCURACY_KEYS if k in summary}
    moments = summary.get("moments") or {}
    record["moments"] = {k: moments.get(k) for k in ctx.objective.keys}
    if str(summary.get("status", "")).lower() == "nan":
        record.update(status="failed", reason=f"non-finite solve: {summary.get('message', '')}")
    elif not moments:
        record.update(status="failed", reason=f"no moments: {summary.get('measure_error', 'no panel measured')}")
    elif ctx.objective.missing(moments):
        record.update(status="failed", reason=f"null target moments {ctx.objective.missing(moments)}")
    else:
        record["objective"] = ctx.objective.value(moments)
        converged = summary.get("convergence", "not estimated")
        record["status"] = "unconverged" if converged == "not converged" else "ok"
        if record["status"] == "unconverged":
            record["reason"] = "convergence: not converged (docs/accuracy.md)"
    return _finish(record, ctx, folder, start)


def resolve(target: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _finish(record: dict[str, Any], ctx: CalibrationContext, folder: str, start: float) -> dict[str, Any]:
    scored = record["status"] == "ok" or (record["status"] == "unconverged" and not ctx.require_convergence)
    record["score"] = record["objective"] if scored and math.isfinite(record["objective"]) else ctx.failure_score
    record.setdefault("wall_time_s", time.perf_counter() - start)
    record.setdefault("finished_at", time.time())  # a rescored record keeps its place in the finish order
    path = Path(ctx.calibration_dir) / folder / f"{record['key']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=_json_default))
    tmp.replace(path)
    return record


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
