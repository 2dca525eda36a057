"""``python -m tune.calibrate conf=NAME calibrate=FILE [calibrate.OPTION=...] [key=value ...] | resume=DIR``.

- ``conf=NAME``            the preset: its economy is the start point, the rest of it is every solve's config
- ``calibrate=FILE``       targets, bounds and options: ``conf/calibrate/FILE.yaml`` or a path (default ``source``)
- ``calibrate.OPTION=...`` options (``tune.calibrate.spec.CalibrationOptions``): ``calibrate.num_trials=64``,
                           ``calibrate.sampler=cmaes``, ``calibrate.max_concurrent=4``, ``calibrate.resources.gpu=0.5``,
                           ``calibrate.data_median_wage=31.5``, ``calibrate.refine_evals=12``,
                           ``calibrate.address=HOST:PORT``, ``calibrate.name=...``
- ``key=value``            config overrides shared by every solve (``solver.max_epochs=30``)
- ``resume=DIR``           continue a calibration (``calibrate.num_trials=N`` may raise its budget)

Phases, each resumable: the start point's solve (``DIR/runs/start``) and the weighting matrix from its
panel (``weights.json``); the search (``tune.calibrate.search``); with ``calibrate.refine_evals=N``, a local
least-squares refinement from the search's best trial (``tune.calibrate.refine``, ``refine.json``); at the
best trial, the Jacobian and standard errors (``jacobian.csv``, ``standard_errors.csv``); the results table
(``results.csv``, ``best.json``), the source-style table (``best_table.md``) and the trace
(``objective_trace.png``). Exit status: 0 with a best trial, 1 without one (or when the start point fails),
2 for bad input.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lotj.config import Config, load_config
from lotj.errors import ConfigError
from tune.calibrate import inference
from tune.calibrate.evaluate import FINISHED, CalibrationContext, evaluate, read_records, record_path
from tune.calibrate.objective import (
    Objective,
    block_moments,
    floored_variances,
    moment_covariance,
    moment_errors,
    weighting_matrix,
)
from tune.calibrate.records import best_record, write_results
from tune.calibrate.replicate import replicated_moments
from tune.calibrate.report import best_table, trace_figure, write_best_table
from tune.calibrate.search import init_ray, run_search, searched
from tune.calibrate.space import at_bounds, clipped, start_point
from tune.calibrate.spec import (
    CalibrationSpec,
    CliArgs,
    load_spec,
    load_target_file,
    parse_cli,
    resume_options,
    save_spec,
)

SPEC_FILE = "calibration.yaml"
WEIGHTS_FILE = "weights.json"
JACOBIAN = "jacobian"


def prepare(args: CliArgs) -> tuple[CalibrationSpec, Path]:
    """The spec and directory of a new calibration, or of the one to resume."""
    if args.resume:
        if args.overrides or args.conf is not None or args.calibrate is not None:
            raise ConfigError("resume=DIR takes only calibrate.* options; the rest is fixed by calibration.yaml")
        folder = Path(args.resume).resolve()
        spec = resume_options(load_spec(folder / SPEC_FILE), args.options)
        save_spec(spec, folder / SPEC_FILE)
        return spec, folder
    name = args.calibrate or "source"
    options, targets, params, left_out = load_target_file(name, args.options)
    conf = args.conf or "baseline"
    spec = CalibrationSpec(conf, name, list(args.overrides), options, targets, params, left_out)
    base_config(spec)
    stem = Path(name).stem
    folder = (Path(options.out_dir) / (options.name or f"{conf}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}")).resolve()
    if (folder / SPEC_FILE).exists():
        raise ConfigError(f"{folder} already holds a calibration; continue it with resume={folder}")
    folder.mkdir(parents=True, exist_ok=True)
    save_spec(spec, folder / SPEC_FILE)
    return spec, folder


def base_config(spec: CalibrationSpec) -> Config:
    return load_config([f"conf={spec.conf}", *spec.overrides])


def per_trial_overrides(spec: CalibrationSpec) -> list[str]:
    """Threads and device of every solve from the trial's resources; no progress bars."""
    r = spec.options.resources
    out = ["logging.progress_bar=false"]
    if r.cpu >= 1:
        out.append(f"trainer.num_threads={int(r.cpu)}")
    if r.gpu > 0:
        out += ["trainer.accelerator=gpu", "trainer.devices=1"]
    return out


