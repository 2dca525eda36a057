"""slurm/tune.sh and slurm/train.sh under a real Slurm: the single-node one of slurm/local/up.sh.

Slow tests (``python -m pytest -m slow tests/test_slurm_real.py``). The module's fixture brings the local
Slurm up with ``slurm/local/up.sh --no-install``, or finds it running; it never installs packages (no
network in tests): without slurm-wlm, or without root, the tests skip with up.sh's reason, and
``sudo slurm/local/up.sh`` installs it. Daemons the fixture started are stopped with ``slurm/local/down.sh``
at the end.

Jobs run from the repository root with this interpreter's environment (its directory first on PATH, so that
``python`` and ``ray`` are this virtual environment's), their logs and results under a temporary directory.
Each job is awaited through ``scontrol show job`` (the local Slurm has no accounting, so ``sacct`` has
nothing; finished jobs stay visible for MinJobAge), until it leaves the pending and running states; the
deadline is only a hang guard. A job passes when Slurm says COMPLETED with exit code 0, its results are
written, its log holds no error line of Slurm or Python, and no process of its Ray is left on the node.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
UP, DOWN = ROOT / "slurm" / "local" / "up.sh", ROOT / "slurm" / "local" / "down.sh"
#: seconds after which a job counts as hung (it is cancelled and the test fails); a two-trial sweep takes
#: about 2 minutes on an idle 2-core machine
HANG_GUARD = 900
#: what must not appear in a job's log: Slurm's step errors and cancellations, a killed task, a Python crash
ERROR_LINES = re.compile(r"srun: error|forcing job termination|CANCELLED|Killed|Traceback|slurmstepd\S*: error")
#: a short sweep: two trials (a grid of two learning rates, the smoke network), two epochs of V alone each;
#: the shipped `arch` space may draw networks that take many minutes on two cores
SPACE = """sweep:
  num_samples: 1
  scheduler: {name: fifo}
space:
  solver.lr: {grid: [1.0e-3, 3.0e-3]}
