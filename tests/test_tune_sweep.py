"""End-to-end sweeps on a local Ray (2 CPUs) with the real training function and tiny configs.

Each test runs ``python -m tune.sweep`` in a subprocess, as a user would. No test depends on how fast
the machine is: a subprocess's time limit (``HANG_GUARD_S``) only ends a sweep that hangs, an order of
magnitude beyond a normal run (about a minute on 2 shared cores), and the interrupt of the resumed sweep
is sent on an event (its checkpoint on disk), not after a sleep. Timings belong in
``benchmarks/sweep_overhead.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lotj.config import config_from_yaml

ROOT = Path(__file__).resolve().parent.parent

#: A hang guard for each sweep subprocess, not a speed requirement (module docstring).
HANG_GUARD_S = 1800

#: A smoke economy that trains V for two short epochs (no W stage).
TINY = [
    "conf=smoke",
    "solver.stages=[v]",
    "solver.max_epochs=2",
    "solver.steps_per_epoch=2",
    "solver.batch_size=32",
    "solver.n_omega=256",
    "solver.n_heldout=64",
    "sim.n_firms=100",
    "sim.burn_in_years=0.5",
    "sim.years_per_epoch=0.2",
]


def sweep(tmp_path: Path, space: str, *args: str, env: dict[str, str] | None = None, timeout: float = HANG_GUARD_S):
    """Run ``python -m tune.sweep`` on a local Ray with 2 CPUs; returns the finished process."""
    space_file = tmp_path / "space.yaml"
    space_file.write_text(space)
    argv = [
        sys.executable,
        "-m",
        "tune.sweep",
        *TINY,
        f"tune={space_file}",
        f"sweep.out_dir={tmp_path / 'sweeps'}",
        "sweep.num_cpus=2",
        "sweep.verbose=0",
        *args,
    ]
    return run(argv, env, timeout)


def run(argv: list[str], env: dict[str, str] | None, timeout: float) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_DEDUP_LOGS": "0", **(env or {})}
    return subprocess.run(argv, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


def table_of(sweep_dir: Path) -> pd.DataFrame:
    return pd.read_csv(sweep_dir / "results.csv")


GRID_WIDTHS = """
sweep:
  num_samples: 1
  max_concurrent: 2
  resources: {cpu: 1, gpu: 0}
  scheduler: {name: asha, grace_period: 1, reduction_factor: 2}
space:
  net.rho_width: {grid: [16, 32]}
"""


def test_two_trial_sweep_writes_table_checkpoints_and_best(tmp_path):
    proc = sweep(tmp_path, GRID_WIDTHS, "sweep.name=two")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep_dir = tmp_path / "sweeps" / "two"
    table = table_of(sweep_dir)
    assert len(table) == 2 and set(table["net.rho_width"]) == {16, 32}
    assert set(table["status"]) <= {"completed", "stopped"} and "completed" in set(table["status"])
    assert table["error"].isna().all()
    parquet = pd.read_parquet(sweep_dir / "results.parquet")
    assert list(parquet["trial_id"]) == list(table["trial_id"])

    for _, row in table.iterrows():
        assert math.isfinite(row["val_residual"]) and row["epochs"] >= 1
        ckpt = Path(row["checkpoint"])
        assert ckpt.is_file() and ckpt.is_relative_to(Path(row["trial_dir"]))
        # the trial's run directory sits inside its Tune trial directory and holds its resolved config
        run_dir = Path(row["trial_dir"]) / "run"
        cfg = config_from_yaml(run_dir / "config.yaml")
        assert cfg.net.rho_width == row["net.rho_width"] and Path(cfg.out_dir) == run_dir
        assert cfg.trainer.num_threads == 1 and cfg.logging.progress_bar is False
        assert config_from_yaml(ckpt.parent / "config.yaml").net.rho_width == row["net.rho_width"]

    best = json.loads((sweep_dir / "best.json").read_text())
    assert best["val_residual"] == table["val_residual"].min()
    assert best["trial_id"] == table.loc[table["val_residual"].idxmin(), "trial_id"]
    printed = re.search(r"best checkpoint: (\S+)", proc.stdout).group(1)
    assert printed == best["checkpoint"]

    # resuming a finished sweep runs nothing again and rewrites the same table
    again = run([sys.executable, "-m", "tune.sweep", f"resume={sweep_dir}", "sweep.num_cpus=2"], None, HANG_GUARD_S)
    assert again.returncode == 0, again.stderr[-3000:]
    assert table_of(sweep_dir)[["trial_id", "status", "epochs"]].equals(table[["trial_id", "status", "epochs"]])


NAN_LR = """
sweep:
  num_samples: 1
  resources: {cpu: 1, gpu: 0}
  scheduler: {name: fifo}