def context(spec: CalibrationSpec, folder: Path, objective: Objective) -> CalibrationContext:
    base = base_config(spec)
    return CalibrationContext(
        conf=spec.conf,
        overrides=list(spec.overrides),
        params=spec.parameters,
        objective=objective,
        calibration_dir=str(folder),
        base_economy={k: v for k, v in asdict(base.economy).items() if not isinstance(v, (list, type(None)))},
        failure_score=spec.options.failure_score,
        require_convergence=spec.options.require_convergence,
        warm_start=spec.options.warm_start,
        train_fn=spec.options.train_fn,
        extra_overrides=per_trial_overrides(spec),
    )


def solve_start(spec: CalibrationSpec, folder: Path) -> dict[str, Any]:
    """The start point's record: solved anew, or taken from ``start_run`` (its summary.json's moments)."""
    path = record_path(folder, "start")
    if path.is_file():
        return json.loads(path.read_text())
    base = base_config(spec)
    moved = clipped(spec.parameters, base.economy)
    if moved:
        warnings.warn(f"the preset's {moved} lie outside their bounds: the start point clips them", stacklevel=2)
    start = start_point(spec.parameters, base.economy)
    keys = list(spec.targets)
    provisional = Objective(keys, [spec.targets[k] for k in keys], np.eye(len(keys)).tolist())
    ctx = context(spec, folder, provisional)
    if spec.options.start_run:
        from lotj.config import config_from_yaml

        run = Path(spec.options.start_run)
        own = start_point(spec.parameters, config_from_yaml(run / "config.yaml").economy)
        if any(not math.isclose(own[k], start[k], rel_tol=1e-9, abs_tol=1e-15) for k in start):
            warnings.warn(f"start_run {run} was solved at {own}, not at the preset's {start}: its point is the start",
                          stacklevel=2)  # fmt: skip
        return adopt_run(own, ctx, run)
    print(f"tune.calibrate: solving the start point into {folder / 'runs' / 'start'}")
    return evaluate(start, ctx, "start", "start", init_from="")


def adopt_run(start: dict[str, float], ctx: CalibrationContext, run: Path) -> dict[str, Any]:
    """A start record from a finished run (``calibrate.start_run``): its moments, accuracy and directory."""
    from tune.calibrate.evaluate import ACCURACY_KEYS, _finish

    summary = json.loads((run / "summary.json").read_text())
    moments = summary.get("moments") or {}
    record = {
        "key": "start", "origin": "start", "params": start, "economy": {}, "status": "ok", "reason": "",
        "objective": ctx.objective.value(moments) if moments else math.nan, "score": math.nan,
        "moments": {k: moments.get(k) for k in ctx.objective.keys},
        "accuracy": {k: summary.get(k) for k in ACCURACY_KEYS if k in summary},
        "init_from": "", "run_dir": str(run.resolve()),
    }  # fmt: skip
    if not moments or ctx.objective.missing(moments):
        record.update(status="failed", reason=f"start_run {run}: missing moments {ctx.objective.missing(moments)}")
    return _finish(record, ctx, "records", time.perf_counter())


def estimate_weights(spec: CalibrationSpec, folder: Path, start: dict[str, Any]) -> dict[str, Any]:
    """The weighting matrix from the solved start economy (``tune.calibrate.objective``); ``weights.json``."""
    path = folder / WEIGHTS_FILE
    if path.is_file():
        return json.loads(path.read_text())
    o = spec.options
    keys = list(spec.targets)
    data = np.array([spec.targets[k] for k in keys])
    model = np.array([float(start["moments"][k]) for k in keys])
    run = Path(start["run_dir"])
    if o.weight_source == "replications":
        print(f"tune.calibrate: the moments' covariance from {o.weight_replications} panels of the start economy")
        rows = replicated_moments(run, keys, o.weight_replications, o.weight_burn_in_years)
        cov = moment_covariance(rows, batch_means=False)
    else:
        cfg = base_config(spec)
        theta = (start["economy"].get("theta_plus", cfg.economy.theta_plus),
                 start["economy"].get("theta_minus", cfg.economy.theta_minus))  # fmt: skip
        rows = block_moments(pd.read_parquet(run / "panel.parquet"), keys, o.weight_block_years, theta)
        if len(rows) < 2:
            warnings.warn(
                f"the start run's panel has {len(rows)} block(s) of {o.weight_block_years} years: "
                "no variance estimate, every moment gets the floor (simulate a longer panel: sim.panel_years)",
                stacklevel=2,
            )
        cov = moment_covariance(rows)
    variances = floored_variances(cov, data, model, o.weight_floor)
    w = weighting_matrix(cov, variances, o.weighting)
    out = {
        "keys": keys,
        "data": data.tolist(),
        "start_model": model.tolist(),
        "sd": np.sqrt(variances).tolist(),
        "floored": (np.nan_to_num(np.diag(cov), nan=0.0) < variances).tolist(),
        "source": o.weight_source,
        "n_rows": len(rows),
        "rows": np.where(np.isfinite(rows), rows, None).tolist(),
        "weighting": o.weighting,
        "weights": w.tolist(),
        "omega": moment_errors(cov, variances).tolist(),
    }
    path.write_text(json.dumps(out, indent=2))
    return out


