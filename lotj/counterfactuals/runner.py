"""Solving the economies of a set on Ray: the baseline first, then the counterfactuals warm-started from it.

Every (economy, seed) is one solve, ``lotj.train.run.train`` on the economy's config (MODEL.md section 9.2:
V, χ, W and wages re-solved, not the baseline's decisions re-simulated), in its own run directory
``DIR/economies/NAME/seedS``. Solves run as Ray Tune trials with the sweeps' machinery (``tune.trial``): the
epoch reporter, ``LightningEnvironment`` (a Slurm allocation is not the Trainer's), ``sweep.resources`` per
trial, a local Ray or the cluster of ``sweep.address`` (``slurm/tune.sh``). Two rounds:

1. the baseline of every seed, in parallel; on a local Ray without GPUs the round's solves share out the
   machine's CPUs (:func:`round_one_cpus`: one seed's baseline alone gets them all, as torch threads), since
   nothing else can run until a baseline is solved;
2. every counterfactual of every seed whose baseline solved, in parallel, each with ``init_from`` the
   baseline's run directory of its seed (its V and W networks) and the same seed, so that the economy is
   drawn with the same random numbers where it allows (common random numbers, ``lotj.train.warm_start``).

A run directory's state is read from its files (:func:`run_state`), so ``resume=DIR`` solves only what is
not done: a pending solve starts, an interrupted one continues from its ``checkpoints/last.ckpt``, a failed
one stays failed unless ``sweep.retry_failed=true``. A counterfactual whose baseline failed is not solved
and the table says so.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lotj.counterfactuals.economies import BASELINE, Economy, economy_config
from lotj.counterfactuals.spec import SetSpec

#: Run directories of a set: ``DIR/economies/NAME/seedS``.
RUNS = "economies"
#: Tune's experiments of a set (one per round and invocation): ``DIR/tune/ROUND-TIMESTAMP``.
TUNE_DIR = "tune"
#: Written into a run directory when its solve raised.
ERROR_FILE = "error.txt"
#: The metric the epoch reporter checks for non-finite values.
METRIC = "val_residual"


def run_dir(set_dir: Path | str, economy: str, seed: int) -> Path:
    return Path(set_dir) / RUNS / economy / f"seed{seed}"


def run_state(path: Path) -> str:
    """``done`` (a summary with status ok), ``failed`` (an error, or a summary with another status),
    ``unfinished`` (a checkpoint, no summary) or ``pending`` (nothing yet)."""
    summary = path / "summary.json"
    if summary.is_file():
        return "done" if json.loads(summary.read_text()).get("status") == "ok" else "failed"
    if (path / ERROR_FILE).is_file():
        return "failed"
    if (path / "checkpoints" / "last.ckpt").is_file():
        return "unfinished"
    return "pending"


@dataclass
class SetContext:
    """What every solve of a set shares; passed to the trainable with ``tune.with_parameters``."""

    conf: str
    overrides: list[str]
    economies: dict[str, dict[str, Any]]  #: name -> overrides
    set_dir: str  #: absolute, on storage every node sees
    trials: list[tuple[str, int]]  #: the round's (economy, seed) pairs; a trial's config holds its index
    threads: int = 0  #: torch threads of each solve (``trainer.num_threads``) where the round widened them; 0: as set


def solve(
    context: SetContext, economy: str, seed: int, make_callbacks: Any = None, **train_kwargs: Any
) -> dict[str, Any]:
    """Solve one economy for one seed into its run directory and return the summary.

    A counterfactual starts from the baseline's networks of the same seed (``init_from``) and records its panel
    from the baseline's first panel year on (``sim.panel_from_year``, :func:`baseline_panel_year`); a solve
    with a ``checkpoints/last.ckpt`` and no summary continues from it (``resume``). ``make_callbacks(cfg)`` gives
    extra Trainer callbacks. An exception is written to the run directory's ``error.txt`` and raised again.
    """
    from lotj.train.run import train

    out = run_dir(context.set_dir, economy, seed)
    keys = [f"seed={seed}", f"out_dir={out}"]
    if economy != BASELINE:
        year = baseline_panel_year(context.set_dir, seed)
        if year is not None:
            keys.append(f"sim.panel_from_year={year}")
    if context.threads > 0:
        keys.append(f"trainer.num_threads={context.threads}")
    if run_state(out) == "unfinished":
        keys.append(f"resume={out / 'checkpoints' / 'last.ckpt'}")
    elif economy != BASELINE:
        keys.append(f"init_from={run_dir(context.set_dir, BASELINE, seed)}")
    try:
        cfg = economy_config(context.conf, context.overrides, Economy(economy, context.economies[economy]), *keys)
        callbacks = make_callbacks(cfg) if make_callbacks is not None else []
        summary = train(cfg, callbacks=callbacks, **train_kwargs)
    except Exception:
        out.mkdir(parents=True, exist_ok=True)
        (out / ERROR_FILE).write_text(traceback.format_exc())
        raise
    return summary


def baseline_panel_year(set_dir: Path | str, seed: int) -> int | None:
    """The first year of the baseline's panel (of the simulation clock), or None without a panel.

    The distribution of h settles slowly (workers renew at rate δ_r), so its moments depend on how long the
    economy has been simulated; a warm-started counterfactual trains fewer epochs, and would record its panel
    younger. Every counterfactual records its panel from this year on (``sim.panel_from_year``), simulating on
    under its trained V where it is younger, so that the economies are compared at the same age.
    """
    import pandas as pd

    panel = run_dir(set_dir, BASELINE, seed) / "panel.parquet"
    if not panel.is_file():
        return None
    return int(pd.read_parquet(panel, columns=["year"])["year"].min())


def run_economy(config: dict[str, Any], context: SetContext) -> None:
    """The Ray Tune trainable: one solve (``config["index"]`` into ``context.trials``), reported each epoch
    with the sweeps' reporter; a NaN run or an exception fails the trial."""
    from lightning.pytorch.plugins.environments import LightningEnvironment

    from lotj.config import to_yaml
    from tune.trial import TuneReportCallback, _jsonable, check_summary

    economy, seed = context.trials[config["index"]]
    summary = solve(
        context,
        economy,
        seed,
        make_callbacks=lambda cfg: [TuneReportCallback(METRIC, to_yaml(cfg))],
        plugins=[LightningEnvironment()],
    )
    check_summary(_jsonable(dict(summary)))