space:
  solver.lr: {grid: [1.0e-3, 1.0e+300]}
"""


@pytest.mark.slow  # a second Ray sweep: 2 min of the default suite on 2 shared cores; the two-trial one stays
def test_diverging_trial_is_recorded_as_failed_and_the_other_completes(tmp_path):
    proc = sweep(
        tmp_path,
        NAN_LR,
        "sweep.name=nan",
        "logging.logger=wandb",
        "solver.grad_clip=0.0",
        env={"WANDB_MODE": "offline"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep_dir = tmp_path / "sweeps" / "nan"
    table = table_of(sweep_dir).set_index("solver.lr")
    good, bad = table.loc[1e-3], table.loc[1e300]
    assert good["status"] == "completed" and math.isfinite(good["val_residual"])
    assert bad["status"] == "failed"
    assert re.search(r"nan|non-finite|diverge", str(bad["error"]), re.IGNORECASE), bad["error"]
    assert json.loads((sweep_dir / "best.json").read_text())["trial_id"] == good["trial_id"]

    # every trial logged to W&B offline: its own run, one group named after the sweep
    infos = []
    for _, row in table.iterrows():
        summary_file = Path(row["trial_dir"]) / "lotj_summary.json"
        if summary_file.is_file() and "wandb" in json.loads(summary_file.read_text()):
            infos.append(json.loads(summary_file.read_text())["wandb"])
    assert infos, "no trial recorded its W&B run"
    assert all(info["group"] == "nan" and info["mode"] == "offline" for info in infos)
    # one run id per trial (offline-run-DATE-ID); the measurement at the end of a completed run resumes its run,
    # a second offline segment with the same id (lotj.measure.after_run)
    for trial in (sweep_dir / "trials").glob("trial_*"):
        ids = {r.name.rsplit("-", 1)[-1] for r in trial.glob("run/wandb/offline-run-*")}
        assert len(ids) == 1, (trial, ids)
    runs = sorted((sweep_dir / "trials").glob("trial_*/run/wandb/offline-run-*"))
    assert len({r.name.rsplit("-", 1)[-1] for r in runs}) == 2


LONG_FIFO = """
sweep:
  num_samples: 1
  resources: {cpu: 1, gpu: 0}
  scheduler: {name: fifo}
space:
  net.rho_width: {grid: [16, 32]}
