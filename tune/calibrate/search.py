"""The global search: Optuna's sampler through Ray Tune's ``OptunaSearch``, trials in parallel.

Samplers (``calibrate.sampler``):

- ``tpe``: Optuna's Tree-structured Parzen Estimator, multivariate, with the constant liar for parallel
  trials: robust to a noisy objective, to failed regions scored ``failure_score``, and useful from few trials;
- ``cmaes``: Optuna's CMA-ES (the ``cmaes`` package) centred on the start point: better once the region is
  right and the budget is a few hundred trials.

The Optuna study lives in ``DIR/optuna.db`` (SQLite): the start point is in it as a finished trial, the
given ``points`` are queued in it before the sampler's own candidates, and every finished trial is told to
it. ``resume=DIR`` reopens the study, so the sampler continues from everything it saw, and runs the trials
still missing (``num_trials`` counts the search's trials, ``points`` included). Each session is one Tune
experiment ``DIR/search_N``; a trial cut off by an interruption leaves no record and is run again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tune.calibrate.evaluate import CalibrationContext, evaluate, read_records
from tune.calibrate.space import Parameter
from tune.calibrate.spec import CalibrationOptions

STUDY = "calibration"
METRIC = "score"


def distributions(params: list[Parameter]) -> dict[str, Any]:
    import optuna

    return {p.name: optuna.distributions.FloatDistribution(p.lower, p.upper, log=p.log) for p in params}


def make_sampler(options: CalibrationOptions, start: dict[str, float]) -> Any:
    import optuna

    startup = {} if options.startup_trials is None else {"n_startup_trials": options.startup_trials}
    if options.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(x0=dict(start), seed=options.seed, **startup)
    return optuna.samplers.TPESampler(seed=options.seed, multivariate=True, constant_liar=True, **startup)


def storage_url(calibration_dir: Path) -> str:
    return f"sqlite:///{calibration_dir / 'optuna.db'}"


def open_study(calibration_dir: Path, params: list[Parameter], start: dict[str, Any], points: list[dict]) -> Any:
    """Create (or reopen) the study; a new one gets the start point's score and the queued ``points``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage_url(calibration_dir), study_name=STUDY, direction="minimize", load_if_exists=True
    )
    if not study.trials:
        dists = distributions(params)
        study.add_trial(optuna.trial.create_trial(params=start["params"], distributions=dists, value=start["score"]))
        for point in points:
            study.enqueue_trial(point)
    return study


def searched(calibration_dir: Path) -> int:
    """Trials of the search already recorded (given points included; the start point and the refinement's
    solves not counted)."""
    return sum(1 for r in read_records(calibration_dir) if r["origin"] in ("point", "search"))


def search_trial(config: dict[str, Any], context: CalibrationContext, points: list[dict[str, float]]) -> None:
    """The Tune trainable: evaluate one candidate, report its score."""
    from lightning.pytorch.plugins.environments import LightningEnvironment
    from ray import tune as ray_tune

    candidate = {p.name: float(config[p.name]) for p in context.params}
    is_point = any(all(math.isclose(candidate[k], float(v), rel_tol=1e-12) for k, v in pt.items()) for pt in points)
    key = f"trial_{ray_tune.get_context().get_trial_id()}"
    # the Trainer must not take a Slurm allocation as its own (tune/trial.py)
    record = evaluate(candidate, context, key, "point" if is_point else "search", plugins=[LightningEnvironment()])
    ray_tune.report({METRIC: float(record["score"]), "status": record["status"]})


def init_ray(options: CalibrationOptions) -> None:
    import ray

    if options.address:
        ray.init(address=options.address, log_to_driver=False)
    else:
        ray.init(num_cpus=options.num_cpus or None, include_dashboard=False, log_to_driver=False)


def run_search(calibration_dir: Path, context: CalibrationContext, options: CalibrationOptions,
               start: dict[str, Any]) -> int:  # fmt: skip
    """Run the trials still missing; returns how many were started."""
    import ray
    from ray import tune as ray_tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    remaining = options.num_trials + len(options.points) - searched(calibration_dir)
    if remaining <= 0:
        return 0
    import optuna

    open_study(calibration_dir, context.params, start, [dict(p) for p in options.points])
    searcher = OptunaSearch(
        space=distributions(context.params),
        metric=METRIC,
        mode="min",
        sampler=make_sampler(options, start["params"]),
        storage=optuna.storages.RDBStorage(storage_url(calibration_dir)),
        study_name=STUDY,
    )
    session = 1 + len(list(calibration_dir.glob("search_*")))
    trainable = ray_tune.with_resources(
        ray_tune.with_parameters(search_trial, context=context, points=[dict(p) for p in options.points]),
        {"cpu": options.resources.cpu, "gpu": options.resources.gpu},
    )
    init_ray(options)
    try:
        tuner = ray_tune.Tuner(
            trainable,
            tune_config=ray_tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=options.max_concurrent),
                num_samples=remaining,
                trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
            ),
            run_config=ray_tune.RunConfig(
                name=f"search_{session}",
                storage_path=str(calibration_dir),
                failure_config=ray_tune.FailureConfig(max_failures=0, fail_fast=False),
                verbose=0,
            ),
        )
        tuner.fit()
    finally:
        ray.shutdown()
    return remaining
