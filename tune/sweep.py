"""Ray Tune sweeps: ``python -m tune.sweep conf=smoke tune=arch [sweep.OPTION=...] [key=value ...]``.

- ``conf=NAME``        preset of every trial (default ``baseline``)
- ``tune=SPACE``       search space ``conf/tune/SPACE.yaml`` or a path to a YAML file (default ``arch``)
- ``sweep.OPTION=...`` sweep options (``tune.spec.SweepOptions``): ``sweep.num_samples=16``,
                       ``sweep.max_concurrent=2``, ``sweep.resources.gpu=0.5``, ``sweep.scheduler.name=fifo``,
                       ``sweep.address=HOST:PORT`` (join a running Ray cluster), ``sweep.out_dir=...``
- ``key=value``        config overrides shared by every trial (``solver.max_epochs=5``)
- ``resume=DIR``       continue an interrupted sweep from its directory (with ``sweep.retry_failed=true``
                       failed trials run again)

The sweep directory ``sweep.out_dir/sweep.name`` holds ``sweep.yaml`` (what was asked), ``trials/`` (the
Tune experiment: one folder per trial with its checkpoints and its run directory ``run/``),
``results.csv`` / ``results.parquet`` (one row per trial) and ``best.json``. Exit status: 0 when
every trial ended and one succeeded, 1 when none succeeded or some are unfinished, 2 for bad input.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lotj.config import Config, load_config
from lotj.errors import ConfigError
from tune.results import EXPERIMENT, write_results
from tune.spec import CliArgs, SweepSpec, build_spec, load_spec, param_space, parse_cli, save_spec
from tune.trial import TrialContext, run_trial, trial_dirname

SPEC_FILE = "sweep.yaml"
#: The training function of ``python -m lotj.train``, called by every trial.
TRAIN_FN = "lotj.train.run:train"


def sweep_name(spec: SweepSpec) -> str:
    """``sweep.name``, or ``CONF-SPACE-YYYYmmdd-HHMMSS``."""
    if spec.options.name:
        return spec.options.name
    return f"{spec.conf}-{Path(spec.tune).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def new_sweep_dir(spec: SweepSpec) -> Path:
    """Create the sweep directory (absolute); refuse to reuse one that already holds a sweep."""
    path = (Path(spec.options.out_dir) / sweep_name(spec)).resolve()
    if (path / SPEC_FILE).exists():
        raise ConfigError(f"{path} already holds a sweep; continue it with resume={path} or pick another sweep.name")
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_resume(path: str) -> Path:
    """``resume=DIR`` accepts the sweep directory or its ``trials/`` experiment folder."""
    folder = Path(path).resolve()
    if folder.name == EXPERIMENT and (folder.parent / SPEC_FILE).is_file():
        folder = folder.parent
    if not (folder / SPEC_FILE).is_file() or not (folder / EXPERIMENT).is_dir():
        raise ConfigError(f"resume={path}: not a sweep directory (needs {SPEC_FILE} and {EXPERIMENT}/)")
    return folder


def base_config(spec: SweepSpec) -> Config:
    return load_config([f"conf={spec.conf}", *spec.overrides])


def init_ray(spec: SweepSpec) -> None:
    """Join ``sweep.address`` or start a local Ray with ``sweep.num_cpus`` / ``sweep.num_gpus``."""
    import ray

    o = spec.options
    if o.address:
        ray.init(address=o.address)
    else:
        ray.init(
            num_cpus=o.num_cpus or None,
            num_gpus=None if o.num_gpus < 0 else o.num_gpus,
            include_dashboard=False,
        )


def max_epochs(cfg: Config) -> int:
    """Epochs a trial can report: each stage's ``max_epochs`` (``solver`` for V, ``wsolver`` for W)."""
    groups = {"v": cfg.solver, "w": getattr(cfg, "wsolver", cfg.solver)}
    return sum(groups[stage].max_epochs for stage in cfg.solver.stages)