def rescore_start(start: dict[str, Any], ctx: CalibrationContext) -> dict[str, Any]:
    """The start record under the estimated weights (it was solved before they existed)."""
    from tune.calibrate.evaluate import _finish

    if start["status"] in FINISHED:
        start["objective"] = ctx.objective.value(start["moments"])
    return _finish(start, ctx, "records", time.perf_counter())


def jacobian_phase(spec: CalibrationSpec, folder: Path, ctx: CalibrationContext, best: dict[str, Any],
                   weights: dict[str, Any]) -> tuple[dict[str, float], list[str]]:  # fmt: skip
    """Finite differences at the best trial (warm-started from it, same seed), the Jacobian and the
    standard errors; writes ``jacobian.csv`` and ``standard_errors.csv``; returns the standard errors and
    a warning for each weakly identified parameter."""
    import ray

    o = spec.options
    points = inference.fd_points(best["params"], spec.parameters, o.fd_step)
    # the base point is solved again from the same start as the shifted ones: the differences then hold the
    # same networks' start and the same draws, only the parameter moves
    candidates = [(f"fd_{best['key']}_{p.name}", c) for p, (c, _) in zip(spec.parameters, points)]
    candidates.append((f"fd_{best['key']}_base", dict(best["params"])))
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for key, candidate in candidates:
        path = folder / JACOBIAN / f"{key}.json"
        if path.is_file():
            results[key] = json.loads(path.read_text())
        else:
            todo.append((key, candidate))
    if todo:
        print(f"tune.calibrate: {len(todo)} finite-difference solves at the best trial {best['key']}")
        init_ray(o)
        try:
            task = ray.remote(num_cpus=o.resources.cpu, num_gpus=o.resources.gpu)(evaluate)
            source = best["run_dir"] if o.warm_start else ""  # from the best trial's networks: common starts
            refs = [task.remote(c, ctx, key, "jacobian", init_from=source, folder=JACOBIAN) for key, c in todo]
            for (key, _), record in zip(todo, ray.get(refs)):
                results[key] = record
        finally:
            ray.shutdown()
    keys = ctx.objective.keys
    failed = [key for key, r in results.items() if r["status"] not in FINISHED]
    if failed:
        warnings.warn(f"finite-difference solves failed ({failed}): no standard errors", stacklevel=2)
        return {}, []
    moments = [np.array([float(results[key]["moments"][k]) for k in keys]) for key, _ in candidates]
    base = moments[-1]
    g = inference.jacobian(base, moments[:-1], [h for _, h in points])
    w, omega = np.array(weights["weights"]), np.array(weights["omega"])
    inf = inference.infer(g, w, omega, spec.parameters, o.data_size_ratio, o.weak_identification)
    names = [p.name for p in spec.parameters]
    pd.DataFrame(g, index=keys, columns=names).rename_axis("target").to_csv(folder / "jacobian.csv")
    se_table = pd.DataFrame(
        {
            "parameter": names,
            "value": [best["params"][n] for n in names],
            "se": inf.se,
            "reach": inf.reach,
            "weak": [n in inf.weak for n in names],
        }
    )
    se_table.to_csv(folder / "standard_errors.csv", index=False)
    weak = [
        f"{name}: weakly identified: across its whole range the targets move by fewer than "
        f"{o.weak_identification:g} standard error(s) (reach {inf.reach[names.index(name)]:.3g})"
        for name in inf.weak
    ]
    for line in weak:
        warnings.warn(line, stacklevel=2)
    return dict(zip(names, inf.se.tolist())), weak