"""
SHORT = ["solver.max_epochs=2", "solver.steps_per_epoch=20", "solver.stages=[v]", "sim.n_firms=200"]


@pytest.fixture(scope="module")
def local_slurm():
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    up = subprocess.run([str(UP), "--no-install"], capture_output=True, text=True, timeout=300)
    if up.returncode == 3:
        pytest.skip(up.stderr.strip())
    assert up.returncode == 0, up.stdout + up.stderr
    yield up.stdout
    if "started now" in up.stdout:
        down = subprocess.run([str(DOWN)], capture_output=True, text=True, timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr


def job_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "LOTJ_", "RAY_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["LOTJ_PYTHON"] = sys.executable
    env.setdefault("WANDB_MODE", "disabled")
    return env


def submit(script: str, sbatch_args: list[str], args: list[str], out: Path) -> str:
    """Submit ``slurm/SCRIPT`` from the repository root; returns the job id."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["sbatch", "--parsable", f"--output={out}/%x-%j.out", *sbatch_args, f"slurm/{script}", *args]
    done = subprocess.run(cmd, cwd=ROOT, env=job_env(), capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip().split(";")[0]


def job_info(job: str) -> dict[str, str]:
    """``scontrol show job -o JOB`` as a dict (JobState, ExitCode, StdOut, ...)."""
    line = subprocess.run(
        ["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return dict(item.split("=", 1) for item in line.split() if "=" in item)


def wait_for(job: str) -> dict[str, str]:
    """Poll the job until Slurm says it has ended; cancel it and fail after the hang guard."""
    deadline = time.monotonic() + HANG_GUARD
    while True:
        info = job_info(job)
        if info["JobState"] not in {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED"}:
            return info
        if time.monotonic() > deadline:
            subprocess.run(["scancel", job], timeout=60)
            pytest.fail(f"job {job} still {info['JobState']} after {HANG_GUARD} s (cancelled); log {info['StdOut']}")
        time.sleep(2)


def leftover_processes(marker: str) -> list[str]:
    """Command lines of this machine's processes that name ``marker`` (e.g. a job's Ray temp dir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmd:
                found.append(f"{proc.name}: {cmd[:200]}")
    return found


def check_clean(job: str, info: dict[str, str], state: str, exit_code: int) -> list[str]:
    """The job ended in ``state`` with ``exit_code``, its log has no error line; returns the log's lines."""
    log = Path(info["StdOut"]).read_text()
    assert (info["JobState"], info["ExitCode"]) == (state, f"{exit_code}:0"), log[-3000:]
    errors = [line for line in log.splitlines() if ERROR_LINES.search(line)]
    assert not errors, "\n".join(errors)
    return log.rstrip().splitlines()


def check_ray_gone(job: str, lines: list[str]) -> None:
    """The log ends with the sweep's status and Ray stopped; no process of the job's Ray is left."""
    assert lines[-1] == "tune.sh: Ray stopped", "\n".join(lines[-20:])
    temp = next(line.split("Ray temp dir ")[1].split(",")[0] for line in lines if "Ray temp dir " in line)
    assert temp.endswith(f"-{job}")
    assert not leftover_processes(temp + "/") and not leftover_processes(f"--temp-dir={temp}")
    shutil.rmtree(temp, ignore_errors=True)  # Ray's logs of the job


@pytest.fixture(scope="module")
def sweep(local_slurm, tmp_path_factory):
    """The two-trial sweep, run once for the tests below: (job id, job info, sweep directory)."""
    out = tmp_path_factory.mktemp("slurm-tune")
    (out / "space.yaml").write_text(SPACE)
    args = ["conf=smoke", f"tune={out / 'space.yaml'}", *SHORT, f"sweep.out_dir={out / 'sweeps'}", "sweep.name=real"]
    job = submit("tune.sh", ["--nodes=1", "--cpus-per-task=2", "--gpus-per-task=0"], args, out)
    return job, wait_for(job), out / "sweeps" / "real"


def check_results(sweep_dir: Path) -> pd.DataFrame:
    table = pd.read_csv(sweep_dir / "results.csv")
    assert len(table) == 2 and set(table["status"]) == {"completed"}, table.to_string()
    assert sorted(table["solver.lr"]) == [1.0e-3, 3.0e-3] and set(table["epochs"]) == {2}
    best = json.loads((sweep_dir / "best.json").read_text())
    assert best["trial_id"] == table["trial_id"].iloc[0]
    assert Path(table["checkpoint"].iloc[0]).is_file()
    return table


def test_tune_sh_sweep_completes_cleanly(sweep):
    job, info, sweep_dir = sweep
    lines = check_clean(job, info, "COMPLETED", 0)
    assert lines[-2] == "tune.sh: sweep exited with status 0"
    check_ray_gone(job, lines)
    check_results(sweep_dir)
    # the head's address is the node's routable one, and the one Ray itself reports
    said = next(line for line in lines if line.startswith("tune.sh: head address "))
    head_ip = said.split()[3].rstrip(":")
    assert not head_ip.startswith("127.")
    assert any(line.endswith(f"Local node IP: {head_ip}") for line in lines), said


def test_tune_sh_resumes_the_sweep(sweep, tmp_path):
    _, _, sweep_dir = sweep
    before = check_results(sweep_dir)
    job = submit("tune.sh", ["--nodes=1", "--cpus-per-task=2", "--gpus-per-task=0"], [f"resume={sweep_dir}"], tmp_path)
    info = wait_for(job)
    lines = check_clean(job, info, "COMPLETED", 0)
    assert lines[-2] == "tune.sh: sweep exited with status 0"
    check_ray_gone(job, lines)
    after = check_results(sweep_dir)  # rewritten from the restored experiment: the same trials and residuals
    key = ["trial_id", "status", "epochs", "val_residual"]
    pd.testing.assert_frame_equal(before[key].sort_values("trial_id"), after[key].sort_values("trial_id"))


def test_tune_sh_failed_sweep_is_the_job_status(local_slurm, tmp_path):
    """Bad input: the sweep exits 2 before any trial, the job is FAILED with exit code 2, Ray still stops."""
    args = ["conf=smoke", "tune=arch", "solver.no_such_key=1", f"sweep.out_dir={tmp_path / 'sweeps'}"]
    job = submit("tune.sh", ["--nodes=1", "--cpus-per-task=2", "--gpus-per-task=0"], args, tmp_path)
    info = wait_for(job)
    lines = check_clean(job, info, "FAILED", 2)
    assert lines[-2] == "tune.sh: sweep exited with status 2"
    assert any("no_such_key" in line for line in lines)
    check_ray_gone(job, lines)


def test_train_sh_completes_cleanly(local_slurm, tmp_path):
    run_dir = tmp_path / "run"
    args = ["conf=smoke", *SHORT, f"out_dir={run_dir}"]
    job = submit("train.sh", ["--gpus-per-node=0", "--cpus-per-task=2"], args, tmp_path)
    info = wait_for(job)
    lines = check_clean(job, info, "COMPLETED", 0)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["epochs"] == 2
    assert Path(summary["checkpoint"]).is_file()
    assert lines[-1] == "}"  # the log ends with the summary that lotj.train prints


def test_tune_sh_time_limit_signal_saves_the_sweep_and_resume_finishes_it(local_slurm, tmp_path):
    """What ``#SBATCH --signal=B:USR1@180`` does near the time limit, sent here with ``scancel --batch``: the
    batch shell passes USR1 to the sweep, Tune stops the trials and saves the experiment, the job ends FAILED
    with the sweep's status 1 (trials unfinished) and a clean log; ``resume=`` in a new job finishes them."""
    (tmp_path / "space.yaml").write_text(SPACE)
    epochs = 5
    sweep_dir = tmp_path / "sweeps" / "cut"
    args = ["conf=smoke", f"tune={tmp_path / 'space.yaml'}", *SHORT, f"solver.max_epochs={epochs}"]
    args += [f"sweep.out_dir={sweep_dir.parent}", f"sweep.name={sweep_dir.name}"]
    job = submit("tune.sh", ["--nodes=1", "--cpus-per-task=2", "--gpus-per-task=0"], args, tmp_path)
    # the event: a trial has reported its first epoch (Tune wrote its checkpoint); the deadline is a hang guard
    deadline = time.monotonic() + HANG_GUARD
    while not list(sweep_dir.glob("trials/*/checkpoint_*")):
        info = job_info(job)
        assert info["JobState"] in {"PENDING", "CONFIGURING", "RUNNING"}, Path(info["StdOut"]).read_text()[-3000:]
        assert time.monotonic() < deadline, f"no trial reported within {HANG_GUARD} s"
        time.sleep(1)
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], check=True, timeout=60)
    lines = check_clean(job, wait_for(job), "FAILED", 1)
    assert "tune.sh: stopping the sweep (its state is saved; continue it with resume=DIR)" in lines
    assert lines[-2] == "tune.sh: sweep exited with status 1"
    check_ray_gone(job, lines)
    table = pd.read_csv(sweep_dir / "results.csv")
    assert "unfinished" in set(table["status"]) and (table["epochs"].fillna(0) < epochs).all(), table.to_string()

    job = submit("tune.sh", ["--nodes=1", "--cpus-per-task=2", "--gpus-per-task=0"], [f"resume={sweep_dir}"], tmp_path)
    lines = check_clean(job, wait_for(job), "COMPLETED", 0)
    assert lines[-2] == "tune.sh: sweep exited with status 0"
    check_ray_gone(job, lines)
    table = pd.read_csv(sweep_dir / "results.csv")
    assert set(table["status"]) == {"completed"} and set(table["epochs"]) == {epochs}, table.to_string()