def make_scheduler(spec: SweepSpec, base: Config):
    """ASHA over epochs (``training_iteration``: one report per epoch), or FIFO (no early stopping)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    s = spec.options.scheduler
    if s.name == "fifo":
        return FIFOScheduler()
    # one more than the epochs a trial can run: ASHA stops a trial that reaches max_t at that report, before
    # the training function returns its summary; a trial that runs all its epochs should end by itself
    max_t = max_epochs(base) + 1
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max_t,
        grace_period=min(s.grace_period, max_t - 1),
        reduction_factor=s.reduction_factor,
    )


def trial_context(spec: SweepSpec, sweep_dir: Path, base: Config, train_fn: str = TRAIN_FN) -> TrialContext:
    from lotj.train.logging import wandb_mode

    uses_wandb = base.logging.logger == "wandb" or "logging.logger" in spec.space
    return TrialContext(
        conf=spec.conf,
        overrides=list(spec.overrides),
        experiment_dir=str(sweep_dir / EXPERIMENT),
        metric=spec.options.metric,
        wandb_mode=wandb_mode() if uses_wandb else "disabled",
        wandb_group=base.logging.group or sweep_dir.name,
        train_fn=train_fn,
    )


def run(spec: SweepSpec, sweep_dir: Path, resume: bool, train_fn: str = TRAIN_FN) -> int:
    """Run (or resume) the Tune experiment of ``spec`` in ``sweep_dir``, then write and print the results.

    ``train_fn`` (``module:function``) is the training function each trial calls, with the signature of
    ``lotj.train.run.train``; it must be importable on every Ray node.
    """
    import ray
    from ray import tune as ray_tune

    o = spec.options
    base = base_config(spec)
    context = trial_context(spec, sweep_dir, base, train_fn)
    trainable = ray_tune.with_resources(
        ray_tune.with_parameters(run_trial, context=context), {"cpu": o.resources.cpu, "gpu": o.resources.gpu}
    )
    init_ray(spec)
    try:
        if resume:
            tuner = ray_tune.Tuner.restore(
                str(sweep_dir / EXPERIMENT),
                trainable,
                resume_unfinished=True,
                resume_errored=False,
                restart_errored=o.retry_failed,
            )
        else:
            tuner = ray_tune.Tuner(
                trainable,
                param_space=param_space(spec.space),
                tune_config=ray_tune.TuneConfig(
                    metric=o.metric,
                    mode=o.mode,
                    scheduler=make_scheduler(spec, base),
                    num_samples=o.num_samples,
                    max_concurrent_trials=o.max_concurrent or None,
                    trial_dirname_creator=trial_dirname,
                ),
                run_config=ray_tune.RunConfig(
                    name=EXPERIMENT,
                    storage_path=str(sweep_dir),
                    checkpoint_config=ray_tune.CheckpointConfig(num_to_keep=o.num_to_keep),
                    failure_config=ray_tune.FailureConfig(max_failures=o.max_failures, fail_fast=False),
                    verbose=o.verbose,
                ),
            )
        tuner.fit()
    finally:
        ray.shutdown()
    return report(sweep_dir, spec)


def report(sweep_dir: Path, spec: SweepSpec) -> int:
    """Write the results table and best trial; print them; the exit status of the sweep."""
    import pandas as pd

    metric = spec.options.metric
    table, best = write_results(sweep_dir, metric, spec.options.mode)
    shown = [c for c in table.columns if c not in ("trial_dir", "checkpoint")]
    print()
    with pd.option_context("display.max_columns", 30, "display.width", 200, "display.max_colwidth", 60):
        print(table[shown].to_string(index=False) if not table.empty else "(no trials)")
    counts = table["status"].value_counts().to_dict() if not table.empty else {}
    print(f"\nsweep {sweep_dir.name}: {len(table)} trials {counts}")
    print(f"results: {sweep_dir / 'results.csv'}")
    unfinished = counts.get("unfinished", 0)
    if unfinished:
        print(f"{unfinished} trials unfinished; continue with: python -m tune.sweep resume={sweep_dir}")
    if best is None:
        print("no trial succeeded", file=sys.stderr)
        return 1
    print(f"best trial {best['trial_id']}: {metric} = {best[metric]:.6g}")
    print(f"best checkpoint: {best['checkpoint']}")
    return 0 if not unfinished else 1


def prepare(args: CliArgs) -> tuple[SweepSpec, Path, bool]:
    """The spec and directory of a new sweep, or of the sweep to resume."""
    if args.resume:
        if args.overrides or args.conf is not None or args.tune is not None:
            raise ConfigError("resume=DIR takes only sweep.* options; the rest is fixed by the sweep's sweep.yaml")
        sweep_dir = resolve_resume(args.resume)
        return load_spec(sweep_dir / SPEC_FILE, args.sweep), sweep_dir, True
    spec = build_spec(args)
    sweep_dir = new_sweep_dir(spec)
    save_spec(spec, sweep_dir / SPEC_FILE)
    return spec, sweep_dir, False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "help") for a in argv):
        print(__doc__)
        return 0
    try:
        spec, sweep_dir, resume = prepare(parse_cli(argv))
        base_config(spec)
    except ConfigError as exc:
        print(f"tune.sweep: {exc}", file=sys.stderr)
        return 2
    print(f"sweep directory: {sweep_dir}")
    return run(spec, sweep_dir, resume)


if __name__ == "__main__":
    raise SystemExit(main())