def refine_phase(spec: CalibrationSpec, folder: Path, ctx: CalibrationContext) -> None:
    """The local least-squares refinement (``tune.calibrate.refine``) from the best trial of the search,
    each solve a Ray task warm-started from that trial's networks; writes ``refine.json``."""
    import ray

    from tune.calibrate.refine import refine

    o = spec.options
    records = read_records(folder)
    search = [r for r in records if r["origin"] != "refine"]
    start = best_record(search)
    if start is None:
        print("tune.calibrate: no finished trial to refine from", file=sys.stderr)
        return
    recorded = {r["key"]: r for r in records if r["origin"] == "refine"}
    source = start["run_dir"] if o.warm_start else ""
    print(f"tune.calibrate: refining from {start['key']} (objective {start['objective']:.6g}), "
          f"at most {o.refine_evals} solves")  # fmt: skip
    task = ray.remote(num_cpus=o.resources.cpu, num_gpus=o.resources.gpu)(evaluate)

    def solve(candidate: dict[str, float], key: str) -> dict[str, Any]:
        if not ray.is_initialized():  # only when a solve is missing: a resumed refinement reads its own back
            init_ray(o)
        return ray.get(task.remote(candidate, ctx, key, "refine", init_from=source))

    try:
        result = refine(
            start, search, spec.parameters, ctx.objective, solve, max_evals=o.refine_evals,
            radius=o.refine_radius, tol=o.refine_tol, failure_score=o.failure_score, seed=o.seed, recorded=recorded,
            directions=None if o.refine_directions is None else min(o.refine_directions, len(spec.parameters)),
        )  # fmt: skip
    finally:
        if ray.is_initialized():
            ray.shutdown()
    out = {"start": start["key"], "start_objective": start["objective"], **asdict(result)}
    (folder / "refine.json").write_text(json.dumps(out, indent=2))
    print(f"tune.calibrate: refinement ended ({result.message}): best {result.best_key}, "
          f"objective {result.best_objective:.6g}")  # fmt: skip


def run(spec: CalibrationSpec, folder: Path) -> int:
    start = solve_start(spec, folder)
    if start["status"] not in FINISHED:
        print(f"tune.calibrate: the start point failed ({start['reason']}): no weighting matrix", file=sys.stderr)
        return 1
    weights = estimate_weights(spec, folder, start)
    objective = Objective(weights["keys"], weights["data"], weights["weights"])
    ctx = context(spec, folder, objective)
    start = rescore_start(start, ctx)
    print(f"tune.calibrate: objective at the start point {start['objective']:.6g}")
    run_search(folder, ctx, spec.options, start)
    missing = spec.options.num_trials + len(spec.options.points) - searched(folder)
    if spec.options.refine_evals > 0 and missing <= 0:
        refine_phase(spec, folder, ctx)
    names = [p.name for p in spec.parameters]
    table = write_results(folder, names, objective.keys)
    best = best_record(read_records(folder))
    se: dict[str, float] = {}
    weak: list[str] = []
    if best is not None and spec.options.jacobian and missing <= 0:
        se, weak = jacobian_phase(spec, folder, ctx, best, weights)
    status = report(spec, folder, table, best, se, start, weak)
    if missing > 0:  # interrupted (SIGINT, or SIGUSR1 from slurm/tune.sh near the time limit)
        print(f"{missing} trials missing; continue with: python -m tune.calibrate resume={folder}")
        return 1
    return status


def report(spec: CalibrationSpec, folder: Path, table: pd.DataFrame, best: dict[str, Any] | None,
           se: dict[str, float], start: dict[str, Any], weak: list[str] | None = None) -> int:  # fmt: skip
    counts = table["status"].value_counts().to_dict() if not table.empty else {}
    trace_figure(table, folder / "objective_trace.png")
    print(f"\ncalibration {folder.name}: {len(table)} trials {counts}")
    print(f"results: {folder / 'results.csv'}")
    if best is None:
        print("no trial finished", file=sys.stderr)
        return 1
    note = "".join(f"{k}: left out: {why}\n" for k, why in spec.left_out.items())
    note += "".join(f"{line}\n" for line in weak or [])
    cornered = at_bounds(best["params"], spec.parameters)
    for line in cornered:
        warnings.warn(line, stacklevel=2)
    note += "".join(f"{line}\n" for line in cornered)
    write_best_table(folder, best_table(best, spec.parameters, spec.targets, se), note)
    print((folder / "best_table.md").read_text())
    print(f"best trial {best['key']}: objective {best['objective']:.6g} (start point {start['objective']:.6g})")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "help") for a in argv):
        print(__doc__)
        return 0
    try:
        spec, folder = prepare(parse_cli(argv))
    except ConfigError as exc:
        print(f"tune.calibrate: {exc}", file=sys.stderr)
        return 2
    print(f"calibration directory: {folder}")
    return run(spec, folder)