"""


@pytest.mark.slow
def test_interrupted_sweep_resumes_from_its_directory(tmp_path):
    """SIGINT stops the sweep after the first checkpoints; resume=DIR finishes it from them.

    The interrupt is sent on an event, the second checkpoint of a trial on disk (checked every 0.1 s),
    after which both trials have ten more epochs to run: it lands mid-sweep however fast the machine."""
    import signal
    import time

    space_file = tmp_path / "space.yaml"
    space_file.write_text(LONG_FIFO)
    epochs = 12
    argv = [sys.executable, "-m", "tune.sweep", *TINY, f"solver.max_epochs={epochs}", f"tune={space_file}"]
    argv += [f"sweep.out_dir={tmp_path / 'sweeps'}", "sweep.name=int", "sweep.num_cpus=2", "sweep.verbose=0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sweep_dir = tmp_path / "sweeps" / "int"
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # a second checkpoint of some trial (only the latest is kept, so any index >= 1)
    while not [c for c in sweep_dir.glob("trials/trial_*/checkpoint_*") if not c.name.endswith("_000000")]:
        if proc.poll() is not None:
            pytest.fail("the sweep ended before its second checkpoint: " + proc.stdout.read()[-3000:])
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 1, out[-3000:]
    before = table_of(sweep_dir)
    assert (before["status"] == "unfinished").any() and (before["epochs"] < epochs).any()

    again = run([sys.executable, "-m", "tune.sweep", f"resume={sweep_dir}", "sweep.num_cpus=2"], None, HANG_GUARD_S)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    after = table_of(sweep_dir)
    assert set(after["status"]) == {"completed"} and set(after["epochs"]) == {epochs}
    for trial_dir in after["trial_dir"]:
        reported = pd.read_csv(Path(trial_dir) / "progress.csv")["epoch"].tolist()
        assert reported[-1] == epochs and reported[0] == 1, reported
        # continued from its checkpoint, not from the start: the epochs run in at most two increasing
        # stretches, and the resumed one starts after epoch 1. An epoch reported after the sweep's last
        # saved state (between a trial's report and the interrupt) is run again, which Tune allows.
        breaks = [i for i in range(1, len(reported)) if reported[i] != reported[i - 1] + 1]
        assert len(breaks) <= 1, reported
        if breaks:
            restart = reported[breaks[0]]
            assert 1 < restart <= reported[breaks[0] - 1] + 1, reported
        assert sorted(set(reported)) == list(range(1, epochs + 1)), reported


@pytest.mark.slow
def test_tune_sh_runs_a_real_sweep_on_one_node(tmp_path):
    """slurm/tune.sh with a real Ray and the real sweep; only scontrol, srun and hostname are stubbed."""
    import random
    import shutil
    import time

    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name in ("scontrol", "srun", "hostname"):
        (stubs / name).symlink_to(ROOT / "tests" / "stubs" / name)
    space_file = tmp_path / "space.yaml"
    space_file.write_text(GRID_WIDTHS)
    ray_tmp = Path(f"/tmp/lotj-ray-{os.getpid()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RAY_", "LOTJ_"))}
    env.update(
        PATH=f"{stubs}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        STUB_LOG=str(tmp_path / "stub.log"),
        SLURM_JOB_ID=str(random.randint(1, 249)),
        SLURM_JOB_NODELIST="localnode",
        SLURM_CPUS_PER_TASK="2",
        SLURM_SUBMIT_DIR=str(ROOT),
        LOTJ_PYTHON=sys.executable,
        LOTJ_RAY_HEAD_IP="127.0.0.1",
        LOTJ_RAY_PORT_BASE=str(random.randrange(20000, 40000, 200)),
        LOTJ_RAY_TMPDIR=str(ray_tmp),
        LOTJ_RAY_TIMEOUT="120",
    )
    args = [*TINY, f"tune={space_file}", f"sweep.out_dir={tmp_path / 'sweeps'}", "sweep.name=sh", "sweep.verbose=0"]
    try:
        proc = subprocess.run(
            ["bash", str(ROOT / "slurm" / "tune.sh"), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD_S,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        table = table_of(tmp_path / "sweeps" / "sh")
        assert len(table) == 2 and "completed" in set(table["status"])
        assert "Ray stopped" in proc.stdout
        # Ray's processes end within seconds of the SIGTERM; the bound is a hang guard
        deadline = time.monotonic() + 120
        while left := subprocess.run(["pgrep", "-f", str(ray_tmp)], capture_output=True, text=True).stdout.split():
            if time.monotonic() > deadline:
                pytest.fail(f"Ray processes still running two minutes after the SIGTERM: {left}")
            time.sleep(0.5)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