def _trial_name(trial: Any, trials: list[tuple[str, int]]) -> str:
    economy, seed = trials[trial.config["index"]]
    return f"{economy}-seed{seed}"


def init_ray(spec: SetSpec) -> None:
    """Join ``sweep.address`` or start a local Ray; a local Ray's workers import this checkout of lotj."""
    import ray

    o = spec.options
    if o.address:
        ray.init(address=o.address)
        return
    root = str(Path(__file__).resolve().parent.parent.parent)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:  # the raylet's workers inherit the environment, not the driver's sys.path
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
    ray.init(num_cpus=o.num_cpus or None, num_gpus=None if o.num_gpus < 0 else o.num_gpus, include_dashboard=False)


def round_one_cpus(spec: SetSpec, n_trials: int, machine_cpus: float) -> int:
    """CPUs (and torch threads) for each baseline solve of round one on a local Ray, or 0 to keep
    ``sweep.resources.cpu``: the machine's CPUs shared evenly between the solves that run at once (at most
    ``sweep.max_concurrent``), when that is more than the resources give. Not on a cluster (``sweep.address``),
    whose nodes may differ, nor with GPUs, whose solves do not run on torch's CPU threads."""
    o = spec.options
    if o.address or o.resources.gpu > 0 or n_trials < 1:
        return 0
    at_once = min(n_trials, o.max_concurrent) if o.max_concurrent > 0 else n_trials
    share = int(machine_cpus // at_once)
    return share if share > o.resources.cpu else 0


def run_round(spec: SetSpec, set_dir: Path, label: str, trials: list[tuple[str, int]], cpus: int = 0) -> None:
    """Solve ``trials`` in parallel as one Tune experiment ``DIR/tune/LABEL-TIMESTAMP`` (Ray is running);
    ``cpus > 0``: each solve reserves that many CPUs and runs as many torch threads (:func:`round_one_cpus`)."""
    from ray import tune as ray_tune

    if not trials:
        return
    o = spec.options
    context = SetContext(
        conf=spec.conf,
        overrides=list(spec.overrides),
        economies={e.name: dict(e.overrides) for e in spec.economies},
        set_dir=str(set_dir),
        trials=list(trials),
        threads=cpus,
    )
    trainable = ray_tune.with_resources(
        ray_tune.with_parameters(run_economy, context=context),
        {"cpu": cpus if cpus > 0 else o.resources.cpu, "gpu": o.resources.gpu},
    )
    tuner = ray_tune.Tuner(
        trainable,
        param_space={"index": ray_tune.grid_search(list(range(len(trials))))},
        tune_config=ray_tune.TuneConfig(
            max_concurrent_trials=o.max_concurrent or None,
            trial_dirname_creator=lambda trial: _trial_name(trial, context.trials),
        ),
        run_config=ray_tune.RunConfig(
            name=f"{label}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(set_dir / TUNE_DIR),
            checkpoint_config=ray_tune.CheckpointConfig(num_to_keep=1),
            failure_config=ray_tune.FailureConfig(max_failures=0, fail_fast=False),
            verbose=o.verbose,
        ),
    )
    tuner.fit()


def to_solve(spec: SetSpec, set_dir: Path, economies: list[str]) -> list[tuple[str, int]]:
    """The (economy, seed) pairs of ``economies`` that still need a solve; failed ones are cleared for a fresh
    start with ``sweep.retry_failed``, else left as they are."""
    pending = []
    for economy in economies:
        for seed in spec.seeds:
            path = run_dir(set_dir, economy, seed)
            state = run_state(path)
            if state == "failed" and spec.options.retry_failed:
                shutil.rmtree(path)
                state = "pending"
            if state in ("pending", "unfinished"):
                pending.append((economy, seed))
    return pending


def run_set(spec: SetSpec, set_dir: Path) -> None:
    """Both rounds (module docstring): the baselines, then the counterfactuals of the seeds whose baseline
    solved."""
    import ray

    counterfactuals = [e.name for e in spec.economies if e.name != BASELINE]
    round_one = to_solve(spec, set_dir, [BASELINE])

    def round_two() -> list[tuple[str, int]]:
        solved = {seed for seed in spec.seeds if run_state(run_dir(set_dir, BASELINE, seed)) == "done"}
        return [(e, s) for e, s in to_solve(spec, set_dir, counterfactuals) if s in solved]

    if not round_one and not round_two():
        print("lotj.counterfactuals: nothing left to solve")
        return
    init_ray(spec)
    try:
        machine = float(ray.cluster_resources().get("CPU", 0.0))
        run_round(spec, set_dir, "baseline", round_one, round_one_cpus(spec, len(round_one), machine))
        # Tune returns normally when stopped (SIGINT, or SIGUSR1 from slurm/tune.sh): a baseline left unfinished
        # means the set was interrupted, and the counterfactuals wait for resume=DIR
        left = [s for s in spec.seeds if run_state(run_dir(set_dir, BASELINE, s)) in ("pending", "unfinished")]
        if left:
            print(f"lotj.counterfactuals: the baseline of seeds {left} did not finish; continue with resume={set_dir}")
            return
        run_round(spec, set_dir, "counterfactuals", round_two())
    finally:
        ray.shutdown()
